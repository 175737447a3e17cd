"""Pictures of the analysis: heat-map overlays, colour bars, channel-attention plots, spatial-attention grids, and the
export figure.

The app's panels (overlays, colour bars, spatial grids, channel plots) are numpy colormap lookup tables and Pillow, no
figure at all: a few milliseconds each, where a matplotlib figure per panel cost more than the analysis itself. Only
the export figure uses matplotlib (its object API, ``Figure`` + ``FigureCanvasAgg``: never pyplot, never global rc
settings). Every function is pure and safe to call from several request threads at once.

Choices users see:

* Overlays are normalised to the map's own min..max unless limits are given (``colour_limits`` makes one shared
  scale across models); pixels the model never saw (outside a centre crop) are shown grey and dimmed, not coloured.
* Per stage, spatial attention is shown for the stage's LAST block (the grid's drill-down shows every block); the
  export figure does the same and says so in its caption.
* Panels are laid out for the size the app shows them at (``display_width``, about 400 px per model column): text is
  at least 13 px there, titles keep clear of the top-left corner (where Gradio puts its label chip), and pictures
  smaller than a tile are enlarged so that an 8 px wide picture still gets readable panels.
"""

from __future__ import annotations

import io
import math
import textwrap
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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

from cbam_viz import fonts
from cbam_viz.imaging import ModelView, display_image, map_to_image
from cbam_viz.vocab import ARCH_TITLES, STAGES, method_label, split_block, stage_blocks

CHANNEL_CMAP = "viridis"
DISPLAY_WIDTH = 400  # px: how wide the app shows one model's panel (three columns on a 1280 px page)
TEXT_PX = 13  # smallest text, in px at the displayed size
CHIP_CLEARANCE = 30  # px at the displayed size kept free of text at the top (Gradio's label chip sits there)
_UNSEEN_SCALE, _UNSEEN_OFFSET = 0.35, 70.0  # unseen pixels: grey = luminance * 0.35 + 70 (dim, colourless)
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_MUTED = (90, 90, 90)

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive


# -------------------------------------------------------------------------------------------------- helpers


@lru_cache(maxsize=32)
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap, so colouring a map is one fancy-indexing step."""
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}; use a matplotlib name such as jet, viridis or inferno") from None
    return np.rint(colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.uint8)


def _colours(cmap: str, scaled: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB through the lookup table (the same rounding everywhere, so tests can compare)."""
    return _lut(cmap)[np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)]


_THREAD_FONTS = threading.local()


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A TrueType face of ``size`` px in the pictures' typeface (``fonts.face``: DejaVu Sans, or a Chinese face for
    the Chinese page), one per thread (a FreeType face must not render in two threads at once)."""
    return _font_of(fonts.face(bold), size)


def _font_of(face: fonts.Face, size: int) -> ImageFont.FreeTypeFont:
    loaded = _THREAD_FONTS.__dict__.setdefault("by_size", {})
    key = (face, max(1, int(size)))
    if key not in loaded:
        loaded[key] = ImageFont.truetype(face.path, key[1], index=face.index)
    return loaded[key]


def _line_height(size: int) -> int:
    ascent, descent = _font(size).getmetrics()
    return ascent + descent


def _wrap(text: str, size: int, max_width: float, bold: bool = False) -> list[str]:
    """Greedy word wrap by measured width; a word wider than the line (or a Chinese sentence, which has no spaces)
    is broken between characters."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if _text_width(candidate, size, bold) <= max_width or not candidate.strip():
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for character in word:
                if line and _text_width(line + character, size, bold) > max_width:
                    lines.append(line)
                    line = ""
                line += character
        lines.append(line)
    return lines


def _text_width(text: str, size: int, bold: bool = False) -> float:
    """Advance width of ``text`` in px."""
    return _measured(fonts.face(bold), text, size)


@lru_cache(maxsize=4096)
def _measured(face: fonts.Face, text: str, size: int) -> float:
    return _font_of(face, size).getlength(text)  # layouts measure the same labels again and again


