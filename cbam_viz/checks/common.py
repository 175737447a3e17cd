"""What the checks share: a CAM pass that also keeps the map before its ReLU, private model copies to randomise,
the model-input grid, and the inputs prepared exactly as ``pipeline.analyze`` prepares them.

The served model is never touched: ``private_copy`` deep-copies it under ``capture.model_lock`` (so no capture's
hooks are open while it is copied), without its cached grad-cam objects. ``RNG_LOCK`` keeps the checks' own seeded
sections from interleaving. Every error a user can cause (a bad box, a mask of another size, unknown options) is a
one-line ``CbamVizError``; results carry numpy maps and their ``to_json()`` gives plain numbers, NaN as ``null``
(the documents' shape is in docs/json.md).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import nn

from cbam_viz.analysis import metrics
from cbam_viz.analysis.cam import cam_method_for, compute_cam, resolve_target
from cbam_viz.analysis.capture import capture_pass, model_lock
from cbam_viz.analysis.models import get_models
from cbam_viz.analysis.options import AnalysisOptions
from cbam_viz.imaging.decode import decode_image
from cbam_viz.imaging.view import PADDED, CellGeometry, ModelView, map_to_image, prepare_input

RNG_LOCK = threading.Lock()  # the checks' own seeded sections never interleave


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
class CamPass:
    """One model's CAM on one input for one class, as the checks compare them."""

    cam: np.ndarray  # ReLU'd, as the app shows it
    signed: np.ndarray | None  # before the ReLU; None where it would cost a second computation (Score-CAM)
    probs: np.ndarray
    target_index: int


def cam_pass(model: nn.Module, input_tensor: torch.Tensor, method: str, stage: int, target: int | None) -> CamPass:
    """The analysis's own CAM (``capture_pass`` + ``compute_cam``) and, where cheap, the same map before its ReLU."""
    cam_method = cam_method_for(method, model)
    captured = capture_pass(model, input_tensor, stage=stage, target=target, gradients=cam_method.uses_gradients)
    cam = compute_cam(cam_method, model, input_tensor, captured, stage)
    signed = None if method == "scorecam" else compute_cam(cam_method, model, input_tensor, captured, stage, relu=False)
    return CamPass(cam, signed, metrics.softmax(captured.logits), captured.target_index)


def input_grid(native: np.ndarray, input_size: tuple[int, int], geometry: CellGeometry = PADDED) -> np.ndarray:
    """A native map on the model input's own pixels (width, height), through ``map_to_image`` (the app's geometry,
    ``geometry`` the model's layout: ``imaging.view.model_geometry``)."""
    view = ModelView("whole", tuple(input_size), (0.0, 0.0, 1.0, 1.0), "the model input", geometry)
    return map_to_image(native, view, tuple(input_size))


def prepared_inputs(
    image: PIL.Image.Image | str | Path | bytes,
    options: AnalysisOptions | None,
    device: str | torch.device | None,
    weights_dir: Path | None,
    fields: dict[str, Any],
) -> tuple[AnalysisOptions, Any, int | None, dict[str, torch.Tensor]]:
    """Options, the cached models, the target index and each model's input, exactly as ``pipeline.analyze``."""
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
