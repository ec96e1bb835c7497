// libFuzzer target: the .npy reader (runtime/io/npy.h). The input is the file's bytes; it is
// loaded through a memfd path (load_npy takes a path). A tensor that loads is saved again and
// must load back identical (dtype, shape, bytes). std::exception is the expected way to refuse.
#include <cstring>
#include <exception>

#include "fuzz_util.h"
#include "io/npy.h"
#include "resource_limits.h"

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    qh::set_memory_budget(size_t(256) << 20);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static qh::fuzz::MemFile in("fuzz_npy_in"), out("fuzz_npy_out");
    in.write(data, size);
    qh::Tensor t;
    try {
        t = qh::io::load_npy(in.path());
    } catch (const std::exception &) {
        return 0;
    }
    try {
        qh::io::save_npy(out.path(), t);
    } catch (const std::exception &) {
        return 0;  // e.g. a dtype save does not support
    }
    qh::Tensor back;
    try {
        back = qh::io::load_npy(out.path());
    } catch (const std::exception &e) {
        qh::fuzz::fail(std::string("save_npy output does not load back: ") + e.what());
    }
    if (back.dtype() != t.dtype() || back.shape() != t.shape() || back.nbytes() != t.nbytes() ||
        (t.nbytes() && std::memcmp(back.raw(), t.raw(), t.nbytes()) != 0))
        qh::fuzz::fail("save_npy -> load_npy round trip changed the tensor");
    return 0;
}
