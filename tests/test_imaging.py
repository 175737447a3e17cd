"""Input hygiene, the model's view of a picture, and putting feature maps back in the right place."""

from __future__ import annotations

import io
import logging
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from torch import nn

from cbam_viz.errors import ImageError
from cbam_viz.imaging.decode import decode_image, decode_notes, display_image
from cbam_viz.imaging.view import ModelView, map_to_image, prepare_input
from tests.helpers import hostile
from tests.helpers.models import NARROW
from tests.helpers.pictures import Prep

IMAGENET = Prep(256, 224)
DEMO = Prep(96, None)


def _check_outcome(key: str, decode) -> None:
    expected = hostile.EXPECTED[key]
    if not expected.decodes:
        with pytest.raises(ImageError) as caught:
            decode()
        message = str(caught.value)
        assert "\n" not in message and len(message) < 200, message
        assert expected.error.lower() in message.lower(), message
        return
    image = decode()
    assert image.size == expected.size
    assert image.mode == expected.mode
    for (x, y), colour, tolerance in expected.pixels:
        got = image.getpixel((x, y))
        assert all(abs(a - b) <= tolerance for a, b in zip(got, colour, strict=True)), (key, (x, y), got, colour)


@pytest.mark.parametrize("key", sorted(hostile.EXPECTED))
def test_hostile_file_from_path(key: str, hostile_files: dict[str, Path]) -> None:
    _check_outcome(key, lambda: decode_image(hostile_files[key]))


@pytest.mark.parametrize("key", sorted(hostile.EXPECTED))
def test_hostile_file_from_bytes_and_str_path(key: str, hostile_files: dict[str, Path]) -> None:
    _check_outcome(key, lambda: decode_image(hostile_files[key].read_bytes()))
    _check_outcome(key, lambda: decode_image(str(hostile_files[key])))


def test_hostile_files_are_cheap_and_the_bomb_is_rejected_before_decoding(tmp_path: Path) -> None:
    start = time.perf_counter()
    files = hostile.write_hostile_files(tmp_path)
    assert time.perf_counter() - start < 3.0
    assert files["bomb_png"].stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        decode_image(files["bomb_png"])
    assert time.perf_counter() - start < 0.5


def test_bomb_stream_really_inflates_to_all_its_pixels() -> None:
    stream = hostile.zero_zlib_stream(3 * (1 << 20) + 12345)
    inflated = zlib.decompress(stream)  # checks the Adler-32 too
    assert len(inflated) == 3 * (1 << 20) + 12345 and not any(inflated[::4096])
    small = Image.open(io.BytesIO(hostile.black_png_bytes(300, 200)))
    small.load()
    assert small.size == (300, 200) and small.getextrema() == (0, 0)


def test_pixels_between_pillows_warning_and_error_are_rejected_without_a_warning() -> None:
    data = hostile.black_png_bytes(10000, 10000)  # 100 MP: Pillow only warns here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="too large"):
            decode_image(data, max_pixels=200_000_000)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pixel_limit_is_a_parameter() -> None:
    data = hostile.black_png_bytes(100, 100)
    assert decode_image(data).size == (100, 100)
    with pytest.raises(ImageError, match="megapixels"):
        decode_image(data, max_pixels=5000)


def test_psd_is_readable_by_pillow_but_rejected_here(hostile_files: dict[str, Path]) -> None:
    with Image.open(hostile_files["psd"]) as opened:  # the allow-list, not luck, keeps it out
        assert opened.format == "PSD"
        with pytest.raises(ImageError, match="PSD"):
            decode_image(opened)


def test_file_size_limit(hostile_files: dict[str, Path]) -> None:
    path = hostile_files["bmp"]
    assert decode_image(path, max_file_bytes=path.stat().st_size).size == (24, 16)
    with pytest.raises(ImageError, match=r"too large: 0\.0 MB \(the limit is 0\.001 MB\)"):
        decode_image(path, max_file_bytes=1000)
    with pytest.raises(ImageError, match="too large"):
        decode_image(path.read_bytes(), max_file_bytes=1000)
    with pytest.raises(ImageError, match=r"paint\.bmp is too large: more than 0\.001 MB"):
        with path.open("rb") as handle:
            decode_image(handle, max_file_bytes=1000)
    with path.open("rb") as handle:
        assert decode_image(handle).size == (24, 16)


