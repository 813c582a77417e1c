"""Figures of spike-triggered analysis, shared by the app and `wna export`, all renderable headless.

- filter grids (STAs, z-maps, STA beside learned kernel, STC eigenvectors):
  publication grids painted with QPainter by ``maps.save_map_grid``;
- the STC spectrum (ΔC eigenvalues against the shuffle null's band) and the
  per-layer class distances (Fig. 20, bottom): pyqtgraph plot items
  (``SpectrumFigure``, ``DistanceFigure``) that the app's widgets host and
  ``save_stc_figure`` / ``save_distance_plot`` paint off screen;
- activation maps per layer and class (Fig. 20, top): a QPainter grid.

Nothing here imports wna_gui.app or the engine (only names from core.sta, for typing).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ._qt import ensure_gui_application
from .maps import MapRow, informative_classes, save_map_grid, save_map_rows
from .page import TEXT_PT, figure_size, write_scene
from .style import TEXT_COLOR, TITLE_SIZE, style_plot

if TYPE_CHECKING:
    from ..core.sta import STASnapshot

MAX_FILTER_TILES = 100  # a grid of more filters is unreadable: the first ones are shown
SPECTRUM_EXPORT_CELL = (300, 200)
MAX_SPECTRA = 20
BACKGROUND = "w"
BAND_BRUSH = (140, 160, 200, 90)
SIGNIFICANT_COLOR = (214, 39, 40)
EIGEN_COLOR = (70, 70, 70)
NOISE_COLOR = "#4c72b0"
REAL_COLOR = "#dd8452"
VIEW_LABELS = {"sta": "STA (a-weighted noise)", "unnormalised": "Σa(x − x̄)/N", "zmap": "z-score",
               "kernel": "per-tile max |·| = 1", "eigenvector": "eigenvector", "activation": "mean activation"}


def filter_levels(images: np.ndarray, view: str) -> tuple[float, float]:
    """Symmetric display limits shared by all tiles; z-maps span at least ±3 so noise does not look like signal."""
    finite = np.abs(np.asarray(images, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    if view == "zmap":
        half = max(3.0, float(np.percentile(finite, 99.5))) if finite.size else 3.0
    else:
        half = float(finite.max()) if finite.size else 0.0
        half = half if half > 0 else 1e-6
    return -half, half


def unit_title(snapshot: STASnapshot, unit: int) -> str:
    """"unit 3 · r=0.98", or why its STA is empty."""
    active = int(round(snapshot.active_fraction[unit] * snapshot.samples_done))
    if snapshot.activation == "post" and snapshot.samples_done and active == 0:
        return f"unit {unit} · silent"
    if snapshot.activation == "post" and active < 1000:
        return f"unit {unit} · n={active:,}"
    parts = [f"unit {unit}"]
    if snapshot.reliability.size and np.isfinite(snapshot.reliability[-1, unit]):
        parts.append(f"r={snapshot.reliability[-1, unit]:.2f}")
    return " · ".join(parts)


def normalised_tiles(images: np.ndarray) -> np.ndarray:
    """Each tile scaled to max |value| = 1 (NaN tiles stay NaN): shapes compare, scales do not."""
    images = np.asarray(images, dtype=np.float64)
    flat = np.abs(images.reshape(len(images), -1))
    scale = np.where(np.isfinite(flat), flat, 0.0).max(axis=1) if images.size else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return images / np.where(scale > 0, scale, np.nan)[:, None, None, None]


def save_sta_grid(snapshot: STASnapshot, path, view: str = "sta") -> Path:
    """The units' STAs (or z-maps) as a publication grid (.png, .pdf, .svg); NaN tiles are units that never fired."""
    images = snapshot.view(view)[:MAX_FILTER_TILES]
    titles = [unit_title(snapshot, u) for u in range(len(images))]
    shown = "" if snapshot.units <= MAX_FILTER_TILES else f", units 0–{MAX_FILTER_TILES - 1} of {snapshot.units}"
    title = (f"{snapshot.layer} {'STA' if view != 'zmap' else 'STA z-maps'} ({snapshot.activation}), "
             f"N = {snapshot.samples_done:,}{shown}")
    return save_map_grid(images, titles, path, view=VIEW_LABELS.get(view, view), title=title,
                         levels=filter_levels(images, view))


