"""The words for the user's own images, in a module that imports nothing: noise sources (structured noise's fit
data) declare them while core.data, which imports the models and so the noise sources, is still loading."""

from __future__ import annotations

# The user's own images, read from --data-dir; fitted to each model's input by core.images.fit_to_model.
OWN_DATASETS = {
    "folder": "your images: a folder with one sub-folder per class (data folder)",
    "npz": "your images: an .npz file with x and y (data folder = the file)",
}
DATA_DIR_HELP = ("folder of a torchvision dataset, or of class sub-folders (folder), or the .npz file (npz); not "
                 "needed for bundled")


def dataset_field_of(folder_field: str, fields) -> str | None:
    """The choice field that says what a ``<x>data_dir`` field holds: ``<x>dataset`` or ``<x>data`` (structured
    noise's ``fit_data``), if one is among ``fields``; None for any other field."""
    if not folder_field.endswith("data_dir"):
        return None
    prefix = folder_field[:-len("data_dir")]
    return next((name for name in (prefix + "dataset", prefix + "data") if name in fields), None)
