"""Heat-map overlays, colour bars and map tiles: a map coloured through a lookup table and laid on the photo.

Overlays are normalised to the map's own min..max unless limits are given (``colour_limits`` makes one shared scale
across models); pixels the model never saw (outside a centre crop) are shown grey and dimmed, not coloured. Pictures
smaller than a tile are enlarged so that an 8 px wide picture still gets readable panels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import matplotlib
import numpy as np
from PIL import Image

from cbam_viz.imaging.decode import display_image
from cbam_viz.imaging.view import ModelView, map_to_image
from cbam_viz.render import fonts
from cbam_viz.render.text import (
    CHIP_CLEARANCE,
    DISPLAY_WIDTH,
    MUTED,
    TEXT_PX,
    Sheet,
    format_range,
    format_value,
    line_height,
    measured,
    message_image,
    rasterised,
    text_width,
)

_UNSEEN_SCALE, _UNSEEN_OFFSET = 0.35, 70.0  # unseen pixels: grey = luminance * 0.35 + 70 (dim, colourless)


# -------------------------------------------------------------------------------------------------- helpers


@lru_cache(maxsize=32)
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap, so colouring a map is one fancy-indexing step."""
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}; use a matplotlib name such as jet, viridis or inferno") from None
    return np.rint(colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.uint8)


def cmap_colours(cmap: str, scaled: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB through the lookup table (the same rounding everywhere, so tests can compare)."""
    return _lut(cmap)[np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)]


def clear_caches() -> None:
    """Forget rasterised labels and built colour bars (a benchmark's cold start; memory is bounded anyway)."""
    for cached in (measured, rasterised, _colorbar):
        cached.cache_clear()


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """The min and max of the finite values; (0, 1) when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


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
    own_low, own_high = finite_range(native_map)
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


def scale_words(low: float, high: float, own: np.ndarray | None = None) -> list[str]:
    """A tile's range as printed under it, one line each: its colour scale's ends; with one scale shared by several
    maps (``own`` given: this map's values), that the scale is shared, and this map's own min and max."""
    if own is None:
        return [format_range(low, high)]
    return [
        fonts.words("picture.range_shared", range=format_range(low, high)),
        fonts.words("picture.range_own", range=format_range(*finite_range(own))),
    ]


def colour_limits(maps: Sequence[np.ndarray], shared: bool) -> list[tuple[float, float]]:
    """(low, high) for each map: its own range, or (shared=True) one range across all, e.g. to compare models."""
    ranges = [finite_range(m) for m in maps]
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


def _colorbar_sheet(cmap: str, width: int, height: int, texts: tuple[str, str, str]) -> Sheet:
    sheet = Sheet.blank(width, height)
    margin = 6 if width >= 48 else width // 8
    bar_height = max(1, min(12, (height - 4) // 3))
    ramp = cmap_colours(cmap, np.linspace(0.0, 1.0, width - 2 * margin))
    sheet.paste(Image.fromarray(np.repeat(ramp[None], bar_height, axis=0)), (margin, min(2, height - bar_height)))
    row = 2 + bar_height + 2
    low, middle, high = texts
    gap, largest = 6, min(15, (height - row) * 13 // 17)

    def fits(size: int, with_middle: bool) -> bool:
        widest_end = max(text_width(low, size), text_width(high, size))
        if with_middle:  # centred, clear of both ends
            return text_width(middle, size) + 2 * (widest_end + gap + margin) <= width
        return text_width(low, size) + text_width(high, size) + gap <= width - 2 * margin

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


def native_grid(values: np.ndarray) -> np.ndarray:
    """A map as a 2-D float32 grid (leading batch or channel axes of size one dropped)."""
    native = np.asarray(values, dtype=np.float32)
    while native.ndim > 2:
        native = native[0]
    return native


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
        return message_image(fonts.words("picture.nothing"), width=max(tile, 320))
    natives = [native_grid(values) for _, values in maps]
    limits = colour_limits(natives, shared_scale)
    titles = [title for title, _ in maps]
    sheet = tile_sheet(
        titles, natives, limits, view, image, cmap, alpha, tile, columns, display_width, captions, shared=shared_scale
    )
    return sheet.image


def tile_sheet(
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
    *,
    shared: bool = False,
) -> Sheet:
    """Titled map tiles over the picture on a ``Sheet``, ``columns`` to a row, each with its scale or caption
    (``shared``: the limits are one scale for all tiles, and each tile says so beside its own min and max)."""
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
        [fonts.words("picture.map_size", height=n.shape[0], width=n.shape[1]), *scale_words(low, high, own)]
        for n, (low, high) in zip(natives, limits, strict=True)
        for own in [n if shared else None]
    ]
    widest_title = max(text_width(text, title_px, True) for text in titles)
    one_line = [", ".join(lines) for lines in parts] if own_captions is None else list(own_captions)
    if own_captions is not None or max(text_width(text, caption_px) for text in one_line) <= max(
        base.width, widest_title
    ):
        captions = [text.split("\n") for text in one_line]  # a caption of its own may hold several lines
    else:
        captions = parts
    widest_caption = max(text_width(text, caption_px) for pair in captions for text in pair)
    cell_w = max(base.width, math.ceil(widest_title), math.ceil(widest_caption))
    pad, gap = px(8), px(4)
    header = line_height(title_px) + gap
    footer = gap + max(len(lines) for lines in captions) * line_height(caption_px) + gap
    cell_h = header + base.height + footer
    width = cells * (cell_w + pad) + pad
    top = max(pad, math.ceil(CHIP_CLEARANCE * max(1.0, width / display_width)))
    sheet = Sheet.blank(width, top + lines * cell_h + (lines - 1) * pad + pad)
    for index, (native, (low, high)) in enumerate(zip(natives, limits, strict=True)):
        x = pad + (index % cells) * (cell_w + pad)
        y = top + (index // cells) * (cell_h + pad)
        centre = x + cell_w / 2
        sheet.text((centre, y), titles[index], title_px, anchor="ma", bold=True)
        picture = overlay(base, native, view, cmap=cmap, alpha=alpha, vmin=low, vmax=high)
        sheet.paste(picture, (x + (cell_w - base.width) // 2, y + header))
        for row, text in enumerate(captions[index]):
            row_y = y + header + base.height + gap + row * line_height(caption_px)
            sheet.text((centre, row_y), text, caption_px, anchor="ma", fill=MUTED)
    return sheet
