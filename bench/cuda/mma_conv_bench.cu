// Standalone bench + bit-exactness check of cuda/mma_conv2d (tensor-core int8 conv).
// For every ResNet-50 v1.5 conv shape (bench/resnet_shapes.h) plus the v1 1x1/2 downsample and
// ResNet-18's stride-2 3x3 layers, at batch 1, 8 and 256: random u8 input (random zx), random s8
// weights, every variant checked against a plain C++ reference (all outputs at batch <= 8; at
// batch 256 every output of images 0 and N-1 plus random points), outputs poisoned before each
// checked run; timed with CUDA events (warm-up, median of 30 back-to-back launches).
//   mma_conv_bench [--peak TOPS] [--batches 1,8,256] [--out results.json] [--only NAME] [--reps 30]
//                  [--variants 0,9,11] [--layouts]
// --variants: time only these variant indices. --layouts: also run every direct-path layer in the
// NHWC, HWNC and NC32HW32 layouts (input converted on the host, outputs gathered back through the
// layout's index map and checked against the same reference; best variant, s32 and fused u8).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../../cuda/mma_conv2d.cuh"
#include "../../cuda/mma_launch.cuh"  // the layouts other than NHWC
#include "../resnet_shapes.h"

#include "bench_util.cuh"

namespace {

using namespace qh_bench;

struct Layer {
    std::string name;
    int hw, c, oc, k, stride, pad, count;  // count: occurrences in ResNet-50 v1.5 (0: extra shape)
};

std::vector<Layer> layers() {
    std::vector<Layer> v;
    for (auto &s : qh::bench::resnet50_convs()) v.push_back({s.name, s.hw, s.c, s.oc, s.k, s.stride, s.pad, s.count});
    // ResNet-50 v1 puts the stride on the first 1x1 of a downsampling block.
    v.push_back({"v1_res3_1x1s2_256_128", 56, 256, 128, 1, 2, 0, 0});
    v.push_back({"v1_res4_1x1s2_512_256", 28, 512, 256, 1, 2, 0, 0});
    v.push_back({"v1_res5_1x1s2_1024_512", 14, 1024, 512, 1, 2, 0, 0});
    // ResNet-18's 3x3 layers not already above.
    v.push_back({"r18_3x3s2_64_128", 56, 64, 128, 3, 2, 1, 0});
    v.push_back({"r18_3x3s2_128_256", 28, 128, 256, 3, 2, 1, 0});
    v.push_back({"r18_3x3s2_256_512", 14, 256, 512, 3, 2, 1, 0});
    // Coverage of the other two A paths: im2col (IC % 64 != 0, KW*IC > 32) and row gather.
    v.push_back({"x_im2col_3x3_32_64", 28, 32, 64, 3, 1, 1, 0});
    v.push_back({"x_rowgather_3x3_8_64", 30, 8, 64, 3, 1, 1, 0});
    return v;
}

uint64_t rng_state = 0x9E3779B97F4A7C15ull;
inline uint64_t rnd() {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
void fill_bytes(void *p, size_t n) {
    uint8_t *b = static_cast<uint8_t *>(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t r = rnd();
        memcpy(b + i, &r, 8);
    }
    for (; i < n; ++i) b[i] = uint8_t(rnd());
}



struct LayRes {
    std::string layer, variant;
    int batch;
    QhLayout lay;
    double us, fused_us;
    long long bad;
};

struct Best {
    double us = 0, tops = 0;
    std::string variant;
    double fused_us = 0;
    double add_us = 0;   // fused residual add (batches checked in full only)
    long long add_bad = 0;
    bool ok = true;
};

}  // namespace

int main(int argc, char **argv) {
    double peak = 0;
    std::vector<int> batches = {1, 8, 256};
    std::string out_path = "mma_conv_results.json", only;
    int reps = 30;
    bool do_layouts = false;
    std::vector<int> only_v;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--peak" && i + 1 < argc) peak = atof(argv[++i]);
        else if (a == "--out" && i + 1 < argc) out_path = argv[++i];
        else if (a == "--only" && i + 1 < argc) only = argv[++i];
        else if (a == "--reps" && i + 1 < argc) reps = atoi(argv[++i]);
        else if (a == "--layouts") do_layouts = true;
        else if (a == "--variants" && i + 1 < argc) {
            for (char *t = strtok(argv[++i], ","); t; t = strtok(nullptr, ",")) only_v.push_back(atoi(t));
        } else if (a == "--batches" && i + 1 < argc) {
            batches.clear();
            for (char *t = strtok(argv[++i], ","); t; t = strtok(nullptr, ",")) batches.push_back(atoi(t));
        }
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, %d SMs, L2 %d MB, peak(mma_rate int8) %.0f TOPS\n", prop.name, prop.multiProcessorCount,
           prop.l2CacheSize >> 20, peak);
    FILE *js = fopen(out_path.c_str(), "w");
    if (!js) { perror("out"); return 1; }
    fprintf(js, "{\"device\": \"%s\", \"peak_tops\": %.1f, \"runs\": [\n", prop.name, peak);
    bool first_json = true;

    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    const int NV = qh_cuda_conv2d_num_variants();
    auto L = layers();
    std::vector<std::vector<Best>> best(L.size(), std::vector<Best>(batches.size()));
    long long total_bad = 0, total_checked = 0;
    std::vector<LayRes> lay_res;
    auto want_v = [&](int v) { return only_v.empty() || std::find(only_v.begin(), only_v.end(), v) != only_v.end(); };

