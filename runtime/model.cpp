#include "model.h"
#include "scratch_alloc.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>

#include "device.h"
#include "float_ops.h"
#include "kernels.h"
#include "options.h"
#include "resource_limits.h"
#include "ops.h"
#include "pack.h"

extern "C" void openblas_set_num_threads(int);  // OpenBLAS (linked by CMake)

namespace qh {

const char *precision_name(Precision p) { return p == Precision::int8 ? "int8" : "fp32"; }

namespace {

[[noreturn]] void node_error(const Graph &g, const GraphNode &n, const std::string &what) {
    throw std::runtime_error("model '" + printable(g.name) + "', node '" + printable(n.name) + "' (" + op_name(n.op) +
                             "): " + what);
}

// Same per-tensor scale and zero point (both quantized).
bool same_quant(const QuantParams &a, const QuantParams &b) {
    return !a.empty() && !b.empty() && a.scale_at(0) == b.scale_at(0) && a.zp_at(0) == b.zp_at(0);
}

// Which values are graph outputs, as flags (a lookup per node must not scan the output list).
std::vector<bool> output_flags(const Graph &g) {
    std::vector<bool> f(g.values.size(), false);
    for (int o : g.outputs) f.at(o) = true;
    return f;
}

int64_t window_out(int64_t in, int k, int stride, int pad0, int pad1) {
    return (in + pad0 + pad1 - k) / stride + 1;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Graph passes

Graph fold_batchnorm(const Graph &src) {
    Graph g = src;
    auto cons = g.consumers();
    std::vector<bool> drop(g.nodes.size(), false);
    std::vector<int> producer(g.values.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); i++) producer[g.nodes[i].output] = int(i);
    const std::vector<bool> is_output = output_flags(g);
    for (size_t i = 0; i < g.nodes.size(); i++) {
        GraphNode &bn = g.nodes[i];
        if (bn.op != OpKind::BatchNorm) continue;
        int v = bn.inputs[0], p = producer[v];
        if (p < 0 || g.nodes[p].op != OpKind::Conv || cons[v].size() != 1) continue;
        if (is_output[v]) continue;
        GraphNode &conv = g.nodes[p];
        if (conv.weights.dtype() != DType::f32 || conv.bias.dtype() == DType::s32) continue;
        const int64_t oc = conv.weights.dim(0);
        if (int64_t(bn.bn_scale.size()) != oc)
            node_error(g, bn, std::to_string(bn.bn_scale.size()) + " channels after a conv with " + std::to_string(oc));
        Tensor w(DType::f32, conv.weights.shape());
        const int64_t per = conv.weights.numel() / oc;
        for (int64_t o = 0; o < oc; o++)
            for (int64_t k = 0; k < per; k++)
                w.data<float>()[o * per + k] = conv.weights.data<float>()[o * per + k] * bn.bn_scale[o];
        Tensor b(DType::f32, {oc});
        for (int64_t o = 0; o < oc; o++) {
            float b0 = conv.bias.rank() > 0 ? conv.bias.data<float>()[o] : 0.f;
            b.data<float>()[o] = b0 * bn.bn_scale[o] + bn.bn_shift[o];
        }
        conv.weights = w;
        conv.bias = b;
        conv.output = bn.output;
        drop[i] = true;
    }
    std::vector<GraphNode> kept;
    for (size_t i = 0; i < g.nodes.size(); i++)
        if (!drop[i]) kept.push_back(std::move(g.nodes[i]));
    g.nodes = std::move(kept);
    return g;
}

std::vector<std::vector<int64_t>> infer_shapes(const Graph &g, int batch) {
    if (batch < 1) throw std::runtime_error("model '" + g.name + "': batch must be >= 1");
    std::vector<std::vector<int64_t>> s(g.values.size());
    for (int i : g.inputs) {
        s[i] = g.values[i].shape;
        s[i][0] = batch;
        checked_numel(s[i], "model '" + printable(g.name) + "', input '" + printable(g.values[i].name) + "' at batch " +
                                std::to_string(batch));
    }
    for (const GraphNode &n : g.nodes) {
        const auto &x = s[n.inputs[0]];
        const std::string xs = "input '" + g.values[n.inputs[0]].name + "' " + shape_str(x);
        std::vector<int64_t> y = x;
        switch (n.op) {
        case OpKind::Conv:
        case OpKind::MaxPool: {
            if (x.size() != 4) node_error(g, n, xs + ": expected NHWC (rank 4)");
            const WindowAttrs &a = n.window;
            if (n.op == OpKind::Conv && x[3] != n.weights.dim(1))
                node_error(g, n, xs + " has " + std::to_string(x[3]) + " channels, weights " +
                                     n.weights.describe() + " expect " + std::to_string(n.weights.dim(1)));
            y[1] = window_out(x[1], a.kernel_h, a.stride_h, a.pad_top, a.pad_bottom);
            y[2] = window_out(x[2], a.kernel_w, a.stride_w, a.pad_left, a.pad_right);
            if (y[1] < 1 || y[2] < 1) node_error(g, n, xs + " is smaller than the window");
            if (n.op == OpKind::Conv) y[3] = n.weights.dim(0);
            break;
        }
        case OpKind::Dense:
            if (x.size() != 2 || x[1] != n.weights.dim(1))
                node_error(g, n, xs + ": expected [N," + std::to_string(n.weights.dim(1)) + "]");
            y = {x[0], n.weights.dim(0)};
            break;
        case OpKind::BatchNorm:
            if (x.back() != int64_t(n.bn_scale.size()))
                node_error(g, n, xs + " vs " + std::to_string(n.bn_scale.size()) + " channels");
            break;
        case OpKind::Relu: break;
        case OpKind::Add:
            if (s[n.inputs[1]] != x)
                node_error(g, n, "shapes differ: " + shape_str(x) + " and " + shape_str(s[n.inputs[1]]) +
                                     " (broadcasting is not supported)");
            break;
        case OpKind::GlobalAvgPool:
            if (x.size() != 4) node_error(g, n, xs + ": expected NHWC (rank 4)");
            y = {x[0], 1, 1, x[3]};
            break;
        case OpKind::Flatten:
            if (x.size() == 4 && (x[1] != 1 || x[2] != 1))
                node_error(g, n, xs + ": only 1x1 spatial inputs can be flattened (NHWC and NCHW orders differ otherwise)");
            y = {x[0], x.back()};
            break;
        }
        try {  // every value's size is checked once here, before anything is allocated for it
            checked_numel(y, "value '" + printable(g.values[n.output].name) + "'");
        } catch (const std::length_error &e) {
            node_error(g, n, e.what());
        }
        for (int64_t d : y)
            if (d < 1) node_error(g, n, "output " + shape_str(y) + " has an empty dimension (empty tensors are not supported)");
        s[n.output] = y;
    }
    return s;
}

QuantParams quant_from_range(float lo, float hi) {
    if (!std::isfinite(lo) || !std::isfinite(hi))
        throw std::invalid_argument("quantization range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                    "] is not finite");
    lo = std::min(lo, 0.f);
    hi = std::max(hi, 0.f);
    float scale = (hi - lo) / 255.f;
    if (!(scale > 0) || !std::isfinite(scale)) scale = 1.f;
    const int zp = int(std::clamp(std::nearbyint(-lo / scale), 0.f, 255.f));  // clamped before the conversion
    return QuantParams::per_tensor(scale, zp);
}

// ---------------------------------------------------------------------------------------------
// Model

namespace {

// A tensor of the executable plan: an IR value, or an internal one (the s32 logits, the f32
// graph input before quantization, a reshaped view).
struct ValueInfo {
    std::string name;
    std::vector<int64_t> shape;
    DType dtype = DType::f32;
    QuantParams quant;
    int alias = -1;         // shares the storage of this value (Flatten, GAP's {N,C} view)
    bool external = false;  // graph input/output: own memory, never in the arena
    int first = -1, last = -1;  // steps that write first / read last (root values)
    size_t offset = 0;
};

// One execution context's memory and the steps bound to it: an arena, a tensor view per value,
// the external (input/output) tensors, the fp32 path's im2col scratch, and per-step profiling.
// The weights (PackedWeights, fp32 ConvWeights) are the Model's, shared read-only by every
// context. On a device: the device arena, the host tensors of external values with their device
// mirrors, and the recorded device graph.
struct Exec {
    std::shared_ptr<uint8_t> arena;
    std::vector<Tensor> t;  // one view per ValueInfo; device tensors on a device
    std::vector<Tensor> host;
    std::map<int, DeviceBuffer> mirror;
    DeviceBuffer dev_arena;
    DeviceGraph graph;
    std::vector<float> scratch;  // fp32 im2col
    std::vector<BoundOp> ops;    // what execute() runs, one per Step
    std::vector<LayerInfo> layers;
    bool profiling = false;
    Tensor &T(int id) { return t[id]; }
    void run_steps() const {
        for (const BoundOp &op : ops) op.run();
    }
};

struct Step {
    LayerInfo info;
    std::vector<int> reads, writes;
    // Kernel steps: binds the op to a context's planned tensors (once per context, after plan()).
    std::function<BoundOp(Exec &)> bind;
    // Host steps (fp32 reference, lookup tables, copies): the code to run on a context.
    std::function<void(Exec &)> run;
};

}  // namespace

struct Model::Impl {
    Graph g;
    PrepareOptions opt;
    // A deque: lowering holds references to values' quantization while it adds internal ones.
    std::deque<ValueInfo> v;
    std::vector<Step> steps;  // read-only after prepare
    std::vector<LayerInfo> layers;  // as bound (the default context's kernels)
    std::vector<int> in_ids, out_ids;  // external tensors
    size_t arena_size = 0;
    size_t scratch_floats = 0;  // fp32 im2col, per context
    std::deque<PackedWeights> packed;
    std::deque<f32::ConvWeights> fweights;
    std::unique_ptr<Context> main;  // input()/output()/execute()
    std::mutex bind_mu;  // contexts are bound one at a time (kernel choice is not reentrant)
    std::mutex pool_mu;  // run(): contexts not in use
    std::vector<std::unique_ptr<Context>> pool;

