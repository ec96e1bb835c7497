// ONNX backend conformance vectors (Debian's libonnx-testdata): each node test's model.onnx
// gives the operator and its attributes, test_data_set_0/input_N.pb the inputs (graph input
// order) and output_0.pb the expected result, all serialized onnx::TensorProto. Every runnable
// kernel variant must reproduce output_0 exactly (integers bit for bit, floats by bit pattern).
// qh is NHWC: NCHW inputs are transposed in, results transposed back before comparing.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "onnx_tensor.h"
#include "ops.h"
#include "test_util.h"

#ifndef QH_ONNX_TESTDATA_DIR
#define QH_ONNX_TESTDATA_DIR "/usr/share/libonnx-testdata/data/node"
#endif

namespace qh::test {
namespace {

namespace fs = std::filesystem;

// One decoded TensorProto: integer types widened to int32, floats kept bit-exact.
struct Blob {
    std::string name;
    int dtype = 0;  // onnx::TensorProto_DataType
    std::vector<int64_t> dims;
    std::vector<int32_t> ints;
    std::vector<float> floats;
    int64_t numel() const {
        int64_t n = 1;
        for (auto d : dims) n *= d;
        return n;
    }
};

template <typename Msg>
void parse_file(const std::string &path, Msg &m) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    if (!m.ParseFromIstream(&f)) throw std::runtime_error("cannot parse " + path);
}

const onnx::AttributeProto *find_attr(const onnx::NodeProto &node, const std::string &name) {
    for (const auto &a : node.attribute())
        if (a.name() == name) return &a;
    return nullptr;
}

std::vector<int64_t> attr_ints(const onnx::NodeProto &node, const std::string &name,
                               std::vector<int64_t> dflt) {
    const auto *a = find_attr(node, name);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : dflt;
}

int64_t attr_int(const onnx::NodeProto &node, const std::string &name, int64_t dflt) {
    const auto *a = find_attr(node, name);
    return a ? a->i() : dflt;
}

std::string attr_string(const onnx::NodeProto &node, const std::string &name,
                        const std::string &dflt) {
    const auto *a = find_attr(node, name);
    return a ? a->s() : dflt;
}

DType qh_dtype(int onnx_type) {
    switch (onnx_type) {
    case onnx::TensorProto::UINT8: return DType::u8;
    case onnx::TensorProto::INT8: return DType::s8;
    case onnx::TensorProto::INT32: return DType::s32;
    case onnx::TensorProto::FLOAT: return DType::f32;
    default: throw std::runtime_error("no qh dtype for " + onnx_type_name(onnx_type));
    }
}

// Tensor of dtype t from int values (u8/s8/s32).
Tensor int_tensor(DType t, std::vector<int64_t> shape, const std::vector<int32_t> &v,
                  QuantParams q = {}) {
    Tensor r(t, std::move(shape), std::move(q));
    if ((int64_t)v.size() != r.numel()) throw std::runtime_error("int_tensor: size mismatch");
    for (size_t i = 0; i < v.size(); i++) {
        if (t == DType::u8) r.data<uint8_t>()[i] = uint8_t(v[i]);
        else if (t == DType::s8) r.data<int8_t>()[i] = int8_t(v[i]);
        else r.data<int32_t>()[i] = v[i];
    }
    return r;
}

std::vector<int32_t> int_values(const Tensor &t) {
    switch (t.dtype()) {
    case DType::u8: return values<uint8_t>(t);
    case DType::s8: return values<int8_t>(t);
    case DType::s32: return values<int32_t>(t);
    default: throw std::runtime_error("int_values: not an integer tensor");
    }
}

// TensorProto -> Blob through the importer's decoder (onnx_tensor.h).
Blob decode(const onnx::TensorProto &t, const std::string &where) {
    Tensor x = tensor_from_proto(t, where);
    Blob b;
    b.name = t.name();
    b.dtype = t.data_type();
    b.dims = x.shape();
    if (x.dtype() == DType::f32) b.floats.assign(x.data<float>(), x.data<float>() + x.numel());
    else b.ints = int_values(x);
    return b;
}

std::vector<int32_t> float_bits(const std::vector<float> &f) {
    std::vector<int32_t> r(f.size());
    std::memcpy(r.data(), f.data(), f.size() * sizeof(float));
    return r;
}

// NCHW <-> NHWC of a flat int vector.
std::vector<int32_t> nchw_to_nhwc(const std::vector<int32_t> &v, int64_t n, int64_t c, int64_t h,
                                  int64_t w) {
    std::vector<int32_t> r(v.size());
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    r[((b * h + y) * w + x) * c + ch] = v[((b * c + ch) * h + y) * w + x];
    return r;
}

std::vector<int32_t> nhwc_to_nchw(const std::vector<int32_t> &v, int64_t n, int64_t h, int64_t w,
                                  int64_t c) {
    std::vector<int32_t> r(v.size());
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++)
                    r[((b * c + ch) * h + y) * w + x] = v[((b * h + y) * w + x) * c + ch];
    return r;
}

