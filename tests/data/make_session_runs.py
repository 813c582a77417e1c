"""Writes session-runs.h5 with the main branch before issue 22 (commit 701ffee: sessions without per-run dates):
three runs, two of them classification images (a finished one of 1,200 samples, seed 7, and a second of 800 samples,
seed 8, named ``classification_images-2`` as the app names a second run; hard-label maps only, to keep the file
small) and a template classifier that reads the second. Run it from a checkout of that commit
(``git archive 701ffee | tar -x -C /tmp/old``):

    PYTHONPATH=/tmp/old python tests/data/make_session_runs.py tests/data/session-runs.h5

Kept for the record: the file in tests/data is what that commit wrote.
"""
import sys
from dataclasses import replace

from wna_gui import __version__
from wna_gui.core.classification import ClassificationImageConfig, ClassificationImageExperiment
from wna_gui.core.models import load_default
from wna_gui.core.registry import BY_KIND
from wna_gui.core.session import Session, save_session

out = sys.argv[1]
model = load_default()
first = ClassificationImageExperiment(
    model, ClassificationImageConfig(samples=1200, batch_size=400, seed=7, estimators=("hard",)), device="cpu")
first.run_to_end()
second = ClassificationImageExperiment(
    model, ClassificationImageConfig(samples=800, batch_size=400, seed=8, estimators=("hard",)), device="cpu")
second.run_to_end()
spec = BY_KIND["template_classifier"]
templates = spec.experiment(model, replace(spec.config(), lr_steps=5), device="cpu", maps=second.state)
templates.run_to_end()
save_session(Session(model, {"classification_images": first.state, "classification_images-2": second.state,
                             "template_classifier": templates.state},
                     inputs={"template_classifier": {"maps": "classification_images-2"}},
                     notes=f"written by wna-gui {__version__} (before per-run dates)"), out)
print("wrote", out)