    std::string not_replayable(const Exec &e) const;
    double time_device(Exec &e, const std::function<void()> &work);
    void bind_graph(Exec &e);
    void allocate(Exec &e);
    void bind(Exec &e);
    std::unique_ptr<Context> make_context();

    int add_internal(std::string name, std::vector<int64_t> shape, DType dt, QuantParams q = {}) {
        ValueInfo vi;
        vi.name = std::move(name);
        vi.shape = std::move(shape);
        vi.dtype = dt;
        vi.quant = std::move(q);
        v.push_back(std::move(vi));
        return int(v.size()) - 1;
    }
    int root(int id) const { return v[id].alias >= 0 ? root(v[id].alias) : id; }

    void lower_fp32();
    void lower_int8();
    void plan();
};

namespace {


Conv2dParams conv_params(const GraphNode &n) {
    Conv2dParams p;
    p.stride_h = n.window.stride_h;
    p.stride_w = n.window.stride_w;
    p.pad_top = n.window.pad_top;
    p.pad_left = n.window.pad_left;
    p.pad_bottom = n.window.pad_bottom;
    p.pad_right = n.window.pad_right;
    p.name = n.name;
    return p;
}

// Weights of a Conv/Dense node as the packer wants them: integer weights as given, float
// weights quantized symmetric per output channel (s = max|w| / 127); float bias quantized to
// int32 in units of x_scale * w_scale[oc].
PackedWeights pack_node(const Graph &g, const GraphNode &n, const QuantParams &xq, float out_scale,
                        std::vector<float> *w_scales = nullptr) {
    const Tensor &w = n.weights;
    const int oc = int(w.dim(0)), ic = int(w.dim(1));
    const int kh = w.rank() == 4 ? int(w.dim(2)) : 1, kw = w.rank() == 4 ? int(w.dim(3)) : 1;
    const int64_t per = w.numel() / oc;
    WeightsDesc d;
    d.name = n.name + ".weights";
    d.oc = oc; d.ic = ic; d.kh = kh; d.kw = kw;
    std::vector<int8_t> q;
    if (w.dtype() == DType::f32) {
        q.resize(w.numel());
        d.scale.resize(oc);
        for (int64_t k = 0; k < w.numel(); k++)
            if (!std::isfinite(w.data<float>()[k]))
                node_error(g, n, "weights " + w.describe() + " hold a NaN or infinity at element " + std::to_string(k) +
                                     " (cannot be quantized)");
        for (int o = 0; o < oc; o++) {
            float m = 0;
            for (int64_t k = 0; k < per; k++) m = std::max(m, std::fabs(w.data<float>()[o * per + k]));
            float s = m > 0 ? m / 127.f : 1.f;
            d.scale[o] = s;
            for (int64_t k = 0; k < per; k++)
                q[o * per + k] = int8_t(std::clamp(std::nearbyint(w.data<float>()[o * per + k] / s), -127.f, 127.f));
        }
        d.dtype = DType::s8;
        d.data = q.data();
    } else {
        if (w.quant.empty()) node_error(g, n, "integer weights without quantization parameters");
        d.dtype = w.dtype();
        d.data = w.raw();
        for (int o = 0; o < (w.quant.scale.size() == 1 ? 1 : oc); o++) d.scale.push_back(w.quant.scale_at(o));
        if (!w.quant.zero_point.empty())
            for (int o = 0; o < (w.quant.zero_point.size() == 1 ? 1 : oc); o++) d.zero_point.push_back(w.quant.zp_at(o));
    }
    std::vector<int32_t> bias;
    if (n.bias.rank() > 0) {
        if (n.bias.dtype() == DType::s32) {
            bias.assign(n.bias.data<int32_t>(), n.bias.data<int32_t>() + oc);
        } else {
            bias.resize(oc);
            for (int o = 0; o < oc; o++) {
                double s = double(xq.scale_at(0)) * double(d.scale.size() == 1 ? d.scale[0] : d.scale[o]);
                if (!(std::isfinite(s) && s > 0) || !std::isfinite(n.bias.data<float>()[o]))
                    node_error(g, n, "bias " + std::to_string(n.bias.data<float>()[o]) + " of output channel " +
                                         std::to_string(o) + " cannot be quantized with scale " + std::to_string(s));
                double b = std::nearbyint(double(n.bias.data<float>()[o]) / s);
                bias[o] = int32_t(std::clamp(b, double(INT32_MIN), double(INT32_MAX)));
            }
        }
        d.bias = bias.data();
    }
    if (w_scales)
        for (int o = 0; o < oc; o++) w_scales->push_back(d.scale.size() == 1 ? d.scale[0] : d.scale[o]);
    return pack_weights(d, xq.scale_at(0), xq.zp_at(0), out_scale);
}

}  // namespace

void Model::Impl::lower_fp32() {
    for (const GraphNode &n : g.nodes) {
        Step s;
        s.info.name = n.name;
        s.info.kernel = "fp32 reference";
        s.reads = n.inputs;
        s.writes = {n.output};
        const int x = n.inputs[0], y = n.output;
        switch (n.op) {
        case OpKind::Conv: {
            fweights.push_back(f32::prepare_conv_weights(n.weights, n.bias));
            size_t fw = fweights.size() - 1;
            WindowAttrs a = n.window;
            scratch_floats = std::max(scratch_floats, f32::conv2d_scratch_floats(v[x].shape, fweights[fw], a));
            s.info.op = "conv2d";
            s.info.ops = 2.0 * double(n.weights.numel()) * double(v[y].shape[0] * v[y].shape[1] * v[y].shape[2]);
            s.run = [this, x, y, fw, a](Exec &e) { f32::conv2d(e.T(x), fweights[fw], a, e.scratch.data(), e.T(y)); };
            break;
        }
        case OpKind::Dense: {
            fweights.push_back(f32::prepare_conv_weights(n.weights, n.bias));
            size_t fw = fweights.size() - 1;
            s.info.op = "dense";
            s.info.ops = 2.0 * double(n.weights.numel()) * double(v[y].shape[0]);
            s.run = [this, x, y, fw](Exec &e) { f32::dense(e.T(x), fweights[fw], e.T(y)); };
            break;
        }
        case OpKind::BatchNorm: {
            s.info.op = "batchnorm";
            auto sc = n.bn_scale, sh = n.bn_shift;
            s.run = [this, x, y, sc, sh](Exec &e) { f32::batchnorm(e.T(x), sc, sh, e.T(y)); };
            break;
        }
        case OpKind::Relu: s.info.op = "relu"; s.run = [this, x, y](Exec &e) { f32::relu(e.T(x), e.T(y)); }; break;
        case OpKind::Add: {
            int b = n.inputs[1];
            s.info.op = "add";
            s.run = [this, x, b, y](Exec &e) { f32::add(e.T(x), e.T(b), e.T(y)); };
            break;
        }
        case OpKind::MaxPool: {
            WindowAttrs a = n.window;
            s.info.op = "maxpool";
            s.run = [this, x, y, a](Exec &e) { f32::maxpool(e.T(x), a, e.T(y)); };
            break;
        }
        case OpKind::GlobalAvgPool:
            s.info.op = "global_avgpool";
            s.run = [this, x, y](Exec &e) { f32::global_avgpool(e.T(x), e.T(y)); };
            break;
        case OpKind::Flatten:
            if (!opt.keep_all_values && !v[y].external) {
                v[y].alias = x;
                continue;
            }
            s.info.op = "flatten";
            s.run = [this, x, y](Exec &e) { std::memcpy(e.T(y).raw(), e.T(x).raw(), e.T(x).nbytes()); };
            break;
        }
        steps.push_back(std::move(s));
    }
}

void Model::Impl::lower_int8() {
    auto cons = g.consumers();
    const std::vector<bool> is_output = output_flags(g);
    std::vector<int> producer(g.values.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); i++) producer[g.nodes[i].output] = int(i);
    std::vector<bool> fused(g.nodes.size(), false);
    // s8 activations (ONNX Runtime's default QInt8) become u8 exactly: q + 128 with zero point
    // z + 128 represents the same real values, and round/saturate commute with the shift.
    for (size_t id = 0; id < g.values.size(); id++) {
        if (g.values[id].qtype != DType::s8 || v[id].quant.empty()) continue;
        if (v[id].quant.zero_point.size() > 1 || v[id].external)
            throw std::runtime_error("model '" + g.name + "', value '" + v[id].name +
                                     "': s8 quantization is supported per tensor on intermediate values only");
        v[id].quant.zero_point = {v[id].quant.zp_at(0) + 128};
    }
    auto need_quant = [&](const GraphNode &n, int id) -> const QuantParams & {
        if (v[id].quant.empty())
            node_error(g, n, "value '" + v[id].name + "' has no quantization parameters (calibrate a float model "
                             "first, or give a QDQ/QOperator model)");
        const QuantParams &q = v[id].quant;
        for (float sc : q.scale)
            if (!(std::isfinite(sc) && sc > 0.f))
                node_error(g, n, "value '" + printable(v[id].name) + "' has scale " + std::to_string(sc) +
                                     " (must be finite and positive)");
        for (int32_t z : q.zero_point)
            if (z < 0 || z > 255)
                node_error(g, n, "value '" + printable(v[id].name) + "' has zero point " + std::to_string(z) +
                                     " (u8 range 0..255)");
        return q;
    };
    // The single consumer of `id` if it is a Relu that can be fused: exactly, i.e. when `id`
    // has no quantization of its own (calibrated graphs) or the same as the Relu's output. A QDQ
    // graph with different parameters on both sides rounds and saturates twice; the standalone
    // Relu below does that.
    auto relu_after = [&](int id) {
        if (cons[id].size() != 1 || is_output[id]) return -1;
        int c = cons[id][0];
        if (g.nodes[c].op != OpKind::Relu) return -1;
        const QuantParams &a = v[id].quant, &b = v[g.nodes[c].output].quant;
        return a.empty() || same_quant(a, b) ? c : -1;
    };

