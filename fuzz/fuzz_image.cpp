// libFuzzer target: the PNG/JPEG decoders (runtime/io/image.h, decode_image from memory) and, for
// images that decode and are small, the ImageNet preprocessing (resize 32, crop 24). Invariants:
// a decoded image has width, height > 0 and rgb.size() == width * height * 3; the preprocessed
// tensor is {1, 24, 24, 3} f32. std::exception is the expected way to refuse.
#include <exception>

#include "fuzz_util.h"
#include "io/image.h"
#include "resource_limits.h"

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    qh::set_memory_budget(size_t(256) << 20);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qh::io::Image img;
    try {
        img = qh::io::decode_image(data, size, "fuzz");
    } catch (const std::exception &) {
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * size_t(img.height) * 3)
        qh::fuzz::fail("decoded image " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                       " has " + std::to_string(img.rgb.size()) + " bytes");
    if (int64_t(img.width) * img.height > (1 << 20)) return 0;  // keep the resize cheap
    try {
        qh::Tensor t = qh::io::imagenet_preprocess(img, 32, 24);
        if (t.shape() != std::vector<int64_t>{1, 24, 24, 3} || t.dtype() != qh::DType::f32)
            qh::fuzz::fail("imagenet_preprocess returned a wrong shape");
    } catch (const std::exception &) {
    }
    return 0;
}
