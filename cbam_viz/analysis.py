"""The analysis engine: one hooked pass per model gives predictions, the CAM and every attention map.

CAM methods come from grad-cam: each method's own math (``get_cam_image``) runs on the activations and gradients that
``capture.capture_pass`` collected, so grad-cam's hook machinery never touches the models. CAMs stay at the CAM layer's
native resolution and are not min-max normalised (only ReLU'd), so models can be compared on one scale; renderers
normalise for display and ``imaging.map_to_image`` aligns any map with the image in one resampling.
"""

from __future__ import annotations

import difflib
import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import PIL.Image
import pytorch_grad_cam
import pytorch_grad_cam.score_cam
import torch
import tqdm
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from torch import nn

from cbam_viz import metrics, vocab
from cbam_viz.capture import CapturedPass, capture_pass, stage_layer
from cbam_viz.errors import CbamVizError
from cbam_viz.imaging import ModelView, decode_image, decode_notes, display_image, prepare_input
from cbam_viz.language import text
from cbam_viz.options import SWEEP, AnalysisOptions, checked_models
from cbam_viz.vocab import ARCH_ORDER, VIEWS, has_channel_attention, last_block
from cbam_viz.weights import Preprocess, WeightsChoice, load_model, resolve_weights, weights_root

# grad-cam's Score-CAM draws a tqdm bar per CAM on stderr, which floods a server's log: the engine is quiet.
pytorch_grad_cam.score_cam.tqdm = SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))

