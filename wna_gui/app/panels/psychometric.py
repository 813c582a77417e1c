"""Psychometric curves and microstimulation, the paper's §3.4 (Figs. 9, 23–25).

Settings on the left; two views on the right. "Curves": one target class and
one stimulated layer, the fraction of stimuli t = γ·s + (1 − γ)·n classified as
the target against γ, one colour per k, fitted ψ and a table of thresholds and
shifts. "Small multiples": every class × layer (× sign), Fig. 23 style. Start
runs the view on top. The engine's PsychometricExperiment does all the work;
the grid runs one per plot, one after another, through the same engine thread.
The panel saves both views: the curves under ``psychometric``, the grid under
``psychometric_grid``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.psychometric_report import (
    PSYCHOMETRIC_COLUMNS,
    format_k_values,
    gamma_grid,
    grid_records,
    parse_k_values,
    psychometric_data_records,
    psychometric_fit_records,
    psychometric_table,
    write_records,
)
from ...core.control import RunControl
from ...core.data import ImageSet, load_dataset
from ...core.models import LoadedModel
from ...core.psychometric import (
    GRID_KIND,
    GUESS_MODES,
    KIND,
    LAPSE_MODES,
    PsychometricConfig,
    PsychometricExperiment,
    PsychometricGridState,
    PsychometricSnapshot,
    PsychometricState,
    default_lambda,
    stimulable_layers,
)
from ...core.psyfit import SIGMOIDS
from ..plots import export_view
from ..widgets import combo_box, int_spin, select_data
from ..psychometric_plots import PsychometricPlot, SmallMultiplesPlot, k_colors
from .base import ExperimentFactory, ExportTarget, Panel

UNSTIMULATED = "none (unstimulated)"
CURVES_VIEW, GRID_VIEW = "curves", "grid"
GUESS_LABELS = {"free": "free (fitted in [0, 0.5])", "chance": "chance (1/K)"}
LAPSE_LABELS = {"bounded": "bounded [0, 0.06]", "free": "free [0, 0.5]"}
GUESS_HELP = ("A network need not guess at 1/K on noise: the bundled CNN calls most pure noise an 8, so most of "
              "its curves start near 0. A free guess rate fits that floor; chance fixes it at 1/K.")
DEFAULT_GRID_K = (0.0, 5.0, 10.0)
SHARED_SETTINGS = ("gammas", "seed", "sigmoid", "guess", "lapse")  # of both views; the grid has no bootstrap
TABLE_NOTE = ("Threshold: γ where the sigmoid is halfway; width: γ span from 5% to 95% of it; 95% intervals "
              "bootstrap the images. A threshold outside the γ range is an extrapolation and is not given as a "
              "number; neither are shifts that involve one.")


def _count_images(images: ImageSet, model: LoadedModel, target: int) -> int:
    """How many images of the model's class ``target`` the data set holds (0 when it lacks the class)."""
    name = model.class_names[target]
    if name not in images.class_names:
        return 0
    return int((images.labels == images.class_names.index(name)).sum())


@dataclass(frozen=True)
class GridProgress:
    """The grid's runs for drawing, with the progress the window's status bar reads (samples = stimuli)."""

    configs: tuple[PsychometricConfig, ...]
    snapshots: tuple[PsychometricSnapshot | None, ...]  # per config; None until its turn comes
    samples_total: int
    samples_per_second: float = 0.0  # of the run being measured; 0 when none is

    @classmethod
    def of(cls, grid: PsychometricGridState, samples_total: int, samples_per_second: float = 0.0) -> "GridProgress":
        return cls(grid.configs, tuple(None if cell is None else cell.snapshot() for cell in grid.cells),
                   samples_total, samples_per_second)

    @property
    def samples_done(self) -> int:
        return sum(snapshot.samples_done for snapshot in self.snapshots if snapshot is not None)

    @property
    def eta_seconds(self) -> float | None:
        if self.samples_per_second <= 0:
            return None
        return (self.samples_total - self.samples_done) / self.samples_per_second


