"""Model-parameter randomisation and the random logit (Adebayo et al., 2018, "Sanity checks for saliency maps").

A map that explains the model must change when the model's weights are destroyed. ``model_sanity`` re-initialises
the weights of a COPY of the model from the head down, ``CASCADE_ORDER`` = fc; + layer4; + layer3; + layer2; + layer1;
+ stem (``cascading``), and optionally one layer at a time from the trained weights (``independent``), recomputing
the CAM of the same method, stage and target class after each step, and compares it with the trained model's CAM,
over ``draws`` randomised networks (1 on the page, 5 in the CLI and the benchmark): mean and spread per step.
**Random logit**: the CAMs of ``other_classes`` random other classes (never the target, drawn per picture) next to
the target's, with their mean and spread.
``sanity_report`` does this per picture for every chosen model; ``SanityReport.maps()`` gives the randomised CAMs as
native-grid float32 arrays (``resnet50.cascading.layer4``, ...) for the CLI's map files.

* The copy is made once per model, randomised in place step by step, restored from the trained ``state_dict``
  between independent steps, and dropped at the end: one extra copy per model at a time.
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
"""

from __future__ import annotations

import hashlib
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
from cbam_viz.imaging.decode import decode_image
from cbam_viz.imaging.view import CellGeometry, model_geometry
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


def draw_seed(seed: int, draw: int, name: str) -> int:
    """The torch seed of layer ``name`` in randomised network number ``draw`` of ``seed``.

    ``numpy.random.SeedSequence((seed, draw, position of name in CASCADE_ORDER))``'s first 32-bit word: every
    (seed, draw) pair is its own network, the same layer gets the same weights in the cascading and the independent
    mode, and the network does not depend on the picture (draw ``d`` is the same network for every picture).
    """
    if seed < 0 or draw < 0:
        raise CbamVizError(f"the seed and the draw must be whole numbers >= 0, not {seed} and {draw}")
    return int(np.random.SeedSequence((int(seed), int(draw), CASCADE_ORDER.index(name))).generate_state(1)[0])


def randomise_layer_(model: nn.Module, name: str, seed: int = 0, draw: int = 0) -> None:
    """Re-initialise ``name`` of ``model`` IN PLACE with each module's own ``reset_parameters()``, repeatably
    (torch seeded by ``draw_seed(seed, draw, name)``).

    Only ever called on a copy. BatchNorm layers get their default init too, running statistics included.
    """
    layer_modules(model, name)  # an unknown layer fails before any seed is drawn
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with RNG_LOCK, torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(draw_seed(seed, draw, name))
        for root in layer_modules(model, name):
            for module in root.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()


@dataclass(frozen=True)
class Spread:
    """One number over several draws (networks or classes): mean and sample standard deviation of the finite
    values; an all-zero map has no ranking (NaN), so ``finite`` may be below ``count``."""

    values: tuple[float, ...]

    @property
    def finite(self) -> int:
        return sum(1 for value in self.values if math.isfinite(value))

    @property
    def mean(self) -> float:
        kept = [value for value in self.values if math.isfinite(value)]
        return float(np.mean(kept)) if kept else math.nan

    @property
    def sd(self) -> float:
        kept = [value for value in self.values if math.isfinite(value)]
        return float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan

    def to_json(self) -> dict:
        kept = [value for value in self.values if math.isfinite(value)]
        return {
            "mean": json_number(self.mean),
            "sd": json_number(self.sd),
            "min": json_number(min(kept)) if kept else None,
            "max": json_number(max(kept)) if kept else None,
            "finite": self.finite,
            "values": [json_number(value) for value in self.values],
        }


