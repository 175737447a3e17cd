"""One model on one prepared input: the hooked pass, top-5, the target, the CAM and every attention map.

``run_model`` is the unit that the pipeline runs per model and that interventions and checks compare against: one
``capture.capture_pass`` (forward, and a backward only where the CAM method needs gradients), then ``cam.compute_cam``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cbam_viz.analysis import metrics
from cbam_viz.analysis.cam import cam_method_for, class_label, compute_cam, faithfulness_scores
from cbam_viz.analysis.capture import capture_pass
from cbam_viz.analysis.options import AnalysisOptions
from cbam_viz.analysis.results import ModelResult
from cbam_viz.vocab import family_of, last_block


def run_model(
    model_id: str,
    model: nn.Module,
    input_tensor: torch.Tensor,
    *,
    method: str = "gradcam",
    stage: int = 4,
    target: int | None = None,
    faithfulness: bool = False,
    categories: Sequence[str] | None = None,
    gate_steps: Sequence[str] = (),
) -> ModelResult:
    """One model on one prepared (1, 3, H, W) input: the single hooked pass, the CAM, top-5 and per-model metrics.

    ``model_id`` is the result's key (the architecture, or a model card's id); the family comes from the model itself
    and the title from its weights. ``categories`` defaults to ``model.weights_info.categories``; models built
    without weights need it (or get "class i" labels).
    """
    validate_options(method, stage, "whole")
    info = getattr(model, "weights_info", None)
    names = tuple(categories) if categories is not None else (info.categories if info else ())
    cam_method = cam_method_for(method, model)
    captured = capture_pass(
        model,
        input_tensor,
        stage=stage,
        target=target,
        gradients=cam_method.uses_gradients,
        gate_steps=set(gate_steps) if gate_steps else False,
    )
    cam = compute_cam(cam_method, model, input_tensor, captured, stage)
    probs = metrics.softmax(captured.logits)
    index = captured.target_index
    top = np.argsort(-probs, kind="stable")[:5]
    result = ModelResult(
        model_id=model_id,
        family=family_of(model.config.attention),
        title=getattr(info, "title", ""),
        weights=info.description if info else "weights given by the caller",
        top5=[(class_label(names, int(i)), float(probs[i])) for i in top],
        target_index=index,
        target_label=class_label(names, index),
        target_prob=float(probs[index]),
        cam=cam,
        cam_stage=stage,
        channel_attention=captured.channel,
        spatial_attention=captured.spatial,
        metrics={"target_prob": float(probs[index])},
        gate_steps=captured.gate_steps,
    )
    last = last_block(captured.spatial, stage)
    if last is not None:
        result.metrics.update(metrics.cam_spatial_agreement(cam, captured.spatial[last]))
    if faithfulness:
        result.metrics.update(faithfulness_scores(model, input_tensor, cam, index))
    return result


def validate_options(method: str, stage: int, view: str) -> None:
    """One-line ``CbamVizError`` for an unknown CAM method, stage or view (checked before any work starts)."""
    AnalysisOptions(method=method, stage=stage, view=view)
