"""Start-up and serving: the models every visitor shares, the server's limits, and the launch options.

``Engine.start`` resolves the weights once (``auto`` becomes a concrete set here, at the boundary), loads the three
models on the GPU when there is one, writes the example pictures and warms the models up. ``ServeSettings`` sizes
the queue to the device; ``launch_options`` holds every ``launch`` keyword that makes the server safe to open to a
classroom.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from cbam_viz.analysis.models import get_models, resolve_device
from cbam_viz.demo import shapes
from cbam_viz.errors import CbamVizError, WeightsError
from cbam_viz.i18n.language import text
from cbam_viz.imaging.limits import MAX_FILE_BYTES
from cbam_viz.pipeline import analyze
from cbam_viz.ui import gallery
from cbam_viz.ui.server import tempdir
from cbam_viz.vocab import Lineup, quote
from cbam_viz.weights.card import ModelCard
from cbam_viz.weights.load import WeightsChoice, card_choice, resolve_weights
from cbam_viz.weights.registry import SET_NAMES

LOGGER = logging.getLogger("cbam_viz.app")
WEIGHT_CHOICES = ("auto", *SET_NAMES)
STATE_SESSIONS = 96  # browser tabs whose state is kept; each costs Gradio about 1 MB (its per-session page config)
STATE_TTL_S = 3600
DELETE_CACHE = (60, 300)  # every minute, delete uploads and rendered panels older than 5 minutes


@dataclass
class Engine:
    """The models every visitor shares: resolved and loaded once at start-up, then served from the model cache."""

    choice: WeightsChoice  # the start-up set or model card, resolved once ("auto" decided), with why (banner note)
    device: str  # "cpu" | "cuda:0"
    weights_dir: Path | None = None
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # gallery title -> [(path, caption)]
    parameters: dict[str, int] = field(default_factory=dict)  # model id -> parameter count of the start-up set
    allow_download: bool = False  # the operator's choice (--allow-download): visitors may start a download

    @classmethod
    def start(
        cls,
        weights: str = "auto",
        device: str | None = None,
        weights_dir: Path | None = None,
        warm: bool = True,
        *,
        offline: bool = False,
        allow_download: bool = False,
        models_file: Path | None = None,
    ) -> Engine:
        """Resolve and load the three models (GPU when present), write the example pictures, run one warm-up pass.

        With ``auto``, the first start fetches the ImageNet paper set (``download.first_run``: console progress bars,
        at most about 15 s when no host answers) unless ``offline``; falling back to the demo set says why.

        With ``models_file`` (a model card, ``--models``), the card's models are served instead, every one checked
        before the server starts; ``weights`` must then be "auto".

        Raises ``CbamVizError`` when no weights can be loaded; app.py prints it as one line and exits.
        """
        fetched_note = None
        if models_file is not None:
            if weights != "auto":
                raise CbamVizError(f"--models serves the card's models: drop --weights {weights}")
            weights = card_choice(models_file, weights_dir)
        elif weights == "auto":
            from cbam_viz.weights.download import first_run

            outcome = first_run(weights_dir, offline=offline)
            print(f"weights: {outcome.note}", flush=True)
            fetched_note = None if outcome.fetched else outcome.note
        target = resolve_device(device)
        model_set = get_models(None, weights, target, weights_dir=weights_dir)
        choice = model_set.weights
        if fetched_note and choice.is_demo:
            choice = replace(choice, note=fetched_note)  # why the first run fell back to the demo set
        engine = cls(
            choice=choice,
            device=model_set.device,
            weights_dir=weights_dir,
            parameters={arch: sum(p.numel() for p in m.parameters()) for arch, m in model_set.models.items()},
            allow_download=allow_download,
        )
        engine.refresh_examples()
        if warm:
            engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """One full analysis, so the first visitor does not pay for lazy initialisation (allocator, kernels)."""
        started = time.perf_counter()
        picture = Image.fromarray(shapes.render_sample(gallery.EXAMPLE_SEED, 0, width=gallery.EXAMPLE_SIZE).image)
        analyze(picture, weights=self.choice, device=self.device, weights_dir=self.weights_dir)
        LOGGER.info("warm-up analysis took %.2f s", time.perf_counter() - started)

    def refresh_examples(self) -> None:
        """Rewrite the example list after the weights on disk changed (an in-app download)."""
        root = gallery.example_root(tempdir.current())
        self.examples = gallery.write_examples(self.available_sets(), root, photos=self.card is not None)

    @property
    def weights(self) -> str:
        """The start-up set's name ("demo", "paper", ...), or the model card's path."""
        return self.choice.name

    @property
    def card(self) -> ModelCard | None:
        """The model card the server shows (``--models``), or None for the paper's three."""
        return self.choice.card

    @property
    def lineup(self) -> Lineup:
        """The models the page offers: the card's, or the paper's three."""
        return self.choice.lineup

    @property
    def weights_note(self) -> str:
        """Why the start-up weights were chosen."""
        return self.choice.note

    @property
    def is_demo(self) -> bool:
        """Whether the start-up weights are the demo set."""
        return self.choice.is_demo

    def available_sets(self) -> list[str]:
        """The named weight sets whose files are here (each loadable without a download)."""
        if self.card is not None:  # a card's server shows the card's models only
            return []
        available = []
        for name in SET_NAMES:
            try:
                resolve_weights(name, self.weights_dir)
            except WeightsError:
                continue
            available.append(name)
        return available

    def resolve(self, weights: str) -> str:
        """The set a visitor picked, checked: "auto" means the start-up set; file paths are not accepted here."""
        if weights in (None, "", "auto") or (self.card is not None and weights == self.weights):
            return self.weights
        if self.card is not None:
            raise CbamVizError(f"this server shows the models of {self.card.path.name} only: choose auto")
        if weights not in SET_NAMES:
            raise CbamVizError(f"unknown weights set {quote(weights)}: choose one of {', '.join(WEIGHT_CHOICES)}")
        return weights

    def choice_for(self, weights: str) -> WeightsChoice | str:
        """What a visitor's pick loads: the start-up choice itself (its note included) or another set's name."""
        name = self.resolve(weights)
        return self.choice if name == self.choice.name else name

    def categories(self, weights: str) -> tuple[str, ...]:
        """Class names of a set (loads and caches its models if this is the first use)."""
        return get_models(None, self.choice_for(weights), self.device, weights_dir=self.weights_dir).categories

    def weight_choices(self) -> list[tuple[str, str]]:
        """Dropdown entries that say which sets are ready and which would need a download."""
        if self.card is not None:
            return [(text("weights.card_now", name=self.card.path.name), "auto")]
        ready = set(self.available_sets())
        labels = [(text("weights.auto_now", name=self.weights), "auto")]
        for name in SET_NAMES:
            kind = text("weights.kind.demo" if name == "demo" else "weights.kind.imagenet")
            state = "ready" if name in ready else ("train" if name == "demo" else "missing")
            labels.append((text("weights.choice", name=name, kind=kind, state=text(f"weights.state.{state}")), name))
        return labels


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (what MALLOC_ARENA_MAX=2 does); -> whether the cap was set.

    glibc gives each thread that allocates its own heap arena, so a server's memory climbs in steps as more of
    Gradio's worker threads get used, and stays there. Measured over 1000 analyses after warm-up: +51 MB with
    the default arenas, flat (-46 MB) with two, at the same speed. A MALLOC_ARENA_MAX already set wins.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, for instance): nothing to cap
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def fit_torch_threads(device: str, weights: str) -> int:
    """One torch thread for the demo models on a CPU; what torch chose otherwise. -> the threads in use.

    The demo models are small (96 px inputs): on two cores, two torch threads spend their time handing work to each
    other, and they fight the server's other threads (a live stream, the browser on a one-machine classroom). Measured
    (`benchmarks/live.py`, three demo models): 6.9 frames/s with two threads, 10.0 (the camera's rate) with one;
    ImageNet-size models are faster with every core, so their thread count is left alone."""
    import torch

    if device == "cpu" and (weights == "demo" or weights.endswith(".demo")):
        torch.set_num_threads(1)
    return torch.get_num_threads()