SPREAD_METRICS: tuple[str, ...] = ("spearman", "spearman_abs", "ssim")


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
class RandomisedStep:
    """One randomisation step over ``draws`` randomised networks: the numbers are means over the draws (of the
    finite values), ``spread`` gives their standard deviation and range, and ``cam`` is draw 0's map (the one drawn)."""

    step: str
    randomised: tuple[str, ...]
    draws: list[CamComparison]

    @property
    def cam(self) -> np.ndarray:
        return self.draws[0].cam

    @property
    def cam_empty(self) -> bool:
        """Whether the map drawn (draw 0's) is all zero."""
        return self.draws[0].cam_empty

    @property
    def empty_share(self) -> float:
        """The share of draws whose map is all zero."""
        return sum(draw.cam_empty for draw in self.draws) / len(self.draws)

    def spread(self, metric: str) -> Spread:
        return Spread(tuple(float(getattr(draw, metric)) for draw in self.draws))

    @property
    def spearman(self) -> float:
        return self.spread("spearman").mean

    @property
    def spearman_abs(self) -> float:
        return self.spread("spearman_abs").mean

    @property
    def ssim(self) -> float:
        return self.spread("ssim").mean

    @property
    def target_prob(self) -> float:
        return self.spread("target_prob").mean

    def to_json(self) -> dict:
        return {
            "step": self.step,
            "randomised": list(self.randomised),
            "draws": len(self.draws),
            "spearman": json_number(self.spearman),
            "spearman_abs": json_number(self.spearman_abs),
            "ssim": json_number(self.ssim),
            "target_prob": json_number(self.target_prob),
            "cam_empty": self.cam_empty,
            "empty_share": self.empty_share,
            "spread": {metric: self.spread(metric).to_json() for metric in SPREAD_METRICS},
        }


@dataclass
class OtherClass:
    """The CAM of one random other class next to the target's (same model, same picture)."""

    index: int
    label: str
    comparison: CamComparison  # its target_prob is that other class's probability

    def to_json(self) -> dict:
        """The other class and its CAM's comparison with the target's."""
        part = self.comparison.to_json()
        return {
            "index": self.index,
            "label": self.label,
            "prob": part["target_prob"],
            **{metric: part[metric] for metric in SPREAD_METRICS},
            "cam_empty": part["cam_empty"],
        }


