"""The attention atlas of a study as a picture: how class-specific each block's channel excitations are, per model.

SENet's section 7.2 reads its excitations this way: class-agnostic in the early stages, class-specific late. The
study keeps eta squared per block (``study.summary.Atlas.summary``: the between-class share of the excitations'
variance) and what a class-blind block would score with as many classes and images (``chance``); the figure draws
both, one colour per model. matplotlib's object API only (``Figure`` + ``FigureCanvasAgg``), never pyplot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cbam_viz.render import fonts
from cbam_viz.vocab import ARCH_ORDER, ARCH_TITLES

COLOURS = {"se_resnet50": "#1f77b4", "cbam_resnet50": "#d62728", "resnet50": "#7f7f7f"}


def _block_order(block: str) -> tuple[int, int]:
    stage, _, index = block.removeprefix("layer").partition(".")
    return (int(stage), int(index)) if stage.isdigit() and index.isdigit() else (99, 0)


def atlas_figure(atlas: Mapping[str, Mapping[str, Mapping[str, Any]]], *, dpi: int = 110) -> np.ndarray | None:
    """Class specificity (eta squared) per block for every model of ``atlas`` (a ``summary.json``'s ``atlas``), with
    its chance level dotted; -> an RGB array, or None when the atlas holds no block."""
    archs = [arch for arch in ARCH_ORDER if atlas.get(arch)]
    if not archs:
        return None
    blocks = sorted({block for arch in archs for block in atlas[arch]}, key=_block_order)
    figure = Figure(figsize=(7.2, 3.4), dpi=dpi)
    axes = figure.add_subplot()
    positions = np.arange(len(blocks))
    for arch in archs:
        rows = [atlas[arch].get(block, {}) for block in blocks]
        values = [np.nan if row.get("class_specificity") is None else row["class_specificity"] for row in rows]
        chance = [np.nan if row.get("chance") is None else row["chance"] for row in rows]
        colour = COLOURS.get(arch, "#333333")
        axes.plot(positions, values, marker="o", markersize=4, color=colour, label=ARCH_TITLES.get(arch, arch))
        axes.plot(positions, chance, linestyle=":", color=colour, linewidth=1.2)
    axes.plot([], [], linestyle=":", color="#555555", label=fonts.words("study.atlas_chance"))
    stages = [_block_order(block)[0] for block in blocks]
    for position in range(1, len(blocks)):
        if stages[position] != stages[position - 1]:
            axes.axvline(position - 0.5, color="#cccccc", linewidth=0.8)
    axes.set_xticks(positions, [block.removeprefix("layer") for block in blocks], fontsize=7, rotation=60)
    axes.set_ylim(0, 1)
    axes.set_xlabel(fonts.words("study.atlas_x"), fontsize=9)
    axes.set_ylabel(fonts.words("study.atlas_y"), fontsize=9)
    axes.set_title(fonts.words("study.atlas_title"), fontsize=10)
    axes.legend(fontsize=8, loc="upper left", frameon=False)
    axes.grid(axis="y", alpha=0.3)
    fonts.set_figure_fonts(figure)  # before the layout, which measures the words in the face they are drawn in
    figure.tight_layout()
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
