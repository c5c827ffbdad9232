#!/usr/bin/env bash
# The tests' Python environment, made by `cargo nextest run` itself (a nextest setup script, see
# .config/nextest.toml): a virtual environment under target/ with the exact packages of
# tests/requirements.txt (NVRTC for compiling the CUDA kernels, ONNX Runtime and onnx for the
# ONNX tests, the all-MiniLM-L6-v2 checkpoint), made again only when that file changes. The
# global Python is never touched. It hands the tests PATH (its python3 first) and
# LD_LIBRARY_PATH (NVRTC) through $NEXTEST_ENV, and links the checkpoint where
# suites/minilm.yaml reads it and the PP-OCRv4 models where suites/ppocr.yaml does (models/,
# git-ignored).
#
# Run by hand (`scripts/test_env.sh`) it prints the environment to export instead.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=tests/requirements.txt
venv="${CARGO_TARGET_DIR:-target}/test-env"
python=${PYTHON:-python3}

fail() {
  echo "precheck tests: $*" >&2
  exit 1
}

command -v "$python" >/dev/null 2>&1 ||
  fail "python3 (3.9 or later, with venv and pip) is needed to set up the test environment; none is on PATH"
stamp="$venv/requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv" >/dev/null 2>&1 ||
    fail "\`$python -m venv\` failed: install Python's venv module (Debian: apt install python3-venv)"
  log="$venv/pip.log"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$requirements" >"$log" 2>&1; then
    fail "pip could not install $requirements (no network, or no wheel for this platform): see $log"
  fi
  echo "$want" >"$stamp"
fi

nvrtc=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))')
PYTHON="$venv/bin/python" scripts/fetch_minilm.sh >/dev/null
PYTHON="$venv/bin/python" scripts/fetch_ppocr.sh >/dev/null

path="$(cd "$venv/bin" && pwd):$PATH"
library_path="$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -n "${NEXTEST_ENV:-}" ]; then
  printf 'PATH=%s\nLD_LIBRARY_PATH=%s\n' "$path" "$library_path" >>"$NEXTEST_ENV"
else
  printf 'export PATH=%q\nexport LD_LIBRARY_PATH=%q\n' "$path" "$library_path"
fi
