"""Gate interventions (the attention lab): switch a gate off, flatten it, shuffle it or keep its top K, and see
what the model then predicts and where its CAM looks.

The spec grammar (``<where>:<gate>=<how>``) and ``Intervention`` live in ``options``, without torch; this module
applies them. ``replacements`` maps an intervention onto a model's gates; a gate the model lacks is a one-line error
(``spatial`` on SE, anything on ResNet-50), never a silent no-op.

Interventions are forward hooks on the gates' sigmoids, owned by ``capture.AttentionCapture``: registered and removed
in ``finally`` under the model's lock, acting only on the owner thread's forwards, so analyses running at the same
time on the same model keep their normal numbers.

* ``run_interventions``: per intervention one hooked pass with gradients, as in a normal analysis, giving top-5, the
  target probability and its change, and the CAM (same method, native grid) with its correlation to the original.
* ``sweep``: for every stage and gate kind, the target probability's change when that stage's gates are set to
  ``one`` (or another ``how``); no CAM, so one batched no-grad forward with per-sample hooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cbam_viz.analysis import metrics
from cbam_viz.analysis.cam import cam_method_for, compute_cam
from cbam_viz.analysis.capture import AttentionCapture, GateKey, Replacement, capture_pass, gate_modules
from cbam_viz.analysis.gates import strongest_first
from cbam_viz.analysis.options import Intervention
from cbam_viz.analysis.results import ModelResult, json_number
from cbam_viz.analysis.run import run_model, validate_options
from cbam_viz.errors import CbamVizError
from cbam_viz.model.resnet import ResNet
from cbam_viz.vocab import STAGES, split_block
from cbam_viz.weights.load import model_family, model_title

SHUFFLE_SEED = 14  # the permutation of each block is drawn from SHUFFLE_SEED and the block's position
# "stages" beats "whole" once the arithmetic outweighs per-call overhead. Measured on 2 CPU cores: the demo models
# (16 x 24 x 24 = 9k values) 2.9x an analysis as one batch, 4.2x by stages; ImageNet size (64 x 56 x 56 = 200k)
# 8.1x as one batch, 5.8x by stages.
STAGES_MIN_ELEMENTS = 65_536


@dataclass
class InterventionResult:
    """What one model said about the picture with one intervention in place, next to the un-intervened ``base``."""

    intervention: Intervention
    top5: list[tuple[int, float]]  # (class index, probability), most likely first
    target_index: int  # the class explained, the same as the base's
    target_prob: float
    target_prob_change: float  # target_prob - base.target_prob
    cam: np.ndarray  # (h, w) float32 at the CAM layer's native grid, >= 0, not normalised (as ModelResult.cam)
    cam_stage: int
    cam_correlation: float  # Pearson correlation with the base CAM; NaN when either is constant
    channel_attention: dict[str, np.ndarray] = field(default_factory=dict)  # gates as applied in this pass
    spatial_attention: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """The intervention's canonical spec string."""
        return self.intervention.spec

    @property
    def cam_stats(self) -> dict[str, float]:
        """The intervened CAM's mean, min and max (as ``ModelResult`` reports its own)."""
        return {"mean": float(self.cam.mean()), "min": float(self.cam.min()), "max": float(self.cam.max())}

    def to_json(self) -> dict:
        """Numbers and names only (NaN -> null): spec, top5, target_prob, target_prob_change, cam summary."""
        return {
            "spec": self.spec,
            "top5": [{"index": index, "prob": json_number(prob)} for index, prob in self.top5],
            "target_prob": json_number(self.target_prob),
            "target_prob_change": json_number(self.target_prob_change),
            "cam": {
                "height": int(self.cam.shape[0]),
                "width": int(self.cam.shape[1]),
                **{key: json_number(value) for key, value in self.cam_stats.items()},
                "correlation": json_number(self.cam_correlation),
            },
        }


def parse_all(specs: Iterable[str | Intervention]) -> list[Intervention]:
    """Parse several specs (a CLI's repeated ``--intervene``); the first bad one raises."""
    return [Intervention.parse(spec) for spec in specs]


def check(model: nn.Module, interventions: Iterable[str | Intervention]) -> list[Intervention]:
    """Parse and check every intervention against ``model`` before any work starts (one-line errors)."""
    parsed = parse_all(interventions)
    for intervention in parsed:
        replacements(intervention, model)
    return parsed


