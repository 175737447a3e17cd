"""The decode budget's adversarial files, made on the fly (``CASES``), and one decode measured as plain data.

By hand where Pillow's writers are too slow (its multi-page TIFF writer takes 18 s for 5000 pages): many pages, many
frames, 49-megapixel low-entropy pictures, deep and palette tricks, zlib bombs in PNG text chunks, floods of the tiny
items Pillow walks one Python loop turn at a time (PNG chunks, JPEG segments and padding, GIF blocks, TIFF tiles, BMP
runs), too many progressive scans, and headers promising more pixels than Pillow itself allows. Used by
tests/test_decode_budget.py and ``python -m benchmarks.hostile``.
"""

from __future__ import annotations

import gc
import io
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from cbam_viz.errors import ImageError
from cbam_viz.imaging.decode import decode_image, decode_notes
from cbam_viz.imaging.limits import MAX_FILE_BYTES
from tests.helpers import hostile

REFERENCE = "_reference"
MP49 = 7000  # a 7000x7000 picture: 49 megapixels, just under the 50-megapixel limit


# ------------------------------------------------------------------------------------------------------ TIFF


def _tiff_ifd(entries: list[tuple[int, int, int, int]], next_offset: int) -> bytes:
    """One little-endian IFD: (tag, type, count, inline value) entries, SHORT (3) or LONG (4) values."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        inline = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        body += struct.pack("<HHI", tag, kind, count) + inline
    return body + struct.pack("<I", next_offset)


def many_page_tiff(pages: int, side: int = 8) -> bytes:
    """``pages`` tiny greyscale pages sharing one strip, linked one after the other (Pillow's n_frames walks them
    all, with a cost growing with the square of the count)."""
    pixels = bytes(side * side)
    first_ifd = 8 + len(pixels)
    ifd_size = 2 + 9 * 12 + 4
    parts = [b"II*\x00" + struct.pack("<I", first_ifd), pixels]
    for page in range(pages):
        following = first_ifd + (page + 1) * ifd_size if page + 1 < pages else 0
        entries = [(256, 3, 1, side), (257, 3, 1, side), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
        entries += [(273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, side), (279, 4, 1, len(pixels))]
        parts.append(_tiff_ifd(entries, following))
    return b"".join(parts)


def deflate_tiff(width: int, height: int, bits: int = 8) -> bytes:
    """One Adobe-deflate strip of zeros: 49 MP in a few kilobytes, decoded by libtiff."""
    strip = hostile.zero_zlib_stream(width * height * bits // 8)
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bits), (259, 3, 1, 8), (262, 3, 1, 1)]
    entries += [(273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, len(strip))]
    return b"II*\x00" + struct.pack("<I", 8 + len(strip)) + strip + _tiff_ifd(entries, 0)


def tiny_tile_tiff(width: int, height: int, tile: int = 16) -> bytes:
    """Uncompressed, cut into ``tile`` x ``tile`` tiles that all point at one block of zeros (Pillow builds one
    Python tile per piece)."""
    block = bytes(tile * tile)
    count = -(-width // tile) * -(-height // tile)
    offsets_at = 8 + len(block)
    counts_at = offsets_at + 4 * count
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
    entries += [(277, 3, 1, 1), (322, 3, 1, tile), (323, 3, 1, tile), (324, 4, count, offsets_at)]
    entries += [(325, 4, count, counts_at)]
    tables = struct.pack(f"<{count}I", *([8] * count)) + struct.pack(f"<{count}I", *([len(block)] * count))
    return b"II*\x00" + struct.pack("<I", counts_at + 4 * count) + block + tables + _tiff_ifd(entries, 0)


# ------------------------------------------------------------------------------------------------------- GIF

_GIF_PIXEL = b"\x02\x02\x44\x01\x00"  # LZW minimum code size 2, one sub-block: clear, index 0, end
_GIF_FRAME = b"\x21\xf9\x04\x00\x01\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + _GIF_PIXEL


def _gif_header(width: int = 8, height: int = 8) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"


def many_frame_gif(frames: int) -> bytes:
    return _gif_header() + _GIF_FRAME * frames + b";"


def gif_with_extensions(extension: bytes, count: int) -> bytes:
    """``count`` copies of one extension block before the only frame (Pillow reads them while opening)."""
    return _gif_header() + extension * count + _GIF_FRAME + b";"


# ------------------------------------------------------------------------------------------------------- PNG


def _png(width: int, height: int, depth: int, colour: int, stream: bytes, before: bytes = b"", after: bytes = b""):
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    chunk = hostile._png_chunk
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + before + chunk(b"IDAT", stream) + after + chunk(b"IEND", b"")


def palette_png_49mp() -> bytes:
    """1-bit palette, entry 0 transparent in tRNS: every pixel uses it."""
    row = (MP49 + 7) // 8
    before = hostile._png_chunk(b"PLTE", b"\x00\x00\x00\xff\x00\x00") + hostile._png_chunk(b"tRNS", b"\x00")
    return _png(MP49, MP49, 1, 3, hostile.zero_zlib_stream((row + 1) * MP49), before=before)


def sixteen_bit_png(colour: int) -> bytes:
    channels = {0: 1, 2: 3, 6: 4}[colour]
    return _png(MP49, MP49, 16, colour, hostile.zero_zlib_stream((2 * channels * MP49 + 1) * MP49))


def _small_png_parts() -> tuple[bytes, bytes]:
    """(a 64x64 grey PNG up to and including IHDR, the rest)."""
    data = hostile.png_bytes(64, 64, 8, 0, zlib.compress(bytes(65 * 64)))
    return data[:33], data[33:]


def text_bomb_png(kind: bytes, count: int, inflated: int, before_pixels: bool) -> bytes:
    """``count`` zTXt or iTXt chunks, each a zlib stream inflating to ``inflated`` zero bytes."""
    prefix = b"k\x00\x00" if kind == b"zTXt" else b"k\x00\x01\x00\x00\x00"
    chunks = hostile._png_chunk(kind, prefix + hostile.zero_zlib_stream(inflated)) * count
    head, rest = _small_png_parts()
    if before_pixels:
        return head + chunks + rest
    return head + rest[:-12] + chunks + rest[-12:]


def chunk_flood_png(count: int) -> bytes:
    head, rest = _small_png_parts()
    return head + hostile._png_chunk(b"xxXx", b"") * count + rest


# ------------------------------------------------------------------------------------------------------ JPEG


def _small_jpeg(**options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 90).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def marker_flood_jpeg(segment: bytes, count: int) -> bytes:
    data = _small_jpeg()
    return data[:2] + segment * count + data[2:]


def many_scan_jpeg(extra_scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated (libjpeg decodes every scan over the whole picture)."""
    data = _small_jpeg(progressive=True)
    last_scan = data.rindex(b"\xff\xda")
    return data[:-2] + data[last_scan:-2] * extra_scans + b"\xff\xd9"


