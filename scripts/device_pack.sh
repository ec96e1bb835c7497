#!/usr/bin/env bash
# Gather what scripts/device_cpu_bench.sh needs on the device machine into .dev/ (git-ignored
# through .git/info/exclude): qhalide-resnet, the shared libraries it links that a bare image may
# lack (OpenBLAS, libpng, libjpeg, protobuf, ...), and the peer-measurement script.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/device_bundle.sh"
DEST="$(device_bundle_dir .dev)"
device_bundle_binaries "$DEST" "$ROOT/build/bin/qhalide-resnet"
cp "$ROOT/../shared/tools/peers_device.py" "$DEST/"
du -sh "$DEST"
