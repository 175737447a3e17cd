"""The export figure: every model's overlays, maps and numbers on one page, drawn with matplotlib.

The only picture drawn with matplotlib, through its object API (``Figure`` + ``FigureCanvasAgg``: never pyplot,
never global rc settings), so it is safe to draw from several request threads at once.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cbam_viz.imaging.decode import display_image
from cbam_viz.render import fonts
from cbam_viz.render.attention import last_block_map
from cbam_viz.render.overlay import colour_limits, finite_range, overlay, scale_words
from cbam_viz.render.text import wrap
from cbam_viz.vocab import STAGES, method_label

FIGURE_SOFTWARE = "cbam_viz comparison figure"  # the PNG's Software text: how a later run tells it from a photo


def is_comparison_figure(info: dict) -> bool:
    """Whether a PNG's text (``PIL.Image.open(path).info``) marks it as a figure this package drew."""
    return info.get("Software") == FIGURE_SOFTWARE


def _same_target(results: Iterable[Any]) -> str | None:
    labels = {result.target_label for result in results}
    return labels.pop() if len(labels) == 1 else None


def comparison_caption(analysis: Any, *, shared_scale: bool = False) -> str:
    """The export figure's caption in plain words (also useful next to the app's panels)."""
    method = method_label(analysis.method)
    target = _same_target(analysis.models.values())
    demo = bool(getattr(analysis, "is_demo", False))
    if target:
        target_words = fonts.words("export.target_one", label=fonts.class_name(target, demo))
    else:
        target_words = fonts.words("export.target_each")
    scale_words = fonts.words("export.scale_shared" if shared_scale else "export.scale_own")
    views = [analysis.view_for(result) for result in analysis.models.values()] or [analysis.view]
    cropped = any(view.box != (0, 0, 1, 1) for view in views)
    unseen = fonts.words("export.unseen") if cropped else ""
    return fonts.words(
        "export.caption",
        method=method,
        target=target_words,
        stage=analysis.stage,
        view=fonts.said(analysis.view.note),
        scale=scale_words,
        unseen=unseen,
        weights=fonts.said(analysis.weights_note),
    )


def _number(value: float | None, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "–"


def _percent(value: float | None) -> str:
    return f"{value * 100:.0f}" if value is not None and math.isfinite(value) else "–"


def _listed(parts: list[str]) -> str:
    return fonts.words("export.summary_separator").join(parts)


def check_summaries(analysis: Any) -> list[str]:
    """One sentence per check the analysis carries (the pointing game on a box or mask, the randomisation check,
    deletion and insertion, each intervention, the sweep): the numbers a reader needs, beside the figure and under
    the command line's answer; the JSON has the rest."""
    title = analysis.title
    lines = []
    if getattr(analysis, "pointing", None) is not None:
        report = analysis.pointing
        answers = [
            fonts.words(
                "export.summary_hit",
                model=title(arch),
                answer=fonts.words("export.summary_yes" if scores["cam"]["hit"] else "export.summary_no"),
                energy=_percent(scores["cam"]["energy"]),
            )
            for arch, scores in report.models.items()
        ]
        where = fonts.words("export.summary_mask" if report.region.get("kind") == "mask" else "export.summary_box")
        area = _percent(report.region.get("area_share"))
        lines.append(fonts.words("export.summary_pointing", where=where, area=area, models=_listed(answers)))
    if getattr(analysis, "sanity", None) is not None:
        rhos = [
            f"{title(arch)} {_number(model.cascading[-1].spearman)}"
            for arch, model in analysis.sanity.models.items()
            if model.cascading
        ]
        if rhos:
            lines.append(fonts.words("export.summary_sanity", models=_listed(rhos)))
    if getattr(analysis, "curves", None) is not None:
        kinds = {}
        for kind in ("deletion", "insertion"):
            kinds[kind] = _listed(
                [
                    fonts.words(
                        "export.summary_vs",
                        model=title(arch),
                        own=_number(getattr(model, kind).auc),
                        random=_number(random.auc if (random := getattr(model, f"{kind}_random")) else None),
                    )
                    for arch, model in analysis.curves.models.items()
                ]
            )
        lines.append(fonts.words("export.summary_curves", **kinds))
    models = analysis.models.values()  # duck-typed: pictures of hand-made analyses have no interventions
    specs = dict.fromkeys(done.spec for result in models for done in getattr(result, "interventions", ()))
    for spec in specs:
        changes = []
        for arch, result in analysis.models.items():
            done = next((one for one in getattr(result, "interventions", ()) if one.spec == spec), None)
            if done is not None:
                changes.append(
                    fonts.words(
                        "export.summary_change",
                        model=title(arch),
                        before=_number(result.target_prob),
                        after=_number(done.target_prob),
                        change=f"{done.target_prob_change:+.2f}",
                    )
                )
            elif spec in getattr(result, "intervention_notes", {}):
                changes.append(fonts.words("export.summary_no_gate", model=title(arch)))
        lines.append(fonts.words("export.summary_intervention", spec=spec, models=_listed(changes)))
    drops = []
    for arch, result in analysis.models.items():
        sweep = getattr(result, "sweep", None)
        if sweep is not None and sweep.entries:
            worst = min(sweep.entries, key=lambda entry: entry.change)
            drops.append(
                fonts.words(
                    "export.summary_sweep_model",
                    model=title(arch),
                    spec=worst.spec,
                    change=f"{worst.change:+.2f}",
                )
            )
    if drops:
        lines.append(fonts.words("export.summary_sweep", models=_listed(drops)))
    return lines


def comparison_figure(
    analysis: Any, *, cmap: str = "jet", alpha: float = 0.5, shared_scale: bool = False, dpi: int = 150
) -> bytes:
    """Publication-style PNG: one row per model; columns the input, the CAM (method, target, probability) and the
    spatial attention of stages 1-4 (last block; "no spatial attention" for SE and the baseline)."""
    figure = comparison_figure_object(analysis, cmap=cmap, alpha=alpha, shared_scale=shared_scale, dpi=dpi)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer, metadata={"Software": FIGURE_SOFTWARE})
    return buffer.getvalue()


