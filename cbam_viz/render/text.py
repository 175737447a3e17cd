"""A small Pillow text engine for the app's panels: words measured, wrapped and drawn on a ``Sheet``.

The app's panels are numpy colormap lookup tables and Pillow, no figure at all: a few milliseconds each, where a
matplotlib figure per panel cost more than the analysis itself. Panels are laid out for the size the app shows them
at (``DISPLAY_WIDTH``, about 400 px per model column): text is at least ``TEXT_PX`` there and titles keep clear of
the top-left corner (``CHIP_CLEARANCE``: Gradio puts its label chip there). Every function is pure and safe to call
from several request threads at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from cbam_viz.render import fonts

DISPLAY_WIDTH = 400  # px: how wide the app shows one model's panel (three columns on a 1280 px page)
TEXT_PX = 13  # smallest text, in px at the displayed size
READABLE_PX = 9.0  # the smallest words a figure may show at its displayed size
CHIP_CLEARANCE = 30  # px at the displayed size kept free of text at the top (Gradio's label chip sits there)
BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
MUTED = (90, 90, 90)

Box = tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive


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


def line_height(size: int) -> int:
    """The height of one line of text at ``size`` px (ascent plus descent)."""
    ascent, descent = _font(size).getmetrics()
    return ascent + descent


def wrap(text: str, size: int, max_width: float, bold: bool = False) -> list[str]:
    """Greedy word wrap by measured width; a word wider than the line (or a Chinese sentence, which has no spaces)
    is broken between characters."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if text_width(candidate, size, bold) <= max_width or not candidate.strip():
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for character in word:
                if line and text_width(line + character, size, bold) > max_width:
                    lines.append(line)
                    line = ""
                line += character
        lines.append(line)
    return lines


def text_width(text: str, size: int, bold: bool = False) -> float:
    """Advance width of ``text`` in px."""
    return measured(fonts.face(bold), text, size)


@lru_cache(maxsize=4096)
def measured(face: fonts.Face, text: str, size: int) -> float:
    """The width of ``text`` in ``face`` at ``size`` px, cached."""
    return _font_of(face, size).getlength(text)  # layouts measure the same labels again and again


def _text_mask(text: str, size: int, bold: bool, anchor: str) -> tuple[Image.Image, tuple[int, int]]:
    """The coverage mask of ``text`` and its offset from the anchor point. FreeType takes about half a millisecond
    per label, and most labels recur (block names, ticks, titles): each is rasterised once. Callers only read it."""
    return rasterised(fonts.face(bold), text, size, anchor)


@lru_cache(maxsize=4096)
def rasterised(face: fonts.Face, text: str, size: int, anchor: str) -> tuple[Image.Image, tuple[int, int]]:
    """``text`` drawn once as a mask and its offset from the anchor, cached: pasting it is cheaper than drawing."""
    font = _font_of(face, size)
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    return mask, (left, top)


@dataclass
class Sheet:
    """A Pillow canvas that remembers where it put text and pictures, so a test can check that nothing overlaps."""

    image: Image.Image
    texts: list[tuple[Box, int, str]] = field(default_factory=list)  # (box, font px, text)
    areas: list[Box] = field(default_factory=list)  # pictures, strips and plots

    @classmethod
    def blank(cls, width: int, height: int, colour: tuple[int, int, int] = BACKGROUND) -> Sheet:
        """A sheet of ``width`` x ``height`` filled with ``colour``."""
        return cls(Image.new("RGB", (max(1, width), max(1, height)), colour))

    @property
    def draw(self) -> ImageDraw.ImageDraw:
        """A Pillow drawing context on the sheet's image."""
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
        """Paste ``picture`` at ``xy`` and remember the area it covers."""
        self.image.paste(picture, xy)
        self.areas.append((xy[0], xy[1], xy[0] + picture.width, xy[1] + picture.height))


def format_value(value: float) -> str:
    """Compact number for legends: 3 significant digits."""
    return f"{value:.3g}" if value != 0 else "0"


def readable_width(width: int, smallest_px: float) -> int:
    """The narrowest a figure ``width`` px wide may be shown while its smallest words (``smallest_px`` in the
    figure) stay ``READABLE_PX`` or more on screen."""
    return math.ceil(width * READABLE_PX / smallest_px)


def points_px(points: float, dpi: float = 100) -> float:
    """Matplotlib's font points as pixels of a figure drawn at ``dpi``."""
    return points * dpi / 72


def format_range(low: float, high: float) -> str:
    """Both ends with the decimals the span needs, e.g. ``0.00 to 2.85`` (so 2e-06 reads as 0.00 beside 2.85)."""
    span = abs(high - low) or abs(high) or 1.0
    decimals = min(6, max(0, 2 - math.floor(math.log10(span))))
    return fonts.words("picture.range", low=f"{low:.{decimals}f}", high=f"{high:.{decimals}f}")


def message_image(text: str, width: int = 480, height: int = 96) -> Image.Image:
    """A plain panel with a sentence, for "nothing to show" cases (cheaper and clearer than an empty plot)."""
    sheet = Sheet.blank(width, height, (245, 245, 245))
    lines = text.split("\n")
    size = max(8, min(round(15 * width / 480), 26))
    while size > 8 and (
        max(text_width(line, size) for line in lines) > width - 16 or len(lines) * line_height(size) > height - 8
    ):
        size -= 1
    sheet.draw.multiline_text(
        (width / 2, height / 2), text, fill=(90, 90, 90), font=_font(size), anchor="mm", align="center"
    )
    return sheet.image


# ------------------------------------------------------------------------------------------------ live frames


def captioned_row(tiles: Sequence[tuple[str, str, Image.Image]], text_px: int = TEXT_PX, gap: int = 6) -> Image.Image:
    """Pictures side by side, each with a bold title and a caption line above it: the live view's one frame
    (text is rasterised once per string and size, so a frame costs the pastes only)."""
    if not tiles:
        return message_image(fonts.words("picture.nothing"))
    line = line_height(text_px + 1)
    width = sum(picture.width for _, _, picture in tiles) + gap * (len(tiles) + 1)
    height = max(picture.height for _, _, picture in tiles) + 2 * line + 3 * gap
    sheet = Sheet.blank(width, height)
    x = gap
    for title, caption, picture in tiles:
        centre = x + picture.width / 2
        sheet.text((centre, gap), title, text_px + 1, anchor="ma", bold=True)
        sheet.text((centre, gap + line), caption, text_px, anchor="ma", fill=MUTED)
        sheet.paste(picture, (x, 2 * gap + 2 * line))
        x += picture.width + gap
    return sheet.image
