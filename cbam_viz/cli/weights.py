"""``python -m cbam_viz weights list|download|convert``: see, fetch and convert the weights the app can load.

Heavy imports (torch) happen inside the handlers, so that ``python -m cbam_viz weights --help`` stays quick (a test
checks that it never imports torch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cbam_viz.errors import WeightsError
from cbam_viz.vocab import ARCH_ORDER

if TYPE_CHECKING:
    from cbam_viz.weights.registry import WeightsEntry

CONNECT_TIMEOUT = 10.0  # cbam_viz.weights.download's defaults, repeated here so that --help needs no torch
READ_TIMEOUT = 60.0


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register ``weights`` and its actions on the top-level parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--weights-dir", type=Path, default=None, help="weights folder (default: weights/ in the repository)"
    )
    parser = subparsers.add_parser(
        "weights",
        help="list, download and convert pretrained weights",
        description="List, download and convert the weights cbam_viz can load.",
    )
    actions = parser.add_subparsers(dest="weights_action", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list", parents=[common], help="every entry and set, what is present, what 'auto' picks"
    )
    listing.set_defaults(func=run_list)

    download = actions.add_parser(
        "download",
        parents=[common],
        help="download a set (default: paper) or one entry and convert it; "
        "CBAM_VIZ_WEIGHTS_MIRROR=<URL or folder> is tried first; an interrupted download resumes",
    )
    download.add_argument("target", nargs="?", default="paper", help="set (paper, pytorchcv) or entry name")
    download.add_argument(
        "--timeout",
        type=float,
        default=READ_TIMEOUT,
        help=f"seconds without data before a transfer counts as stalled (default: {READ_TIMEOUT:g})",
    )
    download.add_argument(
        "--connect-timeout",
        type=float,
        default=CONNECT_TIMEOUT,
        help=f"seconds for a host's first answer (default: {CONNECT_TIMEOUT:g})",
    )
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.set_defaults(func=run_download)

    convert = actions.add_parser(
        "convert", parents=[common], help="convert a checkpoint file (layout auto-detected) to project safetensors"
    )
    convert.add_argument("path", type=Path, help="checkpoint: .pth, .pth.zip, .pt or .safetensors")
    convert.add_argument("--arch", required=True, choices=ARCH_ORDER, help="architecture the file holds")
    convert.add_argument("--out", required=True, type=Path, help="output file, ending in .safetensors")
    convert.add_argument(
        "--stride-in",
        choices=("conv1", "conv2"),
        default=None,
        help="where down-sampling blocks stride, for a pytorchcv file whose name does not say (v1: conv1)",
    )
    convert.set_defaults(func=run_convert)


def _top1(metrics: dict[str, float]) -> str:
    value = metrics.get("imagenet_top1")
    return f"{value:.1f}%" if value is not None else "-"


def run_list(args: argparse.Namespace) -> int:
    """Handler of ``weights list``: the folder, the sets, every entry's state, sources and hashes."""
    # here, not at the top: keeps --help free of torch
    from cbam_viz.weights import files, load, registry

    root = files.weights_root(args.weights_dir)
    print(f"weights folder: {files.display_path(root)}")
    try:
        print(load.resolve_weights("auto", root).note)
    except WeightsError as error:
        print(f"auto: nothing loadable: {error}")
    print("\nsets:")
    for name, members in registry.SETS.items():
        missing = files.missing_entries(name, root)
        state = "complete" if not missing else f"{3 - len(missing)}/3 present"
        default = "  (default ImageNet set)" if name == registry.DEFAULT_SET else ""
        print(f"  {name:<10} {state:<12} {', '.join(members.values())}{default}")
    present, why_not = load.demo_available(root)
    if present:
        metadata = load.read_demo_metadata(root)
        demo_state = f"present: {len(metadata['classes'])} classes, {metadata['preprocess']['resize']} px input"
    else:
        demo_state = f"missing: {why_not}"
    print(f"  {'demo':<10} {demo_state}")
    folder = files.imagenet_dir(root)
    sums = files.read_sums(root)
    print(f"\nentries ({files.display_path(folder)}/; sha256 recorded in {files.SUMS_FILE}):")
    if (mirror := files.mirror_base()) is not None:
        print(f"  mirror first ({files.MIRROR_ENV}): {mirror}/<file name> (each source's file name, in order)")
    print(f"  {'name':<30} {'status':<11} {'top-1':>6}  {'layout':<14} license")
    for entry in registry.ENTRIES.values():
        status = files.entry_status(entry, root)
        print(f"  {entry.name:<30} {status:<11} {_top1(entry.metrics):>6}  {entry.layout:<14} {entry.license}")
        for number, source in enumerate(entry.sources, start=1):
            print(f"      source {number}: {source.url}  ({source.filename}, {source.layout} layout)")
        for line in _file_lines(entry, status, sums, root):
            print(f"      {line}")
    return 0


