"""The app as the tests meet it: a random demo set, the real app launched on a free port, shape pictures, and the
page's cells built without a server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
from PIL import Image

from cbam_viz.demo import shapes
from cbam_viz.model.resnet import ARCHS
from cbam_viz.ui import gallery, layout
from cbam_viz.ui.panels import registry as panels
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.server import engine as ui_engine
from cbam_viz.ui.server.engine import Engine, ServeSettings
from cbam_viz.vocab import ARCH_ORDER
from tests.helpers.models import random_model, write_demo_set
from tests.helpers.ports import free_port

DEMO_SIZE = 64  # input size of the random demo set: small keeps every analysis fast on two CPU cores


def write_random_demo(root: Path) -> Path:
    """A weights folder with a demo set of random 1/8-width models (the trained set's file layout and metadata)."""
    models = {arch: random_model(arch, seed) for seed, arch in enumerate(ARCHS)}
    return write_demo_set(root, models, DEMO_SIZE)


@contextlib.contextmanager
def launched_app(
    weights_dir: Path,
    *,
    settings: ServeSettings | None = None,
    delete_cache: tuple[int, int] = ui_engine.DELETE_CACHE,
    weights: str = "demo",
    allow_download: bool = False,
    panel_set: tuple[panels.Panel, ...] = panels.PANELS,
    models_file: Path | None = None,
) -> Iterator[tuple[str, Engine, gr.Blocks]]:
    """The real app (layout.build_demo + layout.serve, as ``python app.py`` runs them) on a free local port; with
    ``models_file``, a model card's models (``python app.py --models``)."""
    weights = "auto" if models_file is not None else weights
    engine = Engine.start(
        weights, "cpu", weights_dir, warm=False, offline=True, allow_download=allow_download, models_file=models_file
    )
    demo = layout.build_demo(engine, settings=settings, delete_cache=delete_cache, panels=panel_set)
    _, url, _ = layout.serve(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, probe_localhost=False)
    try:
        yield url, engine, demo
    finally:
        demo.close()


def shape_file(folder: Path, label: int, seed: int = gallery.EXAMPLE_SEED, size: int = 96) -> Path:
    """A held-out shape picture as a PNG file."""
    path = folder / f"{shapes.CLASSES[label]}-{seed}-{size}.png"
    Image.fromarray(shapes.render_sample(seed, label, width=size, label=label).image).save(path)
    return path


def page_cells() -> Cells:
    """Cells as the sections make them, built inside a Blocks context that is never launched."""
    cells = Cells()
    with gr.Blocks():
        for panel in panels.PANELS:
            for key in [panels.PAGE] if panel.page_wide else ARCH_ORDER:
                cells.add(panel, key)
    return cells
