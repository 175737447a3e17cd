"""Can we trust these maps? The page's drawings of the checks in ``checks`` and the box the visitor draws.

The checks run on request (each model's randomised copy is made and dropped in turn); their reports are attached to
the tab's cached analysis (``Analysis.sanity``, ``Analysis.curves``, ``Analysis.pointing``), so a redraw costs no
model run. The box is drawn with two clicks on the picture: its corners, in the displayed picture's pixels, are
turned into the picture's own pixels once, here, as ``--box`` and the API take them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from cbam_viz.analysis.results import Analysis, ModelResult
from cbam_viz.demo import shapes
from cbam_viz.i18n.language import class_name, listed, text
from cbam_viz.render import fonts
from cbam_viz.render import overlay as render
from cbam_viz.render.text import TEXT_PX, points_px, readable_width
from cbam_viz.ui.i18n import number
from cbam_viz.vocab import STAGES

BOX_COLOUR = (255, 40, 200)
CURVES_WIDTH_PX, CURVES_DPI, CURVES_SMALLEST_PT = 960, 100, 8  # the legend's words are the smallest
CURVES_READABLE_WIDTH = readable_width(CURVES_WIDTH_PX, points_px(CURVES_SMALLEST_PT, CURVES_DPI))
# the randomisation tiles: two to a row, each caption on two lines, so its words stay readable in one model's
# column of a laptop (about 370 px) and on a phone (about 300 px)
SANITY_TILE, SANITY_COLUMNS = 120, 2
SANITY_READABLE_WIDTH = readable_width(SANITY_COLUMNS * (SANITY_TILE + 8) + 8, TEXT_PX)


def _step_title(step: str) -> str:
    """A cascading randomisation step as its tile says it: the head first, then each stage down to the stem."""
    if step == "fc":
        return fonts.words("picture.fc_random")
    if step == "stem":
        return fonts.words("picture.plus_stem")
    return fonts.words("picture.plus_layer", layer=step)


def _with_spread(step, metric: str) -> str:
    """A mean with its standard deviation over the draws or classes behind it, when there are several."""
    spread = step.spread(metric)
    if len(spread.values) < 2:
        return number(spread.mean)
    return f"{number(spread.mean)} ± {number(spread.sd)}"


def _caption(step) -> str:
    return f"ρ {_with_spread(step, 'spearman')}\nSSIM {_with_spread(step, 'ssim')}"


def sanity_tiles(analysis: Analysis, result: ModelResult, report, cmap: str, alpha: float) -> Image.Image:
    """The trained CAM, the CAM after each cascading randomisation step, for a random other class, and with one
    layer at a time randomised, each with its Spearman correlation and SSIM against the trained one (mean ± standard
    deviation over the randomised networks, or the random classes, when there are several; the map is the first's)."""
    maps = [(fonts.words("picture.trained"), report.cam)]
    captions = [f"p = {report.target_prob:.2f}"]
    for step in report.cascading:
        maps.append((_step_title(step.step), step.cam))
        captions.append(_caption(step))
    if report.random_logit is not None:
        other = report.random_logit
        label = fonts.class_name(other.label, analysis.is_demo)
        maps.append((fonts.words("picture.other_class", label=label), other.comparison.cam))
        captions.append(_caption(other))
    for step in report.independent:  # one layer at a time, the rest trained: which layer does the map rest on?
        maps.append((fonts.words("picture.only_random", layer=step.step), step.cam))
        captions.append(_caption(step))
    return render.map_tiles(
        maps,
        analysis.view_for(result),
        analysis.image,
        cmap=cmap,
        alpha=alpha,
        tile=SANITY_TILE,
        columns=SANITY_COLUMNS,
        captions=captions,
    )


def sanity_markdown(report, demo: bool = False) -> str:
    """What the numbers say: a map that explains the model changes once the model is destroyed (over how many
    random networks, with their spread), and which random other classes were drawn for this picture."""
    last = report.cascading[-1] if report.cascading else None
    if last is None:
        return ""
    changed = last.spearman is None or not math.isfinite(last.spearman) or last.spearman < 0.5
    verdict = text("sanity.passes" if changed else "sanity.fails")
    draws = len(last.draws)
    if draws > 1:
        rho = _with_spread(last, "spearman")
        lines = [text("sanity.fully_draws", rho=rho, verdict=verdict, draws=draws)]
        lines.append(text("sanity.empty_share", percent=number(last.empty_share * 100, 0)))
    else:
        lines = [text("sanity.fully", rho=number(last.spearman), verdict=verdict)]
    if report.random_logit is not None:
        logit = report.random_logit
        same = logit.spread("spearman").mean > 0.9
        end = text("sanity.same_map") if same else "."
        if len(logit.classes) > 1:
            labels = listed(f"“{class_name(other.label, demo)}”" for other in logit.classes)
            rho = _with_spread(logit, "spearman")
            lines.append(text("sanity.other_classes", count=len(logit.classes), labels=labels, rho=rho) + end)
        else:
            lines.append(
                text("sanity.other_class", label=class_name(logit.label, demo), rho=number(logit.comparison.spearman))
                + end
            )
    return " ".join(lines)


CURVE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")  # the models in their page order


def curves_figure(curves_report, name_of: Callable[[str], str]) -> Image.Image:
    """Deletion and insertion for every model on one plot each, with the random-order baselines and the areas;
    ``name_of`` names each model (``Analysis.title``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(CURVES_WIDTH_PX / CURVES_DPI, 3.8), dpi=CURVES_DPI)
    axes = figure.subplots(1, 2, sharey=True)
    titles = (fonts.words("picture.deletion_title"), fonts.words("picture.insertion_title"))
    for ax, kind, title in zip(axes, ("deletion", "insertion"), titles, strict=True):
        for index, (arch, model) in enumerate(curves_report.models.items()):
            own = getattr(model, kind)
            baseline = getattr(model, f"{kind}_random")
            colour = CURVE_COLOURS[index % len(CURVE_COLOURS)]
            fractions = model.fractions
            ax.plot(fractions, own.probs, color=colour, lw=2, label=f"{name_of(arch)}: {own.auc:.3f}")
            if baseline is not None:
                ax.plot(
                    fractions,
                    baseline.probs,
                    color=colour,
                    lw=1,
                    ls="--",
                    label=f"  {fonts.words('picture.random_order')}: {baseline.auc:.3f}",
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(fonts.words(f"picture.{kind}_axis"), fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=CURVES_SMALLEST_PT, title=fonts.words("picture.auc"), title_fontsize=CURVES_SMALLEST_PT)
    axes[0].set_ylabel(fonts.words("picture.class_probability"), fontsize=9)
    fonts.set_figure_fonts(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return Image.open(buffer).convert("RGB")


def pointing_markdown(pointing, arch: str) -> str:
    """Whether the map's peak falls in the box or mask, and the share of its mass inside, against the share a
    map blind to the object would get."""
    model = pointing.models.get(arch)
    if model is None:
        return ""
    area = pointing.region.get("area_share")
    where = text("pointing.mask" if pointing.region.get("kind") == "mask" else "pointing.box")
    lines = [
        text("pointing.covers", where=where, percent=number(area * 100 if area is not None else None, 0)),
        "",
        text("pointing.head"),
        "|---|---|---|",
        f"| CAM | {_yes(model['cam']['hit'])} | {_share(model['cam']['energy'])} |",
    ]
    for stage in STAGES:
        entry = model["spatial"].get(str(stage))
        if entry is not None:
            hit, share = _yes(entry["hit"]), _share(entry["energy"])
            lines.append(f"| {text('pointing.spatial', stage=stage, block=entry['block'])} | {hit} | {share} |")
    return "\n".join(lines)


def _yes(hit: bool | None) -> str:
    return text("number.missing") if hit is None else text("pointing.yes" if hit else "pointing.no")


def _share(value: float | None) -> str:
    return text("number.missing") if value is None or not math.isfinite(value) else f"{value:.0%}"


# ---------------------------------------------------------------------------------------------------- the box


def corners_to_box(first: Sequence[float], second: Sequence[float], analysis: Analysis) -> tuple[float, ...]:
    """Two clicked corners on the displayed picture -> the box in the picture's own pixels (x0 < x1, y0 < y1)."""
    scale = analysis.original_size[0] / analysis.image.width
    x0, x1 = sorted((float(first[0]), float(second[0])))
    y0, y1 = sorted((float(first[1]), float(second[1])))
    if x1 - x0 < 1:
        x1 = x0 + 1
    if y1 - y0 < 1:
        y1 = y0 + 1
    return tuple(round(value * scale, 1) for value in (x0, y0, x1 + 1, y1 + 1))


def box_text(box: Sequence[float]) -> str:
    """A box as the four numbers the page shows and reads."""
    return ",".join(f"{value:g}" for value in box)


def picture_with_box(analysis: Analysis, box: Sequence[float] | None, corner: Sequence[float] | None = None):
    """The displayed picture with the box (given in the picture's own pixels) or the first clicked corner."""
    picture = analysis.image.convert("RGB").copy()
    draw = ImageDraw.Draw(picture)
    width = max(2, round(max(picture.size) / 200))
    if box is not None:
        scale = analysis.image.width / analysis.original_size[0]
        draw.rectangle([value * scale for value in box], outline=BOX_COLOUR, width=width)
    if corner is not None:
        x, y = corner
        radius = 3 * width
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], outline=BOX_COLOUR, width=width)
    return picture


def example_mask(picture: Image.Image, name: str, seed: int, size: int) -> np.ndarray | None:
    """The true mask of a gallery shape (its file is named after its class), when the picture is that example."""
    if name not in shapes.CLASSES or picture.size != (size, size):
        return None
    sample = shapes.render_sample(seed, shapes.CLASSES.index(name), width=size, label=shapes.CLASSES.index(name))
    if not np.array_equal(np.asarray(picture.convert("RGB")), sample.image):
        return None
    return sample.mask
