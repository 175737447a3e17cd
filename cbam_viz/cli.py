"""``python -m cbam_viz``: one entry point; each concept's module registers its own sub-command."""

from __future__ import annotations

import argparse
import importlib
import sys

from cbam_viz.errors import CbamVizError

# Sub-command modules, each with ``add_subcommand(subparsers)`` that sets ``func`` on its parser.
SUBCOMMAND_MODULES = ("cbam_viz.weights_cli", "cbam_viz.train_cli", "cbam_viz.analyze_cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cbam_viz", description=__doc__.split(":", 1)[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CbamVizError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
