#!/usr/bin/env bash
# One ONNX conformance model through qhalide-run, as a user runs it:
#   run_onnx_conformance.sh QHALIDE_RUN TESTDATA_DIR TEST OUT_DIR [--mismatch]
# Every <TEST>/test_data_set_0/input_N.pb is passed as --input (named by its TensorProto name;
# weights, scales and zero points become constants) and every output_N.pb as --expect.
# Passes only if qhalide-run exits 0 and reports "bit-exact" (or, for a float output, "within
# 1e-5") once per expected output.
# QH_TOLERANCE=T: float outputs pass within T (qhalide-run --tolerance; default 1e-5).
# --mismatch: a self-check of the harness. The last byte of output_0.pb (its raw data) is
# flipped in a copy; qhalide-run must then report MISMATCH and exit 2.
set -u
run=$1 dir=$2/$3/test_data_set_0 model=$2/$3/model.onnx out=$4 mode=${5:-}
[ -f "$model" ] || { echo "FAIL: $model missing (install Debian's libonnx-testdata)"; exit 1; }
mkdir -p "$out"
args=()
for f in "$dir"/input_*.pb; do args+=(--input "$f"); done
n=0
for f in "$dir"/output_*.pb; do
    if [ "$mode" = --mismatch ] && [ $n -eq 0 ]; then
        last=$(tail -c 1 "$f" | od -An -tu1 | tr -d ' ')
        head -c -1 "$f" > "$out/wrong_output_0.pb"
        printf "\\$(printf %o $((last ^ 1)))" >> "$out/wrong_output_0.pb"
        f=$out/wrong_output_0.pb
    fi
    args+=(--expect "$f")
    n=$((n + 1))
done
[ $n -gt 0 ] || { echo "FAIL: no output_N.pb in $dir"; exit 1; }
args+=(--tolerance "${QH_TOLERANCE:-1e-5}")
echo "+ $run $model ${args[*]} --output-dir $out"
log=$("$run" "$model" "${args[@]}" --output-dir "$out" 2>&1)
rc=$?
echo "$log"
exact=$(grep -cE ': (bit-exact|within [0-9.e+-]+ \(max abs diff [^)]*\)) \(' <<<"$log")
if [ "$mode" = --mismatch ]; then
    if [ $rc -eq 2 ] && grep -q ': MISMATCH (' <<<"$log"; then echo "PASS: the flipped byte was detected (exit 2)"; exit 0; fi
    echo "FAIL: a wrong expected output was not detected (exit $rc)"; exit 1
fi
if [ $rc -eq 0 ] && [ "$exact" -eq $n ]; then echo "PASS: $n of $n outputs bit-exact or within ${QH_TOLERANCE:-1e-5}"; exit 0; fi
echo "FAIL: exit $rc, $exact of $n outputs bit-exact or within ${QH_TOLERANCE:-1e-5}"
exit 1