    for (size_t li = 0; li < L.size(); ++li) {
        const Layer &ly = L[li];
        if (!only.empty() && ly.name.find(only) == std::string::npos) continue;
        for (size_t bi = 0; bi < batches.size(); ++bi) {
            ConvDesc d;
            d.n = batches[bi];
            d.h = d.w = ly.hw;
            d.ic = ly.c;
            d.oc = ly.oc;
            d.kh = d.kw = ly.k;
            d.sh = d.sw = ly.stride;
            d.pt = d.pl = d.pb = d.pr = ly.pad;
            d.zx = int(rnd() % 256);
            const long long M = d.m();
            const size_t xbytes = (size_t)d.n * d.h * d.w * d.ic, ybytes32 = (size_t)M * d.oc * 4;
            std::vector<uint8_t> hx(xbytes);
            std::vector<int8_t> hw((size_t)d.oc * d.ic * d.kh * d.kw);
            fill_bytes(hx.data(), hx.size());
            fill_bytes(hw.data(), hw.size());
            const int Kp = qh_cuda_conv2d_kpad(d);
            std::vector<int8_t> hwp((size_t)d.oc * Kp);
            qh_cuda_pack_weights(d, hw.data(), hwp.data());
            std::vector<int32_t> hbias(d.oc);
            std::vector<float> hmult(d.oc);
            for (int o = 0; o < d.oc; ++o) {
                hbias[o] = int32_t(rnd() % 200001) - 100000;
                // spread the accumulator over roughly the u8 range: |acc| ~ 128*128*sqrt(K)/sqrt(3)
                hmult[o] = float(40.0 / (128.0 * 128.0 * std::sqrt((double)d.k()) / 3.0) *
                                 (0.5 + (rnd() % 1000) / 1000.0));
            }
            const int zy = int(rnd() % 256), lo = 0, hi = 255;

            // Check set: full at batch <= 8; else images 0 and N-1 plus 4096 random points.
            const bool full = d.n <= 8;
            std::vector<long long> rows;  // output pixels fully checked
            std::vector<long long> pts;   // extra single points (m*OC + oc)
            const long long ohw = (long long)d.oh() * d.ow();
            if (full) {
                for (long long m = 0; m < M; ++m) rows.push_back(m);
            } else {
                for (long long m = 0; m < ohw; ++m) rows.push_back(m);
                for (long long m = M - ohw; m < M; ++m) rows.push_back(m);
                for (int i = 0; i < 4096; ++i) pts.push_back((long long)(rnd() % (unsigned long long)M) * d.oc + rnd() % d.oc);
            }
            Ref ref(d, hx.data(), hw.data());
            std::vector<int32_t> ref_rows(rows.size() * d.oc), ref_pts(pts.size());
            auto t0 = std::chrono::steady_clock::now();
            parallel_for((long long)rows.size(), [&](long long i) { ref.row(rows[i], &ref_rows[i * d.oc]); });
            parallel_for((long long)pts.size(), [&](long long i) { ref_pts[i] = ref.point(pts[i] / d.oc, int(pts[i] % d.oc)); });
            double ref_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            // index list for the device gather (only used when !full)
            std::vector<long long> gidx;
            if (!full) {
                for (long long m : rows)
                    for (int o = 0; o < d.oc; ++o) gidx.push_back(m * d.oc + o);
                for (long long p : pts) gidx.push_back(p);
            }

            // Device buffers. Small inputs are rotated over several copies so that timing does
            // not measure a warm L2 only.
            const int nrot = xbytes < (64u << 20) ? 4 : 1;
            std::vector<uint8_t *> dx(nrot);
            for (int r = 0; r < nrot; ++r) {
                CK(cudaMalloc(&dx[r], xbytes));
                CK(cudaMemcpy(dx[r], hx.data(), xbytes, cudaMemcpyHostToDevice));
            }
            int8_t *dw;
            int32_t *dy, *dbias, *dg32;
            uint8_t *dy8, *dg8;
            float *dmult;
            long long *didx = nullptr;
            void *ws = nullptr;
            CK(cudaMalloc(&dw, hwp.size()));
            CK(cudaMemcpy(dw, hwp.data(), hwp.size(), cudaMemcpyHostToDevice));
            CK(cudaMalloc(&dy, ybytes32));
            CK(cudaMalloc(&dy8, (size_t)M * d.oc));
            CK(cudaMalloc(&dbias, d.oc * 4));
            CK(cudaMalloc(&dmult, d.oc * 4));
            CK(cudaMemcpy(dbias, hbias.data(), d.oc * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dmult, hmult.data(), d.oc * 4, cudaMemcpyHostToDevice));
            size_t wsb = qh_cuda_conv2d_workspace_bytes(d);
            if (wsb) CK(cudaMalloc(&ws, wsb));
            const size_t ng = gidx.size();
            CK(cudaMalloc(&dg32, std::max<size_t>(ng, 1) * 4));
            CK(cudaMalloc(&dg8, std::max<size_t>(ng, 1)));
            if (ng) {
                CK(cudaMalloc(&didx, ng * 8));
                CK(cudaMemcpy(didx, gidx.data(), ng * 8, cudaMemcpyHostToDevice));
            }
            std::vector<int32_t> got32(full ? (size_t)M * d.oc : ng);
            std::vector<uint8_t> got8(full ? (size_t)M * d.oc : ng);

            // Compare helpers: got arrays in gidx order (or full layout).
            auto check32 = [&]() -> long long {
                long long bad = 0;
                if (full) {
                    CK(cudaMemcpy(got32.data(), dy, ybytes32, cudaMemcpyDeviceToHost));
                    for (size_t i = 0; i < got32.size(); ++i) bad += got32[i] != ref_rows[i];
                } else {
                    gather_s32<<<(ng + 255) / 256, 256, 0, st>>>(dy, didx, (int)ng, dg32);
                    CK(cudaGetLastError());
                    CK(cudaStreamSynchronize(st));
                    CK(cudaMemcpy(got32.data(), dg32, ng * 4, cudaMemcpyDeviceToHost));
                    size_t nr = ref_rows.size();
                    for (size_t i = 0; i < nr; ++i) bad += got32[i] != ref_rows[i];
                    for (size_t i = 0; i < pts.size(); ++i) bad += got32[nr + i] != ref_pts[i];
                }
                return bad;
            };
            auto check8 = [&]() -> long long {
                long long bad = 0;
                auto expect_row = [&](size_t i) {
                    return requant_ref(ref_rows[i], hbias[i % d.oc], hmult[i % d.oc], zy, lo, hi);
                };
                if (full) {
                    CK(cudaMemcpy(got8.data(), dy8, (size_t)M * d.oc, cudaMemcpyDeviceToHost));
                    for (size_t i = 0; i < got8.size(); ++i) bad += got8[i] != expect_row(i);
                } else {
                    gather_u8<<<(ng + 255) / 256, 256, 0, st>>>(dy8, didx, (int)ng, dg8);
                    CK(cudaGetLastError());
                    CK(cudaStreamSynchronize(st));
                    CK(cudaMemcpy(got8.data(), dg8, ng, cudaMemcpyDeviceToHost));
                    size_t nr = ref_rows.size();
                    for (size_t i = 0; i < nr; ++i) bad += got8[i] != expect_row(i);
                    for (size_t i = 0; i < pts.size(); ++i) {
                        int o = int(pts[i] % d.oc);
                        bad += got8[nr + i] != requant_ref(ref_pts[i], hbias[o], hmult[o], zy, lo, hi);
                    }
                }
                return bad;
            };
            const long long nchecked = full ? M * d.oc : (long long)ng;

            std::vector<cudaEvent_t> ev(reps + 1);
            for (auto &e : ev) CK(cudaEventCreate(&e));
            auto time_it = [&](auto launch) -> double {
                for (int i = 0; i < 3; ++i) CK(launch(i % nrot));
                for (int i = 0; i < reps; ++i) {
                    CK(cudaEventRecord(ev[i], st));
                    CK(launch(i % nrot));
                }
                CK(cudaEventRecord(ev[reps], st));
                CK(cudaEventSynchronize(ev[reps]));
                std::vector<float> t(reps);
                for (int i = 0; i < reps; ++i) CK(cudaEventElapsedTime(&t[i], ev[i], ev[i + 1]));
                return median(t) * 1e3;  // us
            };

            const double ops = 2.0 * d.macs();
            Best &B = best[li][bi];
            B.us = 1e30;
            std::string vline;
            for (int v = 0; v < NV; ++v) {
                if (!want_v(v)) continue;
                const QhCudaConvVariant &V = qh_cuda_conv2d_variant(v);
                CK(cudaMemsetAsync(dy, 0xA5, ybytes32, st));
                {
                    cudaError_t e = qh_cuda_conv2d_u8s8s32_v(d, v, dx[0], dw, dy, ws, st);
                    if (e == cudaErrorNotSupported) continue;  // e.g. BK = 128 with IC % 128 != 0
                    CK(e);
                }
                CK(cudaStreamSynchronize(st));
                long long bad = check32();
                double us = time_it([&](int r) { return qh_cuda_conv2d_u8s8s32_v(d, v, dx[r], dw, dy, ws, st); });
                // re-check after the timed runs (races show as changing results)
                long long bad2 = check32();
                total_bad += bad + bad2;
                total_checked += 2 * nchecked;
                double tops = ops / (us * 1e-6) / 1e12;
                if (bad || bad2) B.ok = false;
                if (us < B.us && !bad && !bad2) {
                    B.us = us;
                    B.tops = tops;
                    B.variant = V.name;
                }
                char buf[64];
                snprintf(buf, sizeof buf, " %s=%.1f%s", V.name, us, (bad || bad2) ? "(BAD)" : "");
                vline += buf;
                fprintf(js, "%s  {\"layer\": \"%s\", \"batch\": %d, \"zx\": %d, \"variant\": \"%s\", \"out\": \"s32\", "
                            "\"checked\": %lld, \"full\": %s, \"mismatches\": %lld, \"us\": %.3f, \"tops\": %.2f, "
                            "\"pct_peak\": %.2f}",
                        first_json ? "" : ",\n", ly.name.c_str(), d.n, d.zx, V.name, nchecked, full ? "true" : "false",
                        bad + bad2, us, tops, peak > 0 ? 100.0 * tops / peak : 0.0);
                first_json = false;
            }
            // Fused u8 epilogue, with the best non-split-K tile for this layer by s32 time.
            {
                int fv = qh_cuda_conv2d_pick_variant(d, prop.multiProcessorCount);
                for (int v = 0; v < NV; ++v)
                    if (B.variant == qh_cuda_conv2d_variant(v).name) fv = v;
                if (qh_cuda_conv2d_variant(fv).splitk > 1) fv = 5;
                QhRequant rq{dbias, dmult, zy, lo, hi};
                CK(cudaMemsetAsync(dy8, 0xA5, (size_t)M * d.oc, st));
                CK(qh_cuda_conv2d_u8s8u8_v(d, fv, dx[0], dw, rq, dy8, ws, st));
                CK(cudaStreamSynchronize(st));
                long long bad = check8();
                double us = time_it([&](int r) { return qh_cuda_conv2d_u8s8u8_v(d, fv, dx[r], dw, rq, dy8, ws, st); });
                total_bad += bad;
                total_checked += nchecked;
                if (bad) B.ok = false;
                B.fused_us = us;
                // Fused residual add (conv2d_add + ReLU), full checks only (batches 1 and 8).
                if (full) {
                    std::vector<uint8_t> hres((size_t)M * d.oc);
                    for (auto &v : hres) v = uint8_t(rnd() & 255);
                    const int zc = int(rnd() % 256), zr = int(rnd() % 256);
                    const float mc = 0.25f + float(rnd() % 1000) / 1000.f, mr = 0.25f + float(rnd() % 1000) / 1000.f;
                    uint8_t *dres;
                    CK(cudaMalloc(&dres, hres.size()));
                    CK(cudaMemcpy(dres, hres.data(), hres.size(), cudaMemcpyHostToDevice));
                    QhResidual rs{dres, zc, zr, mc, mr};
                    QhRequant rq2{dbias, dmult, zy, zy, 255};  // ReLU at the output zero point
                    CK(cudaMemsetAsync(dy8, 0xA5, (size_t)M * d.oc, st));
                    CK(qh_cuda_conv2d_add_u8s8u8_v(d, fv, dx[0], dw, rq2, rs, dy8, ws, st));
                    CK(cudaStreamSynchronize(st));
                    CK(cudaMemcpy(got8.data(), dy8, (size_t)M * d.oc, cudaMemcpyDeviceToHost));
                    long long badr = 0;
                    for (size_t i = 0; i < got8.size(); ++i) {
                        const int o = int(i % d.oc);
                        const int c = requant_ref(ref_rows[i], hbias[o], hmult[o], zc, 0, 255);
                        badr += got8[i] != qadd_ref(c, zc, mc, hres[i], zr, mr, zy, zy, 255);
                    }
                    B.add_us = time_it([&](int r) {
                        return qh_cuda_conv2d_add_u8s8u8_v(d, fv, dx[r], dw, rq2, rs, dy8, ws, st);
                    });
                    total_bad += badr;
                    total_checked += nchecked;
                    if (badr) B.ok = false;
                    B.add_bad = badr;
                    CK(cudaFree(dres));
                }
                double tops = ops / (us * 1e-6) / 1e12;
                fprintf(js, ",\n  {\"layer\": \"%s\", \"batch\": %d, \"zx\": %d, \"variant\": \"%s\", \"out\": \"u8_fused\", "
                            "\"checked\": %lld, \"full\": %s, \"mismatches\": %lld, \"us\": %.3f, \"tops\": %.2f, "
                            "\"pct_peak\": %.2f}",
                        ly.name.c_str(), d.n, d.zx, qh_cuda_conv2d_variant(fv).name, nchecked, full ? "true" : "false",
                        bad, us, tops, peak > 0 ? 100.0 * tops / peak : 0.0);
                fflush(js);
            }
            fprintf(stderr, "[%s b%d zx=%d ref %.1fs checked %lld%s]%s fused=%.1f add=%.1f%s\n", ly.name.c_str(), d.n,
                    d.zx, ref_s, nchecked, full ? " full" : " sampled", vline.c_str(), B.fused_us, B.add_us,
                    B.add_bad ? "(BAD)" : "");

            // Layout evaluation: the same conv with x and y in each layout, every variant (s32),
            // then the fused u8 epilogue with the best one. Checked through the layout's index map.
            if (do_layouts && qh_cuda_conv2d_direct(d)) {
                std::vector<long long> lrows;  // NHWC-order (m, oc) of every checked value, ref order
                if (full)
                    for (long long m = 0; m < M; ++m) lrows.push_back(m);
                else
                    lrows = rows;
                const int OH = d.oh(), OW = d.ow();
                for (int li2 = 0; li2 < 3; ++li2) {
                    const QhLayout lay = QhLayout(li2);
                    if (lay == QhLayout::NC32HW32 && (d.oc % 32 || d.ic % 32)) continue;
                    std::vector<uint8_t> hxl(xbytes);
                    // 32-channel runs are contiguous in every layout
                    parallel_for((long long)d.n * d.h * d.w, [&](long long pix) {
                        const long long n = pix / ((long long)d.h * d.w), y = pix / d.w % d.h, x = pix % d.w;
                        for (int c0 = 0; c0 < d.ic; c0 += 32)
                            memcpy(&hxl[lay_off(lay, d.n, d.h, d.w, d.ic, n, y, x, c0)], &hx[pix * d.ic + c0], 32);
                    });
                    for (int r = 0; r < nrot; ++r)
                        CK(cudaMemcpy(dx[r], hxl.data(), xbytes, cudaMemcpyHostToDevice));
                    auto yoff = [&](long long m, int oc) {
                        long long n = m / ((long long)OH * OW), rr = m % ((long long)OH * OW);
                        return lay_off(lay, d.n, OH, OW, d.oc, n, rr / OW, rr % OW, oc);
                    };
                    std::vector<long long> lidx;
                    for (long long m : lrows)
                        for (int o = 0; o < d.oc; ++o) lidx.push_back(yoff(m, o));
                    for (long long pt : pts) lidx.push_back(yoff(pt / d.oc, int(pt % d.oc)));
                    const size_t nl = lidx.size();
                    long long *dlidx;
                    int32_t *dl32;
                    uint8_t *dl8;
                    CK(cudaMalloc(&dlidx, nl * 8));
                    CK(cudaMalloc(&dl32, nl * 4));
                    CK(cudaMalloc(&dl8, nl));
                    CK(cudaMemcpy(dlidx, lidx.data(), nl * 8, cudaMemcpyHostToDevice));
                    std::vector<int32_t> g32(nl);
                    std::vector<uint8_t> g8(nl);
                    auto expect = [&](size_t i) -> int32_t {  // ref value of lidx[i]
                        const size_t nr = lrows.size() * d.oc;
                        if (i < nr) return full ? ref_rows[i] : ref_rows[i];
                        return ref_pts[i - nr];
                    };
                    auto chan = [&](size_t i) -> int {
                        const size_t nr = lrows.size() * d.oc;
                        return i < nr ? int(i % d.oc) : int(pts[i - nr] % d.oc);
                    };
                    auto lcheck32 = [&]() -> long long {
                        gather_s32<<<(nl + 255) / 256, 256, 0, st>>>(dy, dlidx, (int)nl, dl32);
                        CK(cudaGetLastError());
                        CK(cudaMemcpy(g32.data(), dl32, nl * 4, cudaMemcpyDeviceToHost));
                        long long bad = 0;
                        for (size_t i = 0; i < nl; ++i) bad += g32[i] != expect(i);
                        return bad;
                    };
                    auto lcheck8 = [&]() -> long long {
                        gather_u8<<<(nl + 255) / 256, 256, 0, st>>>(dy8, dlidx, (int)nl, dl8);
                        CK(cudaGetLastError());
                        CK(cudaMemcpy(g8.data(), dl8, nl, cudaMemcpyDeviceToHost));
                        long long bad = 0;
                        for (size_t i = 0; i < nl; ++i) {
                            const int o = chan(i);
                            bad += g8[i] != requant_ref(expect(i), hbias[o], hmult[o], zy, lo, hi);
                        }
                        return bad;
                    };
                    LayRes R{ly.name, "", d.n, lay, 1e30, 0, 0};
                    int bestv = -1;
                    std::string lline;
                    for (int v = 0; v < NV; ++v) {
                        if (!want_v(v) || qh_cuda_conv2d_variant(v).splitk > 1) continue;
                        CK(cudaMemsetAsync(dy, 0xA5, ybytes32, st));
                        cudaError_t e = qh_cuda_conv2d_run(d, v, dx[0], dw, dy, nullptr, nullptr, ws, st, nullptr, lay);
                        if (e == cudaErrorNotSupported) continue;
                        CK(e);
                        long long bad = lcheck32();
                        double us = time_it([&](int r) { return qh_cuda_conv2d_run(d, v, dx[r], dw, dy, nullptr, nullptr, ws, st, nullptr, lay); });
                        bad += lcheck32();
                        total_bad += bad;
                        total_checked += 2 * (long long)nl;
                        R.bad += bad;
                        if (!bad && us < R.us) { R.us = us; bestv = v; R.variant = qh_cuda_conv2d_variant(v).name; }
                        char buf[80];
                        snprintf(buf, sizeof buf, " %s=%.1f%s", qh_cuda_conv2d_variant(v).name, us, bad ? "(BAD)" : "");
                        lline += buf;
                    }
                    if (bestv >= 0) {
                        QhRequant rq{dbias, dmult, zy, lo, hi};
                        CK(cudaMemsetAsync(dy8, 0xA5, (size_t)M * d.oc, st));
                        CK(qh_cuda_conv2d_run(d, bestv, dx[0], dw, dy8, &rq, nullptr, ws, st, nullptr, lay));
                        long long bad = lcheck8();
                        R.fused_us = time_it([&](int r) { return qh_cuda_conv2d_run(d, bestv, dx[r], dw, dy8, &rq, nullptr, ws, st, nullptr, lay); });
                        total_bad += bad;
                        total_checked += (long long)nl;
                        R.bad += bad;
                    }
                    fprintf(stderr, "  [layout %s %s b%d checked %zu]%s fused=%.1f%s\n", lay_name(lay), ly.name.c_str(), d.n,
                            nl, lline.c_str(), R.fused_us, R.bad ? " BAD" : "");
                    fprintf(js, ",\n  {\"layer\": \"%s\", \"batch\": %d, \"layout\": \"%s\", \"variant\": \"%s\", "
                                "\"us\": %.3f, \"fused_us\": %.3f, \"checked\": %zu, \"mismatches\": %lld}",
                            ly.name.c_str(), d.n, lay_name(lay), R.variant.c_str(), R.us, R.fused_us, 3 * nl, R.bad);
                    lay_res.push_back(R);
                    CK(cudaFree(dlidx));
                    CK(cudaFree(dl32));
                    CK(cudaFree(dl8));
                }
            }

            for (auto &e : ev) CK(cudaEventDestroy(e));
            for (auto p : dx) CK(cudaFree(p));
            CK(cudaFree(dw));
            CK(cudaFree(dy));
            CK(cudaFree(dy8));
            CK(cudaFree(dbias));
            CK(cudaFree(dmult));
            CK(cudaFree(dg32));
            CK(cudaFree(dg8));
            if (didx) CK(cudaFree(didx));
            if (ws) CK(cudaFree(ws));
        }
    }
    fprintf(js, "\n]}\n");
    fclose(js);