def replacements(intervention: Intervention, model: nn.Module) -> dict[GateKey, Replacement]:
    """The capture's ``replace`` mapping of ``intervention`` on ``model`` (one-line error if it lacks those gates)."""
    channel, spatial = gate_modules(model)
    title = _title(model)
    if not channel:
        raise CbamVizError(f"{title} has no attention gates to switch off: choose SE-ResNet-50 or CBAM-ResNet-50")
    if intervention.gate == "spatial" and not spatial:
        how = intervention.spec.split("=", 1)[1]
        where = intervention.where
        raise CbamVizError(f"{title} has no spatial gate (SE gates channels only): use {where}:channel={how}")
    gates = {"channel": channel, "spatial": spatial}
    # ``both`` is every gate the model has: SE's channel gate alone, CBAM's two
    keys = [(block, kind) for kind in intervention.gate_kinds for block in intervention.blocks(gates[kind])]
    if not keys:
        raise CbamVizError(f"{title} has no {intervention.gate} gate at {intervention.where}")
    return {key: _replacement(intervention.how, intervention.k, key) for key in keys}


def run_interventions(
    model: nn.Module,
    input_tensor: torch.Tensor,
    interventions: Iterable[str | Intervention],
    *,
    method: str = "gradcam",
    stage: int = 4,
    target_index: int | None = None,
    base: ModelResult | None = None,
) -> list[InterventionResult]:
    """Each intervention in its own hooked pass with gradients, as a normal analysis: prediction, target and CAM.

    ``base`` is the un-intervened ``analysis.run_model`` result for the same input, method and stage (computed here
    when None). The target is ``target_index``, else the base's target, so each change compares one class.
    """
    parsed = check(model, interventions)
    validate_options(method, stage, "whole")
    if base is None:
        base = run_model(_arch(model), model, input_tensor, method=method, stage=stage, target=target_index)
    if base.cam_stage != stage:
        raise ValueError(f"the base result's CAM is of stage {base.cam_stage}, not {stage}")
    if target_index is not None and int(target_index) != base.target_index:
        raise ValueError(f"the base result explains class {base.target_index}, not {target_index}")
    target = base.target_index
    cam_method = cam_method_for(method, model)
    results = []
    for intervention in parsed:
        replace = replacements(intervention, model)
        captured = capture_pass(
            model, input_tensor, stage=stage, target=target, gradients=cam_method.uses_gradients, replace=replace
        )
        with AttentionCapture(model, None, replace=replace):  # methods that run forwards (Score-CAM) see it too
            cam = compute_cam(cam_method, model, input_tensor, captured, stage)
        probs = metrics.softmax(captured.logits)
        top = np.argsort(-probs, kind="stable")[:5]
        results.append(
            InterventionResult(
                intervention=intervention,
                top5=[(int(i), float(probs[i])) for i in top],
                target_index=target,
                target_prob=float(probs[target]),
                target_prob_change=float(probs[target]) - base.target_prob,
                cam=cam,
                cam_stage=stage,
                cam_correlation=metrics.cam_agreement(base.cam, cam)["cam_correlation"],
                channel_attention=captured.channel,
                spatial_attention=captured.spatial,
            )
        )
    return results


@dataclass(frozen=True)
class SweepEntry:
    """One row of a sweep: one stage's gates of one kind set to ``how``, and the target's probability then."""

    stage: int
    gate: str  # "channel" | "spatial"
    spec: str  # e.g. "layer3:spatial=one"
    target_prob: float
    change: float  # target_prob - base_prob
    top1: int  # the class the model then predicts


@dataclass(frozen=True)
class SweepResult:
    """The target probability with each stage's gates of one kind replaced, one entry per (stage, gate)."""

    target_index: int
    base_prob: float
    base_top1: int
    entries: tuple[SweepEntry, ...]  # stage-major: layer1 channel, layer1 spatial, layer2 channel, ...

    def change(self, stage: int, gate: str) -> float:
        """The target probability's change when ``stage``'s ``gate`` gates were replaced (KeyError when not swept)."""
        for entry in self.entries:
            if entry.stage == stage and entry.gate == gate:
                return entry.change
        raise KeyError((stage, gate))

    def to_json(self) -> dict:
        """Numbers and names only (NaN -> null): the base probability and one row per stage and gate."""
        return {
            "target_index": self.target_index,
            "base_prob": json_number(self.base_prob),
            "base_top1": self.base_top1,
            "entries": [
                {
                    "stage": e.stage,
                    "gate": e.gate,
                    "spec": e.spec,
                    "target_prob": json_number(e.target_prob),
                    "change": json_number(e.change),
                    "top1": e.top1,
                }
                for e in self.entries
            ],
        }


