// The tools (qhalide-resnet, qhalide-run, qhalide-smoke, qhalide-explore) on misuse and hostile
// inputs: each case must end with one clean error line (exact text) and exit code, never a crash,
// a hang or a runaway allocation. Each tool runs as a child process with a time limit; the ONNX
// models are built here with ONNX's classes.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <HalideRuntime.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "problem.h"
#include "resource_limits.h"
#include "scratch_alloc.h"

namespace fs = std::filesystem;
using TP = onnx::TensorProto;

namespace {

const std::string kAssets = QH_ASSETS_DIR;
const std::string kMaxPoolU8 = std::string(QH_ONNX_TESTDATA_DIR) + "/test_maxpool_2d_uint8/model.onnx";

struct Run {
    int status = -1;  // exit code, or 128 + signal
    bool timed_out = false;
    std::string out;  // stdout and stderr together
};

// Runs argv with stdout+stderr captured; killed after `limit` (a hang fails the test).
Run run(const std::vector<std::string> &argv, std::chrono::seconds limit = std::chrono::seconds(60)) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        std::vector<char *> a;
        for (auto &s : argv) a.push_back(const_cast<char *>(s.c_str()));
        a.push_back(nullptr);
        execv(a[0], a.data());
        _exit(127);
    }
    close(fds[1]);
    Run r;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::thread reader([&] {
        char buf[4096];
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof buf)) > 0) r.out.append(buf, size_t(n));
    });
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
            r.timed_out = true;
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    reader.join();
    close(fds[0]);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

// The run ended by itself with `code` and printed exactly `line` + '\n' (nothing else).
void expect_error(const Run &r, int code, const std::string &line) {
    EXPECT_FALSE(r.timed_out) << "hung; output so far: " << r.out;
    EXPECT_EQ(r.status, code) << r.out;
    EXPECT_EQ(r.out, line + "\n");
}

std::string scratch(const std::string &file) {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    fs::path dir = fs::path(::testing::TempDir()) / "qhalide_test_cli_errors" / info->name();
    fs::create_directories(dir);
    return (dir / file).string();
}

void write_file(const std::string &path, const std::string &bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    ASSERT_TRUE(f.good()) << path;
}

// A version 1.0 .npy with `dict` as header and `data` after it, padded like NumPy.
std::string npy(const std::string &dict, const std::string &data = "") {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::string r = "\x93NUMPY";
    r += char(1);
    r += char(0);
    r += char(h.size() & 0xff);
    r += char(h.size() >> 8);
    return r + h + data;
}

std::string make_fifo(const std::string &name) {
    std::string p = scratch(name);
    fs::remove(p);
    EXPECT_EQ(mkfifo(p.c_str(), 0600), 0) << p;
    return p;
}

// ---- ONNX models -------------------------------------------------------------------------------

struct OnnxModel {
    onnx::ModelProto m;
    onnx::GraphProto *g;
    OnnxModel() {
        m.set_ir_version(7);
        auto *o = m.add_opset_import();
        o->set_domain("");
        o->set_version(13);
        g = m.mutable_graph();
        g->set_name("test_cli_errors");
    }
    void input(const std::string &n, std::vector<int64_t> dims) {
        auto *vi = g->add_input();
        vi->set_name(n);
        auto *tt = vi->mutable_type()->mutable_tensor_type();
        tt->set_elem_type(TP::FLOAT);
        for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
    }
    void output(const std::string &n, int elem) {
        auto *vi = g->add_output();
        vi->set_name(n);
        vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem);
    }
    onnx::NodeProto &node(const std::string &op, std::vector<std::string> in, std::vector<std::string> out,
                          const std::string &domain = "") {
        auto *n = g->add_node();
        n->set_op_type(op);
        n->set_name(out[0]);
        if (!domain.empty()) n->set_domain(domain);
        for (auto &i : in) n->add_input(i);
        for (auto &o : out) n->add_output(o);
        return *n;
    }
    void scalar_f32(const std::string &n, float v) {
        TP *t = g->add_initializer();
        t->set_name(n);
        t->set_data_type(TP::FLOAT);
        t->add_float_data(v);
    }
    void scalar_u8(const std::string &n, uint8_t v) {
        TP *t = g->add_initializer();
        t->set_name(n);
        t->set_data_type(TP::UINT8);
        t->set_raw_data(std::string(1, char(v)));
    }
    std::string save(const std::string &file) const {
        std::string p = scratch(file);
        write_file(p, m.SerializeAsString());
        return p;
    }
};

// x (float, NCHW dims) -> Relu -> y.
std::string relu_model(const std::vector<int64_t> &dims) {
    OnnxModel m;
    m.input("x", dims);
    m.node("Relu", {"x"}, {"y"});
    m.output("y", TP::FLOAT);
    return m.save("relu.onnx");
}

