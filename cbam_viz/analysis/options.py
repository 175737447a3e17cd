"""What one analysis is asked to do, as one frozen value that checks itself once, at the boundary.

The app, the CLI and ``pipeline.analyze`` all build an ``AnalysisOptions`` from what a user sent (strings from a
page, argv, keyword arguments) and pass the checked value on; nothing below re-parses a choice. Every refusal is a
one-line ``CbamVizError`` that quotes at most about 100 characters of what was sent.

The intervention grammar lives here too (``Intervention``, a SPEC string ``<where>:<gate>=<how>``):

* where: ``all``, a stage (``layer3``) or a block (``layer4.2``);
* gate: ``channel`` (SE or CBAM), ``spatial`` (CBAM only) or ``both`` (every gate the model has: SE's channel gate);
* how: ``one`` (Mc = 1 / Ms = 1: the gate passes everything), ``mean`` (the gate's output replaced by its mean over
  channels / positions), ``shuffle`` (the gate's values permuted over channels, or over positions for a spatial
  gate, with a fixed seed per block), ``keep-top-k:K`` (only the K strongest channels, or positions for a spatial
  gate, keep their gate value, the rest get 0; a K above the gate's size keeps everything). Strongest means by the
  gate's pre-sigmoid value, ties by index (``gates.strongest_first``): exactly the K that "Inside the gate" marks
  strongest, even where many gates are exactly 1.0 in float32.

Examples: ``layer3:spatial=one``, ``all:channel=mean``, ``layer4.2:both=one``, ``layer2:channel=keep-top-k:16``.
``Intervention.parse`` checks a spec once. Nothing here imports torch, so options are checked without loading a
model; ``analysis.intervene`` applies a parsed intervention to a model's gates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import LANGUAGES, catalogue, text
from cbam_viz.vocab import (
    CAM_METHODS,
    MAX_CLASS_NAME,
    MAX_SHOWN,
    PAPER_LINEUP,
    STAGE_DEPTHS,
    STAGES,
    TARGET_MODES,
    VIEWS,
    Lineup,
    quote,
    split_block,
    stage_blocks,
    whole_number,
)


def checked_models(value: Any, lineup: Lineup = PAPER_LINEUP, most: int | None = MAX_SHOWN) -> tuple[str, ...]:
    """Model names in the lineup's order, each known, each once, at most ``most`` of them (None: any number)."""
    if isinstance(value, str):
        value = [value]
    try:
        requested = list(value)
    except TypeError:
        raise CbamVizError(f"models must be a list of model names, got {quote(value)}") from None
    if most is not None and len(requested) > most:
        raise CbamVizError(f"at most {most} models can be compared at once, got {len(requested)} names")
    unknown = [name for name in requested if name not in lineup.ids]
    if unknown:
        raise CbamVizError(f"unknown model {quote(unknown[0])}: choose from {', '.join(lineup.ids)}")
    if not requested:
        titles = ", ".join(spec.title for spec in lineup.models)
        raise CbamVizError(text("error.no_model", models=titles))
    return tuple(name for name in lineup.ids if name in requested)


# ------------------------------------------------------------------------------------- the intervention grammar

GATES: tuple[str, ...] = ("channel", "spatial", "both")
HOWS: tuple[str, ...] = ("one", "mean", "shuffle", "keep-top-k")
SPEC_HELP = "<where>:<gate>=<how>, e.g. layer3:spatial=one, all:channel=mean, layer2:channel=keep-top-k:16"
_WHERE = re.compile(r"all|layer([1-9])(?:\.([0-9]{1,4}))?")