CAM_METHODS: dict[str, type[BaseCAM]] = {  # vocab.CAM_METHODS names each method's grad-cam class
    name: getattr(pytorch_grad_cam, method.grad_cam_class) for name, method in vocab.CAM_METHODS.items()
}
ROAD_PERCENTILES = (20, 40, 60, 80)  # four removal levels: ROAD's trend at a quarter of grad-cam's default cost
SCORECAM_BATCH = 32
MODEL_CACHE_SIZE = 6  # two weight sets of three models; ImageNet-size models are ~100 MB each
JSON_SCHEMA_VERSION = 4  # 2: image.notes; 3: models.<arch>.interventions and .sweep; 4: pointing, sanity, curves


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STATS = {"mean": _NUMBER_OR_NULL, "min": _NUMBER_OR_NULL, "max": _NUMBER_OR_NULL}
_VIEW_SCHEMA = {
    "type": "object",
    "required": ["mode", "input_width", "input_height", "box", "note"],
    "additionalProperties": False,
    "properties": {
        "mode": {"enum": list(VIEWS)},
        "input_width": {"type": "integer", "minimum": 1},
        "input_height": {"type": "integer", "minimum": 1},
        "box": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "note": {"type": "string"},
    },
}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
_CHANGE = {"type": ["number", "null"], "minimum": -1, "maximum": 1}
# one intervention (intervene.py SPEC) in one model: its top-5, the target (the analysis's own) and the CAM after it
_INTERVENTION_SCHEMA = {
    "type": "object",
    "required": ["spec", "top5", "target", "target_prob", "target_prob_change", "cam"],
    "additionalProperties": False,
    "properties": {
        "spec": {"type": "string"},
        "top5": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "label", "prob"],
                "additionalProperties": False,
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "label": {"type": "string"},
                    "prob": _PROBABILITY,
                },
            },
        },
        "target": {
            "type": "object",
            "required": ["index", "label"],
            "additionalProperties": False,
            "properties": {"index": {"type": "integer", "minimum": 0}, "label": {"type": "string"}},
        },
        "target_prob": _PROBABILITY,
        "target_prob_change": _CHANGE,
        "cam": {
            "type": "object",
            "required": ["height", "width", "mean", "min", "max", "correlation"],
            "additionalProperties": False,
            "properties": {
                "height": {"type": "integer", "minimum": 1},
                "width": {"type": "integer", "minimum": 1},
                **_STATS,
                "correlation": _NUMBER_OR_NULL,  # Pearson, with the un-intervened CAM; null when either is constant
            },
        },
    },
}
# a spec this model has no gate for, while another chosen model has it: one line instead of a result
_INTERVENTION_NOTE_SCHEMA = {
    "type": "object",
    "required": ["spec", "note"],
    "additionalProperties": False,
    "properties": {"spec": {"type": "string"}, "note": {"type": "string"}},
}
_SWEEP_SCHEMA = {
    "type": "object",
    "required": ["target_index", "base_prob", "base_top1", "entries"],
    "additionalProperties": False,
    "properties": {
        "target_index": {"type": "integer", "minimum": 0},
        "base_prob": _PROBABILITY,
        "base_top1": {"type": "integer", "minimum": 0},
        "entries": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["stage", "gate", "spec", "target_prob", "change", "top1"],
                "additionalProperties": False,
                "properties": {
                    "stage": {"type": "integer", "minimum": 1, "maximum": 4},
                    "gate": {"enum": ["channel", "spatial"]},
                    "spec": {"type": "string"},
                    "target_prob": _PROBABILITY,
                    "change": _CHANGE,
                    "top1": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}
_MODEL_SCHEMA = {
    "type": "object",
    "required": ["weights", "top5", "target", "cam", "channel_attention", "spatial_attention", "metrics"],
    "additionalProperties": False,
    "properties": {
        "weights": {"type": "string"},
        "top5": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5,
            "items": {
                "type": "object",
                "required": ["label", "prob"],
                "additionalProperties": False,
                "properties": {"label": {"type": "string"}, "prob": _PROBABILITY},
            },
        },
        "target": {
            "type": "object",
            "required": ["index", "label", "prob"],
            "additionalProperties": False,
            "properties": {
                "index": {"type": "integer", "minimum": 0},
                "label": {"type": "string"},
                "prob": _PROBABILITY,
            },
        },
        "cam": {
            "type": "object",
            "required": ["stage", "height", "width", "mean", "min", "max"],
            "additionalProperties": False,
            "properties": {
                "stage": {"type": "integer", "minimum": 1, "maximum": 4},
                "height": {"type": "integer", "minimum": 1},
                "width": {"type": "integer", "minimum": 1},
                **_STATS,
            },
        },
        "channel_attention": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["channels", "mean", "min", "max"],
                "additionalProperties": False,
                "properties": {"channels": {"type": "integer", "minimum": 1}, **_STATS},
            },
        },
        "spatial_attention": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["height", "width", "mean", "min", "max"],
                "additionalProperties": False,
                "properties": {
                    "height": {"type": "integer", "minimum": 1},
                    "width": {"type": "integer", "minimum": 1},
                    **_STATS,
                },
            },
        },
        "metrics": {"type": "object", "required": ["target_prob"], "additionalProperties": _NUMBER_OR_NULL},
        "view": _VIEW_SCHEMA,
        "interventions": {"type": "array", "items": {"oneOf": [_INTERVENTION_SCHEMA, _INTERVENTION_NOTE_SCHEMA]}},
        "sweep": _SWEEP_SCHEMA,
    },
}
_HIT = {
    "type": "object",
    "required": ["hit", "energy"],
    "additionalProperties": False,
    "properties": {"hit": {"type": ["boolean", "null"]}, "energy": _NUMBER_OR_NULL},
}
# the pointing game on a box (sanity.box_game): does each map's peak fall in it, which share of its mass lies there
_POINTING_SCHEMA = {
    "type": "object",
    "required": ["region", "models"],
    "additionalProperties": False,
    "properties": {
        "region": {
            "type": "object",
            "required": ["kind", "area_share"],
            "properties": {
                "kind": {"enum": ["box", "mask"]},
                "box": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
                "area_share": _NUMBER_OR_NULL,
            },
        },
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["cam", "spatial", "blocks"],
                "additionalProperties": False,
                "properties": {
                    "cam": _HIT,
                    "spatial": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["block", "hit", "energy"],
                            "properties": {"block": {"type": "string"}, **_HIT["properties"]},
                        },
                    },
                    "blocks": {"type": "object", "additionalProperties": _HIT},
                },
            },
        },
    },
}
_TARGET = {
    "type": "object",
    "required": ["index", "label", "prob"],
    "properties": {"index": {"type": "integer"}, "label": {"type": "string"}, "prob": _NUMBER_OR_NULL},
}
_COMPARISON = {
    "type": "object",
    "required": ["spearman", "spearman_abs", "ssim", "cam_empty"],
    "properties": {
        "step": {"type": "string"},
        "randomised": {"type": "array", "items": {"type": "string"}},
        "spearman": _NUMBER_OR_NULL,
        "spearman_abs": _NUMBER_OR_NULL,
        "ssim": _NUMBER_OR_NULL,
        "target_prob": _NUMBER_OR_NULL,
        "cam_empty": {"type": "boolean"},
    },
}
# sanity.SanityReport.to_json(): cascading and independent randomisation, the random-logit test (/sanity, --sanity)
_SANITY_SCHEMA = {
    "type": "object",
    "required": ["method", "stage", "seed", "weights", "cascade_order", "models"],
    "properties": {
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["target", "cascading"],
                "properties": {
                    "target": _TARGET,
                    "cascading": {"type": "array", "items": _COMPARISON},
                    "independent": {"type": "array", "items": _COMPARISON},
                    "random_logit": {"type": ["object", "null"]},
                },
            },
        },
    },
}
_CURVE = {
    "type": "object",
    "required": ["probs", "auc"],
    "properties": {"probs": {"type": "array", "items": _NUMBER_OR_NULL}, "auc": _NUMBER_OR_NULL},
}
# sanity.CurvesReport.to_json(): deletion and insertion by each model's CAM and by a random order
_CURVES_SCHEMA = {
    "type": "object",
    "required": ["steps", "fractions", "seed", "deletion_fill", "models"],
    "properties": {
        "fractions": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
        "models": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["target", "deletion", "insertion"],
                "properties": {
                    "target": _TARGET,
                    "deletion": {"type": "object", "required": ["cam"], "additionalProperties": _CURVE},
                    "insertion": {"type": "object", "required": ["cam"], "additionalProperties": _CURVE},
                },
            },
        },
    },
}
# JSON Schema (draft 2020-12) of ``Analysis.to_json()``; the CLI adds "source" and "maps" (see analyze_cli), and
# "sanity" and "deletion_insertion" when asked for (also the answers of the app's /sanity and /deletion_insertion).
ANALYSIS_JSON_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cbam_viz analysis",
    "type": "object",
    "required": ["schema_version", "image", "view", "method", "stage", "weights", "device", "models", "agreement"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": JSON_SCHEMA_VERSION},
        "image": {
            "type": "object",
            "required": ["width", "height", "display_width", "display_height", "notes"],
            "additionalProperties": False,
            "properties": {
                **{
                    key: {"type": "integer", "minimum": 1}
                    for key in ("width", "height", "display_width", "display_height")
                },
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "view": _VIEW_SCHEMA,
        "method": {"enum": list(CAM_METHODS)},
        "stage": {"type": "integer", "minimum": 1, "maximum": 4},
        "weights": {
            "type": "object",
            "required": ["set", "note"],
            "additionalProperties": False,
            "properties": {"set": {"type": "string"}, "note": {"type": "string"}},
        },
        "device": {"type": "string"},
        "models": {"type": "object", "minProperties": 1, "additionalProperties": _MODEL_SCHEMA},
        "agreement": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["cam_correlation", "top20_iou"],
                "additionalProperties": False,
                "properties": {"cam_correlation": _NUMBER_OR_NULL, "top20_iou": _NUMBER_OR_NULL},
            },
        },
        "pointing": _POINTING_SCHEMA,
        "sanity": _SANITY_SCHEMA,
        "deletion_insertion": _CURVES_SCHEMA,
        "source": {"type": "string"},
        "maps": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}


