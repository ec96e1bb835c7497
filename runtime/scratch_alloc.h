// Halide's kernels allocate their per-task scratch (e.g. the zero-point-padded input rows of a
// conv task) through halide_malloc on every call. install_scratch_allocator() routes
// halide_malloc/halide_free to a cache of freed blocks, so once every kernel has run
// once, later runs reuse blocks and never reach the system allocator (Model::execute() is
// allocation-free; tests/test_no_alloc.cpp checks it).
#pragma once

namespace qh {

// Idempotent and thread-safe; Model::prepare() calls it with its thread count (0: one per core).
// Any int is accepted: the count only sizes the block cache and is clamped to [1, max_threads()].
void install_scratch_allocator(int threads);

}  // namespace qh
