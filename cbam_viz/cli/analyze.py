"""``python -m cbam_viz analyze``: the comparison figure, the JSON summary and the raw maps for images or folders.

Per image ``<stem>`` it writes ``<stem>.png`` (the comparison figure), ``<stem>.json`` (``Analysis.to_json()`` plus the
input's path and where each map went) and the raw maps. By default (``--maps npz``) that is ONE compressed
``<stem>.npz`` of every map at its native (feature-grid) size and every channel vector: a few hundred kilobytes,
where full-resolution float maps are 19 arrays of the photo's size (about 0.9 GB for one 12-megapixel photo), so
those are opt-in (``--maps image``: ``<stem>/*.npy`` resampled once onto the input as the user sees it, EXIF
applied, NaN where the model saw nothing; ``--maps native``: the same files at native size). Each analysed image
gets one line on stdout with every model's top-1, and under it one sentence per check asked for (``--box``,
``--sanity``, ``--deletion-insertion``, ``--intervene``). One unusable file gives a one-line error and the rest are
still analysed; the exit code is 1 when any file failed.

No user file is ever replaced: every result is a new file (opened exclusively), a rerun's results take fresh names
(``<stem>-2.*``, said in a note), an ``--out`` where a result would take an input's name is refused before any work,
and the comparison figures written earlier (marked in their PNG text) are skipped when their folder is analysed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cbam_viz.errors import CbamVizError
from cbam_viz.vocab import ARCH_ORDER as ARCHS
from cbam_viz.vocab import CAM_METHODS, STAGES, VIEWS

if TYPE_CHECKING:
    import numpy as np

    from cbam_viz.analysis.results import Analysis

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
SANITY_DRAWS = 5  # --sanity: randomised networks per step and random other classes (the page runs 1 of each)
MAP_MODES = ("npz", "image", "native", "none")  # npz: one compressed file of native maps per image (the default)


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register ``analyze`` and its options on the top-level parser."""
    parser = subparsers.add_parser(
        "analyze",
        help="compare the three models on images: figure, JSON and raw maps per image",
        description="Compare the models on images. Per image: the comparison figure (<stem>.png), the JSON summary "
        "(<stem>.json), the raw maps (<stem>.npz unless --maps says otherwise) and one line with each model's top-1.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders of images")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the results (created)")
    parser.add_argument("--weights", default="auto", help="weight set (auto, demo, paper, ...) or a file; default auto")
    parser.add_argument(
        "--models-file",
        type=Path,
        default=None,
        metavar="MODELS.toml",
        help="a model card: your own checkpoints with their classes and preprocessing (instead of --weights)",
    )
    parser.add_argument(
        "--weights-dir", type=Path, default=None, help="weights folder (default: weights/ in the repository)"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="MODEL",
        help=f"any of {', '.join(ARCHS)}, or up to three ids of the --models-file card (default: all three, or the "
        "card's first three)",
    )
    parser.add_argument("--method", default="gradcam", help=f"CAM method: {', '.join(CAM_METHODS)} (default gradcam)")
    parser.add_argument(
        "--target", default=None, help="class to explain in every model, by index or name (default: each model's top-1)"
    )
    parser.add_argument("--stage", type=int, default=4, choices=STAGES, help="stage whose CAM is computed")
    parser.add_argument(
        "--view", default="whole", choices=VIEWS, help="whole image resized, or the weights' centre crop"
    )
    parser.add_argument("--faithfulness", action="store_true", help="also score each CAM with ROAD (extra passes)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when there is one)")
    parser.add_argument(
        "--maps",
        default="npz",
        choices=MAP_MODES,
        help="raw maps: one compressed <stem>.npz at the models' native size (npz, default); <stem>/*.npy at the "
        "input image's full size (image: large) or at native size (native); or none",
    )
    parser.add_argument(
        "--intervene",
        nargs="+",
        default=(),
        metavar="SPEC",
        help="gate interventions, each <where>:<gate>=<how> (e.g. layer3:spatial=one, all:channel=mean, "
        "layer4.2:both=one, layer2:channel=keep-top-k:16), or sweep (every stage's gates set to one in turn)",
    )
    parser.add_argument(
        "--box",
        default=None,
        metavar="X0,Y0,X1,Y1",
        help="a box around the object, in pixels of the picture as you see it (EXIF applied): the pointing game "
        "(does each map's peak fall in it, and which share of its mass)",
    )
    parser.add_argument(
        "--sanity",
        action="store_true",
        help="also randomise each model's weights from the head down, and one layer at a time, and compare the CAMs "
        "(Spearman, SSIM), plus the CAMs of random other classes",
    )
    parser.add_argument(
        "--sanity-draws",
        type=_at_least_one,
        default=SANITY_DRAWS,
        metavar="N",
        help=f"with --sanity: randomised networks per step, reported as mean and spread (default {SANITY_DRAWS})",
    )
    parser.add_argument(
        "--other-classes",
        type=_at_least_one,
        default=SANITY_DRAWS,
        metavar="N",
        help=f"with --sanity: random other classes the CAM is compared with (default {SANITY_DRAWS})",
    )
    parser.add_argument(
        "--deletion-insertion",
        action="store_true",
        help="also blur away (deletion) or reveal (insertion) the pixels in the order each CAM ranks them, 20 steps, "
        "against a random order",
    )
    parser.set_defaults(func=run)


