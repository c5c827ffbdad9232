#!/usr/bin/env python3
"""Write the inputs suites/ppocr.yaml runs PP-OCRv4 on: synthetic text, as the models take it.

A page of dark glyph-like strokes in lines on a white background (for detection,
[1, 3, 320, 320]), one line of them (recognition, [1, 3, 48, 320]) and a shorter line (the
direction classifier, [1, 3, 48, 192]), and four more of each to calibrate static scales on,
each normalized as PaddleOCR normalizes an image:
(pixel / 255 - 0.5) / 0.5, so white is 1 and black -1. Noise in [-1, 1] is no image: on it the
detector sees no text anywhere and its output is the far tail of a sigmoid, where any rounding
is a large relative error; strokes give it text to find.

    python3 scripts/make_ppocr_inputs.py OUT_DIR     (scripts/fetch_ppocr.sh runs it)

Deterministic: a seeded numpy generator draws the glyphs. Needs numpy.
"""

import pathlib
import sys

import numpy as np

rng = np.random.default_rng(2026)


def glyphs(height, width, line_height, lines, margin):
    """A grey page [height, width] in [0, 255] with `lines` lines of strokes."""
    page = np.full((height, width), 245.0)
    pitch = height // max(lines, 1)
    for line in range(lines):
        top = line * pitch + (pitch - line_height) // 2
        x = margin
        while x < width - margin - line_height:
            glyph = int(line_height * rng.uniform(0.5, 0.9))
            if rng.random() < 0.15:  # a space between words
                x += glyph
                continue
            for _ in range(rng.integers(2, 5)):  # a few strokes per glyph
                if rng.random() < 0.5:
                    y0 = top + rng.integers(0, line_height - 2)
                    page[y0 : y0 + 2, x : x + glyph] = rng.uniform(10, 60)
                else:
                    x0 = x + rng.integers(0, max(glyph - 2, 1))
                    page[top : top + line_height, x0 : x0 + 2] = rng.uniform(10, 60)
            x += glyph + 2
    return page


def normalized(page):
    """[1, 3, H, W] float32 as PaddleOCR feeds it."""
    image = np.repeat(page[None, None, :, :], 3, axis=1)
    return ((image / 255.0 - 0.5) / 0.5).astype(np.float32)


out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
# The measured input, then four others to calibrate static scales on (NAME.1.npy ... NAME.4.npy).
for suffix in ["", ".1", ".2", ".3", ".4"]:
    np.save(out / f"page{suffix}.npy", normalized(glyphs(320, 320, 20, 8, 16)))
    np.save(out / f"line{suffix}.npy", normalized(glyphs(48, 320, 32, 1, 8)))
    np.save(out / f"word{suffix}.npy", normalized(glyphs(48, 192, 32, 1, 8)))
