"""Decoding an untrusted picture safely into 8-bit RGB, with one-line messages for every refusal.

Shared by the CLI and the app, so that both accept and reject exactly the same files with the same messages.

* Formats: only JPEG, PNG, WebP, GIF (first frame), BMP and TIFF are decoded (Pillow's other readers, PSD, PDF, EPS,
  JPEG 2000, FITS..., are where its security bugs have been). Known other formats get a message that names them.
* Sizes are checked from the header (``headers``, ``limits``) BEFORE the pixels are decoded, so a decompression bomb
  costs nothing.
* Colour: EXIF orientation applied (read by ``imaging.exif``, bounded: a blob over 64 KB is ignored with a note),
  transparency composited on white, palette/greyscale/CMYK/16-bit converted to 8-bit RGB (16-bit data is scaled,
  not clamped), embedded colour profiles converted to sRGB.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from cbam_viz.errors import ImageError, one_line
from cbam_viz.i18n.language import Message, text
from cbam_viz.imaging import exif
from cbam_viz.imaging.headers import check_structure, header_size
from cbam_viz.imaging.limits import (
    ALLOWED_FORMATS,
    MAX_FILE_BYTES,
    MAX_PIXELS,
    check_size,
    formats_in_words,
    refuse_huge,
)

LOGGER = logging.getLogger(__name__)
DECODE_NOTES_KEY = "cbam_viz_decode_notes"  # image.info[...] -> tuple of plain-words notes on what decoding did

_WHITE = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_OPENED_FORMATS = set(ALLOWED_FORMATS) | {"MPO"}  # Pillow's JPEG reader returns camera multi-picture JPEGs as MPO
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
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
        raise ImageError(text("image.empty", label=label, formats=formats_in_words()))
    more_frames = check_structure(data, label, max_pixels)  # before Pillow parses anything
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 89 and 179 megapixels; such an image must not be decoded either. (Python
            # 3.11's catch_warnings is process-wide: two threads racing here can at worst leave this same
            # "error" filter installed, which is the behaviour wanted anyway.)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = header_size(data)
        if size is not None:
            refuse_huge(*size, label=label, max_pixels=max_pixels)
        raise ImageError(text("image.too_large_to_decode", label=label, limit=f"{max_pixels / 1e6:g}")) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(_unreadable_message(data, label)) from exc
    except ValueError as exc:
        raise ImageError(_damaged_message(exc, label)) from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise ImageError(text("image.damaged", label=label, detail=one_line(exc, limit=120))) from exc
    # The data is in memory, so there is no file handle to close; the image stays usable after return.
    return _decode_opened(opened, label=label, max_pixels=max_pixels, owned=True, more_frames=more_frames)


def _damaged_message(exc: BaseException, label: str) -> str:
    if "MAX_TEXT" in str(exc):  # Pillow's caps on compressed PNG text (zTXt/iTXt/iCCP): a zlib bomb in metadata
        return text("image.text_bomb", label=label)
    return text("image.damaged", label=label, detail=one_line(exc, limit=120))


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
            raise ImageError(f"{path} is not a file; give the path of a {formats_in_words()} image")
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
            return text("image.not_accepted", label=label, what=what, formats=formats_in_words())
    return text("image.unreadable", label=label, formats=formats_in_words())


def _decode_opened(
    image: Image.Image, *, label: str, max_pixels: int, owned: bool, more_frames: bool | None = None
) -> Image.Image:
    """Check, load, orient and convert an opened image. ``owned``: the image may be changed in place.
    ``more_frames``: whether a second frame exists, when a header scan already found out."""
    if image.format is not None and image.format not in _OPENED_FORMATS:
        formats = formats_in_words()
        raise ImageError(text("image.format_not_accepted", label=label, format=image.format, formats=formats))
    check_size(*image.size, label=label, max_pixels=max_pixels)
    notes = list(decode_notes(image))  # a picture decoded before keeps what was done to it
    decoded_before = DECODE_NOTES_KEY in image.info  # its frames and orientation were dealt with then
    file_format = image.format
    try:
        if more_frames is None:
            more_frames = not decoded_before and _has_second_frame(image)
        if file_format == "TIFF":
            # Read before loading: Pillow's TIFF reader turns the page upright itself while loading and drops the
            # tag (its directories were bounded by the header scan).
            orientation = image.tag_v2.get(exif.ORIENTATION, 1)
            image.load()
        else:
            image.load()  # a PNG's eXIf chunk may follow its pixels
            orientation, ignored = exif.orientation(image.info)  # never Pillow's getexif: bounded, linear
            if ignored:
                notes.append(Message("note.exif_ignored", why=ignored))
            if orientation in _UPRIGHT:
                image = image.transpose(_UPRIGHT[orientation])
        if orientation in range(2, 9):
            notes.append(Message("note.upright", orientation=orientation))
    except OSError as exc:
        raise ImageError(text("image.truncated", label=label, detail=one_line(exc, limit=120))) from exc
    except Exception as exc:  # broad on purpose: only Pillow's parsers of untrusted bytes run in this block
        raise ImageError(_damaged_message(exc, label)) from exc
    if more_frames:
        notes.append(Message("note.first_page" if file_format == "TIFF" else "note.first_frame"))
    rgb = to_rgb(image, notes, label=label)
    if rgb is image and not owned:
        rgb = image.copy()  # never hand back (and later mutate) the caller's own object
    rgb.info = {DECODE_NOTES_KEY: tuple(notes)}
    return rgb


_UPRIGHT = {  # EXIF orientation -> the transposition that turns the stored pixels upright (Pillow's table)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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
        notes.append(Message("note.transparent"))
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba)  # the picture is its own mask: no RGB copy and no alpha copy in between
        return flat
    if image.mode == "RGB":
        return image
    if image.mode == "CMYK":
        notes.append(Message("note.cmyk"))
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
        notes.append(Message("note.transparent"))
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
            notes.append(Message("note.sixteen_bit"))
            return wide.point(_SIXTEEN_TO_EIGHT, "L")
    values = np.asarray(image)
    low, high = (values.min().item(), values.max().item()) if values.size else (0, 0)
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = np.rint(values * 255.0)
        notes.append(Message("note.float"))
    else:
        span = high - low if high > low else 1.0
        scaled = np.rint((values.astype(np.float64) - low) * (255.0 / span))
        notes.append(Message("note.stretched", mode=image.mode, low=f"{low:g}", high=f"{high:g}"))
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
        LOGGER.warning("ignoring an unusable embedded colour profile: %s", one_line(exc, limit=120))
        notes.append(Message("note.profile_unusable"))
        return image
    notes.append(Message("note.profile_converted"))
    return converted


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