    // Graph inputs: the caller writes f32 into an external tensor; a quantize step makes u8.
    for (size_t k = 0; k < g.inputs.size(); k++) {
        int id = g.inputs[k];
        if (g.values[id].dtype == DType::u8) {
            v[id].external = true;
            v[id].dtype = DType::u8;
            in_ids[k] = id;
            continue;
        }
        const QuantParams &q = need_quant(GraphNode{OpKind::Relu, "input " + v[id].name}, id);
        int ext = add_internal(v[id].name + ":f32", v[id].shape, DType::f32);
        v[ext].external = true;
        in_ids[k] = ext;
        v[id].dtype = DType::u8;
        v[id].quant = q;
        Step s;
        s.info = {v[id].name, "quantize", "", 0};
        s.reads = {ext};
        s.writes = {id};
        s.bind = [this, ext, id](Exec &e) { return bind_quantize(e.T(ext), e.T(id)); };
        steps.push_back(std::move(s));
    }

    for (size_t i = 0; i < g.nodes.size(); i++) {
        if (fused[i]) continue;
        const GraphNode &n = g.nodes[i];
        const int x = n.inputs[0];
        Step s;
        s.info.name = n.name;
        s.reads = n.inputs;
        switch (n.op) {
        case OpKind::Conv: {
            const QuantParams &xq = need_quant(n, x);
            int out = n.output, res = -1, add_node = -1;
            // Conv -> Add (other operand already computed) [-> Relu]: one conv2d_add.
            if (cons[out].size() == 1 && !is_output[out] && g.nodes[cons[out][0]].op == OpKind::Add) {
                const GraphNode &a = g.nodes[cons[out][0]];
                int other = a.inputs[0] == out ? a.inputs[1] : a.inputs[0];
                if (other != out && (producer[other] < int(i))) {
                    res = other;
                    add_node = cons[out][0];
                }
            }
            std::string op = "conv2d";
            int y = out;
            if (add_node >= 0) {
                fused[add_node] = true;
                y = g.nodes[add_node].output;
                op = "conv2d_add";
                s.info.name = g.nodes[add_node].name;
            }
            int r = relu_after(y);
            if (r >= 0) {
                fused[r] = true;
                y = g.nodes[r].output;
                op += "+relu";
                s.info.name = g.nodes[r].name;
            }
            const QuantParams &yq = need_quant(n, y);
            v[y].dtype = DType::u8;
            Conv2dParams p = conv_params(n);
            p.act = r >= 0 ? Activation::relu(yq.zp_at(0)) : Activation{};
            s.info.op = op;
            s.info.ops = 2.0 * double(n.weights.numel()) * double(v[y].shape[0] * v[y].shape[1] * v[y].shape[2]);
            s.writes = {y};
            if (add_node < 0) {
                packed.push_back(pack_node(g, n, xq, yq.scale_at(0)));
                size_t pw = packed.size() - 1;
                s.bind = [this, x, y, pw, p](Exec &e) { return bind_conv2d(e.T(x), packed[pw], p, e.T(y)); };
            } else {
                const QuantParams &cq = need_quant(n, out);
                need_quant(g.nodes[add_node], res);
                packed.push_back(pack_node(g, n, xq, cq.scale_at(0)));
                size_t pw = packed.size() - 1;
                if (packed[pw].has_zero_point)
                    node_error(g, n, "a residual add after a conv with asymmetric weights is not supported");
                ResidualParams rp{cq.scale_at(0), cq.zp_at(0)};
                s.reads = {x, res};
                s.bind = [this, x, y, res, pw, p, rp](Exec &e) { return bind_conv2d_add(e.T(x), packed[pw], p, rp, e.T(res), e.T(y)); };
            }
            break;
        }
        case OpKind::Dense: {
            const QuantParams &xq = need_quant(n, x);
            int y = n.output;
            int r = relu_after(y);
            if (r >= 0) {
                fused[r] = true;
                y = g.nodes[r].output;
            }
            s.info.ops = 2.0 * double(n.weights.numel()) * double(v[y].shape[0]);
            s.writes = {y};
            if (!v[y].quant.empty()) {  // u8 output
                v[y].dtype = DType::u8;
                packed.push_back(pack_node(g, n, xq, v[y].quant.scale_at(0)));
                size_t pw = packed.size() - 1;
                Activation act = r >= 0 ? Activation::relu(v[y].quant.zp_at(0)) : Activation{};
                s.info.op = r >= 0 ? "dense+relu" : "dense";
                std::string name = n.name;
                s.bind = [this, x, y, pw, act, name](Exec &e) { return bind_dense(e.T(x), packed[pw], act, e.T(y), name); };
            } else {  // float output: s32 accumulators, then exact dequantization per channel
                if (r >= 0) node_error(g, n, "a Relu after a float-output Dense is not supported");
                std::vector<float> ws;
                packed.push_back(pack_node(g, n, xq, 0.f, &ws));
                size_t pw = packed.size() - 1;
                const PackedWeights &w = packed[pw];
                QuantParams aq;  // real = s_x * s_w[oc] * acc, computed in float32 as ONNX does
                aq.axis = 1;
                aq.zero_point = {0};
                for (float sw : ws) aq.scale.push_back(xq.scale_at(0) * sw);
                int acc = add_internal(n.name + ":s32", v[y].shape, DType::s32, aq);
                v[y].dtype = DType::f32;
                s.info.op = "dense";
                s.writes = {acc};
                std::string name = n.name;
                s.bind = [this, x, acc, pw, name](Exec &e) { return bind_dense(e.T(x), packed[pw], {}, e.T(acc), name); };
                steps.push_back(std::move(s));
                Step d;
                d.info = {n.name, "dequantize", "", 0};
                d.reads = {acc};
                d.writes = {y};
                d.bind = [this, acc, y](Exec &e) { return bind_dequantize(e.T(acc), e.T(y)); };
                steps.push_back(std::move(d));
                continue;
            }
            break;
        }
        case OpKind::Add: {
            need_quant(n, x);
            need_quant(n, n.inputs[1]);
            int y = n.output, r = relu_after(y);
            if (r >= 0) {
                fused[r] = true;
                y = g.nodes[r].output;
            }
            const QuantParams &yq = need_quant(n, y);
            v[y].dtype = DType::u8;
            Activation act = r >= 0 ? Activation::relu(yq.zp_at(0)) : Activation{};
            int b = n.inputs[1];
            s.info.op = r >= 0 ? "add+relu" : "add";
            s.writes = {y};
            s.bind = [this, x, b, y, act](Exec &e) { return bind_add(e.T(x), e.T(b), act, e.T(y)); };
            break;
        }
        case OpKind::Relu: {  // standalone: DequantizeLinear -> Relu -> QuantizeLinear as a table
            const QuantParams &xq = need_quant(n, x);
            int y = n.output;
            if (v[y].quant.empty()) v[y].quant = xq;
            const QuantParams &yq = v[y].quant;
            v[y].dtype = DType::u8;
            std::array<uint8_t, 256> lut;
            for (int q = 0; q < 256; q++) {
                float r = std::max(0.f, float(q - xq.zp_at(0)) * xq.scale_at(0));
                float t = std::nearbyint(r / yq.scale_at(0)) + float(yq.zp_at(0));
                lut[q] = uint8_t(std::clamp(t, 0.f, 255.f));
            }
            s.info.op = "relu";
            s.info.kernel = "host: 256-entry lookup table (dequantize, relu, quantize)";
            s.writes = {y};
            s.run = [this, x, y, lut](Exec &e) {
                const uint8_t *a = e.T(x).data<uint8_t>();
                uint8_t *o = e.T(y).data<uint8_t>();
                for (int64_t k = 0, end = e.T(x).numel(); k < end; k++) o[k] = lut[a[k]];
            };
            break;
        }
        case OpKind::MaxPool: {
            const QuantParams &xq = need_quant(n, x);
            int y = n.output;
            if (!v[y].quant.empty() && !same_quant(v[y].quant, xq))
                node_error(g, n, "MaxPool must keep its input's quantization (output scale/zero point differ)");
            v[y].quant = xq;
            v[y].dtype = DType::u8;
            PoolParams p;
            p.kernel_h = n.window.kernel_h; p.kernel_w = n.window.kernel_w;
            p.stride_h = n.window.stride_h; p.stride_w = n.window.stride_w;
            p.pad_top = n.window.pad_top; p.pad_left = n.window.pad_left;
            p.pad_bottom = n.window.pad_bottom; p.pad_right = n.window.pad_right;
            p.name = n.name;
            s.info.op = "maxpool";
            s.writes = {y};
            s.bind = [this, x, y, p](Exec &e) { return bind_maxpool(e.T(x), p, e.T(y)); };
            break;
        }
        case OpKind::GlobalAvgPool: {
            need_quant(n, x);
            int y = n.output;
            const QuantParams &yq = need_quant(n, y);
            v[y].dtype = DType::u8;
            // The kernel writes {N, C}: a view of y's storage.
            int view = add_internal(v[y].name + ":nc", {v[y].shape[0], v[y].shape[3]}, DType::u8, yq);
            v[view].alias = y;
            s.info.op = "global_avgpool";
            s.writes = {y};
            s.bind = [this, x, view](Exec &e) { return bind_global_avgpool(e.T(x), e.T(view)); };
            break;
        }
        case OpKind::Flatten: {
            int y = n.output;
            v[y].dtype = v[x].dtype;
            v[y].quant = v[x].quant;
            if (!v[y].external && !opt.keep_all_values) {
                v[y].alias = x;
                continue;
            }
            s.info.op = "flatten";
            s.info.kernel = "host: copy";
            s.writes = {y};
            s.run = [this, x, y](Exec &e) { std::memcpy(e.T(y).raw(), e.T(x).raw(), e.T(x).nbytes()); };
            break;
        }
        case OpKind::BatchNorm:
            node_error(g, n, "BatchNorm that could not be folded into a float Conv is not supported in int8");
        }
        steps.push_back(std::move(s));
    }
    // Graph outputs are f32 for the caller: dequantize the quantized ones into an external tensor.
    for (size_t k = 0; k < g.outputs.size(); k++) {
        int id = g.outputs[k];
        if (v[id].dtype == DType::f32 || g.values[id].dtype == v[id].dtype) {  // f32, or u8 wanted
            out_ids[k] = id;
            continue;
        }
        v[id].external = false;
        int ext = add_internal(v[id].name + ":f32", v[id].shape, DType::f32);
        v[ext].external = true;
        out_ids[k] = ext;
        Step d;
        d.info = {v[id].name, "dequantize", "", 0};
        d.reads = {id};
        d.writes = {ext};
        d.bind = [this, id, ext](Exec &e) { return bind_dequantize(e.T(id), e.T(ext)); };
        steps.push_back(std::move(d));
    }
}

// Memory planning: every non-external root value gets an arena slot alive from the step that
// first writes it to the step that last reads it; slots are placed largest first at the lowest
// offset that overlaps no live slot (greedy by size, as TFLite's arena planner does). Only slots
// alive at some step of the new slot's interval are compared (found through per-step lists), so
// a chain of n layers plans in O(n log n), not O(n^2). keep_all_values: every slot is alive
// throughout, so slots are simply laid out one after another. Offsets only: each context
// allocates its own arena of arena_size bytes (allocate()).
void Model::Impl::plan() {
    for (auto &vi : v) vi.first = vi.last = -1;
    for (size_t si = 0; si < steps.size(); si++) {
        for (int w : steps[si].writes) {
            int r = root(w);
            if (v[r].first < 0) v[r].first = int(si);
            v[r].last = std::max(v[r].last, int(si));
        }
        for (int rd : steps[si].reads) v[root(rd)].last = std::max(v[root(rd)].last, int(si));
    }
    const size_t kAlign = 64;
    std::vector<int> order;
    for (size_t i = 0; i < v.size(); i++)
        if (v[i].alias < 0 && !v[i].external && v[i].first >= 0) order.push_back(int(i));
    std::vector<size_t> bytes(v.size(), 0);
    for (int i : order) {
        const int64_t n = checked_numel(v[i].shape, "model '" + g.name + "', value '" + printable(v[i].name) + "'");
        bytes[i] = (dtype_storage_bytes(v[i].dtype, n) + kAlign - 1) / kAlign * kAlign;
    }
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bytes[a] > bytes[b]; });
    arena_size = 0;
    if (opt.keep_all_values) {
        for (int i : order) {
            v[i].offset = arena_size;
            arena_size = size_t(checked_add(int64_t(arena_size), int64_t(bytes[i]), "model '" + g.name + "': arena"));
        }
        return;
    }
    std::vector<std::vector<int>> live_at(steps.size());  // placed slots alive at each step
    std::vector<int> seen(v.size(), -1);
    std::vector<std::pair<size_t, size_t>> busy;
    for (int i : order) {
        busy.clear();
        for (int st = v[i].first; st <= v[i].last; st++)
            for (int j : live_at[st])
                if (seen[j] != i) {
                    seen[j] = i;
                    busy.push_back({v[j].offset, bytes[j]});
                }
        std::sort(busy.begin(), busy.end());
        size_t off = 0;
        for (auto [o, sz] : busy) {
            if (off + bytes[i] <= o) break;
            off = std::max(off, o + sz);
        }
        v[i].offset = off;
        arena_size = std::max(arena_size, off + bytes[i]);
        for (int st = v[i].first; st <= v[i].last; st++) live_at[st].push_back(i);
    }
}