def test_messages_use_the_given_name() -> None:
    with pytest.raises(
        ImageError, match=r"^not an image we can read: holiday\.png\. Use JPEG, PNG, WebP, GIF, BMP or TIFF$"
    ):
        decode_image(b"<html>an error page</html>", name="holiday.png")
    with pytest.raises(ImageError, match=r"^the image is too small: 2x2 pixels \(min 8x8\)"):
        decode_image(Image.new("RGB", (2, 2)))


def test_missing_path_and_folder_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        decode_image(tmp_path / "nothing.jpg")
    with pytest.raises(ImageError, match="not a file"):
        decode_image(tmp_path)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright(orientation: int) -> None:
    expected = hostile.exif_expected(orientation)
    image = decode_image(hostile.exif_jpeg_bytes(orientation))
    assert image.size == expected.size
    for (x, y), colour, tolerance in expected.pixels:
        assert all(abs(a - b) <= tolerance for a, b in zip(image.getpixel((x, y)), colour, strict=True))
    assert any("orientation" in note for note in decode_notes(image)) == (orientation != 1)


def test_notes_say_what_decoding_did(hostile_files: dict[str, Path]) -> None:
    assert decode_notes(decode_image(hostile_files["animated_gif"])) == ("first frame used",)
    assert decode_notes(decode_image(hostile_files["png_16bit"])) == ("16-bit image scaled to 8 bit",)
    assert decode_notes(decode_image(hostile_files["tiff_16bit_big_endian"])) == ("16-bit image scaled to 8 bit",)
    assert decode_notes(decode_image(hostile_files["cmyk_jpeg"])) == (
        "CMYK converted without a colour profile: colours are approximate",
    )
    assert decode_notes(decode_image(hostile_files["palette_transparent_png"])) == ("transparent areas shown on white",)
    assert decode_notes(decode_image(hostile_files["rgba_png"])) == ("transparent areas shown on white",)
    assert decode_notes(decode_image(hostile_files["exif_rotate_6_jpeg"])) == ("turned upright (EXIF orientation 6)",)
    assert decode_notes(decode_image(hostile_files["bmp"])) == ()
    assert decode_notes(decode_image(hostile_files["webp"])) == ()


def test_notes_survive_a_second_decode_and_the_display_copy(hostile_files: dict[str, Path]) -> None:
    once = decode_image(hostile_files["exif_rotate_8_jpeg"])
    twice = decode_image(once)
    assert decode_notes(twice) == decode_notes(once) == ("turned upright (EXIF orientation 8)",)
    assert twice.size == once.size and twice.tobytes() == once.tobytes()  # not turned a second time
    assert decode_notes(decode_image(decode_image(hostile_files["animated_gif"]))) == ("first frame used",)
    big = decode_image(hostile.black_png_bytes(3000, 2000), name="big.png")
    assert decode_notes(display_image(decode_image(big))) == decode_notes(big) == ()


def test_a_palette_with_an_unused_transparent_entry_has_no_transparency_note() -> None:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 220, 20, 20] + [0, 0, 0] * 254)
    image.info["transparency"] = 0  # entry 0 is transparent, but no pixel uses it
    decoded = decode_image(image)
    assert decode_notes(decoded) == () and decoded.getpixel((3, 3)) == (220, 20, 20)
    half = Image.new("P", (16, 16), 0)
    half.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    half.info["transparency"] = bytes([128])  # tRNS with partial alpha: blended with white
    assert decode_image(half).getpixel((3, 3)) == (127, 127, 255)


def test_animated_png_and_webp_say_first_frame_used() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((220, 20, 20), (20, 200, 40))]
    for file_format in ("PNG", "WEBP"):
        buffer = io.BytesIO()
        frames[0].save(buffer, file_format, save_all=True, append_images=frames[1:], lossless=True)
        decoded = decode_image(buffer.getvalue())
        assert decode_notes(decoded) == ("first frame used",), file_format
        assert decoded.getpixel((8, 8)) == (220, 20, 20)


def test_multi_picture_jpeg_uses_its_first_picture() -> None:
    pictures = [Image.new("RGB", (32, 16), colour) for colour in ((220, 20, 20), (20, 20, 220))]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "MPO", save_all=True, append_images=pictures[1:], quality=95)
    with Image.open(io.BytesIO(buffer.getvalue())) as opened:
        assert opened.format == "MPO"
    decoded = decode_image(buffer.getvalue())
    assert decoded.size == (32, 16) and decode_notes(decoded) == ("first frame used",)
    assert all(abs(a - b) <= 8 for a, b in zip(decoded.getpixel((16, 8)), (220, 20, 20), strict=True))