def jpeg_claiming(width: int, height: int) -> bytes:
    data = _small_jpeg()
    frame = data.index(b"\xff\xc0")
    return data[: frame + 5] + struct.pack(">HH", height, width) + data[frame + 9 :]


# ------------------------------------------------------------------------------------------------------- BMP


def rle8_bmp(width: int, height: int, body: bytes) -> bytes:
    palette = bytes(1024)
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + body


# ----------------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    make: Callable[[], bytes]
    size: tuple[int, int] | None = None  # decodes to this size; None: refused
    words: str = ""  # refusal: words of the one-line message; decoded: a note it must carry


FULL = MAX_FILE_BYTES - 200_000  # floods fill the upload limit

CASES: dict[str, Case] = {
    "tiff_200k_pages": Case(lambda: many_page_tiff(200_000), (8, 8), "first page used"),
    "gif_1m_frames": Case(lambda: many_frame_gif(FULL // len(_GIF_FRAME)), (8, 8), "first frame used"),
    "gif_comment_flood": Case(lambda: gif_with_extensions(b"\x21\xfe\x01c\x00", FULL // 5), None, "slow to decode"),
    "gif_empty_extensions": Case(lambda: gif_with_extensions(b"\x21\x01\x00", FULL // 3), None, "slow to decode"),
    "gif_one_huge_comment": Case(
        lambda: gif_with_extensions(b"\x21\xfe" + (b"\xff" + b"c" * 255) * (FULL // 256) + b"\x00", 1),
        None,
        "GIF comments",
    ),
    "gif_screen_60000": Case(lambda: _gif_header(60000, 60000) + _GIF_FRAME + b";", None, "60000x60000 pixels"),
    "png_49mp_grey": Case(lambda: hostile.black_png_bytes(MP49, MP49), (MP49, MP49)),
    "png_49mp_palette_transparent": Case(palette_png_49mp, (MP49, MP49), "transparent areas shown on white"),
    "png_49mp_rgba_transparent": Case(
        lambda: _png(MP49, MP49, 8, 6, hostile.zero_zlib_stream((4 * MP49 + 1) * MP49)),
        (MP49, MP49),
        "transparent areas shown on white",
    ),
    "png_49mp_16bit_grey": Case(lambda: sixteen_bit_png(0), (MP49, MP49), "16-bit image scaled to 8 bit"),
    "png_49mp_16bit_rgba": Case(lambda: sixteen_bit_png(6), None, "392 MB of pixel data"),
    "tiff_49mp_deflate": Case(lambda: deflate_tiff(MP49, MP49), (MP49, MP49)),
    "tiff_49mp_16bit": Case(lambda: deflate_tiff(MP49, MP49, 16), (MP49, MP49), "16-bit image scaled to 8 bit"),
    "tiff_tiny_tiles": Case(lambda: tiny_tile_tiff(7008, 7008), None, "strips or tiles"),
    "tiff_page_over_the_limit": Case(lambda: deflate_tiff(9000, 9000), None, "9000x9000 pixels (81.0 megapixels"),
    "png_ztxt_64_megabytes": Case(lambda: text_bomb_png(b"zTXt", 70, 1_000_000, False), None, "compressed text"),
    "png_ztxt_one_gigabyte": Case(lambda: text_bomb_png(b"zTXt", 1, 1 << 30, False), None, "compressed text"),
    "png_itxt_before_pixels": Case(lambda: text_bomb_png(b"iTXt", 70, 1_000_000, True), None, "compressed text"),
    "png_text_within_pillows_caps": Case(lambda: text_bomb_png(b"zTXt", 60, 1_000_000, True), (64, 64)),
    "png_chunk_flood": Case(lambda: chunk_flood_png(FULL // 12), None, "PNG chunks"),
    "jpeg_comment_flood": Case(lambda: marker_flood_jpeg(b"\xff\xfe\x00\x02", FULL // 4), None, "segments"),
    "jpeg_padding_flood": Case(lambda: marker_flood_jpeg(b"\xff", FULL), None, "junk bytes"),
    "jpeg_junk_flood": Case(lambda: marker_flood_jpeg(b"\x00", FULL), None, "junk bytes"),
    "jpeg_many_scans": Case(lambda: many_scan_jpeg(200), None, "progressive scans"),
    "jpeg_progressive_plain": Case(lambda: _small_jpeg(progressive=True), (16, 16)),
    "jpeg_144_megapixels": Case(lambda: jpeg_claiming(12000, 12000), None, "12000x12000 pixels (144.0 megapixels"),
    "bmp_rle_runs_of_one": Case(lambda: rle8_bmp(3500, 3500, b"\x01\x05" * (FULL // 2)), None, "run-length"),
    "bmp_rle_end_of_lines": Case(lambda: rle8_bmp(3500, 3500, b"\x00\x00" * (FULL // 2)), None, "run-length"),
    "bmp_rle_small": Case(lambda: rle8_bmp(64, 64, (b"\x40\x07" + b"\x00\x00") * 64 + b"\x00\x01"), (64, 64)),
}


def measure(key: str) -> dict:
    """Make one case's file and decode it; -> the decoder's own CPU time and what came out, as plain data."""
    data = reference_png() if key == REFERENCE else CASES[key].make()
    gc.collect()  # the previous case's garbage is not this decode's cost
    start, cpu_start = time.perf_counter(), time.thread_time()
    try:
        image = decode_image(data, name=f"{key}.bin")
        outcome = {"size": list(image.size), "mode": image.mode, "notes": list(decode_notes(image))}
    except ImageError as error:
        outcome = {"refused": str(error)}
    spent, wall = time.thread_time() - cpu_start, time.perf_counter() - start
    return {"key": key, "bytes": len(data), "cpu": spent, "wall": wall, **outcome}


def reference_png() -> bytes:
    """A file every decoder must accept at full cost: 49 megapixels of 8-bit RGB."""
    return _png(MP49, MP49, 8, 2, hostile.zero_zlib_stream((3 * MP49 + 1) * MP49))
