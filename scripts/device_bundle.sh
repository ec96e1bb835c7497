# Sourced by the device_* scripts: packing what a command needs on the device machine. The
# device tool sends the main checkout's tree plus the git-ignored folders named in `carry`
# (64 MiB in all), and the device image has no Halide, OpenBLAS, protobuf, ...

# device_bundle_dir NAME: prints <main checkout>/NAME (also from a worktree), emptied, with a
# lib/ folder, and git-ignored through .git/info/exclude.
device_bundle_dir() {
  local root common dest
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  common="$(git -C "$root" rev-parse --path-format=absolute --git-common-dir)"
  mkdir -p "$common/info"
  grep -qx "/$1/" "$common/info/exclude" 2>/dev/null || echo "/$1/" >>"$common/info/exclude"
  dest="$(dirname "$common")/$1"
  rm -rf "$dest" && mkdir -p "$dest/lib"
  echo "$dest"
}

# device_bundle_binaries DEST BIN...: copies the binaries into DEST and the shared libraries they
# link that a bare image may lack into DEST/lib (run there with LD_LIBRARY_PATH=DEST/lib), all
# stripped (the carry limit).
device_bundle_binaries() {
  local dest="$1" b l
  shift
  cp "$@" "$dest/"
  for l in $(ldd "$@" | awk '/=> \//{print $3}' | sort -u); do
    case "$(basename "$l")" in
      libc.so*|libm.so*|libstdc++*|libgcc_s*|ld-linux*|libdl.so*|libpthread*|librt.so*) ;;
      *) cp -L "$l" "$dest/lib/" ;;
    esac
  done
  for b in "$@"; do strip --strip-unneeded "$dest/$(basename "$b")"; done
  strip --strip-unneeded "$dest"/lib/*
}

# device_bundle_seal DEST SCRIPT: records the commit, compresses DEST into DEST/bundle.tar.gz (the
# carry limit) next to a copy of SCRIPT, whose `run` unpacks it there.
device_bundle_seal() {
  local dest="$1" script="$2" root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  git -C "$root" rev-parse HEAD >"$dest/COMMIT"
  tar -C "$dest" -czf "$dest.tar.gz" . && rm -rf "$dest" && mkdir -p "$dest"
  mv "$dest.tar.gz" "$dest/bundle.tar.gz"
  cp "$script" "$dest/"
  du -sh "$dest"
}
