"""One batch of a study: batched hooked passes per model, then each image's row per model.

The numbers are the single-picture analysis's: the same input preparation (``imaging.prepare_input`` of the decoded
picture), the same hooks (``analysis.capture.AttentionCapture``), the same CAM math (``analysis.cam.compute_cam``,
per image on its slice of the batch), the same target (the image's true class) and the same map geometry
(``imaging.map_to_image`` onto the displayed copy, ``imaging.display_image``) and metrics (``analysis.metrics``)
as ``pipeline.analyze`` followed by ``checks.pointing.box_game`` / ``mask_game``. Only the forward and the backward
run on a batch: in eval mode each image's logits and CAM gradients depend on that image alone (the backward of the
sum of the targets' scores gives each image its own gradient), so they equal the one-image pass up to float
rounding.

With ``sweep``, each model with attention gates also runs the gates-off sweep of the single-picture analysis
(``analysis.intervene.sweep_interventions``: every stage's gates of each kind set to ``one``, through the same
``replacements`` on ``AttentionCapture``), one batched no-grad forward per stage and gate kind, giving each image's
top-1 correctness and true-class probability then.

Pictures are batched by the size of their input tensor (``view="whole"`` keeps each picture's aspect ratio, so a
folder of photos gives several sizes; ``crop`` gives one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cbam_viz.analysis import metrics
from cbam_viz.analysis.cam import cam_method_for, class_label, compute_cam
from cbam_viz.analysis.capture import AttentionCapture, CapturedPass, stage_layer
from cbam_viz.analysis.intervene import replacements, sweep_interventions
from cbam_viz.errors import ImageError
from cbam_viz.imaging.decode import display_image
from cbam_viz.imaging.view import ModelView, map_to_image, prepare_input
from cbam_viz.study import measures
from cbam_viz.study.sources import Loaded, load
from cbam_viz.vocab import STAGES, has_channel_attention, last_block
from cbam_viz.weights.load import model_family

SWEEP_HOW = "one"  # what the sweep sets each stage's gates to, as the app's single-picture sweep does

Swept = dict[str, tuple[bool, float]]  # "layer<s>:<gate>=one" -> (top-1 correct, true-class probability)


@dataclass
class Output:
    """One image's pass through one model, on the host."""

    logits: np.ndarray  # (classes,)
    cam: np.ndarray  # (h, w) native grid, ReLU'd
    channel: dict[str, np.ndarray]  # block -> (C,)
    spatial: dict[str, np.ndarray]  # block -> (h, w)


def batch_pass(
    model: nn.Module, inputs: torch.Tensor, targets: Sequence[int], *, method: str, stage: int
) -> list[Output]:
    """``model`` on a (N, 3, H, W) batch: logits, each image's CAM of its own target, and every gate."""
    cam_method = cam_method_for(method, model)
    device = next(model.parameters()).device
    batch = inputs.detach().to(device)
    gradients = cam_method.uses_gradients
    with torch.inference_mode(False), torch.set_grad_enabled(gradients):
        with AttentionCapture(model, stage_layer(model, stage)) as capture:
            logits = model(batch)
        activations = capture.cam_activations
        if activations is None:
            raise RuntimeError(f"layer{stage} did not run in the forward pass")
        grads = None
        if gradients:
            chosen = torch.as_tensor(list(targets), device=logits.device)[:, None]
            grads = torch.autograd.grad(logits.gather(1, chosen).sum(), activations)[0]
    parts = [logits, activations, *capture.channel.values(), *capture.spatial.values()]
    parts += [grads] if grads is not None else []
    flat = torch.cat([part.detach().float().reshape(-1) for part in parts]).cpu().numpy()  # one copy (GPU)
    pieces = np.split(flat, np.cumsum([part.numel() for part in parts])[:-1])
    host = [piece.reshape(tuple(part.shape)) for piece, part in zip(pieces, parts, strict=True)]
    host_logits, host_activations = host[0], host[1]
    split = 2 + len(capture.channel)
    channel = dict(zip(capture.channel, host[2:split], strict=True))
    spatial = dict(zip(capture.spatial, host[split : split + len(capture.spatial)], strict=True))
    host_grads = host[-1] if grads is not None else None
    outputs = []
    for i, target in enumerate(targets):
        one = CapturedPass(
            host_logits[i],
            int(target),
            host_activations[i : i + 1],
            None if host_grads is None else host_grads[i : i + 1],
            {},
            {},
        )
        cam = compute_cam(cam_method, model, batch[i : i + 1], one, stage)
        outputs.append(
            Output(
                host_logits[i],
                cam,
                {block: values[i] for block, values in channel.items()},
                {block: values[i] for block, values in spatial.items()},
            )
        )
    return outputs


