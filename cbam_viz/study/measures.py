"""Per-image localisation numbers of one map against the object: pointing, energy and the MaxBoxAccV2 curve.

Maps are already on the picture (``imaging.map_to_image`` onto the displayed copy, NaN where the model saw nothing),
the object is a ``Region`` on the same pixels. Pointing and energy are ``analysis.metrics``' own functions, so a
study's numbers are the single-picture pointing game's (``checks.pointing``).

MaxBoxAccV2 (Choe et al., CVPR 2020, wsolevaluation), per image: the map is min-max normalised to [0, 1]; at each
threshold of ``THRESHOLDS`` (0, 0.01, ..., 0.99) the boxes around ALL connected components (8-connected) of the
pixels strictly above it are taken, and the best IoU of any of them with any ground-truth box is kept: one IoU per
threshold (``box_iou_curve``). Over a dataset (``max_box_accuracy``) the box accuracy at IoU delta is the share of
images whose IoU reaches delta; its best threshold is taken per delta, and the three are averaged over
``IOU_DELTAS``. Boxes are inclusive pixel index boxes (x0, y0, x1, y1) and their areas count pixels, as wsolevaluation
computes them; a ground-truth box is the bounding box of the pixels whose centres lie in it (or of the mask).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cbam_viz.analysis import metrics

THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.01), 2)  # wsolevaluation's cam_curve_interval of 0.01
IOU_DELTAS = (0.3, 0.5, 0.7)
TOLERANCE_PX = 15.0  # TorchRay's pointing-game tolerance, in pixels of the original picture
MAXBOX_SIDE = 224  # the box curve of a larger picture is evaluated on a grid of this longer side


@dataclass(frozen=True)
class Region:
    """The object on the displayed picture: its pixels, its boxes (inclusive pixel indices) and the tolerance."""

    kind: str  # "mask" | "box"
    mask: np.ndarray  # (height, width) bool: the object's pixels (the union of the boxes for "box")
    boxes: np.ndarray  # (k, 4) int64 inclusive (x0, y0, x1, y1): the ground-truth boxes
    tolerance: float  # the pointing tolerance in displayed pixels (TOLERANCE_PX scaled onto the displayed copy)
    note: str = ""  # e.g. "box clipped to the picture"


def bounding_box(mask: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) inclusive pixel indices of a non-empty boolean mask."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    cols = np.flatnonzero(np.asarray(mask).any(axis=0))
    if rows.size == 0:
        raise ValueError("an empty mask has no bounding box")
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.int64)


def mask_region(mask: np.ndarray, tolerance: float = TOLERANCE_PX, note: str = "") -> Region:
    """The region of an object mask (on the displayed picture); its box is the mask's bounding box."""
    values = np.asarray(mask, dtype=bool)
    return Region("mask", values, bounding_box(values)[None], tolerance, note)


def box_region(
    boxes: Sequence[Sequence[float]], size: tuple[int, int], tolerance: float = TOLERANCE_PX, note: str = ""
) -> Region:
    """The region of boxes (x0, y0, x1, y1) in pixels of a picture of ``size`` (width, height), as
    ``metrics.box_mask`` reads them (clipped; a pixel is inside when its centre is). ValueError if none covers a
    pixel."""
    masks = [metrics.box_mask(tuple(box), size) for box in boxes]
    if not masks:
        raise ValueError("a box region needs at least one box")
    union = np.logical_or.reduce(masks)
    return Region("box", union, np.stack([bounding_box(mask) for mask in masks]), tolerance, note)


def area_share(map_on_image: np.ndarray, region: Region) -> float:
    """The region's share of the pixels the model saw (``checks.pointing``'s ``area_share``)."""
    seen = np.isfinite(map_on_image)
    return float(region.mask[seen].mean()) if seen.any() else math.nan


