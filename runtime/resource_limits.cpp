#include "resource_limits.h"

#include "options.h"
#include "tensor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <thread>

namespace qh {

int64_t checked_mul(int64_t a, int64_t b, const std::string &what) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
        throw std::length_error(what + ": size " + std::to_string(a) + " x " + std::to_string(b) + " overflows");
    return r;
}

int64_t checked_add(int64_t a, int64_t b, const std::string &what) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
        throw std::length_error(what + ": size " + std::to_string(a) + " + " + std::to_string(b) + " overflows");
    return r;
}

int64_t checked_numel(const std::vector<int64_t> &shape, const std::string &what, int64_t limit) {
    bool zero = false;
    for (int64_t d : shape) {
        if (d < 0) throw std::length_error(what + ": negative dimension in shape " + shape_str(shape));
        if (d > std::numeric_limits<int32_t>::max())
            throw std::length_error(what + ": dimension " + std::to_string(d) + " of shape " + shape_str(shape) +
                                    " does not fit in int32");
        zero |= d == 0;
    }
    // The non-zero dims' product must fit the limit even when a zero dim empties the tensor, so
    // that any partial product of a checked shape (strides, flattened sizes) stays in range.
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d == 0) continue;
        if (__builtin_mul_overflow(n, d, &n) || n > limit)
            throw std::length_error(what + ": shape " + shape_str(shape) + " has more than " + std::to_string(limit) +
                                    " elements (the limit per tensor" + (zero ? ", counting the non-zero dims" : "") +
                                    ")");
    }
    return zero ? 0 : n;
}

namespace {

size_t default_budget() {
    if (size_t b = env_memory_budget()) return b;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) return size_t(pages) / 2 * size_t(page);
    return size_t(8) << 30;
}

std::atomic<size_t> g_budget{0};

}  // namespace

size_t memory_budget() {
    size_t b = g_budget.load(std::memory_order_relaxed);
    if (b) return b;
    static const size_t def = default_budget();
    return def;
}

void set_memory_budget(size_t bytes) { g_budget.store(bytes, std::memory_order_relaxed); }

std::string bytes_str(size_t b) {
    char buf[64];
    if (b >= (size_t(1) << 30))
        std::snprintf(buf, sizeof buf, "%.1f GiB", double(b) / double(size_t(1) << 30));
    else if (b >= (size_t(1) << 20))
        std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(size_t(1) << 20));
    else
        std::snprintf(buf, sizeof buf, "%zu bytes", b);
    return buf;
}

void check_budget(size_t bytes, const std::string &what) {
    const size_t b = memory_budget();
    if (bytes > b)
        throw std::length_error(what + " needs " + bytes_str(bytes) + " (" + std::to_string(bytes) +
                                " bytes), more than the memory budget of " + bytes_str(b) +
                                " (set_memory_budget / QHALIDE_MEMORY_BUDGET)");
}

std::FILE *open_regular_file(const std::string &path, size_t max_bytes, const char *kind, size_t *size) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below then refuses it.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open '" + printable(path) + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw std::runtime_error("cannot stat '" + printable(path) + "': " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw std::runtime_error("'" + printable(path) + "' is not a regular file (" +
                                 (S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a device or socket") +
                                 "); " + kind + " must be a file");
    }
    if (size_t(st.st_size) > max_bytes) {
        ::close(fd);
        throw std::runtime_error("'" + printable(path) + "' is " + bytes_str(size_t(st.st_size)) + ", more than the limit of " +
                                 bytes_str(max_bytes) + " for " + kind);
    }
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    std::FILE *f = ::fdopen(fd, "rb");
    if (!f) {
        ::close(fd);
        throw std::runtime_error("cannot open '" + printable(path) + "'");
    }
    if (size) *size = size_t(st.st_size);
    return f;
}

std::string read_regular_file(const std::string &path, size_t max_bytes, const char *kind) {
    size_t size = 0;
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> f(open_regular_file(path, max_bytes, kind, &size), std::fclose);
    std::string s(size, '\0');
    size_t got = size ? std::fread(s.data(), 1, size, f.get()) : 0;
    if (got != size || std::ferror(f.get()))
        throw std::runtime_error("cannot read '" + printable(path) + "' (read " + std::to_string(got) + " of " +
                                 std::to_string(size) + " bytes)");
    return s;
}

namespace {
std::string escape_controls(const std::string &name, size_t n) {
    std::string r;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = static_cast<unsigned char>(name[i]);
        if (c == '\n') r += "\\n";
        else if (c == '\r') r += "\\r";
        else if (c == '\t') r += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            r += b;
        } else r += char(c);
    }
    return r;
}
}  // namespace

std::string printable(const std::string &name) {
    const size_t n = std::min<size_t>(name.size(), 200);
    return escape_controls(name, n) + (name.size() > n ? "..." : "");
}

std::string one_line(const std::string &msg) { return escape_controls(msg, msg.size()); }

int max_threads() {
    static const int m = [] {
        unsigned h = std::thread::hardware_concurrency();
        return std::max(64, int(std::min<unsigned>(h, 1u << 16)) * 4);
    }();
    return m;
}

void check_threads(int64_t threads, const std::string &what) {
    if (threads < 0 || threads > max_threads())
        throw std::invalid_argument(what + ": " + std::to_string(threads) + " threads, expected 0 (all cores) to " +
                                    std::to_string(max_threads()));
}

}  // namespace qh
