"""What happens to the demo models when a stage's gates are switched off? (a script, not a test)

For each held-out shape (``evaluate.HELDOUT_SEED``, the stream training never saw, 96 px), prepared as an analysis
prepares it (``imaging.view.prepare_input`` with the weights' preprocessing, whole view), ``intervene.sweep`` sets each
stage's channel or spatial gates to ``one`` and reports the change in the TRUE class's probability. The tables give,
per model, stage and gate: the mean change with its standard error, and the top-1 accuracy with that intervention.

    python -m benchmarks.gate_sweep_demo [--count 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cbam_viz.analysis.intervene import sweep
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import render_sample
from cbam_viz.imaging.view import prepare_input
from cbam_viz.vocab import ARCH_TITLES, STAGES
from cbam_viz.weights.load import load_model

ARCHS = ("se_resnet50", "cbam_resnet50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=200, help="held-out shapes")
    parser.add_argument("--width", type=int, default=96, help="image side in pixels")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    models = {arch: load_model(arch, "demo") for arch in ARCHS}
    changes: dict[str, dict[tuple[int, str], list[float]]] = {arch: {} for arch in ARCHS}
    base: dict[str, list[float]] = {arch: [] for arch in ARCHS}
    correct: dict[str, dict[tuple[int, str] | None, int]] = {arch: {} for arch in ARCHS}
    started = time.perf_counter()
    for index in range(args.count):
        sample = render_sample(HELDOUT_SEED, index, width=args.width)
        picture = Image.fromarray(sample.image)
        for arch, model in models.items():
            x, _ = prepare_input(picture, model.weights_info.preprocess)
            result = sweep(model, x, target_index=sample.label)
            base[arch].append(result.base_prob)
            hits = correct[arch]
            hits[None] = hits.get(None, 0) + int(result.base_top1 == sample.label)
            for entry in result.entries:
                key = (entry.stage, entry.gate)
                changes[arch].setdefault(key, []).append(entry.change)
                hits[key] = hits.get(key, 0) + int(entry.top1 == sample.label)
    elapsed = time.perf_counter() - started
    print(f"{args.count} held-out shapes (seed {HELDOUT_SEED}, {args.width} px), {elapsed:.0f} s\n")
    print("Mean change in the true class's probability when a stage's gates are set to one (± standard error):\n")
    print("| model | true-class prob. | gate | " + " | ".join(f"layer{s}" for s in STAGES) + " |")
    print("|---|---|---|" + "---|" * len(STAGES))
    document: dict = {"heldout_seed": HELDOUT_SEED, "count": args.count, "width": args.width, "models": {}}
    for arch in ARCHS:
        gates = sorted({gate for _, gate in changes[arch]}, key=("channel", "spatial").index)
        document["models"][arch] = {"base_prob_mean": float(np.mean(base[arch])), "mean_change": {}}
        for gate in gates:
            cells = []
            for stage in STAGES:
                values = np.asarray(changes[arch][(stage, gate)])
                mean, error = float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))
                cells.append(f"{mean:+.3f} ± {error:.3f}")
                document["models"][arch]["mean_change"][f"layer{stage}:{gate}"] = {"mean": mean, "stderr": error}
            print(f"| {ARCH_TITLES[arch]} | {np.mean(base[arch]):.3f} | {gate} | " + " | ".join(cells) + " |")
    print("\nTop-1 accuracy with a stage's gates set to one (no intervention in the second column):\n")
    print("| model | none | gate | " + " | ".join(f"layer{s}" for s in STAGES) + " |")
    print("|---|---|---|" + "---|" * len(STAGES))
    for arch in ARCHS:
        hits = correct[arch]
        document["models"][arch]["top1"] = {"none": hits[None] / args.count}
        for gate in sorted({gate for _, gate in changes[arch]}, key=("channel", "spatial").index):
            cells = [f"{hits[(stage, gate)] / args.count:.3f}" for stage in STAGES]
            for stage in STAGES:
                document["models"][arch]["top1"][f"layer{stage}:{gate}"] = hits[(stage, gate)] / args.count
            print(f"| {ARCH_TITLES[arch]} | {hits[None] / args.count:.3f} | {gate} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
