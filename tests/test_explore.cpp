// qhalide-explore: shape strings, knob validation, the correctness check rejecting a
// deliberately wrong schedule (apps/explore/wrong_schedule.cpp), and the tuner never keeping one.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "cpu_features.h"
#include "jit.h"
#include "problem.h"
#include "gpu_kernels.h"
#include "test_util.h"
#include "tune.h"

namespace qh::explore {
namespace {

using qh::test::error_of;
TEST(ShapeString, FullConv) {
    Problem p = parse_shape("conv2d", "mb2ic64ih56iw28oc128oh28ow14kh3kw3sh2sw2ph1pw1");
    EXPECT_EQ(p.mb, 2); EXPECT_EQ(p.ic, 64); EXPECT_EQ(p.ih, 56); EXPECT_EQ(p.iw, 28);
    EXPECT_EQ(p.oc, 128); EXPECT_EQ(p.oh, 28); EXPECT_EQ(p.ow, 14);
    EXPECT_EQ(p.kh, 3); EXPECT_EQ(p.kw, 3); EXPECT_EQ(p.sh, 2); EXPECT_EQ(p.sw, 2);
    EXPECT_EQ(p.ph, 1); EXPECT_EQ(p.pw, 1);
    EXPECT_EQ(p.key(), "mb2ic64ih56iw28oc128oh28ow14kh3kw3sh2sw2ph1pw1");
    EXPECT_DOUBLE_EQ(p.ops(), 2.0 * 2 * 28 * 14 * 128 * 64 * 9);
}

TEST(ShapeString, BenchdnnDefaults) {
    // iw = ih, kw = kh, sw = sh, pw = ph, mb = 1, ow from the rest.
    Problem p = parse_shape("conv2d", "ic64ih56oc64oh56kh3sh1ph1");
    EXPECT_EQ(p.key(), "mb1ic64ih56iw56oc64oh56ow56kh3kw3sh1sw1ph1pw1");
    // oh without a pad implies "same" padding; no oh = computed; '_' separators are ignored.
    EXPECT_EQ(parse_shape("conv2d", "mb1_ic64ih56_oc64oh56_kh3").ph, 1);
    EXPECT_EQ(parse_shape("conv2d", "ic256ih56oc512kh1sh2").oh, 28);
    EXPECT_EQ(parse_shape("conv2d", "ic3ih224oc64kh7sh2ph3").oh, 112);
    // An output size reached only with a bottom pad > the top one is fine (ResNet 3x3 s2).
    EXPECT_EQ(parse_shape("conv2d", "ic128ih56oc128oh28kh3sh2ph0").pad_bottom(), 1);
}

TEST(ShapeString, DenseAndPool) {
    Problem d = parse_shape("dense", "mb4ic2048oc1000");
    EXPECT_EQ(d.key(), "mb4ic2048oc1000");
    EXPECT_DOUBLE_EQ(d.ops(), 2.0 * 4 * 2048 * 1000);
    Problem m = parse_shape("maxpool", "mb1ic64ih112oh56kh3sh2ph1");
    EXPECT_EQ(m.oc, 64);
    EXPECT_EQ(m.ow, 56);
}

TEST(ShapeString, ErrorsNameTheField) {
    EXPECT_NE(error_of([] { parse_shape("conv2d", "mb1ic64ih56oc64zz3"); }).find("unknown field 'zz'"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("conv2d", "mb1ic64ih_oc64"); }).find("'ih' has no integer"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("conv2d", "ic64ih56kh3"); }).find("'oc' is required"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("conv2d", "ic64ih56oc64oh99kh3ph1"); }).find("oh=99 is inconsistent"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("conv2d", "ic64ih56ow99oc64kh3ph1"); }).find("ow=99 is inconsistent"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("conv2d", "ic64ic32ih56oc64"); }).find("given twice"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("conv2d", "g2ic64ih56oc64"); }).find("groups"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("dense", "mb1ic64oc10kh3"); }).find("dense takes mb, ic, oc"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("conv2d", "ic4ih3oc4kh5"); }).find("does not fit"), std::string::npos);
    EXPECT_NE(error_of([] { parse_shape("softmax", "ic4"); }).find("unknown op"), std::string::npos);
}

TEST(ShapeString, ResNetPresets) {
    Problem p = preset_problem("conv2d", "resnet50:res2_3x3_64_64");
    EXPECT_EQ(p.key(), "mb1ic64ih56iw56oc64oh56ow56kh3kw3sh1sw1ph1pw1");
    EXPECT_EQ(preset_problem("conv2d", "resnet50:res3_3x3s2_128_128").oh, 28);
    EXPECT_EQ(preset_names().size(), 23u);
    std::string e = error_of([] { preset_problem("conv2d", "resnet50:nope"); });
    EXPECT_NE(e.find("resnet50:res5_3x3_512_512"), std::string::npos) << "lists the presets: " << e;
}

