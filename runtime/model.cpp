#include "model.h"
#include "scratch_alloc.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "device.h"
#include "kernels.h"
#include "options.h"
#include "passes.h"
#include "resource_limits.h"

extern "C" void openblas_set_num_threads(int);  // OpenBLAS (linked by CMake)

namespace qh {

const char *precision_name(Precision p) { return p == Precision::int8 ? "int8" : "fp32"; }

// The prepared Program (values, steps, weights, memory plan; read-only after prepare) and the
// execution contexts made from it.
struct Model::Impl : Program {
    std::vector<LayerInfo> layers;  // as bound (the default context's kernels)
    std::unique_ptr<Context> main;  // input()/output()/execute()
    std::mutex bind_mu;  // contexts are bound one at a time (kernel choice is not reentrant)
    std::mutex pool_mu;  // run(): contexts not in use
    std::vector<std::unique_ptr<Context>> pool;

    std::string not_replayable(const Exec &e) const;
    double time_device(Exec &e, const std::function<void()> &work);
    void bind_graph(Exec &e);
    void allocate(Exec &e);
    void bind(Exec &e);
    std::unique_ptr<Context> make_context();
};

// A context's memory: the arena (host or device), a tensor view per value, the external tensors.
void Model::Impl::allocate(Exec &e) {
    const size_t kAlign = 64;
    e.t.assign(v.size(), Tensor());
    e.scratch.assign(scratch_floats, 0.f);
    if (opt.device != Device::cpu) {  // same plan, device memory: one arena, a mirror per external
        e.dev_arena = DeviceBuffer(opt.device, arena_size);
        e.host.assign(v.size(), Tensor());
        for (size_t i = 0; i < v.size(); i++)
            if (v[i].external && v[i].alias < 0) {
                e.host[i] = Tensor(v[i].dtype, v[i].shape, v[i].quant);
                e.mirror.emplace(int(i), DeviceBuffer(opt.device, e.host[i].nbytes(), e.host[i].raw()));
            }
        for (size_t i = 0; i < v.size(); i++) {
            int r = root(int(i));
            if (v[r].external) {
                if (int(i) != r) e.host[i] = Tensor::wrap(v[i].dtype, v[i].shape, e.host[r].raw(), v[i].quant);
                e.t[i] = Tensor::wrap_device(opt.device, v[i].dtype, v[i].shape, e.mirror.at(r).handle(), v[i].quant);
            } else if (v[r].first >= 0) {
                e.t[i] = Tensor::wrap_device(opt.device, v[i].dtype, v[i].shape, e.dev_arena.handle() + v[r].offset,
                                             v[i].quant);
            }
        }
        return;
    }
    void *mem = std::aligned_alloc(kAlign, std::max<size_t>((arena_size + kAlign - 1) / kAlign * kAlign, kAlign));
    if (!mem)
        throw std::length_error("model '" + g.name + "': out of memory allocating the " + bytes_str(arena_size) +
                                " arena of intermediate values");
    e.arena = std::shared_ptr<uint8_t>(static_cast<uint8_t *>(mem), std::free);
    for (size_t i = 0; i < v.size(); i++) {
        int r = root(int(i));
        if (v[r].external) {
            if (int(i) == r) e.t[i] = Tensor(v[i].dtype, v[i].shape, v[i].quant);
        } else if (v[r].first >= 0) {
            e.t[i] = Tensor::wrap(v[i].dtype, v[i].shape, e.arena.get() + v[r].offset, v[i].quant);
        }
    }
    for (size_t i = 0; i < v.size(); i++) {  // views of external values
        int r = root(int(i));
        if (v[r].external && int(i) != r) e.t[i] = Tensor::wrap(v[i].dtype, v[i].shape, e.t[r].raw(), v[i].quant);
    }
}

// Binds every step to the context's tensors (validation, kernel choice, Halide buffers). An error
// names the model and the layer.
void Model::Impl::bind(Exec &e) {
    std::lock_guard<std::mutex> l(bind_mu);
    KernelOptionsScope scope(opt.kernels);
    e.ops.clear();
    e.layers.clear();
    for (const Step &s : steps) {
        LayerInfo info = s.info;
        try {
            if (s.bind) {
                e.ops.push_back(s.bind(e));
                info.kernel = e.ops.back().kernel();
            } else {
                Exec *ep = &e;
                e.ops.push_back(BoundOp(s.info.name, s.info.kernel, [run = s.run, ep] {
                    run(*ep);
                    return 0;
                }));
            }
        } catch (const std::bad_alloc &) {
            throw std::length_error("model '" + g.name + "', layer '" + printable(s.info.name) + "' (" + s.info.op +
                                    "): out of memory while binding");
        } catch (const std::exception &ex) {
            throw std::runtime_error("model '" + g.name + "', layer '" + printable(s.info.name) + "' (" + s.info.op +
                                     "): " + ex.what());
        }
        e.layers.push_back(info);
    }
}

// Model's memory per context (arena + external tensors), checked against the budget before any of
// it is allocated.
static size_t context_bytes(const Program &p, const std::string &what) {
    int64_t total = checked_add(int64_t(p.arena_size), checked_mul(int64_t(p.scratch_floats), 4, what), what);
    auto add = [&](const ValueInfo &vi) {
        total = checked_add(total, int64_t(dtype_storage_bytes(vi.dtype, checked_numel(vi.shape, what)) + 63) / 64 * 64, what);
    };
    for (const ValueInfo &vi : p.v)
        if (vi.external && vi.alias < 0) add(vi);
    for (size_t k = 0; k < p.in_ids.size(); k++)  // the caller's NCHW copies
        if (p.in_nchw[k]) add(p.v[p.in_ids[k]]);
    for (size_t k = 0; k < p.out_ids.size(); k++)
        if (p.out_nchw[k]) add(p.v[p.out_ids[k]]);
    return size_t(total);
}

struct Model::Context::State {
    Model::Impl *m = nullptr;
    Exec e;
};

Model::Context::Context() : s_(new State) {}
Model::Context::~Context() = default;

std::unique_ptr<Model::Context> Model::Impl::make_context() {
    const std::string what = "model '" + printable(g.name) + "': an execution context (arena, inputs, outputs)";
    check_budget(context_bytes(*this, what), what);
    std::unique_ptr<Context> c(new Context());
    c->s_->m = this;
    allocate(c->s_->e);
    Exec &e = c->s_->e;
    auto nchw_of = [this](int id) { return Tensor(v[id].dtype, nchw_shape(v[id].shape), v[id].quant); };
    e.user_in.assign(in_ids.size(), Tensor());
    e.user_out.assign(out_ids.size(), Tensor());
    for (size_t k = 0; k < in_ids.size(); k++)
        if (in_nchw[k]) e.user_in[k] = nchw_of(in_ids[k]);
    for (size_t k = 0; k < out_ids.size(); k++)
        if (out_nchw[k]) e.user_out[k] = nchw_of(out_ids[k]);
    bind(c->s_->e);
    return c;
}

Model::Model() : impl_(new Impl) {}
Model::~Model() = default;

std::unique_ptr<Model> Model::prepare(const Graph &src, const PrepareOptions &opt) {
    install_halide_error_handler();
    try {
        return prepare_impl(src, opt);
    } catch (const std::bad_alloc &) {
        throw std::length_error("model '" + printable(src.name) +
                                "': out of memory while preparing (see set_memory_budget / QHALIDE_MEMORY_BUDGET)");
    } catch (const std::length_error &e) {
        throw std::length_error(one_line(e.what()));
    } catch (const std::invalid_argument &e) {
        throw std::invalid_argument(one_line(e.what()));
    } catch (const std::exception &e) {
        throw std::runtime_error(one_line(e.what()));
    }
}

// The device runs kernels only: a host step (lookup table, copy) refuses the device, naming it.
static void check_device_steps(const Program &p) {
    const std::string dev = device_name(p.opt.device);
    for (const auto &s : p.steps)
        if (!s.bind)
            throw std::runtime_error("model '" + p.g.name + "', layer '" + s.info.name + "' (" + s.info.op + "): no " + dev +
                                     " kernel for this step (" + s.info.kernel + "); prepare the model for the CPU");
    require_device(p.opt.device, "model '" + p.g.name + "' prepared for " + dev);
}

std::unique_ptr<Model> Model::prepare_impl(const Graph &src, const PrepareOptions &opt) {
    std::unique_ptr<Model> m(new Model());
    Impl &I = *m->impl_;
    check_threads(opt.threads, "model '" + printable(src.name) + "': PrepareOptions::threads");
    src.validate();
    const bool on_device = opt.device != Device::cpu;
    const std::string dev = device_name(opt.device);
    if (on_device && opt.precision != Precision::int8)
        throw std::runtime_error("model '" + src.name + "': the fp32 path runs on the CPU only; " + dev +
                                 " needs precision int8");
    if (on_device && opt.keep_all_values)
        throw std::runtime_error("model '" + src.name + "': keep_all_values is CPU-only (" + dev + " requested)");
    if (opt.threads > 0) {
        set_num_threads(opt.threads);
        openblas_set_num_threads(opt.threads);
    }
    // The passes (runtime/passes.h), in order.
    Graph g = fold_pad(fold_batchnorm(src));
    const auto shapes = infer_shapes(g, opt.batch);
    static_cast<Program &>(I) = make_program(g, shapes, opt);
    if (opt.precision == Precision::int8) {
        I.groups = fuse(I.g);
        assign_quantization(I);
    }
    lower(I);
    if (on_device) check_device_steps(I);
    add_layout_steps(I);  // the caller's NCHW: transpose steps, or (4-bit) the host in execute()
    plan_memory(I);
    install_scratch_allocator(opt.threads);  // kernels' per-task scratch comes from a reused pool
    I.main = I.make_context();
    I.layers = I.main->s_->e.layers;
    if (on_device) I.bind_graph(I.main->s_->e);
    return m;
}

// Why the bound steps cannot be recorded into a device graph ("" if they can).
std::string Model::Impl::not_replayable(const Exec &e) const {
    for (size_t i = 0; i < e.ops.size(); i++)
        if (!e.ops[i].not_replayable().empty())
            return "layer '" + steps[i].info.name + "' (" + e.ops[i].kernel() + "): " + e.ops[i].not_replayable();
    return "";
}

// Median wall time of `work` plus a device sync, in ms (5 runs after one untimed).
double Model::Impl::time_device(Exec &e, const std::function<void()> &work) {
    std::vector<double> t;
    for (int i = 0; i < 6; i++) {
        auto t0 = std::chrono::steady_clock::now();
        work();
        e.dev_arena.sync();
        if (i) t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(t.begin(), t.begin() + 2, t.end());
    return t[2];
}

// PrepareOptions::device_graph. If every step is replayable, record them. If not (a layer's
// fastest formulation allocates per run), bind those layers again among replayable choices only,
// record that plan and keep whichever of the two runs faster, measured here: the graph saves
// launch overhead, the other plan may have faster layers.
void Model::Impl::bind_graph(Exec &e) {
    if (!opt.device_graph) {
        e.graph = DeviceGraph::none("PrepareOptions::device_graph is false");
        return;
    }
    auto record = [this, &e] {
        e.run_steps();  // lazy one-time work (module loads, kernel attributes) must not happen while recording
        e.dev_arena.sync();
        return DeviceGraph::record(opt.device, [&e] { e.run_steps(); });
    };
    const std::string why = not_replayable(e);
    if (why.empty()) {
        e.graph = record();
        return;
    }
    const double t_steps = time_device(e, [&e] { e.run_steps(); });
    std::vector<BoundOp> best(steps.size());
    {
        KernelOptions only = opt.kernels;
        only.replayable_only = true;
        KernelOptionsScope scope(only);
        for (size_t i = 0; i < steps.size(); i++)
            if (!e.ops[i].not_replayable().empty()) {
                best[i] = e.ops[i];
                e.ops[i] = steps[i].bind(e);
            }
    }
    DeviceGraph g = not_replayable(e).empty() ? record() : DeviceGraph::none(not_replayable(e));
    const double t_graph = g.ready() ? time_device(e, [&g] { g.launch(); }) : 1e30;
    char buf[160];
    if (t_graph <= t_steps) {
        e.graph = g;
        for (size_t i = 0; i < steps.size(); i++) layers[i].kernel = e.layers[i].kernel = e.ops[i].kernel();
        return;
    }
    for (size_t i = 0; i < steps.size(); i++)
        if (best[i]) e.ops[i] = best[i];
    std::snprintf(buf, sizeof buf, " (measured at prepare: %.3f ms launched step by step, %.3f ms as a graph of the replayable plan)",
                  t_steps, t_graph);
    e.graph = DeviceGraph::none(why + buf);
}

std::string Model::device_graph() const {
    const Impl &I = *impl_;
    if (I.opt.device == Device::cpu) return "off: the CPU runs no device graph";
    const Exec &e = I.main->s_->e;
    return e.graph.ready() ? "on" : "off: " + e.graph.why();
}

void Model::Context::execute_on_device() {
    Exec &e = s_->e;
    if (s_->m->opt.device == Device::cpu) return execute();
    if (e.graph.ready() && !e.profiling)
        e.graph.launch();
    else
        e.run_steps();
    e.dev_arena.sync();
}

void Model::Context::execute() {
    Exec &e = s_->e;
    const Program &p = *s_->m;
    const bool on_device = p.opt.device != Device::cpu;
    std::vector<Tensor> &ext = e.host.empty() ? e.t : e.host;  // the host external tensors
    for (size_t k = 0; k < p.in_ids.size(); k++)
        if (p.in_nchw[k]) nchw_to_nhwc(e.user_in[k], ext[p.in_ids[k]]);
    if (on_device)
        for (int id : s_->m->in_ids) e.mirror.at(id).upload();
    if (e.profiling) {
        for (size_t i = 0; i < e.ops.size(); i++) {
            auto t0 = std::chrono::steady_clock::now();
            e.ops[i].run();
            if (on_device) e.dev_arena.sync();  // only when profiling: a step's time is its own
            auto t1 = std::chrono::steady_clock::now();
            e.layers[i].total_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
            e.layers[i].calls++;
        }
    } else if (e.graph.ready()) {
        e.graph.launch();
    } else {
        e.run_steps();
    }
    if (on_device) {
        for (int id : s_->m->out_ids) e.mirror.at(id).download();
        e.dev_arena.sync();
    }
    for (size_t k = 0; k < p.out_ids.size(); k++)
        if (p.out_nchw[k]) nhwc_to_nchw(ext[p.out_ids[k]], e.user_out[k]);
}

Tensor &Model::Context::input(int i) {
    Exec &e = s_->e;
    if (s_->m->in_nchw.at(i)) return e.user_in[i];
    return (e.host.empty() ? e.t : e.host).at(s_->m->in_ids.at(i));
}
const Tensor &Model::Context::output(int i) const {
    const Exec &e = s_->e;
    if (s_->m->out_nchw.at(i)) return e.user_out[i];
    return (e.host.empty() ? e.t : e.host).at(s_->m->out_ids.at(i));
}
const std::vector<LayerInfo> &Model::Context::layers() const { return s_->e.layers; }
void Model::Context::set_profiling(bool on) { s_->e.profiling = on; }

std::unique_ptr<Model::Context> Model::create_context() {
    Impl &I = *impl_;
    if (I.opt.device != Device::cpu)
        throw std::runtime_error("model '" + I.g.name + "': execution contexts are CPU-only; a model prepared for " +
                                 device_name(I.opt.device) + " runs one execute() at a time (prepare one Model per stream)");
    return I.make_context();
}

std::vector<Tensor> Model::run(const std::vector<Tensor> &inputs) {
    Impl &I = *impl_;
    if (inputs.size() != I.in_ids.size())
        throw std::invalid_argument("model '" + I.g.name + "': run() got " + std::to_string(inputs.size()) +
                                    " inputs, the model has " + std::to_string(I.in_ids.size()));
    const bool on_device = I.opt.device != Device::cpu;
    std::unique_ptr<Context> c;
    std::unique_lock<std::mutex> l(I.pool_mu);
    if (on_device) {
        // One context on a device: requests are serialized (pool_mu stays held).
    } else if (!I.pool.empty()) {
        c = std::move(I.pool.back());
        I.pool.pop_back();
        l.unlock();
    } else {
        l.unlock();
        c = I.make_context();
    }
    Context &ctx = on_device ? *I.main : *c;
    for (size_t k = 0; k < inputs.size(); k++) {
        Tensor &dst = ctx.input(int(k));
        const Tensor &src = inputs[k];
        if (src.dtype() != dst.dtype() || src.shape() != dst.shape() || src.device() != Device::cpu || !src.raw())
            throw std::invalid_argument("model '" + I.g.name + "': input " + std::to_string(k) + " ('" +
                                        printable(I.g.values[I.g.inputs[k]].name) + "') is " + src.describe() +
                                        ", expected " + dst.describe());
        if (src.nbytes()) std::memcpy(dst.raw(), src.raw(), src.nbytes());
    }
    ctx.execute();
    std::vector<Tensor> out;
    for (int k = 0; k < int(I.out_ids.size()); k++) {
        const Tensor &o = ctx.output(k);
        Tensor r(o.dtype(), o.shape(), o.quant);
        if (o.nbytes()) std::memcpy(r.raw(), o.raw(), o.nbytes());
        out.push_back(std::move(r));
    }
    if (!on_device) {
        std::lock_guard<std::mutex> back(I.pool_mu);
        I.pool.push_back(std::move(c));
    }
    return out;
}

void Model::execute() { impl_->main->execute(); }
void Model::execute_on_device() { impl_->main->execute_on_device(); }
int Model::num_inputs() const { return int(impl_->in_ids.size()); }
int Model::num_outputs() const { return int(impl_->out_ids.size()); }
Tensor &Model::input(int i) { return impl_->main->input(i); }
const Tensor &Model::output(int i) const { return impl_->main->output(i); }
// The caller's layout of external value `id`: the graph's for a rank-4 one, else its own order.
static Layout edge_layout(const Program &p, int id) {
    return p.g.io_layout == Layout::nchw && p.v[id].shape.size() == 4 ? Layout::nchw : Layout::nhwc;
}
Layout Model::input_layout(int i) const { return edge_layout(*impl_, impl_->in_ids.at(i)); }
Layout Model::output_layout(int i) const { return edge_layout(*impl_, impl_->out_ids.at(i)); }
const std::string &Model::input_name(int i) const { return impl_->g.values.at(impl_->g.inputs.at(i)).name; }
const std::string &Model::output_name(int i) const { return impl_->g.values.at(impl_->g.outputs.at(i)).name; }
const Tensor *Model::value(int id) const {
    if (id < 0 || size_t(id) >= impl_->g.values.size()) return nullptr;
    const Tensor &t = impl_->main->s_->e.t[id];
    return t.raw() ? &t : nullptr;
}
const std::vector<LayerInfo> &Model::layers() const { return impl_->main->layers(); }
void Model::set_profiling(bool on) { impl_->main->set_profiling(on); }
size_t Model::arena_bytes() const { return impl_->arena_size; }
size_t Model::weight_bytes() const {
    size_t b = 0;
    for (const PackedWeights &w : impl_->packed)
        b += w.packed_bytes() + (w.bias.size() + w.wzp.size() + w.mult.size()) * 4;
    return b;
}
Precision Model::precision() const { return impl_->opt.precision; }
int Model::batch() const { return impl_->opt.batch; }
Device Model::device() const { return impl_->opt.device; }

}  // namespace qh
