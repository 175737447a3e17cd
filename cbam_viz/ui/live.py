"""Live mode: webcam frames through the chosen models, one lean pass each, drawn as overlays in one JPEG.

Per frame: the frame (the browser's JPEG/PNG/WebP, decoded here by ``imaging.decode_image`` with the webcam's limits,
and only once the tab holds a live slot) is shrunk once to ``LIVE_SIDE``; each model
runs its one hooked pass (``analysis.run_model``: top-1, the CAM, the gates); the CAM and CBAM's spatial map of
the chosen stage are laid over the frame with the numpy colour tables; the row goes out as one JPEG. No
matplotlib, no JSON, no drill-down.

Bounds, in one place:

* frames are dropped, never queued: a Gradio stream is one long event per tab whose input slot each new frame
  from the browser overwrites (``POST /gradio_api/stream/{event}``), so while a frame is analysed only the newest
  waiting frame is kept (at most one frame in flight per tab; ``trigger_mode="always_last"`` would stop the stream
  after its first frame);
* at most ``ServeSettings.live_sessions`` tabs stream at once (``LiveSlots``: a tab holds its slot while frames
  keep coming and loses it ``LEASE_S`` after the last one); the next viewer is told to use photo mode;
* photo mode goes first: while a photo analysis runs or waits (``photo_turn``), live frames are skipped, so a
  photo analysis waits at most for the one live frame already in flight.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cbam_viz.analysis.models import get_models
from cbam_viz.analysis.run import run_model
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import class_name, text
from cbam_viz.imaging.decode import decode_image, display_image
from cbam_viz.imaging.headers import LIVE_FRAME_BYTES, LIVE_FRAME_PIXELS
from cbam_viz.imaging.view import map_to_image, prepare_input
from cbam_viz.render import fonts
from cbam_viz.render.overlay import overlay as draw_overlay
from cbam_viz.render.text import captioned_row
from cbam_viz.ui.gallery import is_plain_file
from cbam_viz.vocab import has_spatial_attention, last_block
from cbam_viz.weights.registry import Preprocess

LIVE_SIDE = 256  # px of the analysed and drawn frame: big enough for a projector row of four, cheap to encode
LEASE_S = 3.0  # a tab whose frames stopped this long ago gives its live slot back
FPS_WINDOW_S = 3.0


class LiveSlots:
    """Which tabs stream now: at most ``capacity``, each kept by its frames (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._last_frame: dict[str, float] = {}
        self._lock = threading.Lock()

    def hold(self, session: str, now: float | None = None) -> bool:
        """Keep (or take) ``session``'s slot for this frame; False when every slot is another tab's."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for other in [name for name, seen in self._last_frame.items() if now - seen > LEASE_S]:
                del self._last_frame[other]
            if session not in self._last_frame and len(self._last_frame) >= self.capacity:
                return False
            self._last_frame[session] = now
            return True

    def release(self, session: str) -> None:
        """Free a tab's live slot at once."""
        with self._lock:
            self._last_frame.pop(session, None)

    def __len__(self) -> int:
        return len(self._last_frame)


_PHOTO_WAITING = 0
_PHOTO_LOCK = threading.Lock()


@contextlib.contextmanager
def photo_turn() -> Iterator[None]:
    """Around a photo-mode analysis: live frames step aside until it is done."""
    global _PHOTO_WAITING
    with _PHOTO_LOCK:
        _PHOTO_WAITING += 1
    try:
        yield
    finally:
        with _PHOTO_LOCK:
            _PHOTO_WAITING -= 1


def photo_waiting() -> bool:
    """Whether a photo analysis is waiting or running (live frames step aside)."""
    return _PHOTO_WAITING > 0


@dataclass
class FrameClock:
    """A tab's recent frame times, for its frames-per-second counter."""

    times: deque = field(default_factory=lambda: deque(maxlen=64))

    def tick(self, now: float | None = None) -> float:
        """Record one shown frame; -> frames per second over the last ``FPS_WINDOW_S`` seconds."""
        now = time.monotonic() if now is None else now
        self.times.append(now)
        recent = [t for t in self.times if now - t <= FPS_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])


@dataclass(frozen=True)
class LiveResult:
    """One frame as shown: the row of overlays, each model's top-1 and where its CAM is hottest."""

    image: Image.Image
    top1: dict[str, tuple[str, float]]
    peaks: dict[str, tuple[float, float]]  # arch -> (x, y) of the CAM's maximum, as shares of the frame (0-1)
    picture: Image.Image  # the frame as analysed (``LIVE_SIDE``): what Freeze sends to the full analysis
    demo: bool = False  # the demo set answered: its shapes are named in the page's language
    titles: dict[str, str] = field(default_factory=dict)  # model id -> its name (a model card's title)


