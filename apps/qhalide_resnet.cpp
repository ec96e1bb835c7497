// qhalide-resnet: ResNet-18/50 (built-in, synthetic weights) or an ONNX model, int8 or fp32,
// on an image; prints latency, throughput, top-5 and (with --profile) a per-layer table.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "io/image.h"
#include "io/labels.h"
#include "io/npy.h"
#include "kernels.h"
#include "model.h"
#include "onnx_import.h"
#include "models/resnet.h"
#include "resource_limits.h"

using namespace qh;

namespace {

struct Options {
    std::string model = "resnet50", image = std::string(QH_ASSETS_DIR) + "/sample.jpg";
    std::string labels = std::string(QH_ASSETS_DIR) + "/imagenet_labels.txt";
    int batch = 1, threads = 0, iters = 10, warmup = 2, calib_samples = 4;
    std::string precision = "int8", calibration = "minmax", target, dump_logits;
    std::vector<std::string> calib_files;
    double percentile = 99.99;
    bool json = false, profile = false, no_graph = false;
};

void progress_bar(const char *what, int done, int total) {
    const int width = 30;
    int fill = total ? done * width / total : width;
    std::fprintf(stderr, "\r%s [%s%s] %d/%d", what, std::string(fill, '#').c_str(),
                 std::string(width - fill, ' ').c_str(), done, total);
    if (done == total) std::fprintf(stderr, "\n");
}

// Synthetic calibration inputs for the built-in models: smooth random images in [0,1] per
// pixel, ImageNet-normalized like real inputs.
Tensor synthetic_image(int size, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    io::Image img;
    img.width = img.height = size;
    img.rgb.resize(size_t(size) * size * 3);
    float base[3] = {u(g), u(g), u(g)}, fx = 0.02f + 0.1f * u(g), fy = 0.02f + 0.1f * u(g);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                float v = base[c] + 0.3f * std::sin(fx * x * (c + 1) + fy * y) + 0.15f * (u(g) - 0.5f);
                img.rgb[(size_t(y) * size + x) * 3 + c] = uint8_t(std::clamp(v, 0.f, 1.f) * 255.f + 0.5f);
            }
    return io::imagenet_preprocess(img, size, size);
}

Tensor load_input(const std::string &path, int size) {
    if (path.size() > 4 && path.substr(path.size() - 4) == ".npy") return io::load_npy(path);
    return io::imagenet_preprocess(io::load_image(path), int(int64_t(size) * 256 / 224), size);
}

// Largest image side the app feeds (the model input's H = W).
constexpr int64_t kMaxImageSide = 16384;

// The image side S of the model's input {N, S, S, 3}: the input must be rank 4 (NHWC) with
// 1 <= H <= kMaxImageSide; check_input() checks the rest against what is fed.
int image_side(const Graph &g, const std::string &model) {
    if (g.inputs.size() != 1)
        throw std::runtime_error("model '" + printable(model) + "' has " + std::to_string(g.inputs.size()) +
                                 " inputs; qhalide-resnet needs one NHWC image input");
    const GraphValue &in = g.values[g.inputs[0]];
    if (in.shape.size() != 4 || in.shape[1] < 1 || in.shape[1] > kMaxImageSide)
        throw std::runtime_error("model input '" + printable(in.name) + "' is " + dtype_name(in.dtype) +
                                 shape_str(in.shape) + "; qhalide-resnet needs an NHWC image input [N,S,S,3] with 1 <= S <= " +
                                 std::to_string(kMaxImageSide));
    return int(in.shape[1]);
}

// Throws unless `got` (from `source`) has exactly the dtype and shape of model input `name`: it
// is copied over that input's buffer.
void check_input(const std::string &name, DType dtype, const std::vector<int64_t> &shape, const Tensor &got,
                 const std::string &source) {
    if (got.dtype() == dtype && got.shape() == shape) return;
    throw std::runtime_error("model input '" + printable(name) + "' is " + dtype_name(dtype) + shape_str(shape) + ", " +
                             printable(source) + " gives " + got.describe());
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// A JSON string literal; control characters are escaped (names come from model files).
std::string json_str(const std::string &s) {
    std::string r = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            r += '\\';
            r += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", unsigned(c));
            r += b;
        } else {
            r += c;
        }
    }
    return r + "\"";
}