class _GridRun:
    """Measures the grid's unfinished runs one after another, filling in ``grid`` (built anew for every Start)."""

    def __init__(self, model: LoadedModel, grid: PsychometricGridState, samples_total: int, device: str,
                 control: RunControl) -> None:
        self.model, self.grid, self.device, self.control = model, grid, device, control
        self.samples_total = samples_total

    def run(self):
        images = load_dataset(self.grid.base.dataset)  # once for all runs
        for index, config in enumerate(self.grid.configs):
            cell = self.grid.cells[index]
            if cell is not None and cell.finished:
                continue
            experiment = PsychometricExperiment(self.model, config, state=cell, images=images, device=self.device,
                                                control=self.control)
            self.grid.cells[index] = experiment.state
            for snapshot in experiment.run():
                yield GridProgress.of(self.grid, self.samples_total, snapshot.samples_per_second)

    def snapshot(self) -> GridProgress:
        return GridProgress.of(self.grid, self.samples_total)


def _measurement(config: PsychometricConfig, lambda_: float | None) -> PsychometricConfig:
    """``config`` with everything that does not change what the model is shown set to one value."""
    return replace(config, lambda_=lambda_, sigmoid=SIGMOIDS[0], guess=GUESS_MODES[0], lapse=LAPSE_MODES[0],
                   n_boot=0, gof_samples=0, batch_size=1, snapshot_seconds=0.0)


def _refit_needed(old: PsychometricConfig, new: PsychometricConfig) -> bool:
    return any(getattr(old, name) != getattr(new, name) for name in ("sigmoid", "guess", "lapse", "n_boot",
                                                                      "gof_samples"))


def _refitted(state: PsychometricState, config: PsychometricConfig) -> PsychometricState:
    """The measurements of ``state`` under ``config``'s fit settings, to be fitted anew."""
    return PsychometricState(config, state.class_names, state.n_images, state.images_sha256, state.lambda_,
                             state.mean_activation, correct=state.correct.copy(), responses=state.responses.copy(),
                             done=state.done.copy(), noise_device=state.noise_device, seconds=state.seconds)


