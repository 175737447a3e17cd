"""Model-parameter randomisation and the random logit (Adebayo et al., 2018, "Sanity checks for saliency maps").

A map that explains the model must change when the model's weights are destroyed. ``model_sanity`` re-initialises
the weights of a COPY of the model from the head down, ``CASCADE_ORDER`` = fc; + layer4; + layer3; + layer2; + layer1;
+ stem (``cascading``), and optionally one layer at a time from the trained weights (``independent``), recomputing
the CAM of the same method, stage and target class after each step, and compares it with the trained model's CAM.
**Random logit**: the CAM of a random other class (seeded, never the target) next to the target's.
``sanity_report`` does this per picture for every chosen model; ``SanityReport.maps()`` gives the randomised CAMs as
native-grid float32 arrays (``resnet50.cascading.layer4``, ...) for the CLI's map files.

* The copy is made once per model, randomised in place step by step, restored from the trained ``state_dict``
  between independent steps, and dropped at the end: one extra copy per model at a time.
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
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import nn

from cbam_viz.analysis import metrics
from cbam_viz.analysis.cam import class_label
from cbam_viz.analysis.options import AnalysisOptions
from cbam_viz.analysis.results import json_number
from cbam_viz.checks.common import RNG_LOCK, CamPass, cam_pass, input_grid, prepared_inputs, private_copy
from cbam_viz.errors import CbamVizError
from cbam_viz.vocab import CAM_METHODS, STAGES

STEM = "stem"
CASCADE_ORDER: tuple[str, ...] = ("fc", *(f"layer{stage}" for stage in reversed(STAGES)), STEM)


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
    with RNG_LOCK, torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed * 1000 + CASCADE_ORDER.index(name))
        for root in layer_modules(model, name):
            for module in root.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()


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
        """Whether the changed CAM is all zero (nothing left to rank: count it as changed)."""
        return not bool(np.any(self.cam > 0))

    def to_json(self) -> dict:
        """The step, what it randomised, and the comparisons (NaN -> null)."""
        return {
            "step": self.step,
            "randomised": list(self.randomised),
            "spearman": json_number(self.spearman),
            "spearman_abs": json_number(self.spearman_abs),
            "ssim": json_number(self.ssim),
            "target_prob": json_number(self.target_prob),
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
        """The other class and its CAM's comparison with the target's."""
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
        """The target, the time taken, and every step of each mode that ran."""
        document: dict[str, Any] = {
            "target": {"index": self.target_index, "label": self.target_label, "prob": json_number(self.target_prob)},
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


def _compare(
    reference: CamPass, changed: CamPass, input_size: tuple[int, int], step: str, randomised: tuple[str, ...]
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
    trained = cam_pass(model, input_tensor, method, stage, target)
    index = trained.target_index
    report = ModelSanity(
        arch, method, stage, seed, index, class_label(names, index), float(trained.probs[index]), trained.cam
    )
    if random_logit:
        other = random_other_class(index, trained.probs.size, seed)
        other_pass = cam_pass(model, input_tensor, method, stage, other)
        comparison = _compare(trained, other_pass, input_size, class_label(names, other), ())
        comparison.target_prob = float(trained.probs[other])
        class_dependent = CAM_METHODS[method].class_dependent
        report.random_logit = RandomLogit(other, class_label(names, other), comparison, class_dependent)
    if cascading or independent:
        duplicate = private_copy(model)
        try:
            if cascading:
                for position, name in enumerate(CASCADE_ORDER):
                    randomise_layer_(duplicate, name, seed)
                    changed = cam_pass(duplicate, input_tensor, method, stage, index)
                    report.cascading.append(_compare(trained, changed, input_size, name, CASCADE_ORDER[: position + 1]))
            if independent:
                original = model.state_dict()
                for name in CASCADE_ORDER:
                    duplicate.load_state_dict(original)
                    randomise_layer_(duplicate, name, seed)
                    changed = cam_pass(duplicate, input_tensor, method, stage, index)
                    report.independent.append(_compare(trained, changed, input_size, name, (name,)))
        finally:
            del duplicate
    report.seconds = time.perf_counter() - started
    return report


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
        """The settings and every model's randomisation results (docs/json.md)."""
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
    options, model_set, target, inputs = prepared_inputs(image, options, device, weights_dir, fields)
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
