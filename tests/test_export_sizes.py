"""Paper-ready exports: every figure `wna export` writes, and every plot of the app, at a journal column's width.

At 85 mm and 300 dpi each figure must come out as a PNG of round(85 / 25.4 × 300) pixels declaring 300 dpi, a
PDF page 85 mm wide with its fonts embedded, and an SVG 85 mm wide whose text is glyph outlines; no text may lie
outside its page (the glyph outlines Qt's font engine made for the canvas's layout, measured against the page).
Colour scales of map rows follow the panel's rule: a class seen a few times does not set a row's scale.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smoke import model, tiny_run
from wna_gui import figures
from wna_gui.core.experiment import FIGURE_SUFFIXES
from wna_gui.core.registry import EXPERIMENTS
from wna_gui.figures.page import FigureSize, sized

WIDTH_MM, DPI = 85.0, 300
PNG_WIDTH = round(WIDTH_MM / 25.4 * DPI)
FIGURES = [(spec, artefact) for spec in EXPERIMENTS for artefact in spec.artefacts if artefact.figure]


@cache
def snapshot_of(kind: str):
    spec = next(spec for spec in EXPERIMENTS if spec.kind == kind)
    return spec.snapshot(tiny_run(kind)[0], model())


def pdf_page_mm(path: Path) -> tuple[float, float]:
    """The page's width and height in mm, from its MediaBox (points)."""
    box = re.search(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", path.read_bytes())
    x0, y0, x1, y1 = (float(v) for v in box.groups())
    return (x1 - x0) / 72 * 25.4, (y1 - y0) / 72 * 25.4


def svg_text_boxes(svg: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(text, (left, top, right, bottom)) of every text outline, in page units: the outline's points through its
    group's transform."""
    boxes = []
    for matrix, body in re.findall(r'<g\b[^>]*?transform="matrix\(([^)]*)\)"[^>]*>(.*?)</g>', svg, re.S):
        a, b, c, d, e, f = (float(v) for v in matrix.split(","))
        for label, path in re.findall(r'<path aria-label="([^"]*)"[^>]*?\sd="([^"]*)"', body):
            xy = np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", path)]).reshape(-1, 2)
            if xy.size == 0:  # a space: nothing drawn
                continue
            x, y = a * xy[:, 0] + c * xy[:, 1] + e, b * xy[:, 0] + d * xy[:, 1] + f
            boxes.append((html.unescape(label), (x.min(), y.min(), x.max(), y.max())))
    return boxes


def svg_page(svg: str) -> tuple[str, float, float]:
    """(width attribute, view-box width, view-box height)."""
    width = re.search(r'<svg\b[^>]*?\swidth="([^"]*)"', svg).group(1)
    _, _, w, h = (float(v) for v in re.search(r'viewBox="([^"]*)"', svg).group(1).split())
    return width, w, h


def export_all_formats(artefact, snapshot, folder: Path) -> dict[str, Path]:
    with sized(FigureSize(WIDTH_MM, DPI)):
        return {suffix: artefact.write(snapshot, folder / f"{artefact.name}{suffix}") for suffix in FIGURE_SUFFIXES}


def assert_paper_ready(written: dict[str, Path]) -> list[tuple[str, tuple]]:
    """The checks every exported figure passes at 85 mm / 300 dpi; returns the SVG's text boxes."""
    with Image.open(written[".png"]) as image:
        assert abs(image.width - PNG_WIDTH) <= 1, f"{written['.png'].name}: {image.width} px wide"
        assert image.info["dpi"] == pytest.approx((DPI, DPI), abs=0.5)
    width_mm, _ = pdf_page_mm(written[".pdf"])
    assert width_mm == pytest.approx(WIDTH_MM, abs=0.5)
    pdf = written[".pdf"].read_bytes()
    # Every font the PDF uses travels with it: each font's descriptor holds its font program (/FontFile2).
    fonts = re.findall(rb"/Type\s*/FontDescriptor\b(.*?)>>", pdf, re.S)
    assert fonts and all(re.search(rb"/FontFile[23]?\b", font) for font in fonts), "a font is not embedded"
    svg = written[".svg"].read_text(encoding="utf-8")
    declared, page_w, page_h = svg_page(svg)
    assert declared == f"{WIDTH_MM:g}mm"
    assert "<text" not in svg, "SVG text must be outlines (looks the same without the fonts)"
    boxes = svg_text_boxes(svg)
    outside = [(text, tuple(round(v, 1) for v in box)) for text, box in boxes
               if box[0] < -0.5 or box[1] < -0.5 or box[2] > page_w + 0.5 or box[3] > page_h + 0.5]
    assert not outside, f"{written['.svg'].name}: text outside the {page_w:.0f}×{page_h:.0f} page: {outside[:5]}"
    return boxes


@pytest.mark.parametrize("spec, artefact", FIGURES, ids=[f"{spec.kind}-{a.name}" for spec, a in FIGURES])
def test_every_figure_exports_at_a_single_column(spec, artefact, tmp_path):
    assert set(FIGURE_SUFFIXES) <= set(artefact.suffixes), f"{artefact.name} lacks a figure format"
    snapshot = snapshot_of(spec.kind)
    if not artefact.available(snapshot):
        pytest.skip(f"a tiny {spec.kind} run has no {artefact.name}")
    boxes = assert_paper_ready(export_all_formats(artefact, snapshot, tmp_path))
    assert boxes, f"{artefact.name}: a figure without a word"


def test_map_tiles_keep_their_count_at_a_single_column(tmp_path):
    """The tile titles of the classification images give each map's n in full ("no samp…" and "map→2 ·…" cut it)."""
    spec = next(spec for spec in EXPERIMENTS if spec.kind == "classification_images")
    artefact = next(a for a in spec.artefacts if a.name == "maps_centered")
    snapshot = snapshot_of(spec.kind)
    texts = [text for text, _ in assert_paper_ready(export_all_formats(artefact, snapshot, tmp_path))]
    assert not [text for text in texts if "…" in text]
    for count in snapshot.counts[snapshot.counts > 0]:
        assert f"n={int(count):,}" in texts
    # "no samples" once per empty tile (inside it, on one line or two), not in its title as well
    said = sum(text in ("no samples", "samples") for text in texts)
    assert said == int((snapshot.counts == 0).sum())


def row_scales(svg: str) -> list[float]:
    """The half-ranges written at the right of a map-rows figure's rows ("±0.0535"), top to bottom."""
    return [float(text[1:]) for text, _ in svg_text_boxes(svg) if re.fullmatch(r"±[-\d.e+]+", text)]


def test_progression_rows_are_scaled_like_the_panel(tmp_path):
    """A class seen a few times (n = 3 beside 321 and 1,676) does not set a hard-label row's scale: the panel's
    rule (figures.map_levels with the samples behind each map) gives the row's ±, and it is below the tiny class's
    own extremes, so the well-sampled maps are not washed out."""
    from wna_gui.core.classification import progression_rows

    spec = next(spec for spec in EXPERIMENTS if spec.kind == "classification_images")
    artefact = next(a for a in spec.artefacts if a.name == "progression")
    snapshot = snapshot_of(spec.kind)
    scales = row_scales(export_all_formats(artefact, snapshot, tmp_path)[".svg"].read_text(encoding="utf-8"))
    shown = figures.shown_classes(snapshot.counts)
    expected, tiny_extremes = [], []
    for estimator in snapshot.estimators:
        for _, estimated in progression_rows(snapshot, estimator):
            maps = estimated.of("centered", shown).reshape(len(shown), *snapshot.image_shape)
            support = estimated.support[shown]
            low, high = figures.map_levels(maps, "centered", 0.0, support)
            expected.append(float(f"{(high - low) / 2:.3g}"))
            tiny = (support > 0) & ~figures.informative_classes(support)
            if estimator == "hard" and tiny.any():
                tiny_extremes.append((float(f"{(high - low) / 2:.3g}"), np.nanmax(np.abs(maps[tiny]))))
    assert scales == expected
    assert tiny_extremes, "the tiny run should hold a class seen only a few times"
    assert all(half < extreme for half, extreme in tiny_extremes)


def test_activation_maps_ignore_tiny_classes_for_centre_and_scale():
    """The activation-map rule (panel and figure): a class seen twice among hundreds neither shifts the centre
    of the other classes nor sets the colour limits."""
    from wna_gui.figures.sta import activation_tiles

    rng = np.random.default_rng(0)
    images = rng.normal(0.0, 0.1, (4, 5, 5))
    images[3] += 50.0  # a class of two noise images: wild
    counts = np.array([400, 300, 0, 2])
    tiles = activation_tiles(images, counts)
    assert tiles.shape == (4, 1, 5, 5) and np.isnan(tiles[2]).all()
    mean_of_sampled = images[:2].mean(0)
    np.testing.assert_allclose(tiles[0, 0], images[0] - mean_of_sampled)
    low, high = figures.map_levels(tiles, "centered", 0.0, counts)
    assert high == -low and high < 1.0 < np.abs(tiles[3]).max()


# --- the app's plots: File > Export's views and right-click "Export this plot" ---

def test_app_plots_export_at_the_chosen_size_and_stay_on_screen(qtbot, tmp_path):
    from wna_gui.app.plots import ClassFrequencyPlot, ConvergencePlot, MapGrid, MapTile, RaceCurve, export_view

    names = tuple(str(k) for k in range(10))
    convergence, frequency, grid = ConvergencePlot(), ClassFrequencyPlot(), MapGrid()
    for widget in (convergence, frequency, grid):
        qtbot.addWidget(widget)
        widget.resize(900, 300)
        widget.show()
    samples = np.array([1000, 2000, 5000, 10_000])
    convergence.show_race([RaceCurve("hard", "hard label", samples, np.array([0.1, 0.3, 0.5, 0.7])),
                           RaceCurve("logit", "logit kernel", samples, np.array([0.5, 0.7, 0.8, 0.9]))],
                          "hard", samples, np.full((4, 10), 0.5), names)
    counts = np.array([0, 5, 120, 400, 0, 3000, 7, 20, 90_000, 1])
    frequency.show_counts(counts, names)
    rng = np.random.default_rng(0)
    tiles = [MapTile(k, names[k], title, rng.normal(0, 0.02, (1, 28, 28)) if counts[k] else None, "no samples")
             for k, title in enumerate(figures.map_titles(names, counts))]
    grid.show_maps(tiles, (-0.05, 0.05), "centered")
    qtbot.waitExposed(grid)
    for name, widget in (("convergence", convergence), ("frequency", frequency), ("grid", grid)):
        before = widget.size()
        with sized(FigureSize(WIDTH_MM, DPI)):
            written = {suffix: export_view(widget, tmp_path / f"{name}{suffix}") for suffix in FIGURE_SUFFIXES}
        texts = [text for text, _ in assert_paper_ready(written)]
        assert widget.size() == before, f"exporting the {name} plot changed it on screen"
        if name == "convergence":
            assert any("Convergence" in text for text in texts)
        if name == "grid":
            # the paper figure of the maps on screen, their counts in full
            assert any(text.endswith("n=90,000") for text in texts) and not any("…" in text for text in texts)


def test_a_grid_of_two_maps_keeps_its_colour_bar_label_on_the_page(tmp_path):
    """A binary model's grid is one short row: the colour bar's caption must not run off the page."""
    maps = np.random.default_rng(1).normal(0, 0.02, (2, 1, 28, 28))
    titles = figures.map_titles(("cat", "dog"), np.array([120_000, 80_000]), np.array([0, 1]))
    with sized(FigureSize(WIDTH_MM, DPI)):
        written = {suffix: figures.save_map_grid(maps, titles, tmp_path / f"grid{suffix}", title="Two classes")
                   for suffix in FIGURE_SUFFIXES}
    texts = [text for text, _ in assert_paper_ready(written)]
    assert any(text.endswith("n=120,000") for text in texts)


def test_export_this_plot_opens_the_export_dialog_for_that_plot(qtbot, tmp_path):
    from wna_gui.app.plots import ClassFrequencyPlot, _export_plot

    plot = ClassFrequencyPlot()
    qtbot.addWidget(plot)
    plot.show_counts(np.array([3, 5, 8]), ("a", "b", "c"))
    with sized(FigureSize(WIDTH_MM, DPI)):
        dialog = _export_plot(plot)
    assert [dialog.format.itemText(i) for i in range(dialog.format.count())] == list(FIGURE_SUFFIXES)
    assert dialog.figure_size() == FigureSize(WIDTH_MM, DPI)
    dialog.path.edit.setText(str(tmp_path / "counts.pdf"))
    dialog.format.setCurrentText(".pdf")
    dialog.accept()
    assert pdf_page_mm(tmp_path / "counts.pdf")[0] == pytest.approx(WIDTH_MM, abs=0.5)


def test_every_plot_of_every_panel_offers_export_this_plot(qtbot):
    """Right-click "Export this plot" on every pyqtgraph plot of every panel (the paper-size export path)."""
    import pyqtgraph as pg
    import shiboken6
    from PySide6.QtCore import Qt

    from wna_gui.app.panels import build_panels

    plots, panels = [], build_panels()  # kept: a panel without a parent goes with its last reference
    for panel in panels:
        qtbot.addWidget(panel)
        plots += [(panel.name, plot) for plot in panel.findChildren(pg.GraphicsView) if shiboken6.isValid(plot)]
    assert len(plots) >= 10
    without = [(name, type(plot).__name__) for name, plot in plots
               if plot.contextMenuPolicy() != Qt.ContextMenuPolicy.CustomContextMenu]
    assert not without, f"plots without the export menu: {without}"
