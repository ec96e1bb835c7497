#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite through ctest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT/build"
ctest --output-on-failure -j "${QHALIDE_JOBS:-$(nproc)}" "$@"
