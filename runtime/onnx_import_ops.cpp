// The ONNX importer, one method per ONNX op (and the shared window / weights / bias / quantized
// constant decoding they use): each checks its node and emits IR nodes. onnx_importer.h.
#include "onnx_importer.h"

namespace qh::onnx_detail {

static const char *const kNoBlocks = "not supported (blocked quantization; only per-tensor or per-axis scales)";

WindowAttrs Importer::window(bool conv, int64_t kh, int64_t kw) {
    WindowAttrs w;
    auto ks = attr_ints("kernel_shape", conv ? std::vector<int64_t>{kh, kw} : std::vector<int64_t>{});
    if (ks.size() != 2) nfail("kernel_shape " + shape_str(ks) + " not supported (only 2-D windows)");
    if (conv && (ks[0] != kh || ks[1] != kw))
        nfail("kernel_shape " + shape_str(ks) + " disagrees with the weights' " + shape_str({kh, kw}));
    auto strides = attr_ints("strides", {1, 1});
    auto pads = attr_ints("pads", {0, 0, 0, 0});
    auto dil = attr_ints("dilations", {1, 1});
    std::string auto_pad = attr_string("auto_pad", "NOTSET");
    if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
        nfail("auto_pad=" + auto_pad + " not supported (NOTSET with explicit pads, VALID, SAME_UPPER or SAME_LOWER)");
    if (auto_pad != "NOTSET") pads = {0, 0, 0, 0};  // SAME_*: resolved from the input extent (WindowAttrs)
    if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1)
        nfail("strides " + shape_str(strides) + " not supported (two values >= 1)");
    if (pads.size() != 4 || *std::min_element(pads.begin(), pads.end()) < 0)
        nfail("pads " + shape_str(pads) + " not supported (four values >= 0)");
    if (dil.size() != 2 || dil[0] < 1 || dil[1] < 1 || dil[0] > kMaxWindowAttr || dil[1] > kMaxWindowAttr)
        nfail("dilations " + shape_str(dil) + " not supported (two values >= 1)");
    if (!conv && dil != std::vector<int64_t>{1, 1})
        nfail("dilations " + shape_str(dil) + " not supported on pools (only 1; Conv takes any)");
    for (const auto *vals : {&ks, &strides, &pads})
        for (int64_t x : *vals)
            if (x < 0 || x > kMaxWindowAttr)
                nfail("window attribute " + std::to_string(x) + " (kernel_shape " + shape_str(ks) + ", strides " +
                      shape_str(strides) + ", pads " + shape_str(pads) + ") out of range 0.." +
                      std::to_string(kMaxWindowAttr));
    if (!conv) {
        int64_t ceil = attr_int("ceil_mode", 0);
        if (ceil != 0 && ceil != 1) nfail("ceil_mode=" + std::to_string(ceil) + " not supported (0 or 1)");
        w.ceil_mode = ceil == 1;
        int64_t so = attr_int("storage_order", 0);
        if (so != 0) nfail("storage_order=" + std::to_string(so) + " not supported (only 0)");
    }
    for (int64_t v : {ks[0], ks[1], strides[0], strides[1], pads[0], pads[1], pads[2], pads[3]})
        if (v > 1 << 16) nfail("window attribute value " + std::to_string(v) + " is out of range");
    w.kernel_h = int(ks[0]); w.kernel_w = int(ks[1]);
    w.stride_h = int(strides[0]); w.stride_w = int(strides[1]);
    // ONNX pads: [H_begin, W_begin, H_end, W_end].
    w.pad_top = int(pads[0]); w.pad_left = int(pads[1]);
    w.pad_bottom = int(pads[2]); w.pad_right = int(pads[3]);
    w.dilation_h = int(dil[0]); w.dilation_w = int(dil[1]);
    if (auto_pad == "SAME_UPPER") w.auto_pad = AutoPad::same_upper;
    if (auto_pad == "SAME_LOWER") w.auto_pad = AutoPad::same_lower;
    return w;
}

Tensor Importer::quant_const(const QConst &qc) {
    // Decoded in the context of the DequantizeLinear node that produced it.
    const onnx::NodeProto *user = node_;
    node_ = qc.node;
    auto restore = [&] { node_ = user; };
    try {
        auto dec = [&](const std::string &n) { return decode(n); };
        Tensor data = dec(qc.data);
        Tensor scale = dec(qc.scale);
        if (attr_int("block_size", 0) != 0)
            nfail("block_size=" + std::to_string(attr_int("block_size", 0)) + " " + kNoBlocks);
        if (data.dtype() == DType::f32)
            nfail("'" + qc.data + "' is " + data.describe() + "; DequantizeLinear reads integers");
        if (scale.dtype() != DType::f32 || scale.rank() > 1)
            nfail("scale '" + qc.scale + "' must be a float scalar or 1-D, is " + scale.describe() +
                  (scale.rank() > 1 ? std::string(" (a scale of rank > 1 is ") + kNoBlocks + ")" : ""));
        QuantParams q;
        q.scale.assign(scale.data<float>(), scale.data<float>() + scale.numel());
        for (float s : q.scale)
            if (!(s > 0.f) || !std::isfinite(s)) nfail("scale '" + qc.scale + "' has a non-positive or non-finite value");
        if (!qc.zp.empty()) {
            Tensor zp = dec(qc.zp);
            if (zp.dtype() != data.dtype() || zp.numel() != scale.numel())
                nfail("zero point '" + qc.zp + "' is " + zp.describe() + ", expected " + dtype_name(data.dtype()) +
                      " with " + std::to_string(scale.numel()) + " value(s)");
            for (int64_t i = 0; i < zp.numel(); i++) q.zero_point.push_back(int_at(zp, i));
        } else {
            q.zero_point.assign(q.scale.size(), 0);
        }
        if (scale.numel() > 1 || scale.rank() == 1) {
            int64_t axis = attr_int("axis", 1);
            if (scale.numel() > 1) {
                if (axis < 0) axis += data.rank();
                if (axis < 0 || axis >= data.rank() || data.dim(int(axis)) != scale.numel())
                    nfail("per-axis scale of " + std::to_string(scale.numel()) + " values does not match axis " +
                          std::to_string(attr_int("axis", 1)) + " of " + data.describe());
                q.axis = int(axis);
            }
        }
        if (q.scale.size() == 1) q.axis = -1;
        data.quant = q;
        restore();
        return data;
    } catch (...) {
        restore();
        throw;
    }
}

// Weights of Conv (rank 4, OIHW) or Dense (rank 2). kn_layout: the source is {K, N} (MatMul,
// Gemm transB=0) and is transposed into {N, K}.
Importer::Weights Importer::weights(int i, bool kn_layout, int rank) {
    const std::string &n = in_name(i);
    Weights r;
    if (qconsts_.count(n)) {
        r.w = quant_const(qconsts_.at(n));
        if (r.w.dtype() != DType::u8 && r.w.dtype() != DType::s8 && !is_4bit(r.w.dtype()))
            nfail("weights '" + n + "' are " + r.w.describe() + " (only uint8/int8/uint4/int4 quantized weights)");
        r.quantized = true;
    } else if (is_constant(n, "weights")) {
        r.w = constant(i, "weights");
        if (r.w.dtype() != DType::f32)
            nfail("weights '" + n + "' are " + r.w.describe() +
                  " without DequantizeLinear (float weights, or integer weights through DequantizeLinear)");
    } else if (acts_.count(n) || pending_.count(n)) {
        nfail("weights '" + n + "': only constant weights are supported, it " + not_constant(n));
    } else {
        undefined(n, "weights");
    }
    if (r.w.rank() != rank)
        nfail("weights '" + n + "' are " + r.w.describe() + ", expected rank " + std::to_string(rank));
    int out_axis = kn_layout ? 1 : 0;
    if (r.w.quant.axis >= 0 && r.w.quant.axis != out_axis)
        nfail("weights '" + n + "' are quantized per axis " + std::to_string(r.w.quant.axis) +
              "; only per tensor or per output channel (axis " + std::to_string(out_axis) + ")");
    if (kn_layout) r.w = transpose_kn(r.w);
    return r;
}

