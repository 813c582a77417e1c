"""Every run kept (the Runs dock) and runs compared side by side, driven as a user would (offscreen Qt, real
engine thread, tiny runs), plus `wna export --run` and files written before runs had their own dates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QMessageBox

from wna_gui.app import main_window as main_window_module
from wna_gui.app.compare import Maps
from wna_gui.app.main_window import MainWindow
from wna_gui.app.runs_dock import LIST_HEIGHT
from wna_gui.cli import main
from wna_gui.core.classification import (
    KIND,
    ClassificationImageConfig,
    ClassificationImageExperiment,
)
from wna_gui.core.models import load_default
from wna_gui.core.session import Session, load_session, save_session

DATA = Path(__file__).parent / "data"
BUTTONS = QMessageBox.StandardButton
RUN_TIMEOUT_MS = 90_000
SECOND = f"{KIND}-2"
ONE_LINE = 60  # px: the folded Runs list, title bar included


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    replies, asked = {}, []

    def question(parent, title, text, *args, **kwargs):
        asked.append(title)
        return replies.get(title, BUTTONS.Discard)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, data_dir=tmp_path / "appdata")
    window.replies, window.asked = replies, asked
    qtbot.addWidget(window)
    window.show()
    yield window
    window._hold_lock(None)


def panel(window):
    return next(p for p in window.panels if KIND in p.specs)


def run(qtbot, window, signal="run_finished", **values):
    panel(window).forms[KIND].set_values({"batch_size": 500, "estimators": ["hard", "prob"], **values})
    with qtbot.waitSignal(getattr(window.engine, signal), timeout=RUN_TIMEOUT_MS):
        window.start_run()


def saved_runs(qtbot, path: Path, count: int) -> dict:
    """The runs of the file at ``path`` once it holds ``count`` of them (saves run in the engine thread)."""
    qtbot.waitUntil(lambda: path.exists() and len(load_session(path).runs) == count, timeout=20_000)
    return load_session(path).runs


def rows(window) -> dict:
    window.runs_dock.refresh()
    return {row.name: row for row in window.runs_dock.rows()}


def test_save_new_run_and_ctrl_s_keep_both_runs_with_their_own_sample_counts(window, qtbot, tmp_path, monkeypatch):
    path = tmp_path / "kept.h5"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(path), "")))
    run(qtbot, window, samples=2000, seed=7)
    window.save()
    assert saved_runs(qtbot, path, 1)[KIND].samples_done == 2000

    run(qtbot, window, samples=1000, seed=8)  # another seed: a new run, which never replaces the saved one
    assert "Start a new run" not in window.asked
    listed = rows(window)
    assert (listed[KIND].done, listed[SECOND].done) == (2000, 1000)
    assert listed[SECOND].status == "shown" and listed[KIND].status == ""

    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    runs = saved_runs(qtbot, path, 2)
    assert (runs[KIND].samples_done, runs[KIND].config.seed) == (2000, 7)
    assert (runs[SECOND].samples_done, runs[SECOND].config.seed) == (1000, 8)

    # An unsaved run is kept too: a third run adds a third entry and the next save holds all three.
    run(qtbot, window, samples=500, seed=9)
    run(qtbot, window, samples=1500, seed=10)
    window.save()
    runs = saved_runs(qtbot, path, 4)
    assert [runs[name].samples_done for name in (KIND, SECOND, f"{KIND}-3", f"{KIND}-4")] == [2000, 1000, 500, 1500]
    assert all(load_session(path).run_dates[name]["created"] for name in runs)


def test_selecting_a_run_shows_it_in_its_panel_and_continue_resumes_it(window, qtbot):
    run(qtbot, window, samples=1000, seed=7)
    first = panel(window).states[KIND]
    run(qtbot, window, samples=1500, seed=8)
    window.runs_dock.select(KIND)  # a click on its row
    assert panel(window).states[KIND] is first
    qtbot.waitUntil(lambda: panel(window).snapshot is not None and panel(window).snapshot.samples_done == 1000,
                    timeout=20_000)
    np.testing.assert_array_equal(panel(window).snapshot.counts, first.snapshot().counts)
    assert panel(window).forms[KIND].config().seed == 7
    assert rows(window)[KIND].status == "shown" and rows(window)[SECOND].done == 1500

    # "Continue" on a complete run says why not, in one line; on an interrupted run it resumes it.
    window.runs_dock.continue_selected()
    assert "cannot continue" in window.error_dialog.text() and "complete" in window.error_dialog.text()
    window.new_run(KIND)
    panel(window).forms[KIND].set_values({"samples": 1_000_000, "seed": 11})
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.stop_run()
    interrupted = f"{KIND}-3"
    done = rows(window)[interrupted].done
    assert 0 < done < 1_000_000
    window.runs_dock.select(KIND)
    window.runs_dock.select(interrupted)
    with qtbot.waitSignal(window.engine.snapshot, timeout=RUN_TIMEOUT_MS):
        window.runs_dock.continue_selected()
    assert window.running_run() == interrupted and rows(window)[interrupted].status == "running"
    with qtbot.waitSignal(window.engine.run_cancelled, timeout=RUN_TIMEOUT_MS):
        window.stop_run()
    assert rows(window)[interrupted].done > done
    assert set(rows(window)) == {KIND, SECOND, interrupted}


def test_on_a_short_screen_the_runs_list_is_one_line_until_the_user_unfolds_it(window, qtbot, tmp_path):
    """The offscreen screen is 800 px high: the list starts folded, the plots get the height; the user's choice
    outlives the window, View > Reset layout goes back to the screen's default, View > Runs list hides it."""
    dock = window.runs_dock
    window.resize(1024, 700)
    run(qtbot, window, samples=1000, seed=7)
    QApplication.processEvents()
    assert dock.collapsed and not dock.table.isVisible() and dock.buttons["new"].isVisible()
    assert dock.height() <= ONE_LINE
    assert dock.summary.text() == f"1 run in the session · this tab: {KIND!r}, 1,000 / 1,000 samples ✓"
    folded_tabs = window.tabs.height()

    dock.toggle.click()
    qtbot.waitUntil(lambda: dock.height() >= LIST_HEIGHT - 10)
    assert not dock.collapsed and dock.table.isVisible() and dock.buttons["compare"].isVisible()
    assert not dock.summary.isVisible() and dock.table.rowCount() == 1
    assert window.tabs.height() <= folded_tabs - 80, "unfolded, the list takes the plots' height"
    dock.toggle.click()
    qtbot.waitUntil(lambda: dock.height() <= ONE_LINE)
    assert window.tabs.height() == folded_tabs

    dock.toggle.click()  # unfolded when the window closes: unfolded at the next launch, at its height
    qtbot.waitUntil(lambda: dock.height() >= LIST_HEIGHT - 10)
    unfolded = dock.height()
    window.close()
    again = MainWindow(settings=window.store, data_dir=tmp_path / "appdata")
    qtbot.addWidget(again)
    again.show()
    QApplication.processEvents()
    assert not again.runs_dock.collapsed and again.runs_dock.table.isVisible()
    assert abs(again.runs_dock.height() - unfolded) <= 2

    again.commands["reset_layout"].trigger()
    QApplication.processEvents()
    assert again.runs_dock.collapsed and again.runs_dock.height() <= ONE_LINE
    view = again.runs_dock.toggleViewAction()
    view.trigger()
    assert not again.runs_dock.isVisible()
    view.trigger()
    assert again.runs_dock.isVisible() and again.runs_dock.collapsed
    again._hold_lock(None)