std::string threads_error(const std::string &prefix, int64_t n) {
    return prefix + "error: --threads: " + std::to_string(n) + " threads, expected 0 (all cores) to " +
           std::to_string(qh::max_threads());
}

}  // namespace

// ---- qhalide-resnet: the image must fit the model input exactly --------------------------------

TEST(ResnetCli, OneChannelModelIsRefused) {
    const std::string img = kAssets + "/sample.jpg";
    auto r = run({QH_RESNET, "--model", relu_model({1, 1, 32, 32}), "--image", img, "--precision", "fp32"});
    expect_error(r, 1, "qhalide-resnet: error: model input 'x' is f32[1,1,32,32], the image '" + img +
                           "' gives f32[1,3,32,32]");  // NCHW, as the model declares
}

TEST(ResnetCli, NonSquareModelIsRefused) {
    const std::string img = kAssets + "/sample.jpg";
    auto r = run({QH_RESNET, "--model", relu_model({1, 3, 32, 48}), "--image", img, "--precision", "fp32"});
    expect_error(r, 1, "qhalide-resnet: error: model input 'x' is f32[1,3,32,48], the image '" + img +
                           "' gives f32[1,3,32,32]");
}

TEST(ResnetCli, RankTwoModelIsRefused) {
    OnnxModel m;
    m.input("x", {1, 10});
    m.node("Relu", {"x"}, {"y"});
    m.output("y", TP::FLOAT);
    auto r = run({QH_RESNET, "--model", m.save("rank2.onnx"), "--precision", "fp32"});
    expect_error(r, 1, "qhalide-resnet: error: model input 'x' is f32[1,10]; qhalide-resnet needs an image input "
                       "[N,3,S,S] (NCHW) with 1 <= S <= 16384");
}

// A model whose output is u8 (a quantized graph output): the logits are dequantized, not read as
// float (which read past the 3-byte buffer).
TEST(ResnetCli, U8LogitsAreDequantized) {
    OnnxModel m;
    auto *o = m.m.add_opset_import();
    o->set_domain("com.microsoft");
    o->set_version(1);
    m.input("x", {1, 3, 8, 8});
    m.scalar_f32("x_s", 0.05f);
    m.scalar_u8("x_z", 128);
    m.scalar_f32("g_s", 0.25f);
    m.scalar_u8("g_z", 3);
    m.node("QuantizeLinear", {"x", "x_s", "x_z"}, {"x_q"});
    auto &gap = m.node("QLinearGlobalAveragePool", {"x_q", "x_s", "x_z", "g_s", "g_z"}, {"g_q"}, "com.microsoft");
    auto *a = gap.add_attribute();
    a->set_name("channels_last");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(0);
    m.output("g_q", TP::UINT8);
    auto r = run({QH_RESNET, "--model", m.save("u8_out.onnx"), "--image", kAssets + "/sample.png", "--iters", "1",
                  "--warmup", "0", "--json"});
    ASSERT_FALSE(r.timed_out);
    ASSERT_EQ(r.status, 0) << r.out;
    // Three classes, each logit 0.25 * (q - 3) for a u8 q.
    std::regex entry("\\{\"index\": ([0-2]), \"label\": \"class [0-2]\", \"logit\": (-?[0-9]+\\.[0-9]+)\\}");
    int n = 0;
    for (std::sregex_iterator it(r.out.begin(), r.out.end(), entry), end; it != end; ++it, ++n) {
        double v = std::stod((*it)[2]);
        EXPECT_GE(v, -0.75);
        EXPECT_LE(v, 63.0);
        EXPECT_DOUBLE_EQ(v * 4, std::round(v * 4)) << v;
    }
    EXPECT_EQ(n, 3) << r.out;
}

TEST(ResnetCli, DeviceFifoAndDirectoryImagesAreRefused) {
    auto r = run({QH_RESNET, "--model", "resnet18", "--image", "/dev/zero"});
    expect_error(r, 1, "qhalide-resnet: error: '/dev/zero' is not a regular file (a device or socket); an image must be a file");
    const std::string fifo = make_fifo("image.png");
    r = run({QH_RESNET, "--model", "resnet18", "--image", fifo}, std::chrono::seconds(30));
    expect_error(r, 1, "qhalide-resnet: error: '" + fifo + "' is not a regular file (a FIFO); an image must be a file");
    const std::string dir = scratch("");
    r = run({QH_RESNET, "--model", "resnet18", "--image", dir});
    expect_error(r, 1, "qhalide-resnet: error: '" + dir + "' is not a regular file (a directory); an image must be a file");
}

// ---- qhalide-run: declared .npy shapes are checked before anything is sized by them ------------

