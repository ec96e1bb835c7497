// Sigmoid, HardSigmoid, HardSwish: y = f(x) elementwise. fp32: float32 as ONNX defines f. int8:
// DequantizeLinear -> f -> QuantizeLinear as one exact 256-entry table (u8_table), run by the lut
// kernel; the output has its own quantization (from the model's QuantizeLinear or calibration).
#include <algorithm>
#include <cmath>

#include "layers.h"

namespace qh::layers {
namespace {

float sigmoid_f(float v, const GraphNode &) { return 1.f / (1.f + std::exp(-v)); }
float hard_sigmoid_f(float v, const GraphNode &n) { return std::max(0.f, std::min(1.f, n.alpha * v + n.beta)); }
float hard_swish_f(float v, const GraphNode &) { return v * std::max(0.f, std::min(1.f, v / 6.f + 0.5f)); }

std::string check(const GraphNode &) { return ""; }

const char *label(OpKind k) { return k == OpKind::Sigmoid ? "sigmoid" : k == OpKind::HardSigmoid ? "hard_sigmoid" : "hard_swish"; }

template <float (*F)(float, const GraphNode &)>
void lower_fp32(Program &p, const GraphNode &n) {
    const int x = n.inputs[0], y = n.output;
    add_fp32_step(p, n, label(n.op), [x, y, n](Exec &e) {
        const float *a = e.T(x).data<float>();
        float *o = e.T(y).data<float>();
        for (int64_t k = 0, end = e.T(x).numel(); k < end; k++) o[k] = F(a[k], n);
    });
}

template <float (*F)(float, const GraphNode &)>
void lower_int8(Program &p, const FusedGroup &gr) {
    const GraphNode &n = p.g.nodes[gr.node];
    add_table_step(p, n, label(n.op), u8_table(p.v[n.inputs[0]].quant, p.v[n.output].quant, F, n, p.v[n.output].qmax));
}

}  // namespace

const OpDef sigmoid = {OpKind::Sigmoid, "Sigmoid", 1, check, same_shape, lower_fp32<sigmoid_f>,
                       quantized_inputs_and_output, lower_int8<sigmoid_f>};
const OpDef hard_sigmoid = {OpKind::HardSigmoid, "HardSigmoid", 1, check, same_shape, lower_fp32<hard_sigmoid_f>,
                            quantized_inputs_and_output, lower_int8<hard_sigmoid_f>};
const OpDef hard_swish = {OpKind::HardSwish, "HardSwish", 1, check, same_shape, lower_fp32<hard_swish_f>,
                          quantized_inputs_and_output, lower_int8<hard_swish_f>};

}  // namespace qh::layers