@dataclass
class ModelResult:
    """Everything one model said about one image; maps at native resolution (align with ``imaging.map_to_image``)."""

    arch: str
    weights: str  # LoadedWeights.description
    top5: list[tuple[str, float]]  # (label, probability), most likely first
    target_index: int
    target_label: str
    target_prob: float
    cam: np.ndarray  # float32 (h, w) at the CAM layer's native resolution, >= 0, NOT normalised
    cam_stage: int  # 1..4
    channel_attention: dict[str, np.ndarray]  # "layer1.0" -> (C,) float32 in (0, 1); {} for resnet50
    spatial_attention: dict[str, np.ndarray]  # "layer1.0" -> (h, w) float32 in (0, 1); CBAM only, else {}
    metrics: dict[str, float]  # target_prob; cam_spatial_* (CBAM); faithfulness_* on request
    view: ModelView | None = None  # what this model saw; None means Analysis.view (all shipped sets share one)
    # options.interventions: results in the order asked (intervene.InterventionResult), the sweep (SweepResult),
    # and for a spec this model has no gate for, one line saying so (spec -> note)
    interventions: list = field(default_factory=list)
    sweep: Any = None
    intervention_notes: dict[str, str] = field(default_factory=dict)
    intervention_labels: dict[int, str] = field(default_factory=dict)  # class index -> label, for their top-5s
    gate_steps: dict = field(default_factory=dict)  # block -> gates.GateSteps, with options.gate_steps; else {}


