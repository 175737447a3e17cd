"""A study's figures, one per section of its summary: accuracy, localisation, and the atlas's two (class
specificity per block; mean excitation by channel of a late block for a few classes and all).

``draw`` makes them from what a study folder holds (``summary.json``, ``atlas.npz``, the class names of
``images.parquet``) in the language pictures are drawn in: ``engine.finish`` writes them as ``figure-<name>.png``
(English, the CLI's), and the app's Study section draws them again in the visitor's language.

A study folder is claimed by its ``study.json``, but a user may still put a file of their own there: a figure file
carries a PNG text chunk saying it is one, and a file of that name without it is left as it is (with a note).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from cbam_viz.render.atlas import atlas_figure, excitation_figure
from cbam_viz.render.study import accuracy_figure, localisation_figure
from cbam_viz.vocab import recorded_lineup

FIGURES = ("accuracy", "localisation", "atlas", "excitation")
MARK_KEY, MARK = "cbam_viz", "study figure"


def figure_file(out: Path, name: str) -> Path:
    return out / f"figure-{name}.png"


def read_means(folder: Path) -> dict[str, np.ndarray]:
    """``atlas.npz`` of a study folder ({} when absent or unreadable: the excitation figure is then left out)."""
    try:
        with np.load(folder / "atlas.npz", allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError):
        return {}


def read_names(folder: Path) -> dict[int, str]:
    """Class index -> name, as ``images.parquet`` names the classes it holds ({} when absent or unreadable)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(folder / "images.parquet", columns=["label", "label_name"])
    except (OSError, ValueError, KeyError):
        return {}
    return dict(zip(table.column("label").to_pylist(), table.column("label_name").to_pylist(), strict=True))


def draw(
    summary: Mapping[str, Any], means: Mapping[str, np.ndarray], name_of: Callable[[int], str]
) -> dict[str, np.ndarray]:
    """The figures this study has (a study without boxes has no localisation figure, one without SE or CBAM no
    atlas), by name, as RGB arrays."""
    models = summary.get("models") or {}
    atlas = summary.get("atlas") or {}
    lineup = recorded_lineup(models)  # every figure names and orders the models as the summary does
    drawn = {
        "accuracy": accuracy_figure(models),
        "localisation": localisation_figure(models),
        "atlas": atlas_figure(atlas, lineup=lineup) if atlas else None,
        "excitation": excitation_figure(means, name_of, lineup=lineup) if means else None,
    }
    return {name: figure for name, figure in drawn.items() if figure is not None}


def write(out: Path, figures: Mapping[str, np.ndarray]) -> list[str]:
    """Each figure as ``figure-<name>.png``, written atomically over an earlier run's figure, never over a file the
    study did not write (-> one note per file left as it was)."""
    notes = []
    for name, rgb in figures.items():
        path = figure_file(out, name)
        if path.is_symlink() or (path.exists() and not _ours(path)):
            notes.append(f"{path.name} in {out} is not a figure of this study: left as it is")
            continue
        info = PngImagePlugin.PngInfo()
        info.add_text(MARK_KEY, MARK)
        partial = path.with_name(path.name + ".tmp")
        Image.fromarray(rgb).save(partial, format="PNG", pnginfo=info, optimize=True)
        os.replace(partial, path)
    return notes


def _ours(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return image.format == "PNG" and getattr(image, "text", {}).get(MARK_KEY) == MARK
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
