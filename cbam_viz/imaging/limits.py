"""The limits on an input picture, in one place, and the checks that quote them.

At most ``MAX_FILE_BYTES`` on disk, ``MAX_PIXELS`` pixels, no side longer than ``MAX_SIDE``, no side shorter than
``MIN_SIDE`` (a 1x1 picture is rejected: there is nothing for an attention map to show), and an aspect ratio of at
most ``MAX_ASPECT``:1 (beyond that the shorter side shrinks to a few pixels inside the model).
"""

from __future__ import annotations

from cbam_viz.errors import ImageError
from cbam_viz.i18n.language import listed, text

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_NAMES = ("JPEG", "PNG", "WebP", "GIF", "BMP", "TIFF")  # ALLOWED_FORMATS as people write them
MAX_FILE_BYTES = 25_000_000  # a 48-megapixel phone JPEG is 10-20 MB
MAX_PIXELS = 50_000_000  # admits 48-megapixel phone photos (8064x6048); Pillow itself only warns from 89 MP
MAX_SIDE = 20_000
MIN_SIDE = 8
MAX_ASPECT = 20.0
MAX_WHOLE_ASPECT = 2.0  # "whole" view: the longer side is at most this many times the input size
MAX_RAW_BYTES = 200_000_000  # pixel data as stored: 50 MP of 8-bit RGBA; 16-bit colour is capped at fewer pixels


def refuse_huge(width: int, height: int, *, label: str, max_pixels: int) -> None:
    """The "too large" half of ``check_size``, for sizes read from a header: the real size, in the message."""
    size = text("image.pixels", width=width, height=height)
    if width * height > max_pixels:
        megapixels, limit = f"{width * height / 1e6:.1f}", f"{max_pixels / 1e6:g}"
        raise ImageError(text("image.too_many_pixels", label=label, size=size, megapixels=megapixels, limit=limit))
    if max(width, height) > MAX_SIDE:
        raise ImageError(text("image.too_long_side", label=label, size=size, limit=MAX_SIDE))


def check_size(width: int, height: int, *, label: str | None = None, max_pixels: int = MAX_PIXELS) -> None:
    """Reject sizes no analysis can use, from the header alone (before any pixel is decoded)."""
    label = label or text("image.the_image")
    refuse_huge(width, height, label=label, max_pixels=max_pixels)
    size = text("image.pixels", width=width, height=height)
    if min(width, height) < MIN_SIDE:
        raise ImageError(text("image.too_small", label=label, size=size, limit=MIN_SIDE))
    if max(width, height) > MAX_ASPECT * min(width, height):
        ratio = f"{max(width, height) / min(width, height):.0f}"
        raise ImageError(text("image.too_elongated", label=label, size=size, ratio=ratio, limit=f"{MAX_ASPECT:g}"))


def formats_in_words() -> str:
    """The accepted formats in the current language: ``JPEG, PNG, WebP, GIF, BMP or TIFF``."""
    return listed(FORMAT_NAMES, "or")
