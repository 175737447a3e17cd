"""Can we trust the demo models' maps? The sanity checks on held-out demo shapes, with their true masks.

Per model, over ``--count`` held-out shapes (each explained for its TRUE class, stage 4, Grad-CAM):

* deletion and insertion areas for the model's own CAM, a random pixel order and the true mask as an "oracle" map;
* Spearman (mean over the maps that are not all zero), Spearman of the signed CAM's absolute value and SSIM
  of the CAM after each cascading and each independent randomisation step;
* the random-logit correlation;
* the pointing game against the true mask for the CAM and, for CBAM, the last spatial map of each stage (with the
  energy inside the mask next to the mask's area share: what a map blind to the object would get).

Run: ``nice .venv/bin/python -m benchmarks.sanity_demo --count 200 --json /tmp/sanity_demo.json``
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cbam_viz.analysis.models import get_models
from cbam_viz.checks.curves import model_curves
from cbam_viz.checks.pointing import mask_game
from cbam_viz.checks.randomisation import CASCADE_ORDER, model_sanity
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import render_sample
from cbam_viz.imaging.view import prepare_input
from cbam_viz.pipeline import analyze
from cbam_viz.vocab import ARCH_ORDER, ARCH_TITLES, STAGES


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def study(count: int, weights: str = "demo", partial: Path | None = None) -> dict:
    """Every number of the table, as lists per model (means are taken by ``summarise``)."""
    model_set = get_models(ARCH_ORDER, weights, "cpu")
    raw: dict[str, dict[str, list]] = {arch: {} for arch in ARCH_ORDER}

    def add(arch: str, key: str, value: float) -> None:
        raw[arch].setdefault(key, []).append(value)

    for index in range(count):
        sample = render_sample(HELDOUT_SEED, index, width=96)
        picture = Image.fromarray(sample.image)
        analysis = analyze(picture, weights=weights, target=sample.label, stage=4)
        game = mask_game(analysis, sample.mask).to_json()
        for arch, model in model_set.models.items():
            x, _ = prepare_input(picture, model.weights_info.preprocess)
            checks = model_sanity(arch, model, x, target=sample.label, independent=True)
            for mode in ("cascading", "independent"):
                for step in getattr(checks, mode):
                    add(arch, f"{mode}.{step.step}.spearman", step.spearman)
                    add(arch, f"{mode}.{step.step}.spearman_abs", step.spearman_abs)
                    add(arch, f"{mode}.{step.step}.ssim", step.ssim)
                    add(arch, f"{mode}.{step.step}.empty", float(step.cam_empty))
            add(arch, "random_logit.spearman", checks.random_logit.comparison.spearman)
            add(arch, "random_logit.ssim", checks.random_logit.comparison.ssim)
            curves = model_curves(model, x, checks.cam, sample.label, arch=arch)
            oracle = model_curves(model, x, sample.mask.astype(np.float32), sample.label, baseline=False)
            for name, curve in (
                ("deletion.cam", curves.deletion),
                ("deletion.random", curves.deletion_random),
                ("deletion.oracle", oracle.deletion),
                ("insertion.cam", curves.insertion),
                ("insertion.random", curves.insertion_random),
                ("insertion.oracle", oracle.insertion),
            ):
                add(arch, f"{name}.auc", curve.auc)
            add(arch, "deletion.cam_beats_random", float(curves.deletion.auc < curves.deletion_random.auc))
            add(arch, "insertion.cam_beats_random", float(curves.insertion.auc > curves.insertion_random.auc))
            scores = game["models"][arch]
            add(arch, "pointing.cam", float(scores["cam"]["hit"]))
            add(arch, "energy.cam", scores["cam"]["energy"])
            for stage, spatial in scores["spatial"].items():
                add(arch, f"pointing.spatial{stage}", float(spatial["hit"]))
                add(arch, f"energy.spatial{stage}", spatial["energy"])
        add(ARCH_ORDER[0], "mask_area_share", game["region"]["area_share"])
        if (index + 1) % 20 == 0:
            print(f"{index + 1}/{count} shapes", flush=True)
            if partial is not None:
                partial.write_text(json.dumps(summarise(raw, index + 1, math.nan), indent=1), encoding="utf-8")
    return raw


def summarise(raw: dict[str, dict[str, list]], count: int, seconds: float) -> dict:
    return {
        "heldout_seed": HELDOUT_SEED,
        "shapes": count,
        "seconds": round(seconds, 1),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "models": {arch: {key: _mean(values) for key, values in numbers.items()} for arch, numbers in raw.items()},
    }


def table(summary: dict) -> str:
    models = summary["models"]
    head = "| | " + " | ".join(ARCH_TITLES[arch] for arch in ARCH_ORDER) + " |"
    rule = "|---" * (len(ARCH_ORDER) + 1) + "|"

    def row(label: str, key: str, percent: bool = False) -> str:
        cells = []
        for arch in ARCH_ORDER:
            value = models[arch].get(key, math.nan)
            cells.append("-" if not math.isfinite(value) else (f"{100 * value:.1f} %" if percent else f"{value:.3f}"))
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [head, rule]
    for curve in ("deletion", "insertion"):
        better = "lower" if curve == "deletion" else "higher"
        for source in ("cam", "random", "oracle"):
            lines.append(row(f"{curve} AUC, {source} ({better} is better)", f"{curve}.{source}.auc"))
        lines.append(row(f"{curve}: CAM beats random", f"{curve}.cam_beats_random", percent=True))
    for mode in ("cascading", "independent"):
        for step in CASCADE_ORDER:
            what = f"cascading fc..{step}" if mode == "cascading" else f"independent {step}"
            lines.append(row(f"{what}: Spearman", f"{mode}.{step}.spearman"))
            lines.append(row(f"{what}: Spearman of abs", f"{mode}.{step}.spearman_abs"))
            lines.append(row(f"{what}: SSIM", f"{mode}.{step}.ssim"))
            lines.append(row(f"{what}: CAM all zero", f"{mode}.{step}.empty", percent=True))
    lines.append(row("random logit: Spearman", "random_logit.spearman"))
    lines.append(row("pointing game, CAM", "pointing.cam", percent=True))
    lines.append(row("energy in mask, CAM", "energy.cam"))
    for stage in STAGES:
        lines.append(row(f"pointing game, spatial map stage {stage}", f"pointing.spatial{stage}", percent=True))
        lines.append(row(f"energy in mask, spatial map stage {stage}", f"energy.spatial{stage}"))
    area = models[ARCH_ORDER[0]].get("mask_area_share", math.nan)
    lines.append(f"\nmask area share (a blind map's energy): {area:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--json", type=Path, help="write the summary (and every raw number) here")
    args = parser.parse_args()
    started = time.perf_counter()
    raw = study(args.count, args.weights, args.json)
    summary = summarise(raw, args.count, time.perf_counter() - started)
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps({**summary, "raw": raw}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
