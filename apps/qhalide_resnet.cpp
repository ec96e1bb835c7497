// qhalide-resnet: ResNet-18/50 (built-in, synthetic weights) or an ONNX model, int8, W4A8, W4A4,
// mixed per layer (a bit configuration or an automatic choice under a budget) or fp32, on an
// image; prints latency, throughput, top-5 and (with --profile) a per-layer table.
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
#include "mixed_precision.h"
#include "precision.h"
#include "models/resnet.h"
#include "resource_limits.h"

using namespace qh;

namespace {

struct Options {
    std::string model = "resnet50", image = std::string(QH_ASSETS_DIR) + "/sample.jpg";
    std::string labels = std::string(QH_ASSETS_DIR) + "/imagenet_labels.txt";
    int batch = 1, threads = 0, iters = 10, warmup = 2, calib_samples = 4;
    std::string precision = "int8", calibration = "minmax", calibration4 = "mse", target, dump_logits, bits,
                write_bits;
    std::vector<std::string> calib_files;
    double percentile = 99.99, size_budget = 0, latency_budget = 0;
    std::string frontier, mixed_low = "w4a4";
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

// A preprocessed image (NHWC) in the layout the model declares.
Tensor in_layout(Tensor nhwc, Layout l) { return l == Layout::nchw ? nhwc_to_nchw(nhwc) : nhwc; }

// An image, preprocessed into `layout`; or an .npy tensor as it is (in the model's layout).
Tensor load_input(const std::string &path, int size, Layout layout) {
    if (path.size() > 4 && path.substr(path.size() - 4) == ".npy") return io::load_npy(path);
    return in_layout(io::imagenet_preprocess(io::load_image(path), int(int64_t(size) * 256 / 224), size), layout);
}

// Largest image side the app feeds (the model input's H = W).
constexpr int64_t kMaxImageSide = 16384;

// The image side S of the model's input ({N,3,S,S} NCHW for ONNX models, {N,S,S,3} NHWC for the
// built-in ones; IR shape {N,S,S,3}): the input must be rank 4 with 1 <= H <= kMaxImageSide;
// check_input() checks the rest against what is fed.
int image_side(const Graph &g, const std::string &model) {
    const char *want = g.io_layout == Layout::nchw ? "[N,3,S,S] (NCHW)" : "[N,S,S,3] (NHWC)";
    if (g.inputs.size() != 1)
        throw std::runtime_error("model '" + printable(model) + "' has " + std::to_string(g.inputs.size()) +
                                 " inputs; qhalide-resnet needs one image input " + want);
    const GraphValue &in = g.values[g.inputs[0]];
    if (in.shape.size() != 4 || in.shape[1] < 1 || in.shape[1] > kMaxImageSide)
        throw std::runtime_error("model input '" + printable(in.name) + "' is " + dtype_name(in.dtype) +
                                 shape_str(g.io_shape(g.inputs[0])) + "; qhalide-resnet needs an image input " + want +
                                 " with 1 <= S <= " + std::to_string(kMaxImageSide));
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
    const Layout layout = g.io_layout;             // of the inputs fed (NCHW for ONNX models)
    std::vector<int64_t> one_shape = g.io_shape(g.inputs[0]);  // one image
    one_shape[0] = 1;
    Tensor one = load_input(o.image, size, layout);
    const std::string image_name = "the image '" + o.image + "'";
    check_input(gin.name, gin.dtype, one_shape, one, image_name);
    const Precision prec = o.precision == "fp32" ? Precision::fp32 : Precision::int8;
    // Per-layer bits: a uniform 4-bit precision keeps the first conv and the last dense at int8;
    // --bits then sets layers one by one (mixed: from int8).
    if (o.precision == "w4a8" || o.precision == "w4a4") set_uniform_precision(g, parse_precision(o.precision));
    if (!o.bits.empty()) apply_bit_config(g, read_bit_config(o.bits));
    const bool auto_mixed = o.precision == "mixed" && o.bits.empty();
    if (auto_mixed && (o.size_budget > 0) == (o.latency_budget > 0))
        throw std::invalid_argument("--precision mixed needs --bits FILE, or one of --size-budget / --latency-budget");
    if (auto_mixed && !gin.quant.empty())
        throw std::invalid_argument("--precision mixed with a budget needs a float model (it calibrates each layer at "
                                    "8 and 4 bits)");

    bool needs_calibration = prec == Precision::int8 && gin.quant.empty();
    if (needs_calibration) {
        std::vector<Tensor> samples;
        if (o.calib_files.empty()) {
            for (int i = 0; i < o.calib_samples; i++) {
                samples.push_back(in_layout(synthetic_image(size, 1000 + i), layout));
                check_input(gin.name, gin.dtype, one_shape, samples.back(), "the synthetic calibration image");
            }
        } else {
            for (const auto &f : o.calib_files) {
                samples.push_back(load_input(f, size, layout));
                check_input(gin.name, gin.dtype, one_shape, samples.back(), "calibration input '" + f + "'");
            }
        }
        CalibrationOptions co;
        co.method = o.calibration == "percentile" ? CalibrationOptions::Method::percentile
                                                  : CalibrationOptions::Method::minmax;
        co.percentile = o.percentile;
        co.method4 = o.calibration4 == "percentile" ? CalibrationOptions::Method::percentile
                     : o.calibration4 == "minmax"   ? CalibrationOptions::Method::minmax
                                                    : CalibrationOptions::Method::mse;
        co.threads = o.threads;
        co.progress = [&](int d, int t) { progress_bar("calibrating", d, t); };
        if (!auto_mixed) {
            calibrate(g, samples, co);
        } else {  // HAWQ-style automatic choice (runtime/mixed_precision.h)
            MixedOptions mo;
            mo.low = parse_precision(o.mixed_low);
            mo.batch = o.batch;
            mo.threads = o.threads;
            mo.device = device;
            co.progress = nullptr;
            mo.calibration = co;
            mo.progress = [](const std::string &what, int d, int t) { progress_bar(what.c_str(), d, t); };
            const MixedAnalysis a = analyze_mixed_precision(g, samples, mo);
            const MixedObjective obj = o.size_budget > 0 ? MixedObjective::size : MixedObjective::latency;
            const auto frontier = pareto_frontier(a.layers, obj);
            const FrontierPoint pick = choose_mixed(a.layers, obj, o.size_budget > 0 ? o.size_budget : o.latency_budget);
            if (!o.frontier.empty()) {
                for (const auto &[ext, text] : {std::pair<std::string, std::string>{".json", frontier_json(a, obj, frontier)},
                                                {".svg", frontier_svg(a, obj, frontier)}}) {
                    std::FILE *f = std::fopen((o.frontier + ext).c_str(), "w");
                    if (!f) throw std::runtime_error("cannot write '" + o.frontier + ext + "'");
                    std::fputs(text.c_str(), f);
                    std::fclose(f);
                }
            }
            std::fprintf(stderr, "mixed precision: %zu of %zu layers at %s, predicted cost %.4g (%s), predicted error %.4g\n",
                         pick.low_layers.size(), a.layers.size(), o.mixed_low.c_str(), pick.cost,
                         obj == MixedObjective::size ? "weight bytes" : "ms", pick.error);
            g = mixed_graph(a, pick.low_layers);
        }
    }

    PrepareOptions po;
    po.batch = o.batch;
    po.threads = o.threads;
    po.precision = prec;
    po.device = device;
    po.device_graph = !o.no_graph;
    auto m = Model::prepare(g, po);
    if (!o.write_bits.empty()) {
        std::FILE *f = std::fopen(o.write_bits.c_str(), "w");
        if (!f) throw std::runtime_error("cannot write '" + o.write_bits + "'");
        std::fputs(bit_config_text(g).c_str(), f);
        std::fclose(f);
    }
    int layers8 = 0, layers_w4a8 = 0, layers_w4a4 = 0;
    for (int i : quantizable_layers(g)) {
        const LayerPrecision lp = effective_precision(g, g.nodes[i]);
        (lp == LayerPrecision::w4a4 ? layers_w4a4 : lp == LayerPrecision::w4a8 ? layers_w4a8 : layers8)++;
    }
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
        if (prec == Precision::int8)
            std::printf("  \"layers_int8\": %d,\n  \"layers_w4a8\": %d,\n  \"layers_w4a4\": %d,\n  \"weight_bytes\": %zu,\n"
                        "  \"arena_bytes\": %zu,\n",
                        layers8, layers_w4a8, layers_w4a4, m->weight_bytes(), m->arena_bytes());
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
    std::printf("precision: %s  device: %s  batch: %d  threads: %s  arena: %.1f MiB\n",
                prec == Precision::fp32 ? "fp32" : o.precision.c_str(), device_name(device), o.batch,
                o.threads ? std::to_string(o.threads).c_str() : "all", m->arena_bytes() / 1048576.0);
    if (prec == Precision::int8)
        std::printf("layers: %d int8, %d w4a8, %d w4a4  weights: %.2f MiB\n", layers8, layers_w4a8, layers_w4a4,
                    m->weight_bytes() / 1048576.0);
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
    CLI::App app{"qhalide-resnet: int8, INT4 (W4A8 / W4A4) or mixed-precision (or fp32 reference) ResNet inference on "
                 "an image.\n"
                 "Built-in resnet18/resnet50 use deterministic synthetic weights (calibrated on synthetic\n"
                 "inputs), so their classes are meaningless; give an .onnx file for a real model."};
    app.add_option("--model", o.model, "resnet18, resnet50 or FILE.onnx (float, QDQ or QOperator)")
        ->capture_default_str();
    app.add_option("--image", o.image, "PNG or JPEG (resize 256, center crop 224, ImageNet normalization), or .npy "
                                       "in the model's layout: NCHW {N,3,S,S} for an .onnx model (as qhalide-run), "
                                       "NHWC {N,S,S,3} for the built-in resnet18/resnet50; f32, or u8 for a model "
                                       "with a u8 input")
        ->capture_default_str();
    app.add_option("--batch", o.batch, "batch size (the image is replicated)")->check(CLI::Range(1, 4096))->capture_default_str();
    app.add_option("--threads", o.threads, "threads (0: all cores)")->capture_default_str();
    app.add_option("--iters", o.iters, "timed runs")->check(CLI::Range(1, 100000))->capture_default_str();
    app.add_option("--warmup", o.warmup, "untimed runs first")->check(CLI::Range(0, 1000))->capture_default_str();
    app.add_option("--precision", o.precision,
                   "int8; w4a8 (s4 weights, u8 activations) or w4a4 (s4 weights, 4-bit activations) on every "
                   "conv/dense but the first conv and the last dense; mixed (per layer, --bits); or fp32 (our "
                   "float reference path)")
        ->check(CLI::IsMember({"int8", "w4a8", "w4a4", "mixed", "fp32"}))->capture_default_str();
    app.add_option("--bits", o.bits,
                   "bit configuration file: '<layer> <int8|w4a8|w4a4|fp32>' per line (fp32: a float island, any "
                   "node), '* <precision>' for all "
                   "(applied after --precision; qhalide-mixed writes them)");
    app.add_option("--size-budget", o.size_budget,
                   "--precision mixed: weight bytes at most this fraction of int8's, least predicted error "
                   "(per-layer sensitivity on the calibration inputs, exact knapsack)")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--latency-budget", o.latency_budget,
                   "--precision mixed: summed per-layer time (measured here with our kernels) at most this "
                   "fraction of int8's")
        ->check(CLI::Range(0.0, 10.0));
    app.add_option("--mixed-low", o.mixed_low, "--precision mixed: the low precision, w4a4 or w4a8")
        ->check(CLI::IsMember({"w4a4", "w4a8"}))->capture_default_str();
    app.add_option("--frontier", o.frontier, "--precision mixed: write the Pareto frontier to PREFIX.json and PREFIX.svg");
    app.add_option("--write-bits", o.write_bits, "write the layers' effective precisions as a bit configuration file");
    app.add_option("--calibration4", o.calibration4, "4-bit activations: mse (clipping with least squared error), "
                                                      "percentile or minmax")
        ->check(CLI::IsMember({"mse", "percentile", "minmax"}))->capture_default_str();
    app.add_option("--calibration", o.calibration, "float models: minmax or percentile")
        ->check(CLI::IsMember({"minmax", "percentile"}))->capture_default_str();
    app.add_option("--percentile", o.percentile, "percentile calibration: clip at this percentile")
        ->check(CLI::Range(50.0, 100.0))->capture_default_str();
    app.add_option("--calib", o.calib_files, "calibration images or .npy tensors, in the layout --image says (default: synthetic inputs)");
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
