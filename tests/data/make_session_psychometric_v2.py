"""Writes session-psychometric-v2.h5 and its -expected.npz with the release before issue 9 (psychometric record
version 2, commit 2e8ed14): run it from a checkout of that release,

    python tests/data/make_session_psychometric_v2.py tests/data/session-psychometric-v2.h5

Kept for the record: the files in tests/data are what that release wrote.
"""
import sys
import numpy as np
from wna_gui.core.models import load_default
from wna_gui.core.psychometric import PsychometricConfig, PsychometricExperiment
from wna_gui.core.psychometric_grid import PsychometricGridConfig, PsychometricGridExperiment
from wna_gui.core.session import Session, save_session
from wna_gui import __version__
out = sys.argv[1]
model = load_default()
gammas = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
finished_cfg = PsychometricConfig(target=3, layer="fc1", k_values=(0.0, 5.0, 10.0), gammas=gammas, seed=7, n_boot=30, gof_samples=20, guess="free")
finished = PsychometricExperiment(model, finished_cfg, device="cpu")
fs = finished.run_to_end()
# an unfinished run (k = 0 complete, k = 4 half measured), and the same run to the end for the expected values
half_cfg = PsychometricConfig(target=5, layer="fc1", k_values=(0.0, 4.0), gammas=gammas, seed=3, n_boot=20, gof_samples=0, guess="chance", batch_size=300)
half = PsychometricExperiment(model, half_cfg, device="cpu")
for unit in list(half.pending())[:3]:
    half.run_unit(unit); half.after_unit()
assert not half.state.finished and half.state.fits[0] is not None
whole_run = PsychometricExperiment(model, half_cfg, device="cpu")
whole = whole_run.run_to_end()
grid_cfg = PsychometricGridConfig(targets=(1, 3), layers=("fc1",), signs=(1,), k_values=(0.0, 10.0), gammas=(0.0, 0.5, 1.0), seed=2)
grid = PsychometricGridExperiment.new_state(model, grid_cfg)
plot = PsychometricExperiment(model, grid.configs[0], device="cpu"); plot.run_to_end(); grid.runs[0] = plot.state
grid_whole = PsychometricGridExperiment(model, grid_cfg, device="cpu").run_to_end()
save_session(Session(model, {"psychometric": finished.state, "half": half.state, "psychometric_grid": grid}, notes=f"written by wna-gui {__version__} (psychometric record version 2)"), out)
np.savez(out.replace(".h5", "-expected.npz"),
         finished_fraction=fs.fraction_correct, finished_thresholds=fs.thresholds, finished_shifts=fs.threshold_shifts,
         finished_intervals=fs.shift_intervals, finished_correct=finished.state.correct,
         half_fraction=whole.fraction_correct, half_thresholds=whole.thresholds, half_correct=whole_run.state.correct,
         grid_fraction=np.array([s.fraction_correct for s in grid_whole.snapshots]))
print("wrote", out, fs.thresholds, whole.thresholds)
