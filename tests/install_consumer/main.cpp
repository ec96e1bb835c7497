// Quantizes four floats with the installed library and checks the ONNX answer; uses qhalide_io
// and qhalide_models, the libraries beside the core.
#include <cstdio>
#include <stdexcept>

#include "io/image.h"
#include "io/labels.h"
#include "models/resnet.h"
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
    // qhalide_io links libpng/libjpeg through the installed config: a truncated PNG must throw.
    const uint8_t junk[12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
    try {
        qh::io::decode_image(junk, sizeof(junk), "junk");
        std::printf("decode_image accepted junk\n");
        return 1;
    } catch (const std::runtime_error &e) {
        std::printf("decode_image: %s\n", e.what());
    }
    if (qh::io::top_k(in, 4, 1).at(0).first != 3) return 1;
    qh::ResNetOptions ro;
    ro.depth = 18;
    ro.num_classes = 10;
    ro.image_size = 32;
    if (qh::build_resnet(ro).nodes.empty()) return 1;
    std::printf("installed qhalide ok (%s)\n", qh::last_kernel("quantize_f32u8").c_str());
    return 0;
}
