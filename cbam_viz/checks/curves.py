"""Deletion and insertion curves (Petsiuk et al., 2018, RISE): does removing what the CAM points at hurt most?

``model_curves`` ranks the input pixels by the CAM resampled onto the model input with ``imaging.view.map_to_image``
(the app's map geometry), then blurs away the top pixels step by step (deletion: the target probability should fall
fast, a LOW area is good) or reveals them on a blurred picture (insertion: a HIGH area is good). A seeded random pixel
order is the baseline every map must beat. ``curves_report`` does this per picture for every chosen model.

* Deletion replaces pixels by the picture blurred with a Gaussian of sigma ``BLUR_SIGMA`` = 1/16 of the shorter
  input side (6 px at 96, 14 px at 224); insertion starts from that blurred picture. Not RISE's choices (grey fill
  for deletion, an 11-tap sigma-5 blur at 224 for insertion), measured on 12 held-out demo shapes x 3 models: a
  grey fill leaves a grey silhouette with the object's exact outline, which a shape classifier still reads, so the
  TRUE MASK deleted in grey beat a random order on only 3-5 of 12 pictures (12/12 with the strong blur), and RISE's
  mild blur leaves the shapes recognisable (insertion starts at p ~ 0.95). ``deletion_fill="grey"`` (zero in
  normalised space: the weights' mean colour) stays available for ImageNet-style comparisons.
* 20 steps by default: ``steps + 1`` points at 0 %, 5 %, ..., 100 % of the pixels touched, all perturbed images of
  one curve in one batched forward without gradients. Probabilities are the softmax of the target class; areas are
  trapezoids over the fraction axis (``metrics.curve_auc``). Ties in the CAM (its zero region) are broken in a seeded
  random order, so deleting "the rest" is not deleting the top rows first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from cbam_viz.analysis import metrics
from cbam_viz.analysis.cam import class_label
from cbam_viz.analysis.options import AnalysisOptions
from cbam_viz.analysis.results import json_number
from cbam_viz.checks.common import cam_pass, input_grid, prepared_inputs
from cbam_viz.errors import CbamVizError
from cbam_viz.imaging.view import model_geometry

DELETION_STEPS = 20
BLUR_SIGMA = 1.0 / 16  # Gaussian sigma as a share of the input's shorter side: 6 px at 96, 14 px at 224
DeletionFill = Literal["blur", "grey"]


# ------------------------------------------------------------------------------------------ deletion / insertion


@dataclass
class Curve:
    """The target probability at ``steps + 1`` points and its area over the fraction of pixels touched."""

    probs: np.ndarray
    auc: float

    def to_json(self) -> dict:
        """The probabilities and the area under them (NaN -> null)."""
        return {"probs": [json_number(p) for p in self.probs], "auc": json_number(self.auc)}


@dataclass
class ModelCurves:
    """Deletion and insertion curves of one model on one picture, for its own map and for a random pixel order."""

    arch: str
    target_index: int
    target_label: str
    target_prob: float
    fractions: np.ndarray  # steps + 1 values from 0 to 1
    deletion: Curve
    insertion: Curve
    deletion_random: Curve | None
    insertion_random: Curve | None
    seconds: float = 0.0

    def to_json(self) -> dict:
        """The target and both curves, each beside its random baseline when there is one."""

        def pair(own: Curve, random: Curve | None) -> dict:
            return {"cam": own.to_json(), **({"random": random.to_json()} if random is not None else {})}

        return {
            "target": {"index": self.target_index, "label": self.target_label, "prob": json_number(self.target_prob)},
            "seconds": round(self.seconds, 4),
            "deletion": pair(self.deletion, self.deletion_random),
            "insertion": pair(self.insertion, self.insertion_random),
        }


def blurred(input_tensor: torch.Tensor, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The (3, H, W) input blurred by a Gaussian of ``sigma`` times its shorter side (edges reflected): insertion's
    starting picture and deletion's default fill."""
    pixels = input_tensor.detach().float().cpu().numpy()[0]
    sigma = float(sigma) * min(pixels.shape[-2:])
    return gaussian_filter(pixels, sigma=(0, sigma, sigma), mode="reflect").astype(np.float32)


def class_probabilities(model: nn.Module, batch: np.ndarray, target: int, batch_size: int | None = None) -> np.ndarray:
    """Softmax probability of ``target`` for each image of a (N, 3, H, W) batch: forwards without gradients, no
    hooks of ours (a capture open on another thread ignores these forwards)."""
    device = next(model.parameters()).device
    size = batch.shape[0] if batch_size is None else max(1, int(batch_size))
    probs = []
    with torch.inference_mode(False), torch.no_grad():
        for start in range(0, batch.shape[0], size):
            chunk = torch.from_numpy(np.ascontiguousarray(batch[start : start + size])).to(device)
            probs.append(torch.softmax(model(chunk).float(), dim=1)[:, target].cpu().numpy())
    return np.concatenate(probs).astype(np.float64)


