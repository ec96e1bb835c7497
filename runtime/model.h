// From a Graph (runtime/graph.h) to something that runs: graph passes, calibration, prepare,
// execute.
//
//   Graph g = build_resnet({50});            // or import_onnx("model.onnx")
//   calibrate(g, samples, {});               // float models only: sets every value's quant
//   auto m = Model::prepare(g, {.batch = 16, .threads = 2});
//   copy an input into m->input(0); m->execute(); read m->output(0)   (many times)
//   auto ctx = m->create_context();  // one per thread: ctx->input(0), ctx->execute(), ...
//   std::vector<Tensor> y = m->run({x});  // reentrant, from any thread
//   Model::prepare(g, {.batch = 16, .device = Device::cuda})  runs the same plan on the GPU
//
// prepare() runs the named passes of runtime/passes.h once: BatchNorm folding, shape inference
// for the batch, fusion (Conv[+Relu|Clip] -> conv2d, Conv+Add[+Relu] -> conv2d_add, ...),
// quantization assignment, lowering through each op's definition (weights quantized per output
// channel if they are float), memory planning of every intermediate into one arena; then it
// allocates and binds the default execution context. execute() only runs kernels: no
// allocation, no graph walking.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph.h"
#include "options.h"
#include "tensor.h"

namespace qh {

enum class Precision { int8, fp32 };
const char *precision_name(Precision p);

struct PrepareOptions {
    int batch = 1;
    int threads = 0;  // 0: leave the current setting (Halide: all cores)
    Precision precision = Precision::int8;
    bool keep_all_values = false;  // give every value its own memory (calibration, debugging)
    // cuda: the same lowering and memory plan, run with the GPU kernels (runtime/gpu_kernels.h):
    // the arena is one device allocation, weights and parameters are uploaded here, every step
    // is bound to its family's GPU kernel. input()/output() stay host tensors: execute() copies
    // the inputs to the device first and the outputs back last, nothing in between. int8 only;
    // a step with no GPU kernel (the fp32 path, a standalone Relu table) is refused here,
    // naming the layer, and so is a machine without a CUDA device.
    Device device = Device::cpu;
    // On a device: after binding, one run of every step, then the steps are recorded into one
    // device graph (CUDA graph) that execute() replays with a single launch: the per-kernel
    // launch cost is paid once here. If recording fails (or is off), the steps are launched one
    // by one as before; device_graph() says which and why. Profiling always launches per step.
    bool device_graph = true;
    // Kernel choice for this model's steps (runtime/options.h): a forced CPU variant, one
    // implementation of the registry, cuda_mma's formulation / tuning. Unset fields take the
    // process defaults (the environment).
    KernelOptions kernels;
    // 4-bit activations stored packed (u4, two channels per byte) between kernels that have u4
    // families (passes.h choose_u4_storage); off: u8 storage with the 4-bit range. The same
    // values either way (a test checks it); only bytes and kernels differ.
    bool pack_4bit = true;
};

// One executed step (a fused layer) with what it ran and, when profiling, its time.
struct LayerInfo {
    std::string name;    // the IR node (last node of a fused group)
    std::string layer;   // the group's first node (the Conv / Dense a bit configuration names)
    std::string op;      // e.g. "conv2d+relu", "conv2d_add+relu", "dense", "quantize"
    std::string kernel;  // the AOT kernel bound at prepare, or the host code ("fp32 reference", ...)
    double ops = 0;      // arithmetic operations per execute (2 per MAC), 0 for data movement
    double total_ms = 0;
    int64_t calls = 0;
};

// Thread safety (as ONNX Runtime's Session::Run and TensorRT's engine + execution contexts):
//  - After prepare() the weights, packed weights and the plan are read-only and shared.
//  - An execution context (Model::Context) is one run's memory: its arena of intermediates, its
//    input and output tensors, the kernels bound to them, its profile. One context must be used
//    by one thread at a time; different contexts run concurrently, bit-identical to each other.
//  - The Model itself is a context (the default one): input()/output()/execute()/value()/
//    layers()/set_profiling() use it, so they too are for one thread at a time.
//  - create_context() and run() may be called from any number of threads at once. run() takes a
//    context from a pool (making one when all are busy), copies the inputs in and the outputs
//    out: the reentrant call for servers. Each context costs arena_bytes() plus its inputs and
//    outputs, checked against the memory budget (runtime/limits.h).
//  - On a device there is one context: create_context() is refused, run() serializes requests.
//  - Errors (bad models, sizes over the limits, Halide kernel errors) are exceptions naming the
//    model and the layer; nothing aborts. Limits: runtime/limits.h and README "Limits".
class Model {
public:
    static std::unique_ptr<Model> prepare(const Graph &g, const PrepareOptions &opt);
    ~Model();

    class Context {
    public:
        ~Context();
        Tensor &input(int i);
        const Tensor &output(int i) const;
        void execute();
        void execute_on_device();
        const std::vector<LayerInfo> &layers() const;
        void set_profiling(bool on);

