// Helpers shared by the libFuzzer targets of fuzz/ (no runtime/ changes needed).
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace qh::fuzz {

// An in-memory regular file (memfd) whose contents are replaced on each write(): readers that take
// a path (load_npy, load_image, ...) open it as /proc/self/fd/N, which passes the regular-file
// checks of runtime/limits.h without touching the disk.
class MemFile {
public:
    explicit MemFile(const char *name) {
        fd_ = memfd_create(name, MFD_CLOEXEC);
        if (fd_ < 0) {
            std::perror("memfd_create");
            std::abort();
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    ~MemFile() { close(fd_); }
    void write(const uint8_t *data, size_t size) {
        if (ftruncate(fd_, 0) != 0 || (size && pwrite(fd_, data, size, 0) != ssize_t(size))) {
            std::perror("memfd write");
            std::abort();
        }
    }
    std::string read_all() const {
        std::string s;
        char buf[65536];
        for (off_t off = 0;;) {
            ssize_t n = pread(fd_, buf, sizeof buf, off);
            if (n <= 0) break;
            s.append(buf, size_t(n));
            off += n;
        }
        return s;
    }
    const std::string &path() const { return path_; }

private:
    int fd_ = -1;
    std::string path_;
};

// A finding that is not a crash (a broken invariant): print and abort so libFuzzer saves it.
[[noreturn]] inline void fail(const std::string &what) {
    std::fprintf(stderr, "qhalide fuzz: invariant broken: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

}  // namespace qh::fuzz
