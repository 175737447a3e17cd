"""Live: the webcam's frames through the chosen models, a few times a second, and Freeze to analyse one in full.

What a frame costs and who may stream is ``ui.live``'s (the slots, the frame clock, photo mode's right of way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio import utils as gradio_utils
from PIL import Image

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text
from cbam_viz.ui import live
from cbam_viz.ui.errors import one_line_errors
from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels.registry import IMAGE_HEIGHT, Display
from cbam_viz.ui.sections.common import Box, Page, Parts, Section, accordion, explanation, track
from cbam_viz.ui.sections.request import PageRequest
from cbam_viz.ui.server.engine import Engine
from cbam_viz.ui.uploads import image_input
from cbam_viz.vocab import STAGES

LIVE_TIME_LIMIT_S = 120  # one webcam stream's server time; pressing the webcam button again starts another
LIVE_WAITING = 16  # streams past the live slots that still run (each only says "busy" until a slot frees)
LIVE_EVERY_S = 0.1  # the browser sends a frame this often: the newest wins, so more often only costs the client
# Gradio's webcam tells the server nothing when Stop is pressed (its front end only drops the stream). Its capture
# button toggles the stream, so every other press of it on one button is a Stop: that press clicks the hidden
# "stopped" trigger, whose event frees the slot and says so under the live view.
STOP_JS = """
() => {
    document.addEventListener('click', (event) => {
        const button = event.target.closest && event.target.closest('#live-cam button.capture-button');
        if (!button) return;
        const streaming = button.dataset.streaming === '1';
        button.dataset.streaming = streaming ? '0' : '1';
        if (streaming) setTimeout(() => document.querySelector('#live-stopped')?.click(), 0);
    }, true);
}
"""


@dataclass
class Live:
    """The webcam, its stage picker, Freeze, the live row and the tab's live state."""

    box: Box
    camera: gr.Image
    stage: gr.Radio
    freeze: gr.Button
    view: gr.Image
    status: gr.Markdown
    clock: gr.State  # the tab's frame clock (frames per second)
    frame: gr.State  # the last frame, for Freeze
    stopped: gr.Button  # hidden: pressed by STOP_JS when the webcam's Stop is


def build(parts: Parts) -> Live:
    """The accordion: the webcam and its controls beside the live row."""
    with accordion(SECTION) as box:
        explanation(T("explain.live"))
        with gr.Row():
            with gr.Column(scale=2, min_width=240):
                camera = image_input(  # the frame's file, decoded by live_step only for a tab with a live slot
                    sources=["webcam"],
                    streaming=True,
                    label=T("page.webcam"),
                    height=240,
                    webcam_options=gr.WebcamOptions(mirror=False),  # as the class sees it: text reads right
                    elem_id="live-cam",
                )
                stage = gr.Radio(list(STAGES), value=4, label=T("page.live_stage"))
                freeze = gr.Button(T("page.freeze"), elem_id="live-freeze")
            with gr.Column(scale=5):
                view = gr.Image(
                    interactive=False, format="jpeg", show_label=False, height=IMAGE_HEIGHT, elem_id="live-view"
                )
                status = gr.Markdown(T("page.live_start"), elem_id="live-status")
        clock = gr.State(None)
        frame = gr.State(None)
        stopped = gr.Button(visible="hidden", elem_id="live-stopped")
    return Live(box, camera, stage, freeze, view, status, clock, frame, stopped)