@dataclass
class RandomLogit:
    """The CAMs of ``len(classes)`` random other classes next to the target's: the numbers are means over the
    classes, ``spread`` their standard deviation and range; the first class is the one drawn on the page."""

    classes: list[OtherClass]
    class_dependent: bool  # False for EigenCAM: the same map for every class, so a correlation of 1 is expected

    @property
    def index(self) -> int:
        return self.classes[0].index

    @property
    def label(self) -> str:
        return self.classes[0].label

    @property
    def comparison(self) -> CamComparison:
        return self.classes[0].comparison

    def spread(self, metric: str) -> Spread:
        return Spread(tuple(float(getattr(other.comparison, metric)) for other in self.classes))

    def to_json(self) -> dict:
        first = self.classes[0].to_json()
        return {
            "index": first["index"],
            "label": first["label"],
            "prob": first["prob"],
            "count": len(self.classes),
            **{metric: json_number(self.spread(metric).mean) for metric in SPREAD_METRICS},
            "class_dependent": self.class_dependent,
            "cam_empty": first["cam_empty"],
            "classes": [other.to_json() for other in self.classes],
            "spread": {metric: self.spread(metric).to_json() for metric in SPREAD_METRICS},
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
    cascading: list[RandomisedStep] = field(default_factory=list)
    independent: list[RandomisedStep] = field(default_factory=list)
    random_logit: RandomLogit | None = None
    seconds: float = 0.0
    draws: int = 1

    def to_json(self) -> dict:
        """The target, the time taken, and every step of each mode that ran."""
        document: dict[str, Any] = {
            "target": {"index": self.target_index, "label": self.target_label, "prob": json_number(self.target_prob)},
            "seconds": round(self.seconds, 4),
            "draws": self.draws,
            "cascading": [step.to_json() for step in self.cascading],
            "independent": [step.to_json() for step in self.independent],
        }
        if self.random_logit is not None:
            document["random_logit"] = self.random_logit.to_json()
        return document

    def maps(self) -> dict[str, np.ndarray]:
        """Native-grid maps keyed ``cam``, ``cascading.<step>``, ``independent.<layer>``, ``random_logit`` (draw 0
        and the first random class: the maps the page draws)."""
        found = {"cam": self.cam}
        found.update({f"cascading.{step.step}": step.cam for step in self.cascading})
        found.update({f"independent.{step.step}": step.cam for step in self.independent})
        if self.random_logit is not None:
            found["random_logit"] = self.random_logit.comparison.cam
        return found


def _compare(
    reference: CamPass,
    changed: CamPass,
    input_size: tuple[int, int],
    step: str,
    randomised: tuple[str, ...],
    geometry: CellGeometry,
) -> CamComparison:
    signed_pair = reference.signed is not None and changed.signed is not None
    return CamComparison(
        step=step,
        randomised=randomised,
        cam=changed.cam,
        spearman=metrics.spearman(reference.cam, changed.cam),
        spearman_abs=metrics.spearman(np.abs(reference.signed), np.abs(changed.signed)) if signed_pair else math.nan,
        ssim=metrics.ssim(
            input_grid(reference.cam, input_size, geometry), input_grid(changed.cam, input_size, geometry)
        ),
        target_prob=float(changed.probs[reference.target_index]),
    )


def content_key(data: bytes | np.ndarray | torch.Tensor) -> int:
    """A 64-bit key of a picture's content (its pixels, or the tensor the model saw): SHA-256's first 8 bytes."""
    if isinstance(data, torch.Tensor):
        data = data.detach().float().cpu().numpy()
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes() + repr((data.shape, data.dtype.str)).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def random_other_classes(target: int, num_classes: int, seed: int = 0, picture: int = 0, count: int = 1) -> list[int]:
    """``count`` different random class indices, never ``target``, drawn per picture: from
    ``numpy.random.default_rng((seed, picture))`` where ``picture`` is the picture's ``content_key``. At most all
    the other classes."""
    if num_classes < 2:
        raise CbamVizError("a random-logit check needs at least two classes")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CbamVizError(f"the number of random other classes must be a whole number >= 1, not {count!r}")
    others = np.array([index for index in range(num_classes) if index != target])
    generator = np.random.default_rng((int(seed), int(picture)))
    return [int(index) for index in generator.permutation(others)[: min(count, others.size)]]


def random_other_class(target: int, num_classes: int, seed: int = 0, picture: int = 0) -> int:
    """The first of ``random_other_classes``: the class whose map the page draws."""
    return random_other_classes(target, num_classes, seed, picture, 1)[0]


def _whole_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CbamVizError(f"{what} must be a whole number >= 1, not {value!r}")
    return value


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
    draws: int = 1,
    other_classes: int = 1,
    picture: int | None = None,
    categories: Sequence[str] | None = None,
) -> ModelSanity:
    """Randomisation (cascading and/or independent, each over ``draws`` randomised networks) and random-logit
    (``other_classes`` random classes) checks of ``model`` on one prepared input.

    ``target`` None explains the trained model's top-1, and every randomised model explains that same class.
    ``picture`` is the picture's ``content_key`` the random classes are drawn with (None: the input tensor's).
    """
    AnalysisOptions(method=method, stage=stage)  # one-line errors for an unknown method or stage
    draws = _whole_number(draws, "the number of randomisation draws")
    other_classes = _whole_number(other_classes, "the number of random other classes")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CbamVizError(f"the seed must be a whole number >= 0, not {seed!r}")
    started = time.perf_counter()
    info = getattr(model, "weights_info", None)
    names = tuple(categories) if categories is not None else (info.categories if info else ())
    input_size = (int(input_tensor.shape[-1]), int(input_tensor.shape[-2]))
    geometry = model_geometry(model)
    trained = cam_pass(model, input_tensor, method, stage, target)
    index = trained.target_index
    report = ModelSanity(
        arch,
        method,
        stage,
        seed,
        index,
        class_label(names, index),
        float(trained.probs[index]),
        trained.cam,
        draws=draws,
    )
    if random_logit:
        key = content_key(input_tensor) if picture is None else picture
        found = []
        for other in random_other_classes(index, trained.probs.size, seed, key, other_classes):
            other_pass = cam_pass(model, input_tensor, method, stage, other)
            comparison = _compare(trained, other_pass, input_size, class_label(names, other), (), geometry)
            comparison.target_prob = float(trained.probs[other])
            found.append(OtherClass(other, class_label(names, other), comparison))
        report.random_logit = RandomLogit(found, CAM_METHODS[method].class_dependent)
    if cascading or independent:
        duplicate = private_copy(model)
        original = model.state_dict()
        try:
            runs: dict[str, list[list[CamComparison]]] = {"cascading": [], "independent": []}
            for draw in range(draws):
                if cascading:
                    duplicate.load_state_dict(original)
                    steps = []
                    for position, name in enumerate(CASCADE_ORDER):
                        randomise_layer_(duplicate, name, seed, draw)
                        changed = cam_pass(duplicate, input_tensor, method, stage, index)
                        randomised = CASCADE_ORDER[: position + 1]
                        steps.append(_compare(trained, changed, input_size, name, randomised, geometry))
                    runs["cascading"].append(steps)
                if independent:
                    steps = []
                    for name in CASCADE_ORDER:
                        duplicate.load_state_dict(original)
                        randomise_layer_(duplicate, name, seed, draw)
                        changed = cam_pass(duplicate, input_tensor, method, stage, index)
                        steps.append(_compare(trained, changed, input_size, name, (name,), geometry))
                    runs["independent"].append(steps)
        finally:
            del duplicate
        for mode, per_draw in runs.items():
            getattr(report, mode).extend(
                RandomisedStep(found[0].step, found[0].randomised, list(found)) for found in zip(*per_draw, strict=True)
            )
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
        first = next(iter(self.models.values()), None)
        logit = first.random_logit if first is not None else None
        return {
            "method": self.method,
            "stage": self.stage,
            "seed": self.seed,
            "weights": self.weights_set,
            "batchnorm": "reset",  # BatchNorm layers get their default init, running statistics included
            "cascade_order": list(CASCADE_ORDER),
            "grids": {"spearman": "native", "ssim": "input"},
            "draws": first.draws if first is not None else 1,
            "other_classes": len(logit.classes) if logit is not None else 0,
            "seeds": SEEDS_NOTE,
            "models": {arch: result.to_json() for arch, result in self.models.items()},
        }

    def maps(self) -> dict[str, np.ndarray]:
        """Every CAM of the report, keyed ``<arch>.<map>`` (see ``ModelSanity.maps``), native-grid float32."""
        return {f"{arch}.{key}": grid for arch, result in self.models.items() for key, grid in result.maps().items()}