def test_multi_page_tiff_uses_the_first_page_even_when_rotated() -> None:
    pages = [Image.new("RGB", (40, 20), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:], exif=exif)
    decoded = decode_image(buffer.getvalue())
    assert decoded.size == (20, 40) and decoded.getpixel((10, 10)) == (200, 0, 0)  # turned once, not twice
    # Pillow's TIFF reader turns the page itself while loading; the note still says so
    assert decode_notes(decoded) == ("turned upright (EXIF orientation 6)", "first page used")
    single = io.BytesIO()
    pages[0].save(single, "TIFF")
    assert decode_notes(decode_image(single.getvalue())) == ()


def test_a_header_over_pillows_limits_is_refused_with_its_real_size() -> None:
    jpeg = hostile.exif_jpeg_bytes(1)
    frame = jpeg.index(b"\xff\xc0")
    huge = jpeg[: frame + 5] + struct.pack(">HH", 12000, 12000) + jpeg[frame + 9 :]  # a 144-megapixel header
    with pytest.raises(ImageError) as caught:
        decode_image(huge, name="pano.jpg")
    assert str(caught.value) == (
        "pano.jpg is too large: 12000x12000 pixels (144.0 megapixels, the limit is 50); resize it first"
    )
    webp = io.BytesIO()
    Image.new("RGB", (16, 16)).save(webp, "WEBP", lossless=True)
    vp8l = bytearray(webp.getvalue())  # VP8L: 14-bit width-1 and height-1 after the signature byte
    bits = (12999) | (12999 << 14)
    vp8l[21:25] = (bits | (int.from_bytes(vp8l[21:25], "little") & ~((1 << 28) - 1))).to_bytes(4, "little")
    with pytest.raises(ImageError, match=r"13000x13000 pixels \(169\.0 megapixels"):
        decode_image(bytes(vp8l))


def test_pil_input_is_converted_but_not_mutated() -> None:
    rgba = Image.new("RGBA", (16, 16), (0, 0, 255, 0))
    decoded = decode_image(rgba)
    assert rgba.mode == "RGBA" and decoded.getpixel((3, 3)) == (255, 255, 255)
    rgb = Image.new("RGB", (16, 16), (1, 2, 3))
    decoded = decode_image(rgb)
    assert decoded is not rgb and decoded.getpixel((0, 0)) == (1, 2, 3)


def test_wide_range_integer_and_float_images_are_stretched_not_clamped() -> None:
    wide = Image.fromarray(np.array([[-1000, 0, 99000]] * 8, dtype=np.int32).repeat(3, axis=1), mode="I")
    assert [decode_image(wide).getpixel((x, 0))[0] for x in (0, 3, 6)] == [0, 3, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]] * 8, dtype=np.float32).repeat(3, axis=1), mode="F")
    assert [decode_image(unit).getpixel((x, 0))[0] for x in (0, 3, 6)] == [0, 128, 255]


def test_colour_profiles_srgb_kept_and_broken_ones_ignored_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 90)).save(buffer, "PNG", icc_profile=srgb)
    decoded = decode_image(buffer.getvalue())
    assert decoded.getpixel((5, 5)) == (10, 200, 90) and decode_notes(decoded) == ()
    broken = Image.new("RGB", (16, 16), (10, 200, 90))
    broken.info["icc_profile"] = b"not a profile at all"
    with caplog.at_level(logging.WARNING, logger="cbam_viz.imaging"):
        decoded = decode_image(broken)
    assert decoded.getpixel((5, 5)) == (10, 200, 90)
    assert decode_notes(decoded) == ("embedded colour profile unusable: colours taken as sRGB",)
    assert "colour profile" in caplog.text


def test_display_image_caps_the_longer_side() -> None:
    big = Image.new("RGB", (3000, 1000), (5, 5, 5))
    shown = display_image(big)
    assert shown.size == (1024, 341)
    assert display_image(shown, max_side=2000) is shown
    assert display_image(Image.new("RGB", (500, 2000)), max_side=256).size == (64, 256)


# ------------------------------------------------------------------------------------------------ prepare_input


