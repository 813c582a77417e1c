"""Psychometric curves and microstimulation, the paper's §3.4 (Figs. 9, 23–25).

Settings on the left; two views on the right. "Curves": one target class and
one stimulated layer, the fraction of stimuli t = γ·s + (1 − γ)·n classified as
the target against γ, one colour per k, fitted ψ and a table of thresholds and
shifts. "Small multiples": every class × layer (× sign), Fig. 23 style. Start
runs the view on top. The engine's PsychometricExperiment does all the work;
the grid runs one per cell, one after another, through the same engine thread.
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
    QSpinBox,
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
    GUESS_MODES,
    KIND,
    LAPSE_MODES,
    PsychometricConfig,
    PsychometricExperiment,
    PsychometricSnapshot,
    PsychometricState,
    default_lambda,
    small_multiples_configs,
    stimulable_layers,
)
from ...core.psyfit import SIGMOIDS
from ..plots import export_view
from ..psychometric_plots import PsychometricPlot, SmallMultiplesPlot, k_colors
from .base import ExperimentFactory, ExportTarget, Panel

UNSTIMULATED = "none (unstimulated)"
CURVES_VIEW, GRID_VIEW = "curves", "grid"
GUESS_LABELS = {"free": "free (fitted in [0, 0.5])", "chance": "chance (1/K)"}
LAPSE_LABELS = {"bounded": "bounded [0, 0.06]", "free": "free [0, 0.5]"}
GUESS_HELP = ("A network need not guess at 1/K on noise: the bundled CNN calls most pure noise an 8, so most of "
              "its curves start near 0. A free guess rate fits that floor; chance fixes it at 1/K.")
DEFAULT_GRID_K = (0.0, 5.0, 10.0)
TABLE_NOTE = ("Threshold: γ where the sigmoid is halfway; width: γ span from 5% to 95% of it; 95% intervals "
              "bootstrap the images. A threshold outside the γ range is an extrapolation and is not given as a "
              "number; neither are shifts that involve one.")


def _count_images(images: ImageSet, model: LoadedModel, target: int) -> int:
    """How many images of the model's class ``target`` the data set holds (0 when it lacks the class)."""
    name = model.class_names[target]
    if name not in images.class_names:
        return 0
    return int((images.labels == images.class_names.index(name)).sum())


def _rates(done: int, total: int, seconds: float) -> tuple[int, int, float, float | None]:
    rate = done / seconds if seconds > 0 else 0.0
    return done, total, rate, ((total - done) / rate if rate > 0 else None)


@dataclass(frozen=True)
class CurvesProgress:
    """One experiment's snapshot, plus the progress the window's status bar reads (samples = stimuli)."""

    curves: PsychometricSnapshot
    samples_done: int
    samples_total: int
    samples_per_second: float
    eta_seconds: float | None

    @classmethod
    def of(cls, snapshot: PsychometricSnapshot) -> "CurvesProgress":
        return cls(snapshot, *_rates(snapshot.cells_done * snapshot.n_images,
                                     snapshot.cells_total * snapshot.n_images, snapshot.seconds))


@dataclass(frozen=True)
class GridProgress:
    """The small-multiples grid: per config, its latest snapshot (None until its turn comes)."""

    configs: tuple[PsychometricConfig, ...]
    snapshots: tuple[PsychometricSnapshot | None, ...]
    samples_done: int
    samples_total: int
    samples_per_second: float
    eta_seconds: float | None



class _CurvesRun:
    """One experiment, with snapshots wrapped for the window."""

    def __init__(self, experiment: PsychometricExperiment) -> None:
        self.experiment = experiment

    def run(self):
        for snapshot in self.experiment.run():
            yield CurvesProgress.of(snapshot)

    def snapshot(self) -> CurvesProgress:
        return CurvesProgress.of(self.experiment.snapshot())