class PsychometricPanel(Panel):
    kind = KIND
    title = "Psychometric curves"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model: LoadedModel | None = None
        self._images: ImageSet | None = None  # to count the target's images before a run
        self._state: PsychometricState | None = None
        self._snapshot: PsychometricSnapshot | None = None
        self._grid: PsychometricGridState | None = None
        self._grid_progress: GridProgress | None = None  # as last drawn
        self._build_settings()

        self.plot = PsychometricPlot()
        self.table = QTableWidget(0, len(PSYCHOMETRIC_COLUMNS))
        self.table.setObjectName("fit_table")
        self.table.setHorizontalHeaderLabels(list(PSYCHOMETRIC_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Spare width goes to the shift column, the widest text, not to the narrow p-value.
        header.setSectionResizeMode(PSYCHOMETRIC_COLUMNS.index("Δthreshold vs k=0 [95% CI]"),
                                    QHeaderView.ResizeMode.Stretch)
        table_note = QLabel(TABLE_NOTE)
        table_note.setWordWrap(True)
        table_note.setStyleSheet("color: palette(placeholder-text)")
        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(table_note)
        curves = QSplitter(Qt.Orientation.Vertical)
        curves.setObjectName("curves_splitter")
        curves.addWidget(self.plot)
        curves.addWidget(table_box)
        curves.setStretchFactor(0, 3)
        curves.setStretchFactor(1, 2)

        self.grid_plot = SmallMultiplesPlot()
        self.grid_note = QLabel()
        self.grid_note.setWordWrap(True)
        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.grid_plot, 1)
        grid_layout.addWidget(self.grid_note)

        self.views = QTabWidget()
        self.views.setObjectName("psychometric_views")
        self.views.addTab(curves, "Curves")
        self.views.addTab(grid_box, "Small multiples")
        self.views.currentChanged.connect(self._settings_edited)
        layout = QHBoxLayout(self)
        layout.addWidget(self._settings_area)
        layout.addWidget(self.views, 1)
        self.apply_settings(self._defaults())

    # --- settings widgets ---

    def _build_settings(self) -> None:
        self.target = QComboBox()
        self.layer = QComboBox()
        self.lambda_ = QDoubleSpinBox()
        self.lambda_.setDecimals(4)
        self.lambda_.setRange(0.0001, 1000.0)
        self.lambda_.setSingleStep(0.01)
        self.lambda_.setSpecialValueText("—")
        self.lambda_.setToolTip("b ← b ± λ·k·ā for each map of the layer; set to the paper's λ for the layer "
                                "type (0.01 fully connected, 0.1 first conv, 1 deeper conv) when the layer changes")
        self.k_values = QLineEdit()
        self.k_values.setToolTip("Stimulation levels: 0:10, 0:10:2 or 0, 1, 2, 5. k = 0 is the reference curve.")
        self.sign = combo_box({1: "excite (raise biases)", -1: "inhibit (lower biases)"})
        stimulation = QGroupBox("Target and stimulation")
        form = QFormLayout(stimulation)
        form.addRow("Target class", self.target)
        form.addRow("Layer", self.layer)
        form.addRow("λ", self.lambda_)
        form.addRow("k values", self.k_values)
        form.addRow("Sign", self.sign)
        self._stimulation_box = stimulation
        self.layer.currentIndexChanged.connect(self._layer_changed)

        self.grid_k_values = QLineEdit()
        self.grid_k_values.setToolTip("k values of every small plot, e.g. 0, 5, 10")
        self.grid_layers = QWidget()
        self._grid_layer_boxes: dict[str, QCheckBox] = {}
        QHBoxLayout(self.grid_layers).setContentsMargins(0, 0, 0, 0)
        self.grid_excite, self.grid_inhibit = QCheckBox("excite"), QCheckBox("inhibit")
        signs = QWidget()
        signs_layout = QHBoxLayout(signs)
        signs_layout.setContentsMargins(0, 0, 0, 0)
        signs_layout.addWidget(self.grid_excite)
        signs_layout.addWidget(self.grid_inhibit)
        signs_layout.addStretch(1)
        grid = QGroupBox("Small multiples (every class)")
        form = QFormLayout(grid)
        form.addRow("k values", self.grid_k_values)
        form.addRow("Layers", self.grid_layers)
        form.addRow("Signs", signs)
        grid_help = QLabel("Each layer uses its paper λ. No bootstrap here: the grid shows curves and shifts.")
        grid_help.setWordWrap(True)
        grid_help.setStyleSheet("color: palette(placeholder-text)")
        form.addRow(grid_help)
        self._grid_box = grid

        self.gamma_points = int_spin(2, 201)
        self.gamma_points.setToolTip("Signal fractions γ evenly spaced from 0 (pure noise) to 1 (clean image)")
        self.trials = QLabel()
        self.trials.setObjectName("trials_label")
        self.trials.setWordWrap(True)
        self.trials.setToolTip("Every test image of the target is shown once per (k, γ) point, each time with "
                               "fresh noise; the number of images is set by the data.")
        self.seed = int_spin(0, 2**31 - 1)
        self.seed.setGroupSeparatorShown(False)
        run = QGroupBox("Stimulus")
        form = QFormLayout(run)
        form.addRow("γ points in [0, 1]", self.gamma_points)
        form.addRow("Trials per point", self.trials)
        form.addRow("Seed", self.seed)

        self.sigmoid = combo_box({name: name for name in SIGMOIDS})
        self.guess = combo_box({mode: GUESS_LABELS[mode] for mode in GUESS_MODES})
        self.guess.setToolTip(GUESS_HELP)
        self.lapse = combo_box({mode: LAPSE_LABELS[mode] for mode in LAPSE_MODES})
        self.n_boot = int_spin(0, 100_000, 50)
        self.n_boot.setToolTip("Bootstrap resamples of the images, for the 95% intervals (0: none)")
        self.gof_samples = int_spin(0, 100_000, 50)
        self.gof_samples.setToolTip("Monte-Carlo samples for the goodness-of-fit p-value of the deviance (0: none)")
        fit = QGroupBox("Fit ψ = guess + (1 − guess − lapse)·F")
        form = QFormLayout(fit)
        form.addRow("Sigmoid F", self.sigmoid)
        form.addRow("Guess rate", self.guess)
        form.addRow("Lapse rate", self.lapse)
        form.addRow("Bootstrap", self.n_boot)
        form.addRow("GoF samples", self.gof_samples)

        self.plan_label = QLabel()
        self.plan_label.setObjectName("plan_label")
        self.plan_label.setWordWrap(True)

        column = QWidget()
        column_layout = QVBoxLayout(column)
        for box in (stimulation, grid, run, fit):
            column_layout.addWidget(box)
        column_layout.addWidget(self.plan_label)
        column_layout.addStretch(1)
        self._locked_during_runs = (stimulation, grid, run, fit)
        self._settings_area = QScrollArea()
        self._settings_area.setWidget(column)
        self._settings_area.setWidgetResizable(True)
        self._settings_area.setFixedWidth(column.sizeHint().width() + 40)
        self._settings_area.setFrameShape(QScrollArea.Shape.NoFrame)

        for combo in (self.target, self.layer, self.sign, self.sigmoid, self.guess, self.lapse):
            combo.currentIndexChanged.connect(self._settings_edited)
        for box in (self.lambda_, self.gamma_points, self.seed, self.n_boot, self.gof_samples):
            box.valueChanged.connect(self._settings_edited)
        for edit in (self.k_values, self.grid_k_values):
            edit.textChanged.connect(self._settings_edited)
        for box in (self.grid_excite, self.grid_inhibit):
            box.toggled.connect(self._settings_edited)

    def _fill_model_choices(self, model: LoadedModel) -> None:
        """Target classes and layers of ``model``; the grid ticks every stimulable layer but the output."""
        for combo in (self.target, self.layer):
            combo.blockSignals(True)
            combo.clear()
        for index, name in enumerate(model.class_names):
            self.target.addItem(name, index)
        self.layer.addItem(UNSTIMULATED, None)
        layers = list(stimulable_layers(model))
        for name in layers:
            self.layer.addItem(name, name)
        for combo in (self.target, self.layer):
            combo.blockSignals(False)
        row = self.grid_layers.layout()
        for box in self._grid_layer_boxes.values():
            row.removeWidget(box)
            box.deleteLater()
        self._grid_layer_boxes = {}
        for name in layers:
            box = QCheckBox(name)
            box.setChecked(name != layers[-1])
            box.toggled.connect(self._settings_edited)
            row.addWidget(box)
            self._grid_layer_boxes[name] = box
        self._layer_changed()

    def _layer_changed(self) -> None:
        layer = self.layer.currentData()
        for widget in (self.lambda_, self.k_values, self.sign):
            widget.setEnabled(layer is not None)
        if layer is None:
            self.lambda_.setValue(self.lambda_.minimum())  # shown as "—": no layer, no λ
        elif self._model is not None:
            self.lambda_.setValue(default_lambda(self._model, layer))

    @staticmethod
    def _defaults() -> dict:
        config = PsychometricConfig()
        return {**config.to_dict(), "grid": {"k_values": list(DEFAULT_GRID_K), "signs": [1]}, "view": CURVES_VIEW}

    def settings(self) -> dict:
        return {
            "target": self.target.currentData(),
            "layer": self.layer.currentData(),
            "lambda": self.lambda_.value(),
            "k_values": self.k_values.text(),
            "sign": self.sign.currentData(),
            "gammas": self.gamma_points.value(),
            "seed": self.seed.value(),
            "sigmoid": self.sigmoid.currentData(),
            "guess": self.guess.currentData(),
            "lapse": self.lapse.currentData(),
            "n_boot": self.n_boot.value(),
            "gof_samples": self.gof_samples.value(),
            "grid": {"k_values": self.grid_k_values.text(),
                     "layers": [name for name, box in self._grid_layer_boxes.items() if box.isChecked()],
                     "signs": [sign for sign, box in ((1, self.grid_excite), (-1, self.grid_inhibit))
                               if box.isChecked()]},
            "view": GRID_VIEW if self.views.currentIndex() == 1 else CURVES_VIEW,
        }

    def apply_settings(self, values: dict) -> None:
        """Accepts the panel's own settings and a config's to_dict() (lists for k values and γ)."""
        if "target" in values:
            select_data(self.target, values["target"])
        if "layer" in values:
            select_data(self.layer, values["layer"])  # sets λ to the layer's default
        if values.get("lambda") is not None:
            self.lambda_.setValue(float(values["lambda"]))
        if "k_values" in values:
            k_values = values["k_values"]
            self.k_values.setText(k_values if isinstance(k_values, str) else format_k_values(k_values))
        if "gammas" in values:
            gammas = values["gammas"]
            self.gamma_points.setValue(gammas if isinstance(gammas, int) else len(gammas))
        for key, box in (("seed", self.seed), ("n_boot", self.n_boot), ("gof_samples", self.gof_samples)):
            if key in values:
                box.setValue(int(values[key]))
        for key, combo in (("sign", self.sign), ("sigmoid", self.sigmoid), ("guess", self.guess),
                           ("lapse", self.lapse)):
            if key in values:
                select_data(combo, values[key])
        grid = values.get("grid", {})
        if "k_values" in grid:
            k_values = grid["k_values"]
            self.grid_k_values.setText(k_values if isinstance(k_values, str) else format_k_values(k_values))
        if "layers" in grid:
            for name, box in self._grid_layer_boxes.items():
                box.setChecked(name in grid["layers"])
        if "signs" in grid:
            self.grid_excite.setChecked(1 in grid["signs"])
            self.grid_inhibit.setChecked(-1 in grid["signs"])
        if "view" in values:
            self.views.setCurrentIndex(1 if values["view"] == GRID_VIEW else 0)
        self._settings_edited()

    def _base_config(self) -> PsychometricConfig:
        """The settings both views share; what a restored run fixed and the panel does not edit is kept."""
        kept = self._state.config if self._state is not None else PsychometricConfig()
        return replace(kept, gammas=gamma_grid(self.gamma_points.value()), seed=self.seed.value(),
                       sigmoid=self.sigmoid.currentData(), guess=self.guess.currentData(),
                       lapse=self.lapse.currentData(), n_boot=self.n_boot.value(),
                       gof_samples=self.gof_samples.value(), snapshot_seconds=PsychometricConfig.snapshot_seconds)

    def config(self) -> PsychometricConfig:
        """The curves run the settings describe; ValueError (one line) when they are invalid."""
        if self.target.currentData() is None:
            raise ValueError("no model is loaded")
        layer = self.layer.currentData()
        stimulated = layer is not None
        return replace(self._base_config(), target=self.target.currentData(), layer=layer,
                       lambda_=self.lambda_.value() if stimulated else None,
                       k_values=parse_k_values(self.k_values.text()) if stimulated else (0.0,),
                       sign=self.sign.currentData() if stimulated else 1)

    def new_grid(self, model: LoadedModel) -> PsychometricGridState:
        """The grid the settings describe, nothing measured yet: every class × ticked layer × ticked sign."""
        layers = tuple(name for name, box in self._grid_layer_boxes.items() if box.isChecked())
        signs = tuple(sign for sign, box in ((1, self.grid_excite), (-1, self.grid_inhibit)) if box.isChecked())
        if not layers:
            raise ValueError("tick at least one layer for the small multiples")
        if not signs:
            raise ValueError("tick excite, inhibit or both for the small multiples")
        base = replace(self._base_config(), k_values=parse_k_values(self.grid_k_values.text()), n_boot=0,
                       gof_samples=0)
        return PsychometricGridState(base, tuple(range(model.n_classes)), layers, signs)

    def _settings_edited(self) -> None:
        grid = self.views.currentIndex() == 1
        self._stimulation_box.setVisible(not grid)
        self._grid_box.setVisible(grid)
        self.trials.setText(self._trials_text())
        self.plan_label.setText(self._plan())

    def _trials_text(self) -> str:
        if self._model is None or self._images is None or self.target.currentData() is None:
            return "—"
        if self._snapshot is not None and self._snapshot.target == self.target.currentData():
            count = self._snapshot.n_images
        else:
            count = _count_images(self._images, self._model, self.target.currentData())
        return f"{count} (all test images of the target)"

    def _plan(self) -> str:
        """What Start will do, so continuing, refitting or restarting is never a surprise."""
        try:
            if self.views.currentIndex() == 1:
                return self._grid_plan()
            config = self.config()
        except ValueError as exc:
            return f"Invalid settings: {exc}"
        state = self._state
        cells = f"{len(config.conditions)} curve{'s' if len(config.conditions) > 1 else ''} × {len(config.gammas)} γ"
        if state is None or state.cells_done == 0:
            return f"Start measures {cells} points, then fits each curve."
        if _measurement(state.config, state.lambda_) != _measurement(config, config.lambda_):
            return "Settings differ from the current run: Start begins a new run and replaces its results."
        if _refit_needed(state.config, config):
            return "Only the fit settings changed: Start refits the measured curves without measuring again."
        if state.finished:
            return "The run is complete. Change a setting to start a new one."
        return f"Start continues the run: {state.cells_done} of {state.config.n_cells} points measured."

    def _grid_plan(self) -> str:
        if self._model is None:
            return ""
        wanted, grid = self.new_grid(self._model), self._grid
        if grid is not None and grid.configs == wanted.configs and any(cell is not None for cell in grid.cells):
            if grid.finished:
                return "The grid is complete. Change a setting to run it again."
            return f"Start continues the grid: {grid.plots_done} of {len(grid.cells)} plots done."
        return (f"Start runs {len(wanted.configs)} experiments one after another ({len(wanted.targets)} classes × "
                f"{len(wanted.layers) * len(wanted.signs)} columns), each {len(wanted.base.k_values)} k × "
                f"{len(wanted.base.gammas)} γ.")

    def set_running(self, running: bool) -> None:
        for box in self._locked_during_runs:
            box.setEnabled(not running)
        self.views.tabBar().setEnabled(not running)
        self.plan_label.setText("Running…" if running else self._plan())

    # --- running ---

    def experiment_factory(self, model: LoadedModel, device: str) -> ExperimentFactory:
        if self.views.currentIndex() == 1:
            return self._grid_factory(model, device)
        config = self.config()
        state = self._state
        if state is not None and state.cells_done and (
                _measurement(state.config, state.lambda_) == _measurement(config, config.lambda_)):
            if _refit_needed(state.config, config):
                state = self._state = _refitted(state, config)
            elif state.finished:
                raise ValueError("this run is complete; change a setting to start a new one")
        else:
            state = None

        def build(control: RunControl) -> PsychometricExperiment:
            experiment = PsychometricExperiment(model, config, state=state, device=device, control=control)
            self._state = experiment.state
            return experiment

        return build

    def _grid_factory(self, model: LoadedModel, device: str) -> ExperimentFactory:
        grid = self.new_grid(model)
        if self._grid is not None and self._grid.configs == grid.configs:
            if self._grid.finished:
                raise ValueError("the grid is complete; change a setting to run it again")
            grid = self._grid
        self._grid = grid
        samples_total = self._grid_samples(grid)
        return lambda control: _GridRun(model, grid, samples_total, device, control)

    def _grid_samples(self, grid: PsychometricGridState) -> int:
        return sum(config.n_cells * _count_images(self._images, self._model, config.target) for config in grid.configs)

    def preview_factory(self, model: LoadedModel):
        state, grid = self._state, self._grid
        if state is None and grid is None:
            return None
        samples_total = 0 if grid is None else self._grid_samples(grid)

        def snapshots() -> list:
            # The view restore() shows comes last, so the status bar shows its progress.
            shown = [] if grid is None else [GridProgress.of(grid, samples_total)]
            return shown + ([] if state is None else [state.snapshot()])

        return snapshots

    def session_states(self) -> dict:
        return {kind: state for kind, state in ((KIND, self._state), (GRID_KIND, self._grid)) if state is not None}

    def restore(self, states: dict, model: LoadedModel) -> None:
        """The curves view shows when the session has curves, else the grid's when it has a grid.

        Both views share the γ grid, seed and fit settings; when both are saved, the curves' win.
        """
        if model is not self._model:
            self._model = model
            self._images = load_dataset(PsychometricConfig.dataset)
            self._fill_model_choices(model)
        self._state, self._snapshot = states.get(KIND), None
        self._grid, self._grid_progress = states.get(GRID_KIND), None
        self.plot.clear_curves()
        self.table.setRowCount(0)
        self.grid_plot.clear_grid()
        self.grid_note.clear()
        grid = self._grid
        if grid is not None:
            base = grid.base.to_dict()
            self.apply_settings({**{key: base[key] for key in SHARED_SETTINGS}, "view": GRID_VIEW,
                                 "grid": {"k_values": base["k_values"], "layers": grid.layers, "signs": grid.signs}})
        if self._state is not None:
            state = self._state
            self.apply_settings({**state.config.to_dict(), "lambda": state.lambda_, "view": CURVES_VIEW})
        self._settings_edited()

    # --- drawing ---

    def show_snapshot(self, snapshot: PsychometricSnapshot | GridProgress) -> None:
        if isinstance(snapshot, GridProgress):
            self._grid_progress = snapshot
            self._draw_grid(snapshot)
            return
        self._snapshot = snapshot
        self.plot.show_snapshot(snapshot)
        self._fill_table(snapshot)
        self.trials.setText(self._trials_text())

    def _fill_table(self, snapshot: PsychometricSnapshot) -> None:
        rows = psychometric_table(snapshot)
        self.table.clearSpans()
        self.table.setRowCount(len(rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for row, (texts, color) in enumerate(zip(rows, k_colors(snapshot.k_values))):
            for col, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setForeground(QBrush(color))
                    item.setFont(bold)
                self.table.setItem(row, col, item)
            if snapshot.fits[row] is None:  # its note (no fit: why, or progress) spans the numbers
                self.table.setSpan(row, 1, 1, len(PSYCHOMETRIC_COLUMNS) - 1)
                self.table.item(row, 1).setToolTip(texts[1])

    def _draw_grid(self, progress: GridProgress) -> None:
        self.grid_plot.show_runs(progress.configs, progress.snapshots, self._model.class_names)
        done = sum(s is not None and s.finished for s in progress.snapshots)
        self.grid_note.setText(f"{done} of {len(progress.configs)} plots done · rows: target class · columns: "
                               "stimulated layer and sign, each with its paper λ")

    # --- export ---

    def export_targets(self) -> list[ExportTarget]:
        return [
            ExportTarget("Psychometric curves plot", (".png", ".svg"), lambda path: export_view(self.plot, path)),
            ExportTarget("Fit table: thresholds, widths, intervals, shifts", (".csv",),
                         lambda path: write_records(psychometric_fit_records(self._exported_snapshot()), path)),
            ExportTarget("Curve data: targets / trials per k and γ", (".csv", ".npy"),
                         lambda path: write_records(psychometric_data_records(self._exported_snapshot()), path)),
            ExportTarget("Small multiples plot", (".png", ".svg"), lambda path: export_view(self.grid_plot, path)),
            ExportTarget("Small multiples fit table", (".csv",),
                         lambda path: write_records(self._grid_records(psychometric_fit_records), path)),
            ExportTarget("Small multiples data", (".csv", ".npy"),
                         lambda path: write_records(self._grid_records(psychometric_data_records), path)),
            *super().export_targets(),
        ]

    def _exported_snapshot(self) -> PsychometricSnapshot:
        if self._snapshot is None:
            raise ValueError("nothing to export yet: run the curves or open a session first")
        return self._snapshot

    def _grid_records(self, records_of) -> list[dict]:
        records = [] if self._grid_progress is None else grid_records(self._grid_progress.snapshots, records_of)
        if not records:
            raise ValueError("nothing to export yet: run the small multiples first")
        return records
