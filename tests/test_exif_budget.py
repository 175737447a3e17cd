"""EXIF is bounded in every container (PNG eXIf, PNG tEXt raw profile, WebP, TIFF, JPEG): each crafted file of the
issue's table decodes in under 0.5 s with the EXIF ignored and a note, or is refused in one line; ordinary EXIF
still turns pictures upright in every container; the JPEG scan count reads real start-of-scan markers only."""

from __future__ import annotations

import struct
import time

import pytest

from cbam_viz.errors import ImageError
from cbam_viz.imaging import exif
from cbam_viz.imaging.decode import decode_image, decode_notes
from tests.helpers import hostile

BUDGET_S = 0.5
IGNORED = "EXIF metadata ignored"
BOMBS = hostile.exif_bombs()


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_each_exif_bomb_decodes_fast_or_is_refused_in_one_line(name: str) -> None:
    started = time.perf_counter()
    try:
        notes = decode_notes(decode_image(BOMBS[name], name=name))
        outcome = "decoded"
    except ImageError as error:
        outcome, notes = str(error), ()
        assert "\n" not in outcome and "slow to decode" in outcome, outcome
    took = time.perf_counter() - started
    assert took < BUDGET_S, (name, took, outcome)
    if outcome == "decoded":
        assert any(note.startswith(IGNORED) for note in notes), notes


def test_the_costly_directories_are_refused_by_their_counts() -> None:
    # small versions: what Pillow would walk is counted, not timed
    with pytest.raises(exif.TooCostly, match="1001 entries"):
        exif.survey(hostile.exif_ifd(1001)[6:])
    spanning = hostile.tiff_spanning_tags(40, 1_000_000)  # 40 MB read for a 1 MB file
    with pytest.raises(exif.TooCostly, match="more than 32 MB"):
        exif.survey(spanning, first_entries=4096)
    assert exif.survey(hostile.tiff_spanning_tags(20, 1_000_000), first_entries=4096).value_bytes == 20_000_000
    assert exif.orientation({"exif": hostile.EXIF_PREFIX * 11_000}) == (1, "more than 64 KB")
    raw = "x" * (2 * exif.MAX_EXIF_BYTES + 1000)
    assert exif.orientation({"Raw profile type exif": raw}) == (1, "more than 64 KB")  # never decoded from hex
    with pytest.raises(ImageError, match="EXIF metadata over 64 KB"):
        decode_image(hostile.jpeg_exif_segments(2))  # two 60 KB segments, joined by Pillow into 120 KB


@pytest.mark.parametrize(
    "make", [hostile.png_exif_chunk, hostile.webp_exif, hostile.png_raw_profile], ids=["png", "webp", "raw"]
)
def test_ordinary_exif_still_turns_pictures_upright(make) -> None:
    decoded = decode_image(make(hostile.exif_ifd(12, orientation=6)))
    assert decoded.size == (24, 32) and decode_notes(decoded) == ("turned upright (EXIF orientation 6)",)


def test_a_baseline_jpeg_whose_icc_profile_holds_ff_da_is_accepted() -> None:
    data = hostile.jpeg_icc_with_sos_bytes(151)
    assert data.count(b"\xff\xda") == 152  # 151 in the profile, one real scan
    assert decode_image(data).size == (32, 24)


def test_real_progressive_scans_are_still_counted() -> None:
    jpeg = hostile._small_picture("JPEG")
    scan = jpeg.index(b"\xff\xda")
    length = struct.unpack(">H", jpeg[scan + 2 : scan + 4])[0]
    header = jpeg[scan : scan + 2 + length]
    flood = jpeg[:scan] + (header + b"\x00" * 4) * 150 + b"\xff\xd9"  # 150 start-of-scan segments
    with pytest.raises(ImageError, match="150 progressive scans|101 progressive scans"):
        decode_image(flood)


def test_a_decoded_animated_png_says_first_frame_once() -> None:
    from PIL import Image

    frames = [Image.new("RGB", (16, 16), colour) for colour in ((220, 20, 20), (20, 200, 40))]
    buffer = __import__("io").BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    once = decode_image(buffer.getvalue())
    assert decode_notes(decode_image(once)) == decode_notes(once) == ("first frame used",)
