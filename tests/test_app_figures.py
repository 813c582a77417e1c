"""Figures (wna_gui.figures): map grids painted to PNG, PDF and SVG, psychometric plots rendered headless."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import shiboken6
from PySide6.QtGui import QImage

from wna_gui import figures
from wna_gui.figures import psychometric

REPO = Path(__file__).resolve().parents[1]


def _maps(channels=1, classes=10, size=28, empty=(0, 4)):
    rng = np.random.default_rng(0)
    maps = rng.normal(0, 0.02, (classes, channels, size, size))
    maps[list(empty)] = np.nan
    return maps


def test_titles_follow_fig_2a():
    titles = figures.map_titles(("0", "1", "2"), np.array([0, 12345, 7]), np.array([-1, 1, 0]))
    assert titles == ["0 · no samples", "1 · map→1 · n=12,345", "2 · map→0 · n=7"]
    assert figures.map_titles(("a",), np.array([5]))[0] == "a · n=5"


def test_levels_are_symmetric_robust_and_z_spans_at_least_three():
    maps = _maps()
    low, high = figures.map_levels(maps, "centered")
    assert low == -high and high == pytest.approx(np.nanpercentile(np.abs(maps), figures.maps.ROBUST_PERCENTILE))
    assert figures.map_levels(maps, "zmap") == (-3.0, 3.0)
    low, high = figures.map_levels(maps + 0.5, "mean", center=0.5)
    assert (low + high) / 2 == pytest.approx(0.5)


def test_shared_colour_limits_ignore_classes_below_the_count_threshold():
    maps = _maps(empty=())
    counts = np.full(10, 100_000)
    counts[3] = 2  # a class seen twice: its map is nearly raw noise, far larger than the others
    maps[3] *= 50
    shared = figures.map_levels(maps, "centered", counts=counts)
    without = figures.map_levels(np.delete(maps, 3, 0), "centered")
    assert shared == pytest.approx(without)
    assert figures.map_levels(maps, "centered")[1] > 5 * shared[1]  # what it was: the rare class set the scale
    assert not figures.informative_classes(counts)[3] and figures.informative_classes(counts).sum() == 9
    assert figures.map_levels(maps, "centered", counts=counts, limit=0.01) == (-0.01, 0.01)


def _pixel_box(figure, tile: int, row: int, col: int, dpi: int) -> tuple[range, range]:
    """Device pixels well inside native pixel (row, col) of a tile, in a PNG written at ``dpi``."""
    rect, scale = figure.tile_rect(tile), dpi / 96
    step_x, step_y = rect.width() / 28 * scale, rect.height() / 28 * scale
    x0, y0 = rect.x() * scale + col * step_x, rect.y() * scale + row * step_y
    return range(int(x0) + 2, int(x0 + step_x) - 1), range(int(y0) + 2, int(y0 + step_y) - 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_keeps_native_pixels_and_marks_empty_tiles(tmp_path, channels):
    maps = _maps(channels)
    titles = figures.map_titles([str(k) for k in range(10)], np.where(np.isnan(maps[:, 0, 0, 0]), 0, 50))
    path = figures.save_map_grid(maps, titles, tmp_path / "grid.png", view="centered", title="Test grid")
    image = QImage(str(path))
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    figure = figures.MapGridFigure(maps, titles, "centered", "Test grid", figures.map_levels(maps, "centered"), None)
    # Each native pixel is a block of identical colours (nearest-neighbour, no smoothing).
    xs, ys = _pixel_box(figure, 1, 5, 7, 300)
    assert len(xs) >= 5 and len({image.pixel(x, y) for x in xs for y in ys}) == 1
    # Empty classes are plain grey, not a flat colour-mapped map.
    xs, ys = _pixel_box(figure, 0, 3, 3, 300)
    assert image.pixel(xs[0], ys[0]) & 0xFFFFFF == 0xC8C8C8


def test_a_single_column_figure_at_300_dpi_is_print_ready(tmp_path):
    """85 mm at 300 dpi: ≥ 1000 px wide, text ≥ 7 pt at that size, maps embedded losslessly in the PDF,
    the SVG of the same physical size."""
    maps = _maps()
    titles = [f"class {k}" for k in range(10)]
    with figures.sized(figures.FigureSize(85, 300)):
        png = figures.save_map_grid(maps, titles, tmp_path / "grid.png", title="Classification images")
        pdf = figures.save_map_grid(maps, titles, tmp_path / "grid.pdf", title="Classification images")
        svg = figures.save_map_grid(maps, titles, tmp_path / "grid.svg")
        figure = figures.MapGridFigure(maps, titles, "centered", "x", (-1, 1), None)
    assert QImage(str(png)).width() >= 1000
    assert figure.font.pixelSize() * 72 / 96 >= 7
    data = pdf.read_bytes()
    assert b"/DCTDecode" not in data, "maps must not be JPEG-compressed"
    assert data.count(b"/Subtype /Image") >= 8 and b"/Width 28" in data, "maps embedded at their native pixels"
    media_box = [float(v) for v in data.split(b"/MediaBox [")[1].split(b"]")[0].split()]
    assert media_box[2] * 25.4 / 72 == pytest.approx(85, abs=0.5)
    root = ET.parse(svg).getroot()
    assert float(root.get("width").removesuffix("mm")) == pytest.approx(85, abs=0.5)


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


# --- psychometric plots, rendered headless -------------------------------------------------------------------------


def run_snapshot():
    """A real, finished psychometric snapshot: class 3, fc1 excited, k = 0 and 5, five γ (a few seconds on CPU)."""
    from wna_gui.core.models import load_default
    from wna_gui.core.psychometric import PsychometricConfig, PsychometricExperiment

    config = PsychometricConfig(target=3, layer="fc1", k_values=(0.0, 5.0), gammas=(0.0, 0.25, 0.5, 0.75, 1.0),
                                n_boot=0, gof_samples=0)
    return PsychometricExperiment(load_default(), config).run_to_end()


def grid_configs():
    """Two targets × (fc1 excited, fc1 inhibited): the attributes a grid plot reads of its runs' configs."""
    return tuple(SimpleNamespace(target=target, layer="fc1", sign=sign, k_values=(0.0, 5.0))
                 for target in (3, 5) for sign in (1, -1))


