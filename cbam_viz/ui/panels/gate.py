"""Inside the gate: which block the visitor picked, and the pictures and equations of that gate's steps.

The steps themselves (``gates.GateSteps``) come from the analysis's own hooked pass when the panel was open while it
ran; opened later, the picked model runs once more with the gate recorders on (``ensure_steps``), since the first
pass kept nothing of the gates' insides. ``registry`` declares the three panels that draw from here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from cbam_viz.analysis import gates
from cbam_viz.analysis.results import Analysis, ModelResult
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import listed, text
from cbam_viz.pipeline import analyze
from cbam_viz.render import fonts
from cbam_viz.render import overlay as render
from cbam_viz.render.text import TEXT_PX, points_px, readable_width
from cbam_viz.vocab import (
    ARCH_TITLES,
    PAPER_LINEUP,
    STAGE_DEPTHS,
    Lineup,
    all_blocks,
    block_name,
    has_channel_attention,
    has_spatial_attention,
    quote,
)


def gated(lineup: Lineup) -> tuple[str, ...]:
    """The models of ``lineup`` that have gates (SE or CBAM), in its order."""
    return tuple(spec.id for spec in lineup.models if has_channel_attention(spec.family))


def first_gate(lineup: Lineup) -> str | None:
    """The model the gate view opens on: the last with both gates (CBAM), else the last with any."""
    both = [name for name in gated(lineup) if has_spatial_attention(lineup.family(name))]
    return (both or list(gated(lineup)) or [None])[-1]


STRONG, WEAK, CHOSEN = "#1a9850", "#d73027", "#3b4cc0"
FIGURE_DPI = 100
CHANNEL_WIDTH_PX = 900
SMALLEST_PT = 8  # the strips' tick labels, the kernel's values and its colour bar's ticks
STEP_TILE, STEP_COLUMNS = 220, 3  # the spatial steps on the picture
KERNEL_WIDTH_PX = 900  # room for each of the 7x7 values in its cell
# the narrowest each figure may be shown with its words readable (a phone scrolls it sideways below that)
CHANNEL_READABLE_WIDTH = readable_width(CHANNEL_WIDTH_PX, points_px(SMALLEST_PT, FIGURE_DPI))
SPATIAL_READABLE_WIDTH = readable_width(
    max(STEP_COLUMNS * (STEP_TILE + 8) + 8, KERNEL_WIDTH_PX), min(TEXT_PX, points_px(SMALLEST_PT, FIGURE_DPI))
)


@dataclass(frozen=True)
class GatePick:
    """The gate the visitor opened: a model, a block (None: the last block of the analysed stage), a channel for
    the equation (None: the strongest)."""

    model_id: str = "cbam_resnet50"  # a model of the page's lineup with gates
    block: str | None = None
    channel: int | None = None

    @classmethod
    def checked(
        cls, model_id: str, block: str | None, channel: float | str | None, lineup: Lineup = PAPER_LINEUP
    ) -> GatePick:
        """The page's or the API's raw values, checked once: a model of ``lineup`` with gates, a block name such as
        ``layer4.2`` (empty: the last block of the analysed stage) and a channel (empty: the strongest)."""
        choices = gated(lineup)
        if model_id in lineup.ids and model_id not in choices:
            titles = listed([lineup.title(name) for name in choices], "or")
            raise CbamVizError(text("error.gate_resnet", model=lineup.title(model_id), choices=titles))
        if model_id not in choices:
            raise CbamVizError(text("error.gate_model", model=quote(model_id), choices=" | ".join(choices)))
        if block in (None, ""):
            block = None
        elif not isinstance(block, str) or block.strip() not in all_blocks():
            raise CbamVizError(text("error.gate_block", block=quote(block)))
        else:
            block = block.strip()
        if isinstance(channel, str):  # the page's box: empty means the strongest
            channel = channel.strip()
            if not channel:
                return cls(model_id, block, None)
            if not channel.isdigit():
                raise CbamVizError(text("error.gate_channel", channel=quote(channel)))
            channel = int(channel)
        if channel is None:
            return cls(model_id, block, None)
        if isinstance(channel, bool) or not isinstance(channel, int | float) or int(channel) != channel:
            raise CbamVizError(text("error.gate_channel", channel=quote(channel)))
        return cls(model_id, block, int(channel))

    def block_for(self, analysis: Analysis) -> str:
        """The picked block, or the last block of the analysed stage."""
        return self.block or default_block(analysis.stage)


def default_block(stage: int) -> str:
    """The block the gate view opens on: the last of the analysed stage, whose output the CAM and plots show."""
    return block_name(stage, STAGE_DEPTHS[stage - 1] - 1)


def steps_for(analysis: Analysis, pick: GatePick) -> tuple[ModelResult, gates.GateSteps]:
    """The picked model's result and its recorded gate steps (one-line errors when they are not there)."""
    result = analysis.models.get(pick.model_id)
    if result is None:
        raise CbamVizError(text("error.gate_not_analysed", model=ARCH_TITLES.get(pick.model_id, pick.model_id)))
    block = pick.block_for(analysis)
    steps = result.gate_steps.get(block)
    if steps is None:
        raise CbamVizError(text("error.gate_not_recorded", block=block))
    if pick.channel is not None and not 0 <= pick.channel < steps.channel.gate.shape[0]:
        raise CbamVizError(
            text("error.gate_channel_range", block=block, last=steps.channel.gate.shape[0] - 1, channel=pick.channel)
        )
    return result, steps