def _text_mask(text: str, size: int, bold: bool, anchor: str) -> tuple[Image.Image, tuple[int, int]]:
    """The coverage mask of ``text`` and its offset from the anchor point. FreeType takes about half a millisecond
    per label, and most labels recur (block names, ticks, titles): each is rasterised once. Callers only read it."""
    return _rasterised(fonts.face(bold), text, size, anchor)


@lru_cache(maxsize=4096)
def _rasterised(face: fonts.Face, text: str, size: int, anchor: str) -> tuple[Image.Image, tuple[int, int]]:
    font = _font_of(face, size)
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    return mask, (left, top)


@dataclass
class _Sheet:
    """A Pillow canvas that remembers where it put text and pictures, so a test can check that nothing overlaps."""

    image: Image.Image
    texts: list[tuple[Box, int, str]] = field(default_factory=list)  # (box, font px, text)
    areas: list[Box] = field(default_factory=list)  # pictures, strips and plots

    @classmethod
    def blank(cls, width: int, height: int, colour: tuple[int, int, int] = _BACKGROUND) -> _Sheet:
        return cls(Image.new("RGB", (max(1, width), max(1, height)), colour))

    @property
    def draw(self) -> ImageDraw.ImageDraw:
        return ImageDraw.Draw(self.image)

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        size: int,
        *,
        anchor: str = "la",
        fill: tuple[int, int, int] = _TEXT,
        bold: bool = False,
    ) -> Box:
        """Draw ``text`` with its ``anchor`` (Pillow's two-letter anchors) at ``xy``; -> the box it covers."""
        mask, (left, top) = _text_mask(text, size, bold, anchor)
        x, y = round(xy[0] + left), round(xy[1] + top)
        self.image.paste(fill, (x, y, x + mask.width, y + mask.height), mask)
        box = (x, y, x + mask.width, y + mask.height)
        self.texts.append((box, size, text))
        return box

    def paste(self, picture: Image.Image, xy: tuple[int, int]) -> None:
        self.image.paste(picture, xy)
        self.areas.append((xy[0], xy[1], xy[0] + picture.width, xy[1] + picture.height))


def clear_caches() -> None:
    """Forget rasterised labels and built colour bars (a benchmark's cold start; memory is bounded anyway)."""
    for cached in (_measured, _rasterised, _colorbar):
        cached.cache_clear()


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def format_value(value: float) -> str:
    """Compact number for legends: 3 significant digits."""
    return f"{value:.3g}" if value != 0 else "0"


def format_range(low: float, high: float) -> str:
    """Both ends with the decimals the span needs, e.g. ``0.00 to 2.85`` (so 2e-06 reads as 0.00 beside 2.85)."""
    span = abs(high - low) or abs(high) or 1.0
    decimals = min(6, max(0, 2 - math.floor(math.log10(span))))
    return fonts.words("picture.range", low=f"{low:.{decimals}f}", high=f"{high:.{decimals}f}")


def _message_image(text: str, width: int = 480, height: int = 96) -> Image.Image:
    """A plain panel with a sentence, for "nothing to show" cases (cheaper and clearer than an empty plot)."""
    sheet = _Sheet.blank(width, height, (245, 245, 245))
    lines = text.split("\n")
    size = max(8, min(round(15 * width / 480), 26))
    while size > 8 and (
        max(_text_width(line, size) for line in lines) > width - 16 or len(lines) * _line_height(size) > height - 8
    ):
        size -= 1
    sheet.draw.multiline_text(
        (width / 2, height / 2), text, fill=(90, 90, 90), font=_font(size), anchor="mm", align="center"
    )
    return sheet.image


