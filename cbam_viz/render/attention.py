"""Pictures of the attention gates: channel-attention plots and spatial-attention grids.

Per stage, spatial attention is shown for the stage's LAST block (the grid's drill-down shows every block); the
export figure does the same and says so in its caption.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from cbam_viz.imaging.view import ModelView
from cbam_viz.render import fonts
from cbam_viz.render.overlay import cmap_colours, colour_limits, native_grid, tile_sheet
from cbam_viz.render.text import (
    BACKGROUND,
    DISPLAY_WIDTH,
    MUTED,
    TEXT_PX,
    Sheet,
    line_height,
    message_image,
    text_width,
    wrap,
)
from cbam_viz.vocab import STAGES, split_block, stage_blocks

CHANNEL_CMAP = "viridis"


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


def _resample_columns(values: np.ndarray, width: int, *, smooth: bool = False) -> np.ndarray:
    """(rows, n) -> (rows, width): box averages when there are more columns than pixels (every channel counts), else
    each column repeated (``smooth``: linearly interpolated between column centres, for a line)."""
    n = values.shape[1]
    if n == width:
        return values
    if n < width and smooth:
        positions = (np.arange(width) + 0.5) * n / width - 0.5
        return np.stack([np.interp(positions, np.arange(n), row) for row in values])
    starts = (np.arange(width) * n) // width
    if n < width:
        return values[:, starts]
    counts = np.diff(np.append(starts, n))
    return np.add.reduceat(values, starts, axis=1) / counts


def channel_attention_plot(
    vectors: Mapping[str, np.ndarray],
    stage: int,
    *,
    title: str = "",
    width_px: int = 900,
    dpi: int = 100,
    display_width: int = DISPLAY_WIDTH,
) -> Image.Image:
    """Channel attention of every block of one stage, for SE and CBAM alike.

    Top: one heat strip per block (0 = channel switched off, 1 = passed on), channels sorted by the stage mean so
    the same channel sits in the same column for every block; each row is labelled with its mean +- std.
    Bottom, on the same channel axis: the stage mean per channel with a band of +- one std across the blocks.

    Drawn with Pillow at ``width_px`` and laid out for ``display_width`` (text ``TEXT_PX`` px or more there; 720 px
    shown at 400 is a 1.8x rendering, crisp on high-DPI screens). ``dpi`` is accepted for callers of the former
    matplotlib version and has no effect.
    """
    del dpi
    return _channel_sheet(vectors, stage, title=title, width_px=width_px, display_width=display_width).image


def _channel_sheet(
    vectors: Mapping[str, np.ndarray], stage: int, *, title: str, width_px: int, display_width: int
) -> Sheet:
    summary = channel_summary(vectors, stage)
    if summary is None:
        message = fonts.words("picture.no_channel", stage=stage)
        return Sheet(message_image(message, width_px))
    if width_px < 1 or display_width < 1:
        raise ValueError(f"widths must be positive, got width_px={width_px}, display_width={display_width}")
    scale = width_px / display_width

    def px(value: float) -> int:
        return max(1, round(value * scale))

    text_px, title_px = max(10, px(TEXT_PX)), max(11, px(TEXT_PX + 2))
    line, title_line = line_height(text_px), line_height(title_px)
    blocks, channels = summary.blocks, summary.matrix.shape[1]
    margin = px(10)
    inner = width_px - 2 * margin
    stats = [f"{m:.2f} ± {s:.2f}" for m, s in zip(summary.block_mean, summary.block_std, strict=True)]
    name_w = math.ceil(max(text_width(name, text_px) for name in blocks))
    stat_w = math.ceil(max(text_width(stat, text_px) for stat in stats))
    key_w = px(6) + px(10) + px(4) + math.ceil(text_width("1", text_px))
    label_w = name_w + px(10) + stat_w + px(8)
    show_stats = inner - label_w - key_w >= 0.3 * inner  # else the strip would be a sliver: the names alone
    if not show_stats:
        label_w = name_w + px(8)
    strip_left = margin + label_w
    strip_w = max(1, width_px - margin - key_w - strip_left)

    overall = fonts.words(
        "picture.channel_overall",
        mean=f"{summary.matrix.mean():.2f}",
        std=f"{summary.matrix.std():.2f}",
        count=len(blocks),
    )
    title_lines = wrap(title or fonts.words("picture.channel_title", stage=stage), title_px, inner, bold=True)
    subtitle_lines = wrap(overall, text_px, inner)
    note = fonts.words("picture.channel_note", channels=channels)
    note_lines = wrap(note, text_px, inner)
    rows = len(blocks)
    strip_h = max(rows * max(px(20), line + px(2)), math.ceil(2.4 * line))  # room for the key's "1" and "0"
    chart_h = px(90)

    y = margin
    title_top = y
    y += len(title_lines) * title_line + len(subtitle_lines) * line + px(8)
    strip_top = y
    y += strip_h + px(6)
    note_top = y
    y += len(note_lines) * line + px(12)
    chart_top = y
    y += chart_h + px(12)
    legend_top = y
    legend_rows, legend_items = _legend_rows(text_px, margin, width_px - margin, px)
    y += legend_rows * line
    sheet = Sheet.blank(width_px, y + margin)

    for index, text in enumerate(title_lines):
        sheet.text((margin, title_top + index * title_line), text, title_px, bold=True)
    for index, text in enumerate(subtitle_lines):
        sheet.text((margin, title_top + len(title_lines) * title_line + index * line), text, text_px, fill=MUTED)

    # heat strips, one row per block, a thin white line between rows
    edges = np.rint(np.linspace(0, strip_h, rows + 1)).astype(int)
    colours = cmap_colours(CHANNEL_CMAP, _resample_columns(summary.matrix, strip_w))
    strip = colours[np.repeat(np.arange(rows), np.diff(edges))]
    for edge in edges[1:-1]:
        strip[edge : edge + max(1, px(1))] = BACKGROUND
    sheet.paste(Image.fromarray(strip), (strip_left, strip_top))
    for index, name in enumerate(blocks):
        middle = strip_top + (edges[index] + edges[index + 1]) / 2
        sheet.text((margin, middle), name, text_px, anchor="lm")
        if show_stats:
            sheet.text((strip_left - px(8), middle), stats[index], text_px, anchor="rm", fill=MUTED)
    key_left = strip_left + strip_w + px(6)
    ramp = cmap_colours(CHANNEL_CMAP, np.linspace(1.0, 0.0, strip_h))
    sheet.paste(Image.fromarray(np.repeat(ramp[:, None], px(10), axis=1)), (key_left, strip_top))
    sheet.text((key_left + px(10) + px(4), strip_top), "1", text_px, anchor="la")
    sheet.text((key_left + px(10) + px(4), strip_top + strip_h), "0", text_px, anchor="ld")
    for index, text in enumerate(note_lines):
        sheet.text((margin, note_top + index * line), text, text_px, fill=MUTED)

    # the stage mean with its +- std band, on the strip's channel axis
    chart = np.full((chart_h, strip_w, 3), 255, dtype=np.uint8)
    mean, low, high = _resample_columns(
        np.stack([summary.stage_mean, summary.stage_mean - summary.spread, summary.stage_mean + summary.spread]),
        strip_w,
        smooth=True,
    )

    def to_y(values: np.ndarray | float) -> np.ndarray:
        return np.rint((1.0 - np.clip(values, 0.0, 1.0)) * (chart_h - 1)).astype(int)

    rows_y = np.arange(chart_h)[:, None]
    chart[to_y(0.5)] = (225, 225, 225)
    chart[(rows_y >= to_y(high)[None]) & (rows_y <= to_y(low)[None])] = (158, 202, 225)  # #9ecae1
    chart[[0, -1]] = (170, 170, 170)
    chart[:, [0, -1]] = (170, 170, 170)
    sheet.paste(Image.fromarray(chart), (strip_left, chart_top))
    points = list(zip((strip_left + np.arange(strip_w)).tolist(), (chart_top + to_y(mean)).tolist(), strict=True))
    sheet.draw.line(points, fill=(8, 81, 156), width=max(1, px(1.5)), joint="curve")
    for value, text in ((1.0, "1"), (0.5, "0.5"), (0.0, "0")):
        sheet.text((strip_left - px(6), chart_top + int(to_y(value))), text, text_px, anchor="rm", fill=MUTED)

    for kind, x, row, text_x, text in legend_items:
        middle = legend_top + row * line + line // 2
        sample = (x, middle - px(5), x + px(22), middle + px(5))
        if kind == "line":
            sheet.draw.line((sample[0], middle, sample[2], middle), fill=(8, 81, 156), width=max(1, px(1.5)))
        else:
            sheet.draw.rectangle((sample[0], sample[1], sample[2] - 1, sample[3] - 1), fill=(158, 202, 225))
        sheet.areas.append(sample)
        sheet.text((text_x, middle), text, text_px, anchor="lm")
    return sheet


def _legend_rows(text_px: int, left: int, right: int, px: Any) -> tuple[int, list[tuple[str, int, int, int, str]]]:
    """Place the chart's legend items left to right, wrapping to a new row when one would cross ``right``."""
    items, x, row = [], left, 0
    for kind, text in (("line", fonts.words("picture.stage_mean")), ("band", fonts.words("picture.std_band"))):
        needed = px(22) + px(6) + math.ceil(text_width(text, text_px))
        if x > left and x + needed > right:
            x, row = left, row + 1
        items.append((kind, x, row, x + px(22) + px(6), text))
        x += needed + px(18)
    return row + 1, items


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
    display_width: int = DISPLAY_WIDTH,
) -> Image.Image:
    """Spatial attention laid over the picture: one tile per stage (its last block) or, with ``stage``, one tile
    per block of that stage. Each tile is titled with its block, and captioned with its map size and colour range.

    Tiles are the picture with its longer side ``tile`` px (small pictures enlarged); a cell is widened when its
    text needs more room than its tile (a 8x160 picture), and text is sized for ``display_width`` and kept clear
    of the top-left corner."""
    return _grid_sheet(
        maps,
        view,
        image,
        stage=stage,
        cmap=cmap,
        alpha=alpha,
        shared_scale=shared_scale,
        tile=tile,
        columns=columns,
        display_width=display_width,
    ).image