@one_line_errors
def live_step(
    engine: Engine,
    slots: live.LiveSlots,
    frame: Any,
    models: list[str],
    weights: str,
    stage: int,
    cmap: str,
    opacity: float,
    clock: live.FrameClock | None,
    request: gr.Request = None,  # noqa: RUF013 - Gradio injects it by this annotation
) -> tuple[Any, Any, Any, Any]:
    """One webcam frame: -> (the row of overlays, the status line, the tab's frame clock, the frame for Freeze).

    A frame that arrives while photo mode analyses is skipped; one beyond the live slots gets the busy line. Either
    way the frame is not decoded: ``frame`` is the webcam's file until ``live.frame_picture`` opens it."""
    if frame is None:
        return gr.skip(), gr.skip(), clock, gr.skip()
    session = getattr(request, "session_hash", None) or "local"
    if not slots.hold(session):
        return gr.skip(), text("live.busy", count=slots.capacity), clock, gr.skip()
    if live.photo_waiting():
        return gr.skip(), gr.skip(), clock, gr.skip()
    options = PageRequest(None, models, weights, "top1", "", "gradcam", stage, "whole").options(engine)
    display = Display.checked(cmap, opacity, False)
    shown = live.analyse_frame(
        frame,
        options.models,
        options.weights,
        stage=options.stage,
        cmap=display.cmap,
        alpha=display.opacity,
        device=engine.device,
        weights_dir=engine.weights_dir,
    )
    clock = clock or live.FrameClock()
    return shown.image, live.status_line(shown, clock.tick()), clock, shown.picture


def live_stopped(slots: live.LiveSlots, request: gr.Request = None) -> None:  # noqa: RUF013
    """The webcam stopped: its slot is free at once (not only after the lease runs out)."""
    slots.release(getattr(request, "session_hash", None) or "local")


def live_stop_line(slots: live.LiveSlots, request: gr.Request = None) -> tuple[str, None]:  # noqa: RUF013
    """Stop was pressed: the slot is free, the line under the live view says so, the frame clock starts afresh."""
    live_stopped(slots, request)
    return text("live.stopped"), None


@one_line_errors
def freeze_frame(picture: Image.Image | None) -> str:
    """The last live frame into the picture input, which analyses it in full (every panel below)."""
    if picture is None:
        raise CbamVizError(text("error.freeze_first"))
    cache = gradio_utils.get_upload_folder()  # where Gradio keeps its files (every component's GRADIO_CACHE)
    return processing_utils.save_pil_to_cache(picture, cache, name="webcam-frame", format="png")


def wire(page: Page) -> None:
    """Frames stream through the models; a stopped webcam frees its slot; Freeze analyses the last frame."""
    parts, inputs, handle = page.parts, page.inputs, page.live
    engine, settings = parts.engine, parts.settings
    slots = live.LiveSlots(settings.live_sessions)

    def frame_in(
        frame: Any, models: Any, weights: Any, stage: Any, cmap: Any, opacity: Any, clock: Any, request: gr.Request
    ) -> Any:
        return live_step(engine, slots, frame, models, weights, stage, cmap, opacity, clock, request)

    handle.camera.stream(
        frame_in,
        [handle.camera, inputs.models, inputs.weights, handle.stage, inputs.cmap, inputs.opacity, handle.clock],
        [handle.view, handle.status, handle.clock, handle.frame],
        api_name="live",
        api_visibility="private",
        stream_every=LIVE_EVERY_S,
        time_limit=LIVE_TIME_LIMIT_S,
        show_progress="hidden",
        concurrency_id="live",
        # more than the live slots: a viewer past them must run at once to be told "busy", not wait in the queue
        concurrency_limit=settings.live_sessions + LIVE_WAITING,
    )

    def stop(request: gr.Request) -> None:
        live_stopped(slots, request)

    def stopped(request: gr.Request) -> tuple[str, None]:
        return live_stop_line(slots, request)

    handle.camera.clear(stop, None, None, api_name="live_stop", api_visibility="private", queue=False)
    handle.stopped.click(
        stopped, None, [handle.status, handle.clock], api_name="live_stopped", api_visibility="private", queue=False
    )
    handle.freeze.click(freeze_frame, [handle.frame], [inputs.image], api_name="live_freeze", api_visibility="private")
    track(handle.box)


SECTION = Section("live", build, wire, title="page.live", elem_id="live", remembered=True)
