"""Fixtures that several test modules share: a random demo set, an engine and a launched app on it, a shape picture,
the hostile-file corpus, and one torch thread for the checkpoint tests (and for every process a test starts). A
module that needs a variant defines its own fixture of the same name, which wins over these.

Each fixture imports what it needs inside itself: gradio, the app and torch cost a minute on a busy two-core
machine, and a module that asks for none of these fixtures (most ask for none) should not pay for them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# One torch thread, here and in every process a test starts (the CLI, app.py, a study's workers), unless the caller
# chose: the test models are small, and on two cores two threads hand work to each other and fight the browser and
# the server beside them (measured here: the same CLI analysis 8.6-9.6 s with one thread, 9.4-30 s with two under
# load). `python app.py` makes the same choice for the demo set (``engine.fit_torch_threads``).
os.environ.setdefault("OMP_NUM_THREADS", "1")

if TYPE_CHECKING:
    import gradio as gr
    from gradio_client import Client

    from cbam_viz.ui.server.engine import Engine


@pytest.fixture(scope="session")
def demo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with a demo set of random 1/8-width models, written once for the whole run (read only)."""
    from tests.helpers.app import write_random_demo

    return write_random_demo(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def card_files(tmp_path_factory: pytest.TempPathFactory) -> list:
    """The model-card checkpoints (``tests.helpers.cards``: CBAM in the official layout, torchvision's ResNet-50, timm's
    SE-ResNet-50, each with a 5-class head), built once for the whole run (read only)."""
    from tests.helpers.cards import cbam_official, resnet_torchvision, se_timm

    folder = tmp_path_factory.mktemp("card-files")
    return [cbam_official(folder), resnet_torchvision(folder), se_timm(folder)]


@pytest.fixture(scope="module")
def engine(demo_weights: Path) -> Engine:
    """The app's engine on the random demo set, without a server."""
    from cbam_viz.ui.server.engine import Engine

    return Engine.start("demo", "cpu", demo_weights, warm=False, offline=True)


@pytest.fixture(scope="module")
def launched(demo_weights: Path) -> Iterator[tuple[str, Engine, gr.Blocks]]:
    """The real app on the random demo set, on a free local port: (url, its engine, its Blocks)."""
    from tests.helpers.app import launched_app

    with launched_app(demo_weights) as running:
        yield running


@pytest.fixture(scope="module")
def app_url(launched: tuple[str, Engine, gr.Blocks]) -> str:
    return launched[0]


@pytest.fixture(scope="module")
def client(app_url: str) -> Iterator[Client]:
    """A gradio_client connection to the launched app."""
    from gradio_client import Client

    connection = Client(app_url, verbose=False)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A held-out star at 128 px, as a PNG file."""
    from cbam_viz.demo import shapes
    from tests.helpers.app import shape_file

    return shape_file(tmp_path_factory.mktemp("pictures"), shapes.CLASSES.index("star"), size=128)


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every file of the hostile corpus, written once per module: ``{key: path}`` with the keys of ``EXPECTED``."""
    from tests.helpers.hostile import write_hostile_files

    return write_hostile_files(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a whole module (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    from tests.helpers.checkpoint_layouts import one_torch_thread

    with one_torch_thread():
        yield