void poison(Tensor &t) { std::fill_n(t.data<uint8_t>(), t.nbytes(), 0xA5); }

class OnnxConformance : public ::testing::Test {
protected:
    void SetUp() override {
        name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        const std::string root = QH_ONNX_TESTDATA_DIR;
        ASSERT_TRUE(fs::is_directory(root))
            << "ONNX conformance data directory " << root
            << " is missing: install Debian's libonnx-testdata (the setup script does), or "
               "configure with -DQH_ONNX_TESTDATA_DIR=<.../data/node>";
        dir_ = root + "/" + name_;
        const std::string model = dir_ + "/model.onnx", data = dir_ + "/test_data_set_0";
        ASSERT_TRUE(fs::is_regular_file(model)) << "missing ONNX test model " << model;
        ASSERT_TRUE(fs::is_directory(data)) << "missing ONNX test data " << data;
        onnx::ModelProto m;
        ASSERT_NO_THROW(parse_file(model, m));
        ASSERT_EQ(m.graph().node_size(), 1) << model << ": expected a single-node graph";
        node_ = m.graph().node(0);
        // Initializers first, then the data set's inputs, in graph input order.
        for (const auto &t : m.graph().initializer())
            ASSERT_NO_THROW(inputs_[t.name()] = decode(t, model + " initializer " + t.name()));
        int idx = 0;
        for (const auto &gi : m.graph().input()) {
            if (inputs_.count(gi.name())) continue;
            std::string path = data + "/input_" + std::to_string(idx++) + ".pb";
            ASSERT_TRUE(fs::is_regular_file(path)) << "missing " << path;
            onnx::TensorProto t;
            ASSERT_NO_THROW(parse_file(path, t));
            ASSERT_TRUE(t.name().empty() || t.name() == gi.name())
                << path << " holds '" << t.name() << "', graph input is '" << gi.name() << "'";
            ASSERT_NO_THROW(inputs_[gi.name()] = decode(t, path));
        }
        ASSERT_EQ(m.graph().output_size(), 1);
        std::string out = data + "/output_0.pb";
        ASSERT_TRUE(fs::is_regular_file(out)) << "missing " << out;
        onnx::TensorProto t;
        ASSERT_NO_THROW(parse_file(out, t));
        ASSERT_NO_THROW(expected_ = decode(t, out));
    }

    void expect_op(const std::string &op_type) {
        ASSERT_EQ(node_.op_type(), op_type) << dir_;
        ASSERT_TRUE(node_.domain().empty() || node_.domain() == "ai.onnx") << node_.domain();
    }
    bool has_input(int i) const {
        return i < node_.input_size() && !node_.input(i).empty() &&
               inputs_.count(node_.input(i));
    }
    const Blob &input(int i) const {
        if (!has_input(i))
            throw std::runtime_error(name_ + ": node input " + std::to_string(i) + " missing");
        return inputs_.at(node_.input(i));
    }
    // Scalar (or 1-element) integer input, `dflt` when the optional input is absent.
    int32_t scalar_int(int i, int32_t dflt) const {
        if (!has_input(i)) return dflt;
        const Blob &b = input(i);
        if (b.ints.size() != 1) throw std::runtime_error(name_ + ": input " + b.name + " not scalar");
        return b.ints[0];
    }
    float scalar_float(int i) const {
        const Blob &b = input(i);
        if (b.floats.size() != 1) throw std::runtime_error(name_ + ": input " + b.name + " not scalar");
        return b.floats[0];
    }

