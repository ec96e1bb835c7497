# Sourced by the benchmark scripts: venv_pins NAME PIN... installs the pinned Python packages
# into $VENV (.venv) unless exactly those versions are there (idempotent).
venv_pins() {
  local name="$1"
  shift
  if ! "$VENV/bin/python" - "$@" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if all(m.version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
  then
    echo "[$name] installing $* into .venv"
    "$VENV/bin/pip" install --disable-pip-version-check -q "$@"
  fi
}
