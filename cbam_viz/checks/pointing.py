"""The pointing game on a box or a mask: does each map's peak fall on the object, and how much of its mass?

``box_game`` / ``mask_game`` ask of a finished ``Analysis`` whether each model's CAM peak (on the picture, via
``map_to_image``) falls inside a box drawn on the displayed picture, or inside an object mask, and which share of the
CAM's mass lies there; the same for every CBAM spatial map. Boxes are (x0, y0, x1, y1) in pixels of the displayed
picture (``Analysis.image``), edges included; a pixel counts as inside when its centre does. A mask has the displayed
picture's size (or the original's: it is resampled). ``area_share`` is the region's share of the pixels the model
saw: the energy a map blind to the region would get.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image

from cbam_viz.analysis import metrics
from cbam_viz.analysis.results import Analysis, json_number
from cbam_viz.errors import CbamVizError
from cbam_viz.imaging.view import map_to_image
from cbam_viz.vocab import STAGES, last_block

# ----------------------------------------------------------------------------------------- pointing on a region


@dataclass
class PointingReport:
    """Per model: does each map's peak fall in the region, and which share of its mass lies there."""

    region: dict[str, Any]  # {"kind": "box", "box": [...]} or {"kind": "mask"}, plus "area_share"
    models: dict[str, dict[str, Any]]

    def to_json(self) -> dict:
        """The region and every model's hits and energies, as plain numbers."""
        return {"region": self.region, "models": self.models}


def _score(map_on_picture: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    return {
        "hit": metrics.pointing_hit(map_on_picture, mask),
        "energy": json_number(metrics.energy_inside(map_on_picture, mask)),
    }


def region_game(analysis: Analysis, mask: np.ndarray, region: dict[str, Any]) -> PointingReport:
    """Pointing game and energy of every CAM and CBAM spatial map of ``analysis`` against a displayed-size mask."""
    size = analysis.image.size
    mask = np.asarray(mask, dtype=bool)
    models: dict[str, dict[str, Any]] = {}
    shares = []
    for arch, result in analysis.models.items():
        view = analysis.view_for(result)
        cam = map_to_image(result.cam, view, size)
        seen = np.isfinite(cam)
        shares.append(float(mask[seen].mean()) if seen.any() else math.nan)
        blocks = {
            block: _score(map_to_image(grid, view, size), mask) for block, grid in result.spatial_attention.items()
        }
        spatial = {}
        for stage in STAGES:
            last = last_block(result.spatial_attention, stage)
            if last is not None:
                spatial[str(stage)] = {"block": last, **blocks[last]}
        models[arch] = {"cam": _score(cam, mask), "spatial": spatial, "blocks": blocks}
    area = shares[0] if shares else math.nan
    return PointingReport({**region, "area_share": json_number(area)}, models)


def box_on_picture(box: Sequence[float], size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The part of ``box`` (x0, y0, x1, y1) that lies on a picture of ``size`` (width, height): the box itself when
    it lies inside, clipped when it reaches past an edge (the caller says so), a one-line CbamVizError when none of
    it lies on the picture."""
    x0, y0, x1, y1 = (float(value) for value in box)
    width, height = size
    shown = ",".join(f"{value:g}" for value in (x0, y0, x1, y1))
    if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
        raise CbamVizError(
            f"the box {shown} lies outside the {width}x{height} picture (x from 0 to {width}, y from 0 to {height})"
        )
    return max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)


def box_game(analysis: Analysis, box: Sequence[float]) -> PointingReport:
    """The pointing game on a box (x0, y0, x1, y1) drawn on the displayed picture (``analysis.image``), in pixels."""
    width, height = analysis.image.size
    try:
        values = tuple(float(v) for v in box)
        mask = metrics.box_mask(values, (width, height))
    except (TypeError, ValueError):
        raise CbamVizError(
            f"a box is x0, y0, x1, y1 in pixels with x0 < x1 and y0 < y1, covering part of the {width}x{height} "
            f"picture; got {str(box)[:80]}"
        ) from None
    clipped = [max(0.0, values[0]), max(0.0, values[1]), min(float(width), values[2]), min(float(height), values[3])]
    return region_game(analysis, mask, {"kind": "box", "box": clipped})


def mask_game(analysis: Analysis, mask: np.ndarray) -> PointingReport:
    """The pointing game on an object mask of the displayed picture's size, or of the original picture's size
    (then resampled to the displayed size, nearest neighbour)."""
    values = np.asarray(mask)
    width, height = analysis.image.size
    if values.ndim != 2:
        raise CbamVizError(f"a mask is a 2-D array of the picture's size, got shape {values.shape}")
    if values.shape != (height, width):
        if values.shape != (analysis.original_size[1], analysis.original_size[0]):
            raise CbamVizError(
                f"the mask is {values.shape[1]}x{values.shape[0]} but the picture is {width}x{height} "
                f"(original {analysis.original_size[0]}x{analysis.original_size[1]})"
            )
        image = PIL.Image.fromarray(values.astype(bool).astype(np.uint8) * 255)
        values = np.asarray(image.resize((width, height), PIL.Image.Resampling.NEAREST)) > 127
    values = values.astype(bool)
    if not values.any():
        raise CbamVizError("the mask is empty: it must mark at least one pixel of the object")
    return region_game(analysis, values, {"kind": "mask"})