    // Conv attributes (2-D, NOTSET padding, no dilation/groups) into qh parameters.
    void conv_attrs(const std::vector<int64_t> &wdims, Conv2dParams &cp) {
        ASSERT_EQ(wdims.size(), 4u) << "only 2-D convolutions";
        auto ks = attr_ints(node_, "kernel_shape", {wdims[2], wdims[3]});
        ASSERT_EQ(ks, (std::vector<int64_t>{wdims[2], wdims[3]})) << "kernel_shape vs W";
        auto pads = attr_ints(node_, "pads", {0, 0, 0, 0});
        auto strides = attr_ints(node_, "strides", {1, 1});
        auto dil = attr_ints(node_, "dilations", {1, 1});
        ASSERT_EQ(pads.size(), 4u);
        ASSERT_EQ(strides.size(), 2u);
        ASSERT_EQ(dil, (std::vector<int64_t>{1, 1})) << "dilations unsupported";
        ASSERT_EQ(attr_int(node_, "group", 1), 1) << "group unsupported";
        ASSERT_EQ(attr_string(node_, "auto_pad", "NOTSET"), "NOTSET") << "auto_pad unsupported";
        cp.name = name_;
        cp.stride_h = int(strides[0]); cp.stride_w = int(strides[1]);
        cp.pad_top = int(pads[0]); cp.pad_left = int(pads[1]);
        cp.pad_bottom = int(pads[2]); cp.pad_right = int(pads[3]);
    }

    // Runs conv2d for every target and compares with expected_ (NCHW).
    void run_conv(const Blob &x, int32_t x_zp, float x_scale, const Blob &w,
                  std::vector<int32_t> w_zp, std::vector<float> w_scale, DType out,
                  float y_scale, int32_t y_zp, const std::vector<int32_t> &bias,
                  int expect_weight_zp_path = -1) {
        ASSERT_EQ(x.dtype, onnx::TensorProto::UINT8) << "qh conv inputs are u8";
        ASSERT_EQ(x.dims.size(), 4u);
        ASSERT_EQ(w.dims.size(), 4u);
        ASSERT_TRUE(w.dtype == onnx::TensorProto::UINT8 || w.dtype == onnx::TensorProto::INT8);
        Conv2dParams cp;
        conv_attrs(w.dims, cp);
        if (HasFatalFailure()) return;
        const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
        ASSERT_EQ(w.dims[1], C);
        WeightsDesc wd;
        wd.name = name_ + ".w";
        wd.oc = int(w.dims[0]); wd.ic = int(w.dims[1]); wd.kh = int(w.dims[2]); wd.kw = int(w.dims[3]);
        std::vector<uint8_t> wu8;
        std::vector<int8_t> ws8;
        if (w.dtype == onnx::TensorProto::UINT8) {
            wu8.assign(w.ints.begin(), w.ints.end());
            wd.dtype = DType::u8; wd.data = wu8.data();
        } else {
            ws8.assign(w.ints.begin(), w.ints.end());
            wd.dtype = DType::s8; wd.data = ws8.data();
        }
        wd.zero_point = std::move(w_zp);
        wd.scale = std::move(w_scale);
        if (!bias.empty()) {
            ASSERT_EQ(bias.size(), size_t(wd.oc));
            wd.bias = bias.data();
        }
        PackedWeights pw = pack_weights(wd, x_scale, x_zp, out == DType::s32 ? 0.f : y_scale);
        if (expect_weight_zp_path >= 0) {
            EXPECT_EQ(pw.has_zero_point, expect_weight_zp_path == 1) << "weight zero-point path";
        }
        Tensor xt = int_tensor(DType::u8, {N, H, W, C}, nchw_to_nhwc(x.ints, N, C, H, W),
                               QuantParams::per_tensor(x_scale, x_zp));
        auto yshape = conv2d_output_shape(xt, pw, cp);
        ASSERT_EQ(expected_.dims, (std::vector<int64_t>{yshape[0], yshape[3], yshape[1], yshape[2]}));
        ASSERT_EQ(expected_.dtype, out == DType::u8 ? onnx::TensorProto::UINT8
                                   : out == DType::s8 ? onnx::TensorProto::INT8
                                                      : onnx::TensorProto::INT32);
        const char *family = out == DType::s32
                                 ? (pw.has_zero_point ? "conv2d_u8z8s32" : "conv2d_u8s8s32")
                             : out == DType::s8 ? "conv2d_u8s8s8"
                                                : (pw.has_zero_point ? "conv2d_u8z8u8" : "conv2d_u8s8u8");
        int ran = 0;
        QH_FOR_EACH_TARGET(tag) {
            Tensor y(out, yshape, out == DType::s32 ? QuantParams{}
                                                    : QuantParams::per_tensor(y_scale, y_zp));
            poison(y);
            conv2d(xt, pw, cp, y);
            auto got = nhwc_to_nchw(int_values(y), yshape[0], yshape[1], yshape[2], yshape[3]);
            EXPECT_EQ(first_mismatch(got, expected_.ints), "") << "kernel " << last_kernel(family);
            EXPECT_EQ(last_kernel(family), std::string(family) + "__" + tag);
            ran++;
        }
        EXPECT_GE(ran, 1);
    }