TEST(BuildInfo, TargetsAndFamiliesComeFromCmake) {
    EXPECT_NE(halide_target_of("x86_avx512vnni").find("avx512_zen4"), std::string::npos);
    EXPECT_EQ(halide_target_of("generic"), "x86-64-linux");
    std::string e = error_of([] { halide_target_of("arm_sdot"); });
    EXPECT_NE(e.find("not known to this build"), std::string::npos) << e;
    // GPU tags are known where the library has GPU kernels: the explorer compiles them (not run).
    if (!qh::gpu_kernels::all_names().empty())
        EXPECT_NE(halide_target_of("cuda_dp4a").find("cuda"), std::string::npos);
    EXPECT_EQ(family_of("conv2d", "u8z8s32").params.at("weight_zp"), "true");
    EXPECT_NE(error_of([] { family_of("conv2d", "s8s8s8"); }).find("u8s8u8"), std::string::npos);
}

TEST(Knobs, ValidationNamesKnobRangeAndDoc) {
    EXPECT_NO_THROW(validate_knobs("conv2d", "x86_avx512vnni", "tile_x=4,tile_oc=4"));
    // name:value is the same (the AOT build's spelling: GenGen rejects '=' inside a value).
    EXPECT_EQ(validate_knobs("conv2d", "x86_avx512vnni", "tile_x:4,tile_y=3").values(),
              (std::map<std::string, int>{{"tile_x", 4}, {"tile_y", 3}}));
    std::string e = error_of([] { validate_knobs("conv2d", "x86_avx512vnni", "tile_z=3"); });
    EXPECT_NE(e.find("unknown knob 'tile_z'"), std::string::npos) << e;
    for (const char *k : {"tile_x", "tile_y", "tile_oc", "parallel"})
        EXPECT_NE(e.find(k), std::string::npos) << "valid knob " << k << " listed: " << e;
    e = error_of([] { validate_knobs("conv2d", "x86_avx512vnni", "tile_x=99"); });
    EXPECT_NE(e.find("'tile_x'=99 is out of range"), std::string::npos) << e;
    EXPECT_NE(e.find("[1, 16]"), std::string::npos) << e;
    EXPECT_NE(e.find("default 7"), std::string::npos) << "per-target default: " << e;
    EXPECT_NE(e.find("output pixels along x"), std::string::npos) << "doc: " << e;
    e = error_of([] { validate_knobs("conv2d", "x86_avx2", "tile_x=seven"); });
    EXPECT_NE(e.find("not an integer"), std::string::npos) << e;
    // Defaults differ per target and are documented by the schedule itself.
    EXPECT_EQ(effective_knobs("conv2d", "x86_avx2", Knobs("")), "tile_x=4,tile_y=1,tile_oc=2,parallel=1,oc_tiles_per_task=4");
    EXPECT_EQ(effective_knobs("conv2d", "x86_avx512vnni", Knobs("tile_y=1")), "tile_x=7,tile_y=1,tile_oc=2,parallel=1,oc_tiles_per_task=4");
}

TEST(Inspect, FindsDotProductInstructions) {
    Inspection i = inspect_code("\tvpdpbusd\t%zmm1, %zmm2, %zmm3\n\tvpdpbusd (%rax), %ymm2, %ymm3\n\tvpmaddwd %ymm1, %ymm2, %ymm3\n", "");
    EXPECT_EQ(i.dot_counts["vpdpbusd"], 2);
    EXPECT_EQ(i.dot_counts["vpdpbusd(zmm)"], 1);
    EXPECT_EQ(i.dot_counts["vpmaddwd"], 1);
    EXPECT_TRUE(i.reduction_vectorized);
    EXPECT_FALSE(inspect_code("\tvpaddd %zmm1, %zmm2, %zmm3\n", "acc[x] = acc[x] + y").reduction_vectorized);
    EXPECT_TRUE(inspect_code("", "vector_reduce_add(x)").reduction_vectorized);
}

const char *host_tag() { return qh::cpu_supports("x86_avx512vnni") ? "x86_avx512vnni" : "generic"; }

