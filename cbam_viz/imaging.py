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

import io
import logging
import math
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from cbam_viz.errors import ImageError
from cbam_viz.language import Message, text
from cbam_viz.vocab import VIEWS

if TYPE_CHECKING:
    from cbam_viz.weights import Preprocess

LOGGER = logging.getLogger(__name__)

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
FORMATS_IN_WORDS = "JPEG, PNG, WebP, GIF, BMP or TIFF"
MAX_FILE_BYTES = 25_000_000  # a 48-megapixel phone JPEG is 10-20 MB
MAX_PIXELS = 50_000_000  # admits 48-megapixel phone photos (8064x6048); Pillow itself only warns from 89 MP
MAX_SIDE = 20_000
MIN_SIDE = 8
MAX_ASPECT = 20.0
MAX_WHOLE_ASPECT = 2.0  # "whole" view: the longer side is at most this many times the input size
# Caps on what Pillow walks in Python, one loop turn per item, so that every accepted file decodes within about 2 s
# on two cores (tests/test_decode_budget.py measures it); real photos stay far below each one.
MAX_PNG_CHUNKS = 50_000  # a 25 MB PNG in libpng's 8 KB IDAT chunks has about 3000
MAX_JPEG_SEGMENTS = 2_000  # header segments before the first scan; cameras write a few dozen
MAX_JPEG_JUNK = 65_536  # stray or padding bytes between those segments
MAX_JPEG_SCANS = 100  # progressive encoders write about 10 scans per picture
MAX_GIF_BLOCKS = 300_000  # sub-blocks walked up to the second frame; 25 MB in 255-byte sub-blocks is 100k
MAX_GIF_EXTENSION_BYTES = 1_000_000  # comments and other metadata before the second frame
MAX_TIFF_TAGS = 4_096  # tags on the first page; real files have a few dozen
MAX_TIFF_PIECES = 65_536  # strips or tiles of the first page; 1-row strips of a 20000-row page are 20000
MAX_BMP_RLE_BYTES = 1_000_000  # run-length-compressed BMP data (a legacy format for small graphics)
MAX_RAW_BYTES = 200_000_000  # pixel data as stored: 50 MP of 8-bit RGBA; 16-bit colour is capped at fewer pixels
DECODE_NOTES_KEY = "cbam_viz_decode_notes"  # image.info[...] -> tuple of plain-words notes on what decoding did

_WHITE = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_OPENED_FORMATS = set(ALLOWED_FORMATS) | {"MPO"}  # Pillow's JPEG reader returns camera multi-picture JPEGs as MPO
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"8BPS", "a Photoshop (PSD) file"),
    (0, b"%PDF", "a PDF document"),
    (0, b"%!PS", "a PostScript/EPS file"),
    (0, b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 file"),
    (0, b"\xffO\xffQ", "a JPEG 2000 file"),
    (0, b"SIMPLE  =", "a FITS file"),
    (4, b"ftypheic", "a HEIC photo"),
    (4, b"ftypheix", "a HEIC photo"),
    (4, b"ftypmif1", "a HEIF photo"),
    (4, b"ftypavif", "an AVIF image"),
    (0, b"<svg", "an SVG drawing"),
    (0, b"<?xml", "an XML (SVG?) file"),
)


# ----------------------------------------------------------------------------------------------------------- decoding


