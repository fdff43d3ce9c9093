import xml.etree.ElementTree as ET

import numpy as np
import pytest

from bookrbm import chart

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg_text):
    root = ET.fromstring(svg_text)
    return root, [(b.get("data-group"), b.get("data-genre"), float(b.get("width"))) for b in root.iter(f"{SVG}rect")
                  if b.get("class") == "bar"]


def test_genre_bars_draw_one_bar_per_genre_and_group_to_scale():
    names = ["fantasy", "romance", "other"]
    shares = {"read": np.array([0.5, 0.3, 0.2]), "recommended": np.array([0.1, 0.6, 0.3])}
    root, drawn = bars(chart.genre_bars(names, shares, "Genres"))
    assert [(g, n) for g, n, _ in drawn] == [(g, n) for n in names for g in shares]
    # the axis ends at 60%, so a bar's length is its share of 60% of the bar area
    for group, name, width in drawn:
        assert width == pytest.approx(chart.BAR_AREA * shares[group][names.index(name)] / 0.6, abs=0.01)
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "50%" in labels and "60%" in labels and "Genres" in labels


def test_genre_bars_escape_text_and_write_atomically(tmp_path):
    path = tmp_path / "genres.svg"
    path.write_text("old")
    chart.write_genre_bars(["sci-fi <&> more"], {"a reader's \"books\"": [1.0]}, path, "what <Ann> & co read")
    root, drawn = bars(path.read_text(encoding="utf-8"))  # parses: every text was escaped
    assert drawn == [("a reader's \"books\"", "sci-fi <&> more", chart.BAR_AREA)]
    assert "what <Ann> & co read" in [t.text for t in root.iter(f"{SVG}text")]
    assert list(tmp_path.iterdir()) == [path]


def test_scale_rounds_up_to_the_next_ten_percent():
    assert chart.scale_max({"a": [0.31, 0.2]}) == pytest.approx(0.4)
    assert chart.scale_max({"a": [0.3]}) == pytest.approx(0.3)
    assert chart.scale_max({"a": [0.0]}) == pytest.approx(0.1)