@dataclass
class Analysis:
    """One image through every requested model, plus how their CAMs agree."""

    image: PIL.Image.Image  # the display image (decoded, EXIF applied, longest side <= 1024)
    original_size: tuple[int, int]  # (width, height) of the input as the user sees it (EXIF applied)
    notes: tuple[str, ...]  # what decoding did, in plain words ("turned upright", "16-bit image scaled to 8 bit")
    view: ModelView
    method: str
    stage: int
    models: dict[str, ModelResult]  # in ARCH_ORDER, those requested
    agreement: dict[str, dict[str, float]]  # "resnet50|cbam_resnet50" -> {"cam_correlation", "top20_iou"}
    weights_set: str  # "demo" | "paper" | ... | path
    weights_note: str  # one line: which weights and why
    device: str  # "cpu" | "cuda:0"
    options: AnalysisOptions = field(default_factory=AnalysisOptions)  # what was asked for
    pointing: Any = None  # sanity.PointingReport of options.box (or of a box scored later, on the page)
    sanity: Any = None  # sanity.SanityReport, run on request (--sanity, /sanity, the page's button)
    curves: Any = None  # sanity.CurvesReport, run on request (--deletion-insertion, /deletion_insertion)
    weights: WeightsChoice | None = None  # the weights that answered, as resolved once (None: built by hand)

    @property
    def is_demo(self) -> bool:
        """Whether the demo set answered (its classes are generated shapes, not ImageNet's)."""
        return self.weights is not None and self.weights.is_demo

    def view_for(self, result: ModelResult) -> ModelView:
        """What ``result``'s model saw: its own view when its weights prepare pictures differently."""
        return result.view if result.view is not None else self.view

    def to_json(self) -> dict:
        """The documented JSON form (``ANALYSIS_JSON_SCHEMA``): numbers and names only, maps summarised, NaN -> null."""
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "image": {
                "width": self.original_size[0],
                "height": self.original_size[1],
                "display_width": self.image.width,
                "display_height": self.image.height,
                "notes": list(self.notes),
            },
            "view": _view_json(self.view),
            "method": self.method,
            "stage": self.stage,
            "weights": {"set": self.weights_set, "note": self.weights_note},
            "device": self.device,
            "models": {arch: _model_json(result, self.view) for arch, result in self.models.items()},
            "agreement": {pair: {k: _number(v) for k, v in values.items()} for pair, values in self.agreement.items()},
            **({"pointing": self.pointing.to_json()} if self.pointing is not None else {}),
            **({"sanity": self.sanity.to_json()} if self.sanity is not None else {}),
            **({"deletion_insertion": self.curves.to_json()} if self.curves is not None else {}),
        }


@dataclass
class ModelSet:
    """Loaded models of one weight set on one device (what ``get_models`` returns and the app warms at start-up)."""

    weights: WeightsChoice  # which weights and why, resolved once
    device: str
    models: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def weights_set(self) -> str:
        """The set, entry or file name (the JSON's ``weights.set``)."""
        return self.weights.name

    @property
    def weights_note(self) -> str:
        """One line: which weights and why."""
        return self.weights.note

    @property
    def categories(self) -> tuple[str, ...]:
        """The class names, which every model of one set shares (checked when the set is loaded)."""
        return next(iter(self.models.values())).weights_info.categories


