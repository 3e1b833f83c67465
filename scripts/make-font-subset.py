#!/usr/bin/env python3
"""Makes the bundled glyph font: a subset of Noto Sans CJK SC Regular (SIL OFL 1.1).

Source: Debian's fonts-noto-cjk, /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc,
face index 2 ("Noto Sans CJK SC"). Kept: printable ASCII, Latin-1 supplement, general
punctuation, CJK symbols and punctuation (U+3000-303F), full-width forms (U+FF00-FFEF) and every
character of GB 2312 (the 6,763 hanzi of levels 1-2 plus its 682 symbols), enumerated by decoding
every valid GB 2312 byte pair with Python's codec. Layout tables are dropped (MapLibre shapes
glyph by glyph); hinting is dropped (glyphs are rendered as SDFs from the outlines).

Usage: scripts/make-font-subset.py [SOURCE.ttc] [OUT.otf]   (needs `pip install fonttools`)
Writes assets/fonts/NotoSansCJKsc-Regular-subset.otf by default.
"""
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "assets/fonts/NotoSansCJKsc-Regular-subset.otf"
FACE = 2  # Noto Sans CJK SC


def gb2312_chars():
    out = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                s = bytes([hi, lo]).decode("gb2312")
            except UnicodeDecodeError:
                continue
            out.update(ord(c) for c in s)
    return out


def main():
    cps = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100)) | set(range(0x2000, 0x2070))
    cps |= set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    gb = gb2312_chars()
    cps |= gb
    font = TTCollection(str(SRC)).fonts[FACE]
    name = font["name"].getDebugName(4)
    assert name == "Noto Sans CJK SC", f"face {FACE} of {SRC} is {name!r}, expected Noto Sans CJK SC"
    cmap = font.getBestCmap()
    present = sorted(c for c in cps if c in cmap)
    opts = subset.Options()
    opts.layout_features = []
    opts.hinting = False
    opts.desubroutinize = True
    opts.name_IDs = ["*"]
    opts.name_languages = ["*"]
    opts.notdef_outline = True
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=present)
    sub.subset(font)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(OUT))
    hanzi = sum(1 for c in present if 0x4E00 <= c <= 0x9FFF)
    print(f"{OUT}: {len(present)} code points ({len(gb)} from GB 2312, {hanzi} hanzi), {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