@pytest.fixture(scope="module")
def snapshot():
    return run_snapshot()


def _pixels(path: Path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
    assert not image.isNull()
    data = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.width(), 4)
    return data[..., 2::-1].astype(int)  # BGRA in memory → RGB


def _has_colour(rgb: np.ndarray, colour, tolerance=30) -> bool:
    return bool((np.abs(rgb - np.asarray(colour)).max(-1) <= tolerance).any())


def _svg_shapes(path: Path) -> tuple[ET.Element, int]:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return root, sum(1 for e in root.iter() if e.tag.rsplit("}", 1)[-1] in ("path", "polyline"))


def test_curves_plot_writes_png_and_svg(tmp_path, snapshot):
    png = psychometric.save_curves_plot(snapshot, tmp_path / "curves.png")
    assert png == tmp_path / "curves.png" and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    rgb = _pixels(png)
    size = figures.figure_size()  # the default: double column at 300 dpi, in the plot's aspect
    width = round(size.width_mm / 25.4 * size.dpi)
    assert abs(rgb.shape[1] - width) <= 1
    # The plot in its aspect, its legend under it (on paper a legend never covers the curves).
    assert rgb.shape[0] - width * psychometric.EXPORT_SIZE[1] / psychometric.EXPORT_SIZE[0] >= -1
    assert tuple(rgb[2, 2]) == (255, 255, 255)  # white background
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # text, axes, grid, curves: not blank
    dark = (rgb.max(-1) < 100).mean()
    assert 0.001 < dark < 0.2  # axis text and ticks in TEXT_COLOR
    for colour in psychometric.k_colors(snapshot.k_values):  # a curve per k, in its colour
        assert _has_colour(rgb, colour.getRgb()[:3])
    svg = psychometric.save_curves_plot(snapshot, tmp_path / "curves.svg")
    _, shapes = _svg_shapes(svg)
    assert shapes > 10
    text = svg.read_text()
    assert "P(target)" in text and f"Class {snapshot.target_name}" in text  # captions as text, not pixels


def test_grid_plot_writes_png_and_svg(tmp_path, snapshot):
    configs = grid_configs()
    snapshots = (snapshot, None, snapshot, snapshot)  # one cell still waiting for its turn
    class_names = tuple(str(k) for k in range(10))
    png = psychometric.save_grid_plot(configs, snapshots, class_names, tmp_path / "grid.png")
    rgb = _pixels(png)
    width, height = psychometric.grid_export_size(configs)  # the aspect; the width is the figure's
    assert height == 2 * psychometric.GRID_EXPORT_CELL[1] + 100
    assert rgb.shape[0] / rgb.shape[1] == pytest.approx(height / width, rel=0.01)
    assert tuple(rgb[2, 2]) == (255, 255, 255)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20
    for colour in psychometric.k_colors(snapshot.k_values):
        assert _has_colour(rgb, colour.getRgb()[:3])
    svg = psychometric.save_grid_plot(configs, snapshots, class_names, tmp_path / "grid.svg")
    _, shapes = _svg_shapes(svg)
    assert shapes > 10
    assert "fc1 · inhibit" in svg.read_text()


