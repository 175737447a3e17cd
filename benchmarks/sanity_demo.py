"""Can we trust the demo models' maps? The sanity checks on held-out demo shapes, with their true masks.

Per model, over ``--count`` held-out shapes (each explained for its TRUE class, stage 4, Grad-CAM):

* deletion and insertion areas for the model's own CAM, a random pixel order and the true mask as an "oracle" map;
* Spearman (mean over the maps that are not all zero), Spearman of the signed CAM's absolute value, SSIM and the
  share of all-zero maps after each cascading and each independent randomisation step, over ``--draws`` randomised
  networks (draw d is one network for every shape, seeded as ``checks.randomisation.draw_seed`` says): each number
  is first averaged over the shapes per draw, then reported as the mean over draws, their standard deviation and
  their range, so a number that depends on which random network was drawn shows it;
* the random-logit correlation, against ``--other-classes`` random classes per shape (drawn per shape from the seed
  and the shape's pixels), with the spread over those classes;
* the pointing game against the true mask for the CAM and, for CBAM, the last spatial map of each stage (with the
  energy inside the mask next to the mask's area share: what a map blind to the object would get).

Run: ``nice .venv/bin/python -m benchmarks.sanity_demo --count 200 --draws 5 --json /tmp/sanity_demo.json``
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
from cbam_viz.checks.randomisation import CASCADE_ORDER, model_sanity, picture_key
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import render_sample
from cbam_viz.imaging.view import prepare_input
from cbam_viz.pipeline import analyze
from cbam_viz.vocab import ARCH_ORDER, ARCH_TITLES, STAGES


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def study(
    count: int,
    weights: str = "demo",
    partial: Path | None = None,
    draws: int = 5,
    other_classes: int = 5,
    start: int = 0,
) -> dict:
    """Every number of the table, as lists per model (means are taken by ``summarise``); randomisation numbers are
    kept per draw, under ``<key>@<draw>``."""
    started = time.perf_counter()
    model_set = get_models(ARCH_ORDER, weights, "cpu")
    raw: dict[str, dict[str, list]] = {arch: {} for arch in ARCH_ORDER}

    def add(arch: str, key: str, value: float) -> None:
        raw[arch].setdefault(key, []).append(value)

    for index in range(count):
        sample = render_sample(HELDOUT_SEED, start + index, width=96)
        picture = Image.fromarray(sample.image)
        analysis = analyze(picture, weights=weights, target=sample.label, stage=4)
        game = mask_game(analysis, sample.mask).to_json()
        for arch, model in model_set.models.items():
            x, _ = prepare_input(picture, model.weights_info.preprocess)
            checks = model_sanity(
                arch,
                model,
                x,
                target=sample.label,
                independent=True,
                draws=draws,
                other_classes=other_classes,
                picture=picture_key(picture),
            )
            for mode in ("cascading", "independent"):
                for step in getattr(checks, mode):
                    for draw, found in enumerate(step.draws):
                        add(arch, f"{mode}.{step.step}.spearman@{draw}", found.spearman)
                        add(arch, f"{mode}.{step.step}.spearman_abs@{draw}", found.spearman_abs)
                        add(arch, f"{mode}.{step.step}.ssim@{draw}", found.ssim)
                        add(arch, f"{mode}.{step.step}.empty@{draw}", float(found.cam_empty))
            logit = checks.random_logit
            add(arch, "random_logit.spearman", logit.spread("spearman").mean)
            add(arch, "random_logit.spearman_abs", logit.spread("spearman_abs").mean)
            add(arch, "random_logit.ssim", logit.spread("ssim").mean)
            add(arch, "random_logit.spearman_sd", logit.spread("spearman").sd)
            add(arch, "random_logit.classes", len(logit.classes))
            for other in logit.classes:
                add(arch, "random_logit.drawn", other.index)
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
        if (index + 1) % 5 == 0 or index + 1 == count:
            seconds = time.perf_counter() - started
            print(f"{index + 1}/{count} shapes, {seconds:.0f} s", flush=True)
            if partial is not None:  # a run stopped early still leaves every number so far (--merge reads it)
                summary = summarise(raw, index + 1, seconds, draws)
                partial.write_text(json.dumps({**summary, "raw": raw}, indent=1), encoding="utf-8")
    return raw


def _over_draws(numbers: dict[str, list]) -> dict[str, float]:
    """``<key>@<draw>`` lists -> ``<key>`` (mean over draws of the per-draw means over shapes), ``<key>.sd``
    (sample standard deviation over draws), ``<key>.min`` and ``<key>.max``; other keys -> their mean."""
    found: dict[str, float] = {}
    per_draw: dict[str, list[float]] = {}
    for key, values in numbers.items():
        if "@" in key:
            per_draw.setdefault(key.split("@")[0], []).append(_mean(values))
        elif key != "random_logit.drawn":
            found[key] = _mean(values)
    for key, means in per_draw.items():
        kept = [value for value in means if math.isfinite(value)]
        found[key] = float(np.mean(kept)) if kept else math.nan
        found[f"{key}.sd"] = float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan
        found[f"{key}.min"] = min(kept) if kept else math.nan
        found[f"{key}.max"] = max(kept) if kept else math.nan
    return found


def summarise(raw: dict[str, dict[str, list]], count: int, seconds: float, draws: int = 5) -> dict:
    drawn = raw[ARCH_ORDER[0]].get("random_logit.drawn", [])
    return {
        "heldout_seed": HELDOUT_SEED,
        "shapes": count,
        "draws": draws,
        "seconds": round(seconds, 1),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "models": {arch: _over_draws(numbers) for arch, numbers in raw.items()},
        "random_classes_drawn": {str(index): drawn.count(index) for index in sorted(set(drawn))},
    }


def table(summary: dict) -> str:
    models = summary["models"]
    head = "| | " + " | ".join(ARCH_TITLES[arch] for arch in ARCH_ORDER) + " |"
    rule = "|---" * (len(ARCH_ORDER) + 1) + "|"

    def cell(value: float, percent: bool) -> str:
        return "-" if not math.isfinite(value) else (f"{100 * value:.1f} %" if percent else f"{value:.3f}")

    def row(label: str, key: str, percent: bool = False) -> str:
        cells = []
        for arch in ARCH_ORDER:
            found = models[arch]
            text = cell(found.get(key, math.nan), percent)
            if math.isfinite(found.get(f"{key}.sd", math.nan)):  # over draws: mean ± sd [min, max]
                low, high = (cell(found[f"{key}.{end}"], percent) for end in ("min", "max"))
                text += f" ± {cell(found[f'{key}.sd'], percent)} [{low}, {high}]"
            cells.append(text)
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
    lines.append(row("random other classes: Spearman (mean over the classes)", "random_logit.spearman"))
    lines.append(row("random other classes: Spearman of abs", "random_logit.spearman_abs"))
    lines.append(row("random other classes: SSIM", "random_logit.ssim"))
    lines.append(row("random other classes: sd of Spearman over the classes", "random_logit.spearman_sd"))
    lines.append(row("pointing game, CAM", "pointing.cam", percent=True))
    lines.append(row("energy in mask, CAM", "energy.cam"))
    for stage in STAGES:
        lines.append(row(f"pointing game, spatial map stage {stage}", f"pointing.spatial{stage}", percent=True))
        lines.append(row(f"energy in mask, spatial map stage {stage}", f"energy.spatial{stage}"))
    area = models[ARCH_ORDER[0]].get("mask_area_share", math.nan)
    lines.append(f"\nmask area share (a blind map's energy): {area:.3f}")
    lines.append(f"random other classes drawn (class index: times): {summary.get('random_classes_drawn')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--draws", type=int, default=5, help="randomised networks per step (default 5)")
    parser.add_argument("--other-classes", type=int, default=5, help="random other classes per shape (default 5)")
    parser.add_argument("--start", type=int, default=0, help="first held-out shape (to split a run over processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the fastest on a shared CPU)")
    parser.add_argument("--merge", type=Path, nargs="+", help="join the --json files of split runs and summarise")
    parser.add_argument("--json", type=Path, help="write the summary (and every raw number) here")
    args = parser.parse_args()
    if args.merge:
        parts = [json.loads(path.read_text(encoding="utf-8")) for path in args.merge]
        raw = {arch: {} for arch in ARCH_ORDER}
        for part in parts:
            for arch, numbers in part["raw"].items():
                for key, values in numbers.items():
                    raw[arch].setdefault(key, []).extend(values)
        count = sum(part["shapes"] for part in parts)
        seconds = sum(part["seconds"] for part in parts)
        summary = {**summarise(raw, count, seconds, parts[0]["draws"]), "machine": parts[0]["machine"]}
        summary["wall_seconds"] = max(part["seconds"] for part in parts)
        print(table(summary))
        if args.json:
            args.json.write_text(json.dumps({**summary, "raw": raw}, indent=1), encoding="utf-8")
        return
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    raw = study(args.count, args.weights, args.json, args.draws, args.other_classes, args.start)
    summary = summarise(raw, args.count, time.perf_counter() - started, args.draws)
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps({**summary, "raw": raw}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
