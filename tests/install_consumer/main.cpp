// Quantizes four floats with the installed library and checks the ONNX answer.
#include <cstdio>

#include "ops.h"

int main() {
    float in[4] = {0.f, 2.f, 3.f, 1000.f};
    qh::Tensor x = qh::Tensor::wrap(qh::DType::f32, {4}, in);
    qh::Tensor y(qh::DType::u8, {4}, qh::QuantParams::per_tensor(2.f, 128));
    qh::quantize(x, y);
    const uint8_t want[4] = {128, 129, 130, 255};  // ONNX test_quantizelinear, half to even
    for (int i = 0; i < 4; i++)
        if (y.data<uint8_t>()[i] != want[i]) {
            std::printf("mismatch at %d: %d vs %d\n", i, y.data<uint8_t>()[i], want[i]);
            return 1;
        }
    std::printf("installed qhalide ok (%s)\n", qh::last_kernel("quantize_f32u8").c_str());
    return 0;
}
