"""``python -m cbam_viz``: compare ResNet-50, SE-ResNet-50 and CBAM-ResNet-50 on your images, and manage weights.

One entry point; each concept's module registers its own sub-command.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cbam_viz.errors import CbamVizError

# Sub-command modules, each with ``add_subcommand(subparsers)`` that sets ``func`` on its parser.
SUBCOMMAND_MODULES = ("cbam_viz.cli.weights", "cbam_viz.cli.train", "cbam_viz.cli.analyze", "cbam_viz.cli.study")
# command -> (its module, its one-line help): the overview (``--help``) lists every command without importing any
# module but the one that runs, so start-up stays quick. Tests check these equal each module's own.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "weights": ("cbam_viz.cli.weights", "list, download and convert pretrained weights"),
    "train-demo": (
        "cbam_viz.cli.train",
        "train the three demo models on generated shapes (resumable), evaluate them, write weights/demo",
    ),
    "analyze": ("cbam_viz.cli.analyze", "compare the three models on images: figure, JSON and raw maps per image"),
    "study": (
        "cbam_viz.cli.study",
        "measure accuracy, localisation and attention of the models over a dataset (resumable)",
    ),
}
DESCRIPTION = __doc__.splitlines()[0].replace("``", "")  # the docstring's reST quotes are not for a terminal


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser (``command`` None), or one where only ``command``'s module is imported ("" for none) and
    every other command is listed by name and help."""
    parser = argparse.ArgumentParser(prog="python -m cbam_viz", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        names = [name for name, (module, _) in SUBCOMMANDS.items() if module == module_name]
        if command is None or command in names or not names:
            importlib.import_module(module_name).add_subcommand(subparsers)
        else:
            for name in names:
                subparsers.add_parser(name, help=SUBCOMMANDS[name][1])
    return parser


def requested_command(argv: list[str]) -> str:
    """The sub-command named in ``argv`` ("" when none is: the overview, or argparse's own error)."""
    first = next((word for word in argv if not word.startswith("-")), "")
    return first if first in SUBCOMMANDS else ""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager, a closing terminal) stops a command the way Ctrl-C does: files being
    replaced are left as they were, temporary folders are removed and the exit status is 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run one command; -> its exit status (2 and a one-line message on a ``CbamVizError``, 130 on Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(requested_command(argv)).parse_args(argv)
    try:
        with sigterm_as_ctrl_c():
            return int(args.func(args) or 0)
    except CbamVizError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
