// Tensor-core int8 conv2d microkernel (CUDA C++, sm_80+; built for sm_90), no Halide dependency.
//
// Computes the raw int32 accumulator of a quantized convolution, groups = 1:
//   acc[n,oy,ox,oc] = sum_{ky,kx,ic} xp[n, oy*sh - pt + ky, ox*sw - pl + kx, ic] * w[oc,ic,ky,kx]
// with xp = x inside the image and xp = zx (the activation zero point) outside it, so padding
// contributes zx * w exactly as in the CPU path. x is u8 NHWC, w is s8 (logical OIHW), acc is
// s32 NHWC (= [M][OC] with M = N*OH*OW). Bias, per-channel scale, requantization, ReLU and
// residual belong to the epilogue (Halide stages); qh_cuda_conv2d_u8s8u8 is an optional fused
// variant for comparison: y = clamp(round_half_even(clamp(float(acc + bias[oc]) * mult[oc],
// -65536, 65536)) + zy, lo, hi), the same IEEE float32 operations as generators/qh_math.h.
//
// Formulation: implicit GEMM, M = N*OH*OW rows (output pixels), N_gemm = OC, K = KH*KW*IC with
// k = (ky*KW + kx)*IC + ic. mma.sync m16n8k32 u8 x s8 -> s32, ldmatrix fragment loads, cp.async
// multistage pipeline (global -> shared, XOR-swizzled 64-byte rows, no bank conflicts).
//  - direct path (IC % 64 == 0 and KH*KW <= 31): the A tile is gathered straight from x with
//    cp.async; out-of-image taps (a per-row tap mask) are written as zx into shared memory, both
//    by one predicated instruction pair (no branch, so loads interleave with the MMAs).
//  - row-gather path (KW*IC <= 32, e.g. the 7x7 stem with IC = 3): for each ky the KW*IC bytes
//    x[n, iy, ix0 .. ix0+KW-1, :] are contiguous in NHWC, so K is laid out as k = ky*32 + kx*IC +
//    ic (each ky segment padded to 32 bytes); the loader gathers bytes (zx outside the image)
//    into shared memory. No workspace, no im2col pass over device memory.
//    With IC < 4 (the stem) a pad pass first writes x as NHWC4 into the workspace (channels >= IC
//    hold zx, their weights are 0) and the loader moves whole 4-byte pixels with cp.async.
//  - im2col path (any other IC % 64 != 0): a gather kernel writes the u8 matrix col[M][Kp] (extra
//    columns zx) into a workspace, then the same GEMM runs on it as a 1x1 conv with IC = Kp.
// Epilogue: the accumulator tile is staged in shared memory and written as whole 16-byte row
// chunks (s32, or u8 after the fused requantization).
//
// Packed weight layout contract (qh_cuda_pack_weights), s8, OC rows of Kp bytes, no OC padding:
//   direct, im2col: w_packed[oc * Kp + (ky*KW + kx)*IC + ic] = w[oc][ic][ky][kx]
//   row-gather:     w_packed[oc * Kp + ky*32 + kx*ICg + ic]  = w[oc][ic][ky][kx], ICg = 4 if IC < 4
//                   (NHWC4 pixels) else IC
//   zero elsewhere; Kp = qh_cuda_conv2d_kpad(desc): K on the direct path, else rounded up to 128.
// Requirements: x, w_packed, y 16-byte aligned; OC % 8 == 0 (every ResNet layer); K*255*128
// fits in int32 (K <= 65536).
//
// 4-bit weights (wbits = 4), W4A8: the packed row of Kp s4 values is Kp/2 bytes, pre-shuffled so
// the widening lands in the mma fragment layout: within each group of 32 k (16 bytes),
//   byte 4t + j: low nibble = w[k = 32g + 4t + j], high nibble = w[32g + 16 + 4t + j]  (t, j < 4)
// (low nibbles of the 16 bytes are k 0..15 in order, high nibbles k 16..31). The kernels widen a
// 32-bit word r of it to the two s8 fragment registers (r << 4) & 0xF0F0F0F0 and r & 0xF0F0F0F0,
// i.e. 16 * w exactly (one AND, one shift), so the tensor cores accumulate 16 * acc; |16 w| <= 128
// keeps the int32 bound of the int8 kernel, and the epilogue's arithmetic shift by 4 is exact.
// Bit-exact: the raw accumulator equals the int8 kernel's on the same values.
// 4-bit activations (abits = 4), W4A4: the GEMM runs on the byte view of the u4 tensors (one byte
// = two consecutive k), mma.sync m16n8k64 .u4.s4 (sm_80+; sm_75: four m8n8k32); weights in plain
// nibble order (byte i = k 2i low, 2i+1 high) of Kp values per row (Kp even: K on the direct path
// IC % 128 == 0, else rounded up to 256 with zero weights; the im2col workspace pads x with zx).
// Built for sm_75, sm_80 and sm_90 (cuda/mma_conv2d_u4.cu). Outputs: s32, or u4 storage through
// the fused epilogues (qh_cuda_conv2d_u4s4u4_v / _add_u4s4u4_v).
// Split-K variants (splitk > 1) zero y with cudaMemsetAsync and accumulate with atomicAdd; int32
// addition is associative, so results stay bit-exact and deterministic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

