// qhalide-run: run a supported ONNX model on given inputs, write every graph output as .npy.
// Inputs and outputs use ONNX's layout (NCHW for images), as Model::input / output do. Every --input
// is also offered to the importer (ImportOptions::input_values): a graph input that the model
// reads where only a constant is supported (weights, scales, zero points, ...) becomes a constant,
// so ONNX conformance models, which take those as inputs, run as they are.
#include <CLI/CLI.hpp>

#include <array>
#include <cctype>
#include <cstdio>
#include <cmath>
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
#include "resource_limits.h"

using namespace qh;

namespace {

// 4-bit tensors (u4 / s4, two per byte, element 2i in the low nibble) as one value per byte
// (u8 / s8), and back with a range check: .npy has no 4-bit type.
int nibble(const uint8_t *b, int64_t i, bool is_signed) {
    int v = (b[i / 2] >> (4 * (i & 1))) & 15;
    return is_signed && v > 7 ? v - 16 : v;
}

Tensor unpack4(const Tensor &t) {
    if (dtype_bits(t.dtype()) != 4) return t;
    const bool sg = t.dtype() == DType::s4;
    Tensor r(sg ? DType::s8 : DType::u8, t.shape(), t.quant);
    const auto *b = static_cast<const uint8_t *>(t.raw());
    for (int64_t i = 0, n = t.numel(); i < n; i++) r.data<int8_t>()[i] = int8_t(nibble(b, i, sg));
    return r;
}

Tensor pack4(const Tensor &t, DType to, const std::string &file) {
    const bool sg = to == DType::s4;
    Tensor r(to, t.shape(), t.quant);
    auto *o = static_cast<uint8_t *>(r.raw());
    for (int64_t i = 0, n = t.numel(); i < n; i++) {
        int v = sg ? int(t.data<int8_t>()[i]) : int(t.data<uint8_t>()[i]);
        if (v < (sg ? -8 : 0) || v > (sg ? 7 : 15))
            throw std::runtime_error("'" + printable(file) + "': value " + std::to_string(v) + " at element " +
                                     std::to_string(i) + " does not fit " + dtype_name(to));
        o[i / 2] |= uint8_t((v & 15) << (4 * (i & 1)));
    }
    return r;
}

// The tensor for graph input `v` (id `id`) from `t`, loaded from `file`, in the layout the model
// declares (NCHW for images; Model::input converts). The dtype, the rank and every dim but the
// batch must be what the graph declares (dims > 0, the batch free), so prepare() never sees a
// shape the model cannot take.
Tensor checked_input(const Tensor &t, const Graph &g, int id, const std::string &file) {
    const GraphValue &v = g.values[id];
    const std::vector<int64_t> onnx = g.io_shape(id);
    std::string declared = std::string(dtype_name(v.dtype)) + "[N";
    for (size_t i = 1; i < onnx.size(); i++) declared += "," + std::to_string(onnx[i]);
    declared += "]";
    // A 4-bit input may come as one value per byte (.npy has no 4-bit type).
    const bool widened = (v.dtype == DType::u4 && t.dtype() == DType::u8) || (v.dtype == DType::s4 && t.dtype() == DType::s8);
    bool ok = (t.dtype() == v.dtype || widened) && size_t(t.rank()) == onnx.size() && t.rank() >= 1 && t.dim(0) >= 1;
    for (size_t i = 1; ok && i < onnx.size(); i++) ok = t.dim(int(i)) == onnx[i];
    if (!ok)
        throw std::runtime_error("'" + printable(file) + "' is " + t.describe() + " (rank " + std::to_string(t.rank()) +
                                 "), graph input '" + printable(v.name) + "' expects " + declared + " (rank " +
                                 std::to_string(onnx.size()) + ", ONNX layout, N >= 1)");
    checked_numel(t.shape(), "'" + printable(file) + "'");
    return widened ? pack4(t, v.dtype, file) : t;
}

bool is_pb(const std::string &path) { return path.size() > 3 && path.substr(path.size() - 3) == ".pb"; }

Tensor load_any(const std::string &path) {
    if (is_pb(path)) return load_tensor_pb(path);
    return io::load_npy(path);
}

// "NAME=FILE", or "FILE.pb" named by the TensorProto's name field (ONNX test data carry it). An
// argument that is an existing file is a FILE, even if its path contains '='.
struct Named {
    std::string name, file;
    Tensor t;
};

Named load_named(const std::string &opt, const std::string &arg) {
    const std::string a = printable(arg);
    auto eq = arg.find('=');
    if (eq != std::string::npos && !std::filesystem::is_regular_file(arg)) {
        if (eq == 0) throw std::runtime_error(opt + " '" + a + "': empty NAME in NAME=FILE");
        return {arg.substr(0, eq), arg.substr(eq + 1), load_any(arg.substr(eq + 1))};
    }
    if (!is_pb(arg))
        throw std::runtime_error(opt + " '" + a + "': expected NAME=FILE (only an ONNX TensorProto .pb file carries its own name)");
    std::string name;
    Tensor t = load_tensor_pb(arg, &name);
    if (name.empty())
        throw std::runtime_error(opt + " '" + a + "': the TensorProto has no name; use " + opt + " NAME=" + a);
    return {name, arg, t};
}

// A graph output name as a file name: anything but [A-Za-z0-9._-] becomes '_' (no directories,
// no control characters), and a name of only dots gets a leading '_'.
std::string file_name_of(const std::string &name) {
    std::string r = name;
    for (char &c : r)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    if (r.find_first_not_of('.') == std::string::npos) r = "_" + r;
    return r;
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
                   "bit for bit (conformance runs; a float output may instead be within --tolerance); exit 2 on a "
                   "mismatch");
    double tolerance = 1e-5;
    app.add_option("--tolerance", tolerance,
                   "--expect on float outputs: |got - want| <= T (1 + |want|) passes as 'within T' when not bit-exact")
        ->check(CLI::Range(0.0, 1.0))->capture_default_str();
    app.add_option("--target", target,
                   "force a CPU kernel variant (generic, x86_avx2, x86_avx512vnni, ...), or cuda: run the int8 "
                   "model on the GPU (tensor-core cuda_mma convs when built, cuda_dp4a kernels for the rest)");
    CLI11_PARSE(app, argc, argv);
    try {
        check_threads(threads, "--threads");
        const Device device = target == "cuda" ? Device::cuda : Device::cpu;
        if (!target.empty() && device == Device::cpu) force_target(target);
        ImportOptions opts;  // ONNX layout, as in the files
        std::map<std::string, std::string> file_of;  // input name -> its file
        for (const auto &arg : inputs) {
            Named in = load_named("--input", arg);
            if (opts.input_values.count(in.name))
                throw std::runtime_error("--input '" + printable(arg) + "': '" + printable(in.name) + "' is given twice");
            opts.input_values[in.name] = in.t;
            file_of[in.name] = in.file;
        }
        Graph g = import_onnx(model, opts);
        // Quantized: some value has quantization parameters (QDQ / QOperator), not necessarily the
        // input (a float op may come before the first QuantizeLinear).
        bool quantized = false;
        for (const GraphValue &v : g.values) quantized = quantized || !v.quant.empty();
        Precision p = precision == "fp32" ? Precision::fp32
                      : precision == "int8" ? Precision::int8
                                            : (quantized ? Precision::int8 : Precision::fp32);
        std::map<std::string, Tensor> given;  // the runtime inputs (ONNX layout, as Model::input takes them)
        for (int i : g.inputs) {
            auto it = opts.input_values.find(g.values[i].name);
            if (it == opts.input_values.end())
                throw std::runtime_error("no --input for graph input '" + printable(g.values[i].name) + "'");
            given[it->first] = checked_input(it->second, g, i, file_of.at(it->first));
        }
        if (p == Precision::int8 && !quantized) {
            if (calib.empty())
                throw std::runtime_error("model '" + printable(model) + "' is float: --precision int8 needs --calib inputs");
            std::vector<Tensor> samples;
            for (const auto &f : calib) samples.push_back(checked_input(load_any(f), g, g.inputs[0], f));
            CalibrationOptions co;
            co.threads = threads;
            co.progress = [](int d, int t) { std::fprintf(stderr, "\rcalibrating %d/%d%s", d, t, d == t ? "\n" : ""); };
            calibrate(g, samples, co);
        }
        const int batch = int(given.at(g.values[g.inputs[0]].name).dim(0));  // the first input's (infer_shapes)
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
                throw std::runtime_error("input '" + printable(m->input_name(i)) + "' is " + src.describe() +
                                         ", model wants " + dst.describe());
            std::memcpy(dst.raw(), src.raw(), src.nbytes());
        }
        m->execute();
        std::filesystem::create_directories(out_dir);
        for (int i = 0; i < m->num_outputs(); i++) {
            std::string path = out_dir + "/" + file_name_of(m->output_name(i)) + ".npy";
            io::save_npy(path, unpack4(m->output(i)));
            std::printf("%s %s -> %s%s\n", printable(m->output_name(i)).c_str(), m->output(i).describe().c_str(),
                        printable(path).c_str(), dtype_bits(m->output(i).dtype()) == 4 ? " (one value per byte)" : "");
        }
        int mismatches = 0;
        for (const auto &arg : expects) {
            Named e = load_named("--expect", arg);
            const std::string &name = e.name;
            const Tensor &want = e.t;
            int k = -1;
            for (int i = 0; i < m->num_outputs(); i++)
                if (m->output_name(i) == name) k = i;
            if (k < 0)
                throw std::runtime_error("--expect '" + printable(arg) + "': the model has no output '" + printable(name) + "'");
            Tensor got = m->output(k);
            if (dtype_bits(want.dtype()) == 8) got = unpack4(got);  // a 4-bit output against a .npy
            const bool comparable = got.dtype() == want.dtype() && got.shape() == want.shape();
            bool same = comparable && std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0;
            // Float outputs may differ in the last bits with the summation order: within
            // |got - want| <= tolerance * (1 + |want|) they are reported as such (never as bit-exact).
            double worst = 0;
            bool close = false;
            if (!same && comparable && want.dtype() == DType::f32) {
                close = true;
                for (int64_t j = 0; j < want.numel(); j++) {
                    const double g = got.data<float>()[j], w = want.data<float>()[j], d = std::fabs(g - w);
                    close = close && d <= tolerance * (1 + std::fabs(w));  // (false for NaN)
                    worst = std::max(worst, d);
                }
            }
            char verdict[64];
            if (same) std::snprintf(verdict, sizeof verdict, "bit-exact");
            else if (close) std::snprintf(verdict, sizeof verdict, "within %g (max abs diff %.3g)", tolerance, worst);
            else std::snprintf(verdict, sizeof verdict, "MISMATCH");
            std::printf("%s: %s (got %s, expected %s)\n", printable(name).c_str(), verdict, got.describe().c_str(),
                        want.describe().c_str());
            mismatches += !(same || close);
        }
        return mismatches ? 2 : 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "qhalide-run: error: %s\n", e.what());
        return 1;
    }
}