def sweep_pass(model: nn.Module, inputs: torch.Tensor, targets: Sequence[int]) -> list[Swept]:
    """Each image's top-1 correctness and true-class probability with each stage's gates of each kind set to
    ``SWEEP_HOW`` (one batched no-grad forward per intervention): the single-picture sweep, for a batch."""
    device = next(model.parameters()).device
    batch = inputs.detach().to(device)
    swept: list[Swept] = [{} for _ in targets]
    for intervention in sweep_interventions(model, SWEEP_HOW):
        with torch.no_grad(), AttentionCapture(model, None, replace=replacements(intervention, model)):
            logits = model(batch).float().cpu().numpy()
        for i, target in enumerate(targets):
            probs = metrics.softmax(logits[i])
            swept[i][intervention.spec] = (bool(int(logits[i].argmax()) == int(target)), float(probs[int(target)]))
    return swept


@dataclass
class Prepared:
    """A loaded image made ready: its displayed copy's size, its object there, and one input per preprocess."""

    loaded: Loaded
    size: tuple[int, int]  # (width, height) of the displayed copy: where maps are laid
    region: measures.Region | None
    inputs: dict[Any, tuple[torch.Tensor, ModelView]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def prepare(loaded: Loaded, preprocesses: Iterable[Any], view: str) -> Prepared:
    """The displayed copy's geometry, the region scaled onto it (boxes clipped with a note) and the input of each
    of ``preprocesses`` (``weights.registry.Preprocess``: the models' evaluation transforms)."""
    picture = loaded.picture
    shown = display_image(picture)
    scale = shown.width / picture.width
    prepared = Prepared(loaded, shown.size, None, notes=list(loaded.notes))
    tolerance = measures.TOLERANCE_PX * scale
    if loaded.mask is not None:
        mask = loaded.mask
        if mask.shape != (shown.height, shown.width):  # as checks.pointing.mask_game resamples it
            resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(shown.size, Image.Resampling.NEAREST)
            mask = np.asarray(resized) > 127
        if mask.any():
            prepared.region = measures.mask_region(mask, tolerance)
    elif loaded.boxes:
        prepared.region = _box_region(loaded.boxes, picture.size, shown.size, scale, tolerance, prepared.notes)
    for preprocess in preprocesses:
        if preprocess not in prepared.inputs:
            prepared.inputs[preprocess] = prepare_input(picture, preprocess, view)
    return prepared


@dataclass(frozen=True)
class Skipped:
    """An item that could not be used, and the one line why."""

    image_id: str
    reason: str


class Preparing(torch.utils.data.Dataset):
    """Items -> ``Prepared`` (or ``Skipped``): what DataLoader workers do (decode, region, inputs), so the main
    process only runs the models. An unusable picture is a ``Skipped``, never an exception."""

    def __init__(self, items: Sequence[Any], preprocesses: Sequence[Any], view: str) -> None:
        self.items, self.preprocesses, self.view = list(items), list(dict.fromkeys(preprocesses)), view

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Prepared | Skipped:
        item = self.items[index]
        try:
            return prepare(load(item), self.preprocesses, self.view)
        except (ImageError, ValueError, OSError) as error:
            return Skipped(item.image_id, " ".join(str(error).split())[:300] or type(error).__name__)


def _box_region(
    boxes: Sequence[Sequence[float]],
    original: tuple[int, int],
    shown: tuple[int, int],
    scale: float,
    tolerance: float,
    notes: list[str],
) -> measures.Region | None:
    kept = []
    for box in boxes:
        x0, y0, x1, y1 = box
        clipped = (max(0.0, x0), max(0.0, y0), min(float(original[0]), x1), min(float(original[1]), y1))
        if clipped[0] >= clipped[2] or clipped[1] >= clipped[3] or not (x0 < x1 and y0 < y1):
            notes.append(f"box {_box_text(box)} lies outside the {original[0]}x{original[1]} picture: not used")
            continue
        if clipped != tuple(box):
            notes.append(f"box {_box_text(box)} clipped to the {original[0]}x{original[1]} picture")
        kept.append([value * scale for value in box])
    if not kept:
        return None
    try:
        return measures.box_region(kept, shown, tolerance)
    except ValueError:
        notes.append("the boxes cover no pixel centre: not used")
        return None


def _box_text(box: Sequence[float]) -> str:
    return ",".join(f"{value:g}" for value in box)


@dataclass
class Measured:
    """One image's rows (one per model), its channel gates (for the atlas) and, with ``sweep``, its gates-off
    sweep, from one or more models' passes."""

    label: int
    rows: dict[str, dict[str, Any]]  # model id -> row
    channel: dict[str, dict[str, np.ndarray]]  # model id -> block -> (C,), models with channel attention only
    sweep: dict[str, Swept] = field(default_factory=dict)  # model id -> swept, models with attention gates only


def measure(
    prepared: Sequence[Prepared],
    models: dict[str, nn.Module],
    *,
    method: str,
    stage: int,
    categories: Sequence[str],
    sweep: bool = False,
) -> list[Measured]:
    """Each image's rows for a batch of images (images in order, models in ``models``' order; ``models`` are keyed
    by model id, each gated or not as its own architecture is)."""
    outputs: dict[str, list[Output | None]] = {arch: [None] * len(prepared) for arch in models}
    swept: dict[str, list[Swept]] = {arch: [{} for _ in prepared] for arch in models}
    for arch, model in models.items():
        preprocess = model.weights_info.preprocess
        groups: dict[tuple[int, ...], list[int]] = {}
        for position, item in enumerate(prepared):
            groups.setdefault(tuple(item.inputs[preprocess][0].shape), []).append(position)
        for positions in groups.values():
            batch = torch.cat([prepared[p].inputs[preprocess][0] for p in positions])
            targets = [prepared[p].loaded.item.label for p in positions]
            for position, output in zip(
                positions, batch_pass(model, batch, targets, method=method, stage=stage), strict=True
            ):
                outputs[arch][position] = output
            if sweep and has_channel_attention(model_family(model)):
                for position, one in zip(positions, sweep_pass(model, batch, targets), strict=True):
                    swept[arch][position] = one
    measured = []
    for position, item in enumerate(prepared):
        one = Measured(item.loaded.item.label, {}, {})
        for arch, model in models.items():
            output = outputs[arch][position]
            assert output is not None
            view = item.inputs[model.weights_info.preprocess][1].for_model(model)  # the model's own cell geometry
            one.rows[arch] = _row(item, arch, output, view, categories)
            if has_channel_attention(model_family(model)):
                one.channel[arch] = output.channel
                if sweep:
                    one.sweep[arch] = swept[arch][position]
        measured.append(one)
    return measured


def measure_batch(
    batch: Sequence[Prepared | Skipped],
    models: dict[str, nn.Module],
    *,
    method: str,
    stage: int,
    categories: Sequence[str],
    sweep: bool = False,
) -> list[Measured | Skipped]:
    """A batch as the engines get it (prepared pictures and skipped items, in order), measured in that order."""
    prepared = [one for one in batch if isinstance(one, Prepared)]
    measured = iter(
        measure(prepared, models, method=method, stage=stage, categories=categories, sweep=sweep) if prepared else []
    )
    return [one if isinstance(one, Skipped) else next(measured) for one in batch]


def merge(parts: Sequence[Sequence[Measured | Skipped]]) -> list[Measured | Skipped]:
    """One batch's results from passes of different models (the Ray engine: one actor per model), joined per image
    in the order of ``parts``: what one ``measure_batch`` over all the models gives."""
    joined: list[Measured | Skipped] = []
    for images in zip(*parts, strict=True):
        first = images[0]
        if isinstance(first, Skipped):
            joined.append(first)
            continue
        one = Measured(first.label, {}, {})
        for part in images:
            assert isinstance(part, Measured) and part.label == first.label
            one.rows.update(part.rows)
            one.channel.update(part.channel)
            one.sweep.update(part.sweep)
        joined.append(one)
    return joined


def _row(item: Prepared, arch: str, output: Output, view: ModelView, categories: Sequence[str]) -> dict[str, Any]:
    label = item.loaded.item.label
    probs = metrics.softmax(output.logits)
    top = np.argsort(-probs, kind="stable")[:5]
    row: dict[str, Any] = {
        "image_id": item.loaded.item.image_id,
        "arch": arch,
        "label": label,
        "label_name": class_label(categories, label),
        "width": item.loaded.picture.width,
        "height": item.loaded.picture.height,
        "predicted": int(top[0]),
        "predicted_name": class_label(categories, int(top[0])),
        "top5": [int(i) for i in top],
        "top5_probs": [float(probs[i]) for i in top],
        "top1_correct": bool(top[0] == label),
        "top5_correct": bool(label in top),
        "target_prob": float(probs[label]),
        "region": item.region.kind if item.region is not None else None,
        "note": "; ".join(item.notes) or None,
    }
    if item.region is None:
        return row
    cam = map_to_image(output.cam, view, item.size)
    scored = measures.pointing_and_energy(cam, item.region)
    row.update(pointing=scored["pointing"], pointing_15px=scored["pointing_tolerant"], energy=scored["energy"])
    row["area_share"] = measures.area_share(cam, item.region)
    row["box_ious"] = measures.box_iou_curve(cam, item.region.boxes).tolist()
    for stage in STAGES:
        block = last_block(output.spatial, stage)
        if block is not None:
            on_image = map_to_image(output.spatial[block], view, item.size)
            scored = measures.pointing_and_energy(on_image, item.region)
            row[f"spatial_pointing_{stage}"] = scored["pointing"]
            row[f"spatial_energy_{stage}"] = scored["energy"]
    return row
