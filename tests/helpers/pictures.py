"""Pictures and stand-ins for the renderers: a noise photo, one-hot maps, attention vectors and maps of every block,
and a fake analysis with the fields the export figure reads."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from PIL import Image

from cbam_viz.imaging.view import ModelView, plan_view
from cbam_viz.vocab import ARCH_TITLES

DEPTHS = {1: 3, 2: 4, 3: 6, 4: 3}  # bottleneck blocks per stage of a ResNet-50


@dataclass(frozen=True)
class Prep:
    """Stands in for cbam_viz.weights.registry.Preprocess (same fields); the defaults are ImageNet's."""

    resize: int = 256
    crop: int | None = 224
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def random_photo(size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Uniform RGB noise, the same for every call of one size."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def hot_grid(shape: tuple[int, int], row: int, column: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """A ``shape`` grid of ``low`` with one ``high`` cell."""
    grid = np.full(shape, low, dtype=np.float32)
    grid[row, column] = high
    return grid


def channel_vectors(kind: str, channels: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Random channel gates of every block: (C, 1, 1) as SE gives them, (C,) as CBAM does."""
    rng = np.random.default_rng(seed)
    vectors = {}
    for stage, depth in DEPTHS.items():
        for block in range(depth):
            vector = rng.random(channels * 2 ** (stage - 1)).astype(np.float32)
            vectors[f"layer{stage}.{block}"] = vector.reshape(-1, 1, 1) if kind == "se" else vector
    return vectors


def spatial_maps(view: ModelView, *, last_hot_left: bool = False) -> dict[str, np.ndarray]:
    """Spatial maps of every block, hot on the right (on the left for each stage's last block if asked)."""
    maps = {}
    for stage, depth in DEPTHS.items():
        stride = 2 ** (stage + 1)
        shape = (-(-view.input_size[1] // stride), -(-view.input_size[0] // stride))
        for block in range(depth):
            column = 0 if (last_hot_left and block == depth - 1) else shape[1] - 1
            maps[f"layer{stage}.{block}"] = hot_grid(shape, shape[0] // 2, column, low=0.2, high=0.9)
    return maps


def fake_analysis(
    archs: tuple[str, ...], *, mode: str = "whole", targets: tuple[str, ...] = (), size: tuple[int, int] = (240, 180)
) -> SimpleNamespace:
    """An analysis of ``archs`` with the fields the export figure reads, without running a model."""
    photo = random_photo(size)
    view = plan_view(photo.size, Prep(), mode)
    cam_shape = (-(-view.input_size[1] // 32), -(-view.input_size[0] // 32))
    models = {}
    for index, arch in enumerate(archs):
        label = targets[index] if targets else "tabby cat"
        models[arch] = SimpleNamespace(
            model_id=arch,
            family=arch,
            title=ARCH_TITLES[arch],
            weights=f"demo weights: {ARCH_TITLES[arch]} at 1/4 width, 10 shapes, top-1 98% on held-out shapes",
            top5=[(label, 0.8)],
            target_index=index if targets else 3,
            target_label=label,
            target_prob=0.8 - 0.1 * index,
            cam=hot_grid(cam_shape, min(2, cam_shape[0] - 1), min(3, cam_shape[1] - 1), high=2.0 + index),
            cam_stage=4,
            channel_attention={} if arch == "resnet50" else channel_vectors("cbam"),
            spatial_attention=spatial_maps(view) if arch == "cbam_resnet50" else {},
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
        title=lambda model_id: ARCH_TITLES.get(model_id, model_id),
    )
