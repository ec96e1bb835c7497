// qhalide-run: run a supported ONNX model on given inputs, write every graph output as .npy.
// Inputs and outputs use ONNX's layout (NCHW for images); qhalide runs NHWC inside. Every --input
// is also offered to the importer (ImportOptions::input_values): a graph input that the model
// reads where only a constant is supported (weights, scales, zero points, ...) becomes a constant,
// so ONNX conformance models, which take those as inputs, run as they are.
#include <CLI/CLI.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/npy.h"
#include "kernels.h"
#include "model.h"
#include "onnx_import.h"

using namespace qh;

namespace {

// Rank-4 transpose: output dim d is input dim perm[d]; other ranks are returned unchanged.
Tensor permute4(const Tensor &t, const std::array<int, 4> &perm) {
    if (t.rank() != 4) return t;
    std::array<int64_t, 4> in{t.dim(0), t.dim(1), t.dim(2), t.dim(3)}, in_stride{}, out_dims{};
    in_stride[3] = 1;
    for (int d = 2; d >= 0; d--) in_stride[d] = in_stride[d + 1] * in[d + 1];
    for (int d = 0; d < 4; d++) out_dims[d] = in[perm[d]];
    Tensor r(t.dtype(), {out_dims[0], out_dims[1], out_dims[2], out_dims[3]}, t.quant);
    const size_t e = dtype_storage_bytes(t.dtype(), 1);
    const auto *s = static_cast<const uint8_t *>(t.raw());
    auto *o = static_cast<uint8_t *>(r.raw());
    size_t k = 0;
    for (int64_t a = 0; a < out_dims[0]; a++)
        for (int64_t b = 0; b < out_dims[1]; b++)
            for (int64_t c = 0; c < out_dims[2]; c++)
                for (int64_t d = 0; d < out_dims[3]; d++, k++) {
                    int64_t src = a * in_stride[perm[0]] + b * in_stride[perm[1]] + c * in_stride[perm[2]] +
                                  d * in_stride[perm[3]];
                    std::memcpy(o + k * e, s + src * e, e);
                }
    return r;
}

Tensor nchw_to_nhwc(const Tensor &t) { return permute4(t, {0, 2, 3, 1}); }
Tensor nhwc_to_nchw(const Tensor &t) { return permute4(t, {0, 3, 1, 2}); }

bool is_pb(const std::string &path) { return path.size() > 3 && path.substr(path.size() - 3) == ".pb"; }

Tensor load_any(const std::string &path) {
    if (is_pb(path)) return load_tensor_pb(path);
    return io::load_npy(path);
}

// "NAME=FILE", or "FILE.pb" named by the TensorProto's name field (ONNX test data carry it). An
// argument that is an existing file is a FILE, even if its path contains '='.
std::pair<std::string, Tensor> load_named(const std::string &opt, const std::string &arg) {
    auto eq = arg.find('=');
    if (eq != std::string::npos && !std::filesystem::is_regular_file(arg)) {
        if (eq == 0) throw std::runtime_error(opt + " '" + arg + "': empty NAME in NAME=FILE");
        return {arg.substr(0, eq), load_any(arg.substr(eq + 1))};
    }
    if (!is_pb(arg))
        throw std::runtime_error(opt + " '" + arg + "': expected NAME=FILE (only an ONNX TensorProto .pb file carries its own name)");
    std::string name;
    Tensor t = load_tensor_pb(arg, &name);
    if (name.empty())
        throw std::runtime_error(opt + " '" + arg + "': the TensorProto has no name; use " + opt + " NAME=" + arg);
    return {name, t};
}

}  // namespace