def test_on_a_tall_screen_the_runs_list_starts_unfolded(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(main_window_module, "COMPACT_SCREEN_HEIGHT", 400)  # the 800 px offscreen screen is tall
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                        data_dir=tmp_path / "appdata")
    qtbot.addWidget(window)
    window.show()
    QApplication.processEvents()
    assert not window.runs_dock.collapsed and window.runs_dock.table.isVisible()
    assert abs(window.runs_dock.height() - LIST_HEIGHT) <= 2


def test_rename_duplicate_and_delete_from_the_dock(window, qtbot, tmp_path, monkeypatch):
    path = tmp_path / "edited.h5"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(path), "")))
    run(qtbot, window, samples=1000, seed=7)
    run(qtbot, window, samples=1500, seed=8)
    dock = window.runs_dock

    # Rename: the run keeps its results; a name another run holds is refused in one line.
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: ("seed-7", True)))
    dock.select(KIND)
    dock.rename_selected()
    assert set(rows(window)) == {"seed-7", SECOND} and rows(window)["seed-7"].done == 1000
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(lambda *a, **k: (SECOND, True)))
    dock.rename_selected()
    assert "already holds" in window.error_dialog.text() and set(rows(window)) == {"seed-7", SECOND}

    # Duplicate settings: a new run with seed 7's settings measures the same maps again.
    dock.duplicate_selected()
    assert panel(window).states[KIND] is None and panel(window).forms[KIND].config().seed == 7
    with qtbot.waitSignal(window.engine.run_finished, timeout=RUN_TIMEOUT_MS):
        window.start_run()
    listed = rows(window)
    copy = next(name for name in listed if name not in ("seed-7", SECOND))
    session = window.current_session()
    np.testing.assert_array_equal(session.runs[copy].snapshot().counts, session.runs["seed-7"].snapshot().counts)

    # Delete asks first; Cancel keeps the run, Yes removes it, and the file written next holds the rest.
    dock.select(SECOND)
    window.replies["Delete runs"] = BUTTONS.Cancel
    dock.delete_selected()
    assert window.asked[-1] == "Delete runs" and SECOND in rows(window)
    window.replies["Delete runs"] = BUTTONS.Yes
    dock.delete_selected()
    assert set(rows(window)) == {"seed-7", copy}
    window.save()
    runs = saved_runs(qtbot, path, 2)
    assert set(runs) == {"seed-7", copy} and runs["seed-7"].config.seed == 7