def _wrap_inches(text: str, points: float, inches: float) -> list[str]:
    """``wrap`` for a matplotlib figure: text of ``points`` in lines ``inches`` wide, measured at 10x in pixels."""
    return wrap(text, round(points * 10), inches * 72 * 10)


def _lines_height(lines: int, points: float) -> float:
    """Inches taken by ``lines`` lines of text at ``points`` (matplotlib's default line spacing, 1.2, and a little)."""
    return lines * points * 1.3 / 72


def comparison_figure_object(
    analysis: Any, *, cmap: str = "jet", alpha: float = 0.5, shared_scale: bool = False, dpi: int = 150
) -> Figure:
    """The export figure as a matplotlib ``Figure``, before it is saved (``comparison_figure`` writes the PNG).

    Laid out in inches from the text it holds: row labels are wrapped beside the panels (never rotated and cut), a
    row is as tall as its label needs, and the footer as tall as the wrapped caption, so no text leaves the figure.
    """
    results = list(analysis.models.values())
    if not results:
        raise ValueError("the analysis has no models to draw")
    base = display_image(analysis.image.convert("RGB") if analysis.image.mode != "RGB" else analysis.image, 320)
    method = method_label(analysis.method)
    demo = bool(getattr(analysis, "is_demo", False))
    cam_limits = colour_limits([result.cam for result in results], shared_scale)
    spatial_maps = [[last_block_map(result.spatial_attention, s) for s in STAGES] for result in results]
    present = [m for row in spatial_maps for m in row if m is not None]
    shared_attention = colour_limits(present, True)[0] if (shared_scale and present) else None

    label_points, title_points, tick_points, caption_points = 7.0, 7.0, 6.0, 6.5
    panel_w, gap_w, left, right = 1.9, 0.08, 1.6, 0.2
    width = left + 6 * panel_w + 5 * gap_w + right
    row_labels = [  # wrapped as measured (Chinese has no spaces), in the width left of the panels
        "\n".join([result.title, *_wrap_inches(fonts.said(result.weights), label_points, 1.4)]) for result in results
    ]
    cam_titles = [
        "\n".join(
            ([fonts.words("export.method_stage", method=method, stage=analysis.stage)] if row == 0 else [])
            + textwrap.wrap(f"{fonts.class_name(result.target_label, demo)} ({result.target_prob:.0%})", 34)
        )
        for row, result in enumerate(results)
    ]
    picture_h = panel_w * min(base.height / base.width, 1.5)
    panel_hs = [max(picture_h, _lines_height(text.count("\n") + 1, label_points)) for text in row_labels]
    above = [_lines_height(text.count("\n") + 1, title_points) + 0.08 for text in cam_titles]
    below = _lines_height(3 if shared_scale else 1, tick_points) + 0.12  # shared: size, shared range, own range
    caption = comparison_caption(analysis, shared_scale=shared_scale)  # wrapped as measured: Chinese has no spaces
    caption_lines = [  # 8% spare: two renderers' layouts; each check's summary on lines of its own
        line
        for paragraph in [caption, *check_summaries(analysis)]
        for line in _wrap_inches(paragraph, caption_points, (width - 0.3) * 0.92)
    ]
    caption_h = _lines_height(len(caption_lines), caption_points)
    header, bars_h = 0.35, 0.5
    footer = 0.1 + caption_h + 0.12 + bars_h
    height = header + sum(above) + sum(panel_hs) + below * len(results) + footer
    figure = Figure(figsize=(width, height), dpi=dpi)

    column_titles = [fonts.words("export.input")] + [fonts.words("export.stage_spatial", stage=s) for s in STAGES]
    top = header  # inches from the top of the figure
    for row, result in enumerate(results):
        top += above[row]
        panel_h = panel_hs[row]
        bottom = (height - top - panel_h) / height
        axes = [
            figure.add_axes(((left + column * (panel_w + gap_w)) / width, bottom, panel_w / width, panel_h / height))
            for column in range(6)
        ]
        for axis in axes:
            axis.set_xticks([])
            axis.set_yticks([])
        axes[0].imshow(np.asarray(base))
        view = analysis.view_for(result)
        if view.box != (0.0, 0.0, 1.0, 1.0):
            box_left, box_top, box_right, box_bottom = view.box
            axes[0].add_patch(
                Rectangle(
                    (box_left * base.width - 0.5, box_top * base.height - 0.5),
                    (box_right - box_left) * base.width,
                    (box_bottom - box_top) * base.height,
                    fill=False,
                    edgecolor="white",
                    linewidth=1.2,
                    linestyle="--",
                )
            )
        figure.text(0.1 / width, bottom + panel_h / height / 2, row_labels[row], fontsize=label_points, va="center")
        low, high = cam_limits[row]
        axes[1].imshow(np.asarray(overlay(base, result.cam, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)))
        axes[1].set_title(cam_titles[row], fontsize=title_points)
        axes[1].set_xlabel(
            "\n".join(scale_words(low, high, result.cam if shared_scale else None)), fontsize=tick_points
        )
        for column, native in enumerate(spatial_maps[row], start=2):
            axis = axes[column]
            if native is None:  # a blank of the picture's shape keeps the panels aligned
                kind = "SE" if result.channel_attention else fonts.words("export.baseline")
                axis.imshow(np.full((base.height, base.width, 3), 242, dtype=np.uint8))
                axis.text(
                    0.5,
                    0.5,
                    fonts.words("export.no_spatial", kind=kind),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#666666",
                    transform=axis.transAxes,
                    clip_on=True,
                )
                continue
            low, high = shared_attention or finite_range(native)
            axis.imshow(np.asarray(overlay(base, native, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)))
            size = f"{native.shape[0]}x{native.shape[1]}"
            if shared_attention:  # the size, the shared scale, this map's own range: one line each
                words = "\n".join([size, *scale_words(low, high, native)])
            else:
                words = f"{size}, {scale_words(low, high)[0]}"
            axis.set_xlabel(words, fontsize=tick_points)
        if row == 0:
            for axis, text in zip([axes[0], *axes[2:]], column_titles, strict=True):
                axis.set_title(text, fontsize=8)
        top += panel_h + below
    figure.suptitle(fonts.words("export.title"), fontsize=10, y=1 - 0.08 / height, va="top")
    figure.text(
        0.02,
        (footer - 0.1) / height,
        "\n".join(caption_lines),
        fontsize=caption_points,
        va="top",
        ha="left",
        color="#333333",
    )
    _add_colour_bars(figure, cmap, width, height, cam_limits[0] if shared_scale else None, shared_attention)
    fonts.set_figure_fonts(figure)
    return figure


def _add_colour_bars(
    figure: Figure,
    cmap: str,
    width: float,
    height: float,
    cam: tuple[float, float] | None,
    attention: tuple[float, float] | None,
) -> None:
    """Colour bars under the panels: real values when the scale is shared, otherwise just low -> high."""
    if cam or attention:
        bars = [(fonts.words("export.bar_cam"), cam), (fonts.words("export.bar_spatial"), attention)]
    else:
        bars = [(fonts.words("export.bar_each"), None)]
    bar_width = 2.6 / width
    for index, (label, limits) in enumerate(bars):
        axis = figure.add_axes((0.3 + index * (bar_width + 0.08), 0.3 / height, bar_width, 0.1 / height))
        low, high = limits or (0.0, 1.0)
        colourbar = figure.colorbar(ScalarMappable(Normalize(low, high), cmap), cax=axis, orientation="horizontal")
        colourbar.ax.tick_params(labelsize=6, length=2)
        if limits is None:
            colourbar.set_ticks([0.0, 1.0], labels=[fonts.words("export.low"), fonts.words("export.high")])
        colourbar.set_label(label, fontsize=6, labelpad=1)