def _fit_picture(image: Image.Image, side: int) -> Image.Image:
    """The picture with its longer side exactly ``side``: shrunk as ``display_image`` does, or enlarged (bicubic) when
    smaller, so that a tiny upload still fills a readable tile."""
    picture = image if image.mode == "RGB" else image.convert("RGB")
    width, height = picture.size
    if max(width, height) >= side:
        return display_image(picture, side)
    scale = side / max(width, height)
    return picture.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BICUBIC)


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
    lut = _lut(cmap)
    mapped = map_to_image(native_map, view, photo.size)
    own_low, own_high = _finite_range(native_map)
    low = own_low if vmin is None else vmin
    high = own_high if vmax is None else vmax
    seen = ~np.isnan(mapped)
    all_seen = bool(seen.all())
    if high > low:  # LUT index = rint(255 * (value - low) / (high - low)), clipped; a flat map is the low end
        index = np.subtract(mapped, np.float32(low), out=mapped)
        index *= np.float32(255.0 / (high - low))
        np.clip(index, 0.0, 255.0, out=index)
        np.rint(index, out=index)
        if not all_seen:
            index[~seen] = 0.0
        colours = lut[index.astype(np.uint8)]
    else:
        colours = np.broadcast_to(lut[0], (*mapped.shape, 3))
    base = np.asarray(photo)
    weight = round(alpha * 256)  # integer blend in 1/256 steps: alpha 0 and 1 are exact, 0.5 is a rounded mean
    blended = base.astype(np.uint16) * np.uint16(256 - weight)
    blended += colours.astype(np.uint16) * np.uint16(weight)
    blended += np.uint16(128)
    result = (blended >> 8).astype(np.uint8)
    if not all_seen:
        luminance = base.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        grey = luminance * np.float32(_UNSEEN_SCALE) + np.float32(_UNSEEN_OFFSET)
        result[~seen] = np.clip(np.rint(grey[~seen]), 0, 255).astype(np.uint8)[:, None]
    return Image.fromarray(result)


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
    """A small horizontal legend: the colour ramp, its end values and the label (or the middle value).

    The app draws one per model per analysis; the picture depends only on the colormap, the size and the three
    printed texts, so it is built once per such key and copied (``_colorbar`` is an lru_cache). Text that does not
    fit a narrow bar is made smaller, then left out (the middle first), never drawn over its neighbour."""
    if width < 1 or height < 1:
        raise ValueError(f"a colour bar needs a positive size, got {width}x{height}")
    middle = label or format_value((vmin + vmax) / 2)
    texts = (format_value(vmin), middle, format_value(vmax))
    return _colorbar(cmap, int(width), int(height), texts, fonts.face()).copy()


@lru_cache(maxsize=256)
def _colorbar(cmap: str, width: int, height: int, texts: tuple[str, str, str], face: fonts.Face) -> Image.Image:
    del face  # a key only: the same texts in another typeface are another picture
    return _colorbar_sheet(cmap, width, height, texts).image


