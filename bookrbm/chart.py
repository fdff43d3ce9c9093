"""The genre chart of recommend.py as a small SVG, drawn without a plotting library.

Importing matplotlib takes ~0.65 s on our machines, more than everything else recommend.py
does; a few labelled bars need nothing but text. Any browser or image viewer opens the file.
"""
import math
from xml.sax.saxutils import escape

from .atomic import atomic_write

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")  # matplotlib's first colours, as in the PNG plots
LABEL_WIDTH, BAR_AREA, RIGHT = 150, 380, 60
BAR, GAP, TOP = 13, 10, 70


def _attribute(text):
    return escape(text, {'"': "&quot;"})


def scale_max(shares):
    """The axis end: the largest share rounded up to the next 10% (at least 10%)."""
    largest = max((float(x) for values in shares.values() for x in values), default=0.0)
    return max(0.1, math.ceil(round(largest * 10, 9)) / 10)


def genre_bars(names, shares, title):
    """SVG text: for each genre, one horizontal bar per group (``shares``: group → shares
    aligned with ``names``), each labelled with its percentage."""
    groups = list(shares)
    end = scale_max(shares)
    row = len(groups) * BAR + GAP
    width = LABEL_WIDTH + BAR_AREA + RIGHT
    height = TOP + row * len(names) + 40
    x0 = LABEL_WIDTH
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">'
        ),
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:g}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for i, group in enumerate(groups):  # legend
        x = x0 + i * 140
        out.append(f'<rect x="{x}" y="36" width="12" height="12" fill="{COLOURS[i % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 18}" y="46">{escape(group)}</text>')
    bottom = TOP + row * len(names) - GAP / 2
    for tick in range(round(end * 10) + 1):  # grid every 10%
        x = x0 + BAR_AREA * tick / 10 / end
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" fill="#555">{tick * 10}%</text>')
    for g, name in enumerate(names):
        y = TOP + g * row
        out.append(f'<text x="{x0 - 8}" y="{y + len(groups) * BAR / 2 + 4:.1f}" text-anchor="end">{escape(name)}</text>')
        for i, group in enumerate(groups):
            share = float(shares[group][g])
            length = BAR_AREA * share / end
            top = y + i * BAR
            out.append(
                f'<rect class="bar" data-group="{_attribute(group)}" data-genre="{_attribute(name)}" data-share="{share:.6f}" '
                f'x="{x0}" y="{top}" width="{length:.2f}" height="{BAR - 1}" fill="{COLOURS[i % len(COLOURS)]}"/>'
            )
            out.append(f'<text x="{x0 + length + 4:.1f}" y="{top + BAR - 3}" font-size="10">{share:.0%}</text>')
    out.append(
        f'<text x="{x0 + BAR_AREA / 2:g}" y="{height - 6}" text-anchor="middle" fill="#555">'
        "share of books (each book counts under its main genre)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_genre_bars(names, shares, path, title):
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(genre_bars(names, shares, title))