def decode_image(
    source: str | Path | bytes | bytearray | memoryview | BinaryIO | Image.Image,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_pixels: int = MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """Decode ``source`` (a path, raw bytes, a binary file or an opened PIL image) into an upright 8-bit RGB image.

    Raises ``ImageError`` with one line saying what is wrong and what to do; ``name`` is how messages call the
    picture (default: the file name, else "the image"). What decoding changed (rotation, transparency, 16-bit
    scaling, first frame of an animation...) is listed in ``image.info[DECODE_NOTES_KEY]`` (see ``decode_notes``);
    decoding an already decoded picture again keeps those notes.
    """
    if Image.MAX_IMAGE_PIXELS:  # above Pillow's own limit its readers warn or refuse: never decode such an image
        max_pixels = min(max_pixels, int(Image.MAX_IMAGE_PIXELS))
    if isinstance(source, Image.Image):
        return _decode_opened(source, label=name or text("image.the_image"), max_pixels=max_pixels, owned=False)
    data, label = _read_source(source, max_file_bytes, name)
    if not data:
        raise ImageError(text("image.empty", label=label, formats=FORMATS_IN_WORDS))
    more_frames = _check_structure(data, label, max_pixels)  # before Pillow parses anything
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 89 and 179 megapixels; such an image must not be decoded either. (Python
            # 3.11's catch_warnings is process-wide: two threads racing here can at worst leave this same
            # "error" filter installed, which is the behaviour wanted anyway.)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = _header_size(data)
        if size is not None:
            _refuse_huge(*size, label=label, max_pixels=max_pixels)
        raise ImageError(text("image.too_large_to_decode", label=label, limit=f"{max_pixels / 1e6:g}")) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(_unreadable_message(data, label)) from exc
    except ValueError as exc:
        raise ImageError(_damaged_message(exc, label)) from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise ImageError(text("image.damaged", label=label, detail=_short(exc))) from exc
    # The data is in memory, so there is no file handle to close; the image stays usable after return.
    return _decode_opened(opened, label=label, max_pixels=max_pixels, owned=True, more_frames=more_frames)


def _damaged_message(exc: BaseException, label: str) -> str:
    if "MAX_TEXT" in str(exc):  # Pillow's caps on compressed PNG text (zTXt/iTXt/iCCP): a zlib bomb in metadata
        return text("image.text_bomb", label=label)
    return text("image.damaged", label=label, detail=_short(exc))


def _too_large(label: str, size: str, max_file_bytes: int) -> ImageError:
    return ImageError(text("image.too_large_file", label=label, size=size, limit=f"{max_file_bytes / 1e6:g}"))


def _read_source(source: object, max_file_bytes: int, name: str | None) -> tuple[bytes, str]:
    """The source's bytes and how to call it, refusing more than ``max_file_bytes`` (a huge file is never read)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or text("image.the_image")
        if len(source) > max_file_bytes:
            raise _too_large(label, f"{len(source) / 1e6:.1f}", max_file_bytes)
        return bytes(source), label
    if isinstance(source, (str, Path)):
        path = Path(source)
        label = name or path.name or str(path)
        if not path.exists():
            raise ImageError(f"image not found: {path}; check the path")
        if not path.is_file():
            raise ImageError(f"{path} is not a file; give the path of a {FORMATS_IN_WORDS} image")
        try:
            if path.stat().st_size > max_file_bytes:
                raise _too_large(label, f"{path.stat().st_size / 1e6:.1f}", max_file_bytes)
            with path.open("rb") as handle:
                return handle.read(max_file_bytes + 1), label
        except OSError as exc:
            raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check its permissions") from exc
    if hasattr(source, "read"):
        label = name or Path(str(getattr(source, "name", ""))).name or text("image.the_image")
        data = source.read(max_file_bytes + 1)
        if len(data) > max_file_bytes:
            raise _too_large(label, text("image.more_than", limit=f"{max_file_bytes / 1e6:g}"), max_file_bytes)
        return data, label
    raise TypeError(f"decode_image takes a path, bytes, a binary file or a PIL image, not {type(source).__name__}")


def _unreadable_message(data: bytes, label: str) -> str:
    for offset, magic, what in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return text("image.not_accepted", label=label, what=what, formats=FORMATS_IN_WORDS)
    return text("image.unreadable", label=label, formats=FORMATS_IN_WORDS)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _refuse_huge(width: int, height: int, *, label: str, max_pixels: int) -> None:
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
    _refuse_huge(width, height, label=label, max_pixels=max_pixels)
    size = text("image.pixels", width=width, height=height)
    if min(width, height) < MIN_SIDE:
        raise ImageError(text("image.too_small", label=label, size=size, limit=MIN_SIDE))
    if max(width, height) > MAX_ASPECT * min(width, height):
        ratio = f"{max(width, height) / min(width, height):.0f}"
        raise ImageError(text("image.too_elongated", label=label, size=size, ratio=ratio, limit=f"{MAX_ASPECT:g}"))


def _decode_opened(
    image: Image.Image, *, label: str, max_pixels: int, owned: bool, more_frames: bool | None = None
) -> Image.Image:
    """Check, load, orient and convert an opened image. ``owned``: the image may be changed in place.
    ``more_frames``: whether a second frame exists, when a header scan already found out."""
    if image.format is not None and image.format not in _OPENED_FORMATS:
        raise ImageError(text("image.format_not_accepted", label=label, format=image.format, formats=FORMATS_IN_WORDS))
    check_size(*image.size, label=label, max_pixels=max_pixels)
    notes = list(decode_notes(image))  # a picture decoded before keeps what was done to it
    file_format = image.format
    try:
        if more_frames is None:
            more_frames = _has_second_frame(image)
        # Read before loading: Pillow's TIFF reader turns the page upright itself while loading and drops the tag.
        orientation = image.getexif().get(0x0112, 1)
        image.load()
        if image.getexif().get(0x0112, 1) in range(2, 9):
            image = ImageOps.exif_transpose(image)
        if orientation in range(2, 9):
            notes.append(text("note.upright", orientation=orientation))
    except OSError as exc:
        raise ImageError(text("image.truncated", label=label, detail=_short(exc))) from exc
    except Exception as exc:  # broad on purpose: only Pillow's parsers of untrusted bytes run in this block
        raise ImageError(_damaged_message(exc, label)) from exc
    if more_frames:
        notes.append(text("note.first_page" if file_format == "TIFF" else "note.first_frame"))
    rgb = to_rgb(image, notes, label=label)
    if rgb is image and not owned:
        rgb = image.copy()  # never hand back (and later mutate) the caller's own object
    rgb.info = {DECODE_NOTES_KEY: tuple(notes)}
    return rgb


def _has_second_frame(image: Image.Image) -> bool:
    """Whether a second frame exists, without counting frames: Pillow's TIFF and GIF ``n_frames`` walk every page
    (a TIFF's cost grows with the square of its page count). PNG, WebP and MPO readers set ``n_frames`` from the
    header (an instance attribute); TIFF sets ``is_animated`` from the first page's link, GIF looks one frame ahead."""
    frames = vars(image).get("n_frames")
    if isinstance(frames, int):
        return frames > 1
    return bool(getattr(image, "is_animated", False))


def to_rgb(image: Image.Image, notes: list[str] | None = None, *, label: str | None = None) -> Image.Image:
    """8-bit RGB from any Pillow mode: 16-bit and float data scaled, palettes expanded, alpha composited on white,
    colour profiles converted to sRGB. Appends what it did to ``notes``. Each step is one pass over the pixels in C
    (or a lookup table), so that a 50-megapixel picture converts well within the decoding time budget."""
    notes = notes if notes is not None else []
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        image = _scale_to_8bit(image, notes)
    if image.mode == "P" and image.info.get("transparency") is not None:
        image = _flatten_palette(image, notes)
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA" if image.mode == "PA" else "RGB")
    elif image.mode not in _ALPHA_MODES and image.info.get("transparency") is not None:
        image = image.convert("RGBA")  # a greyscale or RGB PNG with a transparent colour key (tRNS)
    image = _to_srgb(image, notes)
    if image.mode in _ALPHA_MODES:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")  # converting to its own mode is a copy
        if rgba.getchannel("A").getextrema()[0] == 255:
            return rgba.convert("RGB")
        notes.append(text("note.transparent"))
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba)  # the picture is its own mask: no RGB copy and no alpha copy in between
        return flat
    if image.mode == "RGB":
        return image
    if image.mode == "CMYK":
        notes.append(text("note.cmyk"))
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageError(text("image.colour_mode", label=label, mode=image.mode)) from exc


def _flatten_palette(image: Image.Image, notes: list[str]) -> Image.Image:
    """A palette picture with transparent entries, on white: the 256 palette colours are composited, not the
    pixels (no RGBA copy of a 50-megapixel picture). Noted only when a transparent entry is really used."""
    palette = (image.getpalette("RGB") or []) + [0, 0, 0] * 256
    alpha = [255] * 256
    transparency = image.info["transparency"]
    if isinstance(transparency, int):
        if 0 <= transparency < 256:
            alpha[transparency] = 0
    else:
        alpha[: len(transparency[:256])] = list(transparency[:256])
    used = image.histogram()
    if any(count and alpha[index] < 255 for index, count in enumerate(used[:256])):
        notes.append(text("note.transparent"))
    flat = [
        (channel * alpha[index] + 255 * (255 - alpha[index]) + 127) // 255
        for index in range(256)
        for channel in palette[3 * index : 3 * index + 3]
    ]
    image = image.copy()
    del image.info["transparency"]
    image.putpalette(flat, "RGB")
    return image.convert("RGB")


def _scale_to_8bit(image: Image.Image, notes: list[str]) -> Image.Image:
    """Scale 16-bit/32-bit greyscale to 8 bit (Pillow's own conversion clamps: 300 -> 255, so photos turn white).
    16-bit data goes through one 65536-entry lookup table in C: round(v * 255 / 65535)."""
    if image.mode != "F":
        wide = image if image.mode == "I" else image.convert("I")
        low, high = wide.getextrema()
        if low >= 0 and high <= 65535:
            notes.append(text("note.sixteen_bit"))
            return wide.point(_SIXTEEN_TO_EIGHT, "L")
    values = np.asarray(image)
    low, high = (values.min().item(), values.max().item()) if values.size else (0, 0)
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = np.rint(values * 255.0)
        notes.append(text("note.float"))
    else:
        span = high - low if high > low else 1.0
        scaled = np.rint((values.astype(np.float64) - low) * (255.0 / span))
        notes.append(text("note.stretched", mode=image.mode, low=f"{low:g}", high=f"{high:g}"))
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), mode="L")


