"""Cost of the sanity checks, side by side: demo models (96 px) and ImageNet-size random weights (224 px).

Per weight set, for three models: the sanity section (cascading randomisation fc..stem, 6 steps, plus the random
logit), the same with independent steps too, and deletion + insertion at 20 steps with their random baselines.
Best of ``--repeat`` runs after one warm-up. Run: ``nice .venv/bin/python -m benchmarks.bench_sanity``
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
from PIL import Image

from cbam_viz.analysis.models import get_models
from cbam_viz.analysis.run import run_model
from cbam_viz.checks.curves import model_curves
from cbam_viz.checks.randomisation import model_sanity
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import render_sample
from cbam_viz.imaging.view import prepare_input
from cbam_viz.model.resnet import build_resnet
from cbam_viz.vocab import ARCH_ORDER
from cbam_viz.weights.registry import Preprocess


def best(work: Callable[[], object], repeat: int) -> float:
    work()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(models: dict[str, torch.nn.Module], inputs: dict[str, torch.Tensor], repeat: int) -> dict[str, float]:
    def section(independent: bool) -> Callable[[], None]:
        return lambda: [model_sanity(a, m, inputs[a], independent=independent) for a, m in models.items()]

    cams = {arch: run_model(arch, model, inputs[arch]) for arch, model in models.items()}

    def curves() -> None:
        for arch, model in models.items():
            model_curves(model, inputs[arch], cams[arch].cam, cams[arch].target_index)

    return {
        "analysis (1 pass each)": best(lambda: [run_model(a, m, inputs[a]) for a, m in models.items()], repeat),
        "sanity: cascading 6 steps + random logit": best(section(False), repeat),
        "sanity: + independent 6 steps": best(section(True), repeat),
        "deletion + insertion, 20 steps, + random": best(curves, repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--imagenet-repeat", type=int, default=1)
    args = parser.parse_args()
    picture = Image.fromarray(render_sample(HELDOUT_SEED, 0, width=96).image)
    demo = get_models(ARCH_ORDER, "demo", "cpu").models
    demo_inputs = {a: prepare_input(picture, m.weights_info.preprocess)[0] for a, m in demo.items()}
    figures = {"demo, 96 px": measure(demo, demo_inputs, args.repeat)}
    torch.manual_seed(0)
    big = {arch: build_resnet(arch).eval().requires_grad_(False) for arch in ARCH_ORDER}
    preprocess = Preprocess(256, 224, "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    big_input = prepare_input(picture.resize((224, 224)), preprocess, "crop")[0]
    figures["ImageNet-size random, 224 px"] = measure(big, dict.fromkeys(ARCH_ORDER, big_input), args.imagenet_repeat)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("seconds for three models (best of runs)")
    names = list(next(iter(figures.values())))
    print(f"| {'':44} | " + " | ".join(f"{label:>28}" for label in figures) + " |")
    for name in names:
        print(f"| {name:44} | " + " | ".join(f"{figures[label][name]:>28.2f}" for label in figures) + " |")


if __name__ == "__main__":
    main()
