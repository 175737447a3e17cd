"""EXIF, bounded: the orientation read by the app's own small parser, and a cost survey of TIFF-style directories.

Pillow's EXIF parser is quadratic on crafted input (a blob of ``Exif\\0\\0`` repeated is stripped six bytes a turn,
and a directory of 65 535 entries or tags whose values span the file are read whole, each), and PNG ``eXIf``, PNG
tEXt "Raw profile type exif" and WebP ``EXIF`` chunks have no size limit. So:

* ``orientation`` reads only the orientation tag of an EXIF blob (JPEG, PNG, WebP), and only from a blob of at most
  ``MAX_EXIF_BYTES`` (a JPEG APP1 segment's limit) whose first directory has at most ``MAX_IFD_ENTRIES`` entries;
  a larger one is ignored with a note (the picture is still decoded, not turned). Pillow's ``getexif`` is never
  called on such a blob.
* ``survey`` walks a TIFF structure's first directory and its Exif, GPS and Interop directories (what Pillow's TIFF
  reader loads) and counts what Pillow would read: entries, out-of-line value bytes (each tag is read whole, even
  when it spans the file) and numeric values (each becomes a Python number); the header scan refuses a file past
  ``MAX_IFD_ENTRIES`` per sub-directory, ``MAX_TAG_BYTES`` or ``MAX_TAG_VALUES``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

MAX_EXIF_BYTES = 65_536  # a JPEG APP1 segment's limit; cameras write 10-30 KB
MAX_IFD_ENTRIES = 1_000  # per EXIF directory; cameras write a few dozen
MAX_TAG_BYTES = 32_000_000  # out-of-line tag values Pillow reads for a TIFF's directories (a 25 MB file, once)
MAX_TAG_VALUES = 500_000  # numeric values in them (65 536 strips have 131 072 offsets and counts)
MAX_XMP_BYTES = 1_000_000
EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION = 0x0112
SUB_DIRECTORIES = (0x8769, 0x8825, 0xA005)  # Exif, GPS, Interop: the directories Pillow's TIFF reader loads
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_BYTE_TYPES = frozenset({1, 2, 6, 7})  # BYTE, ASCII, SBYTE, UNDEFINED: kept as bytes, no Python number each
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)([0-9])')


class TooCostly(ValueError):
    """A directory structure past one of the bounds; the message says which, in a few words."""


@dataclass
class Survey:
    """What Pillow would read of a TIFF structure's directories."""

    entries: int = 0
    value_bytes: int = 0
    values: int = 0
    orientation: int | None = None


@dataclass(frozen=True)
class _Layout:
    order: str  # "<" or ">"
    big: bool  # BigTIFF: 8-byte offsets and counts

    @property
    def inline(self) -> int:
        return 8 if self.big else 4


def layout(data: bytes, base: int = 0) -> _Layout | None:
    """The byte order and kind of the TIFF header at ``data[base:]``, or None when there is none."""
    head = data[base : base + 4]
    if head in (b"II*\x00", b"MM\x00*"):
        return _Layout("<" if head[0] == 0x49 else ">", False)
    if head in (b"II+\x00", b"MM\x00+"):
        return _Layout("<" if head[0] == 0x49 else ">", True)
    return None