def _at_least_one(value: str) -> int:
    """argparse type: a whole number >= 1 (a one-line usage error otherwise)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {value!r}")
    return number


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[str], bool, list[str]]:
    """Files to analyse, one-line problems with the arguments themselves, whether any folder was given, and one-line
    notes on what a folder held that is not a photo (the comparison figures of an earlier run)."""
    files: list[Path] = []
    problems: list[str] = []
    notes: list[str] = []
    any_folder = False
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            any_folder = True
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            figures = [p for p in found if _is_own_figure(p)]
            if figures:
                shown = ", ".join(p.name for p in figures[:3]) + (", ..." if len(figures) > 3 else "")
                notes.append(
                    f"{path}: skipped {_count(len(figures), 'comparison figure')} that this command wrote ({shown})"
                )
            found = [p for p in found if p not in figures]
            if not found and not figures:
                problems.append(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, problems, any_folder, notes


def _is_own_figure(path: Path) -> bool:
    """Whether ``path`` is a comparison figure this package drew (its PNG text says so), not a photo."""
    if path.suffix.lower() != ".png":
        return False
    from PIL import Image

    from cbam_viz.render.export import is_comparison_figure

    try:
        with Image.open(path) as image:
            return is_comparison_figure(image.info)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False  # not readable as a PNG: analysing it gives the one-line error


def _count(number: int, noun: str) -> str:
    """``1 image``, ``2 images``: a count with its noun in the right number."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


OUTPUT_SUFFIXES = (".png", ".json", ".npz", "")  # per image: figure, JSON, maps (npz, or a folder of .npy)


def _outputs(out_dir: Path, stem: str) -> list[Path]:
    return [out_dir / f"{stem}{suffix}" for suffix in OUTPUT_SUFFIXES]


