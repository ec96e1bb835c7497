// Tuning database -> AOT build round trip: every entry of tuning/db.json for a family and target
// of this build became a kernel qh_<family>__<tag>__<shape> (cmake/qhalide_tuned.cmake), the
// runtime picks it for exactly that shape (last_kernel), and it is bit-exact; other shapes and
// QHALIDE_NO_TUNED get the family default.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "json.h"
#include "kernels.h"
#include "ops.h"
#include "problem.h"

namespace qh::explore {
namespace {

Json read_db() {
    std::ifstream f(QH_TUNING_DB);
    std::stringstream ss;
    ss << f.rdbuf();
    return Json::parse(ss.str());
}

bool in_build(const std::string &family, const std::string &tag) {
    bool fam = false, t = false;
    for (auto &f : build_families()) fam |= f.family == family;
    for (auto &x : build_targets()) t |= x.tag == tag;
    return fam && t;
}

// Runs the problem through the public runtime API; returns the kernel used, checks exactness.
std::string run_runtime(const Workload &wl) {
    const Problem &p = wl.prob;
    const float xs = 0.02f, ys = 0.05f;
    DType dst = wl.out_bytes == 4 ? DType::s32 : wl.out_signed ? DType::s8 : DType::u8;
    QuantParams yq = dst == DType::s32 ? QuantParams{} : QuantParams::per_tensor(ys, wl.y_zp);
    if (p.op == "conv2d") {
        Tensor x(DType::u8, {p.mb, p.ih, p.iw, p.ic}, QuantParams::per_tensor(xs, wl.x_zp));
        std::copy(wl.x.begin(), wl.x.end(), x.data<uint8_t>());
        Conv2dParams cp;
        cp.stride_h = p.sh; cp.stride_w = p.sw;
        cp.pad_top = p.ph; cp.pad_left = p.pw; cp.pad_bottom = p.pad_bottom(); cp.pad_right = p.pad_right();
        cp.act = {wl.act_min, wl.act_max};
        Tensor y(dst, conv2d_output_shape(x, wl.w, cp), yq);
        conv2d(x, wl.w, cp, y);
        EXPECT_EQ(compare_output(wl, y.raw()), "") << p.key();
    } else {
        Tensor x(DType::u8, {p.mb, p.ic}, QuantParams::per_tensor(xs, wl.x_zp));
        std::copy(wl.x.begin(), wl.x.end(), x.data<uint8_t>());
        Tensor y(dst, {p.mb, p.oc}, yq);
        dense(x, wl.w, {wl.act_min, wl.act_max}, y);
        EXPECT_EQ(compare_output(wl, y.raw()), "") << p.key();
    }
    return last_kernel(wl.fam.family);
}

TEST(TunedDispatch, DatabaseEntriesAreShippedAndPicked) {
    Json db = read_db();
    int checked = 0, in_this_build = 0;
    for (const Json &e : db.find("entries")->elems()) {
        std::string family = e.get_str("family"), tag = e.get_str("target"), shape = e.get_str("shape");
        if (!in_build(family, tag)) continue;
        in_this_build++;
        SCOPED_TRACE(family + " " + tag + " " + shape);
        const TunedKernel *t = nullptr;
        for (auto &k : tuned_kernels())
            if (k.name() == family + "__" + tag + "__" + shape) t = &k;
        ASSERT_NE(t, nullptr) << "no tuned kernel built for this database entry";
        EXPECT_EQ(std::string(t->knobs), e.get_str("knobs"));
        if (!cpu_supports(tag)) continue;  // built, but this CPU cannot run it
        std::string op = e.get_str("op");
        std::string dtypes = family.substr(op.size() + 1);
        Workload wl = make_workload(parse_shape(op, shape), dtypes);
        ASSERT_EQ(wl.prob.key(), shape) << "shape key must be canonical";
        force_target(tag);
        EXPECT_EQ(run_runtime(wl), t->name());
        // The same family on another shape: the default kernel.
        Problem other = wl.prob;
        other.oc += 16;
        Workload wo = make_workload(parse_shape(op, other.key()), dtypes);
        EXPECT_EQ(run_runtime(wo), family + "__" + tag);
        // Tuned kernels off: the default kernel, same result.
        set_tuned_kernels(false);
        EXPECT_EQ(run_runtime(wl), family + "__" + tag);
        set_tuned_kernels(true);
        force_target("");
        checked++;
    }
    EXPECT_EQ(in_this_build, (int)tuned_kernels().size()) << "every tuned kernel comes from the database";
    EXPECT_GE(in_this_build, 1) << "tuning/db.json ships no entry for this build";
    if (!checked) GTEST_SKIP() << "no tuned kernel this CPU can run";
}

}  // namespace
}  // namespace qh::explore