def survey(data: bytes, base: int = 0, *, first_entries: int | None = None) -> Survey:
    """Walk the first directory (and its Exif, GPS, Interop directories) of the TIFF structure at ``data[base:]``;
    ``TooCostly`` past a bound. ``first_entries``: the cap for the first directory (a TIFF file's own page has
    its own cap in the header scan). Offsets are relative to ``base``, as in an EXIF blob."""
    form = layout(data, base)
    if form is None:
        return Survey()
    first = struct.unpack_from(form.order + ("Q" if form.big else "I"), data, base + (8 if form.big else 4))[0]
    result = Survey()
    seen: set[int] = set()
    pending = [(first, True)]
    while pending:
        offset, top = pending.pop()
        if offset in seen or not 0 < offset < len(data) - base:
            continue
        seen.add(offset)
        limit = (first_entries or MAX_IFD_ENTRIES) if top else MAX_IFD_ENTRIES
        for tag, kind, count, value in _entries(data, base, offset, form, limit):
            result.entries += 1
            size = count * _TYPE_SIZES.get(kind, 0)
            if size > form.inline:
                start = struct.unpack_from(form.order + ("Q" if form.big else "I"), value)[0]
                result.value_bytes += max(0, min(size, len(data) - base - start))
            if kind not in _BYTE_TYPES:
                result.values += count if size <= len(data) else 0
            if result.value_bytes > MAX_TAG_BYTES:
                raise TooCostly(f"tags that read more than {MAX_TAG_BYTES // 1_000_000} MB")
            if result.values > MAX_TAG_VALUES:
                raise TooCostly(f"tags of more than {MAX_TAG_VALUES} numbers")
            if top and tag == ORIENTATION and kind == 3 and count == 1:
                result.orientation = struct.unpack_from(form.order + "H", value)[0]
            if tag in SUB_DIRECTORIES and kind in (4, 13, 16) and count == 1:
                pending.append((struct.unpack_from(form.order + ("Q" if kind == 16 else "I"), value)[0], False))
    return result


def _entries(data: bytes, base: int, offset: int, form: _Layout, limit: int) -> list[tuple[int, int, int, bytes]]:
    position = base + offset
    count = struct.unpack_from(form.order + ("Q" if form.big else "H"), data, position)[0]
    if count > limit:
        raise TooCostly(f"an EXIF directory of {count} entries, at most {limit}")
    position += 8 if form.big else 2
    entry = form.order + ("HHQ8s" if form.big else "HHI4s")
    table = data[position : position + count * struct.calcsize(entry)]
    return list(struct.iter_unpack(entry, table[: len(table) - len(table) % struct.calcsize(entry)]))


def blob(info: dict[str, Any]) -> bytes | None:
    """The EXIF blob a decoded file carries (JPEG, PNG ``eXIf``, WebP ``EXIF``, or a PNG's hex raw profile),
    without decoding a raw profile far larger than any blob this module reads."""
    found = info.get("exif")
    if isinstance(found, (bytes, bytearray)):
        return bytes(found)
    raw = info.get("Raw profile type exif")
    if isinstance(raw, str):
        if len(raw) > 2 * MAX_EXIF_BYTES + 200:
            return b"\x00" * (MAX_EXIF_BYTES + 1)  # stands for "too large" without decoding it
        try:
            return bytes.fromhex("".join(raw.split("\n")[3:]))
        except ValueError:
            return None
    return None


def orientation(info: dict[str, Any]) -> tuple[int, str | None]:
    """The EXIF (else XMP) orientation of a decoded file's metadata, 1 when none; and why EXIF was ignored, in a
    few words, when it was (too large, or a directory past the bound)."""
    found = blob(info)
    value, ignored = None, None
    if found is not None:
        if len(found) > MAX_EXIF_BYTES:
            ignored = f"more than {MAX_EXIF_BYTES // 1024} KB"
        else:
            data = found[len(EXIF_PREFIX) :] if found.startswith(EXIF_PREFIX) else found
            try:
                value = survey(data).orientation
            except TooCostly as error:
                ignored = str(error)
            except struct.error:
                value = None  # cut short: no orientation
    if value is None and ignored is None:
        value = _xmp_orientation(info)
    return (value if value in range(1, 9) else 1), ignored


def _xmp_orientation(info: dict[str, Any]) -> int | None:
    for key in ("xmp", "XML:com.adobe.xmp"):
        xmp = info.get(key)
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8", "replace")
        if isinstance(xmp, (bytes, bytearray)) and len(xmp) <= MAX_XMP_BYTES:
            found = _XMP_ORIENTATION.search(xmp)
            if found:
                return int(found.group(1))
    return None
