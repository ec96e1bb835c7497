// The one place for arithmetic on sizes that come from outside (model files, .npy headers,
// images, command lines) and for reading files. Every reader and prepare() goes through it, so
// a declared size is checked before anything is allocated and the error says what was declared,
// where, and which limit it broke.
//
// Limits (README "Limits"):
//  - a tensor has at most kMaxTensorElements elements and every dimension fits in int32 (Halide
//    buffers index with int32);
//  - no single allocation and no prepared model's memory (arena + owned tensors) exceeds the
//    memory budget: memory_budget(), by default half of the machine's physical memory, set by
//    set_memory_budget() or the environment variable QHALIDE_MEMORY_BUDGET (bytes, with an
//    optional K/M/G suffix), read once, here;
//  - files are read only when they are regular files, up to a per-kind size limit (a FIFO,
//    /dev/zero or a directory is refused before the first read);
//  - thread counts are bounded by max_threads() (4x the machine's hardware threads, at least 64).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace qh {

constexpr int64_t kMaxTensorElements = int64_t(1) << 31;

// a * b and a + b for non-negative sizes; throw std::length_error("<what>: ...") on overflow.
int64_t checked_mul(int64_t a, int64_t b, const std::string &what);
int64_t checked_add(int64_t a, int64_t b, const std::string &what);
// Element count of `shape` after checking every dimension is >= 0 and fits in int32 and the
// product of the non-zero dimensions stays <= limit (also for an empty tensor, so every partial
// product of a checked shape fits); throws std::length_error naming `what` and the shape otherwise.
int64_t checked_numel(const std::vector<int64_t> &shape, const std::string &what,
                      int64_t limit = kMaxTensorElements);

// The memory budget in bytes (see above).
size_t memory_budget();
void set_memory_budget(size_t bytes);  // 0: back to the default
// Throws std::length_error "<what> needs N bytes, more than the memory budget of M bytes
// (QHALIDE_MEMORY_BUDGET)" when bytes > memory_budget().
void check_budget(size_t bytes, const std::string &what);
// "1.5 GiB": a byte count for messages.
std::string bytes_str(size_t bytes);

// Whole contents of a regular file of at most max_bytes; throws std::runtime_error naming the
// path: "cannot open", "not a regular file (a FIFO, device or directory)", "is N bytes, more than
// the limit of M for <kind>", read errors.
std::string read_regular_file(const std::string &path, size_t max_bytes, const char *kind);
// Opens for reading after the same regular-file check (size returned in *size); the caller reads.
// Returns a FILE* the caller closes.
std::FILE *open_regular_file(const std::string &path, size_t max_bytes, const char *kind, size_t *size);

// A name from a file, safe to put in a one-line message: control characters (newlines...) and
// non-printable bytes become \n, \xNN; longer than 200 bytes is cut with "...".
std::string printable(const std::string &name);
// The same escaping without the cut: what the library's entry points (import, prepare) apply to
// their error messages, so one error is one line whatever names a file holds.
std::string one_line(const std::string &msg);

// Upper bound for thread counts (options, --threads).
int max_threads();
// Throws std::invalid_argument("<what>: N threads, expected 0..max_threads()") when out of range.
void check_threads(int64_t threads, const std::string &what);

}  // namespace qh
