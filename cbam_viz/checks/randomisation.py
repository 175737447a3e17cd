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
from cbam_viz.analysis.options import AnalysisOptions
from cbam_viz.checks.common import _RNG_LOCK, _cam_pass, _CamPass, _label, _number, _prepared, input_grid, private_copy
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
    with _RNG_LOCK, torch.random.fork_rng(devices=devices), torch.no_grad():
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
            "mean": _number(self.mean),
            "sd": _number(self.sd),
            "min": _number(min(kept)) if kept else None,
            "max": _number(max(kept)) if kept else None,
            "finite": self.finite,
            "values": [_number(value) for value in self.values],
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
            "spearman": _number(self.spearman),
            "spearman_abs": _number(self.spearman_abs),
            "ssim": _number(self.ssim),
            "target_prob": _number(self.target_prob),
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
            **{metric: _number(self.spread(metric).mean) for metric in SPREAD_METRICS},
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
        document: dict[str, Any] = {
            "target": {"index": self.target_index, "label": self.target_label, "prob": _number(self.target_prob)},
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
    reference: _CamPass,
    changed: _CamPass,
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
    trained = _cam_pass(model, input_tensor, method, stage, target)
    index = trained.target_index
    report = ModelSanity(
        arch, method, stage, seed, index, _label(names, index), float(trained.probs[index]), trained.cam, draws=draws
    )
    if random_logit:
        key = content_key(input_tensor) if picture is None else picture
        found = []
        for other in random_other_classes(index, trained.probs.size, seed, key, other_classes):
            other_pass = _cam_pass(model, input_tensor, method, stage, other)
            comparison = _compare(trained, other_pass, input_size, _label(names, other), (), geometry)
            comparison.target_prob = float(trained.probs[other])
            found.append(OtherClass(other, _label(names, other), comparison))
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
                        changed = _cam_pass(duplicate, input_tensor, method, stage, index)
                        randomised = CASCADE_ORDER[: position + 1]
                        steps.append(_compare(trained, changed, input_size, name, randomised, geometry))
                    runs["cascading"].append(steps)
                if independent:
                    steps = []
                    for name in CASCADE_ORDER:
                        duplicate.load_state_dict(original)
                        randomise_layer_(duplicate, name, seed, draw)
                        changed = _cam_pass(duplicate, input_tensor, method, stage, index)
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
    options, model_set, target, inputs = _prepared(picture, options, device, weights_dir, fields)
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
