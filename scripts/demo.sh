#!/usr/bin/env bash
# Install what is missing, build, and run the main job. Until the ResNet app exists the main job
# is the smoke run: CPU features, kernel dispatch, and one ResNet-50 3x3 conv on every kernel
# variant this CPU can run (bit-exact agreement + timing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "$ROOT/build/bin/qhalide-smoke" "$@"
