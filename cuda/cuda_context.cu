#include "cuda_context.h"

#include <cuda.h>
#include <mutex>

#include "HalideRuntimeCuda.h"

namespace {

CUcontext g_ctx = nullptr;
cudaStream_t g_stream = nullptr;
cudaError_t g_err = cudaSuccess;

// Halide's handlers: always the primary context and the shared stream. Halide pushes the
// context around each use itself; nothing to release.
int acquire_context(void *, void **ctx, bool) {
    *ctx = g_ctx;
    return g_ctx ? 0 : -1;
}
int release_context(void *) { return 0; }
int get_stream(void *, void *, void **stream) {
    *stream = g_stream;
    return 0;
}

void init() {
    if ((g_err = cudaSetDevice(0)) != cudaSuccess) return;
    if ((g_err = cudaFree(nullptr)) != cudaSuccess) return;  // creates the primary context
    // The driver's cuCtxGetCurrent through the runtime, so nothing links libcuda (CI has none).
    void *fn = nullptr;
    cudaDriverEntryPointQueryResult q;
    if ((g_err = cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, 12000, cudaEnableDefault, &q)) !=
        cudaSuccess)
        return;
    if (q != cudaDriverEntryPointSuccess || !fn) {
        g_err = cudaErrorSymbolNotFound;
        return;
    }
    CUcontext ctx = nullptr;
    if (reinterpret_cast<CUresult (*)(CUcontext *)>(fn)(&ctx) != CUDA_SUCCESS || !ctx) {
        g_err = cudaErrorDeviceUninitialized;
        return;
    }
    // A blocking stream: it also orders with work Halide puts on the legacy null stream (copies).
    if ((g_err = cudaStreamCreate(&g_stream)) != cudaSuccess) return;
    g_ctx = ctx;
    halide_set_cuda_acquire_context(acquire_context);
    halide_set_cuda_release_context(release_context);
    halide_set_cuda_get_stream(get_stream);
}

}  // namespace

cudaStream_t qh_cuda_shared_stream(cudaError_t *err) {
    static std::once_flag once;
    std::call_once(once, init);
    if (err) *err = g_err;
    return g_err == cudaSuccess ? g_stream : nullptr;
}

cudaError_t qh_cuda_graph_record(const std::function<void()> &work, cudaGraphExec_t *exec, std::string *why) {
    *exec = nullptr;
    cudaError_t e = cudaSuccess;
    cudaStream_t s = qh_cuda_shared_stream(&e);
    auto failed = [&](cudaError_t err, const std::string &what) {
        cudaGetLastError();  // capture errors are not sticky; leave no error behind
        if (why) *why = what + (err != cudaSuccess ? std::string(": ") + cudaGetErrorString(err) : std::string());
        return err != cudaSuccess ? err : cudaErrorUnknown;
    };
    if (!s) return failed(e, "no shared CUDA stream");
    if ((e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal)) != cudaSuccess)
        return failed(e, "cudaStreamBeginCapture");
    std::string thrown;
    try {
        work();
    } catch (const std::exception &ex) {
        thrown = ex.what();
    } catch (...) {
        thrown = "unknown exception";
    }
    cudaGraph_t graph = nullptr;
    cudaError_t end = cudaStreamEndCapture(s, &graph);  // always: leaves capture mode
    if (!thrown.empty()) {
        if (graph) cudaGraphDestroy(graph);
        return failed(cudaErrorStreamCaptureInvalidated, "recording failed: " + thrown);
    }
    if (end != cudaSuccess || !graph) return failed(end, "cudaStreamEndCapture");
    e = cudaGraphInstantiate(exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        *exec = nullptr;
        return failed(e, "cudaGraphInstantiate");
    }
    return cudaSuccess;
}

cudaError_t qh_cuda_graph_launch(cudaGraphExec_t exec) { return cudaGraphLaunch(exec, qh_cuda_shared_stream()); }

void qh_cuda_graph_destroy(cudaGraphExec_t exec) {
    if (exec) cudaGraphExecDestroy(exec);
}
