#!/usr/bin/env bash
# Install what is missing, build, and run the main job: int8 ResNet-50 on the bundled image
# (built-in model, deterministic synthetic weights calibrated on synthetic inputs), with the
# per-layer profile. Extra arguments go to qhalide-resnet (see --help), e.g.
#   scripts/demo.sh --model resnet18 --batch 16 --threads 2 --json
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "$ROOT/build/bin/qhalide-resnet" --model resnet50 --image "$ROOT/assets/sample.jpg" --profile "$@"