_CAM_METHODS_LOCK = threading.Lock()
_MODEL_CACHE: OrderedDict[tuple[str, str, str, str], nn.Module] = OrderedDict()
_MODEL_CACHE_LOCK = threading.Lock()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> the GPU when there is one, else the CPU; a bare "cuda" gets its index so cache keys are stable."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise CbamVizError(f"unknown device {device!r}: use 'cpu' or 'cuda'") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise CbamVizError("CUDA was asked for but no GPU is available: use --device cpu")
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def get_models(
    models: Sequence[str] = ARCH_ORDER,
    weights: str | WeightsChoice = "auto",
    device: str | torch.device | None = None,
    *,
    weights_dir: Path | None = None,
) -> ModelSet:
    """The requested models of one weight set, loaded once and cached by (arch, weights, folder, device).

    The app calls it at start-up to warm the cache. Loaded models are frozen (``requires_grad`` False) and in eval
    mode, which the short CAM backward relies on.
    """
    archs = _check_archs(models)
    choice = resolve_weights(weights, weights_dir)
    weights_set = choice.name
    target = resolve_device(device)
    loaded = ModelSet(choice, str(target))
    folder = str(weights_root(weights_dir).resolve())
    with _MODEL_CACHE_LOCK:
        for arch in archs:
            key = (arch, weights_set, folder, str(target))
            if key in _MODEL_CACHE:
                _MODEL_CACHE.move_to_end(key)
            else:
                model = load_model(arch, choice, device=target, weights_dir=weights_dir)
                model.eval().requires_grad_(False)
                _MODEL_CACHE[key] = model
                while len(_MODEL_CACHE) > MODEL_CACHE_SIZE:
                    _MODEL_CACHE.popitem(last=False)
            loaded.models[arch] = _MODEL_CACHE[key]
    first = loaded.categories
    for arch, model in loaded.models.items():
        if model.weights_info.categories != first:
            raise CbamVizError(
                f"the {arch} weights of set {weights_set!r} have other classes than {archs[0]}: "
                "use one weight set whose models share their classes"
            )
    return loaded


def clear_model_cache() -> None:
    """Forget every loaded model (frees their memory; the next ``get_models`` loads again)."""
    with _MODEL_CACHE_LOCK:
        _MODEL_CACHE.clear()


def analyze(
    image: PIL.Image.Image | str | Path | bytes,
    options: AnalysisOptions | None = None,
    *,
    device: str | torch.device | None = None,
    weights_dir: Path | None = None,
    **fields: Any,
) -> Analysis:
    """Analyse one image with every requested model: top-5, target class, CAM of the stage and all attention maps.

    ``options`` says what to compute; without it, the keyword ``fields`` build one (``weights``, ``models``,
    ``method``, ``target``, ``stage``, ``view``, ``faithfulness``). A target of None explains each model's own top-1;
    an index or a class name explains that one class in every model. ``image`` may be an already decoded picture
    (``imaging.decode_image``): it is not decoded again and its notes are kept. Bad arguments and unusable images
    raise ``CbamVizError`` (``ImageError``) with a one-line message. ``weights_dir`` replaces the repository's
    weights/ folder (deployments, tests).
    """
    if options is None:
        options = AnalysisOptions(**fields)
    elif fields:
        raise TypeError("pass either options or keyword fields, not both")
    picture = decode_image(image)
    model_set = get_models(options.models, options.weights, device, weights_dir=weights_dir)
    target_index = resolve_target(options.target, model_set.categories)
    plan = intervention_plan(model_set.models, options.interventions)
    inputs: dict[Preprocess, tuple[torch.Tensor, ModelView]] = {}
    results: dict[str, ModelResult] = {}
    for arch, model in model_set.models.items():
        preprocess = model.weights_info.preprocess
        if preprocess not in inputs:
            inputs[preprocess] = prepare_input(picture, preprocess, options.view)
        input_tensor, model_view = inputs[preprocess]
        result = run_model(
            arch,
            model,
            input_tensor,
            method=options.method,
            stage=options.stage,
            target=target_index,
            faithfulness=options.faithfulness,
            gate_steps=options.gate_steps if has_channel_attention(arch) else (),  # ResNet-50 has no gate to open
        )
        result.view = model_view
        if plan:
            _intervene(result, model, input_tensor, plan[arch], options)
        results[arch] = result
    first_view = next(iter(results.values())).view
    analysis = Analysis(
        image=display_image(picture),
        original_size=picture.size,
        notes=decode_notes(picture),
        view=first_view,
        method=options.method,
        stage=options.stage,
        models=results,
        agreement=agreement(results),
        weights_set=model_set.weights_set,
        weights_note=model_set.weights_note,
        device=model_set.device,
        options=options,
        weights=model_set.weights,
    )
    if options.box is not None:
        analysis.pointing = pointing_on_box(analysis, options.box)
    return analysis