// A context's memory: the arena (host or device), a tensor view per value, the external tensors.
void Model::Impl::allocate(Exec &e) {
    const size_t kAlign = 64;
    e.t.assign(v.size(), Tensor());
    e.scratch.assign(scratch_floats, 0.f);
    if (opt.device != Device::cpu) {  // same plan, device memory: one arena, a mirror per external
        e.dev_arena = DeviceBuffer(opt.device, arena_size);
        e.host.assign(v.size(), Tensor());
        for (size_t i = 0; i < v.size(); i++)
            if (v[i].external && v[i].alias < 0) {
                e.host[i] = Tensor(v[i].dtype, v[i].shape, v[i].quant);
                e.mirror.emplace(int(i), DeviceBuffer(opt.device, e.host[i].nbytes(), e.host[i].raw()));
            }
        for (size_t i = 0; i < v.size(); i++) {
            int r = root(int(i));
            if (v[r].external) {
                if (int(i) != r) e.host[i] = Tensor::wrap(v[i].dtype, v[i].shape, e.host[r].raw(), v[i].quant);
                e.t[i] = Tensor::wrap_device(opt.device, v[i].dtype, v[i].shape, e.mirror.at(r).handle(), v[i].quant);
            } else if (v[r].first >= 0) {
                e.t[i] = Tensor::wrap_device(opt.device, v[i].dtype, v[i].shape, e.dev_arena.handle() + v[r].offset,
                                             v[i].quant);
            }
        }
        return;
    }
    void *mem = std::aligned_alloc(kAlign, std::max<size_t>((arena_size + kAlign - 1) / kAlign * kAlign, kAlign));
    if (!mem)
        throw std::length_error("model '" + g.name + "': out of memory allocating the " + bytes_str(arena_size) +
                                " arena of intermediate values");
    e.arena = std::shared_ptr<uint8_t>(static_cast<uint8_t *>(mem), std::free);
    for (size_t i = 0; i < v.size(); i++) {
        int r = root(int(i));
        if (v[r].external) {
            if (int(i) == r) e.t[i] = Tensor(v[i].dtype, v[i].shape, v[i].quant);
        } else if (v[r].first >= 0) {
            e.t[i] = Tensor::wrap(v[i].dtype, v[i].shape, e.arena.get() + v[r].offset, v[i].quant);
        }
    }
    for (size_t i = 0; i < v.size(); i++) {  // views of external values
        int r = root(int(i));
        if (v[r].external && int(i) != r) e.t[i] = Tensor::wrap(v[i].dtype, v[i].shape, e.t[r].raw(), v[i].quant);
    }
}