def _colorbar_sheet(cmap: str, width: int, height: int, texts: tuple[str, str, str]) -> _Sheet:
    sheet = _Sheet.blank(width, height)
    margin = 6 if width >= 48 else width // 8
    bar_height = max(1, min(12, (height - 4) // 3))
    ramp = _colours(cmap, np.linspace(0.0, 1.0, width - 2 * margin))
    sheet.paste(Image.fromarray(np.repeat(ramp[None], bar_height, axis=0)), (margin, min(2, height - bar_height)))
    row = 2 + bar_height + 2
    low, middle, high = texts
    gap, largest = 6, min(15, (height - row) * 13 // 17)

    def fits(size: int, with_middle: bool) -> bool:
        widest_end = max(_text_width(low, size), _text_width(high, size))
        if with_middle:  # centred, clear of both ends
            return _text_width(middle, size) + 2 * (widest_end + gap + margin) <= width
        return _text_width(low, size) + _text_width(high, size) + gap <= width - 2 * margin

    # all three texts if they fit at a readable size, else the two ends (smaller if need be), else none
    choices = [(size, True) for size in range(largest, 10, -1)] + [(size, False) for size in range(largest, 8, -1)]
    for size, with_middle in choices:
        if fits(size, with_middle):
            sheet.text((margin, row), low, size)
            sheet.text((width - margin, row), high, size, anchor="ra")
            if with_middle:
                sheet.text((width / 2, row), middle, size, anchor="ma")
            break
    return sheet


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
) -> _Sheet:
    summary = channel_summary(vectors, stage)
    if summary is None:
        message = fonts.words("picture.no_channel", stage=stage)
        return _Sheet(_message_image(message, width_px))
    if width_px < 1 or display_width < 1:
        raise ValueError(f"widths must be positive, got width_px={width_px}, display_width={display_width}")
    scale = width_px / display_width

    def px(value: float) -> int:
        return max(1, round(value * scale))

    text_px, title_px = max(10, px(TEXT_PX)), max(11, px(TEXT_PX + 2))
    line, title_line = _line_height(text_px), _line_height(title_px)
    blocks, channels = summary.blocks, summary.matrix.shape[1]
    margin = px(10)
    inner = width_px - 2 * margin
    stats = [f"{m:.2f} ± {s:.2f}" for m, s in zip(summary.block_mean, summary.block_std, strict=True)]
    name_w = math.ceil(max(_text_width(name, text_px) for name in blocks))
    stat_w = math.ceil(max(_text_width(stat, text_px) for stat in stats))
    key_w = px(6) + px(10) + px(4) + math.ceil(_text_width("1", text_px))
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
    title_lines = _wrap(title or fonts.words("picture.channel_title", stage=stage), title_px, inner, bold=True)
    subtitle_lines = _wrap(overall, text_px, inner)
    note = fonts.words("picture.channel_note", channels=channels)
    note_lines = _wrap(note, text_px, inner)
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
    sheet = _Sheet.blank(width_px, y + margin)

    for index, text in enumerate(title_lines):
        sheet.text((margin, title_top + index * title_line), text, title_px, bold=True)
    for index, text in enumerate(subtitle_lines):
        sheet.text((margin, title_top + len(title_lines) * title_line + index * line), text, text_px, fill=_MUTED)

    # heat strips, one row per block, a thin white line between rows
    edges = np.rint(np.linspace(0, strip_h, rows + 1)).astype(int)
    colours = _colours(CHANNEL_CMAP, _resample_columns(summary.matrix, strip_w))
    strip = colours[np.repeat(np.arange(rows), np.diff(edges))]
    for edge in edges[1:-1]:
        strip[edge : edge + max(1, px(1))] = _BACKGROUND
    sheet.paste(Image.fromarray(strip), (strip_left, strip_top))
    for index, name in enumerate(blocks):
        middle = strip_top + (edges[index] + edges[index + 1]) / 2
        sheet.text((margin, middle), name, text_px, anchor="lm")
        if show_stats:
            sheet.text((strip_left - px(8), middle), stats[index], text_px, anchor="rm", fill=_MUTED)
    key_left = strip_left + strip_w + px(6)
    ramp = _colours(CHANNEL_CMAP, np.linspace(1.0, 0.0, strip_h))
    sheet.paste(Image.fromarray(np.repeat(ramp[:, None], px(10), axis=1)), (key_left, strip_top))
    sheet.text((key_left + px(10) + px(4), strip_top), "1", text_px, anchor="la")
    sheet.text((key_left + px(10) + px(4), strip_top + strip_h), "0", text_px, anchor="ld")
    for index, text in enumerate(note_lines):
        sheet.text((margin, note_top + index * line), text, text_px, fill=_MUTED)

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
        sheet.text((strip_left - px(6), chart_top + int(to_y(value))), text, text_px, anchor="rm", fill=_MUTED)

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
        needed = px(22) + px(6) + math.ceil(_text_width(text, text_px))
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


def _native(values: np.ndarray) -> np.ndarray:
    native = np.asarray(values, dtype=np.float32)
    while native.ndim > 2:
        native = native[0]
    return native


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
) -> _Sheet:
    if stage is None:
        names = [stage_blocks(maps, s)[-1] for s in STAGES if stage_blocks(maps, s)]
    else:
        names = stage_blocks(maps, stage)
    if not names:
        return _Sheet(_message_image(fonts.words("picture.no_spatial"), width=max(tile, 320)))
    limits = colour_limits([maps[name] for name in names], shared_scale)
    titles = [
        fonts.words("picture.stage_block", stage=split_block(name)[0], block=name) if stage is None else name
        for name in names
    ]
    natives = [_native(maps[name]) for name in names]
    return _tile_sheet(titles, natives, limits, view, image, cmap, alpha, tile, columns, display_width)


def map_tiles(
    maps: Sequence[tuple[str, np.ndarray]],
    view: ModelView,
    image: Image.Image,
    *,
    cmap: str = "jet",
    alpha: float = 0.5,
    tile: int = 220,
    columns: int = 3,
    display_width: int = DISPLAY_WIDTH,
    captions: Sequence[str] | None = None,
    shared_scale: bool = False,
) -> Image.Image:
    """Titled maps laid over the picture, each on its own colour scale (printed under it) unless ``shared_scale``,
    in the spatial grid's geometry: the gate view's steps on the picture, a sanity check's row of CAMs. ``captions``
    replace the printed size and range (one line each)."""
    if not maps:
        return _message_image(fonts.words("picture.nothing"), width=max(tile, 320))
    natives = [_native(values) for _, values in maps]
    limits = colour_limits(natives, shared_scale)
    titles = [title for title, _ in maps]
    sheet = _tile_sheet(titles, natives, limits, view, image, cmap, alpha, tile, columns, display_width, captions)
    return sheet.image


def _tile_sheet(
    titles: Sequence[str],
    natives: Sequence[np.ndarray],
    limits: Sequence[tuple[float, float]],
    view: ModelView,
    image: Image.Image,
    cmap: str,
    alpha: float,
    tile: int,
    columns: int,
    display_width: int,
    own_captions: Sequence[str] | None = None,
) -> _Sheet:
    if tile < 1 or columns < 1 or display_width < 1:
        raise ValueError(f"tile, columns and display_width must be positive, got {tile}, {columns}, {display_width}")
    base = _fit_picture(image, tile)
    cells = min(columns, len(titles))
    lines = -(-len(titles) // cells)
    scale = max(1.0, (cells * (base.width + 8) + 8) / display_width)

    def px(value: float) -> int:
        return max(1, round(value * scale))

    title_px, caption_px = px(TEXT_PX + 1), px(TEXT_PX)
    parts = [
        (fonts.words("picture.map_size", height=n.shape[0], width=n.shape[1]), format_range(low, high))
        for n, (low, high) in zip(natives, limits, strict=True)
    ]
    widest_title = max(_text_width(text, title_px, True) for text in titles)
    one_line = [f"{size}, {span}" for size, span in parts] if own_captions is None else list(own_captions)
    if own_captions is not None or max(_text_width(text, caption_px) for text in one_line) <= max(
        base.width, widest_title
    ):
        captions = [[text] for text in one_line]
    else:
        captions = [list(pair) for pair in parts]
    widest_caption = max(_text_width(text, caption_px) for pair in captions for text in pair)
    cell_w = max(base.width, math.ceil(widest_title), math.ceil(widest_caption))
    pad, gap = px(8), px(4)
    header = _line_height(title_px) + gap
    footer = gap + len(captions[0]) * _line_height(caption_px) + gap
    cell_h = header + base.height + footer
    width = cells * (cell_w + pad) + pad
    top = max(pad, math.ceil(CHIP_CLEARANCE * max(1.0, width / display_width)))
    sheet = _Sheet.blank(width, top + lines * cell_h + (lines - 1) * pad + pad)
    for index, (native, (low, high)) in enumerate(zip(natives, limits, strict=True)):
        x = pad + (index % cells) * (cell_w + pad)
        y = top + (index // cells) * (cell_h + pad)
        centre = x + cell_w / 2
        sheet.text((centre, y), titles[index], title_px, anchor="ma", bold=True)
        picture = overlay(base, native, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)
        sheet.paste(picture, (x + (cell_w - base.width) // 2, y + header))
        for row, text in enumerate(captions[index]):
            row_y = y + header + base.height + gap + row * _line_height(caption_px)
            sheet.text((centre, row_y), text, caption_px, anchor="ma", fill=_MUTED)
    return sheet


# ------------------------------------------------------------------------------------------- export figure


def _last_block_map(spatial: Mapping[str, np.ndarray], stage: int) -> np.ndarray | None:
    blocks = stage_blocks(spatial, stage)
    return _native(spatial[blocks[-1]]) if blocks else None


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


def comparison_figure(
    analysis: Any, *, cmap: str = "jet", alpha: float = 0.5, shared_scale: bool = False, dpi: int = 150
) -> bytes:
    """Publication-style PNG: one row per model; columns the input, the CAM (method, target, probability) and the
    spatial attention of stages 1-4 (last block; "no spatial attention" for SE and the baseline)."""
    figure = comparison_figure_object(analysis, cmap=cmap, alpha=alpha, shared_scale=shared_scale, dpi=dpi)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _wrap_inches(text: str, points: float, inches: float) -> list[str]:
    """``_wrap`` for a matplotlib figure: text of ``points`` in lines ``inches`` wide, measured at 10x in pixels."""
    return _wrap(text, round(points * 10), inches * 72 * 10)


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
    spatial_maps = [[_last_block_map(result.spatial_attention, s) for s in STAGES] for result in results]
    present = [m for row in spatial_maps for m in row if m is not None]
    shared_attention = colour_limits(present, True)[0] if (shared_scale and present) else None

    label_points, title_points, tick_points, caption_points = 7.0, 7.0, 6.0, 6.5
    panel_w, gap_w, left, right = 1.9, 0.08, 1.6, 0.2
    width = left + 6 * panel_w + 5 * gap_w + right
    row_labels = [  # wrapped as measured (Chinese has no spaces), in the width left of the panels
        "\n".join(
            [ARCH_TITLES.get(result.arch, result.arch), *_wrap_inches(fonts.said(result.weights), label_points, 1.4)]
        )
        for result in results
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
    below = _lines_height(1, tick_points) + 0.12
    caption = comparison_caption(analysis, shared_scale=shared_scale)  # wrapped as measured: Chinese has no spaces
    caption_lines = _wrap_inches(caption, caption_points, (width - 0.3) * 0.92)  # 8% spare: two renderers' layouts
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
        axes[1].set_xlabel(format_range(low, high), fontsize=tick_points)
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
            low, high = shared_attention or _finite_range(native)
            axis.imshow(np.asarray(overlay(base, native, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)))
            axis.set_xlabel(f"{native.shape[0]}x{native.shape[1]}, {format_range(low, high)}", fontsize=tick_points)
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


# ------------------------------------------------------------------------------------------------ live frames


def captioned_row(tiles: Sequence[tuple[str, str, Image.Image]], text_px: int = TEXT_PX, gap: int = 6) -> Image.Image:
    """Pictures side by side, each with a bold title and a caption line above it: the live view's one frame
    (text is rasterised once per string and size, so a frame costs the pastes only)."""
    if not tiles:
        return _message_image(fonts.words("picture.nothing"))
    line = _line_height(text_px + 1)
    width = sum(picture.width for _, _, picture in tiles) + gap * (len(tiles) + 1)
    height = max(picture.height for _, _, picture in tiles) + 2 * line + 3 * gap
    sheet = _Sheet.blank(width, height)
    x = gap
    for title, caption, picture in tiles:
        centre = x + picture.width / 2
        sheet.text((centre, gap), title, text_px + 1, anchor="ma", bold=True)
        sheet.text((centre, gap + line), caption, text_px, anchor="ma", fill=_MUTED)
        sheet.paste(picture, (x, 2 * gap + 2 * line))
        x += picture.width + gap
    return sheet.image
