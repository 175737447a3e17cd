"""``python -m cbam_viz train-demo``: train, evaluate and register the bundled demo weights.

The demo folder's metadata.json is what the app reads (the models' accuracy in their headers); it is rewritten only
once an evaluation has completed. The evaluation loads the weights through a copy of that file in a temporary
folder, so an interrupted run (Ctrl-C, SIGTERM) leaves the published figures as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cbam_viz.vocab import ARCH_ORDER as ARCHS

if TYPE_CHECKING:
    from cbam_viz.demo.train import Recipe

BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")

DEMO_DIR = Path(__file__).resolve().parents[2] / "weights" / "demo"


def write_metadata(out_dir: Path, recipe: Recipe, evaluation: dict | None) -> Path:
    """weights/demo/metadata.json: what the demo weights are, how they were made and (once evaluated, through the
    demo set this file registers) how good they are. ``weights.demo_set`` owns the file's fields."""
    # here, not at the top: keeps --help free of torch
    from safetensors.torch import load_file

    from cbam_viz.demo.shapes import CLASSES
    from cbam_viz.weights.demo_set import model_record, write_demo_metadata

    models = {}
    for arch in ARCHS:
        path = out_dir / f"{arch}.safetensors"
        tensors = load_file(str(path))
        params = sum(t.numel() for k, t in tensors.items() if not k.endswith(BUFFER_SUFFIXES))
        models[arch] = model_record(path, params=params, metrics=evaluation["models"][arch] if evaluation else {})
    return write_demo_metadata(
        out_dir,
        classes=list(CLASSES),
        input_size=recipe.image_size,
        preprocess=asdict(recipe.preprocess()),
        arch_config={k: v for k, v in asdict(recipe.arch_config()).items() if k not in ("attention", "num_classes")},
        recipe=asdict(recipe),
        heldout={k: v for k, v in (evaluation or {}).items() if k != "models"},
        models=models,
    )


def recorded_recipe(out_dir: Path) -> Recipe | None:
    """The recipe that metadata.json in ``out_dir`` records (None when there is none): an evaluation of existing
    weights keeps the recipe that made them."""
    from cbam_viz.demo.train import Recipe

    try:
        recorded = json.loads((out_dir / "metadata.json").read_text(encoding="utf-8"))["recipe"]
        known = {field.name for field in fields(Recipe)}
        return Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items() if k in known})
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def staged_weights(out_dir: Path, recipe: Recipe) -> Iterator[Path]:
    """A temporary weights folder whose demo set is the weights in ``out_dir`` as they are now (linked, or copied
    where links are not allowed) with fresh metadata: what the evaluation loads, without touching ``out_dir``."""
    from cbam_viz.errors import WeightsError
    from cbam_viz.weights.files import display_path

    with tempfile.TemporaryDirectory(prefix="cbam_viz_eval_") as temp:
        demo = Path(temp) / "demo"
        demo.mkdir()
        for arch in ARCHS:
            source = (out_dir / f"{arch}.safetensors").resolve()
            if not source.is_file():
                raise WeightsError(
                    f"{display_path(source)} not found: train the demo models first (without --eval-only)"
                )
            try:
                os.symlink(source, demo / f"{arch}.safetensors")
            except OSError:
                shutil.copyfile(source, demo / f"{arch}.safetensors")
        write_metadata(demo, recipe, None)
        yield Path(temp)


def run(args: argparse.Namespace) -> int:
    """Handler of ``train-demo``: train (resuming), evaluate and register the demo weights; -> the exit status."""
    # here, not at the top: keeps --help free of torch
    from cbam_viz.demo.evaluate import evaluate_demo
    from cbam_viz.demo.train import Recipe, train_demo

    out_dir = Path(args.out)
    recipe = (recorded_recipe(out_dir) if args.eval_only else None) or Recipe()
    if args.images:
        recipe = replace(recipe, train_images=args.images)
    if not args.eval_only:
        train_demo(out_dir, recipe, tuple(args.archs))
    with staged_weights(out_dir, recipe) as weights_dir:
        evaluation = evaluate_demo(args.heldout, args.heldout, weights_dir=weights_dir)
    print(json.dumps(evaluation, indent=2))
    print(f"wrote {write_metadata(out_dir, recipe, evaluation)}")
    return 0


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train-demo`` and its options on the top-level parser."""
    parser = subparsers.add_parser(
        "train-demo",
        help="train the three demo models on generated shapes (resumable), evaluate them, write weights/demo",
        description="Train baseline, SE and CBAM demo models with one recipe and seed; uses a GPU when present. "
        "Interrupted runs resume from weights/demo/.train.",
    )
    parser.add_argument("--out", default=str(DEMO_DIR), help="output folder (default: weights/demo)")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--images", type=int, help="training images (default: the recipe's)")
    parser.add_argument("--heldout", type=int, default=500, help="held-out images for the evaluation (default 500)")
    parser.add_argument(
        "--eval-only",
        action="store_true",
        help="only evaluate the existing weights in --out; metadata.json is rewritten once the evaluation completes",
    )
    parser.set_defaults(func=run)