TEST(RunCli, HugeDeclaredNpyShapeIsRefused) {
    // 128 bytes declaring 2^32+1 x 3 x 32 x 0 elements: no data, but the dims do not fit int32.
    const std::string p = scratch("huge.npy");
    write_file(p, npy("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967297, 3, 32, 0), }"));
    ASSERT_EQ(fs::file_size(p), 128u);
    auto r = run({QH_RUN, kMaxPoolU8, "--input", "x=" + p, "--output-dir", scratch("out")});
    expect_error(r, 1, "qhalide-run: error: " + p + ": .npy shape: dimension 4294967297 of shape "
                       "[4294967297,3,32,0] does not fit in int32");
}

TEST(RunCli, ZeroSizedNpyWithHugeDimsIsCheckedAgainstTheModel) {
    // 0 elements, but the other dims multiply past the per-tensor limit: refused by the reader
    // (every partial product of a checked shape fits, runtime/resource_limits.h).
    const std::string p = scratch("empty.npy");
    write_file(p, npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647, 0), }"));
    auto r = run({QH_RUN, kMaxPoolU8, "--input", "x=" + p, "--output-dir", scratch("out")}, std::chrono::seconds(30));
    expect_error(r, 1, "qhalide-run: error: " + p + ": .npy shape: shape [2147483647,2147483647,2147483647,0] has more "
                       "than 2147483648 elements (the limit per tensor, counting the non-zero dims)");
    // Within the limit and empty: the layout loop must not walk the 2^31 index combinations.
    const std::string q = scratch("empty2.npy");
    write_file(q, npy("{'descr': '|u1', 'fortran_order': False, 'shape': (65536, 32768, 1, 0), }"));
    r = run({QH_RUN, kMaxPoolU8, "--input", "x=" + q, "--output-dir", scratch("out")}, std::chrono::seconds(30));
    expect_error(r, 1, "qhalide-run: error: '" + q + "' is u8[65536,32768,1,0] (rank 4), graph input "
                       "'x' expects u8[N,1,5,5] (rank 4, ONNX layout, N >= 1)");
}

TEST(RunCli, ScalarNpyNamesTheFileAndTheRank) {
    const std::string p = scratch("scalar.npy");
    write_file(p, npy("{'descr': '|u1', 'fortran_order': False, 'shape': (), }", std::string(1, '\7')));
    auto r = run({QH_RUN, kMaxPoolU8, "--input", "x=" + p, "--output-dir", scratch("out")});
    expect_error(r, 1, "qhalide-run: error: '" + p + "' is u8[] (rank 0), graph input 'x' expects u8[N,1,5,5] "
                       "(rank 4, ONNX layout, N >= 1)");
}

TEST(RunCli, DeviceAndFifoInputsAreRefused) {
    auto r = run({QH_RUN, kMaxPoolU8, "--input", "x=/dev/zero"});
    expect_error(r, 1, "qhalide-run: error: '/dev/zero' is not a regular file (a device or socket); a .npy file must be a file");
    const std::string fifo = make_fifo("in.npy");
    r = run({QH_RUN, kMaxPoolU8, "--input", "x=" + fifo}, std::chrono::seconds(30));
    expect_error(r, 1, "qhalide-run: error: '" + fifo + "' is not a regular file (a FIFO); a .npy file must be a file");
}

TEST(RunCli, DeviceAndFifoModelsAndPbInputsAreRefused) {
    const std::string in = scratch("x.npy");
    write_file(in, npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 5, 5), }", std::string(25, '\1')));
    auto r = run({QH_RUN, "/dev/zero", "--input", "x=" + in});
    expect_error(r, 1, "qhalide-run: error: onnx import: '/dev/zero' is not a regular file (a device or socket); "
                       "an ONNX model or tensor (protobuf, at most 2 GiB) must be a file");
    const std::string fifo = make_fifo("model.onnx");
    r = run({QH_RUN, fifo, "--input", "x=" + in}, std::chrono::seconds(30));
    expect_error(r, 1, "qhalide-run: error: onnx import: '" + fifo + "' is not a regular file (a FIFO); "
                       "an ONNX model or tensor (protobuf, at most 2 GiB) must be a file");
    r = run({QH_RESNET, "--model", fifo}, std::chrono::seconds(30));
    EXPECT_FALSE(r.timed_out) << r.out;
    EXPECT_EQ(r.status, 1) << r.out;
    const std::string pb_fifo = make_fifo("input.pb");
    r = run({QH_RUN, kMaxPoolU8, "--input", pb_fifo}, std::chrono::seconds(30));
    expect_error(r, 1, "qhalide-run: error: '" + pb_fifo + "' is not a regular file (a FIFO); "
                       "an ONNX model or tensor (protobuf, at most 2 GiB) must be a file");
}

