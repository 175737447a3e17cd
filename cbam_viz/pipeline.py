"""``analyze``: one picture through every requested model, with its interventions and the pointing game.

The one orchestrator the app, the CLI and scripts call: decode the picture once, prepare one input per preprocessing,
run each model (``analysis.run.run_model``), plan and run the interventions against each model's own result, measure
CAM agreement between models, and play the pointing game on a box when one is given. It sits above ``checks``
because the pointing game is one of the checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from torch import nn

from cbam_viz.analysis import intervene, metrics
from cbam_viz.analysis.cam import class_label, resolve_target
from cbam_viz.analysis.capture import gate_modules
from cbam_viz.analysis.models import get_models
from cbam_viz.analysis.options import SWEEP, AnalysisOptions, Intervention
from cbam_viz.analysis.results import Analysis, ModelResult
from cbam_viz.analysis.run import run_model
from cbam_viz.checks import pointing
from cbam_viz.errors import CbamVizError
from cbam_viz.imaging.decode import decode_image, decode_notes, display_image
from cbam_viz.imaging.view import ModelView, prepare_input
from cbam_viz.vocab import has_channel_attention
from cbam_viz.weights.load import model_family, model_title, resolve_weights
from cbam_viz.weights.registry import Preprocess


def analyze(
    image: PIL.Image.Image | str | Path | bytes,
    options: AnalysisOptions | None = None,
    *,
    device: str | torch.device | None = None,
    weights_dir: Path | None = None,
    **fields: Any,
) -> Analysis:
    """Analyse one image with every requested model: top-5, target class, CAM of the stage and all attention maps.

    ``options`` says what to compute; without it, the keyword ``fields`` build one (``weights``, a model card's
    ``models.toml`` among them, ``models``,
    ``method``, ``target``, ``stage``, ``view``, ``faithfulness``). A target of None explains each model's own top-1;
    an index or a class name explains that one class in every model. ``image`` may be an already decoded picture
    (``imaging.decode.decode_image``): it is not decoded again and its notes are kept. Bad arguments and unusable images
    raise ``CbamVizError`` (``ImageError``) with a one-line message. ``weights_dir`` replaces the repository's
    weights/ folder (deployments, tests).
    """
    if options is None:
        if str(fields.get("weights", "")).endswith(".toml"):  # a model card: its ids are the models to check
            fields["weights"] = resolve_weights(fields["weights"], weights_dir)
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
            gate_steps=options.gate_steps if has_channel_attention(model_family(model)) else (),  # ResNet-50 has none
        )
        result.view = model_view.for_model(model)
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


def pointing_on_box(analysis: Analysis, box: Sequence[float]) -> pointing.PointingReport:
    """The pointing game (``pointing.box_game``) on a box given in pixels of the picture as the user sees it (EXIF
    applied, full size), scaled onto the displayed copy the maps are laid on; the report keeps the given pixels."""
    scale = analysis.image.width / analysis.original_size[0]
    report = pointing.box_game(analysis, [value * scale for value in box])
    report.region["box"] = [round(value / scale, 2) for value in report.region["box"]]
    return report


def intervention_plan(models: dict[str, nn.Module], specs: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """Per model, spec -> None (run it) or the one line why this model cannot (checked before any work starts).

    A spec that no chosen model can take (anything on ResNet-50 alone, ``spatial`` without CBAM) is a one-line error
    that gives each chosen model's reason and names no other model; when another chosen model has the gate, the model
    without it gets a note instead, so a comparison still runs.
    """
    if not specs:
        return {}
    plan: dict[str, dict[str, str | None]] = {arch: {} for arch in models}
    for spec in specs:
        errors = []
        for arch, model in models.items():
            try:
                if not gate_modules(model)[0]:  # the engine's own line would advise models that were not chosen
                    raise CbamVizError(f"{model_title(model)} has no attention gates to switch off")
                if spec == SWEEP:
                    intervene.sweep_interventions(model)
                else:
                    intervene.replacements(Intervention.parse(spec), model)
                plan[arch][spec] = None
            except CbamVizError as error:
                plan[arch][spec] = str(error)
                errors.append(str(error))
        if len(errors) == len(models):
            if spec != SWEEP:
                Intervention.parse(spec)  # a spec that cannot be read says so, before any model's reason
            raise CbamVizError("; ".join(dict.fromkeys(errors)))
    return plan


def _intervene(
    result: ModelResult, model: nn.Module, input_tensor: torch.Tensor, plan: dict[str, str | None], options
) -> None:
    """Run this model's planned interventions against its own un-intervened ``result`` (same target, method, stage)."""
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
            index: class_label(names, index) for done in result.interventions for index, _ in done.top5
        }
    if plan.get(SWEEP, "") is None:
        result.sweep = intervene.sweep(model, input_tensor, target_index=result.target_index)


def agreement(results: dict[str, ModelResult]) -> dict[str, dict[str, float]]:
    """CAM agreement for every pair of models, keyed "first|second" in display order."""
    return {
        f"{first}|{second}": metrics.cam_agreement(results[first].cam, results[second].cam)
        for first, second in combinations(results, 2)
    }
