"""Can we trust these maps? Sanity checks for the CAMs and attention maps (issue #15).

Three checks, each usable per model (for scripts and tests) or per picture (for the app, the API and the CLI):

* **Model-parameter randomisation** (Adebayo et al., 2018, "Sanity checks for saliency maps"). A map that explains
  the model must change when the model's weights are destroyed. ``model_sanity`` re-initialises the weights of a
  COPY of the model from the head down, ``CASCADE_ORDER`` = fc; + layer4; + layer3; + layer2; + layer1; + stem
  (``cascading``), and optionally one layer at a time from the trained weights (``independent``), recomputing the
  CAM of the same method, stage and target class after each step, and compares it with the trained model's CAM.
  **Random logit**: the CAM of a random other class (seeded, never the target) next to the target's.
* **Deletion and insertion** (Petsiuk et al., 2018, RISE). ``model_curves`` ranks the input pixels by the CAM
  resampled onto the model input with ``imaging.map_to_image`` (the app's map geometry), then blurs away the top
  pixels step by step (deletion: the target probability should fall fast, a LOW area is good) or reveals them on a
  blurred picture (insertion: a HIGH area is good). A seeded random pixel order is the baseline every map must beat.
* **Pointing game on a box or a mask**. ``box_game`` / ``mask_game`` ask of a finished ``Analysis`` whether each
  model's CAM peak (on the picture, via ``map_to_image``) falls inside a box drawn on the displayed picture, or
  inside an object mask, and which share of the CAM's mass lies there; the same for every CBAM spatial map.

Decisions, in one place:

* The served model is never touched. ``model_sanity`` deep-copies it once (under ``capture.model_lock``, so no
  capture's hooks are open while it is copied), randomises that copy in place step by step, restores the copy from
  the trained ``state_dict`` between independent steps, and drops it at the end: one extra copy per model at a time.
* Randomisation is each layer's own default init: ``reset_parameters()`` of every Conv2d, Linear and BatchNorm2d in
  the layer, under ``torch.random.fork_rng`` seeded with ``seed * 1000 + position in CASCADE_ORDER``; the same layer
  gets the same random weights in both modes. BatchNorm's ``reset_parameters`` also resets its running statistics
  (mean 0, variance 1) and affine (1, 0): the trained statistics describe the trained convolutions' outputs and mean
  nothing for random ones. The seed is repeatable unless another thread draws from torch's global generator at the
  same moment (the app draws none outside ``fork_rng`` sections).
* Comparisons: ``spearman`` (the CAM the app shows, ReLU'd) and ``spearman_abs`` (absolute value of the signed,
  pre-ReLU CAM, which still ranks cells where the ReLU'd map is all zero; NaN for Score-CAM, whose signed map would
  cost a second round of forwards) are on the CAM's NATIVE grid: each cell is one number the model computed, and
  interpolated pixels would only repeat them. ``ssim`` is on the MODEL INPUT grid (``map_to_image`` onto the input
  tensor's size): SSIM's 7x7 window does not fit a 6x6 stage-4 grid. A map that became flat (all zero) has no
  ranking: its correlations are NaN (``null`` in JSON) and ``cam_empty`` is true; count it as "changed".
* Deletion replaces pixels by the picture blurred with a Gaussian of sigma ``BLUR_SIGMA`` = 1/16 of the shorter
  input side (6 px at 96, 14 px at 224); insertion starts from that blurred picture. Not RISE's choices (grey fill
  for deletion, an 11-tap sigma-5 blur at 224 for insertion), measured on 12 held-out demo shapes x 3 models: a
  grey fill leaves a grey silhouette with the object's exact outline, which a shape classifier still reads, so the
  TRUE MASK deleted in grey beat a random order on only 3-5 of 12 pictures (12/12 with the strong blur), and RISE's
  mild blur leaves the shapes recognisable (insertion starts at p ~ 0.95). ``deletion_fill="grey"`` (zero in
  normalised space: the weights' mean colour) stays available for ImageNet-style comparisons. 20 steps by
  default: ``steps + 1`` points at 0 %, 5 %, ..., 100 % of the pixels touched, all perturbed images of one curve in
  one batched forward without gradients. Probabilities are the softmax of the target class; areas are trapezoids
  over the fraction axis (``metrics.curve_auc``). Ties in the CAM (its zero region) are broken in a seeded random
  order, so deleting "the rest" is not deleting the top rows first.
* Boxes are (x0, y0, x1, y1) in pixels of the displayed picture (``Analysis.image``), edges included; a pixel counts
  as inside when its centre does. A mask has the displayed picture's size (or the original's: it is resampled).

Public API (results carry numpy maps; ``to_json()`` gives plain numbers, NaN as ``null``):

``model_sanity(arch, model, input_tensor, *, method, stage, target, cascading=True, independent=False,
random_logit=True, seed=0, categories=None) -> ModelSanity`` and, per picture, ``sanity_report(image, options,
**same switches) -> SanityReport``; ``SanityReport.to_json()``::

    {"method": "gradcam", "stage": 4, "seed": 0, "batchnorm": "reset", "grids": {...}, "models": {"resnet50": {
        "target": {"index": 3, "label": "pentagon", "prob": 0.98}, "seconds": 0.2,
        "cascading": [{"step": "fc", "randomised": ["fc"], "spearman": 0.31, "spearman_abs": 0.2, "ssim": 0.4,
                       "target_prob": 0.1, "cam_empty": false}, ... "stem"],
        "independent": [... same, "randomised": ["layer3"] ...],
        "random_logit": {"index": 7, "label": "ring", "prob": 0.0, "spearman": ..., "spearman_abs": ..., "ssim": ...,
                         "class_dependent": true, "cam_empty": false}}}}

``SanityReport.maps()`` -> ``{"resnet50.cam": ..., "resnet50.cascading.layer4": ..., "resnet50.random_logit": ...}``,
native-grid float32 arrays (for ``--maps`` .npy files).

``model_curves(model, input_tensor, saliency, target, *, steps=20, seed=0, deletion_fill="blur", blur=BLUR_SIGMA,
baseline=True, batch_size=None) -> ModelCurves`` (``saliency`` on any grid: resampled onto the input by
``map_to_image``) and, per picture, ``curves_report(image, options, *, steps, seed, deletion_fill, blur) ->
CurvesReport``; its ``to_json()``::

    {"steps": 20, "fractions": [0.0, 0.05, ... 1.0], "deletion_fill": "blur", "blur": 0.0625, "seed": 0,
     "weights": "demo", "models": {"resnet50": {
        "target": {...}, "deletion": {"cam": {"probs": [21 numbers], "auc": 0.12}, "random": {"probs": [...], "auc"}},
        "insertion": {"cam": {...}, "random": {...}}}}}

``box_game(analysis, box) -> PointingReport`` and ``mask_game(analysis, mask) -> PointingReport``; its ``to_json()``::

    {"region": {"kind": "box", "box": [x0, y0, x1, y1], "area_share": 0.2}, "models": {"cbam_resnet50": {
        "cam": {"hit": true, "energy": 0.71},
        "spatial": {"1": {"block": "layer1.2", "hit": false, "energy": 0.3}, ... "4": {...}},
        "blocks": {"layer1.0": {"hit": ..., "energy": ...}, ...}}}}

``area_share`` is the region's share of the pixels the model saw: the energy a map blind to the region would get.
Every error a user can cause (a bad box, a mask of another size, unknown options) is a one-line ``CbamVizError``.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from cbam_viz import metrics
from cbam_viz.analysis import Analysis, cam_method_for, compute_cam, get_models, resolve_target
from cbam_viz.capture import CapturedPass, capture_pass, model_lock, stage_layer
from cbam_viz.errors import CbamVizError
from cbam_viz.imaging import ModelView, decode_image, map_to_image, prepare_input
from cbam_viz.options import AnalysisOptions
from cbam_viz.vocab import CAM_METHODS, STAGES, last_block

STEM = "stem"
CASCADE_ORDER: tuple[str, ...] = ("fc", *(f"layer{stage}" for stage in reversed(STAGES)), STEM)
DELETION_STEPS = 20
BLUR_SIGMA = 1.0 / 16  # Gaussian sigma as a share of the input's shorter side: 6 px at 96, 14 px at 224
DeletionFill = Literal["blur", "grey"]

_RNG_LOCK = threading.Lock()  # our own seeded sections never interleave


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _label(categories: Sequence[str], index: int) -> str:
    return categories[index] if index < len(categories) else f"class {index}"


# ------------------------------------------------------------------------------------------------ randomisation


def layer_modules(model: nn.Module, name: str) -> list[nn.Module]:
    """The modules one randomisation step re-initialises: ``fc``, ``layer1``..``layer4`` or ``stem`` (conv1, bn1)."""
    if name == STEM:
        return [model.conv1, model.bn1]
    if name not in CASCADE_ORDER:
        raise ValueError(f"unknown layer {name!r}; choose one of {', '.join(CASCADE_ORDER)}")
    return [getattr(model, name)]


def randomise_layer_(model: nn.Module, name: str, seed: int = 0) -> None:
    """Re-initialise ``name`` of ``model`` IN PLACE with each module's own ``reset_parameters()``, repeatably.

    Only ever called on a copy. BatchNorm layers get their default init too, running statistics included.
    """
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with _RNG_LOCK, torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed * 1000 + CASCADE_ORDER.index(name))
        for root in layer_modules(model, name):
            for module in root.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` to randomise, taken while no capture is open on it (its lock), without the cached
    grad-cam objects (the copy gets its own: Score-CAM's runs forwards of the model it was made for)."""
    memo: dict[int, Any] = {}
    cached = model.__dict__.get("_cbam_viz_cam_methods")
    if cached is not None:
        memo[id(cached)] = {}
    with model_lock(model):
        duplicate = copy.deepcopy(model, memo)
    return duplicate.eval().requires_grad_(False)