@pytest.mark.parametrize(
    ("size", "prep", "mode", "shape"),
    [
        ((640, 480), IMAGENET, "whole", (1, 3, 224, 299)),
        ((480, 640), IMAGENET, "whole", (1, 3, 299, 224)),
        ((1000, 200), IMAGENET, "whole", (1, 3, 90, 448)),  # 5:1, longer side capped at 2 x 224
        ((8, 8), IMAGENET, "whole", (1, 3, 224, 224)),
        ((640, 480), IMAGENET, "crop", (1, 3, 224, 224)),
        ((200, 1000), IMAGENET, "crop", (1, 3, 224, 224)),
        ((96, 96), DEMO, "whole", (1, 3, 96, 96)),
        ((640, 480), DEMO, "whole", (1, 3, 96, 128)),
        ((640, 480), DEMO, "crop", (1, 3, 96, 96)),
    ],
)
def test_prepare_input_shapes(size: tuple[int, int], prep: Prep, mode: str, shape: tuple[int, ...]) -> None:
    tensor, view = prepare_input(Image.new("RGB", size, (120, 60, 30)), prep, mode)
    assert tuple(tensor.shape) == shape and tensor.dtype == torch.float32
    assert view.mode == mode and view.input_size == (shape[3], shape[2])
    assert f"{shape[3]}x{shape[2]}" in view.note


def test_whole_view_notes_and_boxes() -> None:
    _, view = prepare_input(Image.new("RGB", (640, 480)), IMAGENET, "whole")
    assert (
        view.box == (0.0, 0.0, 1.0, 1.0) and view.note == "The model saw the whole picture, resized to 299x224 pixels."
    )
    _, capped = prepare_input(Image.new("RGB", (1000, 200)), IMAGENET, "whole")
    assert "capped at 448" in capped.note and "below the usual 224" in capped.note


def test_crop_view_box_matches_torchvision_resize_and_centre_crop() -> None:
    _, view = prepare_input(Image.new("RGB", (640, 480)), IMAGENET, "crop")
    # Resize(256) -> 341x256, CenterCrop(224) -> left round(58.5) = 58 (torchvision uses Python's round), top 16.
    assert view.box == pytest.approx((58 / 341, 16 / 256, 282 / 341, 240 / 256))
    assert "224x224 crop" in view.note and "341x256" in view.note
    _, square = prepare_input(Image.new("RGB", (96, 96)), DEMO, "crop")
    assert square.box == (0.0, 0.0, 1.0, 1.0) and "covers all of it" in square.note


def test_crop_tensor_equals_torchvision_pipeline() -> None:
    from torchvision import transforms

    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((400, 300), Image.Resampling.BICUBIC)  # smooth, like a photo
    for prep in (IMAGENET, Prep(256, 224, "bicubic")):
        mode = transforms.InterpolationMode(prep.interpolation)
        reference = transforms.Compose(
            [
                transforms.Resize(prep.resize, interpolation=mode),
                transforms.CenterCrop(prep.crop),
                transforms.ToTensor(),
                transforms.Normalize(prep.mean, prep.std),
            ]
        )(photo)
        ours, _ = prepare_input(photo, prep, "crop")
        assert (ours[0] - reference).abs().mean() < 0.01, prep


def test_normalisation_and_interpolation_are_the_weights() -> None:
    mean_colour = tuple(round(m * 255) for m in IMAGENET.mean)
    tensor, _ = prepare_input(Image.new("RGB", (300, 300), mean_colour), IMAGENET)
    assert tensor.abs().max() < 0.01
    stripes = Image.fromarray(np.tile(np.array([[0], [255]], dtype=np.uint8), (50, 301)).astype(np.uint8)).convert(
        "RGB"
    )
    bilinear, _ = prepare_input(stripes, IMAGENET)
    bicubic, _ = prepare_input(stripes, Prep(256, 224, "bicubic"))
    assert not torch.allclose(bilinear, bicubic)
    grey, _ = prepare_input(stripes.convert("L"), IMAGENET)  # non-RGB input is converted, not refused
    assert torch.allclose(grey, bilinear)


def test_prepare_input_rejects_unknown_modes_and_interpolations() -> None:
    with pytest.raises(ValueError, match="unknown view"):
        prepare_input(Image.new("RGB", (64, 64)), IMAGENET, "zoom")
    with pytest.raises(ValueError, match="unknown interpolation"):
        prepare_input(Image.new("RGB", (64, 64)), Prep(256, 224, "lanczos"))


# ----------------------------------------------------------------------------------------------- map_to_image


def _hot(shape: tuple[int, int], row: int, column: int) -> np.ndarray:
    grid = np.zeros(shape, dtype=np.float32)
    grid[row, column] = 1.0
    return grid