def test_plots_refuse_other_formats_and_write_pdf(tmp_path, snapshot):
    with pytest.raises(ValueError, match=r"use \.png, \.pdf or \.svg"):
        psychometric.save_curves_plot(snapshot, tmp_path / "curves.jpg")
    assert not (tmp_path / "curves.jpg").exists()
    with figures.sized(figures.FigureSize(85, 300)):
        pdf = psychometric.save_curves_plot(snapshot, tmp_path / "curves.pdf")
    data = pdf.read_bytes()
    media_box = [float(v) for v in data.split(b"/MediaBox [")[1].split(b"]")[0].split()]
    assert data.startswith(b"%PDF") and media_box[2] * 25.4 / 72 == pytest.approx(85, abs=0.5)


def test_curves_item_draws_what_it_is_given(qapp, snapshot):
    """The item the app's curves widget hosts: measured points and the fitted curve per k."""
    curves = psychometric.CurvesFigure()
    try:
        curves.show_snapshot(snapshot)
        measured = np.isfinite(snapshot.fraction_correct[1])
        x, y = curves.points(1)
        np.testing.assert_array_equal(x, snapshot.gammas[measured])
        np.testing.assert_array_equal(y, snapshot.fraction_correct[1][measured])
        fit_x, fit_y = curves.fitted(0)
        assert fit_x.size == psychometric.FIT_SAMPLES and np.allclose(fit_y, snapshot.fits[0].predict(fit_x))
        curves.clear_curves()
        assert curves.listDataItems() == []
    finally:
        shiboken6.delete(curves)


def test_app_widgets_host_the_figure_items(qtbot, snapshot):
    from wna_gui.app import psychometric_plots

    plot = psychometric_plots.PsychometricPlot()
    qtbot.addWidget(plot)
    assert isinstance(plot.getPlotItem(), psychometric.CurvesFigure)
    plot.show_snapshot(snapshot)
    np.testing.assert_array_equal(plot.points(0)[1], plot.getPlotItem().points(0)[1])
    grid = psychometric_plots.SmallMultiplesPlot()
    qtbot.addWidget(grid)
    assert isinstance(grid.ci, psychometric.GridFigure)
    grid.show_runs(grid_configs(), (None, snapshot, None, None), tuple(str(k) for k in range(10)))
    np.testing.assert_array_equal(grid.cell_points(0, 1, 1)[1], snapshot.fraction_correct[1])
    assert grid.cell_points(1, 0, 0)[1].size == 0
    assert psychometric_plots.k_colors is psychometric.k_colors
    assert not hasattr(psychometric_plots, "save_curves_plot")  # headless writers live in wna_gui.figures


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": os.pathsep.join(
        [str(REPO), str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_figures_do_not_import_the_app_or_the_engine():
    result = _python("""
        import sys
        import wna_gui.figures.psychometric, wna_gui.figures
        assert not any(m.startswith("wna_gui.app") for m in sys.modules), sorted(sys.modules)
        assert "wna_gui.core.psychometric" not in sys.modules
    """)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_saving_a_grid_then_exiting_is_clean(tmp_path):
    """The process that wrote the grid (and the curves) exits 0: nothing left to crash at exit."""
    result = _python(f"""
        from pathlib import Path
        from test_app_figures import grid_configs, run_snapshot
        from wna_gui.figures.psychometric import save_curves_plot, save_grid_plot
        snapshot = run_snapshot()
        out = Path({str(tmp_path)!r})
        save_grid_plot(grid_configs(), (snapshot, None, snapshot, snapshot), tuple("0123456789"), out / "grid.png")
        save_grid_plot(grid_configs(), (snapshot,) * 4, tuple("0123456789"), out / "grid.svg")
        save_curves_plot(snapshot, out / "curves.png")
        print("written")
    """)
    assert result.returncode == 0, result.stderr
    assert "written" in result.stdout
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "grid.svg").stat().st_size > 0