@dataclass
class CamComparison:
    """One CAM of a changed model (or of another class) against the trained model's CAM of the target."""

    step: str  # "fc", "layer4", ..., "stem"; for the random logit, the other class's label
    randomised: tuple[str, ...]  # the layers random at this step (empty for the random logit)
    cam: np.ndarray  # native grid, ReLU'd, like ModelResult.cam
    spearman: float
    spearman_abs: float
    ssim: float
    target_prob: float  # the probability of the explained class under the changed model

    @property
    def cam_empty(self) -> bool:
        return not bool(np.any(self.cam > 0))

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "randomised": list(self.randomised),
            "spearman": _number(self.spearman),
            "spearman_abs": _number(self.spearman_abs),
            "ssim": _number(self.ssim),
            "target_prob": _number(self.target_prob),
            "cam_empty": self.cam_empty,
        }


@dataclass
class RandomLogit:
    """The CAM of a random other class next to the target's (same model, same picture)."""

    index: int
    label: str
    comparison: CamComparison  # its target_prob is that other class's probability
    class_dependent: bool  # False for EigenCAM: the same map for every class, so a correlation of 1 is expected

    def to_json(self) -> dict:
        part = self.comparison.to_json()
        return {
            "index": self.index,
            "label": self.label,
            "prob": part["target_prob"],
            "spearman": part["spearman"],
            "spearman_abs": part["spearman_abs"],
            "ssim": part["ssim"],
            "class_dependent": self.class_dependent,
            "cam_empty": part["cam_empty"],
        }