int main(int argc, char **argv) {
    std::string model, out_dir = ".", precision = "auto", target;
    std::vector<std::string> inputs, calib, expects;
    int threads = 0;
    CLI::App app{"qhalide-run: run an ONNX model (float, QDQ or QOperator) on inputs given as .npy or\n"
                 "ONNX TensorProto .pb files (ONNX layout, NCHW) and write every graph output as .npy."};
    app.add_option("model", model, "MODEL.onnx")->required()->check(CLI::ExistingFile);
    app.add_option("--input", inputs,
                   "NAME=FILE (.npy or .pb), or FILE.pb named by its TensorProto name; one per graph input. "
                   "A given input that the model reads where only a constant is supported (weights, bias, "
                   "scales, zero points, Reshape shape) is folded in as that constant")
        ->required();
    app.add_option("--output-dir", out_dir, "where OUTPUT_NAME.npy files go")->capture_default_str();
    app.add_option("--precision", precision,
                   "auto (int8 when the model is quantized, else fp32), int8 (float models are calibrated "
                   "on --calib inputs), fp32")
        ->check(CLI::IsMember({"auto", "int8", "fp32"}))->capture_default_str();
    app.add_option("--calib", calib, "calibration inputs (.npy/.pb, ONNX layout) for --precision int8 on a float model");
    app.add_option("--threads", threads, "threads (0: all cores)")->capture_default_str();
    app.add_option("--expect", expects,
                   "NAME=FILE (.npy or .pb), or FILE.pb named by its TensorProto name: compare that output "
                   "bit for bit (conformance runs); exit 2 on a mismatch");
    app.add_option("--target", target,
                   "force a CPU kernel variant (generic, x86_avx2, x86_avx512vnni, ...), or cuda: run the int8 "
                   "model on the GPU (tensor-core cuda_mma convs when built, cuda_dp4a kernels for the rest)");
    CLI11_PARSE(app, argc, argv);
    try {
        const Device device = target == "cuda" ? Device::cuda : Device::cpu;
        if (!target.empty() && device == Device::cpu) force_target(target);
        ImportOptions opts;  // ONNX layout, as in the files
        for (const auto &arg : inputs) {
            auto [name, t] = load_named("--input", arg);
            if (opts.input_values.count(name)) throw std::runtime_error("--input '" + arg + "': '" + name + "' is given twice");
            opts.input_values[name] = t;
        }
        Graph g = import_onnx(model, opts);
        bool quantized = !g.values[g.inputs[0]].quant.empty();
        Precision p = precision == "fp32" ? Precision::fp32
                      : precision == "int8" ? Precision::int8
                                            : (quantized ? Precision::int8 : Precision::fp32);
        std::map<std::string, Tensor> given;  // the runtime inputs, NHWC
        for (int i : g.inputs) {
            auto it = opts.input_values.find(g.values[i].name);
            if (it == opts.input_values.end())
                throw std::runtime_error("no --input for graph input '" + g.values[i].name + "'");
            given[it->first] = nchw_to_nhwc(it->second);
        }
        if (p == Precision::int8 && !quantized) {
            if (calib.empty())
                throw std::runtime_error("model '" + model + "' is float: --precision int8 needs --calib inputs");
            std::vector<Tensor> samples;
            for (const auto &f : calib) samples.push_back(nchw_to_nhwc(load_any(f)));
            CalibrationOptions co;
            co.threads = threads;
            co.progress = [](int d, int t) { std::fprintf(stderr, "\rcalibrating %d/%d%s", d, t, d == t ? "\n" : ""); };
            calibrate(g, samples, co);
        }
        int batch = 1;
        for (int i : g.inputs) batch = int(given.at(g.values[i].name).dim(0));
        PrepareOptions po;
        po.batch = batch;
        po.threads = threads;
        po.precision = p;
        po.device = device;
        auto m = Model::prepare(g, po);
        for (int i = 0; i < m->num_inputs(); i++) {
            const Tensor &src = given.at(m->input_name(i));
            Tensor &dst = m->input(i);
            if (src.shape() != dst.shape() || src.dtype() != dst.dtype())
                throw std::runtime_error("input '" + m->input_name(i) + "' is " + src.describe() + " (NHWC), model wants " +
                                         dst.describe());
            std::memcpy(dst.raw(), src.raw(), src.nbytes());
        }
        m->execute();
        std::filesystem::create_directories(out_dir);
        for (int i = 0; i < m->num_outputs(); i++) {
            std::string name = m->output_name(i);
            for (char &c : name)
                if (c == '/' || c == ':') c = '_';
            std::string path = out_dir + "/" + name + ".npy";
            io::save_npy(path, nhwc_to_nchw(m->output(i)));
            std::printf("%s %s -> %s\n", m->output_name(i).c_str(), m->output(i).describe().c_str(), path.c_str());
        }
        int mismatches = 0;
        for (const auto &arg : expects) {
            auto [name, want] = load_named("--expect", arg);
            int k = -1;
            for (int i = 0; i < m->num_outputs(); i++)
                if (m->output_name(i) == name) k = i;
            if (k < 0) throw std::runtime_error("--expect '" + arg + "': the model has no output '" + name + "'");
            Tensor got = nhwc_to_nchw(m->output(k));
            bool same = got.dtype() == want.dtype() && got.shape() == want.shape() &&
                        std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0;
            std::printf("%s: %s (got %s, expected %s)\n", name.c_str(), same ? "bit-exact" : "MISMATCH",
                        got.describe().c_str(), want.describe().c_str());
            mismatches += !same;
        }
        return mismatches ? 2 : 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "qhalide-run: error: %s\n", e.what());
        return 1;
    }
}
