"""Compare side by side: two runs (or two models or estimators of one run) on one scale, and their difference.

Each side is a run and one of its *sources* (an estimator of a classification-
image run, the clean or the poisoned model of a backdoor run, a model of a
robustness run, or the run itself); the two sides show one *quantity* both
have (a map view, a distortion's accuracy curve, a table). Maps of A and B share
one colour scale (figures.map_levels over both); curves share their axes; the
difference A − B is shown where the shapes match (same map size and count, same
x grid, same table cells). Drawing reuses the panels' widgets (plots.MapGrid,
styled pyqtgraph plots); nothing here computes results: it reads snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import figures
from ..core.registry import spec_for_state
from ..figures.robustness import model_color
from ..figures.style import style_plot
from .plots import MapGrid, MapTile

RUN_SOURCE = "the run"  # the source of kinds whose run is one thing to compare


@dataclass(frozen=True)
class Maps:
    """Maps to compare: (N, C, H, W), NaN where a tile has no map."""

    images: np.ndarray
    titles: tuple[str, ...]  # what each tile says (class, n…)
    view: str = "centered"  # mean / centered / zmap: how the shared colour limits are chosen (map_levels)
    counts: np.ndarray | None = None  # (N,) samples behind each map: tiny classes do not set the scale
    center: float | None = None  # the mean view's centre (the noise mean)
    names: tuple[str, ...] = ()  # what each tile is (the class): the difference's titles; default the titles

    @property
    def tile_names(self) -> tuple[str, ...]:
        return self.names or self.titles


@dataclass(frozen=True)
class Curves:
    """Curves to compare: series label → (x, y)."""

    x_label: str
    y_label: str
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """Numbers to compare: row label → one value per column."""

    columns: tuple[str, ...]
    rows: dict[str, tuple[float, ...]] = field(default_factory=dict)


Comparable = Maps | Curves | Table


# --- what each kind offers: source → quantity → comparable ---

def _classification(snapshot) -> dict[str, dict[str, Comparable]]:
    shape = tuple(snapshot.image_shape)
    out: dict[str, dict[str, Comparable]] = {}
    for estimator in snapshot.estimators:
        maps = snapshot.maps_of(estimator)
        if maps is None:
            continue
        counts = np.nan_to_num(np.asarray(maps.support, dtype=np.float64), nan=0.0)
        names = tuple(str(name) for name in snapshot.class_names)
        # The panel's titles (n, Σp or r); a tile without a map says so itself, so its title is the class alone.
        has_map = np.isfinite(maps.of("mean")).any(axis=1)
        titles = tuple(title if shown else name for title, shown, name in zip(
            figures.estimator_titles(estimator, snapshot.class_names, maps.support), has_map, names))
        out[f"estimator {estimator}"] = {
            f"maps: {figures.MAP_VIEW_LABELS[view]}": Maps(
                maps.of(view).reshape(-1, *shape), titles, view, counts,
                snapshot.noise_mean if view == "mean" else None, names)
            for view in ("centered", "zmap", "mean")}
    return out


def _backdoor(snapshot) -> dict[str, dict[str, Comparable]]:
    shape = tuple(snapshot.image_shape)
    pair = f"{snapshot.class_names[snapshot.target]} − {snapshot.class_names[snapshot.source]}"
    out: dict[str, dict[str, Comparable]] = {}
    for model in ("poisoned", "clean"):
        if model not in snapshot.maps:
            continue
        out[f"{model} model"] = {
            f"decision map ({pair})": Maps(np.asarray(snapshot.maps[model], dtype=np.float64).reshape(1, *shape),
                                           (f"{model}: {pair}",)),
            f"target map ({snapshot.class_names[snapshot.target]})": Maps(
                np.asarray(snapshot.maps[f"{model}_target"], dtype=np.float64).reshape(1, *shape),
                (f"{model}: {snapshot.class_names[snapshot.target]}",))}
    return out


def _robustness(snapshot) -> dict[str, dict[str, Comparable]]:
    out: dict[str, dict[str, Comparable]] = {}
    for m, label in enumerate(snapshot.model_labels):
        out[f"model {label}"] = {
            f"accuracy under {result.label}": Curves(result.level_name, "accuracy",
                                                      {label: (np.asarray(result.levels, dtype=np.float64),
                                                               np.asarray(result.accuracy[m], dtype=np.float64))})
            for result in snapshot.distortions}
    return out


def _psychometric(snapshot) -> dict[str, dict[str, Comparable]]:
    gammas = np.asarray(snapshot.gammas, dtype=np.float64)
    series = {f"k = {k:g}": (gammas, np.asarray(snapshot.fraction_correct[i], dtype=np.float64))
              for i, k in enumerate(snapshot.k_values)}
    return {RUN_SOURCE: {f"proportion answering {snapshot.target_name} vs γ": Curves("γ (signal share)", "proportion",
                                                                                    series)}}


def _two_class(snapshot) -> dict[str, dict[str, Comparable]]:
    shape = tuple(snapshot.image_shape)
    titles = tuple(f"γ = {gamma:g}" for gamma in snapshot.gammas)
    counts = np.array([image.counts.sum() for image in snapshot.images], dtype=np.float64)

    def stack(field_name: str) -> np.ndarray:
        return np.stack([np.asarray(getattr(image, field_name), dtype=np.float64).reshape(shape)
                         for image in snapshot.images]) if snapshot.images else np.zeros((0, *shape))

    return {RUN_SOURCE: {"classification image c": Maps(stack("image"), titles, "centered", counts),
                         "z-map of c": Maps(stack("zmap"), titles, "zmap", counts)}}


def _template_classifier(snapshot) -> dict[str, dict[str, Comparable]]:
    rows: dict[str, tuple[float, ...]] = {source: (result.correct / result.n if result.n else float("nan"),)
                                          for source, result in snapshot.results.items()}
    return {RUN_SOURCE: {"accuracy per template": Table(("accuracy",), rows)}}


VIEWS_OF: dict[str, Callable[[Any], dict[str, dict[str, Comparable]]]] = {
    "classification_images": _classification,
    "backdoor": _backdoor,
    "robustness": _robustness,
    "psychometric": _psychometric,
    "two_class": _two_class,
    "template_classifier": _template_classifier,
}


def comparables(state) -> dict[str, dict[str, Comparable]]:
    """source → quantity → what can be compared, from a run's state alone (empty: its kind offers nothing)."""
    views = VIEWS_OF.get(spec_for_state(state).kind)
    return views(spec_for_state(state).snapshot(state)) if views is not None else {}