TEST(RunCli, NamesWithNewlinesStayOnOneLine) {
    auto r = run({QH_RUN, kMaxPoolU8, "--input", "two\nlines.npy"});
    expect_error(r, 1, "qhalide-run: error: --input 'two\\nlines.npy': expected NAME=FILE (only an ONNX TensorProto "
                       ".pb file carries its own name)");
}

// ---- thread counts -----------------------------------------------------------------------------

TEST(ThreadsCli, AbsurdThreadCountsAreRefused) {
    for (int64_t n : {int64_t(INT_MAX), int64_t(100000), int64_t(-1)}) {
        SCOPED_TRACE(n);
        const std::string t = std::to_string(n);
        expect_error(run({QH_RUN, kMaxPoolU8, "--input", "x=unused.npy", "--threads", t}), 1,
                     threads_error("qhalide-run: ", n));
        expect_error(run({QH_RESNET, "--model", "resnet18", "--threads", t}), 1, threads_error("qhalide-resnet: ", n));
        expect_error(run({QH_SMOKE, "--threads", t}), 2, threads_error("", n));
        if (n > 0)
            expect_error(run({QH_EXPLORE, "--shape", "ic4ih4oc4", "--threads", t}), 2,
                         threads_error("qhalide-explore: ", n));
    }
}

// The scratch allocator sizes its block cache by the thread count it is given: clamped, so an
// absurd count neither overflows nor reserves memory in proportion to itself.
TEST(ScratchAllocator, AbsurdThreadCountsAreClamped) {
    auto rss = [] {
        std::ifstream f("/proc/self/statm");
        size_t pages = 0, resident = 0;
        f >> pages >> resident;
        return resident * size_t(sysconf(_SC_PAGESIZE));
    };
    qh::install_scratch_allocator(INT_MAX);
    qh::install_scratch_allocator(100000);
    const size_t before = rss();
    for (size_t n : {size_t(1000), size_t(5000), size_t(40000)}) {
        void *p = halide_malloc(nullptr, n);
        ASSERT_NE(p, nullptr);
        halide_free(nullptr, p);
    }
    // Each miss makes at most 2 * (max_threads() + 1) blocks: well under 32 MiB for these sizes.
    EXPECT_LT(rss() - before, size_t(32) << 20);
}

// ---- qhalide-explore shape strings: every field is checked before arithmetic -------------------

TEST(ExploreCli, ZeroStrideIsAnErrorNotSigfpe) {
    auto r = run({QH_EXPLORE, "--shape", "mb1ic64ih56oc64kh3sh0"});
    expect_error(r, 2, "qhalide-explore: error: shape 'mb1ic64ih56oc64kh3sh0': sh must be >= 1");
}

TEST(ExploreShape, FieldsAndSizesAreValidated) {
    using qh::explore::parse_shape;
    auto error_of = [](const std::string &op, const std::string &shape) -> std::string {
        try {
            parse_shape(op, shape);
        } catch (const std::exception &e) {
            return e.what();
        }
        return "(no error)";
    };
    EXPECT_EQ(error_of("conv2d", "ic4ih4oc4kh3sw0"), "shape 'ic4ih4oc4kh3sw0': sw must be >= 1");
    EXPECT_EQ(error_of("maxpool", "ic4ih4kh0"), "shape 'ic4ih4kh0': kh must be >= 1");
    EXPECT_EQ(error_of("conv2d", "ic4ih4oc4oh0"), "shape 'ic4ih4oc4oh0': oh must be >= 1");
    EXPECT_EQ(error_of("dense", "mb0ic4oc4"), "shape 'mb0ic4oc4': mb must be >= 1");
    // Products that overflow int (and the tensor limits).
    EXPECT_EQ(error_of("conv2d", "mb9999999ic9999999ih9999999oc1"),
              "shape 'mb9999999ic9999999ih9999999oc1' input: shape [9999999,9999999,9999999,9999999] has more "
              "than 2147483648 elements (the limit per tensor)");
    EXPECT_EQ(error_of("conv2d", "ic1ih1oc1oh9999999sh9999999kh1"),
              "shape 'ic1ih1oc1oh9999999sh9999999kh1': implied ph=49999985000001 is too large");
    EXPECT_EQ(error_of("dense", "mb9999999ic9999999oc9999999"),
              "shape 'mb9999999ic9999999oc9999999' input: shape [9999999,9999999] has more than 2147483648 "
              "elements (the limit per tensor)");
    // Large but valid problems still parse.
    EXPECT_EQ(parse_shape("conv2d", "ic3ih224oc64kh7sh2ph3").oh, 112);
}