def pointing_on_box(analysis: Analysis, box: Sequence[float]) -> Any:
    """The pointing game (``sanity.box_game``) on a box given in pixels of the picture as the user sees it (EXIF
    applied, full size), scaled onto the displayed copy the maps are laid on; the report keeps the given pixels."""
    from cbam_viz import sanity  # it builds on this module

    scale = analysis.image.width / analysis.original_size[0]
    report = sanity.box_game(analysis, [value * scale for value in box])
    report.region["box"] = [round(value / scale, 2) for value in report.region["box"]]
    return report


def intervention_plan(models: dict[str, nn.Module], specs: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """Per model, spec -> None (run it) or the one line why this model cannot (checked before any work starts).

    A spec that no chosen model can take (anything on ResNet-50 alone, ``spatial`` without CBAM) is a one-line error;
    when another chosen model has the gate, the model without it gets a note instead, so a comparison still runs.
    """
    if not specs:
        return {}
    from cbam_viz import intervene

    plan: dict[str, dict[str, str | None]] = {arch: {} for arch in models}
    for spec in specs:
        errors = []
        for arch, model in models.items():
            try:
                if spec == SWEEP:
                    intervene.sweep_interventions(model)
                else:
                    intervene.Intervention.parse(spec).replacements(model)
                plan[arch][spec] = None
            except CbamVizError as error:
                plan[arch][spec] = str(error)
                errors.append(str(error))
        if len(errors) == len(models):
            raise CbamVizError(errors[0])
    return plan


def _intervene(
    result: ModelResult, model: nn.Module, input_tensor: torch.Tensor, plan: dict[str, str | None], options
) -> None:
    """Run this model's planned interventions against its own un-intervened ``result`` (same target, method, stage)."""
    from cbam_viz import intervene

    specs = [spec for spec, note in plan.items() if note is None and spec != SWEEP]
    result.intervention_notes = {spec: note for spec, note in plan.items() if note is not None}
    if specs:
        result.interventions = intervene.run_interventions(
            model,
            input_tensor,
            specs,
            method=options.method,
            stage=options.stage,
            target_index=result.target_index,
            base=result,
        )
        info = getattr(model, "weights_info", None)
        names = info.categories if info else ()
        result.intervention_labels = {
            index: _label(names, index) for done in result.interventions for index, _ in done.top5
        }
    if plan.get(SWEEP, "") is None:
        result.sweep = intervene.sweep(model, input_tensor, target_index=result.target_index)


def run_model(
    arch: str,
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

    ``categories`` defaults to ``model.weights_info.categories``; models built without weights need it (or get
    "class i" labels).
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
        arch=arch,
        weights=info.description if info else "weights given by the caller",
        top5=[(_label(names, int(i)), float(probs[i])) for i in top],
        target_index=index,
        target_label=_label(names, index),
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


def compute_cam(
    cam_method: BaseCAM, model: nn.Module, input_tensor: torch.Tensor, captured: CapturedPass, stage: int
) -> np.ndarray:
    """The method's own CAM math on the captured tensors, ReLU'd as grad-cam does, without its min-max scaling.

    Runs after the capture closed: Score-CAM's extra forwards (under no_grad) find no hook of ours on the model.
    """
    device = next(model.parameters()).device
    targets = [ClassifierOutputTarget(captured.target_index)]
    with torch.inference_mode(False), torch.no_grad():
        cam = cam_method.get_cam_image(
            input_tensor.to(device), stage_layer(model, stage), targets, captured.activations, captured.gradients, False
        )
    cam = np.maximum(np.asarray(cam, dtype=np.float32)[0], 0)
    return np.nan_to_num(cam, nan=0.0, posinf=0.0, neginf=0.0)


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


def agreement(results: dict[str, ModelResult]) -> dict[str, dict[str, float]]:
    """CAM agreement for every pair of models, keyed "first|second" in display order."""
    return {
        f"{first}|{second}": metrics.cam_agreement(results[first].cam, results[second].cam)
        for first, second in combinations(results, 2)
    }


def resolve_target(target: int | str | None, categories: Sequence[str]) -> int | None:
    """A class index from an index, a digit string or a class name (case and ``_`` vs space ignored); None stays None.

    Unknown names raise a one-line ``CbamVizError`` listing the closest class names.
    """
    if target is None or (isinstance(target, str) and not target.strip()):
        return None
    count = len(categories)
    if isinstance(target, bool):
        raise CbamVizError(f"target must be a class index or name, got {target!r}")
    if isinstance(target, int | np.integer) or (isinstance(target, str) and target.strip().isdigit()):
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


def _label(categories: Sequence[str], index: int) -> str:
    return categories[index] if index < len(categories) else f"class {index}"


def cam_method_for(method: str, model: nn.Module) -> BaseCAM:
    """The grad-cam method object for ``model``, made once and reused (constructing one walks the whole model).

    It is built with NO target layers, so grad-cam registers no hook; its hook holder is released at once anyway.
    Only its math (``get_cam_image``, which keeps no state between calls) is used, so threads can share it. The
    objects live on the model itself: they refer back to it, and a weak-keyed table would keep every model alive.
    """
    with _CAM_METHODS_LOCK:
        per_model = model.__dict__.setdefault("_cbam_viz_cam_methods", {})
        cam_method = per_model.get(method)
        if cam_method is None:
            cam_method = CAM_METHODS[method](model, target_layers=[])
            cam_method.activations_and_grads.release()
            if isinstance(cam_method, pytorch_grad_cam.ScoreCAM):
                cam_method.batch_size = SCORECAM_BATCH
            per_model[method] = cam_method
        return cam_method


def _check_archs(models: Iterable[str]) -> list[str]:
    return list(checked_models(models))


def validate_options(method: str, stage: int, view: str) -> None:
    """One-line ``CbamVizError`` for an unknown CAM method, stage or view (checked before any work starts)."""
    AnalysisOptions(method=method, stage=stage, view=view)


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _stats(values: np.ndarray) -> dict[str, float | None]:
    return {"mean": _number(values.mean()), "min": _number(values.min()), "max": _number(values.max())}


def _view_json(view: ModelView) -> dict:
    return {
        "mode": view.mode,
        "input_width": view.input_size[0],
        "input_height": view.input_size[1],
        "box": [float(v) for v in view.box],
        "note": view.note,
    }


def _model_json(result: ModelResult, shared_view: ModelView) -> dict:
    document = {
        "weights": result.weights,
        "top5": [{"label": label, "prob": _number(prob)} for label, prob in result.top5],
        "target": {"index": result.target_index, "label": result.target_label, "prob": _number(result.target_prob)},
        "cam": {
            "stage": result.cam_stage,
            "height": int(result.cam.shape[0]),
            "width": int(result.cam.shape[1]),
            **_stats(result.cam),
        },
        "channel_attention": {
            block: {"channels": int(vector.shape[0]), **_stats(vector)}
            for block, vector in result.channel_attention.items()
        },
        "spatial_attention": {
            block: {"height": int(grid.shape[0]), "width": int(grid.shape[1]), **_stats(grid)}
            for block, grid in result.spatial_attention.items()
        },
        "metrics": {name: _number(value) for name, value in result.metrics.items()},
    }
    if result.view is not None and result.view != shared_view:
        document["view"] = _view_json(result.view)
    if result.interventions or result.intervention_notes:
        document["interventions"] = [_intervention_json(result, done) for done in result.interventions] + [
            {"spec": spec, "note": note} for spec, note in result.intervention_notes.items()
        ]
    if result.sweep is not None:
        document["sweep"] = result.sweep.to_json()
    return document


def _intervention_json(result: ModelResult, done: Any) -> dict:
    """One ``InterventionResult`` with class labels (this model's) and the top-1 before, for the schema's entry."""
    document = done.to_json()
    for row in document["top5"]:
        row["label"] = result.intervention_labels.get(row["index"], f"class {row['index']}")
    document["target"] = {"index": done.target_index, "label": result.target_label}
    return document
