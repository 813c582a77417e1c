"""Classification-image figures: one view of the hard label's maps, every estimator's maps, how they built up.

The artefacts of core.classification name these writers by reference (core never imports figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.classification import ROW_VIEW_TITLES, ClassificationSnapshot, figure_title, progression_rows
from ..core.estimators import ESTIMATORS, EstimatorMaps
from .maps import MapRow, levels_caption, map_levels, map_titles, save_map_grid, save_map_rows, shown_classes


def save_maps(snapshot: ClassificationSnapshot, path, view: str) -> Path:
    """The hard label's maps in one view (the paper's classification images) as a publication figure
    (.png, .pdf, .svg)."""
    shown = shown_classes(snapshot.counts)
    titles = map_titles(snapshot.class_names, snapshot.counts, snapshot.map_predictions)
    maps = snapshot.maps.of(view, shown).reshape(len(shown), *snapshot.image_shape)
    counts = snapshot.counts[shown]
    levels = map_levels(maps, view, snapshot.noise_mean if view == "mean" else None, counts)
    return save_map_grid(maps, [titles[k] for k in shown], path, view=view, levels=levels,
                         title=figure_title(snapshot, f"Classification images ({view})"),
                         caption=levels_caption(counts))


def save_estimators(snapshot: ClassificationSnapshot, path, view: str) -> Path:
    """Every estimator's maps in one view (.png, .pdf, .svg): one row per estimator, each on its own colour scale
    (their units differ)."""
    shown = shown_classes(snapshot.counts)
    rows = []
    for estimator in snapshot.estimators:
        info, estimated = ESTIMATORS[estimator], snapshot.maps_of(estimator)
        assert estimated is not None  # every estimator of the run has maps
        mean_r = snapshot.convergence[estimator].mean()
        reliability = f" · r̄ {mean_r[-1]:.2f}" if mean_r.size and np.isfinite(mean_r[-1]) else ""
        rows.append(MapRow(f"{info.label}\n{estimated.samples:,} samples{reliability}",
                           estimated.of(view, shown).reshape(len(shown), *snapshot.image_shape),
                           snapshot.noise_mean if view == "mean" and info.image_like else 0.0, view,
                           estimated.support[shown] if estimated.support.shape == snapshot.counts.shape else None))
    return save_map_rows(rows, [snapshot.class_names[k] for k in shown], path,
                         title=figure_title(snapshot, f"Every estimator's {ROW_VIEW_TITLES[view]}"),
                         caption="each row on its own colour scale (the estimators' units differ): its centre ± "
                                 "the value at its right; r̄: split-half reliability (Spearman–Brown)")


def save_score_maps(snapshot: ClassificationSnapshot, path, view: str = "centered") -> Path:
    """Structured noise: the hard label's maps averaged in score space and mapped back (k = B·STA_a), one view
    as a figure (.png, .pdf, .svg; the session keeps the score accumulators they come from)."""
    path, maps = Path(path), snapshot.score_maps
    if maps is None:  # white noise has no scores: every map NaN (grey "no map" tiles), as for an empty class
        blank = np.full((0, int(np.prod(snapshot.image_shape))), np.nan)
        maps = EstimatorMaps("hard", np.zeros(0, np.int64), blank, blank, blank,
                             np.zeros(snapshot.n_classes), 0)
    shown = shown_classes(snapshot.counts)
    titles = map_titles(snapshot.class_names, snapshot.counts, None)
    images = maps.of(view, shown).reshape(len(shown), *snapshot.image_shape)
    counts = snapshot.counts[shown]
    return save_map_grid(images, [titles[k] for k in shown], path, view=view,
                         levels=map_levels(images, view, 0.0, counts),
                         title=figure_title(snapshot, f"Maps in score space, mapped back ({view})"),
                         caption=levels_caption(counts))


def save_progression(snapshot: ClassificationSnapshot, path, view: str = "centered") -> Path:
    """How each estimator's maps built up (paper Figs. 4, 14): for every estimator, one row per checkpoint
    (1e3, 1e4, … samples) and one for now, each row on its own colour scale (.png, .pdf, .svg)."""
    shown = shown_classes(snapshot.counts)
    rows = []
    for estimator in snapshot.estimators:
        for samples, estimated in progression_rows(snapshot, estimator):
            assert estimated is not None  # offered once the run has samples, and so maps
            used = "" if estimated.samples in (samples, 0) else f" ({estimated.samples:,} used)"
            # The support behind each map at that checkpoint: a class seen a few times there does not set the
            # row's scale (the panel's rule, figures.map_levels), so the well-sampled maps are not washed out.
            support = estimated.support[shown] if estimated.support.shape == snapshot.counts.shape else None
            rows.append(MapRow(f"{ESTIMATORS[estimator].label}\n{samples:,} samples{used}",
                               estimated.of(view, shown).reshape(len(shown), *snapshot.image_shape), 0.0, view,
                               support))
    return save_map_rows(rows, [snapshot.class_names[k] for k in shown], path,
                         title=figure_title(snapshot, f"How the maps built up: {ROW_VIEW_TITLES[view]}"))
