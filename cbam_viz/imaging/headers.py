"""Per-format header scanners: a picture's true size and structure, read before Pillow decodes a pixel.

Each scanner walks one format's headers (PNG chunks, JPEG segments and scans, GIF blocks, TIFF tags, BMP RLE data)
under caps on how many items Pillow would walk in Python, so that every accepted file decodes within the time budget
and a file built to be slow is refused with one line instead.
"""

from __future__ import annotations

import io
import re
import struct
import warnings

from PIL import Image

from cbam_viz.errors import ImageError
from cbam_viz.i18n.language import text
from cbam_viz.imaging import exif
from cbam_viz.imaging.limits import ALLOWED_FORMATS, MAX_RAW_BYTES, refuse_huge

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


# ---------------------------------------------------------------------------------- header scans, before Pillow
# Pillow parses headers, chunk lists and block chains in Python, one loop turn per item: a 25 MB file of tiny
# items (PNG chunks, JPEG markers, GIF sub-blocks, TIFF tiles, BMP runs) costs it seconds to minutes. These scans
# walk the same structures with a cap on the number of items (and read the sizes the headers promise), so every
# accepted file is decoded within the time budget (tests/test_decode_budget.py) and the others are refused at once.


def check_structure(data: bytes, label: str, max_pixels: int) -> bool | None:
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
            refuse_huge(width, height, label=label, max_pixels=max_pixels)
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
    the frame header, the EXIF it would parse when opening (its APP1 segments, joined), and the number of scans
    (libjpeg decodes every progressive scan over the whole image)."""
    position, segments, junk, exif_bytes = 2, 0, 0, 0
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
            length = struct.unpack_from(">H", data, position + 2)[0]
            if marker in _JPEG_SOF:
                height, width = struct.unpack_from(">HH", data, position + 5)
                refuse_huge(width, height, label=label, max_pixels=max_pixels)
            if marker == 0xE1 and data.startswith(exif.EXIF_PREFIX, position + 4):
                exif_bytes += length - 2  # Pillow joins every EXIF segment into one blob and parses it at once
                if exif_bytes > exif.MAX_EXIF_BYTES:
                    raise _too_slow(label, text("image.exif_too_large", limit=exif.MAX_EXIF_BYTES // 1024))
            if marker in (0xDA, 0xD9):  # start of scan (Pillow's parse ends here) or end of image
                break
            position += 2 + length
        if segments > MAX_JPEG_SEGMENTS or junk > MAX_JPEG_JUNK:
            raise _too_slow(label, text("image.jpeg_segments", segments=MAX_JPEG_SEGMENTS, junk=MAX_JPEG_JUNK))
    scans = _count_scans(data, position)
    if scans > MAX_JPEG_SCANS:
        raise _too_slow(label, f"{scans} progressive scans (at most {MAX_JPEG_SCANS})")


_MARKER = re.compile(rb"\xff[\xc0-\xcf\xd9-\xfe]")  # markers with a length, and EOI; not RSTn, fill or stuffing


def _count_scans(data: bytes, position: int) -> int:
    """The start-of-scan markers from ``position`` (the first scan's) on: each marker segment between scans is
    skipped by its length, so FF DA bytes inside a table or an APP segment do not count, and entropy-coded data
    never holds a marker (an FF there is followed by 00 or RSTn). Stops past ``MAX_JPEG_SCANS``."""
    scans, walked = 0, 0
    while scans <= MAX_JPEG_SCANS and walked <= MAX_JPEG_SEGMENTS:
        found = _MARKER.search(data, position)
        if found is None or found.group()[1] == 0xD9 or found.end() + 2 > len(data):
            break
        walked += 1
        scans += found.group()[1] == 0xDA
        position = found.start() + 2 + struct.unpack_from(">H", data, found.end())[0]
    return scans


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
    refuse_huge(width, height, label=label, max_pixels=max_pixels)
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
            refuse_huge(
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
    refuse_huge(width, height, label=label, max_pixels=max_pixels)
    _refuse_deep(width, height, (scalar(258) or 1) * (scalar(277) or 1), label)  # first BitsPerSample x samples
    pieces = max(tags.get(273, (0, 0))[1], tags.get(324, (0, 0))[1])  # StripOffsets, TileOffsets: entry counts
    tile_width, tile_height, rows = scalar(322), scalar(323), scalar(278)
    if tile_width and tile_height:
        pieces = max(pieces, -(-width // tile_width) * -(-height // tile_height))
    elif rows:
        pieces = max(pieces, -(-height // rows))
    if pieces > MAX_TIFF_PIECES:
        raise _too_slow(label, f"its first TIFF page is cut into {pieces} strips or tiles (at most {MAX_TIFF_PIECES})")
    try:
        exif.survey(data, first_entries=MAX_TIFF_TAGS)  # every tag is read whole when the page opens
    except exif.TooCostly as error:
        raise _too_slow(label, str(error)) from None
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
    refuse_huge(abs(width), abs(height), label=label, max_pixels=max_pixels)
    if compression in (1, 2) and len(data) > MAX_BMP_RLE_BYTES:
        raise _too_slow(label, f"over {MAX_BMP_RLE_BYTES // 1_000_000} MB of run-length-compressed BMP data")


def header_size(data: bytes) -> tuple[int, int] | None:
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


# ------------------------------------------------------------------------------------------------ live frames
LIVE_FRAME_PIXELS = 4_000_000  # a webcam frame: 1080p is 2.1 megapixels
LIVE_FRAME_BYTES = 3_000_000
LIVE_FRAME_FORMATS = "JPEG, PNG or WebP"


def live_frame_problem(data: bytes) -> str | None:
    """Why a webcam frame may not be decoded (another format, over ``LIVE_FRAME_PIXELS``, a hostile structure), read
    from its header alone; None for an ordinary frame. A frame is a browser's JPEG, PNG or WebP."""
    label = text("image.live_frame")
    refusal = text("image.live_frame_rule", formats=LIVE_FRAME_FORMATS, limit=LIVE_FRAME_PIXELS // 1_000_000)
    if len(data) > LIVE_FRAME_BYTES:
        return refusal
    try:
        if data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8")):
            check_structure(data, label, LIVE_FRAME_PIXELS)
            size = header_size(data) if data.startswith(b"\xff\xd8") else struct.unpack_from(">II", data, 16)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            size = _webp_size(data)
        else:
            return refusal
    except ImageError as error:
        return str(error)
    except struct.error:
        return refusal
    if size is None or size[0] * size[1] > LIVE_FRAME_PIXELS:
        return refusal
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """A WebP's canvas from its first chunk (VP8X, VP8L or VP8), without libwebp."""
    kind = data[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 ":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None