    // Compact table.
    printf("\n%-24s", "layer (us best / TOPS)");
    for (int b : batches) printf(" | b%-3d %8s %6s %5s", b, "us", "TOPS", "%pk");
    printf(" | fused b%d us\n", batches.back());
    std::vector<double> tot(batches.size(), 0.0), tot_f(batches.size(), 0.0);
    for (size_t li = 0; li < L.size(); ++li) {
        if (!only.empty() && L[li].name.find(only) == std::string::npos) continue;
        printf("%-24s", L[li].name.c_str());
        for (size_t bi = 0; bi < batches.size(); ++bi) {
            const Best &B = best[li][bi];
            printf(" | %s%9.1f %6.1f %5.1f", B.ok ? "  " : "!!", B.us, B.tops, peak > 0 ? 100 * B.tops / peak : 0.0);
            tot[bi] += B.us * L[li].count;
            tot_f[bi] += B.fused_us * L[li].count;
        }
        printf(" | %8.1f\n", best[li].back().fused_us);
    }
    printf("best variant per layer at b%d:", batches.back());
    for (size_t li = 0; li < L.size(); ++li)
        if (only.empty() || L[li].name.find(only) != std::string::npos) printf(" %s", best[li].back().variant.c_str());
    printf("\n");
    for (size_t bi = 0; bi < batches.size(); ++bi)
        printf("ResNet-50 v1.5 conv total b%d: %.3f ms s32 best-per-layer (%.0f img/s conv-only), fused u8 %.3f ms\n",
               batches[bi], tot[bi] * 1e-3, batches[bi] / (tot[bi] * 1e-6), tot_f[bi] * 1e-3);
    if (!lay_res.empty()) {
        printf("\nlayouts (best variant s32 us / fused u8 us):\n%-24s %5s | %-22s | %-22s | %-22s\n", "layer", "batch",
               "NHWC", "HWNC", "NC32HW32");
        for (size_t i = 0; i < lay_res.size();) {
            size_t j = i;
            printf("%-24s %5d", lay_res[i].layer.c_str(), lay_res[i].batch);
            for (int l = 0; l < 3; ++l) {
                if (j < lay_res.size() && lay_res[j].layer == lay_res[i].layer && lay_res[j].batch == lay_res[i].batch &&
                    int(lay_res[j].lay) == l) {
                    printf(" | %s%8.1f / %8.1f  ", lay_res[j].bad ? "!!" : "  ", lay_res[j].us, lay_res[j].fused_us);
                    ++j;
                } else {
                    printf(" | %22s", "-");
                }
            }
            printf("\n");
            i = j;
        }
    }
    printf("bit-exactness: %lld mismatches in %lld checked outputs -> %s\n", total_bad, total_checked,
           total_bad ? "FAIL" : "PASS");
    return total_bad ? 2 : 0;
}