def _peak(mapped: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(np.nanargmax(mapped), mapped.shape)
    return int(x), int(y)


def test_hot_cell_lands_on_its_receptive_field_centre_square() -> None:
    view = ModelView("whole", (224, 224), (0.0, 0.0, 1.0, 1.0), "")
    mapped = map_to_image(_hot((7, 7), 4, 2), view, (224, 224))
    assert mapped.shape == (224, 224) and mapped.dtype == np.float32
    assert _peak(mapped) == (64, 128)  # cell j of a stride-32 map is centred on input pixel 32 j
    assert mapped[128, 64] == pytest.approx(1.0)


def test_hot_cell_lands_right_in_a_non_square_whole_view() -> None:
    _, view = prepare_input(Image.new("RGB", (640, 480)), IMAGENET, "whole")  # 299x224 -> stride-32 grid 10x7
    mapped = map_to_image(_hot((7, 10), 2, 3), view, (640, 480))
    x, y = _peak(mapped)
    assert abs(x - ((3 * 32 + 0.5) / 299 * 640 - 0.5)) <= 1.0
    assert abs(y - ((2 * 32 + 0.5) / 224 * 480 - 0.5)) <= 1.0
    assert not np.isnan(mapped).any()


def test_crop_view_maps_inside_the_box_and_nan_outside() -> None:
    _, view = prepare_input(Image.new("RGB", (640, 480)), IMAGENET, "crop")
    mapped = map_to_image(_hot((7, 7), 3, 3), view, (640, 480))
    left, top, right, bottom = (view.box[0] * 640, view.box[1] * 480, view.box[2] * 640, view.box[3] * 480)
    columns_seen = ~np.isnan(mapped[240])
    rows_seen = ~np.isnan(mapped[:, 320])
    assert np.flatnonzero(columns_seen)[[0, -1]].tolist() == [round(left), round(right) - 1]
    assert np.flatnonzero(rows_seen)[[0, -1]].tolist() == [round(top), round(bottom) - 1]
    x, y = _peak(mapped)
    scale = (right - left) / 224  # original pixels per model-input pixel
    assert abs(x - (left + 96.5 * scale - 0.5)) <= 1.0 and abs(y - (top + 96.5 * scale - 0.5)) <= 1.0


def test_map_values_stay_within_the_native_range_and_identity_at_input_size() -> None:
    view = ModelView("whole", (40, 30), (0.0, 0.0, 1.0, 1.0), "")
    native = np.random.default_rng(2).random((30, 40)).astype(np.float32)
    assert np.array_equal(map_to_image(native, view, (40, 30)), native)
    grid = np.random.default_rng(3).random((4, 5)).astype(np.float32)
    mapped = map_to_image(grid, ModelView("whole", (160, 128), (0, 0, 1, 1), ""), (333, 250))
    assert grid.min() <= mapped.min() and mapped.max() <= grid.max()
    flat = map_to_image(np.full((7, 7), 0.25, np.float32), ModelView("whole", (224, 224), (0, 0, 1, 1), ""), (50, 60))
    assert flat.shape == (60, 50) and np.all(flat == 0.25)


def test_map_geometry_matches_where_the_network_actually_looks() -> None:
    """Oracle: a ResNet-50 (narrow) with every conv a plain average and BatchNorm the identity responds most, at a
    stage-4 cell, to a vertical line through that cell's centre. map_to_image must put the cell's peak there."""
    from cbam_viz.model.resnet import build_resnet

    model = build_resnet("resnet50", NARROW.with_(num_classes=2)).eval()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 1.0 / module.weight[0].numel())
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()
            module.reset_running_stats()
    positions = list(range(40, 92, 2))
    lines = torch.zeros(len(positions), 3, 16, 128)
    for index, x in enumerate(positions):
        lines[index, :, :, x] = 1.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny batch: one thread is far faster than two fighting a busy machine
    try:
        with torch.no_grad():
            response = model.forward_features(lines).sum(dim=(1, 2))[:, 2]  # cell 2 of the 4-wide stride-32 map
    finally:
        torch.set_num_threads(threads)
    network_centre = positions[int(response.argmax())]
    mapped = map_to_image(_hot((1, 4), 0, 2), ModelView("whole", (128, 16), (0, 0, 1, 1), ""), (128, 16))
    assert abs(_peak(mapped)[0] - network_centre) <= 2, (network_centre, _peak(mapped))
    assert abs((2 + 0.5) * 32 - network_centre) > 10  # a plain stretched grid would be 16 pixels off


def test_map_to_image_rejects_non_maps() -> None:
    with pytest.raises(ValueError, match="2-D map"):
        map_to_image(np.zeros((2, 3, 4)), ModelView("whole", (8, 8), (0, 0, 1, 1), ""), (8, 8))
    squeezed = map_to_image(np.ones((1, 1, 2, 2)), ModelView("whole", (8, 8), (0, 0, 1, 1), ""), (8, 8))
    assert squeezed.shape == (8, 8)
