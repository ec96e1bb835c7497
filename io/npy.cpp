#include "io/npy.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "resource_limits.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy I/O assumes a little-endian host");

namespace qh::io {

namespace {

[[noreturn]] void fail(const std::string &path, const std::string &what) {
    throw std::runtime_error(printable(path) + ": " + what);
}

const char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct Header {
    std::string descr;
    bool fortran = false;
    std::vector<int64_t> shape;
    bool has_descr = false, has_fortran = false, has_shape = false;
};

class HeaderParser {
public:
    HeaderParser(const std::string &s, const std::string &path) : s_(s), path_(path) {}

    Header parse() {
        Header h;
        expect('{');
        while (true) {
            skip_ws();
            if (peek() == '}') break;
            std::string key = string_lit();
            expect(':');
            skip_ws();
            if (key == "descr") {
                h.descr = string_lit();
                h.has_descr = true;
            } else if (key == "fortran_order") {
                h.fortran = bool_lit();
                h.has_fortran = true;
            } else if (key == "shape") {
                h.shape = tuple_lit();
                h.has_shape = true;
            } else {
                bad("unexpected key '" + printable(key) + "'");
            }
            skip_ws();
            if (peek() == ',') {
                pos_++;
                continue;
            }
            if (peek() != '}') bad("expected ',' or '}'");
        }
        pos_++;
        while (pos_ < s_.size()) {
            char c = s_[pos_++];
            if (c != ' ' && c != '\n' && c != '\t' && c != '\r' && c != '\0') bad("junk after the dict");
        }
        if (!h.has_descr || !h.has_fortran || !h.has_shape)
            bad("missing 'descr', 'fortran_order' or 'shape'");
        return h;
    }

private:
    [[noreturn]] void bad(const std::string &what) {
        fail(path_, "malformed .npy header (" + what + " at offset " + std::to_string(pos_) + "): " + printable(s_));
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) pos_++;
    }
    char peek() { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    void expect(char c) {
        skip_ws();
        if (peek() != c) bad(std::string("expected '") + c + "'");
        pos_++;
    }
    std::string string_lit() {
        skip_ws();
        char q = peek();
        if (q != '\'' && q != '"') bad("expected a string");
        size_t end = s_.find(q, pos_ + 1);
        if (end == std::string::npos) bad("unterminated string");
        std::string r = s_.substr(pos_ + 1, end - pos_ - 1);
        pos_ = end + 1;
        return r;
    }
    bool bool_lit() {
        if (s_.compare(pos_, 4, "True") == 0) {
            pos_ += 4;
            return true;
        }
        if (s_.compare(pos_, 5, "False") == 0) {
            pos_ += 5;
            return false;
        }
        bad("expected True or False");
    }
    std::vector<int64_t> tuple_lit() {
        std::vector<int64_t> r;
        expect('(');
        while (true) {
            skip_ws();
            if (peek() == ')') break;
            if (peek() < '0' || peek() > '9') bad("expected a dimension");
            int64_t v = 0;
            while (peek() >= '0' && peek() <= '9') {
                if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("dimension too large");
                v = v * 10 + (s_[pos_++] - '0');
            }
            if (peek() == 'L') pos_++;  // Python 2 longs
            r.push_back(v);
            skip_ws();
            if (peek() == ',') {
                pos_++;
                continue;
            }
            if (peek() != ')') bad("expected ',' or ')'");
        }
        pos_++;
        return r;
    }

    const std::string &s_;
    const std::string &path_;
    size_t pos_ = 0;
};

enum class Src { f4, f8, u1, i1, i4, i8 };

Src parse_descr(const std::string &d, const std::string &path) {
    if (d.size() == 3) {
        char order = d[0];
        std::string type = d.substr(1);
        if (type == "u1" || type == "i1") {
            if (order == '|' || order == '<' || order == '>' || order == '=')
                return type == "u1" ? Src::u1 : Src::i1;
        } else if (type == "f4" || type == "f8" || type == "i4" || type == "i8") {
            if (order == '>')
                fail(path, "big-endian .npy data ('" + printable(d) + "') is not supported; expected little-endian ('<')");
            if (order == '<' || order == '=')
                return type == "f4" ? Src::f4 : type == "f8" ? Src::f8 : type == "i4" ? Src::i4 : Src::i8;
        }
    }
    fail(path, "unsupported .npy dtype '" + printable(d) + "' (expected '<f4', '|u1', '|i1', '<i4', '<f8' or '<i8')");
}

size_t src_itemsize(Src s) {
    switch (s) {
    case Src::u1: case Src::i1: return 1;
    case Src::f4: case Src::i4: return 4;
    case Src::f8: case Src::i8: return 8;
    }
    return 0;
}

DType src_dtype(Src s) {
    switch (s) {
    case Src::u1: return DType::u8;
    case Src::i1: return DType::s8;
    case Src::f4: case Src::f8: return DType::f32;
    case Src::i4: case Src::i8: return DType::s32;
    }
    return DType::u8;
}

const char *descr_of(DType t, const std::string &path) {
    switch (t) {
    case DType::f32: return "<f4";
    case DType::u8: return "|u1";
    case DType::s8: return "|i1";
    case DType::s32: return "<i4";
    default: fail(path, std::string("cannot save a ") + dtype_name(t) + " tensor as .npy (no NumPy dtype)");
    }
}

}  // namespace

Tensor load_npy(const std::string &path) {
    // The data is allocated whole, so a file larger than the memory budget cannot be loaded.
    size_t file_size = 0;
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> f(
        open_regular_file(path, memory_budget(), "a .npy file", &file_size), std::fclose);
    auto read = [&](void *dst, size_t n) { return n == 0 || std::fread(dst, 1, n, f.get()) == n; };

    unsigned char pre[10];
    if (file_size < 8 || !read(pre, 8) || std::memcmp(pre, kMagic, 6) != 0)
        fail(path, "not a .npy file (expected the magic \"\\x93NUMPY\")");
    const int major = pre[6], minor = pre[7];
    size_t header_len, prefix;
    if (major == 1) {
        if (!read(pre + 8, 2)) fail(path, "truncated .npy header");
        header_len = size_t(pre[8]) | size_t(pre[9]) << 8;
        prefix = 10;
    } else if (major == 2 || major == 3) {
        unsigned char l[4];
        if (!read(l, 4)) fail(path, "truncated .npy header");
        header_len = size_t(l[0]) | size_t(l[1]) << 8 | size_t(l[2]) << 16 | size_t(l[3]) << 24;
        prefix = 12;
    } else {
        fail(path, "unsupported .npy format version " + std::to_string(major) + "." +
                       std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)");
    }
    if (header_len > file_size - prefix)
        fail(path, "truncated .npy header (header length " + std::to_string(header_len) + ", file size " +
                       std::to_string(file_size) + ")");
    std::string header(header_len, '\0');
    if (!read(header.data(), header_len)) fail(path, "truncated .npy header");

    Header h = HeaderParser(header, path).parse();
    Src src = parse_descr(h.descr, path);
    if (h.fortran) fail(path, "Fortran-order .npy arrays are not supported (expected fortran_order: False)");

    // Declared sizes are checked against the limits and the file's real data before anything
    // is allocated.
    const std::string what = printable(path) + ": .npy shape";
    const int64_t numel = checked_numel(h.shape, what);
    const size_t item = src_itemsize(src);
    const uint64_t data_bytes = uint64_t(checked_mul(numel, int64_t(item), what));
    const uint64_t have = uint64_t(file_size) - prefix - header_len;
    if (have < data_bytes)
        fail(path, "truncated .npy data: expected " + std::to_string(data_bytes) + " bytes for shape " +
                       shape_str(h.shape) + " ('" + printable(h.descr) + "'), found " + std::to_string(have));
    if (have > data_bytes)
        fail(path, std::to_string(have - data_bytes) + " unexpected trailing bytes after the .npy data");
    check_budget(dtype_storage_bytes(src_dtype(src), numel), what);

    Tensor t(src_dtype(src), h.shape);
    if (src == Src::f8 || src == Src::i8) {
        // Converted a chunk at a time: no second copy of the data.
        unsigned char buf[1 << 16];
        const int64_t chunk = int64_t(sizeof buf / 8);
        for (int64_t i0 = 0; i0 < numel; i0 += chunk) {
            const int64_t n = std::min(chunk, numel - i0);
            if (!read(buf, size_t(n) * 8)) fail(path, "read error in .npy data");
            for (int64_t j = 0; j < n; j++) {
                const int64_t i = i0 + j;
                if (src == Src::f8) {
                    double v;
                    std::memcpy(&v, buf + j * 8, 8);
                    if (std::isfinite(v) && std::fabs(v) > double(std::numeric_limits<float>::max()))
                        fail(path, "'<f8' value " + std::to_string(v) + " at flat index " + std::to_string(i) +
                                       " does not fit in float32");
                    t.data<float>()[i] = float(v);
                } else {
                    int64_t v;
                    std::memcpy(&v, buf + j * 8, 8);
                    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
                        fail(path, "'<i8' value " + std::to_string(v) + " at flat index " + std::to_string(i) +
                                       " does not fit in int32");
                    t.data<int32_t>()[i] = int32_t(v);
                }
            }
        }
    } else if (!read(t.raw(), size_t(data_bytes))) {
        fail(path, "read error in .npy data");
    }
    return t;
}

void save_npy(const std::string &path, const Tensor &t) {
    const char *descr = descr_of(t.dtype(), path);
    if (!t.defined()) fail(path, "cannot save a tensor without data");
    std::string shape = "(";
    for (int i = 0; i < t.rank(); i++) shape += std::to_string(t.dim(i)) + (t.rank() == 1 ? "," : i + 1 < t.rank() ? ", " : "");
    shape += ")";
    std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    // Pad with spaces so that magic + version + length + header is a multiple of 64, ending in '\n'.
    size_t prefix = 10;
    size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
    if (total - prefix > 65535) {
        prefix = 12;
        total = (prefix + dict.size() + 1 + 63) / 64 * 64;
    }
    const size_t header_len = total - prefix;
    std::string header = dict + std::string(header_len - dict.size() - 1, ' ') + "\n";

    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) fail(path, std::string("cannot create .npy file (") + std::strerror(errno) + ")");
    f.write(kMagic, 6);
    if (prefix == 10) {
        const char v[4] = {1, 0, char(header_len & 0xff), char(header_len >> 8)};
        f.write(v, 4);
    } else {
        const char v[6] = {2, 0, char(header_len & 0xff), char(header_len >> 8 & 0xff),
                           char(header_len >> 16 & 0xff), char(header_len >> 24 & 0xff)};
        f.write(v, 6);
    }
    f.write(header.data(), std::streamsize(header.size()));
    if (t.nbytes()) f.write(static_cast<const char *>(t.raw()), std::streamsize(t.nbytes()));
    f.close();
    if (!f) fail(path, "write error");
}

}  // namespace qh::io