def sweep_interventions(model: nn.Module, how: str = "one") -> list[Intervention]:
    """``layer{s}:{gate}={how}`` for every stage and every gate kind the model has (8 for CBAM, 4 for SE)."""
    channel, spatial = gate_modules(model)
    if not channel:
        raise CbamVizError(
            f"{_title(model)} has no attention gates to switch off: choose SE-ResNet-50 or CBAM-ResNet-50"
        )
    kinds = ("channel", "spatial") if spatial else ("channel",)
    return [Intervention.parse(f"layer{stage}:{gate}={how}") for stage in STAGES for gate in kinds]


def sweep(
    model: nn.Module,
    input_tensor: torch.Tensor,
    *,
    target_index: int | None = None,
    how: str = "one",
    batch: bool | str = True,
) -> SweepResult:
    """Every stage x gate kind set to ``how``: the change in the target probability (default: the top-1 class).

    No CAM is needed, so no gradients; the copies' gates are replaced by per-sample hooks. ``batch``:

    * ``"stages"``: one un-intervened forward keeps each stage's input; per stage, its intervened copies (2 for CBAM,
      1 for SE) start from that input as one batch, so the unchanged stages before it are not computed again (about
      6 forwards' worth of work for CBAM instead of 9). Needs ``resnet.ResNet``'s own forward.
    * ``"whole"``: the picture and all 8 (CBAM) or 4 (SE) copies as one batch through the model's forward; fewer,
      larger calls, which win while per-call overhead outweighs the arithmetic (small models, small pictures).
    * True: "stages" when the first stage's input has at least ``STAGES_MIN_ELEMENTS`` values, else "whole".
    * False: one plain no-grad forward each.

    All give the same numbers (to float rounding).
    """
    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, 3, H, W) tensor, got shape {tuple(input_tensor.shape)}")
    interventions = sweep_interventions(model, how)
    device = next(model.parameters()).device
    x = input_tensor.detach().to(device)
    if batch not in (True, False, "stages", "whole"):
        raise ValueError(f"batch must be True, False, 'stages' or 'whole', not {batch!r}")
    with torch.no_grad():
        if batch in (True, "stages") and _plain_resnet(model):
            logits = _sweep_from_stage_inputs(model, x, interventions, "stages" if batch == "stages" else None)
        elif batch:
            logits = _sweep_whole(model, x, interventions)
        else:
            outputs = [model(x)]
            for intervention in interventions:
                with AttentionCapture(model, None, replace=replacements(intervention, model)):
                    outputs.append(model(x))
            logits = torch.cat(outputs)
    host = logits.float().cpu().numpy()
    target = int(host[0].argmax()) if target_index is None else int(target_index)
    if not 0 <= target < host.shape[1]:
        raise CbamVizError(f"target class {target} does not exist: these weights have {host.shape[1]} classes")
    probs = [float(metrics.softmax(row)[target]) for row in host]
    top1 = [int(row.argmax()) for row in host]
    entries = tuple(
        SweepEntry(
            stage=split_block(intervention.where + ".0")[0],
            gate=intervention.gate,
            spec=intervention.spec,
            target_prob=prob,
            change=prob - probs[0],
            top1=predicted,
        )
        for intervention, prob, predicted in zip(interventions, probs[1:], top1[1:], strict=True)
    )
    return SweepResult(target_index=target, base_prob=probs[0], base_top1=top1[0], entries=entries)


def _sweep_whole(model: nn.Module, x: torch.Tensor, interventions: Sequence[Intervention]) -> torch.Tensor:
    """Logits of the picture and of every intervened copy, all as one batch through the model's own forward."""
    count = len(interventions) + 1  # row 0: the picture as it is
    replace: dict[GateKey, Replacement] = {}
    for row, intervention in enumerate(interventions, start=1):
        for key, replacement in replacements(intervention, model).items():
            replace[key] = _rows_only(replacement, row, count, replace.get(key))
    with AttentionCapture(model, None, replace=replace):
        return model(x.expand(count, *x.shape[1:]))