// Binds every step to the context's tensors (validation, kernel choice, Halide buffers). An error
// names the model and the layer.
void Model::Impl::bind(Exec &e) {
    std::lock_guard<std::mutex> l(bind_mu);
    KernelOptionsScope scope(opt.kernels);
    e.ops.clear();
    e.layers.clear();
    for (const Step &s : steps) {
        LayerInfo info = s.info;
        try {
            if (s.bind) {
                e.ops.push_back(s.bind(e));
                info.kernel = e.ops.back().kernel();
            } else {
                Exec *ep = &e;
                e.ops.push_back(BoundOp(s.info.name, s.info.kernel, [run = s.run, ep] {
                    run(*ep);
                    return 0;
                }));
            }
        } catch (const std::bad_alloc &) {
            throw std::length_error("model '" + g.name + "', layer '" + printable(s.info.name) + "' (" + s.info.op +
                                    "): out of memory while binding");
        } catch (const std::exception &ex) {
            throw std::runtime_error("model '" + g.name + "', layer '" + printable(s.info.name) + "' (" + s.info.op +
                                     "): " + ex.what());
        }
        e.layers.push_back(info);
    }
}

// Model's memory per context (arena + external tensors), checked against the budget before any of
// it is allocated.
static size_t context_bytes(const std::deque<ValueInfo> &v, size_t arena, size_t scratch_floats, const std::string &what) {
    int64_t total = checked_add(int64_t(arena), checked_mul(int64_t(scratch_floats), 4, what), what);
    for (const ValueInfo &vi : v)
        if (vi.external && vi.alias < 0)
            total = checked_add(total, int64_t(dtype_storage_bytes(vi.dtype, checked_numel(vi.shape, what)) + 63) / 64 * 64, what);
    return size_t(total);
}