# --- differences ---

def _difference(a: Comparable, b: Comparable) -> Comparable | None:
    """A − B where the shapes match, else None."""
    if isinstance(a, Maps) and isinstance(b, Maps):
        if a.images.shape != b.images.shape:
            return None
        titles = tuple(na if na == nb else f"{na} − {nb}" for na, nb in zip(a.tile_names, b.tile_names))
        counts = None if a.counts is None or b.counts is None else np.minimum(a.counts, b.counts)
        return Maps(a.images - b.images, titles, "centered", counts)
    if isinstance(a, Curves) and isinstance(b, Curves):
        series = {}
        pairs = list(zip(a.series.items(), b.series.items())) if len(a.series) == len(b.series) == 1 else [
            ((label, a.series[label]), (label, b.series[label])) for label in a.series if label in b.series]
        for (label_a, (xa, ya)), (label_b, (xb, yb)) in pairs:
            if xa.shape == xb.shape and np.allclose(xa, xb):
                series[label_a if label_a == label_b else f"{label_a} − {label_b}"] = (xa, ya - yb)
        return Curves(a.x_label, f"{a.y_label}: A − B", series) if series else None
    if isinstance(a, Table) and isinstance(b, Table) and a.columns == b.columns:
        rows = {label: tuple(x - y for x, y in zip(values, b.rows[label]))
                for label, values in a.rows.items() if label in b.rows}
        return Table(a.columns, rows) if rows else None
    return None


