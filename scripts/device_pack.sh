#!/usr/bin/env bash
# Gather what scripts/device_cpu_bench.sh needs on the device machine into .dev/ (git-ignored
# through .git/info/exclude): qhalide-resnet, the shared libraries it links that a bare image may
# lack (OpenBLAS, libpng, libjpeg, protobuf, ...), and the peer-measurement script.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p .dev/lib "$(git rev-parse --git-dir)/info"
EXCLUDE="$(git rev-parse --git-dir)/info/exclude"
grep -qx "/.dev/" "$EXCLUDE" 2>/dev/null || echo "/.dev/" >>"$EXCLUDE"
cp build/bin/qhalide-resnet .dev/
for l in $(ldd build/bin/qhalide-resnet | awk '/=> \//{print $3}'); do
  case "$(basename "$l")" in libc.so*|libm.so*|libstdc++*|libgcc_s*|ld-linux*) ;; *) cp -L "$l" .dev/lib/ ;; esac
done
cp "$ROOT/../shared/tools/peers_device.py" .dev/
du -sh .dev