def test_compare_shows_two_runs_on_one_scale_and_their_difference(window, qtbot):
    run(qtbot, window, samples=2000, seed=7)
    run(qtbot, window, samples=2000, seed=8)
    compare = window.compare_runs(KIND, SECOND)
    compare.choose("A", KIND, "estimator hard")
    compare.choose("B", SECOND, "estimator hard")
    compare.choose_quantity("maps: z-score")
    a, b, difference = compare.shown
    assert isinstance(a, Maps) and isinstance(difference, Maps)
    runs = window.current_session().runs
    expected_a = runs[KIND].snapshot().maps_of("hard").of("zmap").reshape(a.images.shape)
    expected_b = runs[SECOND].snapshot().maps_of("hard").of("zmap").reshape(b.images.shape)
    np.testing.assert_array_equal(a.images, expected_a)
    np.testing.assert_array_equal(difference.images, expected_a - expected_b)
    # What is on screen: the difference grid's tiles hold A − B, and A and B share one colour scale.
    grid_a, grid_b, grid_difference = compare.grids
    drawn = 0
    for k, tile in enumerate(grid_difference._tiles):
        wanted = expected_a[k] - expected_b[k]
        if np.isnan(wanted).all():  # a class the noise never reached in one of the runs: an empty tile
            assert tile.values is None
        else:
            np.testing.assert_array_equal(tile.values, wanted)
            drawn += 1
    assert drawn >= 3
    assert grid_a.levels == grid_b.levels
    assert f"taken over A and B together: {grid_a.levels[0]:.3g} to {grid_a.levels[1]:.3g}" in compare.caption.text()

    # Two estimators of one run: hard-label against probability-weighted maps.
    compare.choose("B", KIND, "estimator prob")
    compare.choose_quantity("maps: n̄ₖ − n̄ (grand mean)")
    a, b, difference = compare.shown
    hard = runs[KIND].snapshot().maps_of("hard").of("centered")
    prob = runs[KIND].snapshot().maps_of("prob").of("centered")
    np.testing.assert_array_equal(difference.images.reshape(hard.shape), hard - prob)


def test_compare_two_models_robustness_curves_on_shared_axes_with_their_difference(qtbot):
    from wna_gui.app.compare import CompareWindow, Curves
    from wna_gui.core.models import load_zoo
    from wna_gui.core.robustness import RobustnessConfig, RobustnessExperiment

    cnn = load_default()
    mlp = load_zoo("mlp")  # untrained (near chance): its curve differs from the CNN's, which is all this needs
    config = RobustnessConfig(images=40, noise_levels=(0.0, 0.5, 1.0), blur_levels=(0.0, 2.0), fgsm_levels=(0.0, 0.2),
                              ifgsm_levels=(0.0, 0.2), ifgsm_steps=2, repetitions=1, n_boot=0)
    experiment = RobustnessExperiment(cnn, config, device="cpu", models={"mlp": mlp})
    snapshot = experiment.run_to_end()
    window = CompareWindow()
    qtbot.addWidget(window)
    window.compare(Session(cnn, {"robustness": experiment.state}, models={"mlp": mlp}))
    # One run, two models: B defaults to the run's second source.
    assert window.sources["A"].currentData() != window.sources["B"].currentData()
    window.choose("A", "robustness", f"model {snapshot.model_labels[0]}")
    window.choose("B", "robustness", f"model {snapshot.model_labels[1]}")
    noise = snapshot.distortion("noise")
    window.choose_quantity(f"accuracy under {noise.label}")
    a, b, difference = window.shown
    assert isinstance(difference, Curves)
    ((x, y),) = difference.series.values()
    np.testing.assert_array_equal(x, noise.levels)
    np.testing.assert_array_equal(y, noise.accuracy[0] - noise.accuracy[1])
    plot_a, plot_b, _ = window.plots
    np.testing.assert_allclose(plot_a.getViewBox().viewRange()[1], plot_b.getViewBox().viewRange()[1],
                               err_msg="A and B share the y axis")
    low, high = plot_a.getViewBox().viewRange()[1]
    assert low <= min(np.nanmin(a_y) for _, a_y in (*a.series.values(), *b.series.values())) and high >= 0.9


