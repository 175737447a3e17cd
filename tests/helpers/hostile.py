"""Hostile and awkward input files, written on demand, with the outcome each one must have.

Shared by the imaging tests and by the CLI/app tests: ``write_hostile_files(directory)`` writes every file (all small,
all in well under a second) and returns ``{key: path}``; ``EXPECTED[key]`` says whether it must decode (to what size,
with which pixel colours) or be rejected (with which words in the one-line message).

The decompression bombs are genuine: their zlib streams really inflate to the full 20000x20000 (400 MB) of pixels,
built cheaply from one fully-flushed deflate block repeated, so a decoder that forgot its size check would suffer.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

Pixel = tuple[tuple[int, int], tuple[int, int, int], int]  # ((x, y), expected RGB, tolerance per channel)

RED = (220, 20, 20)
GREEN = (20, 200, 40)
GREY = (128, 128, 128)
EXIF_STORED_SIZE = (48, 32)  # width, height of the stored (unrotated) pixels of the EXIF test photos
_RED_CENTRE = (8, 5)  # centres of the two marker blocks in the stored pixels
_GREEN_CENTRE = (40, 5)


@dataclass(frozen=True)
class Expected:
    """The outcome one file must have."""

    decodes: bool
    size: tuple[int, int] | None = None  # (width, height) after decoding (EXIF applied)
    mode: str = "RGB"
    error: str | None = None  # words the one-line ImageError message must contain (case-insensitive)
    pixels: tuple[Pixel, ...] = field(default=())


def _displayed(orientation: int, point: tuple[int, int]) -> tuple[int, int]:
    """Where a stored pixel ends up once the EXIF orientation is applied (the EXIF 2.3 table, written out)."""
    width, height = EXIF_STORED_SIZE
    x, y = point
    return {
        1: (x, y),
        2: (width - 1 - x, y),
        3: (width - 1 - x, height - 1 - y),
        4: (x, height - 1 - y),
        5: (y, x),
        6: (height - 1 - y, x),
        7: (height - 1 - y, width - 1 - x),
        8: (y, width - 1 - x),
    }[orientation]


def exif_expected(orientation: int) -> Expected:
    """Upright size and marker colours of ``exif_jpeg_bytes(orientation)`` once decoded."""
    width, height = EXIF_STORED_SIZE
    size = (height, width) if orientation >= 5 else (width, height)
    pixels = ((_displayed(orientation, _RED_CENTRE), RED, 40), (_displayed(orientation, _GREEN_CENTRE), GREEN, 40))
    return Expected(True, size=size, pixels=pixels)


def exif_jpeg_bytes(orientation: int) -> bytes:
    """A 48x32 JPEG with a red block top-left and a green block top-right, tagged with an EXIF orientation."""
    image = Image.new("RGB", EXIF_STORED_SIZE, GREY)
    image.paste(RED, (0, 0, 16, 11))
    image.paste(GREEN, (32, 0, 48, 11))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    return buffer.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, zlib_stream: bytes) -> bytes:
    """A PNG assembled by hand (so the header can claim anything and the depth can be 16 bit)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib_stream) + _png_chunk(b"IEND", b"")
    )


def zero_zlib_stream(total: int, chunk: int = 1 << 20) -> bytes:
    """A valid zlib stream inflating to ``total`` zero bytes, built in milliseconds: after a full flush a deflate
    block does not depend on what came before, so one compressed 1 MiB block is repeated; the Adler-32 of n zeros
    is ((n mod 65521) << 16) | 1."""
    compressor = zlib.compressobj(9)
    first = min(total, chunk)
    parts = [compressor.compress(bytes(first)) + compressor.flush(zlib.Z_FULL_FLUSH)]
    full, rest = divmod(total - first, chunk)
    if full:
        parts.append((compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)) * full)
    if rest:
        parts.append(compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FULL_FLUSH))
    ending = compressor.flush(zlib.Z_FINISH)
    parts.append(ending[:-4] + struct.pack(">I", ((total % 65521) << 16) | 1))
    return b"".join(parts)


def black_png_bytes(width: int, height: int) -> bytes:
    """An all-black 8-bit greyscale PNG of any size, cheap to build and tiny on disk (deflate's ~1000:1 ratio)."""
    return png_bytes(width, height, 8, 0, zero_zlib_stream((width + 1) * height))