class _GridRun:
    """The grid's experiments one after another. Kept by the panel, so Start after Stop continues it."""

    def __init__(self, model: LoadedModel, configs: tuple[PsychometricConfig, ...], device: str) -> None:
        self.model, self.configs, self.device = model, configs, device
        self.control = RunControl()
        self.states: list[PsychometricState | None] = [None] * len(configs)
        self.snapshots: list[PsychometricSnapshot | None] = [None] * len(configs)
        self._experiment: PsychometricExperiment | None = None
        self._current = 0
        self._images: ImageSet | None = None
        self._totals = [0] * len(configs)

    def with_control(self, control: RunControl) -> "_GridRun":
        self.control = control
        return self

    @property
    def finished(self) -> bool:
        return all(s is not None and s.finished for s in self.snapshots)

    def run(self):
        if self._images is None:  # loaded once for all cells, in the engine thread
            self._images = load_dataset(self.configs[0].dataset)
            self._totals = [c.n_cells * _count_images(self._images, self.model, c.target) for c in self.configs]
        for index, config in enumerate(self.configs):
            if self.snapshots[index] is not None and self.snapshots[index].finished:
                continue
            self._current = index
            self._experiment = PsychometricExperiment(self.model, config, state=self.states[index],
                                                      images=self._images, device=self.device, control=self.control)
            self.states[index] = self._experiment.state
            for snapshot in self._experiment.run():
                self.snapshots[index] = snapshot
                yield self._progress()
        self._experiment = None

    def snapshot(self) -> GridProgress:
        if self._experiment is not None:  # a stopped cell has moved on since its last yield
            self.snapshots[self._current] = self._experiment.snapshot()
        return self._progress()

    def _progress(self) -> GridProgress:
        done = sum(s.cells_done * s.n_images for s in self.snapshots if s is not None)
        seconds = sum(s.seconds for s in self.snapshots if s is not None)
        return GridProgress(self.configs, tuple(self.snapshots), *_rates(done, sum(self._totals), seconds))


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


def _int_spin(low: int, high: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    return box


def _combo(items: dict) -> QComboBox:
    combo = QComboBox()
    for data, label in items.items():
        combo.addItem(label, data)
    return combo


def _select(combo: QComboBox, data) -> None:
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)