def test_each_run_keeps_its_creation_date_and_is_modified_only_when_it_changes(tmp_path, monkeypatch):
    import wna_gui.core.session as session_module

    clock = iter(f"2026-01-0{day}T10:00:00+00:00" for day in range(1, 10))
    monkeypatch.setattr(session_module, "utc_now", lambda: next(clock))
    model = load_default()
    config = ClassificationImageConfig(samples=1000, batch_size=500, seed=7, estimators=("hard",))
    experiment = ClassificationImageExperiment(model, config, device="cpu")
    experiment.run_to_end()
    path = tmp_path / "dated.h5"
    save_session(Session(model, {KIND: experiment.state}, created="2026-01-01T00:00:00+00:00"), path)  # day 1
    first = load_session(path)
    assert first.run_dates[KIND]["created"] == first.run_dates[KIND]["modified"] == "2026-01-01T10:00:00+00:00"

    other = ClassificationImageExperiment(model, ClassificationImageConfig(samples=500, batch_size=500, seed=8),
                                          device="cpu")
    other.run_to_end()
    first.runs["later"] = other.state
    save_session(first, path)  # day 2: the first run did not change
    second = load_session(path)
    assert second.run_dates[KIND]["modified"] == "2026-01-01T10:00:00+00:00"
    assert second.run_dates["later"]["created"] == "2026-01-02T10:00:00+00:00"

    second.runs[KIND].with_budget(1500)
    ClassificationImageExperiment(model, state=second.runs[KIND], device="cpu").run_to_end()
    save_session(second, path)  # day 3: the first run was extended
    third = load_session(path)
    assert third.run_dates[KIND] | {"mark": ""} == {"created": "2026-01-01T10:00:00+00:00",
                                                   "modified": "2026-01-03T10:00:00+00:00", "mark": ""}
    assert third.run_dates["later"]["modified"] == "2026-01-02T10:00:00+00:00"


def test_export_picks_one_run_and_names_the_runs_of_an_unknown_one(tmp_path, capsys):
    path = tmp_path / "two.h5"
    model = load_default()
    runs = {}
    for name, seed in ((KIND, 7), ("other", 8)):
        config = ClassificationImageConfig(samples=1000, batch_size=500, seed=seed, estimators=("hard",))
        experiment = ClassificationImageExperiment(model, config, device="cpu")
        experiment.run_to_end()
        runs[name] = experiment.state
    save_session(Session(model, runs), path)

    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"{KIND}:" in text and "'other'" in text

    out = tmp_path / "export"
    assert main(["export", str(path), "--out", str(out), "--run", "other", "--width-mm", "85"]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written and all(name.startswith("other/") for name in written)
    assert main(["export", str(path), "--out", str(tmp_path / "all")]) == 0
    whole = sorted(p.relative_to(tmp_path / "all").as_posix() for p in (tmp_path / "all").rglob("*") if p.is_file())
    assert set(written) < set(whole) and any(not name.startswith("other/") for name in whole)

    capsys.readouterr()
    assert main(["export", str(path), "--out", str(out), "--run", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope'" in err and KIND in err and "other" in err


@pytest.mark.parametrize("source", ["written now", "checked in"])
def test_a_session_written_by_the_current_main_opens_and_shows_its_runs(window, qtbot, tmp_path, source):
    if source == "written now":
        path = tmp_path / "now.h5"
        model = load_default()
        runs = {}
        for name, samples in ((KIND, 1200), (SECOND, 800)):
            config = ClassificationImageConfig(samples=samples, batch_size=400, seed=7, estimators=("hard",))
            experiment = ClassificationImageExperiment(model, config, device="cpu")
            experiment.run_to_end()
            runs[name] = experiment.state
        save_session(Session(model, runs), path)
        expected = {KIND, SECOND}
    else:
        path = tmp_path / "old.h5"
        path.write_bytes((DATA / "session-runs.h5").read_bytes())  # the window takes a lock beside the file
        expected = {KIND, SECOND, "template_classifier"}
    window.open_session(path)
    qtbot.waitUntil(lambda: window.session_path == path, timeout=20_000)
    listed = rows(window)
    assert set(listed) == expected and (listed[KIND].done, listed[SECOND].done) == (1200, 800)
    assert listed[KIND].status == "shown" and listed[SECOND].status == ""
    assert all(row.created not in ("", None) for row in listed.values()), "runs show the session's dates at least"
    window.runs_dock.select(SECOND)
    qtbot.waitUntil(lambda: panel(window).snapshot is not None and panel(window).snapshot.samples_done == 800,
                    timeout=20_000)
    # Saved again (migrated): every run keeps its results and gets dates of its own.
    window.dirty = True
    window.save()
    qtbot.waitUntil(lambda: not window.isWindowModified(), timeout=20_000)
    reread = load_session(path)
    assert {name: state.progress_done for name, state in reread.runs.items()} == {
        name: row.done for name, row in listed.items()}
    assert set(reread.run_dates) == expected
