"""Figures of the adversarial uses of bias maps (paper §3.2, Figs. 6, 7, 17–21), shared by the app and `wna export`.

- fooling-rate curves against γ with the paper's Table 2 dashed beside them (``FoolingFigure``, a pyqtgraph
  plot item the panel hosts; ``save_fooling_plot`` paints it off screen);
- injection curves per layer (``InjectionFigure`` / ``save_injection_plot``);
- tile figures painted with QPainter: example stimuli in grey (``save_attack_examples``), clean and poisoned
  models' maps with the patch outlined, confusion matrices (``save_backdoor_maps``, ``save_confusions``).

Nothing here imports wna_gui.app or the engine (core names only for typing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg

from ._qt import ensure_gui_application
from .maps import Canvas, colormap_table
from .page import TEXT_PT, figure_size, points, wrap_flags, wrapped_height, write_scene
from .style import TEXT_COLOR, style_plot

if TYPE_CHECKING:
    from ..core.bias_attack import BiasAttackSnapshot

CURVE_COLORS = {"noise_map": (31, 119, 180), "signal_map": (214, 39, 40), "noise_mean": (44, 160, 44),
                "signal_mean": (148, 103, 189)}
EXAMPLE_GAMMAS = (0.5, 0.8)  # the γ of Fig. 17 and of the paper's text (§3.2)
OUTLINE = (255, 200, 0)
PLOT_ASPECT = (3.0, 2.0)


# --- curves ---

class FoolingFigure(pg.PlotItem):
    """Fooling rate against γ: four curves (mean over targets, Wilson 95% bars) and the paper's, dashed."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        style_plot(self, "Fooling rate (fraction classified as the target)", "fooling rate", "γ (weight of the "
                   "map or mean image)")
        self.setMouseEnabled(x=False, y=False)
        self.showGrid(x=True, y=True, alpha=0.15)
        self.setXRange(-0.02, 1.02, padding=0)
        self.setYRange(-0.02, 1.02, padding=0)
        self._legend = self.addLegend(offset=(10, 10), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 220))
        self.shown: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def clear_curves(self) -> None:
        for item in list(self.listDataItems()) + [i for i in self.items if isinstance(i, pg.ErrorBarItem)]:
            self.removeItem(item)
        self._legend.clear()
        self.shown = {}

    def show_snapshot(self, snapshot: "BiasAttackSnapshot", target: int | None = None) -> None:
        """The average over targets (``target`` None) or one target's curves (its index in snapshot.targets)."""
        from ..core.bias_attack import CURVE_LABELS, CURVES, wilson_interval

        self.clear_curves()
        gammas = snapshot.gammas
        if target is None:
            rates, low, high = snapshot.average()
            which = f"mean over {snapshot.targets_done} targets"
        else:
            rates = snapshot.rates()[:, target]
            low, high = wilson_interval(snapshot.fooled[:, target], snapshot.trials[:, None])
            which = f"target {snapshot.class_names[snapshot.targets[target]]}"
        self.setTitle(f"Fooling rate, {which} ({snapshot.estimator} maps)", color=TEXT_COLOR)
        for c, curve in enumerate(CURVES):
            color = CURVE_COLORS[curve]
            if np.isfinite(rates[c]).any():
                bars = pg.ErrorBarItem(x=gammas, y=np.nan_to_num(rates[c]), top=np.nan_to_num(high[c] - rates[c]),
                                       bottom=np.nan_to_num(rates[c] - low[c]), beam=0.012, pen=pg.mkPen(color))
                self.addItem(bars)
                self.plot(gammas, rates[c], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6,
                          symbolBrush=color, symbolPen=None, name=CURVE_LABELS[curve])
                self.shown[curve] = (gammas, rates[c])
            paper = snapshot.paper_values(curve)
            if target is None and np.isfinite(paper).any():
                keep = np.isfinite(paper)
                self.plot(gammas[keep], paper[keep], pen=pg.mkPen(color, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine),
                          name="paper (Table 2)" if c == 0 else None)


