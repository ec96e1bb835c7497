// Dynamic quantization of a Conv or Dense (GraphNode::dynamic; what ONNX Runtime's
// quantize_dynamic writes: DynamicQuantizeLinear -> ConvInteger / MatMulInteger -> Cast -> Mul
// -> Add). Three steps on one context:
//   1. dynamic_quantize (host): x_scale, z_x from x's range exactly as DynamicQuantizeLinear
//      computes them; x_q = saturate(round_half_even(x / x_scale) + z_x) into a u8 buffer that
//      already holds the conv's padding, filled with z_x (so padded taps contribute x_q - z_x = 0).
//   2. the int8 kernel (conv2d, conv2d_grouped or dense to s32, unpadded, packed for z_x = 0 and
//      no bias):
//      acc0 = sum x_q * (w - z_w) over every tap.
//   3. dequantize (host): acc = acc0 - z_x * sum_taps (w - z_w)[oc] (the exact int32 of
//      ConvInteger / MatMulInteger), then float(acc) [* (x_scale * w_scale[oc]) [+ bias[oc]]] in
//      float32, in ONNX Runtime's order (Cast, Mul by the product of the two scales, Add).
#include <cmath>
#include <cstring>

#include "layers.h"

namespace qh::layers {

void lower_dynamic(Program &p, const GraphNode &n) {
    const bool conv = n.op == OpKind::Conv;
    const int x = n.inputs[0], y = n.output;
    const Tensor &w = n.weights;
    if (w.dtype() != DType::u8 && w.dtype() != DType::s8)
        node_error(p.g, n, std::string("dynamic quantization needs uint8/int8 weights, these are ") + dtype_name(w.dtype()));
    // Grouped, depthwise and dilated convs run on conv2d_grouped (its s32 form).
    const bool grouped = conv && (n.group != 1 || n.window.dilation_h != 1 || n.window.dilation_w != 1);
    const std::vector<int64_t> xs = p.v[x].shape;
    const WindowAttrs a = n.window;
    std::vector<int64_t> padded = xs;
    if (conv) {
        padded[1] += a.pad_top + a.pad_bottom;
        padded[2] += a.pad_left + a.pad_right;
    }
    const int xq = p.add_internal(n.name + ":dyn_u8", padded, DType::u8, QuantParams::per_tensor(1.f, 0));
    const int qp = p.add_internal(n.name + ":dyn_scale_zp", {2}, DType::f32);
    const int acc = p.add_internal(n.name + ":s32", p.v[y].shape, DType::s32);

    // Weights packed for z_x = 0, no bias, s32 output; the per-channel tap sums of w - z_w.
    GraphNode m = n;
    m.bias = Tensor();
    m.weights.quant.scale.assign(std::max<size_t>(1, w.quant.zero_point.size()), 1.f);
    const PackedWeights *pw = &pack_node(p, m, QuantParams::per_tensor(1.f, 0), 0.f, grouped);
    const int64_t oc = w.dim(0), per = w.numel() / oc;
    auto corr = std::make_shared<std::vector<int64_t>>(size_t(oc), 0);
    for (int64_t o = 0; o < oc; o++)
        for (int64_t k = 0; k < per; k++)
            (*corr)[size_t(o)] += weight_element(w.dtype(), w.raw(), o * per + k) - w.quant.zp_at(size_t(o));
    auto wscale = std::make_shared<std::vector<float>>(size_t(oc), 1.f);
    if (n.dynamic == GraphNode::Dynamic::scaled)
        for (int64_t o = 0; o < oc; o++) (*wscale)[size_t(o)] = w.quant.scale_at(size_t(o));
    auto bias = std::make_shared<std::vector<float>>();
    if (n.bias.rank() == 1) bias->assign(n.bias.data<float>(), n.bias.data<float>() + oc);

    // 1. DynamicQuantizeLinear into the padded buffer.
    Step q = node_step(n, "dynamic_quantize", "host");
    q.writes = {xq, qp};
    const int pt = conv ? a.pad_top : 0, pl = conv ? a.pad_left : 0;
    q.run = [x, xq, qp, pt, pl](Exec &e) {
        const Tensor &xt = e.T(x);
        Tensor &qt = e.T(xq);
        const float *src = xt.data<float>();
        const int64_t count = xt.numel();
        float lo = 0.f, hi = 0.f;  // the range always includes 0
        for (int64_t i = 0; i < count; i++) {
            lo = std::min(lo, src[i]);
            hi = std::max(hi, src[i]);
        }
        const float scale = hi == lo ? 1.f : (hi - lo) / 255.f;
        const float zpf = std::nearbyint(std::clamp(0.f - lo / scale, 0.f, 255.f));
        const uint8_t zp = uint8_t(zpf);
        e.T(qp).data<float>()[0] = scale;
        e.T(qp).data<float>()[1] = zpf;
        uint8_t *dst = qt.data<uint8_t>();
        if (qt.numel() != count) std::memset(dst, zp, size_t(qt.numel()));
        // Rows of C (or K) contiguous floats: x is {N,H,W,C} (or {N,K}), the buffer {N,H+pads,W+pads,C}.
        const int64_t c = xt.dim(-1), rows = count / std::max<int64_t>(c, 1);
        const int64_t h = xt.rank() == 4 ? xt.dim(1) : 1, wd = xt.rank() == 4 ? xt.dim(2) : 1;
        const int64_t ph = qt.rank() == 4 ? qt.dim(1) : 1, pwd = qt.rank() == 4 ? qt.dim(2) : 1;
        for (int64_t r = 0; r < rows; r++) {
            const int64_t nb = r / (h * wd), yy = r / wd % h, xx = r % wd;
            uint8_t *o = dst + ((nb * ph + yy + pt) * pwd + xx + pl) * c;
            const float *s = src + r * c;
            for (int64_t k = 0; k < c; k++)
                o[k] = uint8_t(std::clamp(std::nearbyint(s[k] / scale) + zpf, 0.f, 255.f));
        }
    };
    p.steps.push_back(std::move(q));

    // 2. The int8 kernel to s32.
    Step k = node_step(n, !conv ? "dense (dynamic int8)" : grouped ? "conv2d_grouped (dynamic int8)" : "conv2d (dynamic int8)");
    k.reads = {xq};
    k.writes = {acc};
    k.info.ops = 2.0 * double(w.numel()) * double(p.v[y].shape[0]) *
                 (conv ? double(p.v[y].shape[1] * p.v[y].shape[2]) : 1.0);
    const std::string name = n.name;
    if (conv) {
        Conv2dParams cp(a);
        cp.pad_top = cp.pad_bottom = cp.pad_left = cp.pad_right = 0;
        cp.name = name;
        cp.group = n.group;
        if (grouped) k.bind = [xq, acc, pw, cp](Exec &e) { return bind_conv2d_grouped(e.T(xq), *pw, cp, e.T(acc)); };
        else k.bind = [xq, acc, pw, cp](Exec &e) { return bind_conv2d(e.T(xq), *pw, cp, e.T(acc)); };
    } else {
        k.bind = [xq, acc, pw, name](Exec &e) { return bind_dense(e.T(xq), *pw, {}, e.T(acc), name); };
    }
    p.steps.push_back(std::move(k));

    // 3. The exact accumulator, then ONNX Runtime's float epilogue.
    Step d = node_step(n, "dequantize (dynamic)", "host");
    d.reads = {acc, qp};
    const bool scaled = n.dynamic == GraphNode::Dynamic::scaled;
    d.run = [acc, qp, y, corr, wscale, bias, scaled](Exec &e) {
        const Tensor &at = e.T(acc);
        const float scale = e.T(qp).data<float>()[0];
        const int64_t zp = int64_t(e.T(qp).data<float>()[1]);
        const int64_t oc = int64_t(corr->size()), count = at.numel();
        std::vector<float> mult(size_t(oc), 1.f);
        if (scaled)
            for (int64_t o = 0; o < oc; o++) mult[size_t(o)] = scale * (*wscale)[size_t(o)];
        const int32_t *src = at.data<int32_t>();
        float *dst = e.T(y).data<float>();
        for (int64_t i = 0; i < count; i++) {
            const int64_t o = i % oc;
            float v = float(int32_t(int64_t(src[i]) - zp * (*corr)[size_t(o)]));
            if (scaled) v = v * mult[size_t(o)];
            if (!bias->empty()) v = v + (*bias)[size_t(o)];
            dst[i] = v;
        }
    };
    p.steps.push_back(std::move(d));
}

}  // namespace qh::layers