def output_stems(files: list[Path], out_dir: Path) -> tuple[dict[Path, str], list[str]]:
    """Per input, the stem of its results in ``out_dir``, and one-line notes on stems that had to change.

    Two inputs of one name (``photo.jpg``, ``photo.png``) get ``photo`` and ``photo_png``. Results never replace a
    file that is already there: a rerun writes ``photo-2.png`` and its siblings, and says so. An output folder where
    a result would take an input's own name is refused (CbamVizError), before any work.
    """
    used: set[str] = set()
    stems: dict[Path, str] = {}
    for path in files:
        stems[path] = _unique_stem(path, used)
    inputs = {path.resolve(): path for path in files}
    for stem in stems.values():
        for output in _outputs(out_dir, stem):
            if output.resolve() in inputs:
                raise CbamVizError(
                    f"--out {out_dir} would replace the input {inputs[output.resolve()].name} with results of the "
                    "same name: choose an output folder apart from the images"
                )
    notes = []
    taken = set(stems.values())
    for path, stem in stems.items():
        fresh, counter = stem, 2
        while any(output.exists() for output in _outputs(out_dir, fresh)) or (fresh != stem and fresh in taken):
            fresh, counter = f"{stem}-{counter}", counter + 1
        if fresh != stem:
            notes.append(
                f"{path.name}: {out_dir / stem}.* already exist and are kept; this run's results are {fresh}.png, "
                f"{fresh}.json, ..."
            )
            stems[path] = fresh
            taken.add(fresh)
    return stems, notes


def run(args: argparse.Namespace) -> int:
    """Handler of ``analyze``: returns 0 when every image was analysed, 1 when any failed."""
    # here, not at the top: keeps --help free of torch
    from tqdm import tqdm

    from cbam_viz import pipeline
    from cbam_viz.analysis import cam
    from cbam_viz.analysis.options import AnalysisOptions
    from cbam_viz.imaging.decode import decode_image
    from cbam_viz.render.export import check_summaries

    if args.models_file is not None and args.weights != "auto":
        raise CbamVizError(f"--models-file names the models: drop --weights {args.weights}")
    choice = resolve_choice(str(args.models_file or args.weights), args.weights_dir)
    options = AnalysisOptions(  # checked once, here at the boundary, against the models the weights offer
        models=args.models,
        weights=choice,
        target=args.target,
        method=args.method,
        stage=args.stage,
        view=args.view,
        faithfulness=args.faithfulness,
        interventions=args.intervene,
        box=args.box,
    )
    files, problems, any_folder, input_notes = collect_inputs(args.inputs)
    stems, stem_notes = output_stems(files, args.out)  # refuses an --out that would replace an input
    model_set = load_models(options.models, choice, args.device, args.weights_dir)
    pipeline.intervention_plan(model_set.models, options.interventions)  # a spec no chosen model takes: stop here
    target = cam.resolve_target(options.target, model_set.categories)
    options = options.with_(weights=model_set.weights, models=tuple(model_set.models), target=target)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CbamVizError(f"cannot create the output folder {args.out}: {error.strerror or error}") from error
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    for note in input_notes + stem_notes:
        print(f"note: {note}", file=sys.stderr)
    failed = len(problems)
    progress = tqdm(files, desc="analyse", unit="image", disable=not any_folder, file=sys.stderr)
    for path in progress:
        try:
            picture = decode_image(path)
            if options.box is not None:
                tqdm.write(box_note(path, options.box, picture.size), file=sys.stderr, end="")
            result = pipeline.analyze(picture, options, device=model_set.device, weights_dir=args.weights_dir)
            sanity = (args.sanity_draws, args.other_classes) if args.sanity else None
            extra_maps = trust_checks(result, path, options, model_set.device, sanity, args.deletion_insertion)
            write_outputs(result, path, args.out, stems[path], args.maps, extra_maps)
            tqdm.write("\n".join([top1_line(path, result), *(f"  {line}" for line in check_summaries(result))]))
        except CbamVizError as error:
            failed += 1
            tqdm.write(f"error: {path}: {error}", file=sys.stderr)
        except OSError as error:  # the results could not be written (disk full, permissions): say so, go on
            failed += 1
            tqdm.write(f"error: {path}: cannot write the results: {error.strerror or error}", file=sys.stderr)
    print(run_summary(len(files), failed - len(problems), len(problems), args.out))
    return 1 if failed else 0


