"""A person as the observer (core/human_observer.py, app/human_screen.py), checked with a simulated template
observer that answers through the run screen's real key events."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from wna_gui.app.human_screen import HumanRunScreen
from wna_gui.cli import main
from wna_gui.core.human_observer import (
    HumanObserverConfig,
    HumanObserverState,
    Stimuli,
    TemplateObserver,
    TrialJournal,
    double_pass_agreement_of,
    internal_noise_estimate,
    new_state,
    psychometric_fit,
    staircase_gamma,
    state_from_journal,
)
from wna_gui.core.models import load_default
from wna_gui.core.runtime import Runtime
from wna_gui.core.session import Session, load_session, save_session

FAST = dict(practice=0, iti_ms=0, fixation_ms=0, presentation_ms=0, break_every=0, observer="simulated")


@pytest.fixture(scope="module")
def model():
    return load_default()


def screen_for(qtbot, state, model, journal=None):
    stimuli = Stimuli(state.config, model)
    screen = HumanRunScreen(state, stimuli, Runtime(model, "cpu"), journal)
    qtbot.addWidget(screen)
    screen.resize(400, 300)
    return screen, stimuli


def answer_trials(qtbot, screen, observer, count, shown=None):
    """Press the keys ``observer`` would for ``count`` trials (Space first, from the instructions)."""
    if screen.phase == "instructions":
        qtbot.keyClick(screen, Qt.Key.Key_Space)
    for _ in range(count):
        assert screen.waiting_for_answer
        if shown is not None:
            shown.append(screen.trial)
        qtbot.keyClick(screen, screen.key_for(observer.respond(screen.trial)))


def test_template_observer_through_the_run_screen_gives_the_theoretical_image_and_double_pass(qtbot, model):
    internal, trials, repeats = 1.0, 2000, 400
    config = HumanObserverConfig(task="2ifc", gamma=0.5, trials=trials, double_pass=repeats,
                                 internal_noise=internal, smoothing=0.0, **FAST)
    state = new_state(model, config)
    screen, stimuli = screen_for(qtbot, state, model)
    answer_trials(qtbot, screen, TemplateObserver(stimuli), trials + repeats)
    assert state.finished and screen.phase == "done"
    snapshot = state.snapshot()
    template = stimuli.templates[0]
    image = snapshot.human.images[0]
    cos = image @ template / (np.linalg.norm(image) * np.linalg.norm(template))
    # A linear observer's 2IFC image is E = σ·√(2/π)/√(1 + k²)·t̂ plus noise of variance σ² per pixel over N trials.
    theory = 1 / math.sqrt(1 + math.pi * (1 + internal**2) * template.size / (2 * trials))
    assert abs(cos - theory) < 0.1, (cos, theory)
    # Double pass: agreement 1/2 + arcsin(1/(1 + k²))/π for this observer, and k recovered from it.
    dp = snapshot.double_pass
    assert dp.pairs == repeats
    assert abs(dp.agreement - double_pass_agreement_of(internal)) < 0.07
    assert 0.5 < dp.internal_noise < 1.8
    assert (snapshot.trials["network_answer"] >= 0).all(), "every network answer is computed by the end"


def test_a_session_stopped_after_trial_137_resumes_with_the_trial_an_uninterrupted_run_shows(qtbot, model, tmp_path):
    config = HumanObserverConfig(task="yes-no", procedure="staircase", gamma=0.4, trials=150, double_pass=0,
                                 **FAST)
    whole = new_state(model, config)
    screen, stimuli = screen_for(qtbot, whole, model)
    observer = TemplateObserver(stimuli)
    answer_trials(qtbot, screen, observer, 137)
    uninterrupted = screen.trial  # trial 138 as an uninterrupted run shows it

    first = new_state(model, config)
    screen, _ = screen_for(qtbot, first, model)
    shown = []
    answer_trials(qtbot, screen, observer, 137, shown)
    screen.close()  # stop: what is measured goes into the session
    path = save_session(Session(model, {"human_observer": first}), tmp_path / "s.h5")
    resumed = load_session(path).runs["human_observer"]
    assert resumed.trials_done == 137
    screen, _ = screen_for(qtbot, resumed, model)
    qtbot.keyClick(screen, Qt.Key.Key_Space)
    trial = screen.trial
    assert trial.index == 137 and trial.gamma == uninterrupted.gamma and trial.noise_index == 137
    np.testing.assert_array_equal(trial.stimuli, uninterrupted.stimuli)
    assert len(set(first.trials["gamma"])) > 3, "the staircase moved γ"

    # Every trial is regenerated from its record as shown, and the stored network answers are the network's
    # answers to those stimuli: the model itself, run directly on the regenerated stimuli.
    regenerated = [stimuli.recorded(resumed, t).stimuli for t in range(len(shown))]
    for seen, again in zip(shown, regenerated):
        np.testing.assert_array_equal(again, seen.stimuli)
    with torch.inference_mode():
        logits = model.pixel_model(torch.from_numpy(np.concatenate(regenerated))).numpy()
    first_class, second_class = stimuli.pair
    direct = np.where(logits[:, second_class] > logits[:, first_class], second_class, first_class)
    np.testing.assert_array_equal(resumed.trials["network_answer"], direct)


def test_a_crash_mid_trial_loses_at_most_that_trial(qtbot, model, tmp_path):
    config = HumanObserverConfig(task="n-way", gamma=0.2, trials=40, double_pass=10, **FAST)
    state = new_state(model, config)
    journal_file = tmp_path / "P01.trials.jsonl"
    screen, stimuli = screen_for(qtbot, state, model, TrialJournal(journal_file, state))
    answer_trials(qtbot, screen, TemplateObserver(stimuli), 23)
    on_screen = screen.trial  # the app dies now, before this one is answered: nothing is saved on the way out
    recovered = state_from_journal(journal_file)
    assert recovered.trials_done == 23
    assert recovered.trials["response"] == state.trials["response"]
    np.testing.assert_array_equal(recovered.next_trial(stimuli).stimuli, on_screen.stimuli)
    # A line cut by the crash mid-write is that trial, lost; the rest stands.
    journal_file.write_text(journal_file.read_text() + '{"noise_index": 23, "repe')
    assert state_from_journal(journal_file).trials_done == 23


def test_esc_pauses_without_losing_the_trial_on_screen(qtbot, model):
    config = HumanObserverConfig(task="2ifc", trials=5, double_pass=0, **FAST)
    state = new_state(model, config)
    screen, stimuli = screen_for(qtbot, state, model)
    observer = TemplateObserver(stimuli)
    answer_trials(qtbot, screen, observer, 2)
    before = screen.trial
    qtbot.keyClick(screen, Qt.Key.Key_Escape)
    assert screen.phase == "paused" and not screen.waiting_for_answer
    qtbot.keyClick(screen, Qt.Key.Key_Left)  # ignored while paused
    assert state.trials_done == 2
    qtbot.keyClick(screen, Qt.Key.Key_Space)
    assert screen.trial is before and screen.waiting_for_answer
    answer_trials(qtbot, screen, observer, 3)
    assert state.finished


def test_the_staircase_holds_the_target_accuracy_of_a_known_psychometric_function():
    config = HumanObserverConfig(task="yes-no", procedure="staircase", gamma=0.6, target=0.75, step=0.02,
                                 trials=3000, double_pass=0)
    threshold, width = 0.3, 0.05  # ψ(γ) = 0.5 + 0.5·logistic((γ − θ)/w): 75% at γ = θ
    rng = np.random.default_rng(4)
    gammas, correct = [], []
    for _ in range(config.trials):
        gamma = staircase_gamma(config, gammas, correct)
        p = 0.5 + 0.5 / (1 + math.exp(-(gamma - threshold) / width))
        gammas.append(gamma)
        correct.append(bool(rng.random() < p))
    settled = np.asarray(correct[500:])
    assert abs(settled.mean() - 0.75) < 0.03
    trials = {"gamma": np.asarray(gammas), "repeat_of": np.full(len(gammas), -1)}
    fit = psychometric_fit(trials, np.asarray(correct, dtype=np.int64), config, 10)
    assert abs(fit["gamma_at_target"] - threshold) < 0.03


def test_internal_noise_is_recovered_from_double_pass_agreement():
    for k in (0.5, 1.0, 2.0):
        for accuracy in (0.5, 0.8):
            from statistics import NormalDist

            mu = NormalDist().inv_cdf(accuracy) * math.sqrt(1 + k**2)
            agreement = double_pass_agreement_of(k, NormalDist().cdf(mu / math.sqrt(1 + k**2)))
            assert internal_noise_estimate(agreement, accuracy) == pytest.approx(k, rel=1e-3)


def test_wna_runs_no_person_but_reanalyses_and_exports_a_session(model, tmp_path, capsys):
    assert main(["run", "human-observer", "--out", str(tmp_path / "p.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "in the app" in err
    out = tmp_path / "s.h5"
    assert main(["run", "human-observer", "--observer", "simulated", "--task", "2ifc", "--trials", "60",
                 "--double-pass", "20", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "double pass" in capsys.readouterr().out
    assert main(["export", str(out), "--out", str(tmp_path / "x")]) == 0
    rows = (tmp_path / "x" / "human_trials.csv").read_text().splitlines()
    assert len(rows) == 81 and rows[0].startswith("participant,task,trials.thisN")


def test_a_damaged_record_is_refused_in_one_line(model):
    state = HumanObserverState.from_record(*replace(new_state(model, HumanObserverConfig(
        observer="simulated", trials=5, double_pass=0))).to_record())
    meta, arrays = state.to_record()
    arrays = dict(arrays, **{"trials/response": np.array([99])})
    with pytest.raises(ValueError, match="trials/response"):
        HumanObserverState.from_record({**meta, "trials_done": 1}, {
            **arrays, **{f"trials/{n}": np.zeros(1, dtype=np.int64) for n in ("noise_index", "signal_image", "order",
                                                                              "network_answer", "signal_class")},
            "trials/repeat_of": np.array([-1]), "trials/gamma": np.array([0.3]), "trials/rt_ms": np.array([500.0])})


def test_the_panel_runs_a_person_in_the_run_screen_and_shows_them_beside_the_network(qtbot, model, tmp_path):
    from wna_gui.app.panels import build_panels

    (panel,) = [p for p in build_panels() if p.name == "human_observer"]
    qtbot.addWidget(panel)
    panel.restore({}, model)
    panel.journal_dir = tmp_path
    panel.forms["human_observer"].set_values({**FAST, "observer": "person", "task": "yes-no", "trials": 30,
                                              "double_pass": 10, "participant": "S07"})
    assert panel.start_in_panel(model, "cpu")
    screen = panel.screen_window
    qtbot.addWidget(screen)
    answer_trials(qtbot, screen, TemplateObserver(screen.stimuli), 12)
    assert len(panel.track_line.getData()[0]) == 12, "the γ track follows the session live"
    screen.close()  # the person stops; the session keeps the 12 answers
    state = panel.states["human_observer"]
    assert state.trials_done == 12 and not panel.running_kind
    assert "S07" in panel.report_label.text() or "12 yes-no trials" in panel.report_label.text()
    assert state_from_journal(tmp_path / "S07-yes-no-seed0.trials.jsonl").trials["response"] == \
        state.trials["response"]
    # Start again continues the same person at trial 13.
    assert panel.start_in_panel(model, "cpu")
    qtbot.addWidget(panel.screen_window)
    qtbot.keyClick(panel.screen_window, Qt.Key.Key_Space)
    assert panel.screen_window.trial.index == 12


def test_practice_with_feedback_breaks_and_a_fixed_presentation_time(qtbot, model):
    config = HumanObserverConfig(task="yes-no", gamma=0.6, trials=6, double_pass=0, practice=2, break_every=3,
                                 presentation_ms=60, fixation_ms=0, iti_ms=0, observer="simulated")
    state = new_state(model, config)
    screen, stimuli = screen_for(qtbot, state, model)
    observer = TemplateObserver(stimuli)
    qtbot.keyClick(screen, Qt.Key.Key_Space)
    for _ in range(2):  # practice: feedback, nothing recorded
        assert screen.trial.practice
        qtbot.keyClick(screen, screen.key_for(observer.respond(screen.trial)))
        assert screen.phase == "feedback" and screen.message.startswith(("Correct", "Wrong"))
        qtbot.waitUntil(lambda: screen.phase in ("stimulus", "blank", "practice_done"), timeout=3000)
    assert screen.phase == "practice_done" and state.trials_done == 0
    qtbot.keyClick(screen, Qt.Key.Key_Space)
    assert not screen.trial.practice and screen.phase == "stimulus"
    qtbot.waitUntil(lambda: screen.phase == "blank", timeout=3000)  # the stimulus went after 60 ms
    assert screen.waiting_for_answer  # and the answer is still taken
    for _ in range(3):
        qtbot.waitUntil(lambda: screen.waiting_for_answer, timeout=3000)
        qtbot.keyClick(screen, screen.key_for(observer.respond(screen.trial)))
    assert screen.phase == "break" and "3 of 6" in screen.message
    qtbot.keyClick(screen, Qt.Key.Key_Space)
    for _ in range(3):
        qtbot.waitUntil(lambda: screen.waiting_for_answer, timeout=3000)
        qtbot.keyClick(screen, screen.key_for(observer.respond(screen.trial)))
    assert state.finished and screen.phase == "done"
    assert all(rt > 0 for rt in state.trials["rt_ms"])
