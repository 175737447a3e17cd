"""What do the Attention lab's extras cost next to one model's analysis? (a script, not a test)

Contenders per model, timed in interleaved rounds (order shuffled each round), ratios to the analysis of the same
round, median of N warm rounds:

* analysis: ``cbam_viz.analysis.run.run_model`` (one hooked pass, Grad-CAM of stage 4, top-5, metrics): the unit;
* + gate steps: the same ``run_model`` with ``capture_pass(gate_steps=True)`` (every block), and with one block
  (``{"layer4.2"}``, what a page showing one block asks for); target <= 1.10;
* one intervention: ``intervene.run_interventions`` with one spec and the base given; target <= 1.2;
* sweep: ``intervene.sweep`` (every stage x gate kind set to ``one``) as it chooses, and each strategy forced: by
  stages, as one batch, one forward each; target <= 9.

Sizes: the demo weights (96 px held-out shape) and ImageNet size (224 px, full width, 1000 classes, random weights
with random BatchNorm statistics).

    python -m benchmarks.bench_gates [--runs 9] [--demo-runs 25] [--threads N | --clock cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from PIL import Image

from cbam_viz.analysis import capture, results, run
from cbam_viz.analysis.intervene import run_interventions, sweep
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import render_sample
from cbam_viz.imaging.view import prepare_input
from cbam_viz.model.resnet import ArchConfig
from cbam_viz.weights.load import load_model
from tests.helpers.models import random_model

TARGETS = {
    "+ gate steps": 1.10,
    "+ gate steps (layer4.2)": 1.10,
    "one intervention": 1.2,
    "sweep": 9.0,
    "sweep by stages": 9.0,
    "sweep as one batch": 9.0,
    "sweep one forward each": 9.0,
}
SPEC = {"cbam_resnet50": "layer3:both=one", "se_resnet50": "layer3:channel=one"}


@contextlib.contextmanager
def gate_steps_on(blocks: bool | set[str] = True) -> Iterator[None]:
    """``run_model`` with gate steps recorded (patching the name analysis calls)."""
    original = results.capture_pass
    results.capture_pass = functools.partial(capture.capture_pass, gate_steps=blocks)
    try:
        yield
    finally:
        results.capture_pass = original


def contenders(arch: str, model: torch.nn.Module, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    base = run.run_model(arch, model, x)

    def with_steps(blocks: bool | set[str] = True) -> object:
        with gate_steps_on(blocks):
            return run.run_model(arch, model, x)

    return {
        "analysis": lambda: run.run_model(arch, model, x),
        "+ gate steps": with_steps,
        "+ gate steps (layer4.2)": lambda: with_steps({"layer4.2"}),
        "one intervention": lambda: run_interventions(model, x, [SPEC[arch]], base=base),
        "sweep": lambda: sweep(model, x, target_index=base.target_index),
        "sweep by stages": lambda: sweep(model, x, target_index=base.target_index, batch="stages"),
        "sweep as one batch": lambda: sweep(model, x, target_index=base.target_index, batch="whole"),
        "sweep one forward each": lambda: sweep(model, x, target_index=base.target_index, batch=False),
    }


def measure(
    runs: dict[str, Callable[[], object]], count: int, warm: int = 2, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, dict[str, float]]:
    """(median analysis seconds, each contender's median ratio to the analysis of the same round).

    The order is shuffled every round (seeded), and each ratio is taken within a round, so a burst of background
    load moves both sides of a ratio rather than one contender's median.
    """
    order = list(runs)
    shuffle = random.Random(14).shuffle
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(warm + count):
        shuffle(order)
        for name in order:
            start = clock()
            runs[name]()
            if round_index >= warm:
                times[name].append(clock() - start)
    unit = times["analysis"]
    ratios = {
        name: statistics.median(t / u for t, u in zip(values, unit, strict=True)) for name, values in times.items()
    }
    return statistics.median(unit), ratios


def demo_input(model: torch.nn.Module) -> torch.Tensor:
    sample = render_sample(HELDOUT_SEED, 0, width=96)
    return prepare_input(Image.fromarray(sample.image), model.weights_info.preprocess)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9, help="warm runs per contender at ImageNet size")
    parser.add_argument("--demo-runs", type=int, default=25, help="warm runs per contender with the demo weights")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: one torch thread, timed by this thread's CPU time (robust on a machine others share)",
    )
    args = parser.parse_args()
    clock = time.perf_counter
    if args.clock == "cpu":
        torch.set_num_threads(1)
        clock = time.thread_time
    elif args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, {args.clock} clock\n")
    print(
        "| weights | model | analysis (ms) | "
        + " | ".join(f"{name} ÷ analysis (≤ {t})" for name, t in TARGETS.items())
        + " |"
    )
    print("|---|---|---|" + "---|" * len(TARGETS))
    for size_name in ("demo", "imagenet"):
        for arch in ("se_resnet50", "cbam_resnet50"):
            if size_name == "demo":
                model = load_model(arch, "demo")
                x, count = demo_input(model), args.demo_runs
            else:
                model = random_model(arch, config=ArchConfig())  # random BN statistics: every gate varies
                x, count = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)), args.runs
            unit, ratio = measure(contenders(arch, model, x), count, clock=clock)
            ratios = " | ".join(f"**{ratio[name]:.2f}**" for name in TARGETS)
            label = "demo (96 px)" if size_name == "demo" else "ImageNet size, random (224 px)"
            print(f"| {label} | {arch} | {unit * 1000:.0f} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