def save_kernel_comparison(snapshot: STASnapshot, path) -> Path:
    """Each unit's STA beside its learned kernel (Figs. 8 and 22), each tile scaled to its own maximum."""
    assert snapshot.kernels is not None and snapshot.kernel_cosines is not None  # offered with kernels only
    units = min(snapshot.units, MAX_FILTER_TILES // 2)
    # Units per row of each grid: one that fills every row (no empty tiles), about five.
    per_row = next((n for n in (5, 4, 6, 8, 10, 3, 7, 9) if units % n == 0), units if units <= 10 else 1)
    sta, kernels = normalised_tiles(snapshot.sta[:units]), normalised_tiles(snapshot.kernels[:units])
    tiles, titles = [], []
    for first in range(0, units, per_row):
        block = list(range(first, min(first + per_row, units)))
        for source, label in ((sta, "STA"), (kernels, "kernel")):
            for u in block:
                tiles.append(source[u])
                cosine = snapshot.kernel_cosines[u]
                titles.append(f"{u} {label}" + (f" · cos {cosine:.3f}" if label == "kernel" and
                                                   np.isfinite(cosine) else ""))
    cosines = snapshot.kernel_cosines[np.isfinite(snapshot.kernel_cosines)]
    mean = f", mean cosine {cosines.mean():.3f}" if cosines.size else ""
    title = f"{snapshot.layer}: STA (left) and learned kernel (right), N = {snapshot.samples_done:,}{mean}"
    return save_map_grid(np.stack(tiles), titles, path, view=VIEW_LABELS["kernel"], title=title, levels=(-1.0, 1.0),
                         columns=2 * per_row)


def save_stc_vectors(snapshot: STASnapshot, path) -> Path:
    """Every significant STC eigenvector (as its unit's crop), titled with its unit and eigenvalue."""
    stc = snapshot.stc
    assert stc is not None  # offered with STC only
    tiles, titles = [], []
    for u in range(snapshot.units):
        for k in range(int(stc.count[u])):
            tiles.append(stc.vectors[u, k])
            titles.append(f"unit {u} · λ={stc.values[u, k]:+.3g}")
    if not tiles:
        raise ValueError("no unit has a significant STC direction")
    vectors = np.stack(tiles[:MAX_FILTER_TILES])
    return save_map_grid(vectors, titles[:MAX_FILTER_TILES], path, view=VIEW_LABELS["eigenvector"],
                         title=f"{snapshot.layer}: significant STC eigenvectors ({stc.samples:,} samples, "
                               f"{stc.shuffles} shuffles)", levels=filter_levels(vectors, "eigenvector"))


# --- plot items (hosted by the app, painted headless for export) ---

class SpectrumFigure(pg.PlotItem):
    """One unit's ΔC = STC − stimulus covariance eigenvalues against rank, the shuffle null's band shaded,
    significant eigenvalues in red."""

    def __init__(self, parent=None, compact: bool = False) -> None:
        super().__init__(parent, enableMenu=False)
        self.compact = compact
        style_plot(self, "" if compact else "STC spectrum", "" if compact else "eigenvalue of STC − C_stim",
                   "" if compact else "rank")
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getAxis("left").setWidth(52 if compact else 64)  # room for "−0.025"-style labels from the first paint
        self._low = pg.PlotDataItem([], [], pen=pg.mkPen(BAND_BRUSH[:3], width=1))
        self._high = pg.PlotDataItem([], [], pen=pg.mkPen(BAND_BRUSH[:3], width=1))
        self._band = pg.FillBetweenItem(self._low, self._high, brush=pg.mkBrush(*BAND_BRUSH))
        for item in (self._band, self._low, self._high):
            self.addItem(item)
        self._zero = pg.InfiniteLine(angle=0, pos=0.0, pen=pg.mkPen((150, 150, 150), width=1,
                                                                    style=Qt.PenStyle.DotLine))
        self.addItem(self._zero)
        self._points = self.plot([], [], pen=None, symbol="o", symbolSize=4 if compact else 6,
                                 symbolBrush=EIGEN_COLOR, symbolPen=None)
        self._significant = self.plot([], [], pen=None, symbol="o", symbolSize=6 if compact else 10,
                                      symbolBrush=SIGNIFICANT_COLOR, symbolPen=pg.mkPen("w", width=0.8))
        self._label = pg.TextItem("", color=TEXT_COLOR, anchor=(0, 0))
        self._label.setParentItem(self.getViewBox())
        self._label.setPos(6, 4)

    def clear_spectrum(self, message: str = "") -> None:
        for item in (self._points, self._significant, self._low, self._high):
            item.setData([], [])
        self._label.setText(message)

    def show_unit(self, snapshot: STASnapshot, unit: int) -> None:
        stc = snapshot.stc
        if stc is None:
            self.clear_spectrum(snapshot.stc_note or "STC is off for this run")
            return
        if not stc.tested[unit]:
            progress = (f"collecting {stc.samples:,} of {stc.target:,} samples" if stc.samples < stc.target
                        else f"shuffle test: {int(stc.tested.sum())} of {len(stc.tested)} units done")
            self.clear_spectrum(f"unit {unit}: {progress}")
            return
        values = stc.eigenvalues[unit]
        if not np.isfinite(values).any():
            self.clear_spectrum(f"unit {unit}: not tested (it never responds: Σa ≤ 0)")
            return
        ranks = np.arange(1, len(values) + 1)
        order = values[::-1]  # largest first, as spectra are usually drawn
        low, high = stc.band[unit]
        self._low.setData([0.5, len(values) + 0.5], [low, low])
        self._high.setData([0.5, len(values) + 0.5], [high, high])
        self._points.setData(ranks, order)
        count = int(stc.count[unit])
        found = stc.values[unit, :count]
        positions = [int(np.argmin(np.abs(order - v))) + 1 for v in found]
        self._significant.setData(positions, found)
        span = max(float(np.nanmax(np.abs(order))), abs(low), abs(high)) * 1.08
        self.setYRange(-span, span, padding=0)
        self.setXRange(0, len(values) + 1, padding=0)
        text = f"unit {unit}: {count} significant" if self.compact else \
            (f"unit {unit}: {count} significant direction{'s' if count != 1 else ''} · null band over "
             f"{stc.shuffles} shuffles (shaded) · {stc.samples:,} samples")
        if self.compact:  # a small multiple: its title above the plot, where the layout leaves it room
            self.setTitle(text, color=TEXT_COLOR, size=f"{TEXT_PT:g}pt")
        else:
            self._label.setText(text)

    def significant_points(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._significant.getData()
        return (np.array([]), np.array([])) if x is None else (np.asarray(x), np.asarray(y))


class DistanceFigure(pg.PlotItem):
    """Mean L2 distance between the classes' mean activations, per layer: noise beside real digits (Fig. 20)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        style_plot(self, "Distance between class means", "mean L2 distance", "layer")
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self._noise = pg.BarGraphItem(x=[], height=[], width=0.38, brush=NOISE_COLOR, pen=None)
        self._real = pg.BarGraphItem(x=[], height=[], width=0.38, brush=REAL_COLOR, pen=None)
        self.addItem(self._noise)
        self.addItem(self._real)
        self._legend = self.addLegend(offset=(8, 8), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 200))
        self._legend.addItem(self._noise, "noise (by predicted class)")
        self._legend.addItem(self._real, "real digits (by true class)")

    def show_maps(self, snapshot: STASnapshot) -> None:
        maps = snapshot.maps
        if maps is None or not maps.layers:
            self._noise.setOpts(x=[], height=[])
            self._real.setOpts(x=[], height=[])
            return
        x = np.arange(len(maps.layers), dtype=float)
        noise = np.nan_to_num(np.asarray(maps.noise_distance, dtype=float))
        real = np.nan_to_num(np.asarray(maps.real_distance, dtype=float)) if maps.real_distance is not None else \
            np.zeros_like(noise)
        self._noise.setOpts(x=x - 0.2, height=noise, width=0.38)
        self._real.setOpts(x=x + 0.2, height=real, width=0.38)
        self.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(maps.layers)]])
        self.setXRange(-0.7, len(maps.layers) - 0.3, padding=0)
        top = max(float(np.max(noise, initial=0)), float(np.max(real, initial=0)), 1e-9)
        self.setYRange(0, top * 1.3, padding=0)

    def heights(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self._noise.opts["height"]), np.asarray(self._real.opts["height"])


class SpectraGrid(pg.GraphicsLayout):
    """Small multiples of the units' STC spectra (exports)."""

    def show_units(self, snapshot: STASnapshot, units: list[int], columns: int = 5) -> None:
        self.clear()
        columns = max(1, min(columns, len(units)))
        for i, unit in enumerate(units):
            figure = SpectrumFigure(compact=True)
            self.addItem(figure, row=i // columns, col=i % columns)
            figure.show_unit(snapshot, unit)


def save_stc_figure(snapshot: STASnapshot, path) -> Path:
    """Spectra of up to 20 units (those with significant directions first) with their null bands (.png, .svg)."""
    path = Path(path)
    stc = snapshot.stc
    assert stc is not None  # offered with STC only
    order = sorted(range(snapshot.units), key=lambda u: (-int(stc.count[u]), u))
    units = [u for u in order if stc.tested[u]][:MAX_SPECTRA]
    # Up to five plots a row, each at least ~29 mm wide so its title ("unit 12: 3 significant") fits.
    columns = max(1, min(5, len(units), int(figure_size().logical_width // MIN_SPECTRUM_WIDTH)))
    rows = max(1, math.ceil(len(units) / columns))
    size = (SPECTRUM_EXPORT_CELL[0] * columns + 40, SPECTRUM_EXPORT_CELL[1] * rows + 40)
    ensure_gui_application()
    return write_scene(SpectraGrid(), size, path, lambda figure: figure.show_units(snapshot, units, columns))


MIN_SPECTRUM_WIDTH = 110.0  # logical units (1/96 inch)


def save_distance_plot(snapshot: STASnapshot, path) -> Path:
    path = Path(path)
    ensure_gui_application()
    return write_scene(DistanceFigure(), (720, 480), path, lambda figure: figure.show_maps(snapshot))


# --- activation maps (Fig. 20, top): layers × (noise, real) rows, classes as columns ---

def save_activation_figure(snapshot: STASnapshot, path) -> Path:
    """Per layer, a row of per-class mean activation maps for noise and one for real digits (.png, .pdf, .svg).

    Each row has its own symmetric colour scale about the mean over classes (shown: class mean minus that
    average), so what differs between classes stands out; empty classes are grey.
    """
    maps = snapshot.maps
    assert maps is not None  # offered with activation maps only
    rows = []
    for i, layer in enumerate(maps.layers):
        for source, images, counts in (("noise", maps.noise[i], maps.noise_counts),
                                       ("real", maps.real[i] if maps.real is not None else None, maps.real_counts)):
            if images is None:
                continue
            shown = activation_tiles(images, counts)
            rows.append(MapRow(f"{layer}\n{source}", shown, 0.0, "centered", np.asarray(counts)))
    return save_map_rows(rows, list(snapshot.class_names), path,
                         title=f"Mean activation per class minus the mean over classes ({snapshot.activation}), "
                               f"noise N = {maps.noise_samples:,}",
                         caption="each row on its own colour scale: 0 ± the value at its right; grey: no samples")


def activation_tiles(images: np.ndarray, counts) -> np.ndarray:
    """Per-class mean activation maps (K, H, W) as shown, on screen and on paper: (K, 1, H, W), each minus the
    mean over the well-sampled classes, NaN for classes without samples. Their colour limits come from
    figures.map_levels(tiles, "centered", 0.0, counts): the classification maps' rule, robust to tiny-n classes."""
    counts = np.asarray(counts)
    return np.where(counts[:, None, None] > 0, centred_rows(images, counts), np.nan)[:, None]


def centred_rows(images: np.ndarray, counts=None) -> np.ndarray:
    """Class maps minus their mean over the classes that have one; given ``counts``, over the classes with
    enough samples to set a colour scale (figures.informative_classes), so a class seen twice moves no centre."""
    images = np.asarray(images, dtype=np.float64)
    present = np.isfinite(images.reshape(len(images), -1)).any(1)
    if counts is not None and (present & informative_classes(counts)).any():
        present &= informative_classes(counts)
    if not present.any():
        return images
    rows = images[present]
    counts = np.isfinite(rows).sum(0)
    mean = np.where(counts > 0, np.nansum(rows, 0) / np.maximum(counts, 1), np.nan)
    return images - mean[None]


__all__ = ["DistanceFigure", "MAX_FILTER_TILES", "SpectrumFigure", "filter_levels", "normalised_tiles",
           "save_activation_figure", "save_distance_plot", "save_kernel_comparison", "save_sta_grid",
           "save_stc_figure", "save_stc_vectors", "unit_title", "TITLE_SIZE"]