def _file_lines(entry: WeightsEntry, status: str, sums: dict[str, str], root: Path) -> list[str]:
    """What ``weights list`` says under an entry: its file, sha256 and origin, why it is broken, or how to get it.

    A file put there by hand has no recorded sha256, so it is computed: that is what a user compares with a colleague's.
    """
    # here, not at the top: keeps --help free of torch
    from cbam_viz.weights import files, registry

    found = files.raw_file(entry, root)
    if found is not None:
        path = found[0]
        check = files.check_raw(entry, root) if status != "converted" else None
        recorded = sums.get(path.name)
        computed = check.sha256 if check is not None and check.sha256 else None
        if recorded:
            digest = recorded
        else:
            digest = f"{computed or files.file_sha256(path)} (computed now: not recorded at download)"
        lines = [f"file: {path.name}  sha256 {digest}  {files.from_origin(files.file_origin(path.name, root))}"]
        if check is not None and check.problem:
            hint = f"`{registry.DOWNLOAD_HINT} {entry.name}` sets it aside and fetches it again"
            lines.append(f"broken: {check.problem}; {hint}")
        return lines
    if status == "converted":
        extra = files.converted_extra(entry, root)
        origin = files.from_origin(str(extra.get("origin") or "an unrecorded source"))
        digest = str(extra.get("source_sha256") or "")
        original = f"; original {extra.get('source_file') or 'file'} (gone) had sha256 {digest}" if digest else ""
        return [f"converted {origin}{original}"]
    return [f"by hand: {files.manual_line(entry, root)}"]


def run_download(args: argparse.Namespace) -> int:
    """Handler of ``weights download``: fetch, check and convert a set or an entry; -> the exit status."""
    # here, not at the top: keeps --help free of torch
    from cbam_viz.weights.download import DownloadError, download_set
    from cbam_viz.weights.files import display_path, entry_origin, from_origin
    from cbam_viz.weights.registry import ENTRIES

    try:
        written = download_set(
            args.target,
            args.weights_dir,
            timeout=args.timeout,
            connect_timeout=args.connect_timeout,
            progress=not args.no_progress,
        )
    except DownloadError as error:
        for line in error.lines:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: run the same command again to resume; no partial file is kept as downloaded", file=sys.stderr
        )
        return 130
    for name, path in written.items():
        print(f"{name}: {display_path(path)} ({from_origin(entry_origin(ENTRIES[name], args.weights_dir))})")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """Handler of ``weights convert``: a checkpoint file of a known layout into project safetensors."""
    # here, not at the top: keeps --help free of torch
    from cbam_viz.weights.convert import LAYOUTS, load_into_model, read_checkpoint, save_project_safetensors
    from cbam_viz.weights.files import display_path
    from cbam_viz.weights.registry import IMAGENET_EVAL, Preprocess, default_categories

    if args.out.suffix != ".safetensors":
        raise WeightsError(f"--out {args.out} must end in .safetensors")
    checkpoint = read_checkpoint(args.path)
    loaded = load_into_model(checkpoint, args.arch, stride_in=args.stride_in)
    meta = loaded.project_meta
    categories = meta["categories"] if meta else default_categories(loaded.config.num_classes)
    preprocess = Preprocess.from_dict(meta["preprocess"]) if meta else IMAGENET_EVAL
    extra = {"source_file": args.path.name, "layout": loaded.layout}
    save_project_safetensors(args.out, loaded.model, args.arch, loaded.config, categories, preprocess, extra)
    config = loaded.config
    print(f"detected layout: {loaded.layout} ({LAYOUTS[loaded.layout].title}), {checkpoint.container} file")
    print(
        f"architecture: {args.arch}, stride in {config.stride_in}, stem pool {config.stem_pool}, "
        f"width {config.base_width}, {config.num_classes} classes"
    )
    for note in loaded.notes:
        print(f"note: {note}")
    print(f"wrote {display_path(args.out)} ({len(loaded.model.state_dict())} tensors, strict load passed)")
    return 0
