"""What an analysis gives back: ``ModelResult`` per model, ``Analysis`` per picture, and their JSON form.

Results keep numpy maps at the CAM layer's native grid; ``Analysis.to_json`` gives plain numbers (NaN as ``null``,
``json_number``) in the shape ``schema.ANALYSIS_JSON_SCHEMA`` describes, so the CLI, the HTTP API and tests agree.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import PIL.Image
import pytorch_grad_cam
import pytorch_grad_cam.score_cam
import tqdm

from cbam_viz.analysis.options import AnalysisOptions
from cbam_viz.analysis.schema import JSON_SCHEMA_VERSION
from cbam_viz.imaging.view import ModelView
from cbam_viz.vocab import ARCH_TITLES
from cbam_viz.weights.load import WeightsChoice

# grad-cam's Score-CAM draws a tqdm bar per CAM on stderr, which floods a server's log: the engine is quiet.
pytorch_grad_cam.score_cam.tqdm = SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))


@dataclass
class ModelResult:
    """Everything one model said about one image; maps at native resolution (``imaging.view.map_to_image`` aligns
    them with the picture)."""

    model_id: str  # the key in Analysis.models: the architecture, or a model card's id
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
    family: str = ""  # the architecture (resnet50 | se_resnet50 | cbam_resnet50); "" -> model_id, a paper model's
    title: str = ""  # the model's name on the page; "" -> the architecture's title

    def __post_init__(self) -> None:
        self.family = self.family or self.model_id
        self.title = self.title or ARCH_TITLES.get(self.family, self.model_id)


@dataclass
class Analysis:
    """One image through every requested model, plus how their CAMs agree."""

    image: PIL.Image.Image  # the display image (decoded, EXIF applied, longest side <= 1024)
    original_size: tuple[int, int]  # (width, height) of the input as the user sees it (EXIF applied)
    notes: tuple[str, ...]  # what decoding did, in plain words ("turned upright", "16-bit image scaled to 8 bit")
    view: ModelView
    method: str
    stage: int
    models: dict[str, ModelResult]  # those requested, in their lineup's order, keyed by model id
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

    @property
    def is_card(self) -> bool:
        """Whether a model card's models answered (their class names are the operator's, not ImageNet's)."""
        return self.weights is not None and self.weights.card is not None

    def title(self, model_id: str) -> str:
        """A model's name for people: its result's title (a card's title), or the architecture's for one not run."""
        result = self.models.get(model_id)
        return result.title if result is not None else ARCH_TITLES.get(model_id, model_id)

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
            "agreement": {
                pair: {k: json_number(v) for k, v in values.items()} for pair, values in self.agreement.items()
            },
            **({"pointing": self.pointing.to_json()} if self.pointing is not None else {}),
            **({"sanity": self.sanity.to_json()} if self.sanity is not None else {}),
            **({"deletion_insertion": self.curves.to_json()} if self.curves is not None else {}),
        }


def json_number(value: float | None) -> float | None:
    """A number for JSON: a float, or None (null) for NaN, infinity and a missing value."""
    return float(value) if value is not None and math.isfinite(value) else None


def _stats(values: np.ndarray) -> dict[str, float | None]:
    return {"mean": json_number(values.mean()), "min": json_number(values.min()), "max": json_number(values.max())}


def _view_json(view: ModelView) -> dict:
    return {
        "mode": view.mode,
        "input_width": view.input_size[0],
        "input_height": view.input_size[1],
        "box": [float(v) for v in view.box],
        "note": view.note,
        "cell_offset": view.geometry.offset,
    }


def _model_json(result: ModelResult, shared_view: ModelView) -> dict:
    document = {
        "family": result.family,
        "title": result.title,
        "weights": result.weights,
        "top5": [{"label": label, "prob": json_number(prob)} for label, prob in result.top5],
        "target": {"index": result.target_index, "label": result.target_label, "prob": json_number(result.target_prob)},
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
        "metrics": {name: json_number(value) for name, value in result.metrics.items()},
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