def save_fooling_plot(snapshot: "BiasAttackSnapshot", path, target: int | None = None) -> Path:
    """Fig. 6C: the four curves, averaged (or one target's), with the paper's dashed (.png, .pdf, .svg)."""
    ensure_gui_application()
    return write_scene(FoolingFigure(), PLOT_ASPECT, path, lambda figure: figure.show_snapshot(snapshot, target))


class LineFigure(pg.PlotItem):
    """Named curves with optional interval bars (injection curves per layer, training loss)."""

    def __init__(self, title: str, left: str, bottom: str, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        style_plot(self, title, left, bottom)
        self.setMouseEnabled(x=False, y=False)
        self.showGrid(x=True, y=True, alpha=0.15)
        self._legend = self.addLegend(offset=(10, 10), labelTextColor=TEXT_COLOR, brush=(255, 255, 255, 220))
        self.shown: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def show_lines(self, x: np.ndarray, lines: dict[str, np.ndarray], low: dict | None = None,
                   high: dict | None = None, y_range=(-0.02, 1.02)) -> None:
        for item in list(self.listDataItems()) + [i for i in self.items if isinstance(i, pg.ErrorBarItem)]:
            self.removeItem(item)
        self._legend.clear()
        self.shown = {}
        palette = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75)]
        for i, (name, y) in enumerate(lines.items()):
            color = palette[i % len(palette)]
            y = np.asarray(y, dtype=float)
            if low is not None and name in low:
                assert high is not None  # the bounds come as a pair
                self.addItem(pg.ErrorBarItem(x=x, y=np.nan_to_num(y), top=np.nan_to_num(high[name] - y),
                                             bottom=np.nan_to_num(y - low[name]), beam=0.012, pen=pg.mkPen(color)))
            self.plot(x, y, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=6, symbolBrush=color,
                      symbolPen=None, name=name)
            self.shown[name] = (np.asarray(x), y)
        if y_range is not None:
            self.setYRange(*y_range, padding=0)
        else:
            self.enableAutoRange()


def save_line_plot(path, title: str, left: str, bottom: str, x, lines, low=None, high=None,
                   y_range=(-0.02, 1.02)) -> Path:
    ensure_gui_application()
    return write_scene(LineFigure(title, left, bottom), PLOT_ASPECT, path,
                   lambda figure: figure.show_lines(np.asarray(x, dtype=float), lines, low, high, y_range))


# --- tiles ---

@dataclass
class Tile:
    image: np.ndarray | None  # (C, H, W); None: an empty grey tile
    title: str = ""
    outline: tuple[int, int, int, int] | None = None  # (row, col, height, width) in image pixels
    peak: tuple[int, int, int, int] | None = None  # a second box, dashed: where the map stands out most


@dataclass
class TileRow:
    label: str
    tiles: list[Tile]
    mode: str = "grey"  # grey: pixels in [0, 1]; diverging: symmetric about 0 (the row's own scale)