def resolve_choice(weights: str, weights_dir: Path | None) -> Any:
    """The weights (a set, a file, or a model card, whose every model is checked now), resolved once and said in one
    line before anything loads."""
    from cbam_viz.weights.load import resolve_weights

    choice = resolve_weights(weights, weights_dir)
    print(f"weights: {choice.name} - {choice.note}", flush=True)
    return choice


def load_models(names: tuple[str, ...], choice: Any, device: str | None, weights_dir: Path | None = None) -> Any:
    """The models, loaded once, one line per model as it loads (seconds each), so the console is never silent."""
    from cbam_viz.analysis import models

    for number, name in enumerate(names, start=1):
        print(f"loading {choice.lineup.title(name)} ({number} of {len(names)})", flush=True)  # stderr: errors
        models.get_models([name], choice, device, weights_dir=weights_dir)  # cached: the set below takes them
    return models.get_models(names, choice, device, weights_dir=weights_dir)


def run_summary(images: int, failed: int, unusable_inputs: int, out_dir: Path) -> str:
    """The run's last line, a sentence: ``analysed 2 of 3 images into out; 1 image failed``."""
    done = images - failed
    if images == 0:
        line = "no images analysed"
    elif failed:
        line = f"analysed {done} of {_count(images, 'image')} into {out_dir}; {_count(failed, 'image')} failed"
    else:
        line = f"analysed {_count(images, 'image')} into {out_dir}"
    if unusable_inputs:
        line += f"; {_count(unusable_inputs, 'input')} gave no images"
    return line


def box_note(path: Path, box: tuple[float, float, float, float], size: tuple[int, int]) -> str:
    """Nothing ("") when ``box`` lies on the picture, a "note: ..." line when it reaches past an edge and is
    clipped; a box that misses the picture is a one-line CbamVizError for this picture (the others go on)."""
    from cbam_viz.checks.pointing import box_on_picture

    clipped = box_on_picture(box, size)
    if clipped == tuple(float(value) for value in box):
        return ""
    given, kept = (",".join(f"{value:g}" for value in numbers) for numbers in (box, clipped))
    return f"note: {path}: the box {given} reaches past the {size[0]}x{size[1]} picture: clipped to {kept}\n"


def trust_checks(
    result: Analysis, path: Path, options: Any, device: str, sanity_checks: tuple[int, int] | None, curves: bool
) -> dict[str, np.ndarray]:
    """The optional checks of the maps (``cbam_viz.checks``), attached to ``result`` (its JSON then carries them);
    ``sanity_checks`` is (randomised networks per step, random other classes), None for none.
    -> the randomised CAMs, keyed ``sanity_<arch>.<map>``."""
    # here, not at the top: keeps --help free of torch
    from cbam_viz.checks import curves as checks_curves
    from cbam_viz.checks import randomisation as checks_randomisation

    arrays: dict[str, np.ndarray] = {}
    if sanity_checks:
        draws, other_classes = sanity_checks
        result.sanity = checks_randomisation.sanity_report(
            path, options, independent=True, draws=draws, other_classes=other_classes, device=device
        )
        arrays = {f"sanity_{key}": grid for key, grid in result.sanity.maps().items()}
    if curves:
        result.curves = checks_curves.curves_report(path, options, device=device)
    return arrays


def top1_line(source: Path, result: Analysis) -> str:
    """``cat.jpg: ResNet-50 tabby 0.62 | SE-ResNet-50 tabby 0.71 | CBAM-ResNet-50 tiger cat 0.55``."""
    answers = []
    for model in result.models.values():
        label, prob = model.top5[0]
        answers.append(f"{model.title} {label} {prob:.2f}")
    return f"{source.name}: " + " | ".join(answers)


def intervened_key(spec: str) -> str:
    """A spec as part of a map's key and file name: ``layer3:spatial=one`` -> ``layer3_spatial-one``."""
    return spec.replace(":", "_").replace("=", "-")


