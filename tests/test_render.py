"""Overlays, legends, attention pictures and the export figure: sizes, colours, greyed unseen pixels, scales."""

from __future__ import annotations

import ast
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image

from cbam_viz.imaging.view import ModelView, plan_view
from cbam_viz.render import attention, export, overlay
from cbam_viz.render import text as render_text
from tests.helpers.pictures import (
    DEPTHS,
    Prep,
    channel_vectors,
    fake_analysis,
    hot_grid,
    random_photo,
    spatial_maps,
)

WHOLE = ModelView("whole", (224, 224), (0.0, 0.0, 1.0, 1.0), "The model saw the whole picture, resized to 224x224.")


def _jet(value: float) -> tuple[int, ...]:
    return tuple(int(round(c * 255)) for c in matplotlib.colormaps["jet"](value)[:3])


# ------------------------------------------------------------------------------------------------- overlay


def test_overlay_keeps_size_and_mode() -> None:
    photo = random_photo((170, 90)).convert("L")
    result = overlay.overlay(photo, hot_grid((7, 7), 3, 3), WHOLE)
    assert result.size == (170, 90) and result.mode == "RGB"


def test_alpha_zero_returns_the_picture_and_alpha_one_the_colours() -> None:
    photo = random_photo((224, 224))
    cam = hot_grid((7, 7), 2, 4)
    assert np.array_equal(np.asarray(overlay.overlay(photo, cam, WHOLE, alpha=0.0)), np.asarray(photo))
    only_map = np.asarray(overlay.overlay(photo, cam, WHOLE, alpha=1.0))
    assert tuple(only_map[64, 128]) == _jet(1.0)  # the hot cell (row 2, column 4) is centred on pixel (128, 64)
    assert tuple(only_map[223, 0]) == _jet(0.0)
    half = np.asarray(overlay.overlay(photo, cam, WHOLE, alpha=0.5)).astype(int)
    expected = (np.asarray(photo).astype(float)[64, 128] + np.array(_jet(1.0))) / 2
    assert np.abs(half[64, 128] - expected).max() <= 1
    with pytest.raises(ValueError, match="alpha"):
        overlay.overlay(photo, cam, WHOLE, alpha=1.5)


def test_limits_decide_the_colours() -> None:
    photo = random_photo((64, 64))
    flat = np.full((4, 4), 0.5, np.float32)
    view = ModelView("whole", (128, 128), (0, 0, 1, 1), "")
    middle = np.asarray(overlay.overlay(photo, flat, view, alpha=1.0, vmin=0.0, vmax=1.0))
    assert tuple(middle[30, 30]) == _jet(0.5)
    own = np.asarray(overlay.overlay(photo, flat, view, alpha=1.0))  # a flat map on its own scale: the low end
    assert tuple(own[30, 30]) == _jet(0.0)
    clipped = np.asarray(overlay.overlay(photo, flat, view, alpha=1.0, vmin=0.0, vmax=0.25))
    assert tuple(clipped[30, 30]) == _jet(1.0)


def test_unseen_pixels_are_grey_and_dim_not_coloured() -> None:
    photo = random_photo((320, 240))
    view = plan_view(photo.size, Prep(), "crop")
    result = np.asarray(overlay.overlay(photo, hot_grid((7, 7), 3, 3), view, alpha=0.6)).astype(int)
    left_edge = int(view.box[0] * 320)
    outside = result[:, : left_edge - 1].reshape(-1, 3)
    assert (outside[:, 0] == outside[:, 1]).all() and (outside[:, 1] == outside[:, 2]).all()
    assert outside.max() <= round(255 * 0.35 + 70)
    inside = result[120, left_edge + 2 : int(view.box[2] * 320) - 2]
    assert (np.ptp(inside, axis=1) > 0).any()  # coloured: not grey
    still_marked = np.asarray(overlay.overlay(photo, hot_grid((7, 7), 3, 3), view, alpha=0.0)).astype(int)
    assert np.array_equal(still_marked[:, : left_edge - 1], result[:, : left_edge - 1])
    assert np.array_equal(still_marked[120, left_edge + 2], np.asarray(photo)[120, left_edge + 2])