class TileFigure(Canvas):
    """Rows of labelled tiles (stimuli in grey, maps on a diverging scale), an optional outline per tile.

    ``width`` (logical units) lays it out for a screen pane instead of the figure width; only there do a row's tiles
    wrap onto more lines, rather than shrink below ``MIN_SCREEN_TILE``."""

    title: str
    MAX_TILE = 112.0  # logical units (1/96 inch): ~30 mm
    MIN_SCREEN_TILE = 56.0  # two figure units per pixel of a 28 px digit
    GAP = 4.0

    def __init__(self, rows: list[TileRow], title: str, caption: str = "", width: float | None = None) -> None:
        from PySide6.QtGui import QFont, QFontMetricsF

        self.rows, self.title, self.caption = rows, title, caption
        self.font = QFont("DejaVu Sans")
        self.font.setPixelSize(round(points(TEXT_PT)))
        metrics = QFontMetricsF(self.font)
        self.LINE = float(np.ceil(metrics.height() * 1.15))
        self.width = float(figure_size().logical_width) if width is None else width
        self.columns = max([len(row.tiles) for row in rows] + [1])
        # Diverging rows give their colour scale under their label ("±value at the left").
        self.halves = [max([float(np.nanmax(np.abs(t.image))) for t in row.tiles
                            if t.image is not None and np.isfinite(t.image).any()] + [1e-9]) for row in rows]
        self.labels = [row.label + (f"\n±{half:.3g}" if row.mode == "diverging" else "")
                       for row, half in zip(rows, self.halves)]
        label = max([metrics.horizontalAdvance(line) for text in self.labels for line in text.split("\n")] + [30.0])
        self.label_w = min(0.3 * self.width, label + 2 * self.GAP)
        self.TILE = min(self.MAX_TILE, (self.width - self.label_w - (self.columns + 1) * self.GAP) / self.columns)
        if width is not None and self.TILE < self.MIN_SCREEN_TILE:
            self.columns = max(1, int((self.width - self.label_w - self.GAP) // (self.MIN_SCREEN_TILE + self.GAP)))
            self.TILE = max(self.MIN_SCREEN_TILE, min(self.MAX_TILE, (self.width - self.label_w - (self.columns + 1)
                                                                      * self.GAP) / self.columns))
            # A pane narrower than one tile beside the labels: the figure stays wider and the pane scrolls.
            self.width = max(self.width, self.label_w + self.columns * (self.TILE + self.GAP) + self.GAP)
        # Labels wider than their column wrap; a row is as tall as its tiles or its label, whichever is taller.
        self.label_flags = [wrap_flags(metrics, text, self.label_w - 2 * self.GAP) for text in self.labels]
        label_h = max([wrapped_height(self.font, text, self.label_w - 2 * self.GAP) for text in self.labels] + [0.0])
        # Tile titles wrap onto the lines the narrowest needs ("poisoned |z| 4.2 ✓" keeps its |z|).
        self.title_line_h = max([wrapped_height(self.font, t.title, self.TILE) for row in rows for t in row.tiles]
                                + [self.LINE])
        self.row_h = max(self.TILE, label_h) + self.title_line_h + self.GAP
        # Each line a wrapped row adds below its first (none in an export: one line per row).
        self.grown = [(-(-len(row.tiles) // self.columns) - 1) * (self.TILE + self.title_line_h + self.GAP)
                      if row.tiles else 0.0 for row in rows]
        self.title_h = wrapped_height(self.font, title, self.width - 2 * self.GAP) + self.GAP
        self.caption_h = wrapped_height(self.font, caption, self.width - 2 * self.GAP) + self.GAP if caption else 0.0
        self.height = float(2 * self.GAP + self.title_h + len(rows) * self.row_h + self.caption_h) + sum(self.grown)
        # What a view must show at least to show anything: the title and the first row of tiles.
        self.head_height = float(2 * self.GAP + self.title_h + min(len(rows), 1) * self.row_h)
        self.lut = colormap_table()

    def laid_out(self, width: float) -> TileFigure:
        """The same figure laid out ``width`` logical units wide (a screen pane)."""
        return TileFigure(self.rows, self.title, self.caption, width)

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor, QFontMetricsF, QImage, QPen

        painter.fillRect(QRectF(0, 0, self.width, self.height), QColor("white"))
        painter.setFont(self.font)
        painter.setPen(QColor("black"))
        metrics = QFontMetricsF(self.font)
        painter.drawText(QRectF(self.GAP, self.GAP, self.width - 2 * self.GAP, self.title_h),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                         self.title)
        top = self.title_h + 2 * self.GAP
        above = 0.0  # the lines wrapped rows above added
        for r, row in enumerate(self.rows):
            row_top = top + r * self.row_h + above
            painter.setPen(QColor("black"))
            painter.drawText(QRectF(self.GAP, row_top + self.title_line_h, self.label_w - 2 * self.GAP,
                                    self.row_h + self.grown[r] - self.title_line_h - self.GAP),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter | self.label_flags[r],
                             self.labels[r])
            above += self.grown[r]
            half = self.halves[r]
            for c, tile in enumerate(row.tiles):
                line, column = divmod(c, self.columns)
                x = self.label_w + column * (self.TILE + self.GAP)
                y = row_top + line * (self.TILE + self.title_line_h + self.GAP)
                painter.setPen(QColor("black"))
                painter.drawText(QRectF(x, y, self.TILE, self.title_line_h), Qt.AlignmentFlag.AlignHCenter |
                                 Qt.AlignmentFlag.AlignBottom | wrap_flags(metrics, tile.title, self.TILE), tile.title)
                box = QRectF(x, y + self.title_line_h, self.TILE, self.TILE)
                if tile.image is None or not np.isfinite(tile.image).all():
                    painter.fillRect(box, QColor(205, 205, 205))
                    continue
                image = np.asarray(tile.image, dtype=np.float64)
                if row.mode == "grey":
                    grey = (np.clip(image.mean(0) if image.shape[0] != 3 else image.mean(0), 0, 1) * 255 + 0.5)
                    rgb = np.repeat(grey.astype(np.uint8)[..., None], 3, 2) if image.shape[0] != 3 else \
                        (np.clip(np.moveaxis(image, 0, -1), 0, 1) * 255 + 0.5).astype(np.uint8)
                else:
                    index = np.clip((image.mean(0) + half) / (2 * half) * 255, 0, 255).astype(np.uint8)
                    rgb = self.lut[index]
                rgb = np.ascontiguousarray(rgb)
                h, w, _ = rgb.shape
                qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
                painter.drawImage(box, qimage)
                for outline, style in ((tile.outline, Qt.PenStyle.SolidLine), (tile.peak, Qt.PenStyle.DashLine)):
                    if outline is None:
                        continue
                    r0, c0, hh, ww = outline
                    painter.setPen(QPen(QColor(*OUTLINE), 2, style))
                    painter.drawRect(QRectF(x + c0 * self.TILE / w, y + self.title_line_h + r0 * self.TILE / h,
                                            ww * self.TILE / w, hh * self.TILE / h))
        if self.caption:
            painter.setPen(QColor("black"))
            painter.drawText(QRectF(self.GAP, self.height - self.caption_h - self.GAP, self.width - 2 * self.GAP,
                                    self.caption_h), Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
                             self.caption)


def save_tiles(rows: list[TileRow], title: str, path, caption: str = "") -> Path:
    ensure_gui_application()
    return TileFigure(rows, title, caption).write(Path(path))


def example_rows(snapshot: "BiasAttackSnapshot", gammas=EXAMPLE_GAMMAS) -> list[TileRow]:
    """Per curve and γ (those of ``gammas`` on the run's grid), the example stimulus of every target attacked."""
    from ..core.bias_attack import CURVE_LABELS, CURVES

    rows = []
    shape = snapshot.image_shape
    chosen = [int(np.argmin(np.abs(snapshot.gammas - g))) for g in gammas]
    chosen = sorted(set(i for i, g in zip(chosen, gammas) if abs(snapshot.gammas[i] - g) < 0.051))
    for c, curve in enumerate(CURVES):
        for g in chosen:
            tiles = []
            for t in range(len(snapshot.targets)):
                given = int(snapshot.example_classes[t, c, g])
                if t >= snapshot.targets_done or given < 0:
                    tiles.append(Tile(None, snapshot.class_names[snapshot.targets[t]]))
                    continue
                mark = "✓" if given == snapshot.targets[t] else ""
                tiles.append(Tile(snapshot.examples[t, c, g].reshape(shape),
                                  f"→{snapshot.class_names[given]} {mark}".strip()))
            rows.append(TileRow(f"{CURVE_LABELS[curve]}\nγ = {snapshot.gammas[g]:g}", tiles))
    return rows


def save_attack_examples(snapshot: "BiasAttackSnapshot", path) -> Path:
    """Example stimuli (rows: curve × γ; columns: targets), each titled with the class the model gave it."""
    names = ", ".join(snapshot.target_names())
    return save_tiles(example_rows(snapshot), f"Bias-map attack: example stimuli per target ({names}); "
                      "tile title: the class the model gives it (✓: the target)", path,
                      caption="noise: the run's first noise image; signal: one held-out image of another class")


# --- backdoor (Figs. 7A/B/D, 18) ---

def backdoor_rows(snapshot) -> list[TileRow]:
    """Target-class maps of both models and their difference, the mean loss gradients and the spectral
    signature's image, each titled with its detection (|z| inside the patch box), the box outlined."""
    def found(prefix: str) -> list:
        return [d for d in snapshot.detections if d.method.startswith(prefix)]

    def title(name: str, detection) -> str:
        return f"{name} |z| {detection.z_inside:.1f}{' ✓' if detection.in_box else ''}"

    maps, gradients, spectral = found("classification image"), found("mean loss gradient"), found("spectral")
    verdicts = {v.method.split(" (")[0]: v for v in snapshot.verdicts}
    shape = snapshot.image_shape
    _, _, h, w = snapshot.box

    def peak_box(method: str, model: str):
        verdict = verdicts.get(method)
        return None if verdict is None else (*getattr(verdict, model).peak, h, w)

    def verdict_word(method: str) -> str:
        verdict = verdicts.get(method)
        return "" if verdict is None else " DETECTED" if verdict.detected else " not detected"

    rows = []
    if "difference" in snapshot.maps:
        pair = f"{snapshot.class_names[snapshot.target]} − {snapshot.class_names[snapshot.source]}"
        method = "classification image"
        rows.append(TileRow(f"classification image\n{pair} ({snapshot.estimator})\n{verdict_word(method)}", [
            Tile(snapshot.maps["clean"].reshape(shape), title("clean", maps[0]), snapshot.box,
                 peak_box(method, "clean")),
            Tile(snapshot.maps["poisoned"].reshape(shape), title("poisoned", maps[1]), snapshot.box,
                 peak_box(method, "poisoned")),
            Tile(snapshot.maps["difference"].reshape(shape), title("difference", maps[2]), snapshot.box)],
            "diverging"))
    if snapshot.finished:
        method = "mean loss gradient"
        rows.append(TileRow(f"mean loss gradient\n(white-box, Fig. 7D)\n{verdict_word(method)}", [
            Tile(snapshot.results["gradient_clean"].reshape(shape), title("clean", gradients[0]), snapshot.box,
                 peak_box(method, "clean")),
            Tile(snapshot.results["gradient_poisoned"].reshape(shape), title("poisoned", gradients[1]), snapshot.box,
                 peak_box(method, "poisoned"))],
            "diverging"))
        rows.append(TileRow("spectral signature\n(training data)", [
            Tile(snapshot.results["spectral_image"].reshape(shape), title("flagged−rest", spectral[0]),
                 snapshot.box)], "diverging"))
    return rows


def save_backdoor_maps(snapshot, path) -> Path:
    return save_tiles(backdoor_rows(snapshot), f"Backdoor {snapshot.attack}: where each method points (patch box "
                      "outlined; dashed: the strongest patch-sized window; |z|: largest robust z inside the box, ✓: "
                      "the map's peak is inside it)", path,
                      caption="each row on its own symmetric colour scale (±value at the left); detected: the "
                      "poisoned map's strongest window lies on the patch and beats every window of the clean twin's"
                      + "".join(f"; {w}" for w in snapshot.warnings))


class ConfusionFigure(Canvas):
    """Confusion matrices (rows: true class, columns: predicted), counts written, shaded by row fraction.

    ``width`` (logical units) lays it out for a screen pane instead of the figure width."""

    title: str
    CELL = 22.0
    MIN_SCREEN_CELL = 14.0  # room for a two-digit count in the small font
    GAP = 16.0

    def __init__(self, matrices: dict[str, np.ndarray], class_names, title: str, width: float | None = None) -> None:
        from PySide6.QtGui import QFont, QFontMetricsF

        self.matrices, self.class_names, self.title = matrices, [str(c) for c in class_names], title
        self.font = QFont("DejaVu Sans")
        self.font.setPixelSize(round(points(TEXT_PT)))
        self.small = QFont(self.font)
        self.small.setPixelSize(max(6, round(points(TEXT_PT) * 0.75)))
        self.line = float(np.ceil(QFontMetricsF(self.font).height() * 1.15))
        k = len(self.class_names)
        # As wide as the figure: two matrices side by side while their cells keep room for a count, else one.
        self.width = float(figure_size().logical_width) if width is None else width
        self.columns = 1
        for columns in (2, 1):
            self.CELL = min(22.0, (self.width - self.GAP - columns * (self.line + self.GAP)) / (columns * k))
            self.columns = columns
            if self.CELL >= 18.0:
                break
        if width is not None and self.CELL < self.MIN_SCREEN_CELL:
            # A pane narrower than one readable matrix: the figure stays wider and the pane scrolls.
            self.CELL = self.MIN_SCREEN_CELL
            self.width = self.GAP + self.line + k * self.CELL + self.GAP
        self.block = self.line + k * self.CELL + 2 * self.line
        self.title_h = wrapped_height(self.font, title, self.width - self.GAP) + self.line / 2
        rows = -(-len(matrices) // self.columns)
        self.height = float(self.title_h + rows * self.block + self.GAP)

    def laid_out(self, width: float) -> ConfusionFigure:
        """The same figure laid out ``width`` logical units wide (a screen pane)."""
        return ConfusionFigure(self.matrices, self.class_names, self.title, width)

    def paint(self, painter) -> None:
        from PySide6.QtCore import QRectF, Qt
        from PySide6.QtGui import QColor

        painter.fillRect(QRectF(0, 0, self.width, self.height), QColor("white"))
        painter.setFont(self.font)
        painter.setPen(QColor("black"))
        painter.drawText(QRectF(self.GAP / 2, 0, self.width - self.GAP, self.title_h),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap,
                         self.title)
        k = len(self.class_names)
        for i, (name, matrix) in enumerate(self.matrices.items()):
            x0 = self.GAP + (i % self.columns) * (self.line + k * self.CELL + self.GAP) + self.line
            y0 = self.title_h + (i // self.columns) * self.block
            painter.setFont(self.font)
            painter.setPen(QColor("black"))
            painter.drawText(QRectF(x0, y0, k * self.CELL, self.line), Qt.AlignmentFlag.AlignCenter, name)
            top = y0 + self.line
            rows = np.maximum(matrix.sum(1, keepdims=True), 1)
            painter.setFont(self.small)
            for r in range(k):
                painter.setPen(QColor("black"))
                painter.drawText(QRectF(x0 - self.line, top + r * self.CELL, self.line, self.CELL),
                                 Qt.AlignmentFlag.AlignCenter, self.class_names[r][:3])
                painter.drawText(QRectF(x0 + r * self.CELL, top + k * self.CELL, self.CELL, self.line),
                                 Qt.AlignmentFlag.AlignCenter, self.class_names[r][:3])
                for c in range(k):
                    share = matrix[r, c] / rows[r, 0]
                    shade = int(255 - 200 * share)
                    cell = QRectF(x0 + c * self.CELL, top + r * self.CELL, self.CELL, self.CELL)
                    painter.fillRect(cell, QColor(shade, shade, 255) if r == c else QColor(255, shade, shade))
                    painter.setPen(QColor(220, 220, 220))
                    painter.drawRect(cell)
                    if matrix[r, c]:
                        painter.setPen(QColor("black") if share < 0.6 else QColor("white"))
                        painter.drawText(cell, Qt.AlignmentFlag.AlignCenter, str(int(matrix[r, c])))
            painter.setFont(self.font)


def confusion_titles(snapshot) -> dict[str, np.ndarray]:
    source = snapshot.class_names[snapshot.source]
    names = {"clean_clean": "clean model, clean test", "clean_patched": f"clean model, all {source}s patched",
             "poisoned_clean": "poisoned model, clean test", "poisoned_patched": f"poisoned model, all {source}s patched"}
    return {names[key]: snapshot.results[f"confusion_{key}"] for key in names}


def save_confusions(snapshot, path) -> Path:
    ensure_gui_application()
    figure = ConfusionFigure(confusion_titles(snapshot), snapshot.class_names,
                             f"Confusion matrices (rows: true class, columns: predicted; red: errors), {snapshot.attack}")
    return figure.write(Path(path))


def backdoor_view(snapshot):
    """What the panel shows: (x, loss curves, low, high, y range, note, figures)."""
    from ..core.backdoor import report

    lines = {f"{m} copy": np.asarray(v) for m, v in snapshot.losses.items() if v}
    x = np.arange(1, max([len(v) for v in lines.values()] + [0]) + 1)
    figures = []
    rows = backdoor_rows(snapshot)
    if rows:
        figures.append(TileFigure(rows, "Where each method points (patch box outlined)"))
    if snapshot.finished:
        figures.append(ConfusionFigure(confusion_titles(snapshot), snapshot.class_names, "Confusion matrices"))
    return x, lines, None, None, None, "<pre>" + "\n".join(report(snapshot)) + "</pre>", figures


# --- activation injection (Figs. 7C, 21) ---

def injection_lines(snapshot):
    rate, low, high = snapshot.ratios()
    done = snapshot.layers[:snapshot.layers_done]
    return ({layer: rate[i] for i, layer in enumerate(done)}, {layer: low[i] for i, layer in enumerate(done)},
            {layer: high[i] for i, layer in enumerate(done)})


def save_injection_plot(snapshot, path) -> Path:
    """Fig. 21: misclassification ratio toward the injected class against γ, one curve per layer (.png, .pdf, .svg)."""
    lines, low, high = injection_lines(snapshot)
    classes = ", ".join(snapshot.class_names[c] for c in snapshot.classes)
    return save_line_plot(path, f"Injected noise activation of class {classes}: misclassification toward it",
                          "misclassification ratio", "γ (weight of the real activation)", snapshot.gammas, lines,
                          low, high)


def injection_rows(snapshot, gammas=EXAMPLE_GAMMAS) -> list[TileRow]:
    """Input-layer injection: the first real image mixed with each class's mean noise at the chosen γ."""
    chosen = sorted({int(np.argmin(np.abs(snapshot.gammas - g))) for g in (0.0, *gammas, 1.0)})
    rows = []
    for g in chosen:
        tiles = []
        for c in snapshot.classes:
            given = int(snapshot.example_classes[c, g])
            image = snapshot.examples[c, g]
            tiles.append(Tile(image.reshape(snapshot.image_shape) if np.isfinite(image).all() else None,
                              f"{snapshot.class_names[c]} → {snapshot.class_names[given]}" if given >= 0 else ""))
        rows.append(TileRow(f"γ = {snapshot.gammas[g]:g}", tiles))
    return rows


def save_injection_examples(snapshot, path) -> Path:
    return save_tiles(injection_rows(snapshot), "Input injection: (1 − γ)·mean noise of class c + γ·image "
                      "(tile: injected class → class given)", path)


def injection_view(snapshot):
    from ..core.activation_injection import INPUT, report

    lines, low, high = injection_lines(snapshot)
    figures = []
    if INPUT in snapshot.layers[:snapshot.layers_done] and len(snapshot.classes):
        figures.append(TileFigure(injection_rows(snapshot), "Input injection examples (injected → given)"))
    return (snapshot.gammas, lines, low, high, (-0.02, 1.02), "<pre>" + "\n".join(report(snapshot)) + "</pre>",
            figures)


PANEL_VIEWS = {"backdoor": backdoor_view, "activation_injection": injection_view}


__all__ = ["save_injection_examples", "save_injection_plot", "ConfusionFigure", "FoolingFigure", "PANEL_VIEWS", "backdoor_rows", "save_backdoor_maps",
           "save_confusions", "LineFigure", "Tile", "TileFigure", "TileRow", "example_rows", "save_attack_examples",
           "save_fooling_plot", "save_line_plot", "save_tiles"]