    // QuantizeLinear vectors; `axis` is -1 for per-tensor, else the per-axis dimension.
    void check_quantize(int axis) {
        expect_op("QuantizeLinear");
        if (HasFatalFailure()) return;
        const Blob &x = input(0);
        ASSERT_EQ(x.dtype, onnx::TensorProto::FLOAT);
        QuantParams q = linear_quant(x, 1, 2);
        EXPECT_EQ(q.axis, axis) << "per-axis vectors quantize along NCHW channels";
        DType out = has_input(2) ? qh_dtype(input(2).dtype) : DType::u8;
        ASSERT_EQ(expected_.dims, x.dims);
        ASSERT_EQ(qh_dtype(expected_.dtype), out);
        Tensor xt = tensor_from(DType::f32, x.dims, x.floats);
        QH_FOR_EACH_TARGET(tag) {
            Tensor y(out, x.dims, q);
            poison(y);
            quantize(xt, y);
            EXPECT_EQ(first_mismatch(int_values(y), expected_.ints), "");
            std::string family = out == DType::u8 ? "quantize_f32u8" : "quantize_f32s8";
            EXPECT_EQ(last_kernel(family), family + "__" + tag);
        }
    }

    // DequantizeLinear vectors; `axis` as in check_quantize. Floats compare by bit pattern.
    void check_dequantize(int axis) {
        expect_op("DequantizeLinear");
        if (HasFatalFailure()) return;
        const Blob &x = input(0);
        QuantParams q = linear_quant(x, 1, 2);
        EXPECT_EQ(q.axis, axis) << "per-axis vectors dequantize along NCHW channels";
        ASSERT_EQ(expected_.dtype, onnx::TensorProto::FLOAT);
        ASSERT_EQ(expected_.dims, x.dims);
        Tensor xt = int_tensor(qh_dtype(x.dtype), x.dims, x.ints, q);
        QH_FOR_EACH_TARGET(tag) {
            Tensor y(DType::f32, x.dims);
            poison(y);
            dequantize(xt, y);
            std::vector<float> got(y.data<float>(), y.data<float>() + y.numel());
            EXPECT_EQ(first_mismatch(float_bits(got), float_bits(expected_.floats)), "");
            std::string family = std::string("dequantize_") + dtype_name(xt.dtype()) + "f32";
            EXPECT_EQ(last_kernel(family), family + "__" + tag);
        }
    }

    void run_convinteger() {
        expect_op("ConvInteger");
        if (HasFatalFailure()) return;
        const Blob &x = input(0), &w = input(1);
        int32_t x_zp = scalar_int(2, 0);
        std::vector<int32_t> w_zp = has_input(3) ? input(3).ints : std::vector<int32_t>{0};
        run_conv(x, x_zp, 1.f, w, w_zp, {1.f}, DType::s32, 0.f, 0, {});
    }