def test_unknown_colormap_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown colormap 'rainbowish'"):
        overlay.overlay(random_photo(), hot_grid((7, 7), 0, 0), WHOLE, cmap="rainbowish")


@pytest.mark.parametrize("cmap", ["jet", "viridis", "inferno"])
def test_overlay_colours_are_the_colormap_table(cmap: str) -> None:
    """At full opacity a map's maximum is exactly the colormap's top colour, its minimum the bottom one."""
    colormap = matplotlib.colormaps[cmap]
    top = tuple(int(round(c * 255)) for c in colormap(1.0)[:3])
    bottom = tuple(int(round(c * 255)) for c in colormap(0.0)[:3])
    cam = hot_grid((7, 7), 2, 4, low=-3.0, high=5.0)
    only_map = np.asarray(overlay.overlay(random_photo((224, 224)), cam, WHOLE, cmap=cmap, alpha=1.0))
    assert tuple(only_map[64, 128]) == top and tuple(only_map[223, 0]) == bottom
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[None]  # one native cell per table entry
    view = ModelView("whole", (256, 1), (0.0, 0.0, 1.0, 1.0), "")
    drawn = np.asarray(overlay.overlay(Image.new("RGB", (256, 1)), ramp, view, cmap=cmap, alpha=1.0))[0]
    expected = np.rint(colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    assert np.array_equal(drawn, expected)


@pytest.mark.parametrize("size", [(8, 8), (8, 160), (160, 8), (11, 11)])
def test_overlay_of_a_tiny_or_extreme_picture(size: tuple[int, int]) -> None:
    photo = random_photo(size)
    view = plan_view(photo.size, Prep(), "crop")
    result = overlay.overlay(photo, hot_grid((3, 3), 1, 1), view, alpha=1.0)
    assert result.size == size


def test_overlay_is_fast_on_a_display_sized_picture() -> None:
    photo = random_photo((1024, 768))
    overlay.overlay(photo, hot_grid((7, 10), 3, 3), WHOLE)
    start = time.process_time()  # CPU time: the test machine may be busy with other work
    for _ in range(5):
        overlay.overlay(photo, hot_grid((7, 10), 3, 3), WHOLE)
    assert (time.process_time() - start) / 5 < 0.2


# ------------------------------------------------------------------------------------------ limits, legends


def test_colour_limits_per_map_and_shared() -> None:
    maps = [np.array([[0.0, 2.0]]), np.array([[1.0, np.nan, 5.0]]), np.array([[np.nan]])]
    assert overlay.colour_limits(maps, shared=False) == [(0.0, 2.0), (1.0, 5.0), (0.0, 1.0)]
    assert overlay.colour_limits(maps[:2], shared=True) == [(0.0, 5.0), (0.0, 5.0)]
    assert overlay.colour_limits([], shared=True) == []


def test_format_range_uses_the_decimals_the_span_needs() -> None:
    assert render_text.format_range(2e-6, 2.85) == "0.00 to 2.85"
    assert render_text.format_range(0.31, 0.874) == "0.310 to 0.874"
    assert render_text.format_range(120.0, 4000.0) == "120 to 4000"
    assert render_text.format_range(0.5, 0.5) == "0.500 to 0.500"


def test_colorbar_image() -> None:
    bar = overlay.colorbar_image("jet", 0.0, 3.5, width=200, label="Grad-CAM")
    assert bar.size == (200, 44) and bar.mode == "RGB"
    pixels = np.asarray(bar)
    assert tuple(pixels[8, 6]) == _jet(0.0) and tuple(pixels[8, 193]) == _jet(1.0)


def test_colour_bars_are_cached_per_colormap_size_and_printed_text() -> None:
    before = overlay._colorbar.cache_info()
    first = overlay.colorbar_image("viridis", 0.0, 2.5, width=173, label="CAM value")
    built = overlay._colorbar.cache_info()
    second = overlay.colorbar_image("viridis", 0.0, 2.5, width=173, label="CAM value")
    after = overlay._colorbar.cache_info()
    assert built.misses == before.misses + 1
    assert after.hits == built.hits + 1 and after.misses == built.misses  # not rebuilt
    assert np.array_equal(np.asarray(first), np.asarray(second)) and first is not second
    first.paste((255, 0, 0), (0, 0, 173, 44))  # a caller drawing on its copy leaves the cached bar alone
    assert np.array_equal(np.asarray(overlay.colorbar_image("viridis", 0.0, 2.5, width=173, label="CAM value")), second)
    overlay.colorbar_image("viridis", 0.0, 2.5001, width=173, label="CAM value")  # prints "2.5" too: same bar
    assert overlay._colorbar.cache_info().misses == after.misses
    other = overlay.colorbar_image("viridis", 0.0, 3.5, width=173, label="CAM value")
    assert overlay._colorbar.cache_info().misses == after.misses + 1
    assert not np.array_equal(np.asarray(other), np.asarray(second))
    overlay.clear_caches()  # a benchmark's cold start: the next bar is built again
    overlay.colorbar_image("viridis", 0.0, 2.5, width=173, label="CAM value")
    assert overlay._colorbar.cache_info().misses == 1 and render_text.rasterised.cache_info().currsize > 0


@pytest.mark.parametrize("width", [1, 2, 5, 8, 9, 11, 12, 24, 48, 96, 160, 512])
def test_colour_bar_fits_any_width(width: int) -> None:
    texts = (render_text.format_value(0.0), "CAM value", render_text.format_value(2.85))
    sheet = overlay._colorbar_sheet("jet", width, 44, texts)
    assert sheet.image.size == (width, 44)
    ramp = np.asarray(sheet.image)[8, sheet.areas[0][0] : sheet.areas[0][2]]
    assert len(ramp) >= 1 and tuple(ramp[0]) == _jet(0.0)
    if width > 1:
        assert tuple(ramp[-1]) == _jet(1.0)
    boxes = [box for box, _, _ in sheet.texts]
    for box in boxes:
        assert 0 <= box[0] and box[2] <= width and box[3] <= 44
    boxes.sort()
    assert all(left[2] <= right[0] for left, right in zip(boxes, boxes[1:], strict=False))
    if width >= 160:
        assert [text for _, _, text in sheet.texts] == ["0", "2.85", "CAM value"]
    assert overlay.colorbar_image("jet", 0.0, 2.85, width=width, label="CAM value").size == (width, 44)


# --------------------------------------------------------------------------------------- channel attention


def test_channel_summary_sorts_by_the_stage_mean() -> None:
    vectors = {"layer2.1": np.array([0.9, 0.1, 0.5]), "layer2.0": np.array([0.7, 0.3, 0.5]), "layer3.0": np.ones(6)}
    summary = attention.channel_summary(vectors, 2)
    assert summary.blocks == ("layer2.0", "layer2.1")
    assert summary.order.tolist() == [0, 2, 1]
    assert np.allclose(summary.matrix, [[0.7, 0.5, 0.3], [0.9, 0.5, 0.1]])
    assert np.allclose(summary.stage_mean, [0.8, 0.5, 0.2]) and np.allclose(summary.spread, [0.1, 0.0, 0.1])
    assert np.allclose(summary.block_mean, [0.5, 0.5])
    assert attention.channel_summary(vectors, 1) is None
    with pytest.raises(ValueError, match="different channel counts"):
        attention.channel_summary({"layer1.0": np.ones(3), "layer1.1": np.ones(4)}, 1)


@pytest.mark.parametrize("kind", ["se", "cbam"])
def test_channel_attention_plot_for_se_and_cbam(kind: str) -> None:
    vectors = channel_vectors(kind)
    three_blocks = attention.channel_attention_plot(vectors, 4)
    six_blocks = attention.channel_attention_plot(vectors, 3, title="stage 3")
    assert three_blocks.mode == "RGB" and three_blocks.width == 900
    assert 300 < three_blocks.height < six_blocks.height < 900
    assert np.asarray(six_blocks).std() > 10  # something is drawn


@pytest.mark.parametrize("width_px", [400, 720, 900])
@pytest.mark.parametrize("stage", [1, 3, 4])
def test_channel_attention_plot_is_legible_at_the_displayed_width(width_px: int, stage: int) -> None:
    """Shown 400 px wide in the app: text 12 px or more there, nothing over anything else, nothing cut at an edge."""
    vectors = channel_vectors("se", channels=256)
    sheet = attention._channel_sheet(vectors, stage, title="", width_px=width_px, display_width=400)
    assert sheet.image.width == width_px
    _check_layout(sheet, display_width=400)
    drawn = [text for _, _, text in sheet.texts]
    assert f"Stage {stage} channel attention" in drawn
    assert [text for text in drawn if text.startswith(f"layer{stage}.")] == [
        f"layer{stage}.{i}" for i in range(DEPTHS[stage])
    ]
    strip = sheet.areas[0]  # the heat strip spans the channels, sorted strongest left
    pixels = np.asarray(sheet.image).astype(int)[strip[1] : strip[3], strip[0] : strip[2]]
    assert strip[2] - strip[0] > width_px * 0.4 and pixels.std() > 10


def test_channel_attention_plot_wraps_a_long_title() -> None:
    title = "Channel attention of stage 3 of SE-ResNet-50 with a title far too long for one line of the plot"
    sheet = attention._channel_sheet(channel_vectors("cbam"), 3, title=title, width_px=720, display_width=400)
    _check_layout(sheet, display_width=400)
    title_lines = [text for _, size, text in sheet.texts if size == max(size for _, size, _ in sheet.texts)]
    assert len(title_lines) >= 2 and " ".join(title_lines) == title


def test_channel_attention_plot_for_the_baseline_says_so() -> None:
    image = attention.channel_attention_plot({}, 2)
    assert image.size == (900, 96)


# ---------------------------------------------------------------------------------------- spatial attention


def _tiles(picture: Image.Image) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) of the coloured tiles, found in the pixels: text is grey, the page white."""
    colourful = np.ptp(np.asarray(picture).astype(int), axis=2) > 60

    def runs(profile: np.ndarray) -> list[tuple[int, int]]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], profile.astype(int), [0]])))
        return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))

    boxes = []
    for top, bottom in runs(colourful.any(axis=1)):
        for left, right in runs(colourful[top:bottom].any(axis=0)):
            boxes.append((left, top, right, bottom))
    return boxes


def test_spatial_grid_shows_the_last_block_of_each_stage() -> None:
    photo = random_photo((200, 150))
    view = plan_view(photo.size, Prep(), "whole")
    grid = attention.spatial_attention_grid(spatial_maps(view, last_hot_left=True), view, photo, alpha=1.0, tile=100)
    tiles = _tiles(grid)
    assert [(right - left, bottom - top) for left, top, right, bottom in tiles] == [(100, 75)] * 4  # one line of 4
    assert len({top for _, top, _, _ in tiles}) == 1
    pixels = np.asarray(grid).astype(int)
    for (x0, y0, _, _), stage in zip(tiles, DEPTHS, strict=True):
        stride = 2 ** (stage + 1)
        hot_row = -(-view.input_size[1] // stride) // 2
        y_mid = y0 + round((hot_row * stride + 0.5) / view.input_size[1] * 75 - 0.5)
        warmth = pixels[y_mid, x0 : x0 + 100, 0] - pixels[y_mid, x0 : x0 + 100, 2]  # jet: red minus blue
        assert warmth[0] > 100 and warmth[-1] < -100, stage  # the last block is hot on the left, the others right


def test_spatial_grid_drill_down_lists_every_block_and_wraps() -> None:
    photo = random_photo((120, 120))
    view = plan_view(photo.size, Prep(), "crop")
    maps = spatial_maps(view)
    tiles = _tiles(attention.spatial_attention_grid(maps, view, photo, stage=3, tile=64, columns=4, alpha=1.0))
    assert len(tiles) == 6  # six blocks: two lines, four then two, in the same columns
    sizes = {(right - left, bottom - top) for left, top, right, bottom in tiles}  # the seen centre crop of 64x64
    assert len(sizes) == 1 and 48 < min(sizes.pop()) <= 64
    lines = sorted({top for _, top, _, _ in tiles})
    assert len(lines) == 2 and [t[1] for t in tiles] == [lines[0]] * 4 + [lines[1]] * 2
    assert [t[0] for t in tiles[4:]] == [t[0] for t in tiles[:2]]
    assert len(_tiles(attention.spatial_attention_grid(maps, view, photo, stage=1, tile=64, alpha=1.0))) == 3


def _check_layout(sheet: render_text.Sheet, display_width: int = render_text.DISPLAY_WIDTH) -> None:
    """Every label inside the picture, none over another label or over a picture, legible where the app shows it."""
    width, height = sheet.image.size
    shown = min(1.0, display_width / width)  # the app shrinks a wider panel to its column, never enlarges one
    assert sheet.texts and sheet.areas
    for box, size, text in sheet.texts:
        assert 0 < box[0] and 0 < box[1] and box[2] < width and box[3] < height, (text, box, sheet.image.size)
        assert size * shown >= 12, (text, size, shown)
    for area in sheet.areas:
        assert 0 <= area[0] and 0 <= area[1] and area[2] <= width and area[3] <= height, area

    def overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    boxes = [box for box, _, _ in sheet.texts]
    for index, (box, _, text) in enumerate(sheet.texts):
        assert not [other for other in boxes[index + 1 :] if overlap(box, other)], text
        assert not [area for area in sheet.areas if overlap(box, area)], text


@pytest.mark.parametrize("size", [(200, 150), (96, 96), (8, 8), (8, 160), (160, 8), (1024, 40)])
def test_spatial_grid_labels_are_legible_clear_of_the_corner_and_never_overlap(size: tuple[int, int]) -> None:
    photo = random_photo(size)
    view = plan_view(photo.size, Prep(), "whole")
    maps = spatial_maps(view)
    for stage, columns in ((None, 2), (3, 3)):
        sheet = attention._grid_sheet(
            maps,
            view,
            photo,
            stage=stage,
            cmap="jet",
            alpha=0.5,
            shared_scale=False,
            tile=220,
            columns=columns,
            display_width=400,
        )
        _check_layout(sheet)
        shown = min(1.0, 400 / sheet.image.width)
        assert min(box[1] for box, _, _ in sheet.texts) * shown >= 24  # below where Gradio's label chip would sit
        assert len(_tiles(sheet.image)) == len(sheet.areas) == (4 if stage is None else 6)
        longer = max(max(right - left, bottom - top) for left, top, right, bottom in sheet.areas)
        assert longer == 220  # small pictures are enlarged to the tile, large ones shrunk


def test_spatial_grid_without_spatial_attention_says_so() -> None:
    image = attention.spatial_attention_grid({}, WHOLE, random_photo())
    assert image.size == (320, 96)


@pytest.mark.parametrize("size", [(8, 8), (8, 160), (160, 8)])
def test_every_panel_of_a_tiny_or_extreme_picture(size: tuple[int, int]) -> None:
    """A picture 8 px wide analyses; each panel the app then draws must be drawn too (bundled demo weights)."""
    from cbam_viz.pipeline import analyze

    result = analyze(random_photo(size), weights="demo", view="whole", device="cpu")
    assert result.image.size == size
    for model in result.models.values():
        view = result.view_for(model)
        low, high = overlay.colour_limits([model.cam], False)[0]
        picture = overlay.overlay(result.image, model.cam, view, vmin=low, vmax=high)
        bar = overlay.colorbar_image("jet", low, high, width=picture.width, label="CAM value")
        assert picture.size == size and bar.width == size[0]
        if model.spatial_attention:
            sheet = attention._grid_sheet(
                model.spatial_attention,
                view,
                result.image,
                stage=None,
                cmap="jet",
                alpha=0.5,
                shared_scale=False,
                tile=220,
                columns=2,
                display_width=400,
            )
            _check_layout(sheet)
            assert len(_tiles(sheet.image)) == 4
        if model.channel_attention:
            sheet = attention._channel_sheet(
                model.channel_attention, result.stage, title="", width_px=720, display_width=400
            )
            _check_layout(sheet)
    assert Image.open(io.BytesIO(export.comparison_figure(result, dpi=50))).format == "PNG"


# ------------------------------------------------------------------------------------------- export figure


def test_comparison_figure_is_a_png_with_one_row_per_model() -> None:
    one = Image.open(io.BytesIO(export.comparison_figure(fake_analysis(("cbam_resnet50",)), dpi=60)))
    three = Image.open(
        io.BytesIO(export.comparison_figure(fake_analysis(("resnet50", "se_resnet50", "cbam_resnet50")), dpi=60))
    )
    assert one.format == three.format == "PNG"
    assert one.width == three.width
    row_height = (three.height - one.height) / 2
    assert row_height > 60  # each extra model adds a row of panels
    assert np.asarray(three.convert("RGB")).std() > 20


def test_comparison_figure_crop_view_and_shared_scale() -> None:
    analysis = fake_analysis(("resnet50", "cbam_resnet50"), mode="crop")
    png = export.comparison_figure(analysis, shared_scale=True, cmap="viridis", alpha=0.7, dpi=60)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] > 400


@pytest.mark.parametrize(
    "case",
    [
        {},
        {"mode": "crop", "shared": True},
        {"targets": ("German short-haired pointer", "Staffordshire bullterrier, Staffordshire bull terrier", "cat")},
        {"size": (160, 8)},
        {"size": (8, 160), "mode": "crop"},
        {"weights": "weights given by the caller: /home/someone/checkpoints/cbam_resnet50_imagenet_epoch_90.pth"},
    ],
)
def test_comparison_figure_keeps_all_its_text_inside(case: dict) -> None:
    """No label, title, tick or caption crosses the figure's edge, and row labels keep clear of the panels."""
    archs = ("resnet50", "se_resnet50", "cbam_resnet50")
    analysis = fake_analysis(
        archs, mode=case.get("mode", "whole"), targets=case.get("targets", ()), size=case.get("size", (240, 180))
    )
    if "weights" in case:
        analysis.models["cbam_resnet50"].weights = case["weights"]
    figure = export.comparison_figure_object(analysis, shared_scale=case.get("shared", False), dpi=80)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    bounds = figure.bbox
    texts = [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert len(texts) > 20
    for text in texts:
        extent = text.get_window_extent(renderer)
        inside = (
            extent.x0 >= bounds.x0 - 0.5
            and extent.y0 >= bounds.y0 - 0.5
            and extent.x1 <= bounds.x1 + 0.5
            and extent.y1 <= bounds.y1 + 0.5
        )
        assert inside, (text.get_text(), extent, bounds)
    first_panel = min(axis.get_window_extent(renderer).x0 for axis in figure.axes)
    for result in analysis.models.values():
        label = next(t for t in texts if t.get_text().startswith(result.title + "\n"))
        assert label.get_window_extent(renderer).x1 < first_panel
        assert "".join(label.get_text().split()) == "".join(f"{result.title}{result.weights}".split())
    assert png_is(export.comparison_figure(analysis, dpi=40))


def png_is(data: bytes) -> bool:
    return Image.open(io.BytesIO(data)).format == "PNG"


def test_comparison_figure_needs_models() -> None:
    with pytest.raises(ValueError, match="no models"):
        export.comparison_figure(fake_analysis(()))


def test_caption_names_the_choices() -> None:
    same = export.comparison_caption(fake_analysis(("resnet50", "cbam_resnet50")))
    assert "Grad-CAM for the class “tabby cat” at stage 4" in same
    assert "last block of each stage" in same and "own minimum to maximum" in same
    assert "Weights: demo weights: ImageNet weights not found" in same and "Grey:" not in same
    differ = export.comparison_caption(
        fake_analysis(("resnet50", "cbam_resnet50"), mode="crop", targets=("cat", "dog")), shared_scale=True
    )
    assert "each model's own top class" in differ and "one scale" in differ and "Grey:" in differ


def test_a_model_with_its_own_view_is_drawn_with_it() -> None:
    analysis = fake_analysis(("resnet50", "cbam_resnet50"))
    analysis.models["resnet50"].view = plan_view(analysis.image.size, Prep(), "crop")
    assert "Grey:" in export.comparison_caption(analysis)
    own_view = Image.open(io.BytesIO(export.comparison_figure(analysis, dpi=50)))
    analysis.models["resnet50"].view = None
    shared_view = Image.open(io.BytesIO(export.comparison_figure(analysis, dpi=50)))
    assert own_view.size == shared_view.size
    assert not np.array_equal(np.asarray(own_view), np.asarray(shared_view))


# ----------------------------------------------------------------------------------------------- threading


def test_rendering_from_threads_gives_identical_pictures() -> None:
    vectors = channel_vectors("se", channels=16)
    photo = random_photo((320, 240))

    def work(_: int) -> tuple[bytes, bytes]:
        plot = attention.channel_attention_plot(vectors, 1, width_px=400)
        return plot.tobytes(), overlay.overlay(photo, hot_grid((8, 10), 4, 4), WHOLE).tobytes()

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(work, range(3)))
    assert all(result == results[0] for result in results)


