"""``python -m cbam_viz study DATA --out DIR``: accuracy, localisation and attention of the models over a dataset.

DATA is ``shapes`` (the demo set's held-out shapes with their masks, offline) or an ImageFolder ``root/<class>/``
(WordNet id, class index or class name folders; optional ``boxes.csv``, VOC ``.xml`` and ``<image>.mask.png``)
or a flat ImageNet val folder with Kaggle's ``LOC_val_solution.csv`` or the ILSVRC2012 devkit. ``--models-file
models.toml`` studies a model card's models (the first three, or those ``--models`` names by id), whose class names
the class folders use. DIR gets
``images.parquet`` (one row per image and model), ``summary.json`` (with 95 % bootstrap intervals and McNemar's
test between models; with ``--sweep``, the gates set to one stage by stage), ``skipped.csv``, ``atlas.npz``, a figure
per section (``figure-*.png``) and the shards that make the run resumable: after Ctrl-C the same command continues.
See ``cbam_viz.study``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cbam_viz.errors import CbamVizError
from cbam_viz.vocab import ARCH_ORDER as ARCHS
from cbam_viz.vocab import CAM_METHODS, MAX_SHOWN, STAGES, VIEWS, recorded_lineup

SHARD_SIZE = 64  # engine.SHARD_SIZE, repeated so that --help imports nothing heavy (a test checks they agree)
HELP = "measure accuracy, localisation and attention of the models over a dataset (resumable)"
ENGINES = ("local", "ray")


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help=HELP,
        description="Measure the models over a dataset: top-1/top-5, the pointing game and energy of the true "
        "class's CAM in the object's box or mask, MaxBoxAccV2, CBAM's spatial attention per stage, paired "
        "comparisons (McNemar) and the channel-attention atlas. Resumable: run the same command again to continue.",
    )
    parser.add_argument(
        "data",
        metavar="DATA",
        help="shapes (the demo set's held-out shapes); a folder of class folders; or a flat ImageNet val folder with "
        "Kaggle's LOC_val_solution.csv or the ILSVRC2012_devkit_t12 folder in it or above it (a folder named shapes: "
        "write ./shapes)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder of the study (created)")
    parser.add_argument("--weights", default=None, help="weight set or file (default: demo for shapes, else auto)")
    parser.add_argument(
        "--models-file",
        type=Path,
        default=None,
        metavar="TOML",
        help="a model card (models.toml) listing your own checkpoints: its models are studied, and the class folders "
        "are its class names (instead of --weights)",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="weights folder (default: weights/ in the repository; a model card's converted copies go to DIR/cards)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="ID",
        help=f"at most {MAX_SHOWN} of {', '.join(ARCHS)}, or of a model card's ids (default: all three, or the card's "
        f"first {MAX_SHOWN})",
    )
    parser.add_argument("--method", default="gradcam", help=f"CAM method: {', '.join(CAM_METHODS)} (default gradcam)")
    parser.add_argument("--stage", type=int, default=4, choices=STAGES, help="stage whose CAM is measured")
    parser.add_argument(
        "--view",
        default="crop",
        choices=VIEWS,
        help="crop: the weights' evaluation transform (resize, centre crop; default); whole: the entire picture",
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="study N images (shapes: default 1000)")
    parser.add_argument(
        "--per-class", type=int, default=None, metavar="N", help="N images of each class (a seeded, stratified subset)"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="also the gates off over the dataset: SE's and CBAM's top-1 and mean true-class probability with each "
        "stage's channel or spatial gates set to one (as the app's single-picture sweep); kept by the study",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="images per batched pass (default: 16 on the CPU; on a GPU, as many as its free memory holds)",
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        default=SHARD_SIZE,
        metavar="N",
        help=f"images per shard, the most an interruption loses ({SHARD_SIZE}); kept by the study",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="processes that decode and prepare pictures (0: none; the local engine's: Ray schedules its own)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when there is one)")
    parser.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local (default) or ray: Ray Data actors, one per model, on the cluster at RAY_ADDRESS or a local "
        "Ray instance (needs pip install 'cbam_viz[ray]'); the same table and summary",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``study``: 0 when the study is complete, 130 when interrupted (the same command continues)."""
    if args.models_file is not None and args.weights is not None:
        raise CbamVizError("--models-file and --weights both say which models to study: give one of them")
    if args.models_file is not None and args.models_file.suffix != ".toml":
        raise CbamVizError(f"--models-file {args.models_file}: a model card is a .toml file (models.toml)")
    weights = str(args.models_file) if args.models_file is not None else args.weights  # a .toml weights is a card
    if args.engine == "ray":
        from cbam_viz.study.ray_engine import require_ray
        from cbam_viz.study.ray_engine import run_study_ray as run_study

        require_ray()  # one line saying how to install it, before anything is checked or written
    else:
        from cbam_viz.study.engine import run_study

    try:
        result = run_study(
            args.data,
            args.out,
            models=args.models,
            weights=weights,
            weights_dir=args.weights_dir,
            method=args.method,
            stage=args.stage,
            view=args.view,
            limit=args.limit,
            per_class=args.per_class,
            sweep=args.sweep,
            batch_size=args.batch_size,
            shard_size=args.shard_size,
            workers=args.workers,
            device=args.device,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: the finished shards are kept in {args.out}; run the same command to continue",
            file=sys.stderr,
        )
        return 130
    except OSError as error:
        raise CbamVizError(f"cannot write the study into {args.out}: {error.strerror or error}") from error
    for line in summary_lines(result.summary):
        print(line)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"studied {result.measured} of {result.images} image(s) into {args.out}"
        + (f"; {result.skipped} skipped (see skipped.csv)" if result.skipped else "")
    )
    return 0


def _percent(block: dict) -> str:
    value, (low, high) = block.get("value"), block.get("ci", [None, None])
    if value is None:
        return "-"
    return f"{100 * value:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def summary_lines(summary: dict) -> list[str]:
    """The summary as a few lines: per model top-1, top-5, pointing and energy (95 % intervals), then the pairs."""
    lineup = recorded_lineup(summary["models"])  # each model by its title, as the summary records it
    width = max([16, *(len(spec.title) + 1 for spec in lineup.models)])
    lines = [f"{'model':<{width}} {'top-1 %':<20} {'top-5 %':<20} {'pointing %':<20} {'energy %':<20}"]
    for model_id, model in summary["models"].items():
        cells = [_percent(model[key]) for key in ("top1", "top5", "pointing", "energy")]
        lines.append(f"{lineup.title(model_id):<{width}} " + " ".join(f"{cell:<20}" for cell in cells))
    for pair, comparison in summary["comparisons"].items():
        first, second = pair.split("|")
        pointing = comparison["pointing"]
        if pointing.get("difference") is None:
            continue
        low, high = pointing["ci"]
        lines.append(
            f"pointing, {lineup.title(first)} - {lineup.title(second)}: {100 * pointing['difference']:+.1f} points "
            f"[{100 * low:+.1f}, {100 * high:+.1f}], McNemar p = {pointing['p_value']:.3g}"
        )
    for model_id, model in summary["models"].items():
        swept = model.get("sweep")
        if swept:
            cells = [f"as they are {100 * swept['base']['top1']:.1f}"]
            for stage in STAGES:
                for gate, numbers in swept.get(str(stage), {}).items():
                    cells.append(f"layer{stage} {gate} {100 * numbers['top1']:.1f}")
            lines.append(f"gates set to one, {lineup.title(model_id)} top-1 %: " + ", ".join(cells))
    return lines
