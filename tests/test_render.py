"""Overlays, legends, attention pictures and the export figure: sizes, colours, greyed unseen pixels, scales."""

from __future__ import annotations

import ast
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from PIL import Image

from cbam_viz import render
from cbam_viz.imaging import ModelView, plan_view
from cbam_viz.weights import ARCH_TITLES

WHOLE = ModelView("whole", (224, 224), (0.0, 0.0, 1.0, 1.0), "The model saw the whole picture, resized to 224x224.")
DEPTHS = {1: 3, 2: 4, 3: 6, 4: 3}


@dataclass(frozen=True)
class Prep:
    resize: int = 256
    crop: int | None = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _photo(size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _jet(value: float) -> tuple[int, ...]:
    return tuple(int(round(c * 255)) for c in matplotlib.colormaps["jet"](value)[:3])


def _hot(shape: tuple[int, int], row: int, column: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    grid = np.full(shape, low, dtype=np.float32)
    grid[row, column] = high
    return grid


# ------------------------------------------------------------------------------------------------- overlay


def test_overlay_keeps_size_and_mode() -> None:
    photo = _photo((170, 90)).convert("L")
    result = render.overlay(photo, _hot((7, 7), 3, 3), WHOLE)
    assert result.size == (170, 90) and result.mode == "RGB"


def test_alpha_zero_returns_the_picture_and_alpha_one_the_colours() -> None:
    photo = _photo((224, 224))
    cam = _hot((7, 7), 2, 4)
    assert np.array_equal(np.asarray(render.overlay(photo, cam, WHOLE, alpha=0.0)), np.asarray(photo))
    only_map = np.asarray(render.overlay(photo, cam, WHOLE, alpha=1.0))
    assert tuple(only_map[64, 128]) == _jet(1.0)  # the hot cell (row 2, column 4) is centred on pixel (128, 64)
    assert tuple(only_map[223, 0]) == _jet(0.0)
    half = np.asarray(render.overlay(photo, cam, WHOLE, alpha=0.5)).astype(int)
    expected = (np.asarray(photo).astype(float)[64, 128] + np.array(_jet(1.0))) / 2
    assert np.abs(half[64, 128] - expected).max() <= 1
    with pytest.raises(ValueError, match="alpha"):
        render.overlay(photo, cam, WHOLE, alpha=1.5)


def test_limits_decide_the_colours() -> None:
    photo = _photo((64, 64))
    flat = np.full((4, 4), 0.5, np.float32)
    view = ModelView("whole", (128, 128), (0, 0, 1, 1), "")
    middle = np.asarray(render.overlay(photo, flat, view, alpha=1.0, vmin=0.0, vmax=1.0))
    assert tuple(middle[30, 30]) == _jet(0.5)
    own = np.asarray(render.overlay(photo, flat, view, alpha=1.0))  # a flat map on its own scale: the low end
    assert tuple(own[30, 30]) == _jet(0.0)
    clipped = np.asarray(render.overlay(photo, flat, view, alpha=1.0, vmin=0.0, vmax=0.25))
    assert tuple(clipped[30, 30]) == _jet(1.0)


def test_unseen_pixels_are_grey_and_dim_not_coloured() -> None:
    photo = _photo((320, 240))
    view = plan_view(photo.size, Prep(), "crop")
    result = np.asarray(render.overlay(photo, _hot((7, 7), 3, 3), view, alpha=0.6)).astype(int)
    left_edge = int(view.box[0] * 320)
    outside = result[:, : left_edge - 1].reshape(-1, 3)
    assert (outside[:, 0] == outside[:, 1]).all() and (outside[:, 1] == outside[:, 2]).all()
    assert outside.max() <= round(255 * 0.35 + 70)
    inside = result[120, left_edge + 2 : int(view.box[2] * 320) - 2]
    assert (np.ptp(inside, axis=1) > 0).any()  # coloured: not grey
    still_marked = np.asarray(render.overlay(photo, _hot((7, 7), 3, 3), view, alpha=0.0)).astype(int)
    assert np.array_equal(still_marked[:, : left_edge - 1], result[:, : left_edge - 1])
    assert np.array_equal(still_marked[120, left_edge + 2], np.asarray(photo)[120, left_edge + 2])


def test_unknown_colormap_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown colormap 'rainbowish'"):
        render.overlay(_photo(), _hot((7, 7), 0, 0), WHOLE, cmap="rainbowish")


def test_overlay_is_fast_on_a_display_sized_picture() -> None:
    photo = _photo((1024, 768))
    render.overlay(photo, _hot((7, 10), 3, 3), WHOLE)
    start = time.process_time()  # CPU time: the test machine may be busy with other work
    for _ in range(5):
        render.overlay(photo, _hot((7, 10), 3, 3), WHOLE)
    assert (time.process_time() - start) / 5 < 0.2


# ------------------------------------------------------------------------------------------ limits, legends


def test_colour_limits_per_map_and_shared() -> None:
    maps = [np.array([[0.0, 2.0]]), np.array([[1.0, np.nan, 5.0]]), np.array([[np.nan]])]
    assert render.colour_limits(maps, shared=False) == [(0.0, 2.0), (1.0, 5.0), (0.0, 1.0)]
    assert render.colour_limits(maps[:2], shared=True) == [(0.0, 5.0), (0.0, 5.0)]
    assert render.colour_limits([], shared=True) == []


def test_format_range_uses_the_decimals_the_span_needs() -> None:
    assert render.format_range(2e-6, 2.85) == "0.00 to 2.85"
    assert render.format_range(0.31, 0.874) == "0.310 to 0.874"
    assert render.format_range(120.0, 4000.0) == "120 to 4000"
    assert render.format_range(0.5, 0.5) == "0.500 to 0.500"


def test_colorbar_image() -> None:
    bar = render.colorbar_image("jet", 0.0, 3.5, width=200, label="Grad-CAM")
    assert bar.size == (200, 44) and bar.mode == "RGB"
    pixels = np.asarray(bar)
    assert tuple(pixels[8, 6]) == _jet(0.0) and tuple(pixels[8, 193]) == _jet(1.0)


# --------------------------------------------------------------------------------------- channel attention


def _channel_vectors(kind: str, channels: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = {}
    for stage, depth in DEPTHS.items():
        for block in range(depth):
            vector = rng.random(channels * 2 ** (stage - 1)).astype(np.float32)
            vectors[f"layer{stage}.{block}"] = vector.reshape(-1, 1, 1) if kind == "se" else vector
    return vectors


def test_channel_summary_sorts_by_the_stage_mean() -> None:
    vectors = {"layer2.1": np.array([0.9, 0.1, 0.5]), "layer2.0": np.array([0.7, 0.3, 0.5]), "layer3.0": np.ones(6)}
    summary = render.channel_summary(vectors, 2)
    assert summary.blocks == ("layer2.0", "layer2.1")
    assert summary.order.tolist() == [0, 2, 1]
    assert np.allclose(summary.matrix, [[0.7, 0.5, 0.3], [0.9, 0.5, 0.1]])
    assert np.allclose(summary.stage_mean, [0.8, 0.5, 0.2]) and np.allclose(summary.spread, [0.1, 0.0, 0.1])
    assert np.allclose(summary.block_mean, [0.5, 0.5])
    assert render.channel_summary(vectors, 1) is None
    with pytest.raises(ValueError, match="different channel counts"):
        render.channel_summary({"layer1.0": np.ones(3), "layer1.1": np.ones(4)}, 1)


@pytest.mark.parametrize("kind", ["se", "cbam"])
def test_channel_attention_plot_for_se_and_cbam(kind: str) -> None:
    vectors = _channel_vectors(kind)
    three_blocks = render.channel_attention_plot(vectors, 4)
    six_blocks = render.channel_attention_plot(vectors, 3, title="stage 3")
    assert three_blocks.mode == "RGB" and three_blocks.width == 900
    assert 300 < three_blocks.height < six_blocks.height < 900
    assert np.asarray(six_blocks).std() > 10  # something is drawn


def test_channel_attention_plot_for_the_baseline_says_so() -> None:
    image = render.channel_attention_plot({}, 2)
    assert image.size == (900, 96)


# ---------------------------------------------------------------------------------------- spatial attention


def _spatial_maps(view: ModelView, *, last_hot_left: bool = False) -> dict[str, np.ndarray]:
    maps = {}
    for stage, depth in DEPTHS.items():
        stride = 2 ** (stage + 1)
        shape = (-(-view.input_size[1] // stride), -(-view.input_size[0] // stride))
        for block in range(depth):
            column = 0 if (last_hot_left and block == depth - 1) else shape[1] - 1
            maps[f"layer{stage}.{block}"] = _hot(shape, shape[0] // 2, column, low=0.2, high=0.9)
    return maps


def test_spatial_grid_shows_the_last_block_of_each_stage() -> None:
    photo = _photo((200, 150))
    view = plan_view(photo.size, Prep(), "whole")
    grid = render.spatial_attention_grid(_spatial_maps(view, last_hot_left=True), view, photo, alpha=1.0, tile=100)
    assert grid.size == (4 * 108 + 8, 8 + 22 + 75 + 20)
    pixels = np.asarray(grid).astype(int)
    for tile, stage in enumerate(DEPTHS):
        stride = 2 ** (stage + 1)
        hot_row = -(-view.input_size[1] // stride) // 2
        x0, y_mid = 8 + tile * 108, 8 + 22 + round((hot_row * stride + 0.5) / view.input_size[1] * 75 - 0.5)
        warmth = pixels[y_mid, x0 : x0 + 100, 0] - pixels[y_mid, x0 : x0 + 100, 2]  # jet: red minus blue
        assert warmth[0] > 100 and warmth[-1] < -100, tile  # the last block is hot on the left, the others right


def test_spatial_grid_drill_down_lists_every_block_and_wraps() -> None:
    photo = _photo((120, 120))
    view = plan_view(photo.size, Prep(), "crop")
    maps = _spatial_maps(view)
    grid = render.spatial_attention_grid(maps, view, photo, stage=3, tile=64, columns=4)
    assert grid.size == (4 * 72 + 8, 2 * (22 + 64 + 20) + 8)  # six blocks: two lines of four
    assert render.spatial_attention_grid(maps, view, photo, stage=1, tile=64).size == (3 * 72 + 8, 22 + 64 + 20 + 8)


def test_spatial_grid_without_spatial_attention_says_so() -> None:
    image = render.spatial_attention_grid({}, WHOLE, _photo())
    assert image.size == (320, 96)


# ------------------------------------------------------------------------------------------- export figure


def _fake_analysis(archs: tuple[str, ...], *, mode: str = "whole", targets: tuple[str, ...] = ()) -> SimpleNamespace:
    photo = _photo((240, 180))
    view = plan_view(photo.size, Prep(), mode)
    cam_shape = (-(-view.input_size[1] // 32), -(-view.input_size[0] // 32))
    models = {}
    for index, arch in enumerate(archs):
        label = targets[index] if targets else "tabby cat"
        models[arch] = SimpleNamespace(
            arch=arch,
            weights=f"demo weights: {ARCH_TITLES[arch]} at 1/8 width, 10 shapes",
            top5=[(label, 0.8)],
            target_index=index if targets else 3,
            target_label=label,
            target_prob=0.8 - 0.1 * index,
            cam=_hot(cam_shape, 2, 3, high=2.0 + index),
            cam_stage=4,
            channel_attention={} if arch == "resnet50" else _channel_vectors("cbam"),
            spatial_attention=_spatial_maps(view) if arch == "cbam_resnet50" else {},
            metrics={},
        )
    return SimpleNamespace(
        image=photo,
        original_size=photo.size,
        view=view,
        method="gradcam",
        stage=4,
        models=models,
        agreement={},
        weights_set="demo",
        weights_note="demo weights: ImageNet weights not found under weights/imagenet",
        device="cpu",
        view_for=lambda result: getattr(result, "view", None) or view,
    )


def test_comparison_figure_is_a_png_with_one_row_per_model() -> None:
    one = Image.open(io.BytesIO(render.comparison_figure(_fake_analysis(("cbam_resnet50",)), dpi=60)))
    three = Image.open(
        io.BytesIO(render.comparison_figure(_fake_analysis(("resnet50", "se_resnet50", "cbam_resnet50")), dpi=60))
    )
    assert one.format == three.format == "PNG"
    assert one.width == three.width
    row_height = (three.height - one.height) / 2
    assert row_height > 60  # each extra model adds a row of panels
    assert np.asarray(three.convert("RGB")).std() > 20


def test_comparison_figure_crop_view_and_shared_scale() -> None:
    analysis = _fake_analysis(("resnet50", "cbam_resnet50"), mode="crop")
    png = render.comparison_figure(analysis, shared_scale=True, cmap="viridis", alpha=0.7, dpi=60)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] > 400


def test_comparison_figure_needs_models() -> None:
    with pytest.raises(ValueError, match="no models"):
        render.comparison_figure(_fake_analysis(()))


def test_caption_names_the_choices() -> None:
    same = render.comparison_caption(_fake_analysis(("resnet50", "cbam_resnet50")))
    assert "Grad-CAM for the class “tabby cat” at stage 4" in same
    assert "last block of each stage" in same and "own minimum to maximum" in same
    assert "Weights: demo weights: ImageNet weights not found" in same and "Grey:" not in same
    differ = render.comparison_caption(
        _fake_analysis(("resnet50", "cbam_resnet50"), mode="crop", targets=("cat", "dog")), shared_scale=True
    )
    assert "each model's own top class" in differ and "one scale" in differ and "Grey:" in differ


def test_a_model_with_its_own_view_is_drawn_with_it() -> None:
    analysis = _fake_analysis(("resnet50", "cbam_resnet50"))
    analysis.models["resnet50"].view = plan_view(analysis.image.size, Prep(), "crop")
    assert "Grey:" in render.comparison_caption(analysis)
    own_view = Image.open(io.BytesIO(render.comparison_figure(analysis, dpi=50)))
    analysis.models["resnet50"].view = None
    shared_view = Image.open(io.BytesIO(render.comparison_figure(analysis, dpi=50)))
    assert own_view.size == shared_view.size
    assert not np.array_equal(np.asarray(own_view), np.asarray(shared_view))


# ----------------------------------------------------------------------------------------------- threading


def test_rendering_from_threads_gives_identical_pictures() -> None:
    vectors = _channel_vectors("se", channels=16)
    photo = _photo((320, 240))

    def work(_: int) -> tuple[bytes, bytes]:
        plot = render.channel_attention_plot(vectors, 1, width_px=400)
        return plot.tobytes(), render.overlay(photo, _hot((8, 10), 4, 4), WHOLE).tobytes()

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(work, range(3)))
    assert all(result == results[0] for result in results)


def test_render_never_uses_pyplot() -> None:
    """pyplot keeps global state and is not thread-safe; the app renders from several request threads."""
    tree = ast.parse(Path(render.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert not [name for name in imported if "pyplot" in name or name == "matplotlib.rcParams"]
    assert "matplotlib.figure.Figure" in imported
