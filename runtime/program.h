// What prepare() builds from a Graph and execute() runs: the values of the executable plan, the
// steps, the weights they read, the memory plan (Program); and one execution context's memory
// and bound kernels (Exec). The graph passes (runtime/passes.h) fill a Program one after
// another; Model (runtime/model.cpp) owns one and makes contexts from it.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "device.h"
#include "float_ops.h"
#include "graph.h"
#include "model.h"
#include "ops.h"
#include "pack.h"

namespace qh {

// A tensor of the executable plan: an IR value, or an internal one (the s32 logits, the f32
// graph input before quantization, a reshaped view).
struct ValueInfo {
    std::string name;
    std::vector<int64_t> shape;
    DType dtype = DType::f32;
    QuantParams quant;
    int qmax = 255;  // quantized range [0, qmax]: 15 for 4-bit values (stored u8 or u4)
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
    // The caller's NCHW tensors (Program::in_nchw / out_nchw), else undefined.
    std::vector<Tensor> user_in, user_out;
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

// The nodes that become one step: an anchor node and what is fused into it (int8 only; the
// fp32 path runs every node as its own group).
struct FusedGroup {
    int node = -1;      // the anchor node (index into Graph::nodes)
    int add = -1;       // Conv -> Add: the Add node (conv2d_add), else -1
    int residual = -1;  // with `add`: the Add's other operand (a value computed before the Conv)
    int act = -1;       // the Relu or Clip node fused at the end (a clamp), else -1
    int output = -1;    // the value the group writes: the output of its last node
    int aux = -1;       // set by assign_quantization: Dense with float output -> its s32
                        // accumulator; GlobalAvgPool -> the {N,C} view of its output
};

// The Program a Graph is prepared into. Steps refer to values by id and to weights by address:
// `packed` and `fweights` are deques, so an element never moves once added (and a moved
// Program keeps its elements where they were).
struct Program {
    Graph g;
    PrepareOptions opt;
    // A deque: lowering holds references to values' quantization while it adds internal ones.
    std::deque<ValueInfo> v;
    std::vector<FusedGroup> groups;           // fuse(), or one per node (fp32)
    std::vector<std::pair<int, int>> quantize_in;    // (f32 external, u8 value): graph inputs
    std::vector<std::pair<int, int>> dequantize_out;  // (u8 value, f32 external): graph outputs
    std::vector<Step> steps;  // read-only after prepare
    std::vector<int> in_ids, out_ids;  // external tensors
    // Per graph input / output: true where the caller's tensor is NCHW (Graph::io_layout on a
    // rank-4 value) and the context converts it to / from the NHWC external tensor.
    std::vector<bool> in_nchw, out_nchw;
    size_t arena_size = 0;
    size_t scratch_floats = 0;  // fp32 im2col, per context
    std::deque<PackedWeights> packed;
    std::deque<f32::ConvWeights> fweights;

    int add_internal(std::string name, std::vector<int64_t> shape, DType dt, QuantParams q = {});
    int root(int id) const { return v[id].alias >= 0 ? root(v[id].alias) : id; }
};

// Helpers shared by the passes and the op definitions.
[[noreturn]] void node_error(const Graph &g, const GraphNode &n, const std::string &what);
// Same per-tensor scale and zero point (both quantized).
bool same_quant(const QuantParams &a, const QuantParams &b);
// Which values are graph outputs, as flags (a lookup per node must not scan the output list).
std::vector<bool> output_flags(const Graph &g);
// The u8 quantization a value runs with: s8 (ONNX Runtime's default QInt8) becomes u8 exactly,
// q + 128 with zero point z + 128 representing the same real values (round and saturate
// commute with the shift); s4 likewise becomes u4 (+8). Empty if the value has no quant.
QuantParams u8_quant(const GraphValue &v);
bool is_4bit(DType t);  // u4 or s4
// v[id].quant, or an error naming node n: the value has none.
const QuantParams &need_quant(const Program &p, const GraphNode &n, int id);

}  // namespace qh
