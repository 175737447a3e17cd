"""Live mode's parts without a browser: the slots, the frame clock, one frame through the models, the handler's
busy line and photo mode's priority, Freeze, and the fake camera's clip (its frame numbers survive the page's
JPEG). The browser test with a fake camera is in test_browser.py."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from cbam_viz.i18n.language import text
from cbam_viz.ui import live
from cbam_viz.ui.sections import live as live_section
from cbam_viz.ui.server.engine import Engine
from cbam_viz.vocab import ARCH_ORDER
from tests.helpers.camera import clip_frames, frame_number, shape_centres, write_y4m


class _Request:
    def __init__(self, session: str) -> None:
        self.session_hash = session


def test_slots_hold_while_frames_come_and_free_after_the_lease() -> None:
    slots = live.LiveSlots(2)
    assert slots.hold("a", now=0) and slots.hold("b", now=0.5) and not slots.hold("c", now=1)
    assert slots.hold("a", now=2.9)  # its own frames keep its slot
    assert slots.hold("c", now=0.6 + live.LEASE_S)  # b stopped sending: its slot went to c
    slots.release("a")
    assert len(slots) == 1 and slots.hold("d", now=4)


def test_the_frame_clock_counts_recent_frames_only() -> None:
    clock = live.FrameClock()
    assert clock.tick(0.0) == 0.0
    for index in range(1, 11):
        fps = clock.tick(index * 0.1)
    assert fps == pytest.approx(10.0)
    assert clock.tick(10.0) == 0.0  # a pause: the old frames fall out of the window


def test_a_frame_goes_through_every_model_in_one_row(engine: Engine) -> None:
    frame = clip_frames(count=3)[1]
    result = live.analyse_frame(frame, ARCH_ORDER, "demo", stage=3, weights_dir=engine.weights_dir)
    assert set(result.top1) == set(ARCH_ORDER) == set(result.peaks)
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in result.peaks.values())
    # three CAMs and CBAM's spatial map, each the frame shrunk to LIVE_SIDE wide
    assert result.image.width == 4 * live.LIVE_SIDE + 5 * 6 and result.image.mode == "RGB"
    line = live.status_line(result, 9.25)
    assert line.startswith("9.2 fps · ResNet-50: **") and line.count("hottest at") == 3
    with pytest.raises(Exception, match="the webcam sent a frame this page cannot read"):
        live.frame_picture(np.zeros((4, 4), dtype=np.float32))


def test_the_handler_says_busy_gives_way_to_photo_mode_and_freezes(engine: Engine) -> None:
    slots = live.LiveSlots(1)
    frame = clip_frames(count=2)[0]
    values = (list(ARCH_ORDER), "demo", 4, "jet", 0.5)
    image, line, clock, kept = live_section.live_step(engine, slots, frame, *values, None, _Request("one"))
    assert isinstance(image, Image.Image) and "fps" in line and isinstance(kept, Image.Image)
    _, busy, _, _ = live_section.live_step(engine, slots, frame, *values, None, _Request("two"))
    assert busy == text("live.busy", count=1)
    with live.photo_turn():  # a photo analysis runs: the live frame steps aside
        skipped = live_section.live_step(engine, slots, frame, *values, clock, _Request("one"))
    assert skipped[0] == gr.skip() and skipped[1] == gr.skip()
    path = live_section.freeze_frame(kept)
    assert Path(path).is_file() and Image.open(path).size == kept.size
    with pytest.raises(gr.Error, match="start the webcam first"):
        live_section.freeze_frame(None)


def test_the_fake_cameras_frame_numbers_survive_scaling_and_jpeg(tmp_path: Path) -> None:
    frames = clip_frames(count=12)
    assert [frame_number(frame) for frame in frames] == list(range(12))
    shown = Image.fromarray(frames[7]).resize((256, 192), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    shown.save(buffer, format="JPEG", quality=75)
    assert frame_number(np.asarray(Image.open(buffer))) == 7
    centres = shape_centres(12)
    assert centres[0] == pytest.approx(0.2) and centres[-1] == pytest.approx(0.8)
    clip = write_y4m(tmp_path / "clip.y4m", frames, fps=10)
    header, _, rest = clip.read_bytes().partition(b"\n")
    assert header == b"YUV4MPEG2 W320 H240 F10:1 Ip A1:1 C420jpeg"
    assert len(rest) == 12 * (len(b"FRAME\n") + 320 * 240 * 3 // 2)


def test_the_demo_models_get_one_torch_thread_on_a_cpu() -> None:
    import torch

    from cbam_viz.ui.server.engine import fit_torch_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert fit_torch_threads("cuda:0", "demo") == 2 and fit_torch_threads("cpu", "paper") == 2
        assert fit_torch_threads("cpu", "demo") == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_frame_is_decoded_only_for_a_tab_with_a_live_slot(engine: Engine, tmp_path: Path, monkeypatch) -> None:
    from gradio.components.image import ImageData

    with gr.Blocks():
        camera = live_section.build(None).camera
    frame = tmp_path / "frame.png"
    Image.fromarray(clip_frames(count=1)[0]).save(frame)
    payload = camera.preprocess(ImageData(path=str(frame), orig_name="frame.png"))
    assert payload == str(frame)  # the input hands over the file: Gradio opened nothing
    decoded = []
    real = live.decode_image
    monkeypatch.setattr(live, "decode_image", lambda *args, **kwargs: decoded.append(args) or real(*args, **kwargs))
    slots = live.LiveSlots(1)
    values = (list(ARCH_ORDER), "demo", 4, "jet", 0.5)
    image, line, _, _ = live_section.live_step(engine, slots, payload, *values, None, _Request("one"))
    assert isinstance(image, Image.Image) and "fps" in line and len(decoded) == 1
    assert slots.hold("one")  # its next frame keeps the slot (the first frame may outlast the lease on a busy CPU)
    _, busy, _, _ = live_section.live_step(engine, slots, payload, *values, None, _Request("two"))
    assert busy == text("live.busy", count=1) and len(decoded) == 1  # the viewer without a slot: not decoded
    with pytest.raises(gr.Error, match="the live frame"):  # another format than a webcam's, refused in one line
        live_section.live_step(engine, slots, b"GIF89a" + bytes(64), *values, None, _Request("one"))