def _sixteen_bit_rgb_png() -> bytes:
    """8x8 RGB PNG at 16 bits per channel: every pixel (65535, 32768, 0)."""
    row = b"\x00" + struct.pack(">HHH", 65535, 32768, 0) * 8
    return png_bytes(8, 8, 16, 2, zlib.compress(row * 8))


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _halves(size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str) -> Image.Image:
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def _noise_jpeg(size: tuple[int, int]) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return _encode(Image.fromarray(pixels), "JPEG", quality=90)


def _psd_bytes(width: int = 8, height: int = 8) -> bytes:
    """A minimal valid Photoshop file (Pillow can read it, which is exactly why the app must not)."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0)
    return header + sections + bytes([200]) * (3 * width * height)


def _sixteen_bit_grey(mode: str = "I;16") -> Image.Image:
    """8x8 16-bit greyscale: 0, 32768, 65535, 257 in the first row, 1000 elsewhere (Pillow's own
    ``convert("I;16B")`` clamps to 255, so the big-endian version is built from bytes)."""
    values = np.full((8, 8), 1000, dtype=np.uint16)
    values[0, :4] = (0, 32768, 65535, 257)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    return Image.frombytes(mode, (8, 8), values.astype(dtype).tobytes())


def _palette_with_transparency() -> Image.Image:
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    image.paste(1, (8, 0, 16, 16))
    image.info["transparency"] = 0
    return image


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, GREEN, (20, 20, 220))]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _half_transparent_rgba() -> Image.Image:
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    image.paste((255, 0, 0, 128), (8, 0, 16, 16))
    return image


CMYK_LEFT = (200, 30, 90)
CMYK_RIGHT = (20, 120, 220)

# key: (file name, bytes factory, expected outcome)
_FILES: dict[str, tuple[str, object, Expected]] = {
    "empty": ("empty.png", lambda: b"", Expected(False, error="empty")),
    "text_as_png": (
        "notes.png",
        lambda: b"Shopping list:\n- milk\n- bread\n" * 4,
        Expected(False, error="not an image we can read"),
    ),
    "truncated_jpeg": ("truncated.jpg", lambda: _noise_jpeg((64, 64))[:1500], Expected(False, error="truncated")),
    "truncated_png": (
        "truncated.png",
        lambda: _encode(Image.effect_noise((64, 64), 60), "PNG")[:900],
        Expected(False, error="damaged"),
    ),
    "tiny_1x1": (
        "pixel.png",
        lambda: _encode(Image.new("RGB", (1, 1), RED), "PNG"),
        Expected(False, error="too small"),
    ),
    "bomb_png": ("bomb.png", lambda: black_png_bytes(20000, 20000), Expected(False, error="too large")),
    "over_pixel_limit_png": ("huge.png", lambda: black_png_bytes(9000, 6000), Expected(False, error="megapixels")),
    "too_long_side_png": ("wide.png", lambda: black_png_bytes(20100, 2000), Expected(False, error="longest side")),
    "elongated_png": ("strip.png", lambda: black_png_bytes(2100, 100), Expected(False, error="too elongated")),
    "psd": ("layers.psd", _psd_bytes, Expected(False, error="photoshop")),
    "pdf": (
        "paper.pdf",
        lambda: b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        Expected(False, error="pdf"),
    ),
    "eps": (
        "figure.eps",
        lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n",
        Expected(False, error="eps"),
    ),
    "heic": (
        "photo.heic",
        lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        Expected(False, error="heic"),
    ),
    "png_16bit": (
        "grey16.png",
        lambda: _encode(_sixteen_bit_grey(), "PNG"),
        Expected(
            True,
            size=(8, 8),
            pixels=(
                ((0, 0), (0, 0, 0), 0),
                ((1, 0), (128, 128, 128), 0),
                ((2, 0), (255, 255, 255), 0),
                ((3, 0), (1, 1, 1), 0),
                ((5, 5), (4, 4, 4), 0),
            ),
        ),
    ),
    "tiff_16bit_big_endian": (
        "grey16be.tif",
        lambda: _encode(_sixteen_bit_grey("I;16B"), "TIFF"),
        Expected(True, size=(8, 8), pixels=(((1, 0), (128, 128, 128), 0), ((2, 0), (255, 255, 255), 0))),
    ),
    "png_rgb_16bit": (
        "rgb16.png",
        _sixteen_bit_rgb_png,
        Expected(True, size=(8, 8), pixels=(((3, 3), (255, 128, 0), 0),)),
    ),
    "cmyk_jpeg": (
        "print.jpg",
        lambda: _encode(_halves((32, 16), CMYK_LEFT, CMYK_RIGHT, "RGB").convert("CMYK"), "JPEG", quality=95),
        Expected(True, size=(32, 16), pixels=(((4, 8), CMYK_LEFT, 12), ((27, 8), CMYK_RIGHT, 12))),
    ),
    "palette_transparent_png": (
        "sticker.png",
        lambda: _encode(_palette_with_transparency(), "PNG"),
        Expected(True, size=(16, 16), pixels=(((2, 8), (255, 255, 255), 0), ((12, 8), RED, 0))),
    ),
    "rgba_png": (
        "logo.png",
        lambda: _encode(_half_transparent_rgba(), "PNG"),
        Expected(True, size=(16, 16), pixels=(((2, 8), (255, 255, 255), 0), ((12, 8), (255, 127, 127), 1))),
    ),
    "la_png": (
        "grey_alpha.png",
        lambda: _encode(_halves((16, 16), (0, 0), (0, 255), "LA"), "PNG"),
        Expected(True, size=(16, 16), pixels=(((2, 8), (255, 255, 255), 0), ((12, 8), (0, 0, 0), 0))),
    ),
    "bilevel_png": (
        "fax.png",
        lambda: _encode(_halves((16, 16), (0,), (1,), "1"), "PNG"),
        Expected(True, size=(16, 16), pixels=(((2, 8), (0, 0, 0), 0), ((12, 8), (255, 255, 255), 0))),
    ),
    "grey_jpeg": (
        "grey.jpg",
        lambda: _encode(Image.new("L", (16, 16), 90), "JPEG", quality=95),
        Expected(True, size=(16, 16), pixels=(((8, 8), (90, 90, 90), 2),)),
    ),
    "animated_gif": (
        "blink.gif",
        _animated_gif,
        Expected(True, size=(16, 16), pixels=(((8, 8), RED, 8),)),
    ),
    "webp": (
        "photo.webp",
        lambda: _encode(Image.new("RGB", (24, 16), GREEN), "WEBP", lossless=True),
        Expected(True, size=(24, 16), pixels=(((12, 8), GREEN, 0),)),
    ),
    "bmp": (
        "paint.bmp",
        lambda: _encode(Image.new("RGB", (24, 16), RED), "BMP"),
        Expected(True, size=(24, 16), pixels=(((12, 8), RED, 0),)),
    ),
    "tiff": (
        "scan.tif",
        lambda: _encode(Image.new("RGB", (24, 16), GREY), "TIFF"),
        Expected(True, size=(24, 16), pixels=(((12, 8), GREY, 0),)),
    ),
    "exif_rotate_6_jpeg": ("rotated6.jpg", lambda: exif_jpeg_bytes(6), exif_expected(6)),
    "exif_rotate_8_jpeg": ("rotated8.jpg", lambda: exif_jpeg_bytes(8), exif_expected(8)),
    "exif_rotate_3_jpeg": ("rotated3.jpg", lambda: exif_jpeg_bytes(3), exif_expected(3)),
}

EXPECTED: dict[str, Expected] = {key: expected for key, (_, _, expected) in _FILES.items()}
FILE_NAMES: dict[str, str] = {key: name for key, (name, _, _) in _FILES.items()}


def write_hostile_files(directory: Path) -> dict[str, Path]:
    """Write every hostile file into ``directory`` (created if needed); ``{key: path}`` with keys of ``EXPECTED``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, (name, factory, _) in _FILES.items():
        path = directory / name
        path.write_bytes(factory())  # type: ignore[operator]
        written[key] = path
    return written