def _grid_sheet(
    maps: Mapping[str, np.ndarray],
    view: ModelView,
    image: Image.Image,
    *,
    stage: int | None,
    cmap: str,
    alpha: float,
    shared_scale: bool,
    tile: int,
    columns: int,
    display_width: int,
) -> Sheet:
    if stage is None:
        names = [stage_blocks(maps, s)[-1] for s in STAGES if stage_blocks(maps, s)]
    else:
        names = stage_blocks(maps, stage)
    if not names:
        return Sheet(message_image(fonts.words("picture.no_spatial"), width=max(tile, 320)))
    limits = colour_limits([maps[name] for name in names], shared_scale)
    titles = [
        fonts.words("picture.stage_block", stage=split_block(name)[0], block=name) if stage is None else name
        for name in names
    ]
    natives = [native_grid(maps[name]) for name in names]
    return tile_sheet(
        titles, natives, limits, view, image, cmap, alpha, tile, columns, display_width, shared=shared_scale
    )


# ------------------------------------------------------------------------------------------- export figure


def last_block_map(spatial: Mapping[str, np.ndarray], stage: int) -> np.ndarray | None:
    """The spatial map of ``stage``'s last block on its native grid (what a stage's tile shows), or None."""
    blocks = stage_blocks(spatial, stage)
    return native_grid(spatial[blocks[-1]]) if blocks else None