    // QuantizeLinear / DequantizeLinear per-tensor or per-axis parameters.
    QuantParams linear_quant(const Blob &data, int scale_in, int zp_in) {
        const Blob &s = input(scale_in);
        EXPECT_EQ(s.dtype, onnx::TensorProto::FLOAT);
        QuantParams q;
        q.scale = s.floats;
        if (has_input(zp_in)) q.zero_point = input(zp_in).ints;
        EXPECT_EQ(attr_int(node_, "block_size", 0), 0) << "blocked quantization unsupported";
        if (s.numel() > 1) {  // 1-D scale: per axis (ONNX `axis`, default 1)
            int64_t axis = attr_int(node_, "axis", 1);
            if (axis < 0) axis += int64_t(data.dims.size());
            EXPECT_EQ(int64_t(s.floats.size()), data.dims.at(axis)) << "per-axis scale count";
            q.axis = int(axis);
        }
        return q;
    }

    std::string name_, dir_;
    onnx::NodeProto node_;
    std::map<std::string, Blob> inputs_;
    Blob expected_;
};

TEST_F(OnnxConformance, test_qlinearconv) {
    expect_op("QLinearConv");
    if (HasFatalFailure()) return;
    const Blob &x = input(0), &w = input(3);
    float x_scale = scalar_float(1), y_scale = scalar_float(6);
    int32_t x_zp = scalar_int(2, 0), y_zp = scalar_int(7, 0);
    std::vector<float> w_scale = input(4).floats;
    std::vector<int32_t> w_zp = has_input(5) ? input(5).ints : std::vector<int32_t>{0};
    std::vector<int32_t> bias = has_input(8) ? input(8).ints : std::vector<int32_t>{};
    DType out = has_input(7) ? qh_dtype(input(7).dtype) : DType::u8;
    // This vector uses u8 weights with zero point 255: the weight-zero-point (z8) path.
    EXPECT_EQ(w_zp, std::vector<int32_t>{255});
    run_conv(x, x_zp, x_scale, w, w_zp, w_scale, out, y_scale, y_zp, bias, 1);
}

TEST_F(OnnxConformance, test_convinteger_with_padding) {
    // The vector really pads (ONNX pads [1,1,1,1]), read from model.onnx.
    EXPECT_EQ(attr_ints(node_, "pads", {}), (std::vector<int64_t>{1, 1, 1, 1}));
    run_convinteger();
}
TEST_F(OnnxConformance, test_convinteger_without_padding) { run_convinteger(); }
TEST_F(OnnxConformance, test_basic_convinteger) { run_convinteger(); }

TEST_F(OnnxConformance, test_matmulinteger) {
    expect_op("MatMulInteger");
    if (HasFatalFailure()) return;
    const Blob &a = input(0), &b = input(1);
    ASSERT_EQ(a.dims.size(), 2u) << "only 2-D MatMulInteger";
    ASSERT_EQ(b.dims.size(), 2u);
    ASSERT_EQ(a.dtype, onnx::TensorProto::UINT8);
    ASSERT_TRUE(b.dtype == onnx::TensorProto::UINT8 || b.dtype == onnx::TensorProto::INT8);
    const int64_t M = a.dims[0], K = a.dims[1], N = b.dims[1];
    ASSERT_EQ(b.dims[0], K);
    int32_t a_zp = scalar_int(2, 0);
    std::vector<int32_t> b_zp = has_input(3) ? input(3).ints : std::vector<int32_t>{0};
    // B {K, N} -> weights {N (out), K (in)}.
    std::vector<int32_t> bt(size_t(N * K));
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) bt[n * K + k] = b.ints[k * N + n];
    std::vector<uint8_t> wu8(bt.begin(), bt.end());
    std::vector<int8_t> ws8(bt.begin(), bt.end());
    WeightsDesc wd;
    wd.name = name_ + ".B";
    wd.oc = int(N); wd.ic = int(K);
    wd.dtype = b.dtype == onnx::TensorProto::UINT8 ? DType::u8 : DType::s8;
    wd.data = wd.dtype == DType::u8 ? (const void *)wu8.data() : (const void *)ws8.data();
    wd.zero_point = b_zp;
    wd.scale = {1.f};
    PackedWeights pw = pack_weights(wd, 1.f, a_zp, 0.f);
    Tensor x = int_tensor(DType::u8, {M, K}, a.ints, QuantParams::per_tensor(1.f, a_zp));
    ASSERT_EQ(expected_.dims, (std::vector<int64_t>{M, N}));
    ASSERT_EQ(expected_.dtype, onnx::TensorProto::INT32);
    const char *family = pw.has_zero_point ? "dense_u8z8s32" : "dense_u8s8s32";
    int ran = 0;
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(DType::s32, {M, N});
        poison(y);
        dense(x, pw, {}, y, name_);
        EXPECT_EQ(first_mismatch(int_values(y), expected_.ints), "");
        EXPECT_EQ(last_kernel(family), std::string(family) + "__" + tag);
        ran++;
    }
    EXPECT_GE(ran, 1);
}

