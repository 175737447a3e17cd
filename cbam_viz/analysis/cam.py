"""CAM methods: grad-cam's math on the tensors our own pass captured, target classes, and ROAD faithfulness.

CAM methods come from grad-cam: each method's own math (``get_cam_image``) runs on the activations and gradients that
``capture.capture_pass`` collected, so grad-cam's hook machinery never touches the models. CAMs stay at the CAM layer's
native resolution and are not min-max normalised (only ReLU'd), so models can be compared on one scale; renderers
normalise for display and ``imaging.view.map_to_image`` aligns any map with the image in one resampling.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Sequence

import numpy as np
import pytorch_grad_cam
import pytorch_grad_cam.score_cam
import torch
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from torch import nn

from cbam_viz import vocab
from cbam_viz.analysis.capture import CapturedPass, stage_layer
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text

GRADCAMPP_EPS = 1e-6  # against the scale-free denominator 2 + sum(A) g, i.e. relative to the 2 g^2 term


class GradCAMPlusPlusRelative(pytorch_grad_cam.GradCAMPlusPlus):
    """Grad-CAM++ (Chattopadhay et al., 2018, eq. 19) with an epsilon relative to the gradients' own scale.

    alpha = g^2 / (2 g^2 + sum(A) g^3). grad-cam adds an ABSOLUTE 1e-6 to that denominator, which is not small next
    to g^2 when gradients are ~1e-3 (the demo models'): their maps moved by up to 14 % between eps 1e-6 and 1e-7.
    Dividing through by g^2 leaves the closed form 1 / (2 + sum(A) g), free of the gradients' scale; the epsilon
    only skips pixels where that denominator is within ``GRADCAMPP_EPS`` of zero (possible only when sum(A) < 0).
    """

    def get_cam_weights(self, input_tensor, target_layers, target_category, activations, grads):  # noqa: ANN001
        axes = tuple(range(2, activations.ndim))
        denominator = 2 + activations.sum(axis=axes, keepdims=True) * grads
        usable = (grads != 0) & (np.abs(denominator) > GRADCAMPP_EPS)
        alpha = np.divide(1.0, denominator, out=np.zeros_like(denominator), where=usable)
        return (np.maximum(grads, 0) * alpha).sum(axis=axes)


GRADCAM_CLASSES: dict[str, type[BaseCAM]] = {  # method name -> grad-cam class (vocab.CAM_METHODS names each one)
    name: getattr(pytorch_grad_cam, method.grad_cam_class) for name, method in vocab.CAM_METHODS.items()
}
GRADCAM_CLASSES["gradcam++"] = GradCAMPlusPlusRelative  # grad-cam's math with a scale-relative epsilon
ROAD_PERCENTILES = (20, 40, 60, 80)  # four removal levels: ROAD's trend at a quarter of grad-cam's default cost
SCORECAM_BATCH = 32


_CAM_OBJECTS_LOCK = threading.Lock()


def compute_cam(
    cam_method: BaseCAM,
    model: nn.Module,
    input_tensor: torch.Tensor,
    captured: CapturedPass,
    stage: int,
    *,
    relu: bool = True,
) -> np.ndarray:
    """The method's own CAM math on the captured tensors, ReLU'd as grad-cam does, without its min-max scaling.

    ``relu=False`` keeps the signed weighted sum (``get_cam_image`` before its ReLU; the sanity checks rank it).
    Runs after the capture closed: Score-CAM's extra forwards (under no_grad) find no hook of ours on the model.
    """
    device = next(model.parameters()).device
    targets = [ClassifierOutputTarget(captured.target_index)]
    with torch.inference_mode(False), torch.no_grad():
        cam = cam_method.get_cam_image(
            input_tensor.to(device), stage_layer(model, stage), targets, captured.activations, captured.gradients, False
        )
    cam = np.asarray(cam, dtype=np.float32)[0]
    return np.nan_to_num(np.maximum(cam, 0) if relu else cam, nan=0.0, posinf=0.0, neginf=0.0)


def faithfulness_scores(model: nn.Module, input_tensor: torch.Tensor, cam: np.ndarray, index: int) -> dict[str, float]:
    """ROAD (grad-cam's metric): change of the class probability when the most / least relevant pixels are removed.

    ``faithfulness_morf`` (most relevant first) should be strongly negative and ``faithfulness_lerf`` near zero;
    ``faithfulness_road`` = (LeRF - MoRF) / 2 is grad-cam's ROADCombined: larger means a more faithful map. ROAD's
    imputation adds noise, so the generator is seeded locally to make the scores repeatable.
    """
    device = next(model.parameters()).device
    height, width = input_tensor.shape[-2:]
    cam_on_input = scale_cam_image(cam[None], (width, height))  # ROAD ranks pixels at input size, in [0, 1]
    targets = [ClassifierOutputSoftmaxTarget(index)]
    x = input_tensor.to(device)
    percentiles = list(ROAD_PERCENTILES)
    with torch.inference_mode(False), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        morf = float(ROADMostRelevantFirstAverage(percentiles)(x, cam_on_input, targets, model)[0])
        lerf = float(ROADLeastRelevantFirstAverage(percentiles)(x, cam_on_input, targets, model)[0])
    return {"faithfulness_morf": morf, "faithfulness_lerf": lerf, "faithfulness_road": (lerf - morf) / 2}


def resolve_target(target: int | str | None, categories: Sequence[str]) -> int | None:
    """A class index from an index, a digit string or a class name (case and ``_`` vs space ignored); None stays None.

    Unknown names raise a one-line ``CbamVizError`` listing the closest class names.
    """
    if target is None or (isinstance(target, str) and not target.strip()):
        return None
    count = len(categories)
    if isinstance(target, bool):
        raise CbamVizError(f"target must be a class index or name, got {target!r}")
    if isinstance(target, str) and target.strip().isdigit():
        number = vocab.whole_number(target)
        if number is None:  # "²", or more digits than any class index
            raise CbamVizError(f"target class {vocab.quote(target.strip(), 20)} is not a class index: use 0-9 digits")
        target = number
    if isinstance(target, int | np.integer):
        index = int(target)
        if not 0 <= index < count:
            raise CbamVizError(
                f"target class {index} does not exist: these weights have {count} classes (0-{count - 1})"
            )
        return index
    if not isinstance(target, str):
        raise CbamVizError(f"target must be a class index or name, got {type(target).__name__}")
    wanted = _normalise_name(target)
    normalised = [_normalise_name(name) for name in categories]
    matches = [index for index, name in enumerate(normalised) if name == wanted]
    if len(matches) == 1:
        return matches[0]
    if matches:  # ImageNet names a few classes twice ("crane" the bird and the machine)
        indices = ", ".join(map(str, matches))
        raise CbamVizError(text("error.class_twice", name=repr(target.strip()), count=len(matches), indices=indices))
    close = difflib.get_close_matches(wanted, normalised, n=5, cutoff=0.6)
    close += [name for name in normalised if wanted in name and name not in close][: 5 - len(close)]
    names = ", ".join(repr(categories[normalised.index(name)]) for name in close)
    hint = text("error.class_hint_close", names=names) if close else text("error.class_hint_index", last=count - 1)
    raise CbamVizError(text("error.unknown_class", name=repr(target.strip()), hint=hint))


def _normalise_name(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def class_label(categories: Sequence[str], index: int) -> str:
    """The name of class ``index``, or ``class <index>`` when the weights name fewer classes."""
    return categories[index] if index < len(categories) else f"class {index}"


def cam_method_for(method: str, model: nn.Module) -> BaseCAM:
    """The grad-cam method object for ``model``, made once and reused (constructing one walks the whole model).

    It is built with NO target layers, so grad-cam registers no hook; its hook holder is released at once anyway.
    Only its math (``get_cam_image``, which keeps no state between calls) is used, so threads can share it. The
    objects live on the model itself: they refer back to it, and a weak-keyed table would keep every model alive.
    """
    with _CAM_OBJECTS_LOCK:
        per_model = model.__dict__.setdefault("_cbam_viz_cam_methods", {})
        cam_method = per_model.get(method)
        if cam_method is None:
            cam_method = GRADCAM_CLASSES[method](model, target_layers=[])
            cam_method.activations_and_grads.release()
            if isinstance(cam_method, pytorch_grad_cam.ScoreCAM):
                cam_method.batch_size = SCORECAM_BATCH
            per_model[method] = cam_method
        return cam_method