struct ConvDesc {
    int n = 1, h = 0, w = 0, ic = 0, oc = 0;
    int kh = 1, kw = 1, sh = 1, sw = 1;
    int pt = 0, pl = 0, pb = 0, pr = 0;  // padding top, left, bottom, right
    int zx = 0;                          // activation zero point (u8; u4: 0..15), the padding value
    // Operand widths (int4, issue 14): wbits = 4: s4 weights (values in [-8, 7]) stay 4-bit in
    // device memory (qh_cuda_pack_weights writes Kp/2 bytes a row) and are widened to s8 on the
    // fly, feeding the same u8 x s8 tensor-core kernels (W4A8; x and y as with wbits = 8).
    // abits = 4 (needs wbits = 4): x is u4 storage (NHWC, IC even, channel 2i in the low nibble of
    // byte i of the pixel), the GEMM is mma.sync m16n8k64 u4 x s4 (W4A4; s32 output only).
    int wbits = 8, abits = 8;
    int oh() const { return (h + pt + pb - kh) / sh + 1; }
    int ow() const { return (w + pl + pr - kw) / sw + 1; }
    long long m() const { return (long long)n * oh() * ow(); }
    int k() const { return kh * kw * ic; }
    double macs() const { return double(m()) * oc * k(); }
};

// Variants 11 and up run on the direct path only (cudaErrorNotSupported on the others): "_db"
// double-buffers the mma fragments in registers, "_m2" caps registers for 2 CTAs per SM.
struct QhCudaConvVariant {
    const char *name;
    int bm, bn, warps_m, warps_n, stages, splitk;
    int bk;  // bytes of K per pipeline stage (64 or 128; 128 needs IC % 128 == 0 on the direct path)
    // 0: mma.sync (this file's kernel); 1: wgmma (wgmma_conv2d.cuh: Hopper only, direct path with
    // IC % bk == 0; bm = 128, warps_m/warps_n unused). A variant the shape or the device cannot
    // run returns cudaErrorNotSupported.
    int engine = 0;
};

// Tile configurations a caller may choose from by measurement (index into this list).
int qh_cuda_conv2d_num_variants();
const QhCudaConvVariant &qh_cuda_conv2d_variant(int i);
// Heuristic default for a layer (index into the list).
int qh_cuda_conv2d_pick_variant(const ConvDesc &d, int num_sms);

// Kp: the packed reduction length in weight elements (see the layout contract above).
int qh_cuda_conv2d_kpad(const ConvDesc &d);
bool qh_cuda_conv2d_direct(const ConvDesc &d);
// Bytes of the packed weights: OC * Kp * wbits / 8.
size_t qh_cuda_packed_weight_bytes(const ConvDesc &d);
// Host packing: w_oihw (OC*IC*KH*KW s8) -> out (qh_cuda_packed_weight_bytes(d) bytes). With
// wbits = 4 every value must be in [-8, 7]: returns false (out unspecified) otherwise.
bool qh_cuda_pack_weights(const ConvDesc &d, const int8_t *w_oihw, int8_t *out);
// W4A8 weights widened back to the 8-bit packing, on the device: w4 (qh_cuda_packed_weight_bytes(d)
// bytes, wbits = 4, abits = 8) -> w8 (d.oc * Kp s8, the wbits = 8 layout of the same layer, values
// in [-8, 7]), one kernel on `stream`; buffers 16-byte aligned. The int8 kernels then run on w8 with
// the same accumulator, bit for bit (the "widened" formulation of a W4A8 layer, cuda/mma_ops.cpp).
cudaError_t qh_cuda_widen_w4a8(const ConvDesc &d, const uint8_t *w4_dev, int8_t *w8_dev, cudaStream_t stream);
// Device workspace the im2col path needs (0 on the direct path).
size_t qh_cuda_conv2d_workspace_bytes(const ConvDesc &d);