@dataclass
class ModelSanity:
    """Randomisation and random-logit checks of one model on one picture."""

    arch: str
    method: str
    stage: int
    seed: int
    target_index: int
    target_label: str
    target_prob: float
    cam: np.ndarray  # the trained model's CAM (native grid)
    cascading: list[CamComparison] = field(default_factory=list)
    independent: list[CamComparison] = field(default_factory=list)
    random_logit: RandomLogit | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        document: dict[str, Any] = {
            "target": {"index": self.target_index, "label": self.target_label, "prob": _number(self.target_prob)},
            "seconds": round(self.seconds, 4),
            "cascading": [step.to_json() for step in self.cascading],
            "independent": [step.to_json() for step in self.independent],
        }
        if self.random_logit is not None:
            document["random_logit"] = self.random_logit.to_json()
        return document

    def maps(self) -> dict[str, np.ndarray]:
        """Native-grid maps keyed ``cam``, ``cascading.<step>``, ``independent.<layer>``, ``random_logit``."""
        found = {"cam": self.cam}
        found.update({f"cascading.{step.step}": step.cam for step in self.cascading})
        found.update({f"independent.{step.step}": step.cam for step in self.independent})
        if self.random_logit is not None:
            found["random_logit"] = self.random_logit.comparison.cam
        return found


@dataclass
class _CamPass:
    cam: np.ndarray  # ReLU'd, as the app shows it
    signed: np.ndarray | None  # before the ReLU; None where it would cost a second computation (Score-CAM)
    probs: np.ndarray
    target_index: int


def _cam_pass(model: nn.Module, input_tensor: torch.Tensor, method: str, stage: int, target: int | None) -> _CamPass:
    """The analysis's own CAM (``capture_pass`` + ``compute_cam``) and, where cheap, the same map before its ReLU."""
    cam_method = cam_method_for(method, model)
    captured = capture_pass(model, input_tensor, stage=stage, target=target, gradients=cam_method.uses_gradients)
    cam = compute_cam(cam_method, model, input_tensor, captured, stage)
    signed = None if method == "scorecam" else _signed_cam(cam_method, model, input_tensor, captured, stage)
    return _CamPass(cam, signed, metrics.softmax(captured.logits), captured.target_index)


