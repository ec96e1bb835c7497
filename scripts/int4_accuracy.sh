#!/usr/bin/env bash
# Accuracy proxy for the int4 precisions (the built-in ResNets have synthetic weights, so there is
# no ImageNet top-1 to report): logits of int8, W4A8, W4A4 and a mixed configuration against the
# fp32 path on the bundled photos plus smooth synthetic images, as logit cosine and top-1 /
# top-5 agreement.   scripts/int4_accuracy.sh [BUILD_DIR] [MIXED_BITS_FILE]   (MODEL=resnet50)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="${1:-$ROOT/build}" BITS="${2:-$ROOT/bench/results/int4_2026-11-29/mixed_bits.txt}"
M="${MODEL:-resnet50}" T="${THREADS:-0}"
PY="$ROOT/.venv/bin/python"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
imgs=("$ROOT/assets/sample.jpg" "$ROOT/assets/sample.png")
# Synthetic inputs: smooth random images, ImageNet-normalized .npy (numpy comes with onnx) in the
# model's layout: NHWC for the built-in ResNets, NCHW for an .onnx MODEL.
"$PY" - "$W" "$M" <<'PY'
import numpy as np, sys
rng = np.random.default_rng(7)
for k in range(6):
    y, x = np.mgrid[0:224, 0:224] / 224.0
    img = np.stack([0.5 + 0.4 * np.sin(rng.uniform(2, 12) * x + rng.uniform(0, 6) * y + rng.uniform(0, 6))
                    for _ in range(3)], -1) + rng.normal(0, 0.05, (224, 224, 3))
    img = (np.clip(img, 0, 1) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    x = img[None].astype(np.float32)
    np.save(f"{sys.argv[1]}/synthetic{k}.npy", x.transpose(0, 3, 1, 2).copy() if sys.argv[2].endswith(".onnx") else x)
PY
for f in "$W"/synthetic*.npy; do imgs+=("$f"); done
i=0
for img in "${imgs[@]}"; do
  for p in fp32 int8 w4a8 w4a4 mixed; do
    args=(--precision "$p")
    [ "$p" = mixed ] && args+=(--bits "$BITS")
    "$B/bin/qhalide-resnet" --model "$M" "${args[@]}" --image "$img" --threads "$T" --iters 1 --warmup 0 \
      --dump-logits "$W/${p}_$i.npy" >/dev/null 2>&1
  done
  i=$((i + 1))
done
"$PY" - "$W" "$i" "$M" <<'PY'
import numpy as np, sys
w, n, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(f"{model}, {n} inputs (2 bundled photos + {n - 2} synthetic): logits vs fp32")
print("| precision | mean cosine | min cosine | top-1 agree | top-5 overlap |")
print("|---|---|---|---|---|")
for p in ["int8", "w4a8", "w4a4", "mixed"]:
    cos, t1, t5 = [], 0, 0
    for i in range(n):
        a = np.load(f"{w}/fp32_{i}.npy").ravel().astype(np.float64)
        b = np.load(f"{w}/{p}_{i}.npy").ravel().astype(np.float64)
        cos.append(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        t1 += a.argmax() == b.argmax()
        t5 += len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5]))
    print(f"| {p} | {np.mean(cos):.5f} | {np.min(cos):.5f} | {t1}/{n} | {t5 / n:.1f}/5 |")
PY
