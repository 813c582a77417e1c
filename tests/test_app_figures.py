"""Publication figures (wna_gui.figures): headless Qt painting to PNG, PDF and SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6.QtGui import QImage

from wna_gui import figures


def _maps(channels=1, classes=10, size=28, empty=(0, 4)):
    rng = np.random.default_rng(0)
    maps = rng.normal(0, 0.02, (classes, channels, size, size))
    maps[list(empty)] = np.nan
    return maps


def test_titles_follow_fig_2a():
    titles = figures.map_titles(("0", "1", "2"), np.array([0, 12345, 7]), np.array([-1, 1, 0]))
    assert titles == ["0 · no samples", "1 · map→1 · n=12,345", "2 · map→0 · n=7"]
    assert figures.map_titles(("a",), np.array([5]))[0] == "a · n=5"


def test_levels_are_symmetric_and_z_spans_at_least_three():
    maps = _maps()
    low, high = figures.map_levels(maps, "centered")
    assert low == -high and high == pytest.approx(np.nanmax(np.abs(maps)))
    assert figures.map_levels(maps, "zmap") == (-3.0, 3.0)
    low, high = figures.map_levels(maps + 0.5, "mean", center=0.5)
    assert (low + high) / 2 == pytest.approx(0.5)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_keeps_native_pixels_and_marks_empty_tiles(tmp_path, channels):
    maps = _maps(channels)
    titles = figures.map_titles([str(k) for k in range(10)], np.where(np.isnan(maps[:, 0, 0, 0]), 0, 50))
    path = figures.save_map_grid(maps, titles, tmp_path / "grid.png", view="centered", title="Test grid")
    image = QImage(str(path))
    scale = figures.TARGET_TILE_PIXELS // 28
    assert image.width() >= 5 * 28 * scale and image.height() >= 2 * 28 * scale
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # Each native pixel is a block of identical colours (nearest-neighbour, no smoothing).
    figure = figures._GridFigure(maps, titles, "centered", "Test grid", figures.map_levels(maps, "centered"), None)
    x0, y0 = figure.margin + figure.tile_w + figure.gap, figure.margin + figure.header_h + figure.caption_h
    block = {image.pixel(x0 + dx, y0 + dy) for dx in range(scale) for dy in range(scale)}
    assert len(block) == 1
    # Empty classes are plain grey, not a flat colour-mapped map.
    assert QImage.pixel(image, figure.margin + 2, y0 + 2) & 0xFFFFFF == 0xC8C8C8


def test_pdf_and_svg_are_valid(tmp_path):
    maps = _maps()
    titles = [f"class {k}" for k in range(10)]
    pdf = figures.save_map_grid(maps, titles, tmp_path / "grid.pdf", view="zmap")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 5000
    svg = figures.save_map_grid(maps, titles, tmp_path / "grid.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "class 3" in svg.read_text()  # titles are text, not pixels


def test_bad_requests_raise_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="use .png, .pdf or .svg"):
        figures.save_map_grid(_maps(), ["x"] * 10, tmp_path / "grid.jpg")
    with pytest.raises(ValueError, match="titles for"):
        figures.save_map_grid(_maps(), ["x"], tmp_path / "grid.png")
    with pytest.raises(ValueError, match=r"\(classes, channels, height, width\)"):
        figures.save_map_grid(np.zeros((10, 28, 28)), ["x"] * 10, tmp_path / "grid.png")
