# The one list of kernels. Each family is built for every target tag; its name follows
# <op>_<src><wei><dst> (weights: s8 = symmetric s8, z8 = 8-bit with zero points, s4 = symmetric
# s4; u4 src/dst = packed u4 storage, two channels per byte; a conv2d_add's residual has the
# dst's type unless a fourth field names it: conv2d_add_u4s4u4u8 = u8 residual), kernels are
# <family>__<tag>. From this list come the static library, the dispatch table
# (build/generated/qh_kernel_table.inc) and therefore the tests and benchmarks.
#
#                  family               generator        generator params
qh_kernel_family(conv2d_u8s8u8        conv2d          dst_type=uint8)
qh_kernel_family(conv2d_u8s8s8        conv2d          dst_type=int8)
qh_kernel_family(conv2d_u8s8s32       conv2d          dst_type=int32)
qh_kernel_family(conv2d_u8z8u8        conv2d          dst_type=uint8 weight_zp=true)
qh_kernel_family(conv2d_u8z8s32       conv2d          dst_type=int32 weight_zp=true)
qh_kernel_family(conv2d_add_u8s8u8    conv2d          dst_type=uint8 residual=true)
# INT4 (generators/conv2d_generator.cpp: the s4 blocked layout and the u4 storage contract).
# W4A8: u8 activations x s4 weights; W4A4: u4 storage in and out (u8 at the edges of a 4-bit
# region: a 4-bit-range value stored as u8 runs on the u8 families with act_max = 15).
qh_kernel_family(conv2d_u8s4u8        conv2d          weight_bits=4)
qh_kernel_family(conv2d_add_u8s4u8    conv2d          weight_bits=4 residual=true)
qh_kernel_family(conv2d_u4s4u4        conv2d          weight_bits=4 src_bits=4 dst_bits=4)
qh_kernel_family(conv2d_add_u4s4u4    conv2d          weight_bits=4 src_bits=4 dst_bits=4 residual=true)
qh_kernel_family(conv2d_u8s4u4        conv2d          weight_bits=4 dst_bits=4)
qh_kernel_family(conv2d_add_u8s4u4    conv2d          weight_bits=4 dst_bits=4 residual=true)
qh_kernel_family(conv2d_u4s4u8        conv2d          weight_bits=4 src_bits=4)
qh_kernel_family(conv2d_add_u4s4u8    conv2d          weight_bits=4 src_bits=4 residual=true)
qh_kernel_family(conv2d_add_u8s4u4u8  conv2d          weight_bits=4 dst_bits=4 res_bits=8 residual=true)
qh_kernel_family(conv2d_add_u4s4u4u8  conv2d          weight_bits=4 src_bits=4 dst_bits=4 res_bits=8 residual=true)
qh_kernel_family(conv2d_add_u8s4u8u4  conv2d          weight_bits=4 res_bits=4 residual=true)
qh_kernel_family(conv2d_add_u4s4u8u4  conv2d          weight_bits=4 src_bits=4 res_bits=4 residual=true)
# Grouped / depthwise / dilated conv (generators/conv2d_generator.cpp, Conv2dGrouped): weights
# with output channels dense, no blocking; z8 = weights with zero points.
qh_kernel_family(conv2d_grouped_u8s8u8 conv2d_grouped  dst_type=uint8)
qh_kernel_family(conv2d_grouped_u8z8u8 conv2d_grouped  dst_type=uint8 weight_zp=true)
qh_kernel_family(conv2d_grouped_u8s8s32 conv2d_grouped dst_type=int32)
qh_kernel_family(conv2d_grouped_u8z8s32 conv2d_grouped dst_type=int32 weight_zp=true)
qh_kernel_family(dense_u8s8u8         dense           dst_type=uint8)
qh_kernel_family(dense_u8s8s8         dense           dst_type=int8)
qh_kernel_family(dense_u8s8s32        dense           dst_type=int32)
qh_kernel_family(dense_u8z8u8         dense           dst_type=uint8 weight_zp=true)
qh_kernel_family(dense_u8z8s32        dense           dst_type=int32 weight_zp=true)
qh_kernel_family(dense_u8s4u8         dense           weight_bits=4)
qh_kernel_family(dense_u8s4s32        dense           dst_type=int32 weight_bits=4)
qh_kernel_family(maxpool_u8u8         maxpool         data_type=uint8)
qh_kernel_family(maxpool_s8s8         maxpool         data_type=int8)
qh_kernel_family(avgpool_u8u8         avgpool)
qh_kernel_family(global_avgpool_u8u8  global_avgpool  dst_type=uint8)
qh_kernel_family(add_u8u8u8           add             dst_type=uint8)
qh_kernel_family(lut_u8u8             lut)
qh_kernel_family(mul_u8u8u8           mul)
qh_kernel_family(transpose_f32f32     transpose       elem_type=float32)
qh_kernel_family(transpose_u8u8       transpose       elem_type=uint8)
qh_kernel_family(quantize_f32u8       quantize        dst_type=uint8)
qh_kernel_family(quantize_f32s8       quantize        dst_type=int8)
qh_kernel_family(dequantize_u8f32     dequantize      src_type=uint8)
qh_kernel_family(dequantize_s8f32     dequantize      src_type=int8)
qh_kernel_family(dequantize_s32f32    dequantize      src_type=int32)
qh_kernel_family(requantize_s32u8     requantize      dst_type=uint8)
qh_kernel_family(requantize_s32s8     requantize      dst_type=int8)
qh_kernel_family(requantize_s32u4     requantize      dst_type=uint8 int4=true)
qh_kernel_family(requantize_s32s4     requantize      dst_type=int8 int4=true)
qh_kernel_family(int4_pack_s8s4       int4_pack       src_type=int8)
qh_kernel_family(int4_pack_u8u4       int4_pack       src_type=uint8)
qh_kernel_family(int4_unpack_s4s8     int4_unpack     dst_type=int8)
qh_kernel_family(int4_unpack_u4u8     int4_unpack     dst_type=uint8)
# cuda_mma (only with the tensor-core microkernel, i.e. nvcc found): Halide packing + epilogue
# stages around it (generators/conv2d_extern_generator.cpp); dense runs as a 1x1 conv on them.
qh_kernel_family(conv2d_extern_u8s8u8             conv2d_extern  TAGS cuda_mma)
qh_kernel_family(conv2d_extern_im2col_u8s8u8      conv2d_extern  im2col=true TAGS cuda_mma)
qh_kernel_family(conv2d_add_extern_u8s8u8         conv2d_extern  residual=true TAGS cuda_mma)
qh_kernel_family(conv2d_add_extern_im2col_u8s8u8  conv2d_extern  residual=true im2col=true TAGS cuda_mma)