def map_arrays(result: Analysis, maps: str) -> dict[str, dict[str, np.ndarray]]:
    """Per model, ``{"<arch>_cam": array, "<arch>_spatial_layerS.B": array, "<arch>_channel_layerS.B": vector}``:
    maps at native size, or resampled once onto the input image ("image"); channel vectors as they are."""
    # here, not at the top: keeps --help free of torch and numpy
    import numpy as np

    from cbam_viz.imaging.view import map_to_image

    arrays: dict[str, dict[str, np.ndarray]] = {}
    for arch, model in result.models.items():
        view = model.view or result.view
        grids = {f"{arch}_cam": model.cam}
        grids.update({f"{arch}_spatial_{block}": grid for block, grid in model.spatial_attention.items()})
        grids.update({f"{arch}_cam_{intervened_key(done.spec)}": done.cam for done in model.interventions})
        named = {
            name: np.asarray(native if maps != "image" else map_to_image(native, view, result.original_size))
            for name, native in grids.items()
        }
        named.update({f"{arch}_channel_{block}": vector for block, vector in model.channel_attention.items()})
        arrays[arch] = {name: np.asarray(array, dtype=np.float32) for name, array in named.items()}
    return arrays


def write_outputs(
    result: Analysis,
    source: Path,
    out_dir: Path,
    stem: str,
    maps: str = "npz",
    extra_maps: dict[str, np.ndarray] | None = None,
) -> dict[str, list[str]]:
    """Write ``<stem>.png``, ``<stem>.json`` and the maps (``MAP_MODES``), each a new file (an existing one is an
    OSError, never replaced: ``output_stems`` chose names that are free); return, per model, where each map went:
    ``"<stem>.npz:<key>"`` (npz) or ``"<stem>/<key>.npy"`` (image, native). ``extra_maps`` (the randomised CAMs,
    at native size) join the maps, listed under ``"sanity"``."""
    # here, not at the top: keeps --help free of torch and numpy
    import numpy as np

    from cbam_viz.render import export as render

    if maps not in MAP_MODES:
        raise ValueError(f"unknown maps mode {maps!r}; choose one of {', '.join(MAP_MODES)}")
    written: dict[str, list[str]] = {}
    if maps == "npz":
        arrays = map_arrays(result, maps)
        if extra_maps:
            arrays["sanity"] = {name: np.asarray(grid, dtype=np.float32) for name, grid in extra_maps.items()}
        everything = {name: array for named in arrays.values() for name, array in named.items()}
        with (out_dir / f"{stem}.npz").open("xb") as out:  # "x": never over a file that is there
            np.savez_compressed(out, **everything)
        written = {arch: [f"{stem}.npz:{name}" for name in named] for arch, named in arrays.items()}
    elif maps != "none":
        folder = out_dir / stem
        folder.mkdir()
        arrays = map_arrays(result, maps)
        if extra_maps:
            arrays["sanity"] = {name: np.asarray(grid, dtype=np.float32) for name, grid in extra_maps.items()}
        for arch, named in arrays.items():
            for name, array in named.items():
                with (folder / f"{name}.npy").open("xb") as out:
                    np.save(out, array)
            written[arch] = [f"{stem}/{name}.npy" for name in named]
    document = result.to_json()
    document["source"] = str(source)
    document["maps"] = written
    with (out_dir / f"{stem}.json").open("x", encoding="utf-8") as out:
        out.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    with (out_dir / f"{stem}.png").open("xb") as out:
        out.write(render.comparison_figure(result))
    return written


def _unique_stem(path: Path, used: set[str]) -> str:
    """The file's stem, made unique within one run ("photo.jpg" and "photo.png" would otherwise overwrite)."""
    stem = path.stem
    if stem in used:
        stem = f"{path.stem}_{path.suffix.lstrip('.').lower()}"
        counter = 2
        while stem in used:
            stem = f"{path.stem}_{path.suffix.lstrip('.').lower()}{counter}"
            counter += 1
    used.add(stem)
    return stem
