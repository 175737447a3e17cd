"""Input hygiene and how the model sees a picture: decode safely, prepare the tensor, map results back onto the photo.

Shared by the CLI and the app, so that both accept and reject exactly the same files with the same one-line messages.

Decisions, in one place:

* Formats: only JPEG, PNG, WebP, GIF (first frame), BMP and TIFF are decoded (Pillow's other readers, PSD, PDF, EPS,
  JPEG 2000, FITS..., are where its security bugs have been). Known other formats get a message that names them.
* Limits: at most ``MAX_FILE_BYTES`` on disk, ``MAX_PIXELS`` pixels (checked from the header, BEFORE the pixels are
  decoded, so a decompression bomb costs nothing), no side longer than ``MAX_SIDE``, no side shorter than
  ``MIN_SIDE`` (a 1x1 picture is rejected: there is nothing for an attention map to show), and an aspect ratio of at
  most ``MAX_ASPECT``:1 (beyond that the shorter side shrinks to a few pixels inside the model).
* Colour: EXIF orientation applied, transparency composited on white, palette/greyscale/CMYK/16-bit converted to
  8-bit RGB (16-bit data is scaled, not clamped), embedded colour profiles converted to sRGB.
* What the model sees (``prepare_input``): "whole" keeps the entire picture and its aspect ratio, shorter side at
  the weights' input size, longer side capped at ``MAX_WHOLE_ASPECT`` times that; "crop" is the weights' own
  evaluation protocol (resize, then centre crop).
* Where a feature cell lies (``map_to_image``): all convolutions in these ResNets are zero-padded with odd kernels,
  so the cell ``j`` of a stride-``s`` feature map is centred on input pixel ``j * s`` (its receptive-field centre),
  not on ``(j + 0.5) * s`` as a plain "stretch the grid over the image" resize assumes. At stage 4 (stride 32) the
  difference is 15.5 input pixels, 7 % of a 224-pixel input. Maps whose grid is not a power-of-two stride of the
  input are spread evenly over it instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cbam_viz.errors import ImageError
from cbam_viz.i18n.language import text

if TYPE_CHECKING:
    pass


ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
FORMATS_IN_WORDS = "JPEG, PNG, WebP, GIF, BMP or TIFF"
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
