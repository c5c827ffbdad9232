#!/usr/bin/env bash
# Measures an HTML report's layout in headless Chromium at a window width, and fails on what a
# reader would see as broken:
# - the page scrolls sideways (a table must scroll inside its own box instead);
# - at 1000 px or wider, a variant's "why" cell is not on screen without scrolling;
# - two texts of a chart overlap (labels, axis text, titles: their boxes as Chromium lays them out);
# - any chart text is drawn smaller than 12 px (a chart scaled down to fit shrinks its text).
#
#   scripts/check_report_layout.sh REPORT.html WIDTH
#
# The report itself has no script: a copy with the measuring script appended is what Chromium
# loads, and it writes its findings into the page, which Chromium's --dump-dom prints.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 REPORT.html WIDTH" >&2
  exit 2
fi
html=$(realpath "$1")
width=$2
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "error: chromium is not installed (Debian: apt-get install chromium)" >&2
  exit 2
fi

work=$(mktemp -d)
# The copy sits beside the original, so that anything it refers to resolves the same way.
copy="$(dirname "$html")/.layout-check-$$.html"
trap 'rm -rf "$work" "$copy"' EXIT
sed "s#</body>#<script src=\"file://$work/layout-check.js\"></script></body>#" "$html" >"$copy"
cat >"$work/layout-check.js" <<'JS'
(() => {
  const found = [];
  const width = window.innerWidth;
  const page = document.documentElement.scrollWidth;
  if (page > width + 1) found.push(`the page is ${page} px wide in a ${width} px window`);
  if (width >= 1000) {
    for (const cell of document.querySelectorAll("td.why")) {
      const box = cell.getBoundingClientRect();
      if (box.width > 0 && box.right > width + 1) {
        found.push(`a "why" cell ends at ${Math.round(box.right)} px, off a ${width} px screen`);
        break;
      }
    }
  }
  document.querySelectorAll("svg").forEach((svg, chart) => {
    const texts = [...svg.querySelectorAll("text")].filter((t) => t.textContent.trim() !== "");
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width || 1;
    const boxes = texts.map((t) => t.getBoundingClientRect());
    texts.forEach((t, i) => {
      // The size it is drawn at: its font size times the chart's scale on the page.
      const px = parseFloat(t.getAttribute("font-size") || getComputedStyle(t).fontSize) * scale;
      if (px < 12) found.push(`chart ${chart + 1}: "${t.textContent}" is drawn at ${px.toFixed(1)} px`);
      for (let j = 0; j < i; j++) {
        const a = boxes[i], b = boxes[j];
        // A pixel of slack: glyph boxes of neighbouring lines touch.
        const overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
          Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
        if (overlap) found.push(`chart ${chart + 1}: "${texts[j].textContent}" and "${t.textContent}" overlap`);
      }
    });
  });
  const out = document.createElement("pre");
  out.id = "layout-check";
  out.textContent = found.length ? found.join("\n") : "layout ok";
  document.body.appendChild(out);
})();
JS

"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$work/profile" \
  --allow-file-access-from-files --window-size="$width,1200" --virtual-time-budget=5000 \
  --dump-dom "file://$copy" >"$work/dom.html" 2>"$work/chromium.log" || {
  cat "$work/chromium.log" >&2
  echo "error: chromium failed on $html" >&2
  exit 1
}
python3 - "$work/dom.html" "$html" "$width" <<'PY'
import html
import re
import sys

dom, report, width = sys.argv[1], sys.argv[2], sys.argv[3]
found = re.search(r'<pre id="layout-check">(.*?)</pre>', open(dom).read(), re.S)
if not found:
    sys.exit(f"error: the layout check did not run in Chromium on {report}")
text = html.unescape(found.group(1)).strip()
if text != "layout ok":
    print(f"error: {report} at {width} px:", file=sys.stderr)
    print(text, file=sys.stderr)
    sys.exit(1)
print(f"{report} at {width} px: layout ok")
PY
