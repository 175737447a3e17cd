"""Pictures of the analysis: heat-map overlays, channel-attention plots, spatial-attention grids, the export figure.

Pure functions, safe to call from several request threads at once: overlays are numpy + a colormap lookup table (no
figure at all, a few milliseconds each), and plots use matplotlib's object API (``Figure`` + ``FigureCanvasAgg``),
never pyplot and never global rc settings.

Choices users see:

* Overlays are normalised to the map's own min..max unless limits are given (``colour_limits`` makes one shared
  scale across models); pixels the model never saw (outside a centre crop) are shown grey and dimmed, not coloured.
* Per stage, spatial attention is shown for the stage's LAST block (the grid's drill-down shows every block); the
  export figure does the same and says so in its caption.
"""

from __future__ import annotations

import io
import math
import textwrap
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image, ImageDraw, ImageFont

from cbam_viz.imaging import ModelView, display_image, map_to_image
from cbam_viz.vocab import ARCH_TITLES, STAGES, method_label, stage_blocks

CHANNEL_CMAP = "viridis"
_UNSEEN_SCALE, _UNSEEN_OFFSET = 0.35, 70.0  # unseen pixels: grey = luminance * 0.35 + 70 (dim, colourless)
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)


# -------------------------------------------------------------------------------------------------- helpers