@dataclass(frozen=True)
class Intervention:
    """One checked intervention: which gates (``where`` x ``gate``) get which replacement (``how``, ``k``)."""

    where: str  # "all" | "layer3" | "layer4.2"
    gate: str  # "channel" | "spatial" | "both"
    how: str  # "one" | "mean" | "shuffle" | "keep-top-k"
    k: int | None = None  # keep-top-k only

    def __post_init__(self) -> None:
        match = _WHERE.fullmatch(self.where) if isinstance(self.where, str) else None
        if match is None:
            raise CbamVizError(
                f"intervention: where must be all, a stage (layer3) or a block (layer4.2), not {quote(self.where)}"
            )
        if match.group(1) is not None:
            stage = int(match.group(1))
            if stage not in STAGES:
                raise CbamVizError(
                    f"intervention: ResNet-50 has stages layer1-layer{len(STAGES)}, not {quote(self.where)}"
                )
            if match.group(2) is not None and int(match.group(2)) >= STAGE_DEPTHS[stage - 1]:
                last = STAGE_DEPTHS[stage - 1] - 1
                raise CbamVizError(f"intervention: layer{stage} has blocks .0-.{last}, not {quote(self.where)}")
        if self.gate not in GATES:
            raise CbamVizError(f"intervention: gate must be channel, spatial or both, not {quote(self.gate)}")
        if self.how not in HOWS:
            raise CbamVizError(f"intervention: how must be one, mean, shuffle or keep-top-k:K, not {quote(self.how)}")
        if self.how == "keep-top-k":
            if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
                raise CbamVizError(
                    f"intervention: keep-top-k needs a whole number K >= 1, e.g. keep-top-k:16, not {quote(self.k)}"
                )
        elif self.k is not None:
            raise CbamVizError(f"intervention: only keep-top-k takes a number, not {self.how}")

    @classmethod
    def parse(cls, spec: str | Intervention) -> Intervention:
        """``"layer2:channel=keep-top-k:16"`` -> Intervention; case and surrounding spaces are ignored."""
        if isinstance(spec, Intervention):
            return spec
        if not isinstance(spec, str):
            raise CbamVizError(f"intervention must be a string like {SPEC_HELP}; got {type(spec).__name__}")
        compact = "".join(spec.split()).lower()
        where, colon, rest = compact.partition(":")
        gate, equals, how = rest.partition("=")
        if not (colon and equals and where and gate and how):
            raise CbamVizError(f"bad intervention {quote(spec)}: expected {SPEC_HELP}")
        k = None
        if how.startswith("keep-top-k"):
            number = how.removeprefix("keep-top-k").removeprefix(":")
            k = whole_number(number)
            if k is None or not how.startswith("keep-top-k:"):
                raise CbamVizError(f"bad intervention {quote(spec)}: keep-top-k needs K, e.g. keep-top-k:16")
            how = "keep-top-k"
        return cls(where, gate, how, k)

    @property
    def spec(self) -> str:
        """The canonical spec string (what ``parse`` reads back to an equal value)."""
        how = f"keep-top-k:{self.k}" if self.how == "keep-top-k" else self.how
        return f"{self.where}:{self.gate}={how}"

    def __str__(self) -> str:
        return self.spec

    @property
    def gate_kinds(self) -> tuple[str, ...]:
        """The gate kinds this may touch: ``both`` is channel and spatial (a model lacking one skips it)."""
        return ("channel", "spatial") if self.gate == "both" else (self.gate,)

    def blocks(self, gated: Iterable[str]) -> list[str]:
        """The blocks of ``gated`` (block names of a model with gates) that ``where`` covers, in block order."""
        gated = list(gated)
        if self.where == "all":
            return [block for stage in STAGES for block in stage_blocks(gated, stage)]
        if "." in self.where:
            return [self.where] if self.where in gated else []
        return stage_blocks(gated, split_block(self.where + ".0")[0])


SWEEP = "sweep"  # the spec that asks for the per-stage sweep (every stage x gate set to one)


