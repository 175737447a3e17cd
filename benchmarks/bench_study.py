"""How fast is a study next to its floor? (a script, not a test)

* floor: for each model, a bare batched forward with gradients and the backward of the targets' scores to the input,
  no hooks, on the same prepared batches (the pictures decoded and prepared once, outside the timing);
* study: ``cbam_viz.study.engine.run_study`` on the same held-out shapes and batch size, everything included
  (rendering the shapes, decoding, preparing, hooked passes, CAMs, maps on the picture, the pointing game, energy,
  the 100-threshold MaxBoxAccV2 curve, the atlas, the shards and the summary), models already loaded;
* with ``--imagenet-size N``: the same ratio for ImageNet-size models (random weights, 1 000 classes, 224 px
  inputs), on N held-out shapes prepared with ImageNet's evaluation transform: the study's own per-batch measurement
  (``study.measure.measure``: hooked passes, CAMs, maps on the picture, pointing, energy, MaxBoxAccV2, the atlas's
  excitations) against the bare forward and backward, both on the same prepared batches (decoding left out of both:
  there are no ImageNet-size weights or pictures offline to run the whole engine on);
* with ``--ray``: ``--engine ray`` (``cbam_viz.study.ray_engine.run_study_ray``) on the same study, on a local Ray
  instance it starts and stops (everything included: Ray's start-up, the actors and their models, the same work),
  timed against the local engine (the same run as above): the ratio ray / local.

    python -m benchmarks.bench_study [--images 64] [--batch-size 16] [--weights demo] [--ray] [--imagenet-size 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from cbam_viz.analysis.models import get_models
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import render_sample
from cbam_viz.imaging.view import prepare_input
from cbam_viz.study.engine import run_study
from cbam_viz.study.sources import SHAPES_SIZE
from cbam_viz.vocab import ARCH_ORDER


def floor_seconds(images: int, batch_size: int, weights: str) -> float:
    model_set = get_models(ARCH_ORDER, weights, "cpu")
    samples = [render_sample(HELDOUT_SEED, index, SHAPES_SIZE) for index in range(images)]
    labels = torch.tensor([s.label for s in samples])
    elapsed = 0.0
    for model in model_set.models.values():
        inputs = [prepare_input(Image.fromarray(s.image), model.weights_info.preprocess, "crop")[0] for s in samples]
        elapsed += _bare_seconds(model, inputs, labels, batch_size)
    return elapsed


def _bare_seconds(model: torch.nn.Module, inputs: list[torch.Tensor], labels: torch.Tensor, batch_size: int) -> float:
    """The floor of one model: batched forward, then the backward of the targets' scores to the input."""
    start = time.perf_counter()  # preparation is not timed
    for first in range(0, len(inputs), batch_size):
        batch = torch.cat(inputs[first : first + batch_size]).requires_grad_()
        logits = model(batch)
        score = logits.gather(1, labels[first : first + batch_size, None]).sum()
        torch.autograd.grad(score, batch)
    return time.perf_counter() - start


def imagenet_size_seconds(images: int, batch_size: int) -> tuple[float, float]:
    """(floor, the study's measurement) in seconds for random ImageNet-size models on the same prepared batches."""
    from cbam_viz.model.resnet import build_resnet
    from cbam_viz.study import measure, sources
    from cbam_viz.weights.registry import IMAGENET_EVAL, LoadedWeights, default_categories

    categories = default_categories(1000)
    models = {}
    for arch in ARCH_ORDER:
        torch.manual_seed(0)
        model = build_resnet(arch).eval().requires_grad_(False)
        model.weights_info = LoadedWeights(arch, None, None, "random", "project", categories, IMAGENET_EVAL, "", False)
        models[arch] = model
    items = [sources.Item(f"shape-{i}", i % 10, shapes=(HELDOUT_SEED, i)) for i in range(images)]
    prepared = [measure.prepare(sources.load(item), [IMAGENET_EVAL], "crop") for item in items]
    inputs = [one.inputs[IMAGENET_EVAL][0] for one in prepared]
    labels = torch.tensor([item.label for item in items])
    for model in models.values():  # warm each model once, outside both timings
        _bare_seconds(model, inputs[:1], labels[:1], 1)
    floor = sum(_bare_seconds(model, inputs, labels, batch_size) for model in models.values())
    start = time.perf_counter()
    with torch.inference_mode(False):
        for first in range(0, images, batch_size):
            measure.measure(
                prepared[first : first + batch_size], models, method="gradcam", stage=4, categories=categories
            )
    return floor, time.perf_counter() - start


def study_seconds(images: int, batch_size: int, weights: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        run_study("shapes", Path(folder) / "warm", models=ARCH_ORDER, weights=weights, limit=2, progress=False)
        start = time.perf_counter()
        run_study(
            "shapes",
            Path(folder) / "timed",
            models=ARCH_ORDER,
            weights=weights,
            limit=images,
            batch_size=batch_size,
            device="cpu",
            progress=False,
        )
        return time.perf_counter() - start


def ray_seconds(images: int, batch_size: int, weights: str) -> float:
    from cbam_viz.study.ray_engine import run_study_ray

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run_study_ray(
            "shapes",
            Path(folder) / "ray",
            models=ARCH_ORDER,
            weights=weights,
            limit=images,
            batch_size=batch_size,
            device="cpu",
            progress=False,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--ray", action="store_true", help="also time --engine ray against the local engine")
    parser.add_argument("--imagenet-size", type=int, default=0, metavar="N", help="also N images at ImageNet size")
    args = parser.parse_args()
    if args.imagenet_size:
        floor, measured = imagenet_size_seconds(args.imagenet_size, args.batch_size)
        print(f"ImageNet size (random weights), {args.imagenet_size} shapes at 224 px, batch {args.batch_size}:")
        rates = f"{args.imagenet_size / floor:.2f} and {args.imagenet_size / measured:.2f} images/s"
        print(f"floor and the study's measurement: {rates}")
        print(f"study / floor throughput:        {floor / measured:.2f}")
    study = study_seconds(args.images, args.batch_size, args.weights)
    floor = floor_seconds(args.images, args.batch_size, args.weights)
    threads = torch.get_num_threads()
    print(f"{args.images} held-out shapes, batch {args.batch_size}, three models, CPU ({threads} threads)")
    print(f"floor (bare forward + backward): {args.images / floor:.1f} images/s")
    print(f"study (everything):              {args.images / study:.1f} images/s")
    print(f"study / floor throughput:        {floor / study:.2f}")
    if args.ray:
        ray = ray_seconds(args.images, args.batch_size, args.weights)
        print(f"local engine: {study:.1f} s; ray engine (local instance, start-up included): {ray:.1f} s")
        print(f"ray / local time:                {ray / study:.2f}")


if __name__ == "__main__":
    main()