def ensure_steps(analysis: Analysis, model_id: str, picture: Image.Image, device: str, weights_dir=None) -> None:
    """Record every gate of ``model_id`` on the analysed picture, when the analysis ran with the panel closed.

    The same picture (decoded once by the caller), weights and view, so the numbers are those the analysis saw."""
    result = analysis.models.get(model_id)
    if result is None or result.gate_steps:
        return
    options = replace(analysis.options, models=(model_id,), gate_steps=tuple(all_blocks()), interventions=())
    again = analyze(picture, options, device=device, weights_dir=weights_dir)
    result.gate_steps = again.models[model_id].gate_steps


# -------------------------------------------------------------------------------------------------- drawing


def channel_figure(steps: gates.GateSteps, chosen: int, width_px: int = CHANNEL_WIDTH_PX) -> Image.Image:
    """Every channel step as aligned strips, channels sorted once by Mc (strongest left) in every strip; the 10
    strongest and weakest shaded, the equation's channel marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gate = steps.channel
    order = gates.channel_order(steps)
    rows = [
        (fonts.words("picture.avg_pool"), gate.avg),
        (fonts.words("picture.max_pool"), gate.max),
        ("MLP(avg)", gate.mlp_avg),
        ("MLP(max)", gate.mlp_max),
        (fonts.words("picture.sum"), gate.logits if gate.max is not None else None),
        (fonts.words("picture.mc"), gate.gate),
    ]
    if gate.kind == "se":
        rows = [
            (fonts.words("picture.squeeze"), gate.avg),
            (fonts.words("picture.excitation"), gate.mlp_avg),
            (fonts.words("picture.se_gate"), gate.gate),
        ]
    rows = [(title, values) for title, values in rows if values is not None]
    count = gate.gate.shape[0]
    x = np.arange(count)
    rank = {int(channel): position for position, channel in enumerate(order.order)}
    dpi = FIGURE_DPI
    figure = Figure(figsize=(width_px / dpi, 1.0 * len(rows) + 0.9), dpi=dpi)
    axes = figure.subplots(len(rows), 1, sharex=True)
    marked = order.strongest.size
    for ax, (title, values) in zip(np.atleast_1d(axes), rows, strict=True):
        sorted_values = np.asarray(values, dtype=np.float64)[order.order]
        ax.axvspan(-0.5, marked - 0.5, color=STRONG, alpha=0.15, lw=0)
        ax.axvspan(count - marked - 0.5, count - 0.5, color=WEAK, alpha=0.15, lw=0)
        ax.fill_between(x, 0, sorted_values, step="mid", color="#4a4a4a", lw=0)
        ax.axhline(0, color="#999999", lw=0.5)
        ax.axvline(rank[chosen], color=CHOSEN, lw=1.2)
        ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
        ax.tick_params(labelsize=SMALLEST_PT)
        ax.margins(x=0)
    last = np.atleast_1d(axes)[-1]
    words = fonts.words("picture.channels_axis", count=count, block=steps.block, marked=marked, channel=chosen)
    last.set_xlabel(words, fontsize=9)
    fonts.set_figure_fonts(figure)
    height = figure.get_figheight()
    figure.subplots_adjust(left=0.23, right=0.98, top=1 - 0.15 / height, bottom=0.75 / height, hspace=0.15)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return Image.open(buffer).convert("RGB")


def kernel_figure(spatial: gates.SpatialSteps, width_px: int = KERNEL_WIDTH_PX) -> Image.Image:
    """The 7x7 kernel's two slices with their weights printed, on one diverging scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kernels = (
        (fonts.words("picture.kernel_max"), spatial.kernel_max),
        (fonts.words("picture.kernel_mean"), spatial.kernel_mean),
    )
    limit = float(max(np.abs(spatial.kernel_max).max(), np.abs(spatial.kernel_mean).max(), 1e-12))
    dpi = FIGURE_DPI
    figure = Figure(figsize=(width_px / dpi, width_px / dpi / 2 + 0.3), dpi=dpi)
    axes = figure.subplots(1, 2)
    for ax, (title, kernel) in zip(axes, kernels, strict=True):
        image = ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        size = kernel.shape[0]
        if size <= 9:
            for (row, col), value in np.ndenumerate(kernel):
                colour = "white" if abs(value) > 0.6 * limit else "black"
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=SMALLEST_PT, color=colour)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = figure.colorbar(image, ax=list(axes), shrink=0.8, pad=0.02)
    bar.ax.tick_params(labelsize=SMALLEST_PT + 1)
    fonts.set_figure_fonts(figure)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.1)
    return Image.open(buffer).convert("RGB")


