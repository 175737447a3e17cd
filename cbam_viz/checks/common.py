"""Can we trust these maps? Sanity checks for the CAMs and attention maps (issue #15).

Three checks, each usable per model (for scripts and tests) or per picture (for the app, the API and the CLI):

* **Model-parameter randomisation** (Adebayo et al., 2018, "Sanity checks for saliency maps"). A map that explains
  the model must change when the model's weights are destroyed. ``model_sanity`` re-initialises the weights of a
  COPY of the model from the head down, ``CASCADE_ORDER`` = fc; + layer4; + layer3; + layer2; + layer1; + stem
  (``cascading``), and optionally one layer at a time from the trained weights (``independent``), recomputing the
  CAM of the same method, stage and target class after each step, and compares it with the trained model's CAM,
  over ``draws`` randomised networks (1 on the page, 5 in the CLI and the benchmark): mean and spread per step.
  **Random logit**: the CAMs of ``other_classes`` random other classes (never the target, drawn per picture)
  next to the target's, with their mean and spread.
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
  the layer, under ``torch.random.fork_rng`` seeded with ``randomisation.draw_seed(seed, draw, layer)`` (numpy's
  ``SeedSequence((seed, draw, position in CASCADE_ORDER))``): each draw is another network, the same for every
  picture, and the same layer gets the same random weights in both modes. Random other classes come from
  ``numpy.random.default_rng((seed, content key of the picture's pixels))``, so each picture draws its own.
  BatchNorm's ``reset_parameters`` also resets its running statistics (mean 0, variance 1) and affine (1, 0): the
  trained statistics describe the trained convolutions' outputs and mean nothing for random ones. The seed is
  repeatable unless another thread draws from torch's global generator at the same moment (the app draws none
  outside ``fork_rng`` sections).
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
random_logit=True, seed=0, draws=1, other_classes=1, picture=None, categories=None) -> ModelSanity`` and, per
picture, ``sanity_report(image, options, **same switches) -> SanityReport``; ``SanityReport.to_json()``::

    {"method": "gradcam", "stage": 4, "seed": 0, "batchnorm": "reset", "grids": {...}, "draws": 5,
     "other_classes": 5, "seeds": "...", "models": {"resnet50": {
        "target": {"index": 3, "label": "pentagon", "prob": 0.98}, "seconds": 0.2, "draws": 5,
        "cascading": [{"step": "fc", "randomised": ["fc"], "draws": 5, "spearman": 0.31, "spearman_abs": 0.2,
                       "ssim": 0.4, "target_prob": 0.1, "cam_empty": false, "empty_share": 0.2,
                       "spread": {"spearman": {"mean", "sd", "min", "max", "finite", "values"}, ...}}, ... "stem"],
        "independent": [... same, "randomised": ["layer3"] ...],
        "random_logit": {"index": 7, "label": "ring", "prob": 0.0, "count": 5, "spearman": ..., "spearman_abs": ...,
                         "ssim": ..., "classes": [{"index", "label", "prob", "spearman", ...}], "spread": {...},
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import nn

from cbam_viz.analysis import metrics
from cbam_viz.analysis.cam import cam_method_for, compute_cam, resolve_target
from cbam_viz.analysis.capture import CapturedPass, capture_pass, model_lock, stage_layer
from cbam_viz.analysis.models import get_models
from cbam_viz.analysis.options import AnalysisOptions
from cbam_viz.imaging.decode import decode_image
from cbam_viz.imaging.view import PADDED, CellGeometry, ModelView, map_to_image, prepare_input

_RNG_LOCK = threading.Lock()  # our own seeded sections never interleave


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _label(categories: Sequence[str], index: int) -> str:
    return categories[index] if index < len(categories) else f"class {index}"


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


def input_grid(native: np.ndarray, input_size: tuple[int, int], geometry: CellGeometry = PADDED) -> np.ndarray:
    """A native map on the model input's own pixels (width, height), through ``map_to_image`` (the app's geometry,
    ``geometry`` the model's layout: ``imaging.view.model_geometry``)."""
    view = ModelView("whole", tuple(input_size), (0.0, 0.0, 1.0, 1.0), "the model input", geometry)
    return map_to_image(native, view, tuple(input_size))


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