def _signed_cam(cam_method: Any, model: nn.Module, input_tensor: torch.Tensor, captured: CapturedPass, stage: int):
    """``compute_cam`` without the final ReLU (grad-cam's ``get_cam_image`` is the signed weighted sum)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    device = next(model.parameters()).device
    targets = [ClassifierOutputTarget(captured.target_index)]
    with torch.inference_mode(False), torch.no_grad():
        signed = cam_method.get_cam_image(
            input_tensor.to(device), stage_layer(model, stage), targets, captured.activations, captured.gradients, False
        )
    return np.nan_to_num(np.asarray(signed, dtype=np.float32)[0], nan=0.0, posinf=0.0, neginf=0.0)


def input_grid(native: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """A native map on the model input's own pixels (width, height), through ``map_to_image`` (the app's geometry)."""
    view = ModelView("whole", tuple(input_size), (0.0, 0.0, 1.0, 1.0), "the model input")
    return map_to_image(native, view, tuple(input_size))


def _compare(
    reference: _CamPass, changed: _CamPass, input_size: tuple[int, int], step: str, randomised: tuple[str, ...]
) -> CamComparison:
    signed_pair = reference.signed is not None and changed.signed is not None
    return CamComparison(
        step=step,
        randomised=randomised,
        cam=changed.cam,
        spearman=metrics.spearman(reference.cam, changed.cam),
        spearman_abs=metrics.spearman(np.abs(reference.signed), np.abs(changed.signed)) if signed_pair else math.nan,
        ssim=metrics.ssim(input_grid(reference.cam, input_size), input_grid(changed.cam, input_size)),
        target_prob=float(changed.probs[reference.target_index]),
    )


def random_other_class(target: int, num_classes: int, seed: int = 0) -> int:
    """A seeded random class index that is never ``target``."""
    if num_classes < 2:
        raise CbamVizError("a random-logit check needs at least two classes")
    others = [index for index in range(num_classes) if index != target]
    return int(others[int(np.random.default_rng(seed).integers(len(others)))])


def model_sanity(
    arch: str,
    model: nn.Module,
    input_tensor: torch.Tensor,
    *,
    method: str = "gradcam",
    stage: int = 4,
    target: int | None = None,
    cascading: bool = True,
    independent: bool = False,
    random_logit: bool = True,
    seed: int = 0,
    categories: Sequence[str] | None = None,
) -> ModelSanity:
    """Randomisation (cascading and/or independent) and random-logit checks of ``model`` on one prepared input.

    ``target`` None explains the trained model's top-1, and every randomised model explains that same class.
    """
    AnalysisOptions(method=method, stage=stage)  # one-line errors for an unknown method or stage
    started = time.perf_counter()
    info = getattr(model, "weights_info", None)
    names = tuple(categories) if categories is not None else (info.categories if info else ())
    input_size = (int(input_tensor.shape[-1]), int(input_tensor.shape[-2]))
    trained = _cam_pass(model, input_tensor, method, stage, target)
    index = trained.target_index
    report = ModelSanity(
        arch, method, stage, seed, index, _label(names, index), float(trained.probs[index]), trained.cam
    )
    if random_logit:
        other = random_other_class(index, trained.probs.size, seed)
        other_pass = _cam_pass(model, input_tensor, method, stage, other)
        comparison = _compare(trained, other_pass, input_size, _label(names, other), ())
        comparison.target_prob = float(trained.probs[other])
        class_dependent = CAM_METHODS[method].class_dependent
        report.random_logit = RandomLogit(other, _label(names, other), comparison, class_dependent)
    if cascading or independent:
        duplicate = private_copy(model)
        try:
            if cascading:
                for position, name in enumerate(CASCADE_ORDER):
                    randomise_layer_(duplicate, name, seed)
                    changed = _cam_pass(duplicate, input_tensor, method, stage, index)
                    report.cascading.append(_compare(trained, changed, input_size, name, CASCADE_ORDER[: position + 1]))
            if independent:
                original = model.state_dict()
                for name in CASCADE_ORDER:
                    duplicate.load_state_dict(original)
                    randomise_layer_(duplicate, name, seed)
                    changed = _cam_pass(duplicate, input_tensor, method, stage, index)
                    report.independent.append(_compare(trained, changed, input_size, name, (name,)))
        finally:
            del duplicate
    report.seconds = time.perf_counter() - started
    return report


# ------------------------------------------------------------------------------------------ deletion / insertion


@dataclass
class Curve:
    """The target probability at ``steps + 1`` points and its area over the fraction of pixels touched."""

    probs: np.ndarray
    auc: float

    def to_json(self) -> dict:
        return {"probs": [_number(p) for p in self.probs], "auc": _number(self.auc)}


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
        def pair(own: Curve, random: Curve | None) -> dict:
            return {"cam": own.to_json(), **({"random": random.to_json()} if random is not None else {})}

        return {
            "target": {"index": self.target_index, "label": self.target_label, "prob": _number(self.target_prob)},
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
    ranking = metrics.rank_pixels(input_grid(saliency, (width, height)), seed)
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
        target_label=_label(names, int(target)),
        target_prob=float(deletion.probs[0]),
        fractions=fractions,
        deletion=deletion,
        insertion=insertion,
        deletion_random=deletion_random,
        insertion_random=insertion_random,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------------------ per picture: reports


@dataclass
class SanityReport:
    """``model_sanity`` for every requested model on one picture."""

    method: str
    stage: int
    seed: int
    weights_set: str
    models: dict[str, ModelSanity]

    def to_json(self) -> dict:
        return {
            "method": self.method,
            "stage": self.stage,
            "seed": self.seed,
            "weights": self.weights_set,
            "batchnorm": "reset",  # BatchNorm layers get their default init, running statistics included
            "cascade_order": list(CASCADE_ORDER),
            "grids": {"spearman": "native", "ssim": "input"},
            "models": {arch: result.to_json() for arch, result in self.models.items()},
        }

    def maps(self) -> dict[str, np.ndarray]:
        """Every CAM of the report, keyed ``<arch>.<map>`` (see ``ModelSanity.maps``), native-grid float32."""
        return {f"{arch}.{key}": grid for arch, result in self.models.items() for key, grid in result.maps().items()}


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


def _prepared(
    image: PIL.Image.Image | str | Path | bytes,
    options: AnalysisOptions | None,
    device: str | torch.device | None,
    weights_dir: Path | None,
    fields: dict[str, Any],
) -> tuple[AnalysisOptions, Any, int | None, dict[str, torch.Tensor]]:
    """Options, the cached models, the target index and each model's input, exactly as ``analysis.analyze``."""
    if options is None:
        options = AnalysisOptions(**fields)
    elif fields:
        raise TypeError("pass either options or keyword fields, not both")
    picture = decode_image(image)
    model_set = get_models(options.models, options.weights, device, weights_dir=weights_dir)
    target = resolve_target(options.target, model_set.categories)
    inputs: dict[Any, torch.Tensor] = {}
    per_model: dict[str, torch.Tensor] = {}
    for arch, model in model_set.models.items():
        preprocess = model.weights_info.preprocess
        if preprocess not in inputs:
            inputs[preprocess] = prepare_input(picture, preprocess, options.view)[0]
        per_model[arch] = inputs[preprocess]
    return options, model_set, target, per_model


