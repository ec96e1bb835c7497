#!/usr/bin/env bash
# Installs the build into a scratch prefix and builds + runs a consumer project against it.
set -euo pipefail
build_dir="$1"; src_dir="$2"; cmake_bin="$3"
prefix="$build_dir/install-test/prefix"
rm -rf "$build_dir/install-test"
"$cmake_bin" --install "$build_dir" --prefix "$prefix" > /dev/null
"$cmake_bin" -S "$src_dir/tests/install_consumer" -B "$build_dir/install-test/consumer" \
  -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release > /dev/null
"$cmake_bin" --build "$build_dir/install-test/consumer" > /dev/null
"$build_dir/install-test/consumer/consumer"