def _plain_resnet(model: nn.Module) -> bool:
    """Does ``model`` run exactly ``ResNet.forward`` (so its stages can be entered one by one)?"""
    kind = type(model)
    return (
        isinstance(model, ResNet)
        and kind.forward is ResNet.forward
        and kind.forward_features is ResNet.forward_features
    )


def _sweep_from_stage_inputs(
    model: ResNet, x: torch.Tensor, interventions: Sequence[Intervention], strategy: str | None
) -> torch.Tensor:
    """Logits (1 + len(interventions), classes): the picture as it is, then each stage intervention, each copy
    starting at its stage's input as ``ResNet.forward`` computes it (stem, stages, pool, fc).

    With ``strategy`` None, a small first-stage input sends everything through ``_sweep_whole`` instead.
    """
    stages = model.stages
    hidden = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    if strategy is None and hidden.numel() < STAGES_MIN_ELEMENTS:
        return _sweep_whole(model, x, interventions)
    stage_inputs = []
    for stage in stages:
        stage_inputs.append(hidden)
        hidden = stage(hidden)
    rows: list[torch.Tensor] = [model.fc(torch.flatten(model.avgpool(hidden), 1))]
    by_stage: dict[int, list[Intervention]] = {}
    for intervention in interventions:
        by_stage.setdefault(split_block(intervention.where + ".0")[0], []).append(intervention)
    order = {intervention: index for index, intervention in enumerate(interventions)}
    results: dict[int, torch.Tensor] = {}
    for stage, group in by_stage.items():
        replace: dict[GateKey, Replacement] = {}
        for row, intervention in enumerate(group):
            for key, replacement in replacements(intervention, model).items():
                replace[key] = _rows_only(replacement, row, len(group), replace.get(key))
        start = stage_inputs[stage - 1]
        hidden = start.expand(len(group), *start.shape[1:])
        with AttentionCapture(model, None, replace=replace):
            for layer in stages[stage - 1 :]:
                hidden = layer(hidden)
        logits = model.fc(torch.flatten(model.avgpool(hidden), 1))
        for row, intervention in enumerate(group):
            results[order[intervention]] = logits[row : row + 1]
    rows += [results[index] for index in range(len(interventions))]
    return torch.cat(rows)


# ------------------------------------------------------------------------------------------------- replacements


def _replacement(how: str, k: int | None, key: GateKey) -> Replacement:
    """The function of a gate's output (CBAM channel (N, C); SE (N, C, 1, 1); spatial (N, 1, h, w)) that replaces it.

    Every one works per picture on the flattened gate, so batches and per-sample masks need nothing special.
    """
    block, kind = key
    stage, index = split_block(block)
    seed = SHUFFLE_SEED * 1000 + stage * 100 + index * 2 + (kind == "spatial")

    def replace(output: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        flat = output.flatten(1)
        if how == "one":
            new = torch.ones_like(flat)
        elif how == "mean":
            new = flat.mean(dim=1, keepdim=True).expand_as(flat)
        elif how == "shuffle":
            permutation = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(seed))
            new = flat[:, permutation.to(flat.device)]
        else:
            keep = min(int(k), flat.shape[1])
            strongest = strongest_first(logits.flatten(1))[:, :keep]
            new = flat * torch.zeros_like(flat).scatter_(1, strongest, 1.0)
        return new.reshape(output.shape)

    return replace


def _rows_only(replacement: Replacement, row: int, count: int, previous: Replacement | None) -> Replacement:
    """Apply ``replacement`` to batch row ``row`` only (after ``previous``, another row's replacement, if any)."""

    def replace(output: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if previous is not None:
            output = previous(output, logits)
        rows = torch.zeros(count, dtype=torch.bool, device=output.device)
        rows[row] = True
        return torch.where(rows.view(count, *([1] * (output.ndim - 1))), replacement(output, logits), output)

    return replace


# ------------------------------------------------------------------------------------------------------ helpers


def _arch(model: nn.Module) -> str:
    return model_family(model) if hasattr(model, "config") else "model"


def _title(model: nn.Module) -> str:
    return model_title(model) if hasattr(model, "config") else "this model"


__all__: Sequence[str] = (
    "Intervention",
    "InterventionResult",
    "SweepEntry",
    "SweepResult",
    "check",
    "parse_all",
    "replacements",
    "run_interventions",
    "sweep",
    "sweep_interventions",
)
