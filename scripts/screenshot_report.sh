#!/usr/bin/env bash
# Renders an HTML report (report.html, compare.html, history.html) in headless Chromium to a PNG,
# and fails unless Chromium loaded it cleanly and the picture is not blank.
#
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]   (default 1400,2000)
#
# Needs `chromium` (Debian: apt-get install chromium) and python3 (standard library only).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
html=$(realpath "$1")
png=$(realpath -m "$2")
size=${3:-1400,2000}

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "error: chromium is not installed (Debian: apt-get install chromium)" >&2
  exit 2
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$png"
# A fresh profile and no background services: the page is all Chromium loads. Console messages
# and network errors go to the log, which is checked below.
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
  --enable-logging=stderr --v=0 \
  --screenshot="$png" --window-size="$size" "file://$html" >"$profile/chromium.log" 2>&1 || {
  cat "$profile/chromium.log" >&2
  echo "error: chromium failed on $html" >&2
  exit 1
}
# The report has no script and loads nothing: any console message or failed load is a bug.
if grep -E "CONSOLE|Uncaught|net::ERR_|Failed to load" "$profile/chromium.log" >&2; then
  echo "error: chromium reported the errors above while rendering $html" >&2
  exit 1
fi
if [ ! -s "$png" ]; then
  cat "$profile/chromium.log" >&2
  echo "error: chromium wrote no screenshot" >&2
  exit 1
fi

python3 - "$png" "$size" <<'PY'
"""Decodes the PNG (8-bit RGB/RGBA, as Chromium writes) with the standard library and checks that
it has the requested size and is not blank: enough pixels away from the background colour, and
more than a handful of colours (text, table rules, charts)."""
import struct
import sys
import zlib

path, size = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"error: {path} is not a PNG")
pos, idat, header = 8, b"", None
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        header = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
width, height, depth, color_type, _, _, interlace = header
channels = {2: 3, 6: 4}.get(color_type)
if depth != 8 or channels is None or interlace:
    sys.exit(f"error: unexpected PNG format (depth {depth}, colour type {color_type})")
want = tuple(int(v) for v in size.split(","))
if (width, height) != want:
    sys.exit(f"error: screenshot is {width}x{height}, asked for {want[0]}x{want[1]}")

raw = zlib.decompress(idat)
stride = width * channels
rows, previous = [], bytearray(stride)
for y in range(height):
    start = y * (stride + 1)
    kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
    for i in range(stride):
        left = line[i - channels] if i >= channels else 0
        up = previous[i]
        corner = previous[i - channels] if i >= channels else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            line[i] = (line[i] + predictor) & 0xFF
    rows.append(line)
    previous = line

background = tuple(rows[0][:3])
colours, differing = set(), 0
for line in rows:
    for x in range(0, stride, channels):
        pixel = tuple(line[x:x + 3])
        colours.add(pixel)
        if pixel != background:
            differing += 1
fraction = differing / (width * height)
print(f"{path}: {width}x{height}, {len(colours)} colours, {fraction:.1%} of pixels not background")
if fraction < 0.02 or len(colours) < 16:
    sys.exit("error: the screenshot is blank (or nearly): the report did not render")
PY
