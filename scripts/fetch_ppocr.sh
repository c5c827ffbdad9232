#!/usr/bin/env bash
# Fetches PaddleOCR's PP-OCRv4 models as the PyPI package rapidocr-onnxruntime 1.4.4 ships them
# (inside site-packages, rapidocr_onnxruntime/models/), and links them at models/ppocr/ (git-ignored):
#   det.onnx   PP-OCRv4 text detection (a conv net, DB head; opset 12)
#   rec.onnx   PP-OCRv4 text recognition (SVTR: convs and attention; opset 12)
#   cls.onnx   the text direction classifier (PP-OCR mobile v2.0; opset 11)
# and writes synthetic text for them to read (scripts/make_ppocr_inputs.py: page.npy, line.npy,
# word.npy). Installs the package with --no-deps (~15 MB) into PYTHON's environment (default
# python3).
# Prints the folder the links point into.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PKG=rapidocr-onnxruntime
PKG_VERSION=1.4.4

installed=$("$PYTHON" -c "
import importlib.metadata as m
try: print(m.version('$PKG'))
except m.PackageNotFoundError: print('')
")
if [ "$installed" != "$PKG_VERSION" ]; then
  "$PYTHON" -m pip install --quiet --no-deps "$PKG==$PKG_VERSION"
fi

# Locate the files without importing the package (find_spec does not run its __init__).
folder=$("$PYTHON" -c "
import importlib.util, pathlib, sys
spec = importlib.util.find_spec('rapidocr_onnxruntime')
if spec is None or spec.origin is None:
    sys.exit('rapidocr_onnxruntime is not importable')
print(pathlib.Path(spec.origin).resolve().parent / 'models')
")

mkdir -p models/ppocr
for pair in det:ch_PP-OCRv4_det_infer rec:ch_PP-OCRv4_rec_infer cls:ch_ppocr_mobile_v2.0_cls_infer; do
  name=${pair%%:*}
  file="$folder/${pair#*:}.onnx"
  [ -f "$file" ] || { echo "$file is missing" >&2; exit 1; }
  ln -sfn "$file" "models/ppocr/$name.onnx"
done
"$PYTHON" scripts/make_ppocr_inputs.py models/ppocr
echo "$folder"
