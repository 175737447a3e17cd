"""A study's summary as figures: accuracy (top-1 and top-5, with the publishers' figures when the weights are
ImageNet's) and localisation (pointing, energy in the object, MaxBoxAccV2), one bar per model and measure with its
95 % bootstrap interval as an error bar.

They read a ``summary.json``'s ``models`` block (``study.summary``), values as fractions, and draw percentages, one
colour and title per model as the block records them (``vocab.recorded_lineup``).
matplotlib's object API only (``Figure`` + ``FigureCanvasAgg``), never pyplot; the words come from the catalogues in
the language pictures can be drawn in (``render.fonts``), set before the layout measures them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cbam_viz.render import fonts
from cbam_viz.render.atlas import figure_rgb, model_colours
from cbam_viz.vocab import recorded_lineup

ACCURACY = (("top1", "study.col.top1"), ("top5", "study.col.top5"))
LOCALISATION = (
    ("pointing", "study.col.pointing"),
    ("energy", "study.col.energy"),
    ("maxboxacc_v2", "study.col.maxbox"),
)


def _value(block: Any) -> tuple[float, float, float] | None:
    """(value, low, high) in percent of a ``{value, ci}`` block, None when nothing was measured."""
    if not isinstance(block, Mapping) or block.get("value") is None:
        return None
    value = 100 * float(block["value"])
    low, high = (list(block.get("ci") or []) + [None, None])[:2]
    return value, value if low is None else 100 * float(low), value if high is None else 100 * float(high)


def _bars(
    models: Mapping[str, Mapping[str, Any]],
    measures: Sequence[tuple[str, str]],
    title: str,
    *,
    published: bool,
    dpi: int,
) -> np.ndarray | None:
    lineup = recorded_lineup(models)  # the summary's own models, order, families and titles
    colours, archs = model_colours(lineup), list(lineup.ids)
    values = {(arch, key): _value(models[arch].get(key)) for arch in archs for key, _ in measures}
    if not archs or all(found is None for found in values.values()):
        return None
    figure = Figure(figsize=(6.4, 3.6), dpi=dpi)
    axes = figure.add_subplot()
    width = 0.8 / len(archs)
    positions = np.arange(len(measures))
    for n, arch in enumerate(archs):
        offsets = positions - 0.4 + width * (n + 0.5)
        found = [values[(arch, key)] for key, _ in measures]
        heights = [np.nan if one is None else one[0] for one in found]
        # a percentile interval of a maximum (MaxBoxAccV2) may leave out the value itself: no negative bar then
        below = [0.0 if one is None else max(0.0, one[0] - one[1]) for one in found]
        above = [0.0 if one is None else max(0.0, one[2] - one[0]) for one in found]
        axes.bar(offsets, heights, width * 0.9, color=colours[arch], label=lineup.title(arch))
        axes.errorbar(offsets, heights, yerr=[below, above], fmt="none", ecolor="#222222", capsize=3, linewidth=1)
        for offset, height, top in zip(offsets, heights, above, strict=True):
            if np.isfinite(height):
                axes.text(offset, height + top + 1, f"{height:.1f}", ha="center", va="bottom", fontsize=6)
        known = models[arch].get("published") if published else None
        if isinstance(known, Mapping):
            marks = [known.get(key) for key, _ in measures]
            shown = [(offset, 100 * mark) for offset, mark in zip(offsets, marks, strict=True) if mark is not None]
            if shown:
                xs, ys = zip(*shown, strict=True)
                axes.scatter(xs, ys, marker="D", s=22, color="black", zorder=3)
    if published and any(isinstance(models[arch].get("published"), Mapping) for arch in archs):
        axes.scatter([], [], marker="D", s=22, color="black", label=fonts.words("study.figure.published"))
    axes.set_xticks(positions, [fonts.words(key) for _, key in measures], fontsize=9)
    axes.set_ylim(0, 112)
    axes.set_ylabel(fonts.words("study.figure.percent"), fontsize=9)
    axes.set_title(fonts.words(title), fontsize=10)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    fonts.set_figure_fonts(figure)  # before the layout, which measures the words in the face they are drawn in
    figure.tight_layout()
    return figure_rgb(figure)


def accuracy_figure(models: Mapping[str, Mapping[str, Any]], *, dpi: int = 110) -> np.ndarray | None:
    """Top-1 and top-5 per model with their intervals, and the publishers' ImageNet figures (black diamonds) when
    the summary has them (``models.<arch>.published``); -> an RGB array, or None when no model was measured."""
    return _bars(models, ACCURACY, "study.figure.accuracy", published=True, dpi=dpi)


def localisation_figure(models: Mapping[str, Mapping[str, Any]], *, dpi: int = 110) -> np.ndarray | None:
    """Pointing, energy in the object and MaxBoxAccV2 per model with their intervals; None when no image had a box
    or mask."""
    return _bars(models, LOCALISATION, "study.figure.localisation", published=False, dpi=dpi)