    private:
        friend class Model;
        Context();
        struct State;
        std::unique_ptr<State> s_;
    };
    // A new execution context sharing this model's weights (CPU only). The Model must outlive it.
    std::unique_ptr<Context> create_context();
    // Thread-safe: runs the model on `inputs` (like input(i): dtype and shape as prepared, host
    // memory) in a pooled context and returns copies of the outputs.
    std::vector<Tensor> run(const std::vector<Tensor> &inputs);

    int num_inputs() const;
    int num_outputs() const;
    // Write inputs here, read outputs there: f32 (or the integer type the graph declares: u8 for a
    // model that takes quantized input, the output of a QuantizeLinear, ...), batch from prepare.
    // Rank-4 tensors are in the graph's declared layout (Graph::io_layout: NCHW for an ONNX
    // model, NHWC for the built-in ResNets), converted to and from qhalide's NHWC by execute();
    // other ranks are in the model's own order.
    Tensor &input(int i);
    const Tensor &output(int i) const;
    Layout input_layout(int i) const;  // NCHW where a rank-4 input is converted at the edge
    Layout output_layout(int i) const;
    const std::string &input_name(int i) const;
    const std::string &output_name(int i) const;
    // Runs every step; on a device, returns after the outputs are back on the host (the device
    // is synchronized once, at the end; with profiling on, after every step).
    void execute();
    // On a device: runs every step on the inputs the last execute() uploaded and synchronizes,
    // with no host transfers (the device work alone, as GPU peers are usually timed: input
    // already on the GPU; outputs stay on the device). On the CPU the same as execute().
    void execute_on_device();

    // A value's tensor after execute (only meaningful with keep_all_values, else the arena slot
    // may hold a later value); nullptr for values that have no storage of their own.
    const Tensor *value(int id) const;
    const std::vector<LayerInfo> &layers() const;
    void set_profiling(bool on);
    size_t arena_bytes() const;
    // Bytes of the int8/int4 weights as the CPU kernels read them (blocked layout at its bit
    // width, with the per-channel bias, weight zero points and multipliers); 0 on the fp32 path.
    size_t weight_bytes() const;
    Precision precision() const;
    int batch() const;
    Device device() const;
    // "on" when execute() replays a recorded device graph, else "off: <reason>".
    std::string device_graph() const;

private:
    Model();
    static std::unique_ptr<Model> prepare_impl(const Graph &g, const PrepareOptions &opt);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Graph passes (prepare runs them too; runtime/passes.h has the others).
Graph fold_batchnorm(const Graph &g);  // Conv -> BatchNorm becomes one Conv (float weights)
// Shapes of every value for `batch` (NHWC / {N,K}); throws naming the node on any mismatch.
// Resolves auto_pad SAME_* windows (WindowAttrs::resolve_auto_pad) into explicit pads in `g`.
std::vector<std::vector<int64_t>> infer_shapes(Graph &g, int batch);
inline std::vector<std::vector<int64_t>> infer_shapes(const Graph &g, int batch) {  // on a copy
    Graph c = g;
    return infer_shapes(c, batch);
}

struct CalibrationOptions {
    // minmax: the observed range; percentile: clipped to [100-p, p] percentiles; mse: the clipping
    // (a fraction of the observed range) with the least squared quantization error on the samples.
    enum class Method { minmax, percentile, mse } method = Method::minmax;
    Method method4 = Method::mse;  // for 4-bit values (four_bit_values), where clipping matters
    double percentile = 99.99;  // percentile method: clip to [100-p, p] percentiles
    int threads = 0;
    // Per-value overrides, applied after calibration (value name -> u8 quant params).
    std::map<std::string, QuantParams> overrides;
    std::function<void(int done, int total)> progress;
};
// Runs the float graph (BatchNorm folded first: `g` is replaced by the folded graph) on every
// sample batch ({N, ...} like Model::input(0): the graph's declared layout) and sets u8 quantization (asymmetric, zero
// included, scale = range / 255) on every activation value except the graph outputs, which
// stay float (the last Dense then runs with s32 output and exact dequantization).
void calibrate(Graph &g, const std::vector<Tensor> &samples, const CalibrationOptions &opt);
// Quant params of a real range [lo, hi] (widened to include 0) on [0, qmax] (255: u8, 15: u4), as
// ONNX Runtime computes them.
QuantParams quant_from_range(float lo, float hi, int qmax = 255);
// Which values calibrate() makes 4-bit (qtype u4) under the nodes' LayerPrecision: some Conv/Dense
// reading it is w4a4 and none is int8/w4a8 (through MaxPool/Flatten/Relu/Clip, which keep or
// follow their input's quantization; Add and GlobalAvgPool read any), and its producer can write
// the 4-bit range (Conv, Dense, Add, GlobalAvgPool; not a graph input: it stays 8-bit, and its
// w4a4 readers run as w4a8 on it). Graph outputs stay float.
std::vector<bool> four_bit_values(const Graph &g);

}  // namespace qh