struct Model::Context::State {
    Model::Impl *m = nullptr;
    Exec e;
};

Model::Context::Context() : s_(new State) {}
Model::Context::~Context() = default;

std::unique_ptr<Model::Context> Model::Impl::make_context() {
    const std::string what = "model '" + printable(g.name) + "': an execution context (arena, inputs, outputs)";
    check_budget(context_bytes(v, arena_size, scratch_floats, what), what);
    std::unique_ptr<Context> c(new Context());
    c->s_->m = this;
    allocate(c->s_->e);
    bind(c->s_->e);
    return c;
}

Model::Model() : impl_(new Impl) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::prepare(const Graph &src, const PrepareOptions &opt) {
    install_halide_error_handler();
    try {
        return prepare_impl(src, opt);
    } catch (const std::bad_alloc &) {
        throw std::length_error("model '" + printable(src.name) +
                                "': out of memory while preparing (see set_memory_budget / QHALIDE_MEMORY_BUDGET)");
    } catch (const std::length_error &e) {
        throw std::length_error(one_line(e.what()));
    } catch (const std::invalid_argument &e) {
        throw std::invalid_argument(one_line(e.what()));
    } catch (const std::exception &e) {
        throw std::runtime_error(one_line(e.what()));
    }
}

std::unique_ptr<Model> Model::prepare_impl(const Graph &src, const PrepareOptions &opt) {
    std::unique_ptr<Model> m(new Model());
    Impl &I = *m->impl_;
    check_threads(opt.threads, "model '" + printable(src.name) + "': PrepareOptions::threads");
    src.validate();
    I.g = fold_batchnorm(src);
    I.opt = opt;
    const bool on_device = opt.device != Device::cpu;
    const std::string dev = device_name(opt.device);
    if (on_device && opt.precision != Precision::int8)
        throw std::runtime_error("model '" + I.g.name + "': the fp32 path runs on the CPU only; " + dev +
                                 " needs precision int8");
    if (on_device && opt.keep_all_values)
        throw std::runtime_error("model '" + I.g.name + "': keep_all_values is CPU-only (" + dev + " requested)");
    auto shapes = infer_shapes(I.g, opt.batch);
    for (size_t i = 0; i < I.g.values.size(); i++) {
        ValueInfo vi;
        vi.name = I.g.values[i].name;
        vi.shape = shapes[i];
        vi.dtype = DType::f32;
        vi.quant = opt.precision == Precision::int8 ? I.g.values[i].quant : QuantParams{};
        I.v.push_back(vi);
    }
    for (int id : I.g.inputs) I.v[id].external = true;
    for (int id : I.g.outputs) I.v[id].external = true;
    I.in_ids = I.g.inputs;
    I.out_ids = I.g.outputs;
    if (opt.threads > 0) {
        set_num_threads(opt.threads);
        openblas_set_num_threads(opt.threads);
    }
    if (opt.precision == Precision::int8)
        I.lower_int8();
    else
        I.lower_fp32();
    if (on_device) {
        for (const auto &s : I.steps)  // host code (lookup tables, copies) has no device version
            if (!s.bind)
                throw std::runtime_error("model '" + I.g.name + "', layer '" + s.info.name + "' (" + s.info.op +
                                         "): no " + dev + " kernel for this step (" + s.info.kernel +
                                         "); prepare the model for the CPU");
        require_device(opt.device, "model '" + I.g.name + "' prepared for " + dev);
    }
    I.plan();
    install_scratch_allocator(opt.threads);  // kernels' per-task scratch comes from a reused pool
    I.main = I.make_context();
    I.layers = I.main->s_->e.layers;
    if (on_device) I.bind_graph(I.main->s_->e);
    return m;
}