def _map_tiles(maps: Maps) -> list[MapTile]:
    return [MapTile(i, name, title, image if np.isfinite(image).any() else None, "no map")
            for i, (name, title, image) in enumerate(zip(maps.tile_names, maps.titles, maps.images))]


# --- the window ---

class CompareWindow(QDialog):
    """Two sides (run + source), one quantity, drawn A | B | A − B."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compare_window")
        self.setWindowTitle("Compare runs")
        self.setWindowFlag(Qt.WindowType.Window)  # a window of its own beside the main one, not modal
        self._views: dict[str, dict[str, dict[str, Comparable]]] = {}  # run → source → quantity → comparable
        self.shown: tuple[Comparable | None, Comparable | None, Comparable | None] = (None, None, None)
        self.runs = {side: QComboBox() for side in "AB"}
        self.sources = {side: QComboBox() for side in "AB"}
        self.quantity = QComboBox()
        self.quantity.setObjectName("compare_quantity")
        controls = QGridLayout()
        for row, side in enumerate("AB"):
            self.runs[side].setObjectName(f"compare_run_{side}")
            self.sources[side].setObjectName(f"compare_source_{side}")
            controls.addWidget(QLabel(f"{side}:"), row, 0)
            controls.addWidget(self.runs[side], row, 1)
            controls.addWidget(self.sources[side], row, 2)
            self.runs[side].currentIndexChanged.connect(lambda _, side=side: self._run_changed(side))
            self.sources[side].currentIndexChanged.connect(self._fill_quantities)
        controls.addWidget(QLabel("Show:"), 2, 0)
        controls.addWidget(self.quantity, 2, 1, 1, 2)
        controls.setColumnStretch(1, 1)
        controls.setColumnStretch(2, 1)
        self.quantity.currentIndexChanged.connect(self._draw)

        self.titles = [QLabel() for _ in range(3)]
        self.grids = [MapGrid() for _ in range(3)]
        self.plots = [pg.PlotWidget(background="w") for _ in range(3)]
        self.tables = QTableWidget()
        for i, grid in enumerate(self.grids):
            grid.setObjectName(("compare_maps_a", "compare_maps_b", "compare_maps_difference")[i])
        self.plots[1].setXLink(self.plots[0])
        self.plots[1].setYLink(self.plots[0])  # A and B on one scale
        self.plots[2].setXLink(self.plots[0])
        self.pages = QStackedWidget()
        for widgets in (self.grids, self.plots):
            page = QWidget()
            layout = QGridLayout(page)
            layout.setContentsMargins(0, 0, 0, 0)
            for column, widget in enumerate(widgets):
                layout.addWidget(widget, 1, column)
                layout.setColumnStretch(column, 1)
            self.pages.addWidget(page)
        self.pages.addWidget(self.tables)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.caption = QLabel()
        self.caption.setObjectName("compare_caption")
        self.caption.setWordWrap(True)
        heads = QHBoxLayout()
        for label in self.titles:
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            heads.addWidget(label, 1)
        window = QVBoxLayout(self)
        window.addLayout(controls)
        window.addWidget(self.message)
        window.addLayout(heads)
        window.addWidget(self.pages, 1)
        window.addWidget(self.caption)
        self.resize(1400, 600)

    # --- choosing ---

    def compare(self, session, first: str | None = None, second: str | None = None) -> None:
        """Offer ``session``'s runs, showing ``first`` against ``second`` (default: the first two runs, or the run
        against itself when it has two sources: clean vs poisoned, two estimators, two models)."""
        self._views = {name: comparables(state) for name, state in session.runs.items()}
        names = [name for name, views in self._views.items() if views]
        first = first if first in names else (names[0] if names else None)
        second = second if second in names else next((n for n in names if n != first), first)
        for side, wanted in (("A", first), ("B", second)):
            combo = self.runs[side]
            combo.blockSignals(True)
            combo.clear()
            for name in names:
                combo.addItem(f"{name} ({spec_for_state(session.runs[name]).title})", name)
            combo.setCurrentIndex(max(combo.findData(wanted), 0))
            combo.blockSignals(False)
            self._run_changed(side, draw=False)
        if first is not None and first == second and self.sources["B"].count() > 1:
            self.sources["B"].setCurrentIndex(1)  # one run: compare two of its sources
        self._fill_quantities()
        if not names:
            self.message.setText("No run of this session offers maps, curves or tables to compare yet "
                                 f"(comparable: {', '.join(VIEWS_OF)}).")

    def choose(self, side: str, run: str, source: str | None = None) -> None:
        """Set one side (tests and the dock): a run and, optionally, one of its sources."""
        self.runs[side].setCurrentIndex(self.runs[side].findData(run))
        if source is not None:
            self.sources[side].setCurrentIndex(self.sources[side].findData(source))

    def choose_quantity(self, quantity: str) -> None:
        self.quantity.setCurrentIndex(self.quantity.findData(quantity))

    def _run_changed(self, side: str, draw: bool = True) -> None:
        combo = self.sources[side]
        combo.blockSignals(True)
        combo.clear()
        for source in self._views.get(self.runs[side].currentData(), {}):
            combo.addItem(source, source)
        combo.blockSignals(False)
        if draw:
            self._fill_quantities()

    def _side(self, side: str) -> dict[str, Comparable]:
        return self._views.get(self.runs[side].currentData(), {}).get(self.sources[side].currentData(), {})

    def _fill_quantities(self) -> None:
        a, b = self._side("A"), self._side("B")
        common = [q for q in a if q in b and type(a[q]) is type(b[q])]
        previous = self.quantity.currentData()
        self.quantity.blockSignals(True)
        self.quantity.clear()
        for quantity in common:
            self.quantity.addItem(quantity, quantity)
        self.quantity.setCurrentIndex(max(self.quantity.findData(previous), 0))
        self.quantity.blockSignals(False)
        if a and b and not common:
            self.message.setText("These two show nothing in common: choose runs of one kind, or two sources of "
                                 "one run.")
        else:
            self.message.setText("")
        self._draw()

    # --- drawing ---

    def _draw(self) -> None:
        quantity = self.quantity.currentData()
        a, b = self._side("A").get(quantity), self._side("B").get(quantity)
        if a is None or b is None:
            self.shown = (None, None, None)
            for label in self.titles:
                label.setText("")
            self.caption.setText("")
            return
        difference = _difference(a, b)
        self.shown = (a, b, difference)
        names = [f"{self.runs[side].currentData()} · {self.sources[side].currentData()}" for side in "AB"]
        self.titles[0].setText(f"<b>A</b>: {names[0]}")
        self.titles[1].setText(f"<b>B</b>: {names[1]}")
        self.titles[2].setText("<b>A − B</b>" if difference is not None else "A − B: shapes differ")
        # One quantity is one type on both sides, and so is their difference.
        if isinstance(a, Maps):
            assert isinstance(b, Maps) and (difference is None or isinstance(difference, Maps))
            self.pages.setCurrentIndex(0)
            self._draw_maps(a, b, difference)
        elif isinstance(a, Curves):
            assert isinstance(b, Curves) and (difference is None or isinstance(difference, Curves))
            self.pages.setCurrentIndex(1)
            self._draw_curves(quantity, a, b, difference)
        else:
            assert isinstance(b, Table) and (difference is None or isinstance(difference, Table))
            self.pages.setCurrentIndex(2)
            self._draw_table(a, b, difference)

    def _draw_maps(self, a: Maps, b: Maps, difference: Maps | None) -> None:
        both = np.concatenate([a.images.reshape(a.images.shape[0], -1), b.images.reshape(b.images.shape[0], -1)])
        counts = None if a.counts is None or b.counts is None else np.concatenate([a.counts, b.counts])
        center = a.center if a.center == b.center else None
        levels = figures.map_levels(both, a.view, center, counts)
        label = figures.MAP_VIEW_LABELS.get(a.view, a.view)
        self.grids[0].show_maps(_map_tiles(a), levels, a.view, label)
        self.grids[1].show_maps(_map_tiles(b), levels, b.view, label)
        if difference is not None:
            flat = difference.images.reshape(difference.images.shape[0], -1)
            self.grids[2].show_maps(_map_tiles(difference), figures.map_levels(flat, "centered", 0.0,
                                                                               difference.counts),
                                    "centered", "A − B")
        self.grids[2].setVisible(difference is not None)
        rule = figures.levels_caption(counts)
        self.caption.setText(f"{rule[0].upper()}{rule[1:]}, taken over A and B together: {levels[0]:.3g} to "
                             f"{levels[1]:.3g}. A − B has its own symmetric scale."
                             if difference is not None else
                             f"A and B on one colour scale ({levels[0]:.3g} to {levels[1]:.3g}); their maps differ "
                             f"in shape ({a.images.shape[1:]} × {a.images.shape[0]} vs {b.images.shape[1:]} × "
                             f"{b.images.shape[0]}), so no difference is shown.")

    def _draw_curves(self, quantity: str, a: Curves, b: Curves, difference: Curves | None) -> None:
        for plot, curves, title in ((self.plots[0], a, "A"), (self.plots[1], b, "B"),
                                    (self.plots[2], difference, "A − B")):
            plot.clear()
            plot.setVisible(curves is not None)
            if curves is None:
                continue
            style_plot(plot, f"{title}: {quantity}", curves.y_label, curves.x_label)
            legend = plot.getPlotItem().legend or plot.addLegend(offset=(-10, 10))
            legend.clear()
            for i, (label, (x, y)) in enumerate(curves.series.items()):
                plot.plot(x, y, pen=pg.mkPen(model_color(i), width=2), symbol="o", symbolSize=5,
                          symbolBrush=model_color(i), name=label)
            if curves is difference:
                plot.addLine(y=0, pen=pg.mkPen("#888888", style=Qt.PenStyle.DashLine))
        ys = np.concatenate([y for curves in (a, b) for _, y in curves.series.values()] or [np.zeros(0)])
        ys = ys[np.isfinite(ys)]
        if ys.size:  # one y range for A and B (they are linked): both curves' values
            pad = 0.05 * max(float(ys.max() - ys.min()), 1e-6)
            self.plots[0].setYRange(float(ys.min()) - pad, float(ys.max()) + pad, padding=0)
        self.caption.setText("A and B share their axes." + ("" if difference is not None else
                             " Their x grids differ, so no difference is shown."))

    def _draw_table(self, a: Table, b: Table, difference: Table | None) -> None:
        rows = list(dict.fromkeys([*a.rows, *b.rows]))
        headers = [f"{side} {column}" for column in a.columns for side in ("A", "B", "A − B")]
        self.tables.clear()
        self.tables.setRowCount(len(rows))
        self.tables.setColumnCount(len(headers))
        self.tables.setHorizontalHeaderLabels(headers)
        self.tables.setVerticalHeaderLabels(rows)
        for r, row in enumerate(rows):
            for c in range(len(a.columns)):
                values = (a.rows.get(row), b.rows.get(row), difference.rows.get(row) if difference else None)
                for s, value in enumerate(values):
                    text = "—" if value is None or not np.isfinite(value[c]) else f"{value[c]:.4g}"
                    self.tables.setItem(r, 3 * c + s, QTableWidgetItem(text))
        self.tables.resizeColumnsToContents()
        self.caption.setText("A − B where both have the cell.")