def perturbation_curve(
    probability: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    end: np.ndarray,
    order: np.ndarray,
    steps: int = DELETION_STEPS,
) -> Curve:
    """One curve: ``probability`` of the ``steps + 1`` images that switch pixels from ``start`` to ``end`` in
    ``order`` (``metrics.blend_steps``), evaluated as ONE batch, and its area."""
    probs = np.asarray(probability(metrics.blend_steps(start, end, order, steps)), dtype=np.float64)
    if probs.shape != (steps + 1,):
        raise ValueError(f"the probability function returned shape {probs.shape}, expected ({steps + 1},)")
    fractions = metrics.step_counts(start.shape[-2] * start.shape[-1], steps) / (start.shape[-2] * start.shape[-1])
    return Curve(probs, metrics.curve_auc(probs, fractions))


def model_curves(
    model: nn.Module,
    input_tensor: torch.Tensor,
    saliency: np.ndarray,
    target: int,
    *,
    arch: str = "",
    steps: int = DELETION_STEPS,
    seed: int = 0,
    deletion_fill: DeletionFill = "blur",
    blur: float = BLUR_SIGMA,
    baseline: bool = True,
    batch_size: int | None = None,
    categories: Sequence[str] | None = None,
) -> ModelCurves:
    """Deletion and insertion curves for pixels ranked by ``saliency`` (a native CAM, or any map: resampled onto
    the input by ``map_to_image``), plus the seeded random-order baseline when ``baseline``."""
    if not 1 <= int(steps) <= 1000:
        raise CbamVizError(f"steps must be between 1 and 1000, got {steps!r}")
    if deletion_fill not in ("blur", "grey"):
        raise CbamVizError(f"deletion fill must be 'blur' or 'grey', got {deletion_fill!r}")
    if not 0 < float(blur) <= 1:
        raise CbamVizError(f"blur must be a share of the image side in (0, 1], got {blur!r}")
    started = time.perf_counter()
    info = getattr(model, "weights_info", None)
    names = tuple(categories) if categories is not None else (info.categories if info else ())
    image = input_tensor.detach().float().cpu().numpy()[0]
    height, width = image.shape[-2:]
    ranking = metrics.rank_pixels(input_grid(saliency, (width, height), model_geometry(model)), seed)
    random_order = metrics.random_ranking(height * width, seed + 1)
    soft = blurred(input_tensor, blur)
    fill = np.zeros_like(image) if deletion_fill == "grey" else soft

    def probability(batch: np.ndarray) -> np.ndarray:
        return class_probabilities(model, batch, target, batch_size)

    deletion = perturbation_curve(probability, image, fill, ranking, steps)
    insertion = perturbation_curve(probability, soft, image, ranking, steps)
    deletion_random = perturbation_curve(probability, image, fill, random_order, steps) if baseline else None
    insertion_random = perturbation_curve(probability, soft, image, random_order, steps) if baseline else None
    fractions = metrics.step_counts(height * width, steps) / (height * width)
    return ModelCurves(
        arch=arch,
        target_index=int(target),
        target_label=class_label(names, int(target)),
        target_prob=float(deletion.probs[0]),
        fractions=fractions,
        deletion=deletion,
        insertion=insertion,
        deletion_random=deletion_random,
        insertion_random=insertion_random,
        seconds=time.perf_counter() - started,
    )


@dataclass
class CurvesReport:
    """``model_curves`` for every requested model on one picture."""

    steps: int
    seed: int
    deletion_fill: str
    blur: float
    weights_set: str
    models: dict[str, ModelCurves]

    def to_json(self) -> dict:
        """The settings, the fractions of pixels touched and every model's curves (docs/json.md)."""
        fractions = next(iter(self.models.values())).fractions
        return {
            "steps": self.steps,
            "fractions": [float(f) for f in fractions],
            "seed": self.seed,
            "deletion_fill": self.deletion_fill,
            "blur": self.blur,
            "weights": self.weights_set,
            "models": {arch: result.to_json() for arch, result in self.models.items()},
        }


def curves_report(
    image: PIL.Image.Image | str | Path | bytes,
    options: AnalysisOptions | None = None,
    *,
    steps: int = DELETION_STEPS,
    seed: int = 0,
    deletion_fill: DeletionFill = "blur",
    blur: float = BLUR_SIGMA,
    baseline: bool = True,
    device: str | torch.device | None = None,
    weights_dir: Path | None = None,
    **fields: Any,
) -> CurvesReport:
    """Deletion and insertion curves of every model of ``options``, each ranked by its own CAM of the analysis."""
    options, model_set, target, inputs = prepared_inputs(image, options, device, weights_dir, fields)
    results = {}
    for arch, model in model_set.models.items():
        trained = cam_pass(model, inputs[arch], options.method, options.stage, target)
        results[arch] = model_curves(
            model,
            inputs[arch],
            trained.cam,
            trained.target_index,
            arch=arch,
            steps=steps,
            seed=seed,
            deletion_fill=deletion_fill,
            blur=blur,
            baseline=baseline,
        )
    return CurvesReport(int(steps), seed, deletion_fill, float(blur), model_set.weights_set, results)
