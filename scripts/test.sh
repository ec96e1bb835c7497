#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite through ctest; then the
# sanitizer + fuzz job (scripts/fuzz.sh: ASan+UBSan unit tests and 60 s per fuzz target;
# QHALIDE_SKIP_FUZZ=1 leaves it out, QHALIDE_FUZZ_SECONDS changes the time per target).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT/build"
ctest --output-on-failure -j "${QHALIDE_JOBS:-$(nproc)}" "$@"
if [ -z "${QHALIDE_SKIP_FUZZ:-}" ]; then
  QHALIDE_SETUP_DONE=1 "$ROOT/scripts/fuzz.sh"
fi