def pointing_and_energy(map_on_image: np.ndarray, region: Region) -> dict[str, float | bool]:
    """Strict pointing, pointing within the region's tolerance, and the map's energy inside the region."""
    return {
        "pointing": metrics.pointing_hit(map_on_image, region.mask),
        "pointing_tolerant": metrics.pointing_hit(map_on_image, region.mask, region.tolerance),
        "energy": metrics.energy_inside(map_on_image, region.mask),
    }


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(m, n) IoU of inclusive pixel boxes (m, 4) and (n, 4): areas count pixels, as wsolevaluation's do."""
    a = np.asarray(first, dtype=np.float64)[:, None, :]
    b = np.asarray(second, dtype=np.float64)[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)


def normalised(map_on_image: np.ndarray) -> np.ndarray:
    """The map min-max scaled to [0, 1] over its finite pixels, NaN as 0; a flat map is all 0 (no box at all)."""
    values = np.asarray(map_on_image, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape)
    low, high = values[finite].min(), values[finite].max()
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return np.zeros(values.shape)
    return np.where(finite, (values - low) / (high - low), 0.0)


def box_iou_curve(
    map_on_image: np.ndarray, boxes: np.ndarray, thresholds: np.ndarray = THRESHOLDS, max_side: int = MAXBOX_SIDE
) -> np.ndarray:
    """Per threshold, the best IoU between a box of the map's thresholded components and a ground-truth box
    (float32, one per threshold; 0 where no pixel is above the threshold).

    A picture whose longer side exceeds ``max_side`` is evaluated on a grid of that size (the map resampled
    bilinearly, the boxes scaled), the protocol's own 224-pixel resolution. All thresholds are labelled in one
    call: a (thresholds, height, width) stack whose components never join across thresholds.
    """
    from scipy import ndimage

    scaled = normalised(map_on_image)
    truth = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    height, width = scaled.shape
    factor = min(1.0, max_side / max(height, width))
    if factor < 1.0:
        shape = (max(1, round(height * factor)), max(1, round(width * factor)))
        scaled = metrics.resize_bilinear(scaled, shape)
        fx, fy = shape[1] / width, shape[0] / height
        edges = truth.astype(np.float64) + [0, 0, 1, 1]
        truth = np.stack(
            [
                np.floor(edges[:, 0] * fx),
                np.floor(edges[:, 1] * fy),
                np.maximum(np.ceil(edges[:, 2] * fx) - 1, np.floor(edges[:, 0] * fx)),
                np.maximum(np.ceil(edges[:, 3] * fy) - 1, np.floor(edges[:, 1] * fy)),
            ],
            axis=1,
        ).astype(np.int64)
    curve = np.zeros(len(thresholds), dtype=np.float32)
    if not truth.size:
        return curve
    stack = scaled[None] > np.asarray(thresholds, dtype=np.float64)[:, None, None]
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within a threshold, never across
    labels, count = ndimage.label(stack, structure=structure)
    if count == 0:
        return curve
    slices = ndimage.find_objects(labels)
    found = np.array([(s[0].start, s[2].start, s[1].start, s[2].stop - 1, s[1].stop - 1) for s in slices])
    ious = box_iou(found[:, 1:], truth).max(axis=1)
    np.maximum.at(curve, found[:, 0], ious.astype(np.float32))
    return curve


def max_box_accuracy(
    curves: np.ndarray, thresholds: np.ndarray = THRESHOLDS, deltas: Sequence[float] = IOU_DELTAS
) -> dict[str, object]:
    """MaxBoxAccV2 of a dataset from its per-image IoU curves (n, thresholds): per delta the best threshold's box
    accuracy, and their mean (``value``). Empty input gives None."""
    ious = np.asarray(curves, dtype=np.float64).reshape(-1, len(thresholds))
    if ious.shape[0] == 0:
        return {"value": None, "by_iou": {}, "best_threshold": {}}
    by_iou, best = {}, {}
    for delta in deltas:
        accuracy = (ious >= delta - 1e-9).mean(axis=0)
        position = int(np.argmax(accuracy))
        by_iou[f"{round(delta * 100)}"] = float(accuracy[position])
        best[f"{round(delta * 100)}"] = float(thresholds[position])
    return {"value": float(np.mean(list(by_iou.values()))), "by_iou": by_iou, "best_threshold": best}