// Why the bound steps cannot be recorded into a device graph ("" if they can).
std::string Model::Impl::not_replayable(const Exec &e) const {
    for (size_t i = 0; i < e.ops.size(); i++)
        if (!e.ops[i].not_replayable().empty())
            return "layer '" + steps[i].info.name + "' (" + e.ops[i].kernel() + "): " + e.ops[i].not_replayable();
    return "";
}

// Median wall time of `work` plus a device sync, in ms (5 runs after one untimed).
double Model::Impl::time_device(Exec &e, const std::function<void()> &work) {
    std::vector<double> t;
    for (int i = 0; i < 6; i++) {
        auto t0 = std::chrono::steady_clock::now();
        work();
        e.dev_arena.sync();
        if (i) t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(t.begin(), t.begin() + 2, t.end());
    return t[2];
}

// PrepareOptions::device_graph. If every step is replayable, record them. If not (a layer's
// fastest formulation allocates per run), bind those layers again among replayable choices only,
// record that plan and keep whichever of the two runs faster, measured here: the graph saves
// launch overhead, the other plan may have faster layers.
void Model::Impl::bind_graph(Exec &e) {
    if (!opt.device_graph) {
        e.graph = DeviceGraph::none("PrepareOptions::device_graph is false");
        return;
    }
    auto record = [this, &e] {
        e.run_steps();  // lazy one-time work (module loads, kernel attributes) must not happen while recording
        e.dev_arena.sync();
        return DeviceGraph::record(opt.device, [&e] { e.run_steps(); });
    };
    const std::string why = not_replayable(e);
    if (why.empty()) {
        e.graph = record();
        return;
    }
    const double t_steps = time_device(e, [&e] { e.run_steps(); });
    std::vector<BoundOp> best(steps.size());
    {
        KernelOptions only = opt.kernels;
        only.replayable_only = true;
        KernelOptionsScope scope(only);
        for (size_t i = 0; i < steps.size(); i++)
            if (!e.ops[i].not_replayable().empty()) {
                best[i] = e.ops[i];
                e.ops[i] = steps[i].bind(e);
            }
    }
    DeviceGraph g = not_replayable(e).empty() ? record() : DeviceGraph::none(not_replayable(e));
    const double t_graph = g.ready() ? time_device(e, [&g] { g.launch(); }) : 1e30;
    char buf[160];
    if (t_graph <= t_steps) {
        e.graph = g;
        for (size_t i = 0; i < steps.size(); i++) layers[i].kernel = e.layers[i].kernel = e.ops[i].kernel();
        return;
    }
    for (size_t i = 0; i < steps.size(); i++)
        if (best[i]) e.ops[i] = best[i];
    std::snprintf(buf, sizeof buf, " (measured at prepare: %.3f ms launched step by step, %.3f ms as a graph of the replayable plan)",
                  t_steps, t_graph);
    e.graph = DeviceGraph::none(why + buf);
}

std::string Model::device_graph() const {
    const Impl &I = *impl_;
    if (I.opt.device == Device::cpu) return "off: the CPU runs no device graph";
    const Exec &e = I.main->s_->e;
    return e.graph.ready() ? "on" : "off: " + e.graph.why();
}

void Model::Context::execute_on_device() {
    Exec &e = s_->e;
    if (s_->m->opt.device == Device::cpu) return execute();
    if (e.graph.ready() && !e.profiling)
        e.graph.launch();
    else
        e.run_steps();
    e.dev_arena.sync();
}

void Model::Context::execute() {
    Exec &e = s_->e;
    const bool on_device = s_->m->opt.device != Device::cpu;
    if (on_device)
        for (int id : s_->m->in_ids) e.mirror.at(id).upload();
    if (e.profiling) {
        for (size_t i = 0; i < e.ops.size(); i++) {
            auto t0 = std::chrono::steady_clock::now();
            e.ops[i].run();
            if (on_device) e.dev_arena.sync();  // only when profiling: a step's time is its own
            auto t1 = std::chrono::steady_clock::now();
            e.layers[i].total_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
            e.layers[i].calls++;
        }
    } else if (e.graph.ready()) {
        e.graph.launch();
    } else {
        e.run_steps();
    }
    if (on_device) {
        for (int id : s_->m->out_ids) e.mirror.at(id).download();
        e.dev_arena.sync();
    }
}

Tensor &Model::Context::input(int i) {
    Exec &e = s_->e;
    return (e.host.empty() ? e.t : e.host).at(s_->m->in_ids.at(i));
}
const Tensor &Model::Context::output(int i) const {
    const Exec &e = s_->e;
    return (e.host.empty() ? e.t : e.host).at(s_->m->out_ids.at(i));
}
const std::vector<LayerInfo> &Model::Context::layers() const { return s_->e.layers; }
void Model::Context::set_profiling(bool on) { s_->e.profiling = on; }

std::unique_ptr<Model::Context> Model::create_context() {
    Impl &I = *impl_;
    if (I.opt.device != Device::cpu)
        throw std::runtime_error("model '" + I.g.name + "': execution contexts are CPU-only; a model prepared for " +
                                 device_name(I.opt.device) + " runs one execute() at a time (prepare one Model per stream)");
    return I.make_context();
}

std::vector<Tensor> Model::run(const std::vector<Tensor> &inputs) {
    Impl &I = *impl_;
    if (inputs.size() != I.in_ids.size())
        throw std::invalid_argument("model '" + I.g.name + "': run() got " + std::to_string(inputs.size()) +
                                    " inputs, the model has " + std::to_string(I.in_ids.size()));
    const bool on_device = I.opt.device != Device::cpu;
    std::unique_ptr<Context> c;
    std::unique_lock<std::mutex> l(I.pool_mu);
    if (on_device) {
        // One context on a device: requests are serialized (pool_mu stays held).
    } else if (!I.pool.empty()) {
        c = std::move(I.pool.back());
        I.pool.pop_back();
        l.unlock();
    } else {
        l.unlock();
        c = I.make_context();
    }
    Context &ctx = on_device ? *I.main : *c;
    for (size_t k = 0; k < inputs.size(); k++) {
        Tensor &dst = ctx.input(int(k));
        const Tensor &src = inputs[k];
        if (src.dtype() != dst.dtype() || src.shape() != dst.shape() || src.device() != Device::cpu || !src.raw())
            throw std::invalid_argument("model '" + I.g.name + "': input " + std::to_string(k) + " ('" +
                                        printable(I.g.values[I.g.inputs[k]].name) + "') is " + src.describe() +
                                        ", expected " + dst.describe());
        if (src.nbytes()) std::memcpy(dst.raw(), src.raw(), src.nbytes());
    }
    ctx.execute();
    std::vector<Tensor> out;
    for (int k = 0; k < int(I.out_ids.size()); k++) {
        const Tensor &o = ctx.output(k);
        Tensor r(o.dtype(), o.shape(), o.quant);
        if (o.nbytes()) std::memcpy(r.raw(), o.raw(), o.nbytes());
        out.push_back(std::move(r));
    }
    if (!on_device) {
        std::lock_guard<std::mutex> back(I.pool_mu);
        I.pool.push_back(std::move(c));
    }
    return out;
}

void Model::execute() { impl_->main->execute(); }
void Model::execute_on_device() { impl_->main->execute_on_device(); }
int Model::num_inputs() const { return int(impl_->in_ids.size()); }
int Model::num_outputs() const { return int(impl_->out_ids.size()); }
Tensor &Model::input(int i) { return impl_->main->input(i); }
const Tensor &Model::output(int i) const { return impl_->main->output(i); }
const std::string &Model::input_name(int i) const { return impl_->g.values.at(impl_->g.inputs.at(i)).name; }
const std::string &Model::output_name(int i) const { return impl_->g.values.at(impl_->g.outputs.at(i)).name; }
const Tensor *Model::value(int id) const {
    if (id < 0 || size_t(id) >= impl_->g.values.size()) return nullptr;
    const Tensor &t = impl_->main->s_->e.t[id];
    return t.raw() ? &t : nullptr;
}
const std::vector<LayerInfo> &Model::layers() const { return impl_->main->layers(); }
void Model::set_profiling(bool on) { impl_->main->set_profiling(on); }
size_t Model::arena_bytes() const { return impl_->arena_size; }
Precision Model::precision() const { return impl_->opt.precision; }
int Model::batch() const { return impl_->opt.batch; }
Device Model::device() const { return impl_->opt.device; }

// ---------------------------------------------------------------------------------------------
// Calibration

void calibrate(Graph &g, const std::vector<Tensor> &samples, const CalibrationOptions &opt) {
    if (samples.empty()) throw std::runtime_error("calibrate '" + g.name + "': no calibration samples");
    if (g.inputs.size() != 1) throw std::runtime_error("calibrate '" + g.name + "': only single-input models");
    g = fold_batchnorm(g);
    const GraphValue &in = g.values[g.inputs[0]];
    PrepareOptions po;
    po.batch = int(samples[0].dim(0));
    po.threads = opt.threads;
    po.precision = Precision::fp32;
    po.keep_all_values = true;
    auto m = Model::prepare(g, po);
    const size_t nv = g.values.size();
    std::vector<float> lo(nv, INFINITY), hi(nv, -INFINITY);
    std::vector<std::vector<float>> reservoir(nv);
    const size_t kReservoir = 1 << 16;
    for (size_t si = 0; si < samples.size(); si++) {
        const Tensor &s = samples[si];
        if (s.dtype() != DType::f32 || s.shape() != m->input(0).shape())
            throw std::runtime_error("calibrate '" + g.name + "': sample " + std::to_string(si) + " is " + s.describe() +
                                     ", expected " + m->input(0).describe() + " like input '" + in.name + "'");
        std::memcpy(m->input(0).raw(), s.raw(), s.nbytes());
        m->execute();
        for (size_t id = 0; id < nv; id++) {
            const Tensor *t = m->value(int(id));
            if (!t || t->dtype() != DType::f32) continue;
            const float *p = t->data<float>();
            const int64_t n = t->numel();
            for (int64_t k = 0; k < n; k++) {
                lo[id] = std::min(lo[id], p[k]);
                hi[id] = std::max(hi[id], p[k]);
            }
            if (opt.method == CalibrationOptions::Method::percentile) {
                // Deterministic strided subsample, at most kReservoir / #samples values per run.
                int64_t want = int64_t(kReservoir / samples.size()) + 1;
                int64_t stride = std::max<int64_t>(1, n / want);
                for (int64_t k = (int64_t(si) * 7919) % stride; k < n; k += stride) reservoir[id].push_back(p[k]);
            }
        }
        if (opt.progress) opt.progress(int(si) + 1, int(samples.size()));
    }
    auto cons = g.consumers();
    const std::vector<bool> is_output = output_flags(g);
    auto only_relu_reads = [&](size_t id) {
        return cons[id].size() == 1 && g.nodes[cons[id][0]].op == OpKind::Relu;
    };
    for (size_t id = 0; id < nv; id++) {
        // Graph outputs stay float; a value only a ReLU reads is never materialized (fused).
        if (is_output[id] || only_relu_reads(id) || !(lo[id] <= hi[id])) continue;
        float a = lo[id], b = hi[id];
        if (opt.method == CalibrationOptions::Method::percentile && !reservoir[id].empty()) {
            auto &r = reservoir[id];
            std::sort(r.begin(), r.end());
            auto at = [&](double pct) { return r[std::min(r.size() - 1, size_t(pct / 100.0 * double(r.size() - 1) + 0.5))]; };
            a = lo[id] >= 0 ? 0.f : at(100.0 - opt.percentile);
            b = at(opt.percentile);
        }
        try {
            g.values[id].quant = quant_from_range(a, b);
        } catch (const std::invalid_argument &e) {
            throw std::invalid_argument("calibrate '" + printable(g.name) + "': value '" + printable(g.values[id].name) +
                                        "': " + e.what() + " (NaN or infinity in the float model's activations)");
        }
        g.values[id].qtype = DType::u8;
    }
    for (const auto &[name, q] : opt.overrides) {
        int id = g.find_value(name);
        if (id < 0) throw std::runtime_error("calibrate '" + g.name + "': override for unknown value '" + name + "'");
        g.values[id].quant = q;
    }
}

}  // namespace qh
