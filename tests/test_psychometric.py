"""Psychometric curves and microstimulation on the bundled CNN and a trained binary CNN (real torch, no mocks)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from wna_gui.core.control import Cancelled, EngineError, RunControl
from wna_gui.core.data import bundled_mnist
from wna_gui.core.models import MNIST_CLASSES, InputSpec, LoadedModel, load_default
from scipy.stats import spearmanr

from wna_gui.core.psychometric import (
    PsychometricConfig,
    PsychometricExperiment,
    PsychometricState,
    condition_key,
    default_lambda,
    noise_block,
)
from wna_gui.core.psyfit import FLOOR_ABOVE, NOTE
from wna_gui.core.psychometric_grid import KIND as GRID_KIND
from wna_gui.core.psychometric_grid import (
    PsychometricGridConfig,
    PsychometricGridExperiment,
    PsychometricGridState,
    small_multiples_configs,
)
from wna_gui.core.session import Session, load_session, save_session
from wna_gui.core.train import evaluate, train_binary_cnn

# A coarse γ grid keeps the ten-digit runs to seconds; the curves still span noise to signal.
COARSE_GAMMAS = tuple(np.round(np.linspace(0, 1, 11), 2))
# The bundled CNN calls most pure noise an 8 (then 3): its 8 curve starts above 50%.
NOISE_MAGNET = 8


@pytest.fixture(scope="module")
def model():
    return load_default()


@pytest.fixture(scope="module")
def heldout():
    return bundled_mnist("heldout")


@pytest.fixture(scope="module")
def fc1_runs(model, heldout):
    """Per sign (+1 excite, −1 inhibit), per digit: the finished experiment with k = 0 and k = 10 on fc1."""
    runs = {}
    for sign in (1, -1):
        for digit in range(10):
            config = PsychometricConfig(target=digit, layer="fc1", k_values=(0, 10), sign=sign,
                                        gammas=COARSE_GAMMAS, n_boot=0, gof_samples=0)
            experiment = PsychometricExperiment(model, config, images=heldout)
            runs[sign, digit] = (experiment, experiment.run_to_end())
    return runs


@pytest.mark.slow
def test_unstimulated_curve_rises_from_noise_to_clean_accuracy(model, heldout, fc1_runs):
    for digit in range(10):
        experiment, snapshot = fc1_runs[1, digit]
        curve = snapshot.fraction_correct[0]
        images = heldout.of_class(digit)
        # γ = 1 is the clean digit: exactly the model's accuracy on these images.
        accuracy = evaluate(model.pixel_model, images, torch.full((len(images),), digit))
        assert curve[-1] == accuracy
        # γ = 0 is pure noise: exactly the share of this cell's noise the model calls the target.
        with torch.inference_mode():
            noise_labels = model.pixel_model(experiment.stimuli(0).cpu()).argmax(1)
        assert snapshot.n_correct[0, 0] == int((noise_labels == digit).sum())
        if digit != NOISE_MAGNET:
            assert curve[0] <= 0.2, f"digit {digit}: {curve[0]:.2f} of pure noise called {digit}"
            assert snapshot.thresholds_in_range[0]
        assert curve[-1] > 0.9 and curve[-1] > curve[0]
        # Every image got exactly one answer per cell, and the target's column is the correct count.
        assert np.all(snapshot.responses.sum(2) == snapshot.n_images)
        np.testing.assert_array_equal(snapshot.responses[..., digit], snapshot.n_correct)
        np.testing.assert_array_equal(snapshot.trials, np.full((2, len(COARSE_GAMMAS)), len(images)))


@pytest.mark.slow
def test_fc1_excitation_lowers_thresholds_and_inhibition_raises_them(fc1_runs):
    for digit in range(10):
        excite, inhibit = fc1_runs[1, digit][1], fc1_runs[-1, digit][1]
        # Same seed and k = 0 condition: the reference curves are the same measurement.
        np.testing.assert_array_equal(excite.fraction_correct[0], inhibit.fraction_correct[0])
        if excite.thresholds_in_range[0]:
            assert excite.threshold_shifts[1] < 0, f"digit {digit}: excite shift {excite.threshold_shifts[1]:+.3f}"
            assert inhibit.threshold_shifts[1] > 0, f"digit {digit}: inhibit shift {inhibit.threshold_shifts[1]:+.3f}"
        else:
            # The 8's threshold lies below γ = 0, where no data constrain it; the curve still moves.
            assert digit == NOISE_MAGNET
            assert excite.fraction_correct[1].mean() > excite.fraction_correct[0].mean()
            assert inhibit.fraction_correct[1].mean() < inhibit.fraction_correct[0].mean()
        assert excite.fits[1] is not None and inhibit.fits[1] is not None


@pytest.mark.slow
def test_stimulation_leaves_the_loaded_model_bit_identical(model, fc1_runs):
    reference = load_default()
    experiments = [PsychometricExperiment(model, PsychometricConfig(target=3, layer=layer, k_values=(0, 10),
                                                                    gammas=(0.0, 0.5, 1.0), n_boot=0, gof_samples=0))
                   for layer in ("conv1", "conv2")]
    for experiment in experiments:
        experiment.run_to_end()
    assert model.weights_sha256() == reference.weights_sha256()
    for (name, p), (_, q) in zip(model.net.named_parameters(), reference.net.named_parameters(), strict=True):
        assert torch.equal(p, q), name
    # The stimulated copy did change: its conv biases carry λ·k·ā of the last condition.
    for experiment, expected_lambda in zip(experiments, (0.1, 1.0)):
        assert experiment.state.lambda_ == expected_lambda == default_lambda(model, experiment.config.layer)
        assert experiment.state.mean_activation.max() == pytest.approx(1.0)  # conv maps normalised
        original = dict(model.net.named_parameters())[f"{experiment.config.layer}.bias"].detach()
        stimulated = experiment._stimulated.bias.cpu()
        np.testing.assert_allclose(stimulated - original, experiment.bias_offset(1), rtol=1e-5, atol=1e-6)
    assert default_lambda(model, "fc1") == 0.01


def test_resumed_run_equals_uninterrupted_run(model, heldout, tmp_path):
    config = PsychometricConfig(target=2, layer="fc1", k_values=(0, 5, 10), gammas=(0, 0.2, 0.4, 0.6, 0.8, 1.0),
                                n_boot=20, gof_samples=20, batch_size=300, snapshot_seconds=0)
    whole_run = PsychometricExperiment(model, config, images=heldout)
    whole = whole_run.run_to_end()

    control = RunControl()
    interrupted = PsychometricExperiment(model, config, images=heldout, control=control)
    run = interrupted.run()
    first = next(run)
    assert 0 < first.cells_done < config.n_cells and np.isnan(first.fraction_correct).any()
    # A sample is one stimulus: one image in one (k, γ) cell.
    assert (first.samples_done, first.samples_total) == (first.cells_done * first.n_images,
                                                         config.n_cells * first.n_images)
    assert first.samples_per_second > 0 and first.eta_seconds > 0
    second = next(run)  # the first condition's curve is complete and fitted by now
    assert second.conditions_done == 1 and second.fits[0] is not None and second.fits[1] is None
    control.cancel()
    with pytest.raises(Cancelled):
        next(run)
    save_session(Session(model=model, runs={"psychometric": interrupted.state}), tmp_path / "half.wna.h5")
    state = load_session(tmp_path / "half.wna.h5").runs["psychometric"]
    assert state.cells_done == second.cells_done

    resumed = PsychometricExperiment(model, state=state, images=heldout).run_to_end()
    assert resumed.finished and whole.finished
    np.testing.assert_array_equal(resumed.fraction_correct, whole.fraction_correct)
    np.testing.assert_array_equal(resumed.responses, whole.responses)
    np.testing.assert_array_equal(state.correct, whole_run.state.correct)
    assert [f.to_dict() for f in resumed.fits] == [f.to_dict() for f in whole.fits]
    np.testing.assert_array_equal(resumed.threshold_shifts, whole.threshold_shifts)
    np.testing.assert_array_equal(resumed.shift_intervals, whole.shift_intervals)
    assert np.all(np.isfinite(whole.shift_intervals[1:]))

    reseeded = PsychometricExperiment(model, replace(config, seed=1), images=heldout)
    reseeded.run_unit((0, [2]))
    assert not np.array_equal(reseeded.state.correct[0, :, 2], state.correct[0, :, 2])


@pytest.fixture(scope="module")
def binary_model():
    return train_binary_cnn((1, 3), epochs=3)


def test_binary_cnn_end_to_end_with_chance_at_one_half(binary_model, heldout, tmp_path):
    assert binary_model.n_classes == 2 and binary_model.class_names == ("1", "3")
    config = PsychometricConfig(target=0, layer="fc1", k_values=(0, 10), gammas=COARSE_GAMMAS, guess="chance",
                                n_boot=30, gof_samples=30)
    # The ten-class held-out set is relabelled to the model's two classes by name.
    experiment = PsychometricExperiment(binary_model, config, images=heldout)
    snapshot = experiment.run_to_end()
    ones = heldout.of_class(1)
    assert snapshot.n_images == len(ones) and snapshot.target_name == "1"
    assert snapshot.fraction_correct[0, -1] == evaluate(binary_model.pixel_model, ones, torch.zeros(len(ones)))
    assert snapshot.finished and all(fit is not None for fit in snapshot.fits)
    assert all(fit.guess == 0.5 and 0 <= fit.lapse <= 0.06 for fit in snapshot.fits)
    assert all(fit.threshold_ci[0] <= fit.threshold <= fit.threshold_ci[1] for fit in snapshot.fits)
    assert all(0 <= fit.p_value <= 1 for fit in snapshot.fits)
    assert np.isfinite(snapshot.threshold_shifts).all() and np.isfinite(snapshot.shift_intervals[1]).all()
    assert snapshot.responses.shape == (2, len(COARSE_GAMMAS), 2)

    # Session round trip of the state, with the binary model embedded.
    path = save_session(Session(model=binary_model, runs={"psychometric": experiment.state}),
                        tmp_path / "binary.wna.h5")
    loaded = load_session(path)
    assert loaded.model.weights_sha256() == binary_model.weights_sha256()
    state = loaded.runs["psychometric"]
    # The run records the λ it used (fc1's default) in its config; the rest is the config asked for.
    assert experiment.state.config == replace(config, lambda_=0.01)
    assert isinstance(state, PsychometricState) and state.config == experiment.state.config
    for name in ("correct", "responses", "done", "boot_thresholds", "mean_activation"):
        np.testing.assert_array_equal(getattr(state, name), getattr(experiment.state, name), err_msg=name)
    assert state.fits == experiment.state.fits and state.lambda_ == 0.01
    again = PsychometricExperiment(loaded.model, state=state, images=heldout).snapshot()
    np.testing.assert_array_equal(again.threshold_shifts, snapshot.threshold_shifts)


def test_unstimulated_config_has_one_condition_and_free_rates(model, heldout):
    config = PsychometricConfig(target=0, gammas=COARSE_GAMMAS, sigmoid="weibull", lapse="free",
                                n_boot=0, gof_samples=0)
    assert config.conditions == (0.0,) and config.k_values == tuple(range(11))
    snapshot = PsychometricExperiment(model, config, images=heldout).run_to_end()
    assert snapshot.layer is None and snapshot.lambda_ is None and len(snapshot.fits) == 1
    assert snapshot.fits[0].sigmoid == "weibull" and snapshot.threshold_shifts[0] == 0.0
    # Guess is free by default: the CNN never calls noise a 0, so the fitted floor is near 0, not 1/10.
    assert snapshot.fits[0].guess < 0.05
    assert PsychometricConfig.from_dict(config.to_dict()) == config


def test_small_multiples_configs_cover_digits_by_layers():
    base = PsychometricConfig(k_values=(0, 5, 10), sign=-1, lambda_=0.5)
    configs = small_multiples_configs(base, digits=(1, 2), layers=("conv1", "fc1"), lambdas={"fc1": 0.02})
    assert [(c.target, c.layer, c.lambda_) for c in configs] == [
        (1, "conv1", None), (1, "fc1", 0.02), (2, "conv1", None), (2, "fc1", 0.02)]
    assert all(c.k_values == (0, 5, 10) and c.sign == -1 for c in configs)


def test_grid_state_round_trips_through_a_session(model, heldout, tmp_path):
    config = PsychometricGridConfig(targets=(1, 3), layers=("conv1", "fc1"), signs=(1, -1), k_values=(0, 10),
                                    gammas=(0, 0.5, 1))
    grid = PsychometricGridExperiment.new_state(model, config, images=heldout)
    assert isinstance(grid, PsychometricGridState)
    assert [(c.sign, c.target, c.layer) for c in grid.configs[:3]] == [(1, 1, "conv1"), (1, 1, "fc1"), (1, 3, "conv1")]
    assert config.base.layer is None and len(grid.runs) == 8
    assert grid.n_images == [len(heldout.of_class(c.target)) for c in grid.configs]
    # One run finished, one stopped halfway, the rest not started.
    finished, stopped = (PsychometricExperiment(model, config, images=heldout) for config in grid.configs[:2])
    finished.run_to_end()
    stopped.run_unit((0, [0, 2]))
    grid.runs[:2] = [finished.state, stopped.state]
    assert grid.plots_done == 1 and not grid.finished

    path = save_session(Session(model, {GRID_KIND: grid}), tmp_path / "grid.h5")
    loaded = load_session(path).runs[GRID_KIND]
    assert isinstance(loaded, PsychometricGridState) and loaded.configs == grid.configs
    assert [run is None for run in loaded.runs] == [False, False] + [True] * 6
    assert loaded.n_images == grid.n_images and loaded.progress_total == grid.progress_total
    (meta, arrays), (loaded_meta, loaded_arrays) = grid.to_record(), loaded.to_record()
    assert loaded_meta == meta and set(loaded_arrays) == set(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded_arrays[name], array, err_msg=name)


def test_errors_name_the_problem(model, heldout):
    def experiment(net_model=model, images=heldout, **fields):
        return PsychometricExperiment(net_model, PsychometricConfig(**fields), images=images)

    with pytest.raises(ValueError, match="no layer 'pool1'.*conv1, conv2, fc1, fc2"):
        experiment(layer="pool1")
    with pytest.raises(ValueError, match="out of range: the model has 10 classes"):
        experiment(target=10)
    with pytest.raises(ValueError, match="no images of class '3'"):
        experiment(target=3, images=heldout.subset(heldout.labels != 3))
    biasless = LoadedModel("zoo", "custom", nn.Sequential(nn.Conv2d(1, 4, 5, bias=False), nn.Flatten(),
                                                          nn.Linear(4 * 24 * 24, 10)),
                           InputSpec((1, 28, 28)), MNIST_CLASSES)
    with pytest.raises(ValueError, match="layer '0' has no bias"):
        experiment(net_model=biasless, layer="0")
    with pytest.raises(EngineError, match="NaN or infinite outputs with fc1 stimulated"):
        experiment(layer="fc1", lambda_=1e38, k_values=(10,), gammas=(0, 1)).run_to_end()
    for fields, message in (({"sign": 0}, "sign"), ({"k_values": (-1,)}, "non-negative"),
                            ({"gammas": (0.5, 0.2)}, "increasing"), ({"guess": "fixed"}, "guess"),
                            ({"sigmoid": "probit"}, "sigmoid"), ({"lambda_": -0.1}, "positive")):
        with pytest.raises(ValueError, match=message):
            PsychometricConfig(layer="fc1", **fields)


def test_a_session_resumed_on_a_model_that_cannot_stimulate_its_layer_says_so(heldout):
    def zoo(*layers):
        return LoadedModel("zoo", "custom", nn.Sequential(*layers), InputSpec((1, 28, 28)), MNIST_CLASSES)

    config = PsychometricConfig(target=0, layer="0", k_values=(0, 1), gammas=(0, 1), n_boot=0, gof_samples=0)
    state = PsychometricExperiment.new_state(
        zoo(nn.Conv2d(1, 4, 5), nn.Flatten(), nn.Linear(4 * 24 * 24, 10)), config, heldout)
    # Same classes and images, so only the layer tells them apart: its bias is None, or it is no biased layer.
    for other in (zoo(nn.Conv2d(1, 4, 5, bias=False), nn.Flatten(), nn.Linear(4 * 24 * 24, 10)),
                  zoo(nn.Flatten(), nn.Linear(28 * 28, 10))):
        with pytest.raises(EngineError, match="session stimulated layer '0'.*layer '0' has no bias"):
            PsychometricExperiment(other, state=state, images=heldout)


def test_a_stopped_grid_continues_where_it_stopped_and_equals_one_run(model, heldout, tmp_path):
    config = PsychometricGridConfig(targets=(1, 3), layers=("fc1",), signs=(1, -1), k_values=(0, 5),
                                    gammas=(0, 0.5, 1), batch_size=200, snapshot_seconds=0)
    whole = PsychometricGridExperiment(model, config, images=heldout, device="cpu")
    single = whole.run_to_end()
    assert single.finished and single.samples_done == single.samples_total == whole.state.progress_total

    control = RunControl()
    first = PsychometricGridExperiment(model, config, images=heldout, device="cpu", control=control)
    with pytest.raises(Cancelled):
        for snapshot in first.run():  # snapshot_seconds=0: one per unit
            if snapshot.plots_done == 1 and snapshot.samples_done > single.samples_total // 4:
                control.cancel()
    assert first.state.plots_done >= 1 and not first.state.finished
    path = save_session(Session(model, {GRID_KIND: first.state}), tmp_path / "grid.h5")
    state = load_session(path).runs[GRID_KIND]
    assert state.progress_done == first.state.progress_done

    resumed = PsychometricGridExperiment(model, state=state, images=heldout, device="cpu").run_to_end()
    assert resumed.finished and resumed.samples_done == single.samples_done
    for a, b in zip(resumed.snapshots, single.snapshots, strict=True):
        np.testing.assert_array_equal(a.fraction_correct, b.fraction_correct)
        np.testing.assert_array_equal(a.responses, b.responses)
        np.testing.assert_array_equal(a.threshold_shifts, b.threshold_shifts)
    # Each plot stimulates its layer at the layer's paper λ, and the grid's plots carry no bootstrap.
    assert all(run.lambda_ == 0.01 and run.config.n_boot == 0 for run in state.runs)


# --- issue 9: conditions by value, noise samples per image, the joint fit on the bundled CNN ---

def sweep(model, heldout, **fields):
    fields = {"gammas": COARSE_GAMMAS, "n_boot": 0, "gof_samples": 0, "lr_samples": 0, **fields}
    experiment = PsychometricExperiment(model, PsychometricConfig(**fields), images=heldout, device="cpu")
    return experiment, experiment.run_to_end()


def test_a_condition_gets_its_noise_by_value_whatever_the_k_list(model, heldout):
    """The same seed, target, layer, λ and k = 5 give the same data in any k list, order or batch size."""
    runs = {ks: sweep(model, heldout, target=3, layer="fc1", k_values=ks, batch_size=batch)[0].state
            for ks, batch in (((0.0, 5.0), 2100), ((5.0,), 300), ((10.0, 5.0, 0.0), 700))}
    five = [state.correct[state.config.conditions.index(5.0)] for state in runs.values()]
    for other in five[1:]:
        np.testing.assert_array_equal(other, five[0])
    zero = [state.correct[state.config.conditions.index(0.0)] for state in runs.values() if 0.0 in state.config.conditions]
    np.testing.assert_array_equal(zero[0], zero[1])
    # k = 0 is the unstimulated network: the same noise (and data) as a run without a layer, and as either sign.
    unstimulated = sweep(model, heldout, target=3)[0].state
    inhibited = sweep(model, heldout, target=3, layer="fc1", k_values=(0.0, 5.0), sign=-1)[0].state
    np.testing.assert_array_equal(unstimulated.correct[0], zero[0])
    np.testing.assert_array_equal(inhibited.correct[0], zero[0])
    assert not np.array_equal(inhibited.correct[1], five[0])  # k = 5 inhibited is another condition
    # The rule, and what distinguishes conditions.
    config = runs[(0.0, 5.0)].config
    assert noise_block(config, 1, 2) == noise_block(replace(config, k_values=(5.0, 2.0)), 0, 2)
    assert noise_block(config, 1, 2) != noise_block(config, 1, 2, repeat=1) != noise_block(replace(config, seed=1), 1, 2)
    assert noise_block(config, 0, 2) == noise_block(replace(config, layer=None), 0, 2)
    assert noise_block(config, 1, 2) != noise_block(replace(config, target=4), 1, 2)
    assert condition_key(3, "fc1", 1, 5.0, 0.5, 0) == "psychometric|target=3|layer=fc1|sign=+|k=5|gamma=0.5|repeat=0"


def test_the_grid_and_a_single_run_give_identical_data_for_the_same_condition(model, heldout):
    config = PsychometricGridConfig(targets=(3,), layers=("fc1", "conv2"), signs=(1, -1), k_values=(0.0, 5.0, 10.0),
                                    gammas=COARSE_GAMMAS)
    grid = PsychometricGridExperiment(model, config, images=heldout, device="cpu")
    grid.run_to_end()
    for plot, state in zip(grid.state.configs, grid.state.runs):
        single = sweep(model, heldout, target=plot.target, layer=plot.layer, sign=plot.sign,
                       k_values=(10.0, 5.0))[0].state  # another list, another order
        np.testing.assert_array_equal(single.correct[0], state.correct[2])
        np.testing.assert_array_equal(single.correct[1], state.correct[1])
        np.testing.assert_array_equal(single.responses[1], state.responses[1])


def test_noise_samples_per_image_multiply_the_trials_and_keep_the_first_sample(model, heldout, tmp_path):
    one, _ = sweep(model, heldout, target=2, layer="fc1", k_values=(0.0, 10.0))
    config = dict(target=2, layer="fc1", k_values=(0.0, 10.0), repeats=3, n_boot=50, batch_size=250,
                  snapshot_seconds=0)
    whole, snapshot = sweep(model, heldout, **config)
    n_images = snapshot.n_images
    assert whole.state.correct.shape == (2, 3, n_images, len(COARSE_GAMMAS))
    np.testing.assert_array_equal(snapshot.trials, 3 * n_images)
    assert snapshot.samples_total == 2 * 3 * len(COARSE_GAMMAS) * n_images == snapshot.samples_done
    np.testing.assert_array_equal(whole.state.correct[:, 0], one.state.correct[:, 0])  # sample 0: the one-sample run
    assert not np.array_equal(whole.state.correct[:, 1], whole.state.correct[:, 0])  # fresh noise each sample
    np.testing.assert_array_equal(snapshot.responses.sum(axis=2), 3 * n_images)
    np.testing.assert_array_equal(whole.state.item_counts().sum(axis=0), snapshot.n_correct)
    # Stopped between samples and resumed from a session: the same data and fits.
    control = RunControl()
    stopped = PsychometricExperiment(model, PsychometricConfig(gammas=COARSE_GAMMAS, gof_samples=0, lr_samples=0,
                                                               **config), images=heldout, control=control)
    with pytest.raises(Cancelled):
        for partial in stopped.run():
            if partial.cells_done > len(COARSE_GAMMAS) + 3:
                control.cancel()
    path = save_session(Session(model, {"psychometric": stopped.state}), tmp_path / "repeats.h5")
    resumed = PsychometricExperiment(model, state=load_session(path).runs["psychometric"], images=heldout).run_to_end()
    np.testing.assert_array_equal(resumed.fraction_correct, snapshot.fraction_correct)
    assert [f.to_dict() for f in resumed.fits] == [f.to_dict() for f in snapshot.fits]


@pytest.mark.slow
def test_digit_3_fc1_excited_performance_threshold_falls_with_k(model, heldout):
    """The issue's case: digit 3, fc1 excited, k = 0…10, seed 0, the default fit (one width, guess and lapse
    for every k): the performance threshold falls with k, and its shift at k = 10 excludes 0."""
    experiment = PsychometricExperiment(model, PsychometricConfig(target=3, layer="fc1", gof_samples=0,
                                                                  lr_samples=100), images=heldout, device="cpu")
    snapshot = experiment.run_to_end()
    performance = snapshot.performance_thresholds
    assert snapshot.fit_model["shared"] == ["width", "guess", "lapse"] and not snapshot.preliminary
    assert np.all(snapshot.performance_status == 0) and np.all(np.isfinite(performance))
    assert spearmanr(snapshot.k_values, performance).statistic < -0.9
    assert performance[-1] < performance[0] - 0.08
    low, high = snapshot.performance_shift_intervals[-1]
    assert low < high < 0
    assert snapshot.test_named("equal").p_value < 0.05
    assert snapshot.test_against_reference(10).p_value < 0.05
    # No estimate of the shared model is held by an artificial limit.
    assert not any(snapshot.warnings(c) for c in range(11))


def test_estimates_at_a_limit_are_flagged_on_the_cnn(model, heldout):
    # The CNN calls most pure noise an 8: digit 8's floor is ≈0.9, and the free guess, bounded by 1 − lapse (not
    # 0.5, which used to set the fit), reads it at every k without reaching a limit.
    _, eight = sweep(model, heldout, target=8, layer="fc1", k_values=(0.0, 5.0, 10.0), guess_across_k="per-k",
                     width_across_k="per-k", lapse_across_k="per-k")
    assert all(not [flag for flag in eight.warnings(c) if flag.parameter == "guess"] for c in range(3))
    assert all(fit.guess > 0.8 for fit in eight.fits)
    assert list(eight.performance_status) == [FLOOR_ABOVE] * 3  # above 0.5 everywhere: no performance threshold
    # conv2 excitation makes the 1's curve sag: a lapse per k runs to 0.06 while the curve moves right.
    _, one = sweep(model, heldout, target=1, layer="conv2", k_values=(0.0, 5.0, 10.0), guess_across_k="per-k",
                   width_across_k="per-k", lapse_across_k="per-k")
    assert "lapse=0.06" in [flag.label for flag in one.warnings(2)]
    assert all(flag.severity == NOTE for flag in one.flags[0])
