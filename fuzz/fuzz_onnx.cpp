// libFuzzer target: the ONNX importer + Model::prepare + execute. The input is a serialized
// onnx::ModelProto. It is imported (qh::import_onnx_bytes) and prepared at batch 1 with 1 thread,
// int8 first; a model that int8 refuses (a float model without quantization) runs on the fp32
// path, and when it has one input it is also calibrated on that input and prepared + run as int8.
// Every prepared model executes once on deterministic inputs (unless its declared work, plus
// window x bytes for pooling, is over kMaxOps, to keep one input well under the -timeout),
// and its outputs are read. A prepared model whose arena + inputs + outputs are over the memory
// budget is a finding (resource_limits.h promises none is).
// std::exception from any step is the expected way to refuse; only crashes, sanitizer reports,
// timeouts and out-of-memory are findings (scripts/fuzz.sh, fuzz/README.md).
//
// Structure-aware mutation: most byte-level mutations of a protobuf only exercise the parser, so
// half of the mutations parse the input as an onnx::ModelProto and change one thing in the model
// (a dimension, an attribute value, an op type, a node's input wiring, an initializer's dims,
// type or values, a node removed or duplicated) before serializing it again; the other half,
// and inputs that do not parse, get libFuzzer's byte mutations.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <random>

#include "fuzz_util.h"
#include "resource_limits.h"
#include "model.h"
#include "onnx_import.h"