SEEDS_NOTE = (
    "randomised network d: layer at position p of cascade_order re-initialised after torch.manual_seed(first word of "
    "numpy SeedSequence((seed, d, p))), the same for every picture; random other classes: "
    "numpy default_rng((seed, first 8 bytes of the SHA-256 of the picture's RGB pixels)).permutation of the classes "
    "other than the target"
)


def picture_key(picture: PIL.Image.Image) -> int:
    """``content_key`` of a decoded picture: its RGB pixels and size, so the same picture draws the same classes."""
    return content_key(np.asarray(picture.convert("RGB")))


def sanity_report(
    image: PIL.Image.Image | str | Path | bytes,
    options: AnalysisOptions | None = None,
    *,
    cascading: bool = True,
    independent: bool = False,
    random_logit: bool = True,
    seed: int = 0,
    draws: int = 1,
    other_classes: int = 1,
    device: str | torch.device | None = None,
    weights_dir: Path | None = None,
    **fields: Any,
) -> SanityReport:
    """Randomisation and random-logit checks of every model of ``options`` (or keyword fields, as ``analyze``).

    ``draws`` randomised networks per step and ``other_classes`` random classes (1 each on the page, 5 in the CLI)."""
    picture = decode_image(image)
    key = picture_key(picture)
    options, model_set, target, inputs = prepared_inputs(picture, options, device, weights_dir, fields)
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
            draws=draws,
            other_classes=other_classes,
            picture=key,
        )
        for arch, model in model_set.models.items()
    }
    return SanityReport(options.method, options.stage, seed, model_set.weights_set, results)