@lru_cache(maxsize=32)
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap, so colouring a map is one fancy-indexing step."""
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}; use a matplotlib name such as jet, viridis or inferno") from None
    return np.rint(colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.uint8)


_THREAD_FONTS = threading.local()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font, one object per thread (a FreeType face must not render in two threads at once)."""
    fonts = _THREAD_FONTS.__dict__.setdefault("by_size", {})
    if size not in fonts:
        fonts[size] = ImageFont.load_default(size=size)
    return fonts[size]


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def _scaled(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """values -> [0, 1] (NaN kept). A flat map (high == low) shows as the colormap's low end."""
    if high > low:
        return np.clip((values - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    return np.where(np.isnan(values), np.nan, 0.0).astype(np.float32)


def format_value(value: float) -> str:
    """Compact number for legends: 3 significant digits."""
    return f"{value:.3g}" if value != 0 else "0"


def format_range(low: float, high: float) -> str:
    """Both ends with the decimals the span needs, e.g. ``0.00 to 2.85`` (so 2e-06 reads as 0.00 beside 2.85)."""
    span = abs(high - low) or abs(high) or 1.0
    decimals = min(6, max(0, 2 - math.floor(math.log10(span))))
    return f"{low:.{decimals}f} to {high:.{decimals}f}"


def _to_image(figure: Figure) -> Image.Image:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _message_image(text: str, width: int = 480, height: int = 96) -> Image.Image:
    """A plain panel with a sentence, for "nothing to show" cases (cheaper and clearer than an empty plot)."""
    image = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.multiline_text((width / 2, height / 2), text, fill=(90, 90, 90), font=_font(15), anchor="mm", align="center")
    return image


# ------------------------------------------------------------------------------------------------- overlays


def overlay(
    image: Image.Image,
    native_map: np.ndarray,
    view: ModelView,
    *,
    cmap: str = "jet",
    alpha: float = 0.5,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Image.Image:
    """The picture with a map at its native resolution laid over it (resampled once, bilinear, to the picture).

    ``alpha`` is the map's opacity (0: the photo, 1: only the map). Colours span ``vmin..vmax`` (default: the map's
    own min..max). Pixels outside ``view.box`` were not seen by the model: they are greyed and dimmed.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    photo = image if image.mode == "RGB" else image.convert("RGB")
    mapped = map_to_image(native_map, view, photo.size)
    own_low, own_high = _finite_range(native_map)
    low = own_low if vmin is None else vmin
    high = own_high if vmax is None else vmax
    scaled = _scaled(mapped, low, high)
    seen = ~np.isnan(mapped)
    colours = _lut(cmap)[np.where(seen, np.rint(np.nan_to_num(scaled) * 255.0), 0).astype(np.uint8)]
    base = np.asarray(photo, dtype=np.float32)
    blended = base * np.float32(1.0 - alpha) + colours.astype(np.float32) * np.float32(alpha)
    if not seen.all():
        luminance = base @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        grey = luminance * np.float32(_UNSEEN_SCALE) + np.float32(_UNSEEN_OFFSET)
        blended[~seen] = grey[~seen][:, None]
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def colour_limits(maps: Sequence[np.ndarray], shared: bool) -> list[tuple[float, float]]:
    """(low, high) for each map: its own range, or (shared=True) one range across all, e.g. to compare models."""
    ranges = [_finite_range(m) for m in maps]
    if not shared or not ranges:
        return ranges
    common = (min(low for low, _ in ranges), max(high for _, high in ranges))
    return [common] * len(ranges)


def colorbar_image(
    cmap: str, vmin: float, vmax: float, *, width: int = 256, height: int = 44, label: str = ""
) -> Image.Image:
    """A small horizontal legend: the colour ramp, its end values (and the middle), and an optional label."""
    image = Image.new("RGB", (width, height), _BACKGROUND)
    margin, bar_height = 6, 12
    ramp = _lut(cmap)[np.linspace(0, 255, width - 2 * margin).astype(np.uint8)]
    image.paste(Image.fromarray(np.repeat(ramp[None], bar_height, axis=0)), (margin, 2))
    draw = ImageDraw.Draw(image)
    font = _font(11)
    row = 2 + bar_height + 2
    draw.text((margin, row), format_value(vmin), fill=_TEXT, font=font, anchor="la")
    draw.text((width - margin, row), format_value(vmax), fill=_TEXT, font=font, anchor="ra")
    if label:
        draw.text((width / 2, row), label, fill=_TEXT, font=font, anchor="ma")
    else:
        draw.text((width / 2, row), format_value((vmin + vmax) / 2), fill=_TEXT, font=font, anchor="ma")
    return image


# --------------------------------------------------------------------------------------- attention pictures


@dataclass(frozen=True)
class ChannelSummary:
    """One stage's channel attention as numbers: what the plot draws (and what a table or CSV would show)."""

    blocks: tuple[str, ...]  # "layer3.0", ... in order
    order: np.ndarray  # channel indices, strongest stage mean first
    matrix: np.ndarray  # (blocks, channels) gate values, columns in ``order``
    stage_mean: np.ndarray  # (channels,) mean over blocks, in ``order`` (descending)
    spread: np.ndarray  # (channels,) std over blocks, in ``order``
    block_mean: np.ndarray  # (blocks,) mean gate of each block
    block_std: np.ndarray  # (blocks,) std over the channels of each block


def channel_summary(vectors: Mapping[str, np.ndarray], stage: int) -> ChannelSummary | None:
    """Sort one stage's channel gates by the stage mean; ``None`` when the model has none (baseline ResNet-50).

    Accepts SE's (C, 1, 1) or (1, C, 1, 1) and CBAM's (C,) or (1, C) alike (flattened)."""
    blocks = stage_blocks(vectors, stage)
    if not blocks:
        return None
    rows = [np.asarray(vectors[name], dtype=np.float32).reshape(-1) for name in blocks]
    if len({row.size for row in rows}) != 1:
        raise ValueError(f"stage {stage} blocks have different channel counts: {[row.size for row in rows]}")
    matrix = np.stack(rows)
    order = np.argsort(-matrix.mean(axis=0), kind="stable")
    ordered = matrix[:, order]
    return ChannelSummary(
        blocks=tuple(blocks),
        order=order,
        matrix=ordered,
        stage_mean=ordered.mean(axis=0),
        spread=ordered.std(axis=0),
        block_mean=matrix.mean(axis=1),
        block_std=matrix.std(axis=1),
    )


def channel_attention_plot(
    vectors: Mapping[str, np.ndarray], stage: int, *, title: str = "", width_px: int = 900, dpi: int = 100
) -> Image.Image:
    """Channel attention of every block of one stage, for SE and CBAM alike.

    Top: one heat strip per block (0 = channel switched off, 1 = passed on), channels sorted by the stage mean so
    the same channel sits in the same column for every block; each row is labelled with its mean +- std.
    Bottom: the stage mean per channel with a band of +- one std across the blocks.
    """
    summary = channel_summary(vectors, stage)
    if summary is None:
        return _message_image(f"no channel attention in stage {stage}\n(the baseline ResNet-50 has none)", width_px)
    blocks, channels = summary.blocks, summary.matrix.shape[1]
    strip_inches = 0.32 * len(blocks) + 0.5
    figure = Figure(figsize=(width_px / dpi, strip_inches + 2.6), dpi=dpi)
    grid = figure.add_gridspec(
        2,
        2,
        height_ratios=(strip_inches, 1.6),
        width_ratios=(40, 1),
        hspace=0.45,
        left=0.2,
        right=0.92,
        top=1 - 0.55 / (strip_inches + 2.6),
        bottom=0.35 / (strip_inches + 2.6),
    )
    strip_axes = figure.add_subplot(grid[0, 0])
    picture = strip_axes.imshow(
        summary.matrix, aspect="auto", cmap=CHANNEL_CMAP, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    strip_axes.set_yticks(range(len(blocks)))
    labels = [
        f"{name}  {mean:.2f} ± {std:.2f}"
        for name, mean, std in zip(blocks, summary.block_mean, summary.block_std, strict=True)
    ]
    strip_axes.set_yticklabels(labels, fontsize=8)
    strip_axes.set_xticks([])
    strip_axes.set_xlabel(f"{channels} channels, sorted by the stage mean (strongest left)", fontsize=8)
    colourbar = figure.colorbar(picture, cax=figure.add_subplot(grid[0, 1]))
    colourbar.ax.tick_params(labelsize=7)
    colourbar.set_label("gate", fontsize=8)

    line_axes = figure.add_subplot(grid[1, 0])
    positions = np.arange(channels)
    line_axes.fill_between(
        positions,
        np.clip(summary.stage_mean - summary.spread, 0, 1),
        np.clip(summary.stage_mean + summary.spread, 0, 1),
        color="#9ecae1",
        linewidth=0,
        label="± std across blocks",
    )
    line_axes.plot(positions, summary.stage_mean, color="#08519c", linewidth=1.2, label="stage mean")
    line_axes.set_xlim(-0.5, channels - 0.5)
    line_axes.set_ylim(0.0, 1.0)
    line_axes.set_xticks([])
    line_axes.tick_params(labelsize=7)
    line_axes.set_ylabel("gate", fontsize=8)
    line_axes.legend(fontsize=7, loc="upper right", frameon=False)
    overall = f"mean {summary.matrix.mean():.2f} ± {summary.matrix.std():.2f} over {len(blocks)} blocks"
    figure.suptitle(title or f"Stage {stage} channel attention ({overall})", fontsize=10)
    return _to_image(figure)


def spatial_attention_grid(
    maps: Mapping[str, np.ndarray],
    view: ModelView,
    image: Image.Image,
    *,
    stage: int | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    shared_scale: bool = False,
    tile: int = 256,
    columns: int = 4,
) -> Image.Image:
    """Spatial attention laid over the picture: one tile per stage (its last block) or, with ``stage``, one tile
    per block of that stage. Each tile is labelled with its block, map size and colour range."""
    if stage is None:
        names = [stage_blocks(maps, s)[-1] for s in STAGES if stage_blocks(maps, s)]
    else:
        names = stage_blocks(maps, stage)
    if not names:
        return _message_image("no spatial attention (SE/baseline)", width=max(tile, 320))
    base = display_image(image.convert("RGB") if image.mode != "RGB" else image, max_side=tile)
    limits = colour_limits([maps[name] for name in names], shared_scale)
    font = _font(13)
    header, footer, pad = 22, 20, 8
    cells = min(columns, len(names))
    lines = -(-len(names) // cells)
    cell_w, cell_h = base.width + pad, header + base.height + footer
    sheet = Image.new("RGB", (cells * cell_w + pad, lines * cell_h + pad), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, (name, (low, high)) in enumerate(zip(names, limits, strict=True)):
        native = np.asarray(maps[name], dtype=np.float32)
        while native.ndim > 2:
            native = native[0]
        x = pad + (index % cells) * cell_w
        y = pad + (index // cells) * cell_h
        label = f"stage {name[5]}: {name}" if stage is None else name
        draw.text((x, y + 2), label, fill=_TEXT, font=font)
        sheet.paste(overlay(base, native, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high), (x, y + header))
        caption = f"{native.shape[0]}x{native.shape[1]} map, {format_range(low, high)}"
        draw.text((x, y + header + base.height + 3), caption, fill=(90, 90, 90), font=_font(11))
    return sheet


# ------------------------------------------------------------------------------------------- export figure


def _last_block_map(spatial: Mapping[str, np.ndarray], stage: int) -> np.ndarray | None:
    blocks = stage_blocks(spatial, stage)
    if not blocks:
        return None
    native = np.asarray(spatial[blocks[-1]], dtype=np.float32)
    while native.ndim > 2:
        native = native[0]
    return native


def _same_target(results: Iterable[Any]) -> str | None:
    labels = {result.target_label for result in results}
    return labels.pop() if len(labels) == 1 else None


def comparison_caption(analysis: Any, *, shared_scale: bool = False) -> str:
    """The export figure's caption in plain words (also useful next to the app's panels)."""
    method = method_label(analysis.method)
    target = _same_target(analysis.models.values())
    target_words = f"the class “{target}”" if target else "each model's own top class"
    scale_words = (
        "Colours use one scale per kind of map across all models (colour bars)."
        if shared_scale
        else "Each panel is coloured from its own minimum to maximum (printed under it)."
    )
    views = [analysis.view_for(result) for result in analysis.models.values()] or [analysis.view]
    cropped = any(view.box != (0, 0, 1, 1) for view in views)
    unseen = " Grey: parts of the picture the model did not see." if cropped else ""
    return (
        f"Rows: models. Columns: the input, {method} for {target_words} at stage {analysis.stage}, and CBAM's "
        f"spatial attention in the last block of each stage 1-4. {analysis.view.note} {scale_words}{unseen} "
        f"Weights: {analysis.weights_note}"
    )


def comparison_figure(
    analysis: Any, *, cmap: str = "jet", alpha: float = 0.5, shared_scale: bool = False, dpi: int = 150
) -> bytes:
    """Publication-style PNG: one row per model; columns the input, the CAM (method, target, probability) and the
    spatial attention of stages 1-4 (last block; "no spatial attention" for SE and the baseline)."""
    results = list(analysis.models.values())
    if not results:
        raise ValueError("the analysis has no models to draw")
    base = display_image(analysis.image.convert("RGB") if analysis.image.mode != "RGB" else analysis.image, 320)
    method = method_label(analysis.method)
    cam_limits = colour_limits([result.cam for result in results], shared_scale)
    spatial_maps = [[_last_block_map(result.spatial_attention, s) for s in STAGES] for result in results]
    present = [m for row in spatial_maps for m in row if m is not None]
    shared_attention = colour_limits(present, True)[0] if (shared_scale and present) else None

    panel_w = 1.9
    panel_h = panel_w * min(base.height / base.width, 1.5)
    header, footer, left = 0.55, 1.25, 1.45
    width = left + panel_w * 6 + 0.25
    height = header + len(results) * (panel_h + 0.5) + footer
    figure = Figure(figsize=(width, height), dpi=dpi)
    grid = figure.add_gridspec(
        len(results),
        6,
        left=left / width,
        right=1 - 0.25 / width,
        top=1 - header / height,
        bottom=footer / height,
        wspace=0.08,
        hspace=0.42,
    )
    column_titles = ["input"] + [f"stage {s} spatial" for s in STAGES]
    for row, result in enumerate(results):
        axes = [figure.add_subplot(grid[row, column]) for column in range(6)]
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
        name = ARCH_TITLES.get(result.arch, result.arch)
        weights_lines = textwrap.wrap(result.weights, 26, break_on_hyphens=False)[:3]
        axes[0].set_ylabel("\n".join([name, *weights_lines]), fontsize=7)
        low, high = cam_limits[row]
        axes[1].imshow(np.asarray(overlay(base, result.cam, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)))
        target = f"{result.target_label} ({result.target_prob:.0%})"
        axes[1].set_title(f"{method} (stage {analysis.stage})\n{target}" if row == 0 else target, fontsize=7)
        axes[1].set_xlabel(format_range(low, high), fontsize=6)
        for column, native in enumerate(spatial_maps[row], start=2):
            axis = axes[column]
            if native is None:  # a blank of the picture's shape keeps the panels aligned
                kind = "SE" if result.channel_attention else "baseline"
                axis.imshow(np.full((base.height, base.width, 3), 242, dtype=np.uint8))
                axis.text(
                    0.5,
                    0.5,
                    f"no spatial\nattention\n({kind})",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#666666",
                    transform=axis.transAxes,
                )
                continue
            low, high = shared_attention or _finite_range(native)
            axis.imshow(np.asarray(overlay(base, native, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)))
            axis.set_xlabel(f"{native.shape[0]}x{native.shape[1]}, {format_range(low, high)}", fontsize=6)
        if row == 0:
            for axis, text in zip([axes[0], *axes[2:]], column_titles, strict=True):
                axis.set_title(text, fontsize=8)
    figure.suptitle("Where the models look", fontsize=10, y=1 - 0.12 / height, va="top")
    caption = comparison_caption(analysis, shared_scale=shared_scale)
    figure.text(
        0.02,
        (footer - 0.35) / height,
        "\n".join(textwrap.wrap(caption, int(width * 16))),
        fontsize=6.5,
        va="top",
        ha="left",
        color="#333333",
    )
    _add_colour_bars(figure, cmap, width, height, cam_limits[0] if shared_scale else None, shared_attention)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _add_colour_bars(
    figure: Figure,
    cmap: str,
    width: float,
    height: float,
    cam: tuple[float, float] | None,
    attention: tuple[float, float] | None,
) -> None:
    """Colour bars under the panels: real values when the scale is shared, otherwise just low -> high."""
    bars = [("CAM", cam), ("spatial attention", attention)] if cam or attention else [("each panel", None)]
    bar_width = 2.6 / width
    for index, (label, limits) in enumerate(bars):
        axis = figure.add_axes(
            (0.3 + index * (bar_width + 0.08), 0.25 / height + 0.02 / height, bar_width, 0.1 / height)
        )
        low, high = limits or (0.0, 1.0)
        colourbar = figure.colorbar(ScalarMappable(Normalize(low, high), cmap), cax=axis, orientation="horizontal")
        colourbar.ax.tick_params(labelsize=6, length=2)
        if limits is None:
            colourbar.set_ticks([0.0, 1.0], labels=["low", "high"])
        colourbar.set_label(label, fontsize=6, labelpad=1)