int run(const Options &o) {
    // "cuda": the whole model on the GPU (cuda_dp4a kernels); any other tag forces a CPU variant.
    const Device device = o.target == "cuda" ? Device::cuda : Device::cpu;
    if (!o.target.empty() && device == Device::cpu) force_target(o.target);
    const bool builtin = o.model == "resnet18" || o.model == "resnet50";
    Graph g = builtin ? build_resnet({o.model == "resnet18" ? 18 : 50}) : import_onnx(o.model);
    const int size = image_side(g, o.model);
    const GraphValue gin = g.values[g.inputs[0]];  // a copy: calibrate() replaces g
    std::vector<int64_t> one_shape = gin.shape;    // one image
    one_shape[0] = 1;
    Tensor one = load_input(o.image, size);
    const std::string image_name = "the image '" + o.image + "'";
    check_input(gin.name, gin.dtype, one_shape, one, image_name);
    const Precision prec = o.precision == "fp32" ? Precision::fp32 : Precision::int8;

    bool needs_calibration = prec == Precision::int8 && gin.quant.empty();
    if (needs_calibration) {
        std::vector<Tensor> samples;
        if (o.calib_files.empty()) {
            for (int i = 0; i < o.calib_samples; i++) {
                samples.push_back(synthetic_image(size, 1000 + i));
                check_input(gin.name, gin.dtype, one_shape, samples.back(), "the synthetic calibration image");
            }
        } else {
            for (const auto &f : o.calib_files) {
                samples.push_back(load_input(f, size));
                check_input(gin.name, gin.dtype, one_shape, samples.back(), "calibration input '" + f + "'");
            }
        }
        CalibrationOptions co;
        co.method = o.calibration == "percentile" ? CalibrationOptions::Method::percentile
                                                  : CalibrationOptions::Method::minmax;
        co.percentile = o.percentile;
        co.threads = o.threads;
        co.progress = [&](int d, int t) { progress_bar("calibrating", d, t); };
        calibrate(g, samples, co);
    }

    PrepareOptions po;
    po.batch = o.batch;
    po.threads = o.threads;
    po.precision = prec;
    po.device = device;
    po.device_graph = !o.no_graph;
    auto m = Model::prepare(g, po);
    Tensor x = io::repeat_batch(one, o.batch);
    check_input(m->input_name(0), m->input(0).dtype(), m->input(0).shape(), x, image_name);
    std::memcpy(m->input(0).raw(), x.raw(), x.nbytes());

    for (int i = 0; i < o.warmup; i++) m->execute();
    std::vector<double> ms;
    for (int i = 0; i < o.iters; i++) {
        auto t0 = std::chrono::steady_clock::now();
        m->execute();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    // GPU: the device work alone (input already on the device, no copies), as cuDNN is timed.
    std::vector<double> dev_ms;
    if (device != Device::cpu)
        for (int i = 0; i < o.iters; i++) {
            auto t0 = std::chrono::steady_clock::now();
            m->execute_on_device();
            dev_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
    if (o.profile) {
        m->set_profiling(true);
        for (int i = 0; i < std::max(1, o.iters); i++) m->execute();
    }
    const Tensor &y = m->output(0);
    const std::vector<float> logits = io::first_row_as_float(y, "model output '" + m->output_name(0) + "'");
    const int classes = int(logits.size());
    auto top = io::top_k(logits.data(), classes, std::min(5, classes));
    std::vector<std::string> labels;
    if (classes == 1000) labels = io::load_labels(o.labels);
    auto label = [&](int i) { return i < int(labels.size()) ? printable(labels[i]) : "class " + std::to_string(i); };
    if (!o.dump_logits.empty()) io::save_npy(o.dump_logits, y);

    const double med = median(ms), mn = ms.empty() ? 0 : *std::min_element(ms.begin(), ms.end());
    const std::string note = builtin ? "synthetic weights: classes are meaningless" : "";
    if (o.json) {
        std::printf("{\n  \"model\": %s,\n  \"precision\": \"%s\",\n  \"device\": \"%s\",\n  \"batch\": %d,\n  \"threads\": %d,\n",
                    json_str(builtin ? o.model : g.name).c_str(), precision_name(prec), device_name(device), o.batch,
                    o.threads);
        if (builtin) std::printf("  \"weights\": \"synthetic\",\n");
        std::printf("  \"latency_ms\": {\"median\": %.3f, \"min\": %.3f},\n  \"images_per_s\": %.2f,\n", med, mn,
                    med > 0 ? o.batch * 1000.0 / med : 0);
        if (device != Device::cpu) std::printf("  \"device_graph\": %s,\n", json_str(m->device_graph()).c_str());
        if (!dev_ms.empty())
            std::printf("  \"device_ms\": {\"median\": %.3f, \"min\": %.3f},\n  \"device_images_per_s\": %.2f,\n",
                        median(dev_ms), *std::min_element(dev_ms.begin(), dev_ms.end()),
                        o.batch * 1000.0 / median(dev_ms));
        std::printf("  \"top5\": [");
        for (size_t i = 0; i < top.size(); i++)
            std::printf("%s{\"index\": %d, \"label\": %s, \"logit\": %.5f}", i ? ", " : "", top[i].first,
                        json_str(label(top[i].first)).c_str(), top[i].second);
        std::printf("],\n  \"layers\": [\n");
        const auto &L = m->layers();
        for (size_t i = 0; i < L.size(); i++) {
            std::printf("    {\"name\": %s, \"op\": %s, \"kernel\": %s", json_str(L[i].name).c_str(),
                        json_str(L[i].op).c_str(), json_str(L[i].kernel).c_str());
            if (o.profile && L[i].calls) std::printf(", \"ms\": %.4f", L[i].total_ms / L[i].calls);
            std::printf("}%s\n", i + 1 < L.size() ? "," : "");
        }
        std::printf("  ]\n}\n");
        return 0;
    }
    std::printf("model: %s%s\n", printable(o.model).c_str(),
                builtin ? " (built-in, synthetic weights: classes are meaningless)" : "");
    std::printf("precision: %s  device: %s  batch: %d  threads: %s  arena: %.1f MiB\n", precision_name(prec),
                device_name(device), o.batch, o.threads ? std::to_string(o.threads).c_str() : "all",
                m->arena_bytes() / 1048576.0);
    if (device != Device::cpu)
        std::printf("(GPU timing: each run copies the f32 input to the device, runs every layer, copies the "
                    "logits back and synchronizes; device graph: %s)\n", m->device_graph().c_str());
    std::printf("latency: median %.2f ms, min %.2f ms over %d runs; %.1f images/s\n", med, mn, o.iters,
                med > 0 ? o.batch * 1000.0 / med : 0);
    if (!dev_ms.empty())
        std::printf("device work alone (input already on the device, no copies): median %.2f ms; %.1f images/s\n",
                    median(dev_ms), o.batch * 1000.0 / median(dev_ms));
    std::printf("top-5 (image 0)%s:\n", note.empty() ? "" : ", synthetic weights");
    for (auto &[i, v] : top) std::printf("  %4d  %8.4f  %s\n", i, v, label(i).c_str());
    if (o.profile) {
        double total = 0;
        for (const auto &l : m->layers()) total += l.calls ? l.total_ms / l.calls : 0;
        std::printf("\n%-24s %-17s %-36s %9s %6s %8s\n", "layer", "op", "kernel", "ms", "%", "GOP/s");
        for (const auto &l : m->layers()) {
            double t = l.calls ? l.total_ms / l.calls : 0;
            std::printf("%-24s %-17s %-36s %9.3f %5.1f%% %8.1f\n", printable(l.name).c_str(), l.op.c_str(), l.kernel.c_str(), t,
                        total > 0 ? 100 * t / total : 0, t > 0 ? l.ops / t * 1e-6 : 0);
        }
        std::printf("%-24s %-17s %-36s %9.3f\n", "total", "", "", total);
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    CLI::App app{"qhalide-resnet: int8 (or fp32 reference) ResNet inference on an image.\n"
                 "Built-in resnet18/resnet50 use deterministic synthetic weights (calibrated on synthetic\n"
                 "inputs), so their classes are meaningless; give an .onnx file for a real model."};
    app.add_option("--model", o.model, "resnet18, resnet50 or FILE.onnx (float, QDQ or QOperator)")
        ->capture_default_str();
    app.add_option("--image", o.image, "PNG or JPEG (resize 256, center crop 224, ImageNet normalization), or .npy")
        ->capture_default_str();
    app.add_option("--batch", o.batch, "batch size (the image is replicated)")->check(CLI::Range(1, 4096))->capture_default_str();
    app.add_option("--threads", o.threads, "threads (0: all cores)")->capture_default_str();
    app.add_option("--iters", o.iters, "timed runs")->check(CLI::Range(1, 100000))->capture_default_str();
    app.add_option("--warmup", o.warmup, "untimed runs first")->check(CLI::Range(0, 1000))->capture_default_str();
    app.add_option("--precision", o.precision, "int8 or fp32 (our float reference path)")
        ->check(CLI::IsMember({"int8", "fp32"}))->capture_default_str();
    app.add_option("--calibration", o.calibration, "float models: minmax or percentile")
        ->check(CLI::IsMember({"minmax", "percentile"}))->capture_default_str();
    app.add_option("--percentile", o.percentile, "percentile calibration: clip at this percentile")
        ->check(CLI::Range(50.0, 100.0))->capture_default_str();
    app.add_option("--calib", o.calib_files, "calibration images or .npy tensors (default: synthetic inputs)");
    app.add_option("--calib-samples", o.calib_samples, "number of synthetic calibration inputs")
        ->check(CLI::Range(1, 10000))->capture_default_str();
    app.add_option("--labels", o.labels, "class names, one per line")->capture_default_str();
    app.add_option("--target", o.target,
                   "force a CPU kernel variant (generic, x86_avx2, x86_avx512vnni, ...), or cuda: the whole "
                   "int8 model on the GPU (tensor-core cuda_mma convs when built, cuda_dp4a kernels for the rest)");
    app.add_flag("--no-graph", o.no_graph,
                 "cuda: launch every layer's kernels one by one instead of replaying the CUDA graph recorded "
                 "at prepare");
    app.add_option("--dump-logits", o.dump_logits, "write the logits {batch, classes} as .npy");
    app.add_flag("--json", o.json, "print a JSON report");
    app.add_flag("--profile", o.profile, "per-layer time table");
    CLI11_PARSE(app, argc, argv);
    try {
        check_threads(o.threads, "--threads");
        return run(o);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "qhalide-resnet: error: %s\n", e.what());
        return 1;
    }
}
