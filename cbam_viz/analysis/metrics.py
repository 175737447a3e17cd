"""Numbers that compare maps: numpy (with scipy's ranks and skimage's SSIM), so the app, the CLI, the checks and
the demo evaluation share one definition.

Maps may hold NaN where the model saw nothing (``imaging.view.map_to_image`` marks pixels outside the view that way);
every function here ignores those pixels. Undefined results (a constant map has no correlation) are NaN, never a guess.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

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
    Ties: a map often reaches its maximum on several pixels (a saturated gate, a plateau, bilinear resampling of one
    peak cell); it is a hit if ANY of the tied maxima is inside (or within ``tolerance``), so the answer never
    depends on which tied pixel comes first in reading order. A constant (or empty) map points nowhere: False.
    """
    values = _check_same_shape(cam_on_image, mask)
    if _is_flat(values):
        return False
    inside = np.asarray(mask, dtype=bool)
    peaks = (values == np.nanmax(values)).reshape(inside.shape)
    if bool(np.any(inside & peaks)) or tolerance <= 0:
        return bool(np.any(inside & peaks))
    rows, cols = np.nonzero(inside)
    if not rows.size:
        return False
    peak_rows, peak_cols = np.nonzero(peaks)
    nearest = min(
        float(np.min((rows - row) ** 2 + (cols - col) ** 2)) for row, col in zip(peak_rows, peak_cols, strict=True)
    )
    return nearest <= tolerance**2


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


# ------------------------------------------------------------------------------ for the sanity checks: rank, SSIM


def spearman(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman rank correlation over pixels finite in both maps (scipy's, ties averaged); NaN when either is flat.

    Maps must share a grid. A ReLU'd CAM that became all zero has no ranking at all: NaN, not 0.
    """
    a, b = _paired(first, second)
    valid = np.isfinite(a) & np.isfinite(b)
    if valid.sum() < 3 or _is_flat(a[valid]) or _is_flat(b[valid]):
        return math.nan
    return float(spearmanr(a[valid], b[valid]).statistic)


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Structural similarity (skimage's) of two maps on one grid, each min-max scaled to [0, 1] first.

    Scaling first is what Adebayo et al. do for saliency maps: SSIM then compares where the maps look, not their
    units. The window is 7x7 (skimage's default), or the largest odd size that fits a smaller grid. NaN pixels count
    as the map's minimum; a flat map (nothing to compare) or a grid under 3x3 gives NaN.
    """
    a, b = _paired(first, second)
    window = min(7, *a.shape)
    window -= 1 - window % 2
    if window < 3 or _is_flat(a) or _is_flat(b):
        return math.nan
    return float(structural_similarity(_unit_range(a), _unit_range(b), win_size=window, data_range=1.0))


def _paired(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two 2-D maps of one shape, got {a.shape} and {b.shape}")
    return a, b


def _unit_range(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    low, high = values[finite].min(), values[finite].max()
    return np.where(finite, (values - low) / (high - low), 0.0)


# ------------------------------------------------------------------ deletion and insertion (Petsiuk et al., RISE)


def rank_pixels(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices of a 2-D map, most salient first; ties in a seeded random order, NaN pixels last.

    A ReLU'd CAM is zero on much of the image: breaking those ties by position would delete the top rows first,
    a bias the random tie order avoids while staying repeatable.
    """
    values = np.asarray(saliency, dtype=np.float64).reshape(-1)
    tie_break = np.random.default_rng(seed).permutation(values.size)
    key = np.where(np.isfinite(values), -values, np.inf)
    return np.lexsort((tie_break, key))


def random_ranking(count: int, seed: int = 0) -> np.ndarray:
    """The random-order baseline: a seeded permutation of ``count`` pixel indices."""
    return np.random.default_rng(seed).permutation(count)


def step_counts(total: int, steps: int) -> np.ndarray:
    """How many pixels are touched at each of ``steps + 1`` points: 0, then evenly up to ``total`` (rounded)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return np.round(np.linspace(0, total, steps + 1)).astype(np.int64)


def blend_steps(start: np.ndarray, end: np.ndarray, order: np.ndarray, steps: int) -> np.ndarray:
    """(steps + 1, *shape) images: at point k the first ``step_counts[k]`` pixels of ``order`` come from ``end``,
    the rest from ``start``. Arrays are (H, W) or (C, H, W); a pixel is switched in every channel at once.

    Deletion is ``blend_steps(image, fill, order)``, insertion ``blend_steps(blurred, image, order)``.
    """
    start, end = np.asarray(start), np.asarray(end)
    if start.shape != end.shape or start.ndim not in (2, 3):
        raise ValueError(f"start and end must be one (H, W) or (C, H, W) shape, got {start.shape} and {end.shape}")
    pixels = start.shape[-2] * start.shape[-1]
    order = np.asarray(order, dtype=np.int64)
    if order.shape != (pixels,):
        raise ValueError(f"order must rank all {pixels} pixels, got shape {order.shape}")
    position = np.empty(pixels, dtype=np.int64)
    position[order] = np.arange(pixels)  # the step rank of each pixel
    counts = step_counts(pixels, steps)
    touched = (position[None, :] < counts[:, None]).reshape(steps + 1, *start.shape[-2:])
    if start.ndim == 3:
        touched = touched[:, None]
    return np.where(touched, end[None], start[None])


def curve_auc(curve: np.ndarray, fractions: np.ndarray | None = None) -> float:
    """Area under a curve by the trapezoid rule over the fraction-of-pixels axis (evenly 0..1 unless given)."""
    values = np.asarray(curve, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"a curve needs at least two points, got shape {values.shape}")
    xs = np.linspace(0.0, 1.0, values.size) if fractions is None else np.asarray(fractions, dtype=np.float64)
    return float(np.sum((values[1:] + values[:-1]) * np.diff(xs)) / 2.0)


def monotone_violation(curve: np.ndarray, *, decreasing: bool) -> float:
    """The largest single-step move against the expected direction (0.0 for a monotone curve).

    A deletion curve is "non-increasing within t" when ``monotone_violation(curve, decreasing=True) <= t``: no step
    raises the probability by more than t; an insertion curve likewise with ``decreasing=False``.
    """
    steps = np.diff(np.asarray(curve, dtype=np.float64))
    against = steps if decreasing else -steps
    return float(max(0.0, against.max(initial=0.0)))


# ----------------------------------------------------------------------------------- pointing game on a box


def box_mask(box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """Boolean (height, width) mask of the pixels whose centres lie in ``box`` = (x0, y0, x1, y1), in pixels of a
    picture of ``size`` (width, height), edges included. The box is clipped to the picture; ValueError if it is
    empty, inverted, not finite or misses every pixel centre."""
    if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
        raise ValueError(f"a box is four finite numbers x0, y0, x1, y1, got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"a box needs x0 < x1 and y0 < y1, got {box!r}")
    width, height = size
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    mask = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    if not mask.any():
        raise ValueError(f"the box {box!r} covers no pixel of the {width}x{height} picture")
    return mask
