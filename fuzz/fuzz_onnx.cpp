// libFuzzer target: the ONNX importer + Model::prepare + execute. The input is a serialized
// onnx::ModelProto. It is imported (qh::import_onnx_bytes) and prepared at batch 1 with 1 thread,
// int8 first; a model that int8 refuses (a float model without quantization) runs on the fp32
// path, and when it has one input it is also calibrated on that input and prepared + run as int8.
// Every prepared model executes once on deterministic inputs (unless its declared work is over
// kMaxOps, to keep one input well under the -timeout), and its outputs are read.
// std::exception from any step is the expected way to refuse; only crashes, sanitizer reports,
// timeouts and out-of-memory are findings (scripts/fuzz.sh, fuzz/README.md).
#include <cstring>
#include <exception>
#include <memory>

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

// prepare + one execute; returns the prepared model (nullptr when prepare refused).
std::unique_ptr<qh::Model> run(const qh::Graph &g, qh::Precision precision) {
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
    double ops = 0;
    for (auto &l : m->layers()) ops += l.ops;
    if (ops > kMaxOps) return m;
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
    std::unique_ptr<qh::Model> f = run(g, qh::Precision::fp32);
    if (!f || f->num_inputs() != 1 || g.inputs.size() != 1) return 0;
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