Frame = (
    np.ndarray | Image.Image | str | bytes
)  # an array or picture, or the webcam's file (cached path, data URL bytes)


def frame_picture(frame: Frame) -> Image.Image:
    """The browser's frame as an RGB picture at most ``LIVE_SIDE`` px (the only resize of the frame); a file is
    decoded by the app's decoder with the webcam's limits (format allow-list, 4 megapixels, bounded EXIF)."""
    if isinstance(frame, str | bytes):
        if isinstance(frame, str) and not is_plain_file(Path(frame)):
            raise CbamVizError(text("error.live_frame"))
        picture = decode_image(
            frame, max_file_bytes=LIVE_FRAME_BYTES, max_pixels=LIVE_FRAME_PIXELS, name=text("image.live_frame")
        )
    elif isinstance(frame, Image.Image):
        picture = frame.convert("RGB")
    else:
        array = np.asarray(frame)
        if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
            raise CbamVizError(text("error.live_frame"))
        picture = Image.fromarray(np.ascontiguousarray(array[..., :3]))
    return display_image(picture, LIVE_SIDE)


def analyse_frame(
    frame: Frame,
    models: Sequence[str],
    weights: object,
    *,
    stage: int = 4,
    cmap: str = "jet",
    alpha: float = 0.5,
    device: str | torch.device | None = None,
    weights_dir=None,
) -> LiveResult:
    """Every chosen model on one frame: its CAM of ``stage`` over the frame, and CBAM's spatial map of that stage."""
    model_set = get_models(models, weights, device, weights_dir=weights_dir)
    preprocess = {arch: model.weights_info.preprocess for arch, model in model_set.models.items()}
    demo = model_set.weights.is_demo
    picture = frame_picture(frame)
    return frame_row(picture, model_set.models, preprocess, stage=stage, cmap=cmap, alpha=alpha, demo=demo)


def frame_row(
    picture: Image.Image,
    models: dict[str, torch.nn.Module],
    preprocess: dict[str, Preprocess],
    *,
    stage: int = 4,
    cmap: str = "jet",
    alpha: float = 0.5,
    demo: bool = False,
) -> LiveResult:
    """The per-frame work on a prepared picture and loaded models (what a benchmark times with any models); the
    demo's shapes are named in the page's language."""
    inputs: dict = {}
    tiles: list[tuple[str, str, Image.Image]] = []
    top1: dict[str, tuple[str, float]] = {}
    peaks: dict[str, tuple[float, float]] = {}
    titles: dict[str, str] = {}
    for arch, model in models.items():
        if preprocess[arch] not in inputs:
            inputs[preprocess[arch]] = prepare_input(picture, preprocess[arch], "whole")
        tensor, shared_view = inputs[preprocess[arch]]
        view = shared_view.for_model(model)  # this model's own cell geometry (the Caffe layout's is 2 px off the rest)
        result = run_model(arch, model, tensor, method="gradcam", stage=stage)
        label, prob = result.top5[0]
        top1[arch], titles[arch] = (label, prob), result.title
        on_picture = map_to_image(result.cam, view, picture.size)
        row, col = np.unravel_index(int(np.nanargmax(on_picture)), on_picture.shape)
        peaks[arch] = ((col + 0.5) / picture.width, (row + 0.5) / picture.height)
        overlay = draw_overlay(picture, result.cam, view, cmap=cmap, alpha=alpha)
        tiles.append((result.title, f"{fonts.class_name(label, demo)} {prob:.0%}", overlay))
        block = last_block(result.spatial_attention, stage) if has_spatial_attention(result.family) else None
        if block is not None:
            spatial = draw_overlay(picture, result.spatial_attention[block], view, cmap=cmap, alpha=alpha)
            words = (
                fonts.words("picture.live_where", model=result.title),
                fonts.words("picture.live_spatial", block=block),
            )
            tiles.append((*words, spatial))
    return LiveResult(captioned_row(tiles), top1, peaks, picture, demo, titles)


def status_line(result: LiveResult, fps: float) -> str:
    """The line under the live view: the frame rate, and per model its top-1 (a demo shape named in the page's
    language) and its CAM's hottest point."""
    parts = [
        text(
            "live.model",
            model=result.titles.get(arch, arch),
            label=class_name(label, result.demo),
            prob=f"{prob:.0%}",
            across=f"{peak[0]:.0%}",
            down=f"{peak[1]:.0%}",
        )
        for (arch, (label, prob)), peak in zip(result.top1.items(), result.peaks.values(), strict=True)
    ]
    return f"{fps:.1f} fps · " + " · ".join(parts)
