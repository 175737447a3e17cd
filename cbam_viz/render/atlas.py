"""The attention atlas of a study as pictures: how class-specific each block's channel excitations are, per model,
and the mean excitation by channel index of a late block for a few classes and for all (SENet's figure 6).

SENet's section 7.2 reads its excitations this way: class-agnostic in the early stages, class-specific late. The
study keeps eta squared per block (``study.summary.Atlas.summary``: the between-class share of the excitations'
variance) and what a class-blind block would score with as many classes and images (``chance``); the first figure
draws both, one colour per model. The second reads the per-class means of ``atlas.npz``
(``study.summary.Atlas.class_means``). matplotlib's object API only (``Figure`` + ``FigureCanvasAgg``), never pyplot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cbam_viz.render import fonts
from cbam_viz.vocab import Lineup, recorded_lineup

COLOURS = {"se_resnet50": "#1f77b4", "cbam_resnet50": "#d62728", "resnet50": "#7f7f7f"}  # by family
MORE_COLOURS = ("#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")  # a second model of one family
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
FEW_CLASSES = 4  # as SENet's figure: four classes and all of them


def figure_rgb(figure: Figure) -> np.ndarray:
    """A laid-out figure drawn on an Agg canvas, as an RGB array."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def model_colours(lineup: Lineup) -> dict[str, str]:
    """One colour per model: its family's for the first model of each family (the paper's three keep theirs), the
    next unused of ``MORE_COLOURS`` for another model of a family already coloured."""
    colours: dict[str, str] = {}
    spare = iter(MORE_COLOURS)
    for spec in lineup.models:
        colour = COLOURS.get(spec.family)
        colours[spec.id] = colour if colour and colour not in colours.values() else next(spare, "#333333")
    return colours


def _block_order(block: str) -> tuple[int, int]:
    stage, _, index = block.removeprefix("layer").partition(".")
    return (int(stage), int(index)) if stage.isdigit() and index.isdigit() else (99, 0)


def atlas_figure(
    atlas: Mapping[str, Mapping[str, Mapping[str, Any]]], *, lineup: Lineup | None = None, dpi: int = 110
) -> np.ndarray | None:
    """Class specificity (eta squared) per block for every model of ``atlas`` (a ``summary.json``'s ``atlas``), with
    its chance level dotted; ``lineup``: the study's models, their order and titles (``vocab.recorded_lineup`` of its
    ``models``; None: the atlas's own, keyed by architecture). -> an RGB array, or None when it holds no block."""
    lineup = lineup or recorded_lineup({model_id: {} for model_id in atlas})
    colours = model_colours(lineup)
    archs = [model_id for model_id in lineup.ids if atlas.get(model_id)]
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
        colour = colours[arch]
        axes.plot(positions, values, marker="o", markersize=4, color=colour, label=lineup.title(arch))
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
    return figure_rgb(figure)


def late_block(blocks: list[str]) -> str | None:
    """The block SENet's figure reads the excitations of: the last block of the second-to-last stage (its SE_4_6,
    where they have become class-specific without the last stage's saturation), else the last block there is."""
    ordered = sorted(blocks, key=_block_order)
    if not ordered:
        return None
    stages = sorted({_block_order(block)[0] for block in ordered})
    wanted = stages[-2] if len(stages) > 1 else stages[-1]
    return [block for block in ordered if _block_order(block)[0] == wanted][-1]


def excitation_figure(
    means: Mapping[str, np.ndarray], name_of: Callable[[int], str], *, lineup: Lineup | None = None, dpi: int = 110
) -> np.ndarray | None:
    """Mean excitation by channel (sorted by the mean over all classes) in one late block (``late_block``), for the
    ``FEW_CLASSES`` classes with the most images and for all the images, one panel per model with channel attention.
    ``means`` is ``atlas.npz`` (``<arch>/<block>``: classes x channels, ``.../classes``, and ``.../images`` where
    recorded: without it "all" weighs the classes alike); ``name_of`` names a class index; ``lineup`` as
    ``atlas_figure``'s. None when it holds no block."""
    lineup = lineup or recorded_lineup({key.split("/")[0]: {} for key in means})
    archs = [model_id for model_id in lineup.ids if any(key.startswith(f"{model_id}/") for key in means)]
    blocks = {
        arch: late_block([key.split("/")[1] for key in means if key.count("/") == 1 and key.startswith(f"{arch}/")])
        for arch in archs
    }
    archs = [arch for arch in archs if blocks[arch] is not None]
    if not archs:
        return None
    figure = Figure(figsize=(4.2 * len(archs), 3.8), dpi=dpi)
    for n, arch in enumerate(archs):
        key = f"{arch}/{blocks[arch]}"
        per_class = np.asarray(means[key], dtype=np.float64)
        classes = [int(label) for label in means[f"{key}/classes"]]
        counts = np.asarray(means[f"{key}/images"], dtype=np.float64) if f"{key}/images" in means else None
        weights = counts if counts is not None else np.ones(len(classes))
        every = (per_class * weights[:, None]).sum(axis=0) / weights.sum()
        few = sorted(range(len(classes)), key=lambda i: (-weights[i], classes[i]))[:FEW_CLASSES]
        axes = figure.add_subplot(1, len(archs), n + 1)
        # channels in the order of their mean over all classes: "all" falls smoothly, and a class's own line shows
        # where it departs from it (in index order, hundreds of channels are a thicket no reader can follow)
        order = np.argsort(-every, kind="stable")
        channels = np.arange(per_class.shape[1])
        for colour, i in zip(CLASS_COLOURS, sorted(few, key=lambda i: classes[i]), strict=False):
            axes.plot(
                channels,
                per_class[i][order],
                color=colour,
                linewidth=0.7,
                alpha=0.85,
                zorder=2,
                label=name_of(classes[i]),
            )
        axes.plot(channels, every[order], "k--", linewidth=1.3, zorder=3, label=fonts.words("study.excitation_all"))
        axes.set_ylim(0, 1)
        axes.set_xlim(0, max(1, per_class.shape[1] - 1))
        axes.set_title(f"{lineup.title(arch)}, {blocks[arch]}", fontsize=9)
        axes.set_xlabel(fonts.words("study.excitation_x"), fontsize=8)
        if n == 0:
            axes.set_ylabel(fonts.words("study.excitation_y"), fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    figure.suptitle(fonts.words("study.excitation_title"), fontsize=10)
    fonts.set_figure_fonts(figure)  # before the layout, which measures the words in the face they are drawn in
    figure.tight_layout()
    return figure_rgb(figure)