_SIXTEEN_TO_EIGHT = [(value * 255 + 32767) // 65535 for value in range(65536)]


def _to_srgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Convert an embedded colour profile (Display P3, Adobe RGB, a CMYK press profile...) to sRGB, which is what
    the models were trained on. A broken profile is logged and ignored: the pixels are still usable."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return image
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        LOGGER.warning("ignoring an unusable embedded colour profile: %s", _short(exc))
        notes.append(text("note.profile_unusable"))
        return image
    notes.append(text("note.profile_converted"))
    return converted


# ---------------------------------------------------------------------------------- header scans, before Pillow
# Pillow parses headers, chunk lists and block chains in Python, one loop turn per item: a 25 MB file of tiny
# items (PNG chunks, JPEG markers, GIF sub-blocks, TIFF tiles, BMP runs) costs it seconds to minutes. These scans
# walk the same structures with a cap on the number of items (and read the sizes the headers promise), so every
# accepted file is decoded within the time budget (tests/test_decode_budget.py) and the others are refused at once.


def _check_structure(data: bytes, label: str, max_pixels: int) -> bool | None:
    """Refuse what would be too large or too slow to decode, from the header alone; True/False when a scan found
    out cheaply whether a second frame or page exists (None: not known here)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _scan_png(data, label, max_pixels)
        if data.startswith(b"\xff\xd8"):
            return _scan_jpeg(data, label, max_pixels)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return _scan_gif(data, label, max_pixels)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _scan_tiff(data, label, max_pixels)
        if data.startswith(b"BM"):
            _scan_bmp(data, label, max_pixels)
    except struct.error:
        pass  # cut short: Pillow says how (truncated, damaged)
    return None


def _too_slow(label: str, what: str) -> ImageError:
    return ImageError(text("image.too_slow", label=label, what=what))


def _scan_png(data: bytes, label: str, max_pixels: int) -> bool | None:
    """Every chunk header (Pillow reads them one by one, also after the pixels); the size from IHDR."""
    position, chunks, more_frames = 8, 0, None
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _too_slow(label, text("image.png_chunks", count=MAX_PNG_CHUNKS))
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack_from(">IIBB", data, position + 8)
            _refuse_huge(width, height, label=label, max_pixels=max_pixels)
            _refuse_deep(width, height, depth * _PNG_CHANNELS.get(colour, 1), label)
        elif kind == b"acTL":
            more_frames = struct.unpack_from(">I", data, position + 8)[0] > 1
        elif kind == b"IEND":
            break
        position += 12 + length
    return more_frames


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type


def _refuse_deep(width: int, height: int, bits_per_pixel: int, label: str) -> None:
    """Refuse more than ``MAX_RAW_BYTES`` of stored pixel data (16-bit colour at 50 MP takes Pillow seconds)."""
    raw = width * height * bits_per_pixel // 8
    if raw > MAX_RAW_BYTES:
        values = {"width": width, "height": height, "bits": bits_per_pixel, "megabytes": f"{raw / 1e6:.0f}"}
        raise ImageError(text("image.too_deep", label=label, limit=f"{MAX_RAW_BYTES / 1e6:g}", **values))


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (DHT, JPG and DAC share the range)
_FILL = re.compile(rb"\xff+")


def _scan_jpeg(data: bytes, label: str, max_pixels: int) -> None:
    """The marker segments up to the first scan (Pillow walks them, and junk bytes, one at a time), the size from
    the frame header, and the number of scans (libjpeg decodes every progressive scan over the whole image)."""
    position, segments, junk = 2, 0, 0
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            following = data.find(b"\xff", position)
            junk += (following if following >= 0 else len(data)) - position
            if following < 0:
                break
            position = following
        else:
            fill = _FILL.match(data, position)
            junk += fill.end() - position - 1  # padding 0xFF bytes: one turn each in Pillow's loop
            position = fill.end() - 1
            if position + 4 > len(data):
                break
            marker = data[position + 1]
            if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # stuffed byte, TEM, RSTn, SOI: no length
                position += 2
                continue
            segments += 1
            if marker in _JPEG_SOF:
                height, width = struct.unpack_from(">HH", data, position + 5)
                _refuse_huge(width, height, label=label, max_pixels=max_pixels)
            if marker in (0xDA, 0xD9):  # start of scan (Pillow's parse ends here) or end of image
                break
            position += 2 + struct.unpack_from(">H", data, position + 2)[0]
        if segments > MAX_JPEG_SEGMENTS or junk > MAX_JPEG_JUNK:
            raise _too_slow(label, text("image.jpeg_segments", segments=MAX_JPEG_SEGMENTS, junk=MAX_JPEG_JUNK))
    scans = data.count(b"\xff\xda")  # entropy-coded data never holds FF DA (an FF there is followed by 00 or RSTn)
    if scans > MAX_JPEG_SCANS:
        raise _too_slow(label, f"{scans} progressive scans (at most {MAX_JPEG_SCANS})")


def _gif_blocks(data: bytes, position: int, budget: list[int], label: str) -> tuple[int, int]:
    """Skip a chain of GIF sub-blocks; (position after it, bytes it held). ``budget``: sub-blocks left to walk."""
    held = 0
    while position < len(data):
        size = data[position]
        position += 1 + size
        held += size
        budget[0] -= 1
        if budget[0] < 0:
            raise _too_slow(label, f"more than {MAX_GIF_BLOCKS} GIF data blocks before its second frame")
        if size == 0:
            break
    return position, held


def _scan_gif(data: bytes, label: str, max_pixels: int) -> bool | None:
    """The logical screen and the first frame's extent (Pillow makes the picture as large as both), and whether a
    second frame follows, walking at most ``MAX_GIF_BLOCKS`` blocks and ``MAX_GIF_EXTENSION_BYTES`` of metadata."""
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    _refuse_huge(width, height, label=label, max_pixels=max_pixels)
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    budget, metadata, frames = [MAX_GIF_BLOCKS], 0, 0
    while position < len(data):
        kind = data[position]
        if kind == 0x21:  # extension: label, then sub-blocks
            position, held = _gif_blocks(data, position + 2, budget, label)
            metadata += held
            if metadata > MAX_GIF_EXTENSION_BYTES:
                raise _too_slow(label, f"more than {MAX_GIF_EXTENSION_BYTES // 1_000_000} MB of GIF comments")
        elif kind == 0x2C:  # image descriptor
            if frames:
                return True
            left, top, frame_width, frame_height, frame_flags = struct.unpack_from("<HHHHB", data, position + 1)
            _refuse_huge(
                max(width, left + frame_width), max(height, top + frame_height), label=label, max_pixels=max_pixels
            )
            position += 10 + (3 << ((frame_flags & 7) + 1) if frame_flags & 0x80 else 0) + 1  # + LZW code size
            position, _ = _gif_blocks(data, position, budget, label)
            frames += 1
        else:  # trailer, or something Pillow will call damaged
            break
    return False if frames else None


_TIFF_LAYOUTS = {42: (4, "I", "H", "HHI4s", 12), 43: (8, "Q", "Q", "HHQ8s", 20)}  # classic TIFF, BigTIFF
_TIFF_SCALARS = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8


def _scan_tiff(data: bytes, label: str, max_pixels: int) -> bool | None:
    """The first page's tags: its size, and into how many strips or tiles it is cut (Pillow builds one Python
    tile per piece, libtiff decodes each on its own). True when the page links to a second one (never counted)."""
    order = "<" if data[:2] == b"II" else ">"
    first, offset_format, count_format, entry_format, entry_size = _TIFF_LAYOUTS[
        struct.unpack_from(order + "H", data, 2)[0]
    ]
    ifd = struct.unpack_from(order + offset_format, data, first)[0]
    count = struct.unpack_from(order + count_format, data, ifd)[0]
    if count > MAX_TIFF_TAGS:
        raise _too_slow(label, f"{count} tags on its first TIFF page (at most {MAX_TIFF_TAGS})")
    start = ifd + struct.calcsize(order + count_format)
    table = data[start : start + count * entry_size]
    tags = {tag: (kind, number, value) for tag, kind, number, value in struct.iter_unpack(order + entry_format, table)}

    def scalar(tag: int) -> int | None:
        """The tag's first value (stored in the entry, or where the entry points when several do not fit)."""
        kind, number, value = tags.get(tag, (0, 0, b""))
        code = _TIFF_SCALARS.get(kind)
        if code is None or number == 0:
            return None
        if number * struct.calcsize(code) <= len(value):
            return struct.unpack_from(order + code, value)[0]
        return struct.unpack_from(order + code, data, struct.unpack_from(order + offset_format, value)[0])[0]

    width, height = scalar(256) or 0, scalar(257) or 0
    _refuse_huge(width, height, label=label, max_pixels=max_pixels)
    _refuse_deep(width, height, (scalar(258) or 1) * (scalar(277) or 1), label)  # first BitsPerSample x samples
    pieces = max(tags.get(273, (0, 0))[1], tags.get(324, (0, 0))[1])  # StripOffsets, TileOffsets: entry counts
    tile_width, tile_height, rows = scalar(322), scalar(323), scalar(278)
    if tile_width and tile_height:
        pieces = max(pieces, -(-width // tile_width) * -(-height // tile_height))
    elif rows:
        pieces = max(pieces, -(-height // rows))
    if pieces > MAX_TIFF_PIECES:
        raise _too_slow(label, f"its first TIFF page is cut into {pieces} strips or tiles (at most {MAX_TIFF_PIECES})")
    if len(table) < count * entry_size:
        return None
    following = struct.unpack_from(order + offset_format, data, start + count * entry_size)[0]
    return 0 < following < len(data)


def _scan_bmp(data: bytes, label: str, max_pixels: int) -> None:
    """The size, and no long run-length-compressed data (Pillow unpacks RLE8/RLE4 in Python, two bytes a turn)."""
    header_size = struct.unpack_from("<I", data, 14)[0]
    if header_size < 40:  # OS/2 1.x header: 16-bit sizes, no compression
        return
    width, height, _, _, compression = struct.unpack_from("<iiHHI", data, 18)
    _refuse_huge(abs(width), abs(height), label=label, max_pixels=max_pixels)
    if compression in (1, 2) and len(data) > MAX_BMP_RLE_BYTES:
        raise _too_slow(label, f"over {MAX_BMP_RLE_BYTES // 1_000_000} MB of run-length-compressed BMP data")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """The size the header claims, read by Pillow's own reader for the format but without ``Image.open``'s bomb
    check, so that a refusal can say how large the picture really is."""
    Image.init()
    for file_format in ALLOWED_FORMATS:
        factory, accept = Image.OPEN.get(file_format, (None, None))
        if factory is None or (accept is not None and not accept(data[:16])):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return factory(io.BytesIO(data), "").size
        except Exception:  # broad on purpose: this only looks for a size to report, the refusal stands anyway
            continue
    return None


def decode_notes(image: Image.Image) -> tuple[str, ...]:
    """What ``decode_image`` did to this image, in plain words (empty when nothing needed doing)."""
    return tuple(image.info.get(DECODE_NOTES_KEY, ()))


def display_image(image: Image.Image, max_side: int = 1024) -> Image.Image:
    """The picture capped at ``max_side`` on its longer side (aspect kept), so that overlays and uploads stay fast."""
    width, height = image.size
    if max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shown = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if DECODE_NOTES_KEY in image.info:
        shown.info[DECODE_NOTES_KEY] = image.info[DECODE_NOTES_KEY]
    return shown


# ------------------------------------------------------------------------------------------ what the model sees


@dataclass(frozen=True)
class ModelView:
    """Which region of the picture the model saw and at what size: the key to putting its maps back in place."""

    mode: str  # "whole" (entire picture resized) | "crop" (the weights' evaluation centre crop)
    input_size: tuple[int, int]  # (width, height) of the tensor the model saw
    box: tuple[float, float, float, float]  # (left, top, right, bottom) of the seen region, normalised to [0, 1]
    note: str  # plain words for users


def plan_view(size: tuple[int, int], preprocess: Preprocess, mode: str = "whole") -> ModelView:
    """The ``ModelView`` for a picture of ``size`` (width, height), without touching pixels."""
    if mode not in VIEWS:
        raise ValueError(f"unknown view {mode!r}; choose one of {', '.join(VIEWS)}")
    width, height = size
    if mode == "whole":
        target = preprocess.crop or preprocess.resize
        cap = round(MAX_WHOLE_ASPECT * target)
        scale = target / min(width, height)
        if max(width, height) * scale > cap:
            scale = cap / max(width, height)
        input_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        note = Message("view.note.whole", width=input_size[0], height=input_size[1])
        if min(input_size) < target:
            note = Message("view.note.whole_capped", width=input_size[0], height=input_size[1], cap=cap, target=target)
        return ModelView("whole", input_size, (0.0, 0.0, 1.0, 1.0), note)
    resize = preprocess.resize
    crop = min(preprocess.crop or resize, resize)
    # torchvision's Resize(int) then CenterCrop: the longer side is truncated, the crop offset rounded.
    if width <= height:
        resized = (resize, int(resize * height / width))
    else:
        resized = (int(resize * width / height), resize)
    left = int(round((resized[0] - crop) / 2.0))
    top = int(round((resized[1] - crop) / 2.0))
    box = (left / resized[0], top / resized[1], (left + crop) / resized[0], (top + crop) / resized[1])
    protocol = Message("view.note.protocol" if preprocess.crop else "view.note.square")
    note = Message("view.note.crop", width=resized[0], height=resized[1], crop=crop, protocol=protocol)
    if box == (0.0, 0.0, 1.0, 1.0):
        note = Message("view.note.crop_all", crop=crop)
    return ModelView("crop", (crop, crop), box, note)


def prepare_input(image: Image.Image, preprocess: Preprocess, mode: str = "whole") -> tuple[torch.Tensor, ModelView]:
    """The (1, 3, H, W) float32 tensor the model gets, normalised with the weights' mean/std, and how it was made.

    One resampling from the given picture (antialiased, the weights' interpolation): in "crop" mode Pillow resizes
    the crop box directly, which equals torchvision's Resize + CenterCrop up to rounding.
    """
    if image.mode != "RGB":
        image = to_rgb(image)
    view = plan_view(image.size, preprocess, mode)
    try:
        resample = _RESAMPLING[preprocess.interpolation]
    except KeyError:
        raise ValueError(
            f"unknown interpolation {preprocess.interpolation!r}; use one of {', '.join(_RESAMPLING)}"
        ) from None
    width, height = image.size
    left, top, right, bottom = view.box
    source_box = (left * width, top * height, right * width, bottom * height)
    resized = image.resize(view.input_size, resample, box=source_box)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    normalised = ((pixels - mean) / std).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(normalised)).unsqueeze(0), view


# ----------------------------------------------------------------------------------- maps back onto the picture


def _cell_centres(cells: int, input_pixels: int) -> tuple[float, float]:
    """(offset, spacing) such that cell j is centred at continuous input coordinate offset + j * spacing."""
    for power in range(8):
        stride = 2**power
        if math.ceil(input_pixels / stride) == cells:
            return 0.5, float(stride)  # receptive-field centre of a zero-padded strided network: pixel j * stride
    spacing = input_pixels / cells
    return spacing / 2.0, spacing  # not a strided feature map: spread the cells evenly over the input


def cell_centre_pixels(cells: int, input_pixels: int) -> np.ndarray:
    """Index of the input pixel under each cell's centre along one axis: where ``map_to_image`` puts that cell.

    Training samples the object mask here, so the cells it rewards are exactly the points the app draws.
    """
    offset, spacing = _cell_centres(cells, input_pixels)
    return np.clip(np.floor(offset + np.arange(cells) * spacing), 0, input_pixels - 1).astype(np.int64)


def _axis_weights(
    out_pixels: int, low: float, high: float, cells: int, input_pixels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel along one axis: the two neighbouring cells, the weight of the second, and visibility."""
    centres = (np.arange(out_pixels, dtype=np.float64) + 0.5) / out_pixels  # normalised pixel centres
    inside = (centres >= low) & (centres <= high)
    offset, spacing = _cell_centres(cells, input_pixels)
    position = (centres - low) / max(high - low, 1e-12) * input_pixels  # continuous coordinate in the model input
    cell = np.clip((position - offset) / spacing, 0.0, cells - 1)
    first = np.floor(cell).astype(np.int64)
    second = np.minimum(first + 1, cells - 1)
    return first, second, (cell - first).astype(np.float32), inside


def map_to_image(native: np.ndarray, view: ModelView, size: tuple[int, int]) -> np.ndarray:
    """Resample a map at its native (feature-grid) resolution ONCE, bilinearly, onto a picture of ``size``
    (width, height): float32 (height, width), NaN where the model saw nothing (outside ``view.box``).

    Cell geometry: see the module docstring (receptive-field centres; edges extend the outermost cells).
    """
    grid = np.asarray(native, dtype=np.float32)
    while grid.ndim > 2 and grid.shape[0] == 1:
        grid = grid[0]
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"expected a 2-D map, got shape {np.shape(native)}")
    width, height = size
    left, top, right, bottom = view.box
    x0, x1, wx, seen_x = _axis_weights(width, left, right, grid.shape[1], view.input_size[0])
    y0, y1, wy, seen_y = _axis_weights(height, top, bottom, grid.shape[0], view.input_size[1])
    columns = grid[:, x0] * (1.0 - wx) + grid[:, x1] * wx  # (cells_y, width)
    result = columns[y0, :] * (1.0 - wy)[:, None] + columns[y1, :] * wy[:, None]
    if not (seen_x.all() and seen_y.all()):
        result[~seen_y, :] = np.nan
        result[:, ~seen_x] = np.nan
    return result.astype(np.float32, copy=False)