# ------------------------------------------------------------------------------------------------ EXIF bombs
# Pillow's EXIF parser is quadratic on these (issue table: 3 s to 2 minutes each in the only analysis slot).

EXIF_PREFIX = b"Exif\x00\x00"


def _small_picture(fmt: str, **options: object) -> bytes:
    return _encode(Image.new("RGB", (32, 24), GREY), fmt, **options)


def _png_with(chunk: bytes) -> bytes:
    """A small PNG with ``chunk`` (already framed) placed after its IHDR."""
    png = _small_picture("PNG")
    return png[:33] + chunk + png[33:]


def exif_ifd(entries: int, orientation: int | None = None) -> bytes:
    """A little-endian TIFF-style EXIF blob whose first directory holds ``entries`` entries (SHORT, inline)."""
    tags = [(0x0112, orientation)] if orientation else []
    tags += [((0x9000 + index) & 0xFFFF, index & 0xFFFF) for index in range(entries - len(tags))]
    body = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags))
    body += b"".join(struct.pack("<HHIHH", tag, 3, 1, value, 0) for tag, value in tags)
    return EXIF_PREFIX + body + struct.pack("<I", 0)


def png_exif_chunk(blob: bytes) -> bytes:
    """A PNG whose eXIf chunk holds ``blob`` (without the ``Exif\\0\\0`` Pillow adds back when reading)."""
    return _png_with(_png_chunk(b"eXIf", blob[len(EXIF_PREFIX) :] if blob.startswith(EXIF_PREFIX) else blob))