// s32 output. `variant` indexes the list above. workspace: qh_cuda_conv2d_workspace_bytes(d) bytes
// of device memory, null only when that is 0 (else cudaErrorInvalidValue); same for every entry.
cudaError_t qh_cuda_conv2d_u8s8s32_v(const ConvDesc &d, int variant, const uint8_t *x_dev,
                                     const int8_t *w_packed_dev, int32_t *y_dev, void *workspace,
                                     cudaStream_t stream);

// W4A4: x u4 storage, w packed s4 (d.abits = d.wbits = 4 are set by this entry), s32 output.
cudaError_t qh_cuda_conv2d_u4s4s32_v(const ConvDesc &d, int variant, const uint8_t *x_dev,
                                     const uint8_t *w_packed_dev, int32_t *y_dev, void *workspace,
                                     cudaStream_t stream);

// s32 output plus a per-channel bias (device, OC): y = acc + bias[oc].
cudaError_t qh_cuda_conv2d_u8s8s32_bias_v(const ConvDesc &d, int variant, const uint8_t *x_dev,
                                          const int8_t *w_packed_dev, const int32_t *bias_dev,
                                          int32_t *y_dev, void *workspace, cudaStream_t stream);

// Fused epilogue, u8 output (split-K variants are not allowed here: returns cudaErrorInvalidValue).
struct QhRequant {
    const int32_t *bias;  // OC, device
    const float *mult;    // OC, device
    int zy, lo, hi;
};
cudaError_t qh_cuda_conv2d_u8s8u8_v(const ConvDesc &d, int variant, const uint8_t *x_dev,
                                    const int8_t *w_packed_dev, const QhRequant &rq, uint8_t *y_dev,
                                    void *workspace, cudaStream_t stream);

// Fused residual add (conv2d_add): the conv result is first quantized to u8 with
// (rq.bias, rq.mult, conv_zp, 0..255), then y = clamp(round((c - conv_zp) * conv_mult +
// (r - res_zp) * res_mult) + rq.zy, rq.lo, rq.hi): Conv -> QuantizeLinear -> QLinearAdd, the
// float32 steps of qh::quantized_add. `residual` is u8 NHWC with y's shape (device).
struct QhResidual {
    const uint8_t *residual;
    int conv_zp, res_zp;
    float conv_mult, res_mult;
};
cudaError_t qh_cuda_conv2d_add_u8s8u8_v(const ConvDesc &d, int variant, const uint8_t *x_dev,
                                        const int8_t *w_packed_dev, const QhRequant &rq,
                                        const QhResidual &res, uint8_t *y_dev, void *workspace,
                                        cudaStream_t stream);

// W4A4 with the fused epilogues, u4 storage output (rq.lo, rq.hi within [0, 15]; the residual of
// the add is u4 storage with y's shape; the conv's own intermediate result is u8, as on the CPU).
cudaError_t qh_cuda_conv2d_u4s4u4_v(const ConvDesc &d, int variant, const uint8_t *x_dev,
                                    const uint8_t *w_packed_dev, const QhRequant &rq, uint8_t *y_dev,
                                    void *workspace, cudaStream_t stream);
cudaError_t qh_cuda_conv2d_add_u4s4u4_v(const ConvDesc &d, int variant, const uint8_t *x_dev,
                                        const uint8_t *w_packed_dev, const QhRequant &rq,
                                        const QhResidual &res, uint8_t *y_dev, void *workspace,
                                        cudaStream_t stream);