def sanity_report(
    image: PIL.Image.Image | str | Path | bytes,
    options: AnalysisOptions | None = None,
    *,
    cascading: bool = True,
    independent: bool = False,
    random_logit: bool = True,
    seed: int = 0,
    device: str | torch.device | None = None,
    weights_dir: Path | None = None,
    **fields: Any,
) -> SanityReport:
    """Randomisation and random-logit checks of every model of ``options`` (or keyword fields, as ``analyze``)."""
    options, model_set, target, inputs = _prepared(image, options, device, weights_dir, fields)
    results = {
        arch: model_sanity(
            arch,
            model,
            inputs[arch],
            method=options.method,
            stage=options.stage,
            target=target,
            cascading=cascading,
            independent=independent,
            random_logit=random_logit,
            seed=seed,
        )
        for arch, model in model_set.models.items()
    }
    return SanityReport(options.method, options.stage, seed, model_set.weights_set, results)


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
    options, model_set, target, inputs = _prepared(image, options, device, weights_dir, fields)
    results = {}
    for arch, model in model_set.models.items():
        trained = _cam_pass(model, inputs[arch], options.method, options.stage, target)
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


# ----------------------------------------------------------------------------------------- pointing on a region


@dataclass
class PointingReport:
    """Per model: does each map's peak fall in the region, and which share of its mass lies there."""

    region: dict[str, Any]  # {"kind": "box", "box": [...]} or {"kind": "mask"}, plus "area_share"
    models: dict[str, dict[str, Any]]

    def to_json(self) -> dict:
        return {"region": self.region, "models": self.models}


def _score(map_on_picture: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    return {
        "hit": metrics.pointing_hit(map_on_picture, mask),
        "energy": _number(metrics.energy_inside(map_on_picture, mask)),
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
    return PointingReport({**region, "area_share": _number(area)}, models)


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
