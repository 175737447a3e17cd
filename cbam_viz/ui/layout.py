"""The page: its sections (``ui.sections.SECTIONS``) built top to bottom, then wired; and the server's start.

``build_demo(engine)`` returns the Blocks; ``main(argv)`` is what ``python app.py`` runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

import gradio as gr

from cbam_viz.errors import CbamVizError
from cbam_viz.render import fonts
from cbam_viz.ui import api_info, i18n
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.panels.registry import PANELS, Panel
from cbam_viz.ui.sections import SECTIONS
from cbam_viz.ui.sections import live as live_section
from cbam_viz.ui.sections.common import Page, Parts
from cbam_viz.ui.server import choices, guard, tempdir
from cbam_viz.ui.server import engine as engine_module
from cbam_viz.ui.server.engine import Engine, ServeSettings
from cbam_viz.ui.server.proxies import TrustedProxies
from cbam_viz.ui.study import Shelf
from cbam_viz.ui.style import CSS, PRESENTER_CSS, PRESENTER_JS, READABLE_CSS

TITLE = "cbam_viz: where does attention look?"


def build_demo(
    engine: Engine,
    *,
    delete_cache: tuple[int, int] = engine_module.DELETE_CACHE,
    settings: ServeSettings | None = None,
    panels: tuple[Panel, ...] = PANELS,
    studies: Shelf | None = None,
) -> gr.Blocks:
    """The page: every section laid out in order (each returns its handle), then every section's events wired
    against all the handles (an event may read or write another section's components). ``studies``: the studies
    the page may open (default: the bundled one)."""
    settings = settings or ServeSettings.for_device(engine.device)
    i18n.follow_visitors()  # what events write is in the language of the visitor whose event it is
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        state = gr.State(None, time_to_live=engine_module.STATE_TTL_S)
        parts = Parts(
            demo,
            engine,
            settings,
            Cells(panels=panels, lineup=engine.lineup),
            state,
            Shelf.of() if studies is None else studies,
        )
        handles = {section.key: section.build(parts) for section in SECTIONS}
        page = Page(parts, SECTIONS, **handles)
        for section in SECTIONS:
            section.wire(page)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.render_concurrency)
    api_info.describe(demo)  # the API page's labels and types, as a caller needs them
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="cbam_viz web app: ResNet-50, SE-ResNet-50 and CBAM-ResNet-50.")
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on; 0.0.0.0 opens it to the network (default 127.0.0.1, or $GRADIO_SERVER_NAME)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument(
        "--weights",
        default="auto",
        choices=engine_module.WEIGHT_CHOICES,
        help="auto (the ImageNet paper set if downloaded, else demo) or a set name",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="MODELS.toml",
        help="a model card: your own checkpoints with their classes and preprocessing (README: your own model)",
    )
    parser.add_argument("--weights-dir", type=Path, default=None, help="a weights folder other than ./weights")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when there is one)")
    parser.add_argument("--queue-size", type=int, default=None, help="waiting requests before 'busy' (64 CPU, 256 GPU)")
    parser.add_argument(
        "--offline", action="store_true", help="never download weights at start-up (also: CBAM_VIZ_OFFLINE=1)"
    )
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="show the in-page Download button and the /download_weights API (operator's choice)",
    )
    parser.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (opt-in)")
    parser.add_argument(
        "--trusted-proxies",
        type=_proxies,
        default=TrustedProxies(),
        metavar="ADDR[,ADDR]",
        help="reverse proxies whose X-Forwarded-For is believed (addresses or networks; default: none)",
    )
    parser.add_argument(
        "--study",
        action="append",
        default=[],
        type=_folders,
        metavar="DIR[,DIR]",
        help="a study folder (python -m cbam_viz study ... --out DIR) the Study section may open; repeatable "
        "(the bundled study of the demo set is always there)",
    )
    return parser.parse_args(argv)


def _folders(value: str) -> list[Path]:
    return [Path(part.strip()) for part in value.split(",") if part.strip()]


def _proxies(value: str) -> TrustedProxies:
    try:
        return TrustedProxies.parse(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (checked before the models load), or None."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as uvicorn binds: a port whose last connections still linger in TIME_WAIT after a stop is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return f"cannot listen on {host}:{port} ({error.strerror or error}): pick another with --port"
    return None


PAGE_JS = (PRESENTER_JS, i18n.LANGUAGE_JS, live_section.STOP_JS)  # run once, when the page loads


def serve(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    prevent_thread_lock: bool = False,
    probe_localhost: bool = True,
    trusted_proxies: TrustedProxies | None = None,
) -> tuple[Any, str, str]:
    """Launch with the app's limits (upload size, no monitoring route, no extra served paths) behind the guard.

    ``probe_localhost=False`` skips Gradio's start-up probe of the page (three-second timeout), which a busy
    test machine can miss; Gradio would then refuse to start without a share link. ``trusted_proxies``: whose
    X-Forwarded-For the guard believes (nobody's by default; uvicorn's own belief in loopback peers is switched off).
    """
    demo.api_open = False  # queued events run only through the queue (the guard answers the direct routes)
    os.environ["FORWARDED_ALLOW_IPS"] = ""  # read by uvicorn at launch: the guard alone decides who the client is
    choices.install()
    return demo.launch(
        **engine_module.launch_options(host, port, share),
        app_kwargs=guard.app_kwargs(demo, proxies=trusted_proxies),
        prevent_thread_lock=prevent_thread_lock,
        css=CSS + READABLE_CSS + PRESENTER_CSS + i18n.TOAST_CSS,
        js="() => {" + "".join(f" ({js.strip()})();" for js in PAGE_JS) + " }",
        i18n=i18n.catalogues(),
        theme=gr.themes.Soft(),
        _frontend=probe_localhost,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine_module.limit_malloc_arenas()  # before any server thread allocates: keeps a long-running server flat
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    run = tempdir.own()  # before any component exists: Gradio's cache is read when each one is made
    stale = f" ({run.cleared} left by earlier runs removed)" if run.cleared else ""
    print(f"temporary files: {run.path}{stale}")
    try:
        shelf = Shelf.of(folder for group in args.study for folder in group)
        if args.models is not None:  # hashing and, the first time, converting each file takes seconds
            print(f"model card: {args.models}: checking every model before the server starts", flush=True)
        engine = Engine.start(
            args.weights,
            args.device,
            args.weights_dir,
            offline=args.offline,
            allow_download=args.allow_download,
            models_file=args.models,
        )
    except CbamVizError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"weights: {engine.weights} ({engine.weights_note})")
    if missing_font := fonts.missing_note():
        print(f"note: {missing_font}")
    threads = engine_module.fit_torch_threads(str(engine.device), engine.weights)
    print(f"device: {engine.device} ({threads} torch thread{'s' if threads != 1 else ''})")
    settings = ServeSettings.for_device(engine.device, args.queue_size)
    print(f"queue: {settings.queue_size} waiting at most, {settings.concurrency} analysis at a time")
    print(f"open http://{args.host}:{args.port}")
    print(f"studies: {', '.join(shelf.folders) or 'none'}")
    serve(
        build_demo(engine, settings=settings, studies=shelf),
        args.host,
        args.port,
        args.share,
        trusted_proxies=args.trusted_proxies,
    )
    return 0
