"""Numbers that compare maps: pure numpy, so the app, the CLI and the evaluation share one definition.

Maps may hold NaN where the model saw nothing (``imaging.map_to_image`` marks pixels outside the view that way); every
function here ignores those pixels. Undefined results (a constant map has no correlation) are NaN, never a guess.
"""

from __future__ import annotations

import math

import numpy as np

TOP_FRACTION = 0.2  # "top-20 % region": the share of pixels that counts as where a map looks


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from logits (float64 internally, so tiny probabilities do not underflow to garbage)."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits)
    exp = np.exp(shifted)
    return (exp / exp.sum()).astype(np.float32)


def resize_bilinear(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D map to ``shape`` (height, width) with half-pixel centres, the convention of torch/Pillow."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape == tuple(shape):
        return values.copy()
    rows = _sample_positions(values.shape[0], shape[0])
    cols = _sample_positions(values.shape[1], shape[1])
    (r0, r1, rw), (c0, c1, cw) = rows, cols
    top = values[r0][:, c0] * (1 - cw) + values[r0][:, c1] * cw
    bottom = values[r1][:, c0] * (1 - cw) + values[r1][:, c1] * cw
    return (top * (1 - rw[:, None]) + bottom * rw[:, None]).astype(np.float32)


def _sample_positions(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
    low = np.floor(centres).astype(np.int64)
    high = np.minimum(low + 1, source - 1)
    return low, high, (centres - low).astype(np.float32)


def common_grid(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both maps on the finer of their two grids (maps of one stage usually share a grid and pass unchanged)."""
    shape = max(first.shape, second.shape, key=lambda s: s[0] * s[1])
    return resize_bilinear(first, shape), resize_bilinear(second, shape)


def pearson(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson correlation over pixels finite in both maps; NaN when either map is constant there."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    valid = np.isfinite(a) & np.isfinite(b)
    if valid.sum() < 2:
        return math.nan
    a, b = a[valid] - a[valid].mean(), b[valid] - b[valid].mean()
    scale = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if scale <= 1e-12:
        return math.nan
    return float((a * b).sum() / scale)


def top_region(values: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Boolean mask of the ``fraction`` of finite pixels with the highest values (exactly that many, ties by order).

    Counting pixels rather than thresholding keeps the region's size fixed even when most of a ReLU'd CAM is zero.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.flatnonzero(np.isfinite(flat))
    mask = np.zeros(flat.shape, dtype=bool)
    if finite.size:
        count = max(1, round(fraction * finite.size))
        order = np.argsort(-flat[finite], kind="stable")
        mask[finite[order[:count]]] = True
    return mask.reshape(np.shape(values))


def top_region_iou(first: np.ndarray, second: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """IoU of the two maps' top-``fraction`` regions; NaN when either map is constant (it has no top region)."""
    if _is_flat(first) or _is_flat(second):
        return math.nan
    a, b = top_region(first, fraction), top_region(second, fraction)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else math.nan


def map_agreement(first: np.ndarray, second: np.ndarray, fraction: float = TOP_FRACTION) -> dict[str, float]:
    """How much two maps (of any grids) agree: Pearson correlation and top-region IoU on a common grid."""
    a, b = common_grid(first, second)
    return {"correlation": pearson(a, b), "top20_iou": top_region_iou(a, b, fraction)}


def cam_agreement(first_cam: np.ndarray, second_cam: np.ndarray) -> dict[str, float]:
    """Agreement between two models' CAMs, with the keys ``Analysis.agreement`` uses."""
    agreement = map_agreement(first_cam, second_cam)
    return {"cam_correlation": agreement["correlation"], "top20_iou": agreement["top20_iou"]}


def cam_spatial_agreement(cam: np.ndarray, spatial_map: np.ndarray) -> dict[str, float]:
    """Agreement between a CBAM model's CAM and the spatial attention of the CAM stage's LAST block.

    The last block is chosen (not the stage mean) because its gate is the one applied to the features the CAM reads:
    the stage's output is that block's gated features plus its shortcut, on the same grid as the CAM.
    """
    agreement = map_agreement(cam, spatial_map)
    return {"cam_spatial_correlation": agreement["correlation"], "cam_spatial_top20_iou": agreement["top20_iou"]}


def pointing_hit(cam_on_image: np.ndarray, mask: np.ndarray, tolerance: float = 0.0) -> bool:
    """Pointing game: is the map's maximum inside the object mask (or within ``tolerance`` pixels of it)?

    The original pointing game (Zhang et al., 2016) allows 15 pixels at 224, since a CAM cell spans many pixels.
    A constant (or empty) map points nowhere: False.
    """
    values = _check_same_shape(cam_on_image, mask)
    if _is_flat(values):
        return False
    inside = np.asarray(mask, dtype=bool)
    row, col = np.unravel_index(int(np.nanargmax(values)), inside.shape)
    if inside[row, col] or tolerance <= 0:
        return bool(inside[row, col])
    rows, cols = np.nonzero(inside)
    return bool(rows.size) and float(np.min((rows - row) ** 2 + (cols - col) ** 2)) <= tolerance**2


def energy_inside(map_on_image: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the map's mass inside the mask, after subtracting the map's minimum (energy-based pointing game).

    Subtracting the minimum is what min-max normalising does before the ratio (Score-CAM's definition); it changes
    nothing for a ReLU'd CAM and keeps a sigmoid attention map's floor from counting as mass. A map without mass
    (constant) scores 0.0.
    """
    values = _check_same_shape(map_on_image, mask)
    finite = np.isfinite(values)
    if not finite.any():
        return 0.0
    mass = np.where(finite, values - values[finite].min(), 0.0)
    total = float(mass.sum())
    if total <= 0:
        return 0.0
    return float(mass[np.asarray(mask, dtype=bool).reshape(-1)].sum() / total)


def _check_same_shape(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if np.shape(values) != np.shape(mask):
        raise ValueError(f"map shape {np.shape(values)} differs from mask shape {np.shape(mask)}")
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _is_flat(values: np.ndarray) -> bool:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return finite.size == 0 or float(finite.max() - finite.min()) <= 1e-12 * max(1.0, float(np.abs(finite).max()))