// Optional bias (input i) of Conv/Gemm: f32 {OC}, or (QDQ) int32 through DequantizeLinear with
// scale x_scale * w_scale[oc] and zero point 0, which becomes the s32 bias.
Tensor Importer::bias(int i, const Weights &w, const QuantParams &xq) {
    if (!has_in(i)) return {};
    const std::string &n = in_name(i);
    const int64_t oc = w.w.dim(0);
    Tensor b;
    if (qconsts_.count(n)) {
        b = quant_const(qconsts_.at(n));
        if (b.dtype() != DType::s32) nfail("bias '" + n + "' is " + b.describe() + " (quantized bias must be int32)");
        if (!w.quantized) nfail("bias '" + n + "' is quantized but the weights are float");
        if (xq.empty()) nfail("bias '" + n + "' is quantized but the input has no quantization (no QuantizeLinear/DequantizeLinear pair)");
        for (int64_t c = 0; c < b.numel() && c < oc; c++) {
            if (b.quant.zp_at(size_t(c)) != 0) nfail("bias '" + n + "' has a non-zero zero point");
            float want = xq.scale_at(0) * w.w.quant.scale_at(size_t(c));
            float got = b.quant.scale_at(b.quant.scale.size() == 1 ? 0 : size_t(c));
            if (std::fabs(got - want) > 4 * FLT_EPSILON * want)
                nfail("bias '" + n + "' scale " + std::to_string(got) + " at channel " + std::to_string(c) +
                      " is not input scale * weight scale = " + std::to_string(want) +
                      " (an s32 bias must be in units of x_scale * w_scale)");
        }
        b.quant = {};
    } else if (is_constant(n, "bias")) {
        b = constant(i, "bias");
        if (b.dtype() != DType::f32)
            nfail("bias '" + n + "' is " + b.describe() + " without DequantizeLinear (float bias, or int32 through DequantizeLinear)");
    } else if (acts_.count(n) || pending_.count(n)) {
        nfail("bias '" + n + "': only constant bias is supported, it " + not_constant(n));
    } else {
        undefined(n, "bias");
    }
    if (b.rank() != 1 || b.dim(0) != oc) nfail("bias '" + n + "' is " + b.describe() + ", expected " + std::to_string(oc) + " values");
    return b;
}

// ---- ops -------------------------------------------------------------------------------------

// The IR axis of a (non-negative) ONNX axis of a rank-`rank` tensor: rank 4 is NCHW stored NHWC
// (N 0 -> 0, C 1 -> 3, H 2 -> 1, W 3 -> 2); other ranks keep ONNX's order.
static int64_t nhwc_axis(int64_t a, int64_t rank) { return rank == 4 ? (a == 0 ? 0 : a == 1 ? 3 : a - 1) : a; }

// Conv's `group`: >= 1, dividing the output channels (the input's channel count, weights' I x
// group, is checked by the shape rule).
int Importer::conv_group(const Tensor &w) {
    const int64_t group = attr_int("group", 1);
    if (group < 1 || group > w.dim(0) || w.dim(0) % group != 0)
        nfail("group=" + std::to_string(group) + " must be >= 1 and divide the " + std::to_string(w.dim(0)) +
              " output channels of weights " + w.describe());
    return int(group);
}