class PsychometricPanel(Panel):
    kind = KIND
    title = "Psychometric curves"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model: LoadedModel | None = None
        self._images: ImageSet | None = None  # to count the target's images before a run
        self._state: PsychometricState | None = None
        self._snapshot: PsychometricSnapshot | None = None
        self._grid_run: _GridRun | None = None
        self._grid_progress: GridProgress | None = None
        self._build_settings()

        self.plot = PsychometricPlot()
        self.table = QTableWidget(0, len(PSYCHOMETRIC_COLUMNS))
        self.table.setObjectName("fit_table")
        self.table.setHorizontalHeaderLabels(list(PSYCHOMETRIC_COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
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
        self.lambda_.setToolTip("b ← b ± λ·k·ā for each map of the layer; set to the paper's λ for the layer "
                                "type (0.01 fully connected, 0.1 first conv, 1 deeper conv) when the layer changes")
        self.k_values = QLineEdit()
        self.k_values.setToolTip("Stimulation levels: 0:10, 0:10:2 or 0, 1, 2, 5. k = 0 is the reference curve.")
        self.sign = _combo({1: "excite (raise biases)", -1: "inhibit (lower biases)"})
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

        self.gamma_points = _int_spin(2, 201)
        self.gamma_points.setToolTip("Signal fractions γ evenly spaced from 0 (pure noise) to 1 (clean image)")
        self.trials = QLabel()
        self.trials.setObjectName("trials_label")
        self.trials.setWordWrap(True)
        self.trials.setToolTip("Every test image of the target is shown once per (k, γ) point, each time with "
                               "fresh noise; the number of images is set by the data.")
        self.seed = _int_spin(0, 2**31 - 1)
        run = QGroupBox("Stimulus")
        form = QFormLayout(run)
        form.addRow("γ points in [0, 1]", self.gamma_points)
        form.addRow("Trials per point", self.trials)
        form.addRow("Seed", self.seed)

        self.sigmoid = _combo({name: name for name in SIGMOIDS})
        self.guess = _combo({mode: GUESS_LABELS[mode] for mode in GUESS_MODES})
        self.guess.setToolTip(GUESS_HELP)
        self.lapse = _combo({mode: LAPSE_LABELS[mode] for mode in LAPSE_MODES})
        self.n_boot = _int_spin(0, 100_000, 50)
        self.n_boot.setToolTip("Bootstrap resamples of the images, for the 95% intervals (0: none)")
        self.gof_samples = _int_spin(0, 100_000, 50)
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
        if layer is not None and self._model is not None:
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
            _select(self.target, values["target"])
        if "layer" in values:
            _select(self.layer, values["layer"])  # sets λ to the layer's default
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
                _select(combo, values[key])
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

    def grid_columns(self) -> list[tuple[str, int]]:
        layers = [name for name, box in self._grid_layer_boxes.items() if box.isChecked()]
        signs = [sign for sign, box in ((1, self.grid_excite), (-1, self.grid_inhibit)) if box.isChecked()]
        if not layers:
            raise ValueError("tick at least one layer for the small multiples")
        if not signs:
            raise ValueError("tick excite, inhibit or both for the small multiples")
        return [(layer, sign) for sign in signs for layer in layers]

    def grid_configs(self, model: LoadedModel) -> tuple[PsychometricConfig, ...]:
        """One config per class × layer × sign (sign-major), digit-major within a sign, as in Fig. 23."""
        columns = self.grid_columns()
        layers = list(dict.fromkeys(layer for layer, _ in columns))
        base = replace(self._base_config(), k_values=parse_k_values(self.grid_k_values.text()), n_boot=0,
                       gof_samples=0)
        signs = list(dict.fromkeys(sign for _, sign in columns))
        return tuple(config for sign in signs for config in
                     small_multiples_configs(replace(base, sign=sign), range(model.n_classes), layers))

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
        configs = self.grid_configs(self._model) if self._model is not None else ()
        run = self._grid_run
        columns = len(self.grid_columns())
        if run is not None and run.configs == configs and any(s is not None for s in run.snapshots):
            finished = sum(s is not None and s.finished for s in run.snapshots)
            if finished == len(configs):
                return "The grid is complete. Change a setting to run it again."
            return f"Start continues the grid: {finished} of {len(configs)} plots done."
        return (f"Start runs {len(configs)} experiments one after another ({len(configs) // max(columns, 1)} "
                f"classes × {columns} columns), each {len(configs[0].k_values) if configs else 0} k × "
                f"{len(configs[0].gammas) if configs else 0} γ.")

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

        def build(control: RunControl) -> _CurvesRun:
            experiment = PsychometricExperiment(model, config, state=state, device=device, control=control)
            self._state = experiment.state
            return _CurvesRun(experiment)

        return build

    def _grid_factory(self, model: LoadedModel, device: str) -> ExperimentFactory:
        configs = self.grid_configs(model)
        run = self._grid_run
        if run is None or run.configs != configs or run.model is not model or run.device != device:
            run = self._grid_run = _GridRun(model, configs, device)
        elif run.finished:
            raise ValueError("the grid is complete; change a setting to run it again")
        return run.with_control

    def preview_factory(self, model: LoadedModel):
        state = self._state
        if state is None:
            return None
        # Noise is never drawn for a preview, but the engine checks the device matches the stored noise.
        return lambda: CurvesProgress.of(
            PsychometricExperiment(model, state=state, device=state.noise_device or "cpu").snapshot())

    def session_state(self) -> PsychometricState | None:
        return self._state

    def restore(self, state: PsychometricState | None, model: LoadedModel) -> None:
        if model is not self._model:
            self._model = model
            self._images = load_dataset(PsychometricConfig.dataset)
            self._fill_model_choices(model)
        self._state, self._snapshot = state, None
        self._grid_run, self._grid_progress = None, None
        self.plot.clear_curves()
        self.table.setRowCount(0)
        self.grid_plot.clear_grid()
        self.grid_note.clear()
        if state is not None:
            self.apply_settings({**state.config.to_dict(), "lambda": state.lambda_, "view": CURVES_VIEW})
        self._settings_edited()

    # --- drawing ---

    def show_snapshot(self, progress: CurvesProgress | GridProgress) -> None:
        if isinstance(progress, GridProgress):
            self._grid_progress = progress
            self._draw_grid(progress)
            return
        self._snapshot = progress.curves
        self.plot.show_snapshot(progress.curves)
        self._fill_table(progress.curves)
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
        model = self._model
        columns = list(dict.fromkeys((c.layer, c.sign) for c in progress.configs))
        snapshots = {(config.target, columns.index((config.layer, config.sign))): snapshot
                     for config, snapshot in zip(progress.configs, progress.snapshots)}
        rows = sorted({config.target for config in progress.configs})
        names = [model.class_names[target] for target in rows]
        column_names = [f"{layer} · {'excite' if sign > 0 else 'inhibit'}" for layer, sign in columns]
        self.grid_plot.show_grid(names, column_names, progress.configs[0].k_values,
                                 {(rows.index(target), col): s for (target, col), s in snapshots.items()})
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
        snapshots = [] if self._grid_progress is None else [s for s in self._grid_progress.snapshots if s is not None]
        if not snapshots:
            raise ValueError("nothing to export yet: run the small multiples first")
        return [record for snapshot in snapshots for record in records_of(snapshot)]
