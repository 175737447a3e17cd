"""Held-out quality of the demo weights: accuracy, Grad-CAM pointing game, spatial-attention energy in the mask.

The held-out stream uses a seed that training never touches (``HELDOUT_SEED``), and a second, independent renderer
(``shapes_reference``) checks that the models learned shapes rather than the generator's quirks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cbam_viz.analysis.metrics import energy_inside, pointing_hit
from cbam_viz.demo.shapes import CLASSES, render_sample
from cbam_viz.demo.shapes_reference import render_reference
from cbam_viz.imaging.view import map_to_image
from cbam_viz.model.resnet import ARCHS
from cbam_viz.pipeline import analyze
from cbam_viz.vocab import STAGES

HELDOUT_SEED = 20_261_121  # never used by training (train seed 1, validation seed 2)
REFERENCE_SEED = 31_337

Sampler = Callable[[int], tuple[np.ndarray, int, np.ndarray]]


def _generator_sample(seed: int, size: int) -> Sampler:
    def sample(index: int) -> tuple[np.ndarray, int, np.ndarray]:
        drawn = render_sample(seed, index, size)
        return drawn.image, drawn.label, drawn.mask

    return sample


def _reference_sample(seed: int, size: int) -> Sampler:
    return lambda index: render_reference(seed, index, size)


def evaluate(
    sample: Sampler,
    count: int,
    weights: str = "demo",
    archs: tuple[str, ...] = tuple(ARCHS),
    localisation: bool = True,
    progress: bool = True,
    weights_dir: Path | None = None,
) -> dict[str, dict[str, float]]:
    """Per arch: top-1, and if ``localisation``: pointing game on the true class's Grad-CAM (stage 4) and, for CBAM,
    the share of each stage's spatial attention that falls inside the object mask (with the mask's area share,
    the value a map that ignores the object would get). ``weights_dir`` replaces the repository's weights/ folder."""
    correct = dict.fromkeys(archs, 0)
    hits = dict.fromkeys(archs, 0)
    energy: dict[int, list[float]] = {stage: [] for stage in STAGES}
    area: list[float] = []
    for index in tqdm(range(count), desc="evaluate", unit="img", disable=not progress):
        pixels, label, mask = sample(index)
        result = analyze(
            Image.fromarray(pixels), weights=weights, models=archs, target=label, stage=4, weights_dir=weights_dir
        )
        size = (mask.shape[1], mask.shape[0])
        area.append(float(mask.mean()))
        for arch, model in result.models.items():
            correct[arch] += int(model.top5[0][0] == CLASSES[label])
            if localisation:
                hits[arch] += int(pointing_hit(map_to_image(model.cam, result.view_for(model), size), mask))
            if localisation and model.spatial_attention:
                for stage in STAGES:
                    blocks = [m for name, m in model.spatial_attention.items() if name.startswith(f"layer{stage}.")]
                    on_image = [map_to_image(m, result.view_for(model), size) for m in blocks]
                    energy[stage].append(float(np.mean([energy_inside(m, mask) for m in on_image])))
    report: dict[str, dict[str, float]] = {}
    for arch in archs:
        report[arch] = {"top1": correct[arch] / count}
        if localisation:
            report[arch]["pointing_game"] = hits[arch] / count
    if localisation and "cbam_resnet50" in archs:
        report["cbam_resnet50"].update({f"spatial_energy_stage{s}": float(np.mean(v)) for s, v in energy.items()})
        report["cbam_resnet50"]["mask_area_share"] = float(np.mean(area))
    return report


def evaluate_demo(
    count: int = 500,
    reference_count: int = 500,
    size: int = 96,
    weights: str = "demo",
    weights_dir: Path | None = None,
) -> dict:
    """The numbers recorded in weights/demo/metadata.json and docs/demo-models.md (of the demo set under
    ``weights_dir``)."""
    heldout = evaluate(_generator_sample(HELDOUT_SEED, size), count, weights, weights_dir=weights_dir)
    reference = evaluate(
        _reference_sample(REFERENCE_SEED, size),
        reference_count,
        weights,
        localisation=False,
        weights_dir=weights_dir,
    )
    for arch, numbers in reference.items():
        heldout[arch]["top1_reference_renderer"] = numbers["top1"]
    return {
        "heldout_seed": HELDOUT_SEED,
        "heldout_images": count,
        "reference_renderer_seed": REFERENCE_SEED,
        "reference_renderer_images": reference_count,
        "models": heldout,
    }
