"""How the model sees a picture: the input tensor it gets, and where each feature cell lies on the photo.

* What the model sees (``prepare_input``): "whole" keeps the entire picture and its aspect ratio, shorter side at
  the weights' input size, longer side capped at ``MAX_WHOLE_ASPECT`` times that; "crop" is the weights' own
  evaluation protocol (resize, then centre crop).
* Where a feature cell lies (``map_to_image``): at its receptive-field centre, computed once per network layout
  (``CellGeometry.of(ArchConfig)``) from the layers that stride (``model.resnet.grid_chains``): cell ``j`` of a
  grid is centred on input pixel ``offset + j * stride``, not on ``(j + 0.5) * stride`` as a plain "stretch the grid
  over the image" resize assumes (15.5 input pixels at stage 4, 7 % of a 224-pixel input). The zero-padded layouts
  (torchvision, timm, pytorchcv, official CBAM, the demo) have offset 0; the Caffe SE-ResNet's unpadded ceil-mode stem
  pool has offset 2 (cell j of stage 1 at 4j + 2), and its grid sizes are the pool's, not ceil(W / stride), at odd
  widths. Each map is matched to the grid of its size; a map of no grid of the layout is spread evenly over the input.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from cbam_viz.i18n.language import Message
from cbam_viz.model.resnet import ArchConfig, Sampling, grid_chains
from cbam_viz.vocab import VIEWS

if TYPE_CHECKING:
    from cbam_viz.weights.registry import Preprocess
from cbam_viz.imaging.decode import to_rgb
from cbam_viz.imaging.limits import MAX_WHOLE_ASPECT
from cbam_viz.weights.registry import Preprocess

_RESAMPLING = {  # registry.INTERPOLATIONS
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


# ------------------------------------------------------------------------------------- where feature cells lie


@dataclass(frozen=True)
class CellGeometry:
    """Where the cells of each feature grid of one network layout lie on its input (see the module docstring)."""

    chains: tuple[tuple[Sampling, ...], ...]  # input -> each grid, finest first
    name: str = "pad"  # the layout's stem pool, for people

    @staticmethod
    @functools.cache
    def of(config: ArchConfig) -> CellGeometry:
        """The geometry of a layout, computed once per ``ArchConfig`` (only padding, pooling and strides matter)."""
        return CellGeometry(tuple(grid_chains(config).values()), config.stem_pool)

    def centres(self, cells: int, input_pixels: int) -> tuple[float, float]:
        """(offset, spacing) such that cell j is centred at continuous input coordinate offset + j * spacing
        (pixel i covers [i, i + 1)): the first grid of this layout with ``cells`` cells at this input size; the
        input's own grid (one cell per pixel); else the cells spread evenly."""
        if cells == input_pixels:
            return 0.5, 1.0
        for chain in self.chains:
            size = input_pixels
            for layer in chain:
                size = layer.cells(size)
            if size == cells:
                shift, stride = _chain_shift(chain)
                return shift + 0.5, float(stride)
        spacing = input_pixels / cells
        return spacing / 2.0, spacing

    @property
    def offset(self) -> float:
        """The deepest grid's receptive-field offset in input pixels: cell j at pixel offset + j * stride (0 for
        the padded layouts, 2 for the Caffe stem; every stage of these layouts shares it)."""
        return _chain_shift(self.chains[-1])[0]


def _chain_shift(chain: tuple[Sampling, ...]) -> tuple[float, int]:
    """(shift, stride) of a chain: its cell j is centred at input pixel shift + j * stride."""
    shift, stride = 0.0, 1
    for layer in chain:
        shift += stride * layer.shift
        stride *= layer.stride
    return shift, stride


PADDED = CellGeometry.of(ArchConfig())


def model_geometry(model: object) -> CellGeometry:
    """The geometry of a model built from an ``ArchConfig`` (``model.config``); the padded layout otherwise."""
    config = getattr(model, "config", None)
    return CellGeometry.of(config) if isinstance(config, ArchConfig) else PADDED


# ------------------------------------------------------------------------------------------ what the model sees


@dataclass(frozen=True)
class ModelView:
    """Which region of the picture the model saw and at what size: the key to putting its maps back in place."""

    mode: str  # "whole" (entire picture resized) | "crop" (the weights' evaluation centre crop)
    input_size: tuple[int, int]  # (width, height) of the tensor the model saw
    box: tuple[float, float, float, float]  # (left, top, right, bottom) of the seen region, normalised to [0, 1]
    note: str  # plain words for users
    geometry: CellGeometry = PADDED  # the model's layout: where its cells lie (``for_model``)

    def for_model(self, model: object) -> ModelView:
        """This view with ``model``'s own cell geometry (models sharing a preprocessing may differ in layout)."""
        return replace(self, geometry=model_geometry(model))