def spatial_figure(
    steps: gates.GateSteps, analysis: Analysis, result: ModelResult, cmap: str, alpha: float
) -> Image.Image | None:
    """max_c and mean_c of F', the 7x7 convolution's response, after BatchNorm and Ms, on the picture with the
    app's own map geometry; then the kernel."""
    spatial = steps.spatial
    if spatial is None:
        return None
    tiles = render.map_tiles(
        [
            (fonts.words("picture.step_max"), spatial.max_map),
            (fonts.words("picture.step_mean"), spatial.mean_map),
            (fonts.words("picture.step_conv"), spatial.conv),
            (fonts.words("picture.step_bn"), spatial.bn),
            (fonts.words("picture.step_gate"), spatial.gate),
        ],
        analysis.view_for(result),
        analysis.image,
        cmap=cmap,
        alpha=alpha,
        tile=STEP_TILE,
        columns=STEP_COLUMNS,
        display_width=900,
    )
    kernel = kernel_figure(spatial, width_px=KERNEL_WIDTH_PX)
    sheet = Image.new("RGB", (max(tiles.width, kernel.width), tiles.height + kernel.height), (255, 255, 255))
    sheet.paste(tiles, (0, 0))
    sheet.paste(kernel, ((sheet.width - kernel.width) // 2, tiles.height))
    return sheet


def equations_markdown(steps: gates.GateSteps, chosen: int) -> str:
    """The gate's equations with this picture's numbers, and the check that the pieces give the gate's output."""
    gate = steps.channel
    lines = [text("gate.equations_head", block=steps.block, channel=chosen, count=gate.gate.shape[0]), ""]
    if gate.max is not None:
        lines.append(text("gate.pools", avg=f"{gate.avg[chosen]:.3f}", max=f"{gate.max[chosen]:.3f}"))
    else:
        lines.append(text("gate.squeeze", avg=f"{gate.avg[chosen]:.3f}"))
    lines.append(f"- `{gates.channel_equation(steps, chosen)}`")
    if steps.spatial is not None:
        row, col = gates.strongest_position(steps)
        lines.append(text("gate.position", row=row, col=col, equation=gates.spatial_equation(steps, row, col)))
    error = gates.recomposition_error(steps)
    checked = f"{error['channel']:.1e}" + ("" if error["spatial"] is None else f" (Mc), {error['spatial']:.1e} (Ms)")
    lines += [
        "",
        text("gate.checked", error=checked),
    ]
    return "\n".join(lines)


def chosen_channel(steps: gates.GateSteps, pick: GatePick) -> int:
    """The channel the equations show: the picked one, or the strongest."""
    return int(gates.channel_order(steps).order[0]) if pick.channel is None else pick.channel