BIG_PICTURE_PIXELS = 8_000_000  # decoding more than this leaves freed pages that glibc keeps unless asked


def release_memory() -> bool:
    """Hand freed heap pages back to the system (glibc's ``malloc_trim``); -> whether anything was returned.

    A 49-megapixel upload needs about 150 MB per copy while it is decoded and shrunk; once freed, glibc keeps
    those pages, and one such visitor leaves the server 400 MB larger for good. Called after big pictures only
    (it takes a few milliseconds)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class ServeSettings:
    """Queue and concurrency limits that fit the device: one analysis at a time per 2 CPU cores; more on a GPU."""

    concurrency: int
    queue_size: int
    render_concurrency: int
    live_sessions: int = 2  # webcams streamed at once; the next viewer is told to use photo mode
    expensive_concurrency: int = 1  # Score-CAM/ROAD analyses, sanity checks, curves, sweeps: their own slot, so an
    # ordinary photo-mode analysis never waits behind more than the one expensive job that shares the CPU with it

    @classmethod
    def for_device(cls, device: str, queue_size: int | None = None) -> ServeSettings:
        """The limits that fit a CPU or a GPU server (``queue_size`` overrides its queue)."""
        if device.startswith("cuda"):
            return cls(concurrency=4, queue_size=queue_size or 256, render_concurrency=4, live_sessions=6)
        return cls(concurrency=1, queue_size=queue_size or 64, render_concurrency=1, live_sessions=2)


def launch_options(host: str, port: int, share: bool = False) -> dict[str, Any]:
    """``launch`` keywords that make the server safe to open to a classroom."""
    return {
        "server_name": host,
        "server_port": port,
        "share": share,
        "max_file_size": MAX_FILE_BYTES,
        "show_error": False,  # our messages are gr.Error lines; Gradio's own (wrong argument counts) carry object reprs
        "enable_monitoring": False,
        "run_history": False,  # no /gradio_api/runs page, nothing of a visitor's runs kept in browsers
        "allowed_paths": [],  # only Gradio's own cache (uploads, rendered panels, examples) is served
        "footer_links": ["api"],
        "state_session_capacity": STATE_SESSIONS,
        "quiet": True,
    }