def test_render_never_uses_pyplot() -> None:
    """pyplot keeps global state and is not thread-safe; the app renders from several request threads."""
    package = Path(overlay.__file__).parent
    tree = ast.Module(body=[ast.parse(path.read_text()) for path in sorted(package.glob("*.py"))], type_ignores=[])
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert not [name for name in imported if "pyplot" in name or name == "matplotlib.rcParams"]
    assert "matplotlib.figure.Figure" in imported


def test_one_shared_scale_is_said_on_every_tile_with_its_own_min_and_max() -> None:
    """With one colour scale for all models, each tile says it shows the shared range and keeps its own min and
    max: the page's CAM captions, the attention tiles and the export figure's labels."""
    from cbam_viz.ui.panels.registry import Display, render_cam

    analysis = fake_analysis(("resnet50", "se_resnet50", "cbam_resnet50"))
    analysis.is_demo = False
    cams = [result.cam for result in analysis.models.values()]
    low, high = overlay.colour_limits(cams, True)[0]
    shared = render_text.format_range(low, high)
    owns = [render_text.format_range(*overlay.finite_range(cam)) for cam in cams]
    assert len(set(owns)) == 3  # the maps' own ranges differ: each label must say its own

    shown = render_cam(analysis, Display(shared_scale=True))
    for own, arch in zip(owns, analysis.models, strict=True):
        assert "one scale for all" in shown[arch].caption and shared in shown[arch].caption, shown[arch].caption
        assert own in shown[arch].caption, (own, shown[arch].caption)
    assert "one scale" not in render_cam(analysis, Display(shared_scale=False))["resnet50"].caption

    sheet = overlay.tile_sheet(
        ["a", "b"],
        cams[:2],
        overlay.colour_limits(cams[:2], True),
        WHOLE,
        analysis.image,
        "jet",
        0.5,
        120,
        2,
        720,
        shared=True,
    )
    said = " ".join(words for _, _, words in sheet.texts)
    assert said.count("one scale for all") == 2 and owns[0] in said and owns[1] in said, said

    figure = export.comparison_figure_object(analysis, shared_scale=True, dpi=60)
    labels = [axis.get_xlabel() for axis in figure.axes if axis.get_xlabel()]
    for own in owns:
        assert any("one scale for all" in label and own in label for label in labels), (own, labels)
    spatial = [label for label in labels if re.match(r"\d+x\d+\n", label)]
    assert spatial and all("one scale for all" in label for label in spatial), labels
