"""Figures shared by the desktop app and the `wna` command, all renderable headless (no window).

- page: the physical size figures are written at (FigureSize, ``sized``; PNG at a DPI,
  PDF and SVG at the width in mm) and the one writer every figure goes through.
- maps: publication figures of classification-image grids and of their progression over
  samples, painted with QPainter (re-exported here: ``figures.save_map_grid``,
  ``figures.save_map_rows``, ``figures.MAX_TILES``, ...).
- psychometric: psychometric curves and the small-multiples grid as pyqtgraph
  graphics items, hosted by the app's plot widgets and written to .png/.svg by
  ``save_curves_plot`` / ``save_grid_plot``. Import it as
  ``wna_gui.figures.psychometric``; it is not loaded here, so map figures need no pyqtgraph.

Nothing here imports wna_gui.app.
"""

from ._qt import ensure_gui_application
from .page import DPI_CHOICES, FIGURE_FORMATS, WIDTH_PRESETS_MM, FigureSize, figure_size, sized
from .maps import (
    COLORMAP_NAME,
    EMPTY_NOTES,
    EMPTY_TILE_GREY,
    MAP_VIEW_LABELS,
    MAX_TILES,
    COLORMAPS,
    informative_classes,
    levels_caption,
    Canvas,
    MapGridFigure,
    MapRow,
    caption_lines,
    colormap_table,
    estimator_titles,
    grid_columns,
    map_levels,
    map_titles,
    rgb_display,
    save_map_grid,
    save_map_rows,
    shown_classes,
    tile_rgb,
)

__all__ = [
    "DPI_CHOICES",
    "WIDTH_PRESETS_MM",
    "FigureSize",
    "figure_size",
    "sized",
    "COLORMAP_NAME",
    "EMPTY_NOTES",
    "EMPTY_TILE_GREY",
    "FIGURE_FORMATS",
    "MAP_VIEW_LABELS",
    "MAX_TILES",
    "Canvas",
    "MapGridFigure",
    "MapRow",
    "COLORMAPS",
    "caption_lines",
    "informative_classes",
    "levels_caption",
    "colormap_table",
    "ensure_gui_application",
    "estimator_titles",
    "grid_columns",
    "map_levels",
    "map_titles",
    "rgb_display",
    "save_map_grid",
    "save_map_rows",
    "shown_classes",
    "tile_rgb",
]