def plan_view(size: tuple[int, int], preprocess: Preprocess, mode: str = "whole") -> ModelView:
    """The ``ModelView`` for a picture of ``size`` (width, height), without touching pixels."""
    if mode not in VIEWS:
        raise ValueError(f"unknown view {mode!r}; choose one of {', '.join(VIEWS)}")
    width, height = size
    if mode == "whole":
        target = preprocess.crop or preprocess.resize
        cap = round(MAX_WHOLE_ASPECT * target)
        scale = target / min(width, height)
        if max(width, height) * scale > cap:
            scale = cap / max(width, height)
        input_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        note = Message("view.note.whole", width=input_size[0], height=input_size[1])
        if min(input_size) < target:
            note = Message("view.note.whole_capped", width=input_size[0], height=input_size[1], cap=cap, target=target)
        return ModelView("whole", input_size, (0.0, 0.0, 1.0, 1.0), note)
    resize = preprocess.resize
    crop = min(preprocess.crop or resize, resize)
    # torchvision's Resize(int) then CenterCrop: the longer side is truncated, the crop offset rounded.
    if width <= height:
        resized = (resize, int(resize * height / width))
    else:
        resized = (int(resize * width / height), resize)
    left = int(round((resized[0] - crop) / 2.0))
    top = int(round((resized[1] - crop) / 2.0))
    box = (left / resized[0], top / resized[1], (left + crop) / resized[0], (top + crop) / resized[1])
    protocol = Message("view.note.protocol" if preprocess.crop else "view.note.square")
    note = Message("view.note.crop", width=resized[0], height=resized[1], crop=crop, protocol=protocol)
    if box == (0.0, 0.0, 1.0, 1.0):
        note = Message("view.note.crop_all", crop=crop)
    return ModelView("crop", (crop, crop), box, note)


def prepare_input(image: Image.Image, preprocess: Preprocess, mode: str = "whole") -> tuple[torch.Tensor, ModelView]:
    """The (1, 3, H, W) float32 tensor the model gets, normalised with the weights' mean/std, and how it was made.

    One resampling from the given picture (antialiased, the weights' interpolation): in "crop" mode Pillow resizes
    the crop box directly, which equals torchvision's Resize + CenterCrop up to rounding.
    """
    if image.mode != "RGB":
        image = to_rgb(image)
    view = plan_view(image.size, preprocess, mode)
    try:
        resample = _RESAMPLING[preprocess.interpolation]
    except KeyError:
        raise ValueError(
            f"unknown interpolation {preprocess.interpolation!r}; use one of {', '.join(_RESAMPLING)}"
        ) from None
    width, height = image.size
    left, top, right, bottom = view.box
    source_box = (left * width, top * height, right * width, bottom * height)
    resized = image.resize(view.input_size, resample, box=source_box)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    normalised = ((pixels - mean) / std).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(normalised)).unsqueeze(0), view


# ----------------------------------------------------------------------------------- maps back onto the picture


def cell_centre_pixels(cells: int, input_pixels: int, geometry: CellGeometry = PADDED) -> np.ndarray:
    """Index of the input pixel under each cell's centre along one axis: where ``map_to_image`` puts that cell.

    Training samples the object mask here, so the cells it rewards are exactly the points the app draws.
    """
    offset, spacing = geometry.centres(cells, input_pixels)
    return np.clip(np.floor(offset + np.arange(cells) * spacing), 0, input_pixels - 1).astype(np.int64)


def _axis_weights(
    out_pixels: int, low: float, high: float, cells: int, input_pixels: int, geometry: CellGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel along one axis: the two neighbouring cells, the weight of the second, and visibility."""
    centres = (np.arange(out_pixels, dtype=np.float64) + 0.5) / out_pixels  # normalised pixel centres
    inside = (centres >= low) & (centres <= high)
    offset, spacing = geometry.centres(cells, input_pixels)
    position = (centres - low) / max(high - low, 1e-12) * input_pixels  # continuous coordinate in the model input
    cell = np.clip((position - offset) / spacing, 0.0, cells - 1)
    first = np.floor(cell).astype(np.int64)
    second = np.minimum(first + 1, cells - 1)
    return first, second, (cell - first).astype(np.float32), inside


def map_to_image(native: np.ndarray, view: ModelView, size: tuple[int, int]) -> np.ndarray:
    """Resample a map at its native (feature-grid) resolution ONCE, bilinearly, onto a picture of ``size``
    (width, height): float32 (height, width), NaN where the model saw nothing (outside ``view.box``).

    Cell geometry: ``view.geometry``, the model's layout (receptive-field centres; edges extend the outermost cells).
    """
    grid = np.asarray(native, dtype=np.float32)
    while grid.ndim > 2 and grid.shape[0] == 1:
        grid = grid[0]
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"expected a 2-D map, got shape {np.shape(native)}")
    width, height = size
    left, top, right, bottom = view.box
    x0, x1, wx, seen_x = _axis_weights(width, left, right, grid.shape[1], view.input_size[0], view.geometry)
    y0, y1, wy, seen_y = _axis_weights(height, top, bottom, grid.shape[0], view.input_size[1], view.geometry)
    columns = grid[:, x0] * (1.0 - wx) + grid[:, x1] * wx  # (cells_y, width)
    result = columns[y0, :] * (1.0 - wy)[:, None] + columns[y1, :] * wy[:, None]
    if not (seen_x.all() and seen_y.all()):
        result[~seen_y, :] = np.nan
        result[:, ~seen_x] = np.nan
    return result.astype(np.float32, copy=False)