namespace {

constexpr double kMaxOps = 2e8;  // per execute: ~0.1-1 s on the generic kernels under ASan

void fill(qh::Tensor &t, uint32_t seed) {
    if (!t.raw()) return;
    uint32_t s = seed * 2654435761u + 1;
    auto next = [&] { return s = s * 1664525u + 1013904223u; };
    const int64_t n = t.numel();
    switch (t.dtype()) {
    case qh::DType::f32:
        for (int64_t i = 0; i < n; i++) t.data<float>()[i] = float(int32_t(next() >> 16) % 601 - 300) / 100.f;
        break;
    default: {
        auto *b = static_cast<uint8_t *>(t.raw());
        for (size_t i = 0; i < t.nbytes(); i++) b[i] = uint8_t(next() >> 24);
    }
    }
}

// prepare + one execute; returns the prepared model (nullptr when prepare refused). *cheap says
// whether it was small enough to execute (calibration runs it again).
std::unique_ptr<qh::Model> run(const qh::Graph &g, qh::Precision precision, bool *cheap = nullptr) {
    if (cheap) *cheap = false;
    qh::PrepareOptions opt;
    opt.batch = 1;
    opt.threads = 1;
    opt.precision = precision;
    std::unique_ptr<qh::Model> m;
    try {
        m = qh::Model::prepare(g, opt);
    } catch (const std::exception &) {
        return nullptr;
    }
    // resource_limits.h: no prepared model's memory (arena + owned tensors) exceeds the budget.
    double bytes = double(m->arena_bytes());
    for (int i = 0; i < m->num_inputs(); i++) bytes += double(m->input(i).nbytes());
    for (int i = 0; i < m->num_outputs(); i++) bytes += double(m->output(i).nbytes());
    if (bytes > double(qh::memory_budget()))
        qh::fuzz::fail("prepare accepted a model with " + std::to_string(int64_t(bytes)) +
                       " bytes of arena + inputs + outputs, over the memory budget of " +
                       std::to_string(qh::memory_budget()));
    double ops = 0;
    for (auto &l : m->layers()) ops += l.ops;
    // Pooling counts no arithmetic in LayerInfo::ops; bound its work by window x bytes.
    int64_t window = 1;
    for (auto &n : g.nodes)
        if (n.op == qh::OpKind::MaxPool) window = std::max<int64_t>(window, int64_t(n.window.kernel_h) * n.window.kernel_w);
    ops += double(window) * bytes;
    if (ops > kMaxOps) return m;
    if (cheap) *cheap = true;
    for (int i = 0; i < m->num_inputs(); i++) fill(m->input(i), uint32_t(i));
    try {
        m->execute();
    } catch (const std::exception &) {
        return m;
    }
    volatile uint8_t sink = 0;
    for (int i = 0; i < m->num_outputs(); i++) {
        const qh::Tensor &t = m->output(i);
        if (!t.raw()) continue;
        const auto *b = static_cast<const uint8_t *>(t.raw());
        for (size_t k = 0; k < t.nbytes(); k++) sink = sink ^ b[k];
    }
    (void)sink;
    return m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    qh::set_memory_budget(size_t(256) << 20);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qh::Graph g;
    try {
        g = qh::import_onnx_bytes(std::string(reinterpret_cast<const char *>(data), size), "fuzz");
    } catch (const std::exception &) {
        return 0;
    }
    if (run(g, qh::Precision::int8)) return 0;
    bool cheap = false;
    std::unique_ptr<qh::Model> f = run(g, qh::Precision::fp32, &cheap);
    if (!f || !cheap || f->num_inputs() != 1 || g.inputs.size() != 1) return 0;
    // A float model: calibrate on the input the fp32 run used, then int8.
    try {
        qh::Tensor sample(f->input(0).dtype(), f->input(0).shape());
        if (sample.nbytes()) std::memcpy(sample.raw(), f->input(0).raw(), sample.nbytes());
        f.reset();
        qh::CalibrationOptions copt;
        copt.threads = 1;
        qh::calibrate(g, {sample}, copt);
    } catch (const std::exception &) {
        return 0;
    }
    run(g, qh::Precision::int8);
    return 0;
}

// ---- structure-aware mutator ------------------------------------------------------------------

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

namespace {

using Rng = std::mt19937;

int64_t interesting_int(Rng &r) {
    static const int64_t v[] = {0, 1, 2, 3, 4, 7, 8, 16, 64, 255, 256, -1, -2, 65535, 65536,
                                (int64_t(1) << 31) - 1, int64_t(1) << 31, (int64_t(1) << 32) + 1,
                                std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
    if (r() % 3 == 0) return int64_t(r() % 20);
    return v[r() % (sizeof v / sizeof v[0])];
}

float interesting_float(Rng &r) {
    static const float v[] = {0.f, -0.f, 1.f, -1.f, 0.5f, 1e-30f, 1e30f, 1e-45f, 3.4e38f, -3.4e38f,
                              std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), 255.f, 127.5f};
    return v[r() % (sizeof v / sizeof v[0])];
}

const char *const kOps[] = {"Conv", "BatchNormalization", "Relu", "Add", "MaxPool", "GlobalAveragePool",
                            "Flatten", "Reshape", "Gemm", "MatMul", "Identity", "Dropout", "Constant",
                            "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                            "QLinearAdd", "QLinearGlobalAveragePool", "QGemm"};
const char *const kAttrs[] = {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad", "axis",
                              "transA", "transB", "alpha", "beta", "epsilon", "channels_last"};

void mutate_model(onnx::ModelProto &m, Rng &r) {
    onnx::GraphProto *g = m.mutable_graph();
    std::vector<std::string> names;
    for (auto &i : g->input()) names.push_back(i.name());
    for (auto &t : g->initializer()) names.push_back(t.name());
    for (auto &n : g->node())
        for (auto &o : n.output()) names.push_back(o);
    switch (r() % 12) {
    case 0: case 1: {  // a graph input's dimension
        if (g->input_size() == 0) break;
        auto *sh = g->mutable_input(r() % g->input_size())->mutable_type()->mutable_tensor_type()->mutable_shape();
        if (sh->dim_size() == 0 || r() % 8 == 0) { sh->add_dim()->set_dim_value(interesting_int(r)); break; }
        auto *d = sh->mutable_dim(r() % sh->dim_size());
        if (r() % 8 == 0) d->set_dim_param("N");
        else d->set_dim_value(interesting_int(r));
        break;
    }
    case 2: case 3: {  // an attribute value, or a new attribute
        if (g->node_size() == 0) break;
        auto *n = g->mutable_node(r() % g->node_size());
        if (n->attribute_size() == 0 || r() % 4 == 0) {
            auto *a = n->add_attribute();
            a->set_name(kAttrs[r() % (sizeof kAttrs / sizeof kAttrs[0])]);
            if (r() % 2) {
                a->set_type(onnx::AttributeProto::INTS);
                for (int k = 0, e = int(r() % 5); k < e; k++) a->add_ints(interesting_int(r));
            } else {
                a->set_type(onnx::AttributeProto::INT);
                a->set_i(interesting_int(r));
            }
            break;
        }
        auto *a = n->mutable_attribute(r() % n->attribute_size());
        if (a->ints_size() && r() % 4) a->set_ints(r() % a->ints_size(), interesting_int(r));
        else if (a->ints_size()) a->add_ints(interesting_int(r));
        else if (a->type() == onnx::AttributeProto::FLOAT) a->set_f(interesting_float(r));
        else a->set_i(interesting_int(r));
        break;
    }
    case 4: {  // an op type
        if (g->node_size() == 0) break;
        auto *n = g->mutable_node(r() % g->node_size());
        n->set_op_type(kOps[r() % (sizeof kOps / sizeof kOps[0])]);
        if (r() % 3 == 0) n->set_domain(r() % 2 ? "com.microsoft" : "");
        break;
    }
    case 5: case 6: {  // a node's input wiring
        if (g->node_size() == 0 || names.empty()) break;
        auto *n = g->mutable_node(r() % g->node_size());
        const std::string &v = names[r() % names.size()];
        if (n->input_size() && r() % 3) n->set_input(r() % n->input_size(), v);
        else if (r() % 2) n->add_input(v);
        else if (n->input_size()) n->mutable_input()->RemoveLast();
        break;
    }
    case 7: case 8: {  // an initializer's values, dims or type
        if (g->initializer_size() == 0) break;
        auto *t = g->mutable_initializer(r() % g->initializer_size());
        switch (r() % 5) {
        case 0:
            if (t->float_data_size()) t->set_float_data(r() % t->float_data_size(), interesting_float(r));
            else if (t->int32_data_size()) t->set_int32_data(r() % t->int32_data_size(), int32_t(interesting_int(r)));
            else if (t->int64_data_size()) t->set_int64_data(r() % t->int64_data_size(), interesting_int(r));
            else if (!t->raw_data().empty()) {
                std::string raw = t->raw_data();
                if (r() % 2) {
                    float f = interesting_float(r);
                    size_t at = (r() % raw.size()) & ~size_t(3);
                    if (at + 4 <= raw.size()) std::memcpy(&raw[at], &f, 4);
                } else {
                    raw[r() % raw.size()] = char(r());
                }
                t->set_raw_data(raw);
            }
            break;
        case 1:
            if (t->dims_size()) t->set_dims(r() % t->dims_size(), interesting_int(r));
            else t->add_dims(interesting_int(r));
            break;
        case 2: t->add_dims(interesting_int(r) & 7); break;
        case 3: t->set_data_type(int(r() % 17)); break;
        default:
            if (!t->raw_data().empty()) t->set_raw_data(t->raw_data().substr(0, r() % t->raw_data().size()));
            else if (t->float_data_size()) t->mutable_float_data()->RemoveLast();
        }
        break;
    }
    case 9: {  // remove or duplicate a node
        if (g->node_size() == 0) break;
        int i = int(r() % g->node_size());
        if (r() % 2) {
            g->mutable_node()->DeleteSubrange(i, 1);
        } else {
            onnx::NodeProto copy = g->node(i);
            for (auto &o : *copy.mutable_output()) o += "_dup";
            if (r() % 2 && copy.input_size()) copy.set_input(0, g->node(i).output_size() ? g->node(i).output(0) : "x");
            *g->add_node() = copy;
        }
        break;
    }
    case 10: {  // graph outputs: element type, or an intermediate value as an output
        if (g->output_size() && r() % 2) {
            g->mutable_output(r() % g->output_size())->mutable_type()->mutable_tensor_type()->set_elem_type(int(r() % 17));
        } else if (!names.empty()) {
            auto *o = g->add_output();
            o->set_name(names[r() % names.size()]);
            o->mutable_type()->mutable_tensor_type()->set_elem_type(1);
        }
        break;
    }
    default: {  // input element type, opset version
        if (r() % 2 && g->input_size())
            g->mutable_input(r() % g->input_size())->mutable_type()->mutable_tensor_type()->set_elem_type(int(r() % 17));
        else if (m.opset_import_size())
            m.mutable_opset_import(0)->set_version(int64_t(r() % 22));
    }
    }
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
    Rng r(seed);
    onnx::ModelProto m;
    if (r() % 2 == 0 || !m.ParseFromArray(data, int(size))) return LLVMFuzzerMutate(data, size, max_size);
    for (int k = 0, n = 1 + int(r() % 3); k < n; k++) mutate_model(m, r);
    std::string s;
    if (!m.SerializeToString(&s) || s.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
    std::memcpy(data, s.data(), s.size());
    return s.size();
}