TEST_F(OnnxConformance, test_quantizelinear) { check_quantize(-1); }

TEST_F(OnnxConformance, test_quantizelinear_axis) { check_quantize(1); }

TEST_F(OnnxConformance, test_dequantizelinear) { check_dequantize(-1); }

TEST_F(OnnxConformance, test_dequantizelinear_axis) { check_dequantize(1); }

TEST_F(OnnxConformance, test_maxpool_2d_uint8) {
    expect_op("MaxPool");
    if (HasFatalFailure()) return;
    const Blob &x = input(0);
    ASSERT_EQ(x.dims.size(), 4u) << "only 2-D pooling";
    auto ks = attr_ints(node_, "kernel_shape", {});
    auto pads = attr_ints(node_, "pads", {0, 0, 0, 0});
    auto strides = attr_ints(node_, "strides", {1, 1});
    ASSERT_EQ(ks.size(), 2u);
    ASSERT_EQ(pads.size(), 4u);
    ASSERT_EQ(strides.size(), 2u);
    ASSERT_EQ(attr_ints(node_, "dilations", {1, 1}), (std::vector<int64_t>{1, 1}));
    ASSERT_EQ(attr_int(node_, "ceil_mode", 0), 0);
    ASSERT_EQ(attr_int(node_, "storage_order", 0), 0);
    ASSERT_EQ(attr_string(node_, "auto_pad", "NOTSET"), "NOTSET");
    ASSERT_EQ(node_.output_size(), 1) << "Indices output unsupported";
    PoolParams p;
    p.name = name_;
    p.kernel_h = int(ks[0]); p.kernel_w = int(ks[1]);
    p.stride_h = int(strides[0]); p.stride_w = int(strides[1]);
    p.pad_top = int(pads[0]); p.pad_left = int(pads[1]);
    p.pad_bottom = int(pads[2]); p.pad_right = int(pads[3]);
    const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
    DType dt = qh_dtype(x.dtype);
    Tensor xt = int_tensor(dt, {N, H, W, C}, nchw_to_nhwc(x.ints, N, C, H, W));
    auto yshape = pool_output_shape(xt, p);
    ASSERT_EQ(expected_.dims, (std::vector<int64_t>{yshape[0], yshape[3], yshape[1], yshape[2]}));
    ASSERT_EQ(expected_.dtype, x.dtype);
    const char *family = dt == DType::u8 ? "maxpool_u8u8" : "maxpool_s8s8";
    QH_FOR_EACH_TARGET(tag) {
        Tensor y(dt, yshape);
        poison(y);
        maxpool(xt, p, y);
        auto got = nhwc_to_nchw(int_values(y), yshape[0], yshape[1], yshape[2], yshape[3]);
        EXPECT_EQ(first_mismatch(got, expected_.ints), "");
        EXPECT_EQ(last_kernel(family), std::string(family) + "__" + tag);
    }
}

}  // namespace
}  // namespace qh::test