void Importer::conv() {
    check_arity(2, 3);
    allow_attrs({"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
    const Act &x = float_act(0, "input");
    GraphNode n;
    n.op = OpKind::Conv;
    Weights w = weights(1, false, 4);
    n.window = window(true, w.w.dim(2), w.w.dim(3));
    n.group = conv_group(w.w);
    n.bias = bias(2, w, g_.values[x.v].quant);
    n.weights = w.w;
    n.inputs = {x.v};
    emit(std::move(n));
}

void Importer::qlinear_conv() {
    check_arity(8, 9);
    allow_attrs({"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
    read_quant_input(0, 1, 2, "input");
    const Act &x = act(0, "input");
    // Weights: integer constant, scale/zero point per tensor or per output channel.
    const Tensor &wc = constant(3, "weights");
    if ((wc.dtype() != DType::u8 && wc.dtype() != DType::s8) || wc.rank() != 4)
        nfail("weights '" + in_name(3) + "' are " + wc.describe() + ", expected uint8/int8 of rank 4");
    Weights w;
    w.w = wc;
    w.quantized = true;
    const int64_t oc = wc.dim(0);
    const Tensor &ws = constant(4, "weight scale");
    if (ws.dtype() != DType::f32 || ws.rank() > 1 || (ws.numel() != 1 && ws.numel() != oc))
        nfail("weight scale '" + in_name(4) + "' is " + ws.describe() + ", expected 1 or " + std::to_string(oc) + " floats");
    QuantParams wq;
    wq.scale.assign(ws.data<float>(), ws.data<float>() + ws.numel());
    for (float s : wq.scale)
        if (!(s > 0.f) || !std::isfinite(s)) nfail("weight scale '" + in_name(4) + "' has a non-positive or non-finite value");
    if (has_in(5)) {
        const Tensor &wz = constant(5, "weight zero point");
        if (wz.dtype() != wc.dtype() || wz.rank() > 1 || wz.numel() != ws.numel())
            nfail("weight zero point '" + in_name(5) + "' is " + wz.describe() + ", expected " + dtype_name(wc.dtype()) +
                  " with " + std::to_string(ws.numel()) + " value(s)");
        for (int64_t i = 0; i < wz.numel(); i++)
            wq.zero_point.push_back(wz.dtype() == DType::u8 ? wz.data<uint8_t>()[i] : wz.data<int8_t>()[i]);
    } else {
        wq.zero_point.assign(wq.scale.size(), 0);
    }
    wq.axis = ws.numel() > 1 ? 0 : -1;
    w.w.quant = wq;
    GraphNode n;
    n.op = OpKind::Conv;
    n.window = window(true, wc.dim(2), wc.dim(3));
    n.group = conv_group(wc);
    if (has_in(8)) n.bias = int32_bias(8, oc, "bias");
    n.weights = w.w;
    n.inputs = {x.v};
    emit_quantized(std::move(n), 6, 7);
}

void Importer::batchnorm() {
    check_arity(5, 5);
    allow_attrs({"epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs"});
    if (attr_int("training_mode", 0) != 0) nfail("training_mode=1 not supported (inference only)");
    only_first_output();
    if (attr_int("spatial", 1) != 1) nfail("spatial=0 not supported (only per-channel statistics)");
    const Act &x = float_act(0, "input");
    const auto &xs = shape_of(x);
    if (xs.size() != 4) nfail("input has shape " + shape_str(xs) + "; only rank 4 (NCHW)");
    const int64_t C = xs[3];
    const char *names[] = {"scale", "B", "mean", "var"};
    const float *p[4];
    Tensor params[4];
    for (int i = 0; i < 4; i++) {
        // A float constant, or (QDQ: ONNX Runtime's quantizer leaves an unfolded BatchNormalization
        // with quantized parameters) DequantizeLinear of an integer constant, dequantized here.
        const std::string &pn = in_name(i + 1);
        if (qconsts_.count(pn)) {
            const Tensor q = quant_const(qconsts_.at(pn));
            if (q.rank() != 1 || q.dim(0) != C || dtype_bits(q.dtype()) == 4 || q.dtype() == DType::f32)
                nfail(std::string(names[i]) + " '" + pn + "' is " + q.describe() + ", expected " + std::to_string(C) + " values");
            params[i] = Tensor(DType::f32, {C});
            for (int64_t c = 0; c < C; c++)
                params[i].data<float>()[c] = float(int_at(q, c) - q.quant.zp_at(size_t(c))) * q.quant.scale_at(size_t(c));
        } else {
            params[i] = constant(i + 1, names[i]);
        }
        const Tensor &t = params[i];
        if (t.dtype() != DType::f32 || t.rank() != 1 || t.dim(0) != C)
            nfail(std::string(names[i]) + " '" + pn + "' is " + t.describe() + ", expected " + std::to_string(C) + " floats");
        p[i] = t.data<float>();
    }
    const double eps = attr_float("epsilon", 1e-5f);
    GraphNode n;
    n.op = OpKind::BatchNorm;
    for (int64_t c = 0; c < C; c++) {
        if (!(double(p[3][c]) + eps > 0)) nfail("var + epsilon is not positive at channel " + std::to_string(c));
        // y = (x - mean) / sqrt(var + eps) * scale + B, combined in double, rounded once.
        double s = double(p[0][c]) / std::sqrt(double(p[3][c]) + eps);
        n.bn_scale.push_back(float(s));
        n.bn_shift.push_back(float(double(p[1][c]) - double(p[2][c]) * s));
    }
    n.inputs = {x.v};
    emit(std::move(n));
}

void Importer::relu() {
    check_arity(1, 1);
    allow_attrs({"consumed_inputs"});
    const Act &x = float_act(0, "input");
    GraphNode n;
    n.op = OpKind::Relu;
    n.inputs = {x.v};
    emit(std::move(n));
}

// Clip: bounds as attributes (opset < 11) or as optional constant scalar inputs (opset >= 11);
// a missing bound is no bound.
void Importer::clip() {
    check_arity(1, 3);
    allow_attrs({"min", "max"});
    const Act &x = float_act(0, "input");
    GraphNode n;
    n.op = OpKind::Clip;
    n.clip_min = attr_float("min", -INFINITY);
    n.clip_max = attr_float("max", INFINITY);
    for (int i : {1, 2}) {
        if (!has_in(i)) continue;
        const Tensor &b = constant(i, i == 1 ? "min" : "max");
        if (b.dtype() != DType::f32 || b.numel() != 1)
            nfail(std::string(i == 1 ? "min" : "max") + " '" + in_name(i) + "' is " + b.describe() +
                  ", expected one float");
        (i == 1 ? n.clip_min : n.clip_max) = b.data<float>()[0];
    }
    n.inputs = {x.v};
    emit(std::move(n));
}

void Importer::add() {
    check_arity(2, 2);
    allow_attrs({});
    if (fold_dynamic_add()) return;
    for (int i = 0; i < 2; i++) {
        const std::string &c = in_name(i);
        if (!consts_.count(c) && !qconsts_.count(c)) continue;
        // MatMul + constant bias -> the Dense's bias.
        const std::string &mm = in_name(1 - i);
        auto d = dense_no_bias_.find(mm);
        if (qconsts_.count(c) || d == dense_no_bias_.end() || readers_[mm].size() != 1 || graph_outputs_.count(mm))
            nfail("adding constant '" + c + "' is only supported as the bias of a MatMul whose output is read by this Add alone");
        GraphNode &dn = g_.nodes[d->second];
        const int64_t oc = dn.weights.dim(0);
        const Tensor &b = constant(i, "bias");
        bool shape_ok = (b.rank() == 1 && b.dim(0) == oc) || (b.rank() == 2 && b.dim(0) == 1 && b.dim(1) == oc);
        if (b.dtype() != DType::f32 || !shape_ok)
            nfail("bias '" + c + "' is " + b.describe() + ", expected f32 [" + std::to_string(oc) + "] or [1," + std::to_string(oc) + "]");
        Tensor bb(DType::f32, {oc});
        std::memcpy(bb.raw(), b.raw(), size_t(oc) * 4);
        dn.bias = bb;
        dense_no_bias_.erase(d);
        alias(acts_.at(mm));
        rename_[acts_.at(mm).v] = node_->output(0);
        return;
    }
    const Act &a = float_act(0, "input A"), &b = float_act(1, "input B");
    emit(add_node(a, b));
}

// A rank-4 operand is stored NHWC: a lower-rank one broadcast against it would align with the
// wrong dimensions unless it is a single value.
void Importer::check_broadcast(const Act &a, const Act &b) {
    const auto &sa = shape_of(a), &sb = shape_of(b);
    auto numel = [](const std::vector<int64_t> &v) {
        int64_t k = 1;
        for (auto d : v) k *= d;
        return k;
    };
    if (sa.size() != sb.size() && (sa.size() == 4 || sb.size() == 4) && numel(sa.size() == 4 ? sb : sa) != 1)
        nfail("broadcasting " + shape_str(sa.size() == 4 ? sb : sa) + " against a rank-4 (NCHW) operand is not "
              "supported (give both rank 4, or a single value)");
}

GraphNode Importer::add_node(const Act &a, const Act &b) {
    check_broadcast(a, b);
    GraphNode n;
    n.op = OpKind::Add;
    n.inputs = {a.v, b.v};
    return n;
}

void Importer::qlinear_add() {
    check_arity(7, 8);
    allow_attrs({});
    read_quant_input(0, 1, 2, "input A");
    read_quant_input(3, 4, 5, "input B");
    const Act &a = act(0, "input A"), &b = act(3, "input B");
    GraphNode n = add_node(a, b);
    emit_quantized(std::move(n), 6, 7);
}

void Importer::maxpool() {
    check_arity(1, 1);
    allow_attrs({"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "storage_order", "auto_pad"});
    only_first_output();
    const Act &x = act(0, "input");
    if (x.repr != DType::f32 && g_.values[x.v].quant.empty()) {
        // A plain uint8 graph input (e.g. ONNX's test_maxpool_2d_uint8): its real value is its
        // integer, i.e. scale 1, zero point 0, which is exact for MaxPool.
        if (!input_values_.count(x.v) || x.repr != DType::u8)
            nfail("input '" + in_name(0) + "' is " + dtype_name(x.repr) + " with no known scale/zero point" +
                  (x.repr == DType::u8 ? "" : " (such a graph input is read through DequantizeLinear)"));
        g_.values[x.v].quant = QuantParams::per_tensor(1.f, 0);
        g_.values[x.v].qtype = x.repr;
    }
    GraphNode n;
    n.op = OpKind::MaxPool;
    n.window = window(false, 0, 0);
    n.inputs = {x.v};
    QuantParams q = g_.values[x.v].quant;
    DType qt = g_.values[x.v].qtype;
    int v = emit(std::move(n), x.repr);
    if (x.repr != DType::f32) set_quant(v, q, qt);  // max commutes with dequantization
}

// Sigmoid, HardSigmoid (alpha, beta), HardSwish; QLinearSigmoid (com.microsoft) when qlinear.
void Importer::unary(OpKind k, bool qlinear) {
    if (qlinear) {
        check_arity(4, 5);
        allow_attrs({});
        read_quant_input(0, 1, 2, "input");
    } else {
        check_arity(1, 1);
        if (k == OpKind::HardSigmoid) allow_attrs({"alpha", "beta"});
        else allow_attrs({});
    }
    const Act &x = qlinear ? act(0, "input") : float_act(0, "input");
    GraphNode n;
    n.op = k;
    if (k == OpKind::HardSigmoid) {
        n.alpha = attr_float("alpha", 0.2f);
        n.beta = attr_float("beta", 0.5f);
    }
    n.inputs = {x.v};
    if (!qlinear) {
        emit(std::move(n));
        return;
    }
    emit_quantized(std::move(n), 3, 4);
}

// Mul (numpy broadcasting; the shape rule checks it); QLinearMul (com.microsoft) when qlinear.
void Importer::mul(bool qlinear) {
    GraphNode n;
    n.op = OpKind::Mul;
    if (!qlinear) {
        check_arity(2, 2);
        allow_attrs({});
        if (fold_dynamic_mul()) return;
        for (int i = 0; i < 2; i++)
            if (consts_.count(in_name(i)) || qconsts_.count(in_name(i)))
                nfail("multiplying by constant '" + in_name(i) + "' is not supported (both operands must be computed values)");
        n.inputs = {float_act(0, "input A").v, float_act(1, "input B").v};
        check_broadcast(act(0, "input A"), act(1, "input B"));
        emit(std::move(n));
        return;
    }
    check_arity(7, 8);
    allow_attrs({});
    read_quant_input(0, 1, 2, "input A");
    read_quant_input(3, 4, 5, "input B");
    n.inputs = {act(0, "input A").v, act(3, "input B").v};
    emit_quantized(std::move(n), 6, 7);
}

// Concat along any axis (rank 4: NCHW's axis mapped to NHWC's); QLinearConcat (com.microsoft:
// Y_scale, Y_zero_point, then (X, scale, zero point) per input) when qlinear.
void Importer::concat(bool qlinear) {
    allow_attrs({"axis"});
    const int64_t axis = attr_int("axis", 1);
    GraphNode n;
    n.op = OpKind::Concat;
    {
        const int first = qlinear ? 2 : 0;
        if (node_->input_size() <= first) nfail("needs at least one input");
        const int64_t r = int64_t(shape_of(act(first, "input 0")).size());
        if (axis < -r || axis >= r)
            nfail("axis=" + std::to_string(axis) + " out of range for rank " + std::to_string(r));
        n.axis = int(nhwc_axis(axis < 0 ? axis + r : axis, r));
    }
    if (!qlinear) {
        for (int i = 0; i < node_->input_size(); i++) n.inputs.push_back(float_act(i, "input " + std::to_string(i)).v);
        emit(std::move(n));
        return;
    }
    if (node_->input_size() < 5 || (node_->input_size() - 2) % 3 != 0)
        nfail("QLinearConcat needs Y_scale, Y_zero_point and (X, scale, zero point) triples, has " +
              std::to_string(node_->input_size()) + " inputs");
    for (int i = 2; i < node_->input_size(); i += 3) {
        read_quant_input(i, i + 1, i + 2, "input " + std::to_string((i - 2) / 3));
        n.inputs.push_back(act(i, "input " + std::to_string((i - 2) / 3)).v);
    }
    emit_quantized(std::move(n), 0, 1);
}

// GlobalMaxPool: rank 4 (NCHW) only; the output keeps the input's quantization (max commutes with it).
void Importer::global_maxpool() {
    check_arity(1, 1);
    allow_attrs({});
    const Act &x = act(0, "input");
    if (shape_of(x).size() != 4) nfail("input has rank " + std::to_string(shape_of(x).size()) + " (only 4: NCHW)");
    GraphNode n;
    n.op = OpKind::GlobalMaxPool;
    n.inputs = {x.v};
    QuantParams q = g_.values[x.v].quant;
    DType qt = g_.values[x.v].qtype;
    if (x.repr != DType::f32 && q.empty()) nfail("input '" + in_name(0) + "' is integer with no known scale/zero point");
    int v = emit(std::move(n), x.repr);
    if (x.repr != DType::f32) set_quant(v, q, qt);
}

// Softmax: opset >= 13 along `axis` (default -1); before, over axes axis..rank-1 (default 1). On
// a rank-4 (NCHW) input the axis maps to NHWC; opset < 13 then needs axis 0 or 1 (the same
// trailing set in both layouts). Float only: in a quantized model it is a float island.
void Importer::softmax() {
    check_arity(1, 1);
    allow_attrs({"axis"});
    const Act &x = float_act(0, "input");
    const int64_t r = int64_t(shape_of(x).size());
    const bool to_end = opset_ < 13;
    int64_t axis = attr_int("axis", to_end ? 1 : -1);
    if (axis < -r || axis >= r) nfail("axis=" + std::to_string(axis) + " out of range for rank " + std::to_string(r));
    if (axis < 0) axis += r;
    GraphNode n;
    n.op = OpKind::Softmax;
    n.softmax_to_end = to_end && axis < r - 1;
    if (r == 4 && n.softmax_to_end && axis > 1)
        nfail("axis=" + std::to_string(axis) + " (opset " + std::to_string(opset_) +
              ": over axes axis..3 together) not supported on NCHW input (only 0 or 1)");
    // (over axes 0..3 or 1..3: the same set in NHWC, starting at the same axis)
    n.axis = int(n.softmax_to_end ? axis : nhwc_axis(axis, r));
    n.inputs = {x.v};
    if (!g_.values[x.v].quant.empty()) n.precision = LayerPrecision::fp32;  // a float island
    emit(std::move(n));
}

// AveragePool (opset 7-22: ceil_mode, count_include_pad, auto_pad; dilations 1); QLinearAveragePool
// (com.microsoft: X, x_scale, x_zero_point, y_scale, y_zero_point; NCHW) when qlinear.
void Importer::avgpool(bool qlinear) {
    if (qlinear) {
        check_arity(4, 5);
        allow_attrs({"kernel_shape", "strides", "pads", "ceil_mode", "count_include_pad", "auto_pad", "channels_last"});
        const int64_t cl = attr_int("channels_last", 0);
        if (cl != 0) nfail("channels_last=" + std::to_string(cl) + " not supported (only 0: NCHW)");
        read_quant_input(0, 1, 2, "input");
    } else {
        check_arity(1, 1);
        allow_attrs({"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "count_include_pad", "auto_pad"});
    }
    const Act &x = qlinear ? act(0, "input") : float_act(0, "input");
    GraphNode n;
    n.op = OpKind::AvgPool;
    n.window = window(false, 0, 0);
    const int64_t inc = attr_int("count_include_pad", 0);
    if (inc != 0 && inc != 1) nfail("count_include_pad=" + std::to_string(inc) + " not supported (0 or 1)");
    n.count_include_pad = inc == 1;
    n.inputs = {x.v};
    if (!qlinear) {
        emit(std::move(n));
        return;
    }
    emit_quantized(std::move(n), 3, 4);
}

void Importer::global_avgpool(bool qlinear) {
    if (qlinear) {
        check_arity(5, 5);
        allow_attrs({"channels_last"});
        int64_t cl = attr_int("channels_last", 0);
        if (cl != 0) nfail("channels_last=" + std::to_string(cl) + " not supported (only 0: NCHW)");
        read_quant_input(0, 1, 2, "input");
    } else {
        check_arity(1, 1);
        allow_attrs({});
    }
    const Act &x = qlinear ? act(0, "input") : float_act(0, "input");
    GraphNode n;
    n.op = OpKind::GlobalAvgPool;
    n.inputs = {x.v};
    if (!qlinear) {
        emit(std::move(n));
        return;
    }
    emit_quantized(std::move(n), 3, 4);
}

// Flatten(axis=1), or Reshape to {N,-1} / {0,-1} / {N,C}: {N,1,1,C} -> {N,C}. Works on float
// and quantized tensors alike (the quant carries over).
void Importer::flatten(bool reshape) {
    if (reshape && consts_.count(in_name(0))) {  // Reshape of a constant: a constant (a bias reshaped to {1,C,1,1})
        check_arity(2, 2);
        allow_attrs({"allowzero"});
        const Tensor &t = decode(in_name(0));
        const Tensor &s = constant(1, "shape");
        if (s.dtype() != DType::s32 || s.rank() != 1)
            nfail("shape '" + in_name(1) + "' must be a 1-D int64 constant, is " + s.describe());
        std::vector<int64_t> dims(s.data<int32_t>(), s.data<int32_t>() + s.numel());
        int64_t known = 1, infer = -1;
        for (size_t i = 0; i < dims.size(); i++) {
            if (dims[i] == 0 && attr_int("allowzero", 0) == 0) {
                if (i >= size_t(t.rank())) nfail("shape " + shape_str(dims) + ": 0 copies a dimension " + t.describe() + " lacks");
                dims[i] = t.dim(int(i));
            }
            if (dims[i] == -1 && infer < 0) infer = int64_t(i);
            else if (dims[i] < 0) nfail("shape " + shape_str(dims) + " is not a valid Reshape target");
            else known *= dims[i];
        }
        if (infer >= 0 && known > 0) dims[size_t(infer)] = t.numel() / known;
        int64_t total = 1;
        for (int64_t d : dims) total *= d;
        if (total != t.numel()) nfail("cannot reshape constant " + t.describe() + " to " + shape_str(dims));
        TP r = *consts_.at(in_name(0));  // same elements in the same order, new dims
        r.clear_dims();
        for (int64_t d : dims) r.add_dims(d);
        const std::string &out = node_->output(0);
        if (acts_.count(out) || consts_.count(out) || pending_.count(out)) nfail("output '" + out + "' is assigned twice");
        owned_consts_[out] = std::move(r);
        consts_[out] = &owned_consts_.at(out);
        return;
    }
    const Act &x = act(0, "input");
    const auto &xs = shape_of(x);
    if (xs.size() != 4 && xs.size() != 2) nfail("input has shape " + shape_str(xs) + "; only rank 4 (NCHW) or 2");
    const int64_t N = xs[0], K = xs.size() == 4 ? xs[1] * xs[2] * xs[3] : xs[1];
    if (reshape) {
        check_arity(2, 2);
        allow_attrs({"allowzero"});
        if (attr_int("allowzero", 0) != 0) nfail("allowzero=1 not supported");
        const Tensor &s = constant(1, "shape");
        if (s.dtype() != DType::s32 || s.rank() != 1)
            nfail("shape '" + in_name(1) + "' must be a 1-D int64 constant, is " + s.describe());
        std::vector<int64_t> t(s.data<int32_t>(), s.data<int32_t>() + s.numel());
        bool ok = t.size() == 2 && (t[0] == 0 || t[0] == N || (t[0] == -1 && t[1] == K)) && (t[1] == -1 || t[1] == K);
        if (!ok)
            nfail("reshape to " + shape_str(t) + " not supported (only {N,-1}, {0,-1} or {N,C*H*W}: a flatten)");
    } else {
        check_arity(1, 1);
        allow_attrs({"axis"});
        int64_t axis = attr_int("axis", 1), ax = axis < 0 ? axis + int64_t(xs.size()) : axis;
        if (ax != 1) nfail("axis=" + std::to_string(axis) + " not supported (only 1)");
    }
    if (xs.size() == 2) {  // already {N, K}
        alias(x);
        return;
    }
    GraphNode n;
    n.op = OpKind::Flatten;
    n.inputs = {x.v};
    QuantParams q = g_.values[x.v].quant;
    DType qt = g_.values[x.v].qtype;
    int v = emit(std::move(n), x.repr);
    view_input_[v] = x.v;  // (annotate: a QuantizeLinear after it quantizes its input too)
    // A flatten is a view: its values are its input's, and so is their quantization, also for a
    // dequantized (QDQ) input that no Q follows (DQ -> Flatten -> Gemm with a quantized bias).
    if (x.repr != DType::f32 || !q.empty()) set_quant(v, q, qt);
}

void Importer::gemm() {
    check_arity(2, 3);
    allow_attrs({"alpha", "beta", "transA", "transB", "broadcast"});
    // alpha scales the weights (float weights, or the scales of quantized ones), beta the float
    // bias: Y = A (alpha B) + beta C, which differs from alpha (A B) + beta C by float rounding only.
    float alpha = attr_float("alpha", 1.f), beta = attr_float("beta", 1.f);
    if (!std::isfinite(alpha) || !std::isfinite(beta)) nfail("alpha and beta must be finite");
    if (attr_int("transA", 0) != 0) nfail("transA=1 not supported (only 0: A is the {N, K} activation)");
    const int64_t transB = attr_int("transB", 0);
    const Act &x = float_act(0, "input A");
    GraphNode n;
    n.op = OpKind::Dense;
    Weights w = weights(1, transB == 0, 2);
    const int64_t oc = w.w.dim(0);
    if (has_in(2) && is_constant(in_name(2), "C")) {
        // Plain float C: {N}, {1,N}, or a single value broadcast to {N} (exact).
        const Tensor &c = constant(2, "C");
        if (c.dtype() != DType::f32) nfail("C '" + in_name(2) + "' is " + c.describe() + " (float, or int32 through DequantizeLinear)");
        bool row = (c.rank() == 1 && c.dim(0) == oc) || (c.rank() == 2 && c.dim(0) == 1 && c.dim(1) == oc);
        if (!row && c.numel() != 1)
            nfail("C '" + in_name(2) + "' is " + c.describe() + "; only a bias per output ([" + std::to_string(oc) +
                  "], [1," + std::to_string(oc) + "] or one value)");
        n.bias = Tensor(DType::f32, {oc});
        for (int64_t j = 0; j < oc; j++) n.bias.data<float>()[j] = beta * c.data<float>()[row ? j : 0];
    } else {
        n.bias = bias(2, w, g_.values[x.v].quant);
        if (n.bias.rank() > 0 && beta != 1.f)
            nfail("beta=" + std::to_string(beta) + " with a quantized C is not supported (only 1)");
    }
    if (alpha != 1.f) {
        if (w.w.dtype() == DType::f32) {
            Tensor scaled(DType::f32, w.w.shape());
            for (int64_t i = 0; i < w.w.numel(); i++) scaled.data<float>()[i] = alpha * w.w.data<float>()[i];
            w.w = scaled;
        } else {
            if (!(alpha > 0.f)) nfail("alpha=" + std::to_string(alpha) + " with quantized weights must be positive");
            if (n.bias.dtype() == DType::s32) nfail("alpha=" + std::to_string(alpha) + " with a quantized C is not supported");
            for (float &sc : w.w.quant.scale) sc *= alpha;
        }
    }
    n.weights = w.w;
    n.inputs = {x.v};
    emit(std::move(n));
}

// com.microsoft QGemm: A (u8/s8) x B (integer constant) + C (int32) -> quantized or float Y.
void Importer::qgemm() {
    check_arity(6, 9);
    allow_attrs({"alpha", "transA", "transB"});
    if (attr_float("alpha", 1.f) != 1.f) nfail("alpha != 1 not supported");
    if (attr_int("transA", 0) != 0) nfail("transA=1 not supported (only 0)");
    const int64_t transB = attr_int("transB", 0);
    read_quant_input(0, 1, 2, "input A");
    const Act &x = act(0, "input A");
    const Tensor &bc = constant(3, "B");
    if ((bc.dtype() != DType::u8 && bc.dtype() != DType::s8) || bc.rank() != 2)
        nfail("B '" + in_name(3) + "' is " + bc.describe() + ", expected uint8/int8 of rank 2");
    const int64_t oc = transB ? bc.dim(0) : bc.dim(1);
    const Tensor &bs = constant(4, "B scale");
    if (bs.dtype() != DType::f32 || bs.rank() > 1 || (bs.numel() != 1 && bs.numel() != oc))
        nfail("B scale '" + in_name(4) + "' is " + bs.describe() + ", expected 1 or " + std::to_string(oc) + " floats");
    QuantParams wq;
    wq.scale.assign(bs.data<float>(), bs.data<float>() + bs.numel());
    for (float s : wq.scale)
        if (!(s > 0.f) || !std::isfinite(s)) nfail("B scale has a non-positive or non-finite value");
    if (has_in(5)) {
        const Tensor &bz = constant(5, "B zero point");
        if (bz.dtype() != bc.dtype() || bz.numel() != bs.numel())
            nfail("B zero point '" + in_name(5) + "' is " + bz.describe() + ", expected " + dtype_name(bc.dtype()) +
                  " with " + std::to_string(bs.numel()) + " value(s)");
        for (int64_t i = 0; i < bz.numel(); i++)
            wq.zero_point.push_back(bz.dtype() == DType::u8 ? bz.data<uint8_t>()[i] : bz.data<int8_t>()[i]);
    } else {
        wq.zero_point.assign(wq.scale.size(), 0);
    }
    wq.axis = bs.numel() > 1 ? (transB ? 0 : 1) : -1;
    Weights w;
    w.w = bc;
    w.w.quant = wq;
    if (!transB) w.w = transpose_kn(w.w);
    w.quantized = true;
    GraphNode n;
    n.op = OpKind::Dense;
    if (has_in(6)) n.bias = int32_bias(6, oc, "C");
    n.weights = w.w;
    n.inputs = {x.v};
    if (!has_in(7)) {  // float output
        emit(std::move(n));
        return;
    }
    emit_quantized(std::move(n), 7, 8);
}

void Importer::matmul(bool qlinear) {
    GraphNode n;
    n.op = OpKind::Dense;
    if (!qlinear) {
        check_arity(2, 2);
        allow_attrs({});
        const Act &x = float_act(0, "input A");
        Weights w = weights(1, true, 2);
            n.weights = w.w;
        n.inputs = {x.v};
        emit(std::move(n));
        dense_no_bias_[node_->output(0)] = int(g_.nodes.size()) - 1;
        return;
    }
    // QLinearMatMul: a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp; b {K,N} constant.
    check_arity(8, 8);
    allow_attrs({});
    read_quant_input(0, 1, 2, "input A");
    const Act &x = act(0, "input A");
    const Tensor &bc = constant(3, "B");
    if ((bc.dtype() != DType::u8 && bc.dtype() != DType::s8) || bc.rank() != 2)
        nfail("B '" + in_name(3) + "' is " + bc.describe() + ", expected uint8/int8 of rank 2");
    const int64_t oc = bc.dim(1);
    const Tensor &bs = constant(4, "B scale");
    if (bs.dtype() != DType::f32 || bs.rank() > 1 || (bs.numel() != 1 && bs.numel() != oc))
        nfail("B scale '" + in_name(4) + "' is " + bs.describe() + ", expected 1 or " + std::to_string(oc) + " floats");
    const Tensor &bz = constant(5, "B zero point");
    if (bz.dtype() != bc.dtype() || bz.numel() != bs.numel())
        nfail("B zero point '" + in_name(5) + "' is " + bz.describe() + ", expected " + dtype_name(bc.dtype()) +
              " with " + std::to_string(bs.numel()) + " value(s)");
    QuantParams wq;
    wq.scale.assign(bs.data<float>(), bs.data<float>() + bs.numel());
    for (float s : wq.scale)
        if (!(s > 0.f) || !std::isfinite(s)) nfail("B scale has a non-positive or non-finite value");
    for (int64_t i = 0; i < bz.numel(); i++)
        wq.zero_point.push_back(bz.dtype() == DType::u8 ? bz.data<uint8_t>()[i] : bz.data<int8_t>()[i]);
    wq.axis = bs.numel() > 1 ? 1 : -1;  // per column of B {K, N}
    Tensor w = bc;
    w.quant = wq;
    w = transpose_kn(w);
    n.weights = w;
    n.inputs = {x.v};
    emit_quantized(std::move(n), 6, 7);
}

void Importer::identity(bool dropout) {
    if (dropout) {
        check_arity(1, 3);
        allow_attrs({"ratio", "seed", "is_test", "consumed_inputs"});
        only_first_output();
        if (has_in(2)) {
            const Tensor &t = constant(2, "training_mode");
            bool on = t.numel() != 1 || static_cast<const uint8_t *>(t.raw())[0] != 0;
            if (on) nfail("training_mode must be a constant false (inference only)");
        }
    } else {
        check_arity(1, 1);
        allow_attrs({});
    }
    const std::string &in = in_name(0);
    if (consts_.count(in)) {
        if (dropout) nfail("Dropout of a constant is not supported");
        consts_[node_->output(0)] = consts_.at(in);
        return;
    }
    alias(act(0, "input"));
}

void Importer::constant_node() {
    check_arity(0, 0);
    allow_attrs({"value"});
    const auto *a = attr("value");
    if (!a || a->type() != onnx::AttributeProto::TENSOR) nfail("only the 'value' (tensor) form is supported");
    const std::string &out = node_->output(0);
    if (acts_.count(out) || consts_.count(out) || pending_.count(out)) nfail("output '" + out + "' is assigned twice");
    consts_[out] = &a->t();
}


Importer::QdqParams Importer::qdq_params(const std::vector<int64_t> &xs, bool quantize) {
    QdqParams r;
    const int64_t bs = attr_int("block_size", 0);
    if (bs != 0) nfail("block_size=" + std::to_string(bs) + " " + kNoBlocks);
    const Tensor &s = constant(1, "scale");
    if (s.dtype() != DType::f32)
        nfail("scale '" + in_name(1) + "' is " + s.describe() + " (FLOAT scales only)");
    if (s.rank() > 1) nfail("scale '" + in_name(1) + "' is " + s.describe() + ": a scale of rank > 1 is " + kNoBlocks);
    if (s.numel() < 1) nfail("scale '" + in_name(1) + "' is empty");
    r.q.scale.assign(s.data<float>(), s.data<float>() + s.numel());
    for (float v : r.q.scale)
        if (!(v > 0.f) || !std::isfinite(v))
            nfail("scale '" + in_name(1) + "' has the value " + std::to_string(v) + " (must be finite and positive)");
    // Q's output_dtype (opset 21): the integer type when there is no zero point; equal to it else.
    DType out = DType::u8;
    const int64_t od = quantize ? attr_int("output_dtype", 0) : 0;
    if (od != 0) {
        switch (od) {
        case TP::UINT8: out = DType::u8; break;
        case TP::INT8: out = DType::s8; break;
        case kOnnxUint4: out = DType::u4; break;
        case kOnnxInt4: out = DType::s4; break;
        default:
            nfail("output_dtype " + onnx_type_name(int(od)) + " (" + std::to_string(od) +
                  ") not supported (UINT8, INT8, UINT4, INT4)");
        }
    }
    r.type = out;
    if (has_in(2)) {
        const Tensor &z = constant(2, "zero point");
        if (z.dtype() != DType::u8 && z.dtype() != DType::s8 && !is_4bit(z.dtype()))
            nfail("zero point '" + in_name(2) + "' is " + z.describe() + " (UINT8, INT8, UINT4 or INT4)");
        if (z.numel() != s.numel())
            nfail("zero point '" + in_name(2) + "' is " + z.describe() + ", expected " + std::to_string(s.numel()) +
                  " value(s) like the scale");
        if (od != 0 && z.dtype() != out)
            nfail("output_dtype " + onnx_type_name(int(od)) + " disagrees with the zero point '" + in_name(2) + "' (" +
                  z.describe() + ")");
        r.type = z.dtype();
        for (int64_t i = 0; i < z.numel(); i++) r.q.zero_point.push_back(int_at(z, i));
    } else {
        r.q.zero_point.assign(r.q.scale.size(), 0);
    }
    if (r.q.scale.size() > 1) {
        const int64_t rank = int64_t(xs.size());
        int64_t a = attr_int("axis", 1);
        const int64_t given = a;
        if (a < 0) a += rank;
        if (a < 0 || a >= rank) nfail("axis " + std::to_string(given) + " is out of range for rank " + std::to_string(rank));
        const int64_t ir = nhwc_axis(a, rank);
        if (xs[size_t(ir)] != int64_t(r.q.scale.size()))
            nfail("per-axis scale of " + std::to_string(r.q.scale.size()) + " values does not match axis " +
                  std::to_string(given) + " of the input (" + std::to_string(xs[size_t(ir)]) + " elements)");
        r.q.axis = int(ir);
    }
    return r;
}

void Importer::quantize() {
    check_arity(2, 3);
    allow_attrs({"axis", "saturate", "block_size", "output_dtype", "precision"});
    if (attr_int("saturate", 1) != 1) nfail("saturate=0 not supported (it only applies to float8 outputs)");
    const int64_t prec = attr_int("precision", 0);
    if (prec != 0 && prec != TP::FLOAT)
        nfail("precision " + onnx_type_name(int(prec)) + " not supported (computed in FLOAT)");
    const std::string &in = in_name(0), &out = node_->output(0);
    if (consts_.count(in)) nfail("quantizing the constant '" + in + "' is not supported (store integer weights with DequantizeLinear)");
    const Act &x = float_act(0, "input");
    QdqParams p = qdq_params(shape_of(x), true);
    const bool is_input = input_values_.count(x.v) > 0, to_output = graph_outputs_.count(out) > 0;
    // Folded into the value's quant where the IR can say it (per tensor; not the graph input
    // itself as an output; integers other than uint8 do not leave the graph that way); else a node.
    std::string why;
    if (p.q.scale.size() > 1) why = "per-axis scale";
    else if (to_output && is_input) why = "quantizes a graph input into a graph output";
    else if (to_output && p.type != DType::u8) why = std::string(dtype_name(p.type)) + " graph output";
    if (!why.empty()) {
        for (int r : readers_[out]) {
            const auto &rn = m_.graph().node(r);
            if (rn.op_type() != "DequantizeLinear" || !is_std_domain(rn.domain()))
                nfail("output '" + out + "' (a QuantizeLinear of its own: " + why + ") is read by node '" + rn.name() +
                      "' (" + rn.op_type() + "); only DequantizeLinear or the graph output may read it");
        }
        GraphNode n;
        n.op = OpKind::QuantizeLinear;
        n.q_type = p.type;
        n.q_params = p.q;
        n.inputs = {x.v};
        real_q_.insert(emit(std::move(n), p.type));
        return;
    }
    // The float tensor is replaced by its quantized form: nothing else may read it as float.
    if (graph_outputs_.count(in)) nfail("'" + in + "' is quantized and also a graph output (the IR has one representation per value)");
    for (int r : readers_[in]) {
        const auto &rn = m_.graph().node(r);
        if (rn.op_type() != "QuantizeLinear" || !is_std_domain(rn.domain()))
            nfail("'" + in + "' is quantized here and also read as float by node '" + rn.name() + "' (" + rn.op_type() +
                  "); the IR has one representation per value");
    }
    annotate(x.v, p.q, p.type, "input");
    alias({x.v, p.type});
}

void Importer::dequantize() {
    check_arity(2, 3);
    allow_attrs({"axis", "block_size", "output_dtype"});
    const int64_t bs = attr_int("block_size", 0);
    if (bs != 0) nfail("block_size=" + std::to_string(bs) + " " + kNoBlocks);
    const int64_t od = attr_int("output_dtype", 0);
    if (od != 0 && od != TP::FLOAT) nfail("output_dtype " + onnx_type_name(int(od)) + " not supported (only FLOAT)");
    const std::string &in = in_name(0), &out = node_->output(0);
    if (consts_.count(in)) {
        // Quantized constant: resolved when a Conv / Gemm / MatMul reads it.
        for (int i = 1; i < 3; i++)
            if (has_in(i) && !is_constant(in_name(i), i == 1 ? "scale" : "zero point"))
                nfail("scale / zero point '" + in_name(i) + "' of a constant must be constants");
        if (acts_.count(out) || consts_.count(out) || qconsts_.count(out) || pending_.count(out))
            nfail("output '" + out + "' is assigned twice");
        QConst qc;
        qc.node = node_;
        qc.data = in;
        qc.scale = in_name(1);
        if (has_in(2)) qc.zp = in_name(2);
        quant_const(qc);  // check now: errors at load time, naming this node
        qconsts_[out] = qc;
        return;
    }
    const Act &x = quant_act(0, "input");
    // A node of its own where the IR cannot hold the integers as a value's quant: those of a
    // QuantizeLinear node, a graph input given as int8 / 4-bit integers or dequantized per axis
    // or straight into a graph output.
    const bool int_input = input_values_.count(x.v) && g_.values[x.v].dtype != DType::f32;
    QdqParams p = qdq_params(shape_of(x), false);
    if (p.type != x.repr && has_in(2))
        nfail("zero point '" + in_name(2) + "' is " + dtype_name(p.type) + " but '" + in + "' is " + dtype_name(x.repr));
    p.type = x.repr;
    if (real_q_.count(x.v) || (int_input && (x.repr != DType::u8 || p.q.scale.size() > 1 || graph_outputs_.count(out)))) {
        GraphNode n;
        n.op = OpKind::DequantizeLinear;
        n.q_type = p.type;
        n.q_params = p.q;
        n.inputs = {x.v};
        emit(std::move(n));
        return;
    }
    if (p.q.scale.size() > 1)
        nfail("per-axis dequantization of an activation is only supported on a graph input or a QuantizeLinear of "
              "its own (scale is " + std::to_string(p.q.scale.size()) + " values)");
    read_quant_input(0, 1, 2, "input", true);
    if (!input_values_.count(x.v) && !rename_.count(x.v)) rename_[x.v] = out;  // consumers read this name
    alias({x.v, DType::f32});
}

}  // namespace qh::onnx_detail

// ---- dynamic quantization (quantize_dynamic's form; GraphNode::dynamic) ------------------------

namespace qh::onnx_detail {

// DynamicQuantizeLinear creates no node: its outputs are recorded against the float value x,
// and the ConvInteger / MatMulInteger reading them becomes a dynamic node that quantizes x per
// run itself.
void Importer::dynamic_quantize() {
    check_arity(1, 1);
    allow_attrs({});
    const Act &x = float_act(0, "input");
    const auto &outs = node_->output();
    for (int i = 0; i < outs.size(); i++)
        if (graph_outputs_.count(outs[i]))
            nfail("output '" + outs[i] + "' is a graph output; DynamicQuantizeLinear is supported only feeding "
                  "ConvInteger / MatMulInteger (and its scale the Mul after them), as quantize_dynamic writes it");
    if (outs.size() != 3) nfail("expects 3 outputs (y, y_scale, y_zero_point), has " + std::to_string(outs.size()));
    dyn_q_[outs[0]] = x.v;
    dyn_scale_[outs[1]] = x.v;
    dyn_zp_[outs[2]] = x.v;
}

// ConvInteger (conv) / MatMulInteger: x_q and its zero point from one DynamicQuantizeLinear,
// constant uint8/int8 weights with an optional zero point (per tensor, or per output channel /
// per column of B). The IR node's output is float(acc) until a Cast, Mul and Add fold in.
void Importer::integer_op(bool conv) {
    check_arity(2, 4);
    if (conv) allow_attrs({"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
    else allow_attrs({});
    const std::string &xn = in_name(0);
    auto xq = dyn_q_.find(xn);
    // Either x_q of a DynamicQuantizeLinear with its zero point (dynamic), or uint8 integers
    // with a constant zero point (the exact int32 result as the output).
    const bool dynamic = xq != dyn_q_.end();
    int x = -1;
    if (dynamic) {
        x = xq->second;
        if (!has_in(2) || dyn_zp_.count(in_name(2)) == 0 || dyn_zp_.at(in_name(2)) != x)
            nfail("the input zero point must be the y_zero_point of the DynamicQuantizeLinear that produces '" + xn + "'");
    } else {
        const Act &a = act(0, "input");
        if (a.repr != DType::u8)
            nfail("input '" + xn + "' is " + dtype_name(a.repr) + (a.repr == DType::f32 ? " (float)" : "") +
                  "; supported: uint8 integers with a constant zero point, or the output of a DynamicQuantizeLinear");
        DType zt = DType::u8;
        const int32_t zx = const_zp(2, "input zero point", zt);
        if (zt != DType::u8) nfail("input zero point '" + in_name(2) + "' is " + dtype_name(zt) + ", the input uint8");
        annotate(a.v, QuantParams::per_tensor(1.f, zx), DType::u8, "input");
        x = a.v;
    }
    const Tensor &wc = constant(1, conv ? "weights" : "B");
    if ((wc.dtype() != DType::u8 && wc.dtype() != DType::s8) || wc.rank() != (conv ? 4 : 2))
        nfail(std::string(conv ? "weights" : "B") + " '" + in_name(1) + "' is " + wc.describe() + ", expected uint8/int8 of rank " +
              (conv ? "4" : "2"));
    const int64_t oc = wc.dim(conv ? 0 : 1);
    QuantParams wq;
    if (has_in(3)) {
        const Tensor &wz = constant(3, "weight zero point");
        if (wz.dtype() != wc.dtype() || wz.rank() > 1 || (wz.numel() != 1 && wz.numel() != oc))
            nfail("weight zero point '" + in_name(3) + "' is " + wz.describe() + ", expected " + dtype_name(wc.dtype()) +
                  " with 1 or " + std::to_string(oc) + " values");
        for (int64_t i = 0; i < wz.numel(); i++) wq.zero_point.push_back(int_at(wz, i));
    } else {
        wq.zero_point = {0};
    }
    wq.scale.assign(wq.zero_point.size(), 1.f);
    wq.axis = wq.zero_point.size() > 1 ? (conv ? 0 : 1) : -1;
    Tensor w = wc;
    w.quant = wq;
    GraphNode n;
    if (conv) {
        n.op = OpKind::Conv;
        n.window = window(true, w.dim(2), w.dim(3));
        n.group = conv_group(w);
    } else {
        n.op = OpKind::Dense;
        w = transpose_kn(w);
    }
    n.weights = w;
    n.inputs = {x};
    if (!dynamic) {
        n.int32_output = true;
        const int v = emit(std::move(n), DType::s32);
        int32_out_.insert(v);
        return;
    }
    n.dynamic = GraphNode::Dynamic::acc_f32;
    n.precision = LayerPrecision::fp32;  // float in, float out: a float island in an int8 model
    const int v = emit(std::move(n), DType::s32);
    dyn_node_[v] = int(g_.nodes.size()) - 1;
}

// Cast: only the int32 result of ConvInteger / MatMulInteger to float (the node's output is
// that float already).
void Importer::cast() {
    check_arity(1, 1);
    allow_attrs({"to", "saturate"});
    const std::string &in = in_name(0);
    auto a = acts_.find(in);
    if (a == acts_.end() || a->second.repr != DType::s32 || attr_int("to", 0) != TP::FLOAT || !dyn_node_.count(a->second.v))
        nfail("Cast is supported only from the int32 result of a dynamically quantized ConvInteger / MatMulInteger to "
              "FLOAT (to=" +
              std::string(onnx_type_name(int(attr_int("to", 0)))) + ")");
    alias(Act{a->second.v, DType::f32});
}

GraphNode *Importer::dynamic_node_of(int input, GraphNode::Dynamic stage) {
    const std::string &n = in_name(input);
    auto a = acts_.find(n);
    if (a == acts_.end() || a->second.repr != DType::f32) return nullptr;
    auto d = dyn_node_.find(a->second.v);
    if (d == dyn_node_.end() || readers_[n].size() != 1 || graph_outputs_.count(n)) return nullptr;
    GraphNode &node = g_.nodes[d->second];
    return node.dynamic == stage && node.bias.rank() == 0 ? &node : nullptr;
}

// Mul(x_scale, w_scale) records the scale product; Mul(float(acc), that product) folds it into
// the dynamic node (float(acc) * (x_scale * w_scale[oc])).
bool Importer::fold_dynamic_mul() {
    for (int i = 0; i < 2; i++) {
        const std::string &a = in_name(i), &b = in_name(1 - i);
        auto sx = dyn_scale_.find(a);
        if (sx != dyn_scale_.end()) {
            const Tensor &ws = constant(1 - i, "weight scale");
            if (ws.dtype() != DType::f32 || ws.rank() > 1)
                nfail("weight scale '" + b + "' is " + ws.describe() + ", expected a float scalar or vector");
            DynScale d;
            d.x = sx->second;
            d.ws.assign(ws.data<float>(), ws.data<float>() + ws.numel());
            dyn_prod_[node_->output(0)] = d;
            return true;
        }
        auto pr = dyn_prod_.find(a);
        if (pr == dyn_prod_.end()) continue;
        GraphNode *n = dynamic_node_of(1 - i, GraphNode::Dynamic::acc_f32);
        if (!n || n->inputs[0] != pr->second.x)
            nfail("the scale product '" + a + "' must multiply the Cast of a ConvInteger / MatMulInteger of the same "
                  "DynamicQuantizeLinear, read by this Mul alone");
        const int64_t oc = n->weights.dim(0);
        const std::vector<float> &ws = pr->second.ws;
        if (ws.size() != 1 && int64_t(ws.size()) != oc)
            nfail("weight scale has " + std::to_string(ws.size()) + " values, expected 1 or " + std::to_string(oc));
        n->dynamic = GraphNode::Dynamic::scaled;
        n->weights.quant.scale = ws;
        if (ws.size() > 1) n->weights.quant.axis = 0;  // (Dense weights are {OC, K} already)
        const Act r = acts_.at(b);
        alias(r);
        rename_[r.v] = node_->output(0);
        return true;
    }
    return false;
}

// Add(scaled result, constant bias {OC} / {1,OC} / {1,OC,1,1}) folds the bias in.
bool Importer::fold_dynamic_add() {
    for (int i = 0; i < 2; i++) {
        const std::string &c = in_name(i);
        if (!consts_.count(c) && !(pending_.count(c) && opt_.input_values.count(c))) continue;
        GraphNode *n = dynamic_node_of(1 - i, GraphNode::Dynamic::scaled);
        if (!n) return false;
        const int64_t oc = n->weights.dim(0);
        const Tensor &b = constant(i, "bias");
        if (b.dtype() != DType::f32 || b.numel() != oc || b.dim(b.rank() > 1 ? 1 : 0) != oc)
            nfail("bias '" + c + "' is " + b.describe() + ", expected f32 with " + std::to_string(oc) +
                  " values along the channel axis");
        Tensor bb(DType::f32, {oc});
        std::memcpy(bb.raw(), b.raw(), size_t(oc) * 4);
        n->bias = bb;
        const Act r = acts_.at(in_name(1 - i));
        alias(r);
        rename_[r.v] = node_->output(0);
        return true;
    }
    return false;
}

}  // namespace qh::onnx_detail

namespace qh::onnx_detail {

// Pad: opset 2-10 (pads and value attributes) and 11+ (pads, constant_value, axes inputs); any
// rank, ONNX axes mapped to the IR layout. On quantized integers (QOperator) the constant is an
// integer of the same type, stored as its real value.
void Importer::pad() {
    allow_attrs({"mode", "pads", "value"});
    GraphNode n;
    n.op = OpKind::Pad;
    const std::string mode = attr_string("mode", "constant");
    if (mode == "constant") n.pad_mode = GraphNode::PadMode::constant;
    else if (mode == "reflect") n.pad_mode = GraphNode::PadMode::reflect;
    else if (mode == "edge") n.pad_mode = GraphNode::PadMode::edge;
    else if (mode == "wrap") n.pad_mode = GraphNode::PadMode::wrap;
    else nfail("mode '" + mode + "' not supported (supported: constant, reflect, edge, wrap)");
    const Act &x = act(0, "input");
    const int64_t rank = int64_t(shape_of(x).size());
    std::vector<int64_t> pads, axes;
    const Tensor *cv = nullptr;
    float value = 0.f;
    if (opset_ < 11) {
        check_arity(1, 1);
        pads = attr_ints("pads", {});
        value = attr_float("value", 0.f);
    } else {
        check_arity(1, 4);
        const Tensor &pt = constant(1, "pads");
        if (pt.dtype() != DType::s32 || pt.rank() != 1) nfail("pads '" + in_name(1) + "' must be a 1-D int64 constant, is " + pt.describe());
        pads.assign(pt.data<int32_t>(), pt.data<int32_t>() + pt.numel());
        if (has_in(2)) cv = &constant(2, "constant_value");
        if (has_in(3)) {
            const Tensor &at = constant(3, "axes");
            if (at.dtype() != DType::s32 || at.rank() != 1) nfail("axes '" + in_name(3) + "' must be a 1-D int constant, is " + at.describe());
            axes.assign(at.data<int32_t>(), at.data<int32_t>() + at.numel());
        }
    }
    if (axes.empty())
        for (int64_t a = 0; a < rank; a++) axes.push_back(a);
    if (pads.size() != 2 * axes.size())
        nfail("pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * axes.size()) +
              " (begin and end for each of " + std::to_string(axes.size()) + " axes)");
    n.pad_begin.assign(size_t(rank), 0);
    n.pad_end.assign(size_t(rank), 0);
    std::set<int64_t> seen;
    for (size_t i = 0; i < axes.size(); i++) {
        const int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
        if (a < 0 || a >= rank || !seen.insert(a).second)
            nfail("axis " + std::to_string(axes[i]) + " is out of range or repeated for a rank-" + std::to_string(rank) + " input");
        const int64_t ir = nhwc_axis(a, rank);
        n.pad_begin[size_t(ir)] = pads[i];
        n.pad_end[size_t(ir)] = pads[i + axes.size()];
    }
    const QuantParams xq = g_.values[x.v].quant;
    const DType xt = g_.values[x.v].qtype;
    if (cv) {
        if (cv->numel() != 1) nfail("constant_value '" + in_name(2) + "' must be one value, is " + cv->describe());
        if (x.repr == DType::f32) {
            if (cv->dtype() != DType::f32)
                nfail("constant_value '" + in_name(2) + "' is " + cv->describe() + "; the input is float");
            value = cv->data<float>()[0];
        } else {
            if (cv->dtype() != x.repr)
                nfail("constant_value '" + in_name(2) + "' is " + cv->describe() + "; the input is " + dtype_name(x.repr) + " integers");
            if (xq.empty()) nfail("the input's quantization is not known here");
            value = float(int_at(*cv, 0) - xq.zp_at(0)) * xq.scale_at(0);
        }
    } else if (x.repr != DType::f32) {
        if (xq.empty()) nfail("the input's quantization is not known here");
        value = float(0 - xq.zp_at(0)) * xq.scale_at(0);  // integer 0, as ONNX pads integers
    }
    if (!std::isfinite(value)) nfail("constant_value must be finite");
    n.pad_value = value;
    n.inputs = {x.v};
    const int v = emit(std::move(n), x.repr);
    if (x.repr != DType::f32) set_quant(v, xq, xt);
    else view_input_[v] = x.v;  // (annotate: a QuantizeLinear after it quantizes its input too)
}

}  // namespace qh::onnx_detail