TEST(Check, DefaultScheduleIsBitExactAndUsesTheDotInstruction) {
    Workload wl = make_workload(parse_shape("conv2d", "mb1ic20ih9iw11oc40kh3ph1"), "u8s8u8");
    RunOptions o;
    o.target_tag = host_tag();
    o.repeats = 1;
    TrialResult r = run_trial(wl, o);
    ASSERT_TRUE(r.compiled) << r.error;
    EXPECT_TRUE(r.correct) << r.error;
    EXPECT_GT(r.gops, 0);
    if (std::string(host_tag()) == "x86_avx512vnni") EXPECT_GT(r.insp.dot_counts["vpdpbusd"], 0);
    EXPECT_TRUE(r.insp.reduction_vectorized);
    // The data saturates at both ends of u8, so requantization is exercised.
    int lo = 0, hi = 0;
    for (int v : wl.expected) { lo += v == 0; hi += v == 255; }
    EXPECT_GT(lo, 0);
    EXPECT_GT(hi, 0);
}

TEST(Check, WrongScheduleIsRejected) {
    for (const char *shape : {"mb1ic16ih8oc32kh3ph1", "mb1ic64ih56oc64oh56kh3sh1ph1"}) {
        Workload wl = make_workload(parse_shape("conv2d", shape), "u8s8u8");
        RunOptions o;
        o.target_tag = host_tag();
        o.schedule_tag = "wrong_for_tests";
        o.repeats = 1;
        o.inspect = false;
        TrialResult r = run_trial(wl, o);
        ASSERT_TRUE(r.compiled) << r.error;
        EXPECT_FALSE(r.correct) << shape << ": the wrong schedule passed the check";
        EXPECT_NE(r.error.find("outputs differ"), std::string::npos) << r.error;
    }
    Workload wd = make_workload(parse_shape("dense", "mb3ic70oc20"), "u8s8s32");
    RunOptions o;
    o.target_tag = host_tag();
    o.schedule_tag = "wrong_for_tests";
    o.inspect = false;
    EXPECT_FALSE(run_trial(wd, o).correct);
}

TEST(Check, EveryDtypeBitExact) {
    for (const char *dt : {"u8s8s8", "u8s8s32", "u8z8u8", "u8z8s32"}) {
        Workload wl = make_workload(parse_shape("conv2d", "mb2ic7ih6oc18kh3ph1sh2"), dt);
        RunOptions o;
        o.target_tag = host_tag();
        o.repeats = 1;
        o.inspect = false;
        TrialResult r = run_trial(wl, o);
        EXPECT_TRUE(r.correct) << dt << ": " << r.error;
    }
    Workload m = make_workload(parse_shape("maxpool", "mb1ic19ih13kh3sh2ph1"), "s8s8");
    RunOptions o;
    o.target_tag = host_tag();
    o.inspect = false;
    EXPECT_TRUE(run_trial(m, o).correct);
}

TEST(Tune, NeverKeepsAFailingScheduleAndWritesTheDatabase) {
    Workload wl = make_workload(parse_shape("conv2d", "mb1ic32ih14oc64kh3ph1"), "u8s8u8");
    RunOptions o;
    o.target_tag = host_tag();
    o.repeats = 3;
    TuneOptions t;
    t.budget = 6;
    t.progress = false;
    TuneResult r = tune(wl, o, t);
    ASSERT_EQ(r.trials.size(), 6u);
    ASSERT_GE(r.best, 0);
    EXPECT_TRUE(r.trials[r.best].correct);
    for (auto &x : r.trials)
        if (!x.correct) EXPECT_GT(r.trials[r.best].ms, 0);

    // The wrong schedule: every trial is rejected, so nothing can be selected.
    RunOptions w = o;
    w.schedule_tag = "wrong_for_tests";
    EXPECT_THROW(tune(wl, w, t), std::runtime_error);

    // Database round trip (file level): upsert replaces by (family, shape, target).
    std::string path = ::testing::TempDir() + "/qh_db_test.json";
    std::remove(path.c_str());
    Json e = Json::object();
    e["family"] = "conv2d_u8s8u8"; e["shape"] = wl.prob.key(); e["target"] = o.target_tag;
    e["knobs"] = "tile_x=4"; e["gops"] = 1.5;
    upsert_db(path, e);
    e["knobs"] = "tile_x=5";
    upsert_db(path, e);
    Json db = load_db(path);
    ASSERT_EQ(db.find("entries")->elems().size(), 1u);
    const Json *got = find_db_entry(db, "conv2d_u8s8u8", wl.prob.key(), o.target_tag);
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->get_str("knobs"), "tile_x=5");
    EXPECT_DOUBLE_EQ(got->get_num("gops"), 1.5);
}

}  // namespace
}  // namespace qh::explore