def png_raw_profile(blob: bytes) -> bytes:
    """A PNG whose tEXt "Raw profile type exif" holds ``blob`` in hex, as ImageMagick writes it."""
    hexed = blob.hex()
    lines = "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72))
    text = f"\nexif\n{len(blob):8d}\n{lines}\n".encode()
    return _png_with(_png_chunk(b"tEXt", b"Raw profile type exif\x00" + text))


def webp_exif(blob: bytes) -> bytes:
    return _small_picture("WEBP", lossless=True, exif=blob)


def tiff_spanning_tags(tags: int, size: int) -> bytes:
    """A ``size``-byte 16x16 greyscale TIFF whose first page has ``tags`` extra tags, each an UNDEFINED value
    that spans the whole file (Pillow reads each one whole when it opens the page)."""
    entries = [(256, 3, 1, 16), (257, 3, 1, 16), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1)]
    entries += [(278, 3, 1, 16), (279, 4, 1, 256)]
    entries += [(40000 + index, 7, size, 0) for index in range(tags)]
    ifd_size = 2 + 12 * len(entries) + 4
    pixels_at = 8 + ifd_size
    table = b""
    for tag, kind, count, value in sorted(entries):
        value = pixels_at if tag == 273 else value
        inline = struct.pack("<I", value) if kind in (4, 7) else struct.pack("<HH", value, 0)
        table += struct.pack("<HHI", tag, kind, count) + inline
    data = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + table + struct.pack("<I", 0)
    data += bytes(256)
    return data + bytes(max(0, size - len(data)))


def jpeg_exif_segments(segments: int) -> bytes:
    """A small JPEG with ``segments`` EXIF APP1 segments of 60 KB each (Pillow joins them into one blob)."""
    jpeg = _small_picture("JPEG")
    payload = EXIF_PREFIX + EXIF_PREFIX * 10_000
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment * segments + jpeg[2:]


def jpeg_icc_with_sos_bytes(count: int = 151) -> bytes:
    """A baseline JPEG whose (well-formed) ICC profile carries ``count`` FF DA byte pairs in its padding."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() + b"\xff\xda" * count
    return _small_picture("JPEG", icc_profile=profile)


def exif_bombs(scale: int = 1) -> dict[str, bytes]:
    """The issue's crafted files; ``scale`` divides the repeat counts (1: the sizes in the table)."""
    repeated = EXIF_PREFIX * (400_000 // scale)
    return {
        "png_exif_2_4_mb": png_exif_chunk(EXIF_PREFIX + repeated),
        "png_exif_4_8_mb": png_exif_chunk(EXIF_PREFIX + repeated * 2),
        "webp_exif_2_4_mb": webp_exif(repeated),
        "png_ifd_65535_entries": png_exif_chunk(exif_ifd(65_535 // scale)),
        "tiff_4000_spanning_tags": tiff_spanning_tags(4_000 // scale, 24_000_000 // scale),
        "png_raw_profile_exif": png_raw_profile(EXIF_PREFIX * (100_000 // scale)),
        "jpeg_exif_segments": jpeg_exif_segments(4),
    }