def checked_interventions(value: Any) -> tuple[str, ...]:
    """Intervention specs in canonical form, each once, in the order given; ``"sweep"`` asks for the sweep."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise CbamVizError(f"interventions must be a list of specs, not {quote(value)}") from None
    if len(items) > 32:
        raise CbamVizError(f"at most 32 interventions per analysis, not {len(items)}")
    specs: list[str] = []
    for item in items:
        spec = SWEEP if isinstance(item, str) and item.strip().lower() == SWEEP else Intervention.parse(item).spec
        if spec not in specs:
            specs.append(spec)
    return tuple(specs)


def checked_blocks(value: Any) -> tuple[str, ...]:
    """Block names like ``layer4.2`` (a stage 1-4 and a block index), each once, in the order given."""
    if isinstance(value, str):
        value = [value]
    blocks: list[str] = []
    for item in value or ():
        if not isinstance(item, str) or re.fullmatch(r"layer[1-4]\.\d{1,2}", item.strip()) is None:
            raise CbamVizError(f"gate steps need block names like layer4.2, not {quote(item)}")
        if item.strip() not in blocks:
            blocks.append(item.strip())
    return tuple(blocks)


def checked_box(value: Any) -> tuple[float, float, float, float] | None:
    """A box as four numbers ``x0, y0, x1, y1`` (a list, or text such as ``"10,20,200,180"``); empty means none.

    Only its form is checked here; whether it lies on the picture is checked against the picture
    (``checks.pointing.box_game``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = value.replace(";", ",").split(",") if isinstance(value, str) else value
    try:
        numbers = tuple(float(part) for part in parts)
    except (TypeError, ValueError):
        raise CbamVizError(text("error.box_numbers", box=quote(value))) from None
    if len(numbers) != 4 or not all(math.isfinite(number) for number in numbers):
        raise CbamVizError(text("error.box_numbers", box=quote(value)))
    x0, y0, x1, y1 = numbers
    if not (x0 < x1 and y0 < y1):
        raise CbamVizError(text("error.box_order", box=quote(value)))
    return numbers


def _target(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CbamVizError(f"target must be a class index or name, got {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise CbamVizError(f"target must be a class index or name, got {type(value).__name__}")
    if len(value) > MAX_CLASS_NAME:
        raise CbamVizError(f"the class name is {len(value)} characters long; class names have at most {MAX_CLASS_NAME}")
    value = value.strip()
    if not value:
        return None
    number = whole_number(value)
    if number is None and value.isdigit():  # "²", or more digits than any class index
        raise CbamVizError(f"target class {quote(value, 20)} is not a class index: use 0-9 digits or a class name")
    return value if number is None else number


def _stage(value: Any) -> int:
    try:
        stage = int(value)
    except (TypeError, ValueError):
        raise CbamVizError(text("error.stage", stage=quote(value))) from None
    if stage not in STAGES or isinstance(value, bool) or (isinstance(value, float) and value != stage):
        raise CbamVizError(text("error.stage", stage=quote(value)))
    return stage


def target_mode_value(mode: Any) -> str:
    """The stable target mode (``top1`` | ``shared``) from its value or its label on the page."""
    if mode in TARGET_MODES:
        return mode
    for value in TARGET_MODES:  # the page's label in any language
        if any(mode == catalogue(code)[f"target_mode.{value}"] for code in LANGUAGES):
            return value
    raise CbamVizError(f"unknown target mode {quote(mode)}: choose top1 (each model's top-1) or shared (one class)")


@dataclass(frozen=True)
class AnalysisOptions:
    """Models, weights, target class, CAM method, stage, view and faithfulness, checked on creation."""

    models: tuple[str, ...] | None = None  # None: the first three of the weights' lineup (the paper's three)
    weights: Any = "auto"  # "auto", a set, an entry, a checkpoint path, or a resolved weights.WeightsChoice
    target: int | str | None = None  # None: each model's own top-1
    method: str = "gradcam"
    stage: int = 4
    view: str = "whole"
    faithfulness: bool = False
    # gate interventions (``Intervention`` specs, canonical form) and "sweep"; () = none, the analysis is unchanged
    interventions: tuple[str, ...] = ()
    # blocks ("layer4.2") whose gates record every step in the same single hooked pass (gates.GateSteps); () = off
    gate_steps: tuple[str, ...] = ()
    # a box (x0, y0, x1, y1) in pixels of the displayed picture around the object: the pointing game (checks.pointing)
    box: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        lineup = getattr(self.weights, "lineup", PAPER_LINEUP)  # a resolved WeightsChoice knows its models
        set_(self, "models", checked_models(lineup.default_ids if self.models is None else self.models, lineup))
        set_(self, "target", _target(self.target))
        set_(self, "stage", _stage(self.stage))
        if self.method not in CAM_METHODS:
            raise CbamVizError(f"unknown CAM method {quote(self.method)}: choose from {', '.join(CAM_METHODS)}")
        if self.view not in VIEWS:
            raise CbamVizError(f"view must be 'whole' or 'crop' (got {quote(self.view)})")
        if isinstance(self.weights, str) and len(self.weights) > 1000:
            raise CbamVizError(f"the weights name is {len(self.weights)} characters long: use a set name or a path")
        set_(self, "faithfulness", bool(self.faithfulness))
        set_(self, "interventions", checked_interventions(self.interventions))
        set_(self, "gate_steps", checked_blocks(self.gate_steps))
        set_(self, "box", checked_box(self.box))

    @classmethod
    def from_request(cls, *, target_mode: Any = "top1", target_class: Any = None, **values: Any) -> AnalysisOptions:
        """Options from the page or the API, where the target is a mode plus a class name."""
        mode = target_mode_value(target_mode)
        target = None
        if mode == "shared":
            target = _target(target_class)
            if target is None:
                raise CbamVizError(text("error.pick_class", top1=text("target_mode.top1")))
        return cls(target=target, **values)

    def with_(self, **changes: Any) -> AnalysisOptions:
        """A copy with ``changes``, checked again like any new value."""
        return replace(self, **changes)
