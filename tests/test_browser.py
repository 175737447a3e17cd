"""The app in a real browser: Debian's chromium driven by Playwright uploads pictures and checks every panel.

In CI (``CI=true``) this test must run; elsewhere it is skipped only when /usr/bin/chromium is missing
(``apt-get install chromium``). With the trained demo weights present it uses them (the screenshot then shows real
predictions); otherwise a random demo-layout set. ``CBAM_VIZ_SCREENSHOT=docs/screenshot.png`` also saves the
full-page screenshot there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbam_viz.demo import shapes
from cbam_viz.i18n.language import catalogue
from cbam_viz.vocab import ARCH_ORDER
from cbam_viz.weights.files import WEIGHTS_DIR
from cbam_viz.weights.load import demo_available
from tests.helpers.app import launched_app, shape_file, write_random_demo
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, LIVE_ARGS, small_png, wait_for_panels

WAIT_MS = 240_000  # two CPU cores shared with other work: an analysis plus its plots can take a while
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not IN_CI and not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run the browser test",
    ),
]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained demo weights when they are here, else a random set with the same layout."""
    if demo_available(WEIGHTS_DIR)[0]:
        return WEIGHTS_DIR
    return write_random_demo(tmp_path_factory.mktemp("weights"))


_RUNNING: dict[Path, tuple[ExitStack, tuple]] = {}


@pytest.fixture(scope="module", autouse=True)
def _stop_the_shared_app() -> Iterator[None]:
    yield
    for stack, _ in _RUNNING.values():
        stack.close()
    _RUNNING.clear()


@contextmanager
def page_app(weights_dir: Path) -> Iterator[tuple]:
    """The app most tests here drive, launched at the first test that asks and stopped after the module: a launch
    (and the models' first load) is most of a short test's time. Each test opens its own page, so its own session."""
    if weights_dir not in _RUNNING:
        stack = ExitStack()
        _RUNNING[weights_dir] = (stack, stack.enter_context(launched_app(weights_dir, weights="auto")))
    yield _RUNNING[weights_dir][1]


def cam_sources(page) -> dict[str, str]:
    return {arch: page.locator(f"#cam-{arch} img").get_attribute("src") for arch in ARCH_ORDER}


def upload(page, path: Path) -> None:
    page.locator("#input-image input[type=file]").set_input_files(str(path))


def test_upload_shows_every_panel_and_survives_a_bad_file(weights_dir: Path, tmp_path: Path) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    star = shape_file(tmp_path, shapes.CLASSES.index("star"), size=256)
    ring = shape_file(tmp_path, shapes.CLASSES.index("ring"), size=256)
    notes = tmp_path / "notes.png"
    notes.write_text("Shopping list: milk, bread", encoding="utf-8")
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#input-image").wait_for(timeout=WAIT_MS)
            assert "Demo weights, not ImageNet" in page.locator("#banner").inner_text()

            upload(page, star)
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)
            sizes = page.evaluate(
                "ids => ids.map(id => { const i = document.querySelector(`#${id} img`);"
                " return [i.naturalWidth, i.naturalHeight]; })",
                [f"cam-{arch}" for arch in ARCH_ORDER] + ["spatial-cbam_resnet50", "channel-cbam_resnet50"],
            )
            assert all(width > 100 and height > 100 for width, height in sizes), sizes
            assert "No spatial attention" in page.locator("#spatial-resnet50").inner_text()
            assert "No channel attention" in page.locator("#channel-resnet50").inner_text()
            for arch in ARCH_ORDER:
                assert any(name in page.locator(f"#top5-{arch}").inner_text() for name in shapes.CLASSES)
            shot = tmp_path / "screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
            assert Image.open(shot).size[0] >= 1440
            if os.environ.get("CBAM_VIZ_SCREENSHOT"):
                page.screenshot(path=os.environ["CBAM_VIZ_SCREENSHOT"], full_page=True)
                small_png(os.environ["CBAM_VIZ_SCREENSHOT"])

            page.get_by_text("Every block of one stage").click()
            page.wait_for_function(
                "ids => ids.every(id => { const i = document.querySelector(`#${id} img`);"
                " if (i) i.loading = 'eager'; return i && i.complete && i.naturalWidth > 0; })",
                arg=["drill_spatial-cbam_resnet50", "drill_channel-se_resnet50", "drill_channel-cbam_resnet50"],
                timeout=WAIT_MS,
            )

            before = cam_sources(page)
            upload(page, notes)
            page.get_by_text("not an image we can read").first.wait_for(timeout=WAIT_MS)
            assert "Traceback" not in page.content()

            upload(page, ring)
            expectations[-1] = before
            wait_for_panels(page, expectations, WAIT_MS)
        finally:
            browser.close()


def test_phone_viewport_shows_every_map_with_its_model_name(weights_dir: Path, tmp_path: Path) -> None:
    """At 390x844 the stacked layout keeps every map panel tall and says whose it is."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    from cbam_viz.vocab import ARCH_TITLES

    star = shape_file(tmp_path, shapes.CLASSES.index("star"), size=256)
    maps = [f"cam-{arch}" for arch in ARCH_ORDER] + ["spatial-cbam_resnet50"]
    maps += ["channel-se_resnet50", "channel-cbam_resnet50"]
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#input-image").wait_for(timeout=WAIT_MS)
            upload(page, star)
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)
            for elem_id in maps:
                box = page.locator(f"#{elem_id}").bounding_box()
                assert box and box["height"] > 100 and box["width"] > 200, (elem_id, box)
                arch = elem_id.split("-", 1)[1]
                caption = page.locator(f"#{elem_id}-caption").inner_text()
                assert ARCH_TITLES[arch] in caption, (elem_id, caption)
            if os.environ.get("CBAM_VIZ_PHONE_SCREENSHOT"):  # what a phone shows: the maps, each with its model's name
                page.evaluate("document.querySelector('#cam-resnet50-caption').scrollIntoView({block: 'start'})")
                page.wait_for_timeout(300)
                page.screenshot(path=os.environ["CBAM_VIZ_PHONE_SCREENSHOT"], full_page=False)
                small_png(os.environ["CBAM_VIZ_PHONE_SCREENSHOT"])
        finally:
            browser.close()


BOXES = """
ids => ids.map(id => {
    const rect = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
        return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; };
    const cell = document.querySelector(`#${id}`);
    return {
        id,
        image: rect(cell.querySelector('img')),
        caption: rect(document.querySelector(`#${id}-caption`)),
        labels: [...cell.querySelectorAll('[data-testid="block-label"], label')].map(rect),
    };
})
"""


def _overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def test_names_labels_stale_results_and_escaped_errors(weights_dir: Path, tmp_path: Path) -> None:
    """At 1280 px: downloads carry the picture, model, panel and stage; no caption or label chip covers a figure; a
    changed setting marks the results stale; a refused run clears them and shows its message once, as plain text."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    star = shape_file(tmp_path, shapes.CLASSES.index("star"), size=256)
    maps = [f"cam-{arch}" for arch in ARCH_ORDER] + ["spatial-cbam_resnet50"]
    maps += ["channel-se_resnet50", "channel-cbam_resnet50"]
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#input-image").wait_for(timeout=WAIT_MS)
            upload(page, star)
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)

            names = {
                elem_id: page.locator(f"#{elem_id} a[download]").first.get_attribute("download") for elem_id in maps
            }
            assert names["cam-resnet50"] == f"{star.stem}-resnet50-cam-stage4.webp", names
            assert names["channel-se_resnet50"] == f"{star.stem}-se_resnet50-channel-stage4.webp", names
            assert names["spatial-cbam_resnet50"] == f"{star.stem}-cbam_resnet50-spatial.webp", names
            assert len(set(names.values())) == len(names), names

            for box in page.evaluate(BOXES, maps):
                assert box["image"] and box["caption"], box
                assert not _overlap(box["image"], box["caption"]), box
                for label in box["labels"]:
                    assert not _overlap(box["image"], label), box

            assert "Settings changed" not in page.locator("#results-status").inner_text()
            page.get_by_role("radio", name="One class for all models").check()
            page.locator("#results-status").get_by_text("Settings changed").wait_for(timeout=WAIT_MS)
            assert page.locator("#cam-resnet50 img").count() == 1  # marked stale, still shown until Analyse

            typed = page.get_by_label("Class for every model (type to search)")
            typed.fill("<b>oops</b>")
            typed.press("Enter")
            page.locator("#analyse").click()
            notes = page.locator("#image-notes")
            notes.get_by_text("<b>oops</b>").wait_for(timeout=WAIT_MS)
            assert notes.locator("b", has_text="oops").count() == 0  # shown as text, never as markup
            assert page.get_by_text("<b>oops</b>").count() == 1  # once, under the picture: no toast repeats it
            page.wait_for_function(
                "ids => ids.every(id => !document.querySelector(`#${id} img`))", arg=maps, timeout=WAIT_MS
            )
            assert "No results" in page.locator("#results-status").inner_text()
            assert "%" not in page.locator("#top5-resnet50").inner_text()
        finally:
            browser.close()


def _signed_numbers(text: str) -> list[str]:
    import re

    return re.findall(r"[-+]\d+\.\d+", text)


def test_inside_the_gate_and_interventions_show_the_apis_numbers(weights_dir: Path, tmp_path: Path) -> None:
    """Open "Inside the gate" and "Switch gates off" after an analysis: the equations, the change of probability and
    the sweep on the page are the numbers ``/gate_steps``, ``/intervene`` and ``/sweep`` answer for the same picture."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from gradio_client import Client, handle_file
    from playwright.sync_api import sync_playwright

    star = shape_file(tmp_path, shapes.CLASSES.index("star"), size=256)
    request = [handle_file(str(star)), list(ARCH_ORDER), "auto", "top1", "", "gradcam", 4, "whole"]
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        client = Client(url, verbose=False)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#input-image").wait_for(timeout=WAIT_MS)
            upload(page, star)
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)

            page.get_by_text("Inside the gate: how the attention is computed").click()
            equations = page.locator("#gate_equations")
            equations.get_by_text("Ms[").wait_for(timeout=WAIT_MS)
            page.wait_for_function(
                "ids => ids.every(id => { const i = document.querySelector(`#${id} img`);"
                " if (i) i.loading = 'eager'; return i && i.complete && i.naturalWidth > 300; })",
                arg=["gate_channel", "gate_spatial"],
                timeout=WAIT_MS,
            )
            shown = equations.inner_text()
            answer = client.predict(
                handle_file(str(star)), "cbam_resnet50", "", None, "auto", "whole", api_name="/gate_steps"
            )
            assert answer["block"] == "layer4.2" and "layer4.2" in shown
            assert answer["channel_equation"] in shown, (answer["channel_equation"], shown)
            assert answer["spatial"]["equation"] in shown, (answer["spatial"]["equation"], shown)
            assert answer["recomposition_error"]["channel"] <= 1e-6 and answer["recomposition_error"]["spatial"] <= 1e-6
            if os.environ.get("CBAM_VIZ_GATE_SCREENSHOT"):
                page.locator("#gate").screenshot(path=os.environ["CBAM_VIZ_GATE_SCREENSHOT"])
                small_png(os.environ["CBAM_VIZ_GATE_SCREENSHOT"])
            page.set_viewport_size({"width": 390, "height": 844})  # on a phone the equations wrap, none runs off
            page.wait_for_function("() => document.querySelector('#gate_equations').clientWidth < 390")
            wide, room = equations.evaluate("el => [el.scrollWidth, el.clientWidth]")
            assert wide <= room + 1, (wide, room)
            page.set_viewport_size({"width": 1280, "height": 900})

            page.locator("#gate-model input").click()
            page.get_by_role("option", name="SE-ResNet-50").click()
            equations.get_by_text("MLP(squeeze)").wait_for(timeout=WAIT_MS)
            se = client.predict(
                handle_file(str(star)), "se_resnet50", "", None, "auto", "whole", api_name="/gate_steps"
            )
            assert se["spatial"] is None and se["channel_equation"] in equations.inner_text()

            page.get_by_text("Switch gates off: does the attention matter for this prediction?").click()
            page.locator("#intervene-run").click()
            top5 = page.locator("#intervene_top5-cbam_resnet50")
            top5.get_by_text("Δp").wait_for(timeout=WAIT_MS)
            intervened = client.predict(*request, "layer4:channel=one", api_name="/intervene")
            done = intervened["models"]["cbam_resnet50"]["interventions"][0]
            assert done["spec"] == "layer4:channel=one"
            assert f"Δp = {done['target_prob_change']:+.3f}" in top5.inner_text(), top5.inner_text()
            # the model without gates keeps its note (Panel.applies), not the intervention's own refusal
            assert "No gates to switch off." in page.locator("#intervene_top5-resnet50").inner_text()
            page.wait_for_function(
                "id => { const i = document.querySelector(`#${id} img`); if (i) i.loading = 'eager';"
                " return i && i.complete && i.naturalWidth > 300; }",
                arg="intervene_cam-cbam_resnet50",
                timeout=WAIT_MS,
            )
            caption = page.locator("#intervene_cam-cbam_resnet50-caption").inner_text()
            assert f"correlation {done['cam']['correlation']:.2f}" in caption, caption

            page.locator("#sweep-run").click()
            table = page.locator("#sweep-cbam_resnet50")
            table.get_by_text("spatial gates off").wait_for(timeout=WAIT_MS)
            swept = client.predict(*request, api_name="/sweep")["models"]["cbam_resnet50"]["sweep"]
            on_page = _signed_numbers(table.inner_text())
            assert on_page == [f"{entry['change']:+.3f}" for entry in swept["entries"]], (on_page, swept)
        finally:
            browser.close()
            client.close()


def test_a_box_drawn_on_the_picture_plays_the_pointing_game(weights_dir: Path, tmp_path: Path) -> None:
    """Two clicks on the picture in "Can we trust these maps?" draw a box; each model's hit and share appear, and
    they are what /analyze answers for that box. The randomisation check then fills its row."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from gradio_client import Client, handle_file
    from playwright.sync_api import sync_playwright

    star = shape_file(tmp_path, shapes.CLASSES.index("star"), size=200)
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        client = Client(url, verbose=False)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#input-image").wait_for(timeout=WAIT_MS)
            upload(page, star)
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)
            page.get_by_text("Can we trust these maps?").click()
            picture = page.locator("#box-picture img")
            picture.wait_for(timeout=WAIT_MS)
            picture.scroll_into_view_if_needed()
            shown = picture.bounding_box()
            natural = page.evaluate("() => document.querySelector('#box-picture img').naturalWidth")
            assert shown and natural == 200
            # Gradio draws it "scale-down": at most its natural size, centred in the element
            side = 200 * min(1.0, shown["width"] / 200, shown["height"] / 200)
            left, top = (shown["width"] - side) / 2, (shown["height"] - side) / 2

            def at(share: float) -> dict:
                return {"x": left + side * share, "y": top + side * share}

            before = picture.get_attribute("src")
            picture.click(position=at(0.25))
            page.wait_for_function(  # the first corner is marked on a new picture
                "src => { const i = document.querySelector('#box-picture img'); return i && i.src !== src; }",
                arg=before,
                timeout=WAIT_MS,
            )
            picture = page.locator("#box-picture img")
            picture.click(position=at(0.75))
            pointing = page.locator("#pointing-cbam_resnet50")
            pointing.get_by_text("peak inside?").wait_for(timeout=WAIT_MS)
            box = page.locator("#box textarea, #box input").first.input_value()
            x0, y0, x1, y1 = (float(value) for value in box.split(","))
            assert 40 <= x0 <= 60 and 40 <= y0 <= 60 and 140 <= x1 <= 160 and 140 <= y1 <= 160, box
            document, _ = client.predict(handle_file(str(star)), box=box, api_name="/analyze")
            for arch in ARCH_ORDER:
                cam = document["pointing"]["models"][arch]["cam"]
                text = page.locator(f"#pointing-{arch}").inner_text()
                assert ("yes" if cam["hit"] else "no") in text.split("CAM", 1)[1].split("\n")[0], text
                assert f"{cam['energy']:.0%}" in text, (cam, text)
            if os.environ.get("CBAM_VIZ_TRUST_SCREENSHOT"):
                page.locator("#sanity-run").click()
                page.wait_for_function(
                    "id => { const i = document.querySelector(`#${id} img`); if (i) i.loading = 'eager';"
                    " return i && i.complete && i.naturalWidth > 300; }",
                    arg="sanity-cbam_resnet50",
                    timeout=WAIT_MS,
                )
                page.locator("#trust").screenshot(path=os.environ["CBAM_VIZ_TRUST_SCREENSHOT"])
                small_png(os.environ["CBAM_VIZ_TRUST_SCREENSHOT"])
        finally:
            browser.close()
            client.close()


def _start_webcam(page) -> None:
    page.get_by_text("Live: point a webcam and watch the attention move").click()
    page.locator("#live-cam").get_by_text("Click to Access Webcam").click()
    page.locator("#live-cam button.capture-button").click(timeout=WAIT_MS)  # "Record": the stream starts


def _live_frames(page, count: int) -> list[tuple[int, str]]:
    """(frame number read off the shown overlay's first tile, the status line shown with it), ``count`` times."""
    import time

    from tests.helpers.camera import FRAME_NUMBER_JS

    # the first tile of the shown row, as render.captioned_row lays it out: 6 px from the left and the bottom
    read = f"""
    () => {{
        const img = document.querySelector('#live-view img');
        if (!img || !img.complete || !img.naturalWidth) return null;
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        const number = ({FRAME_NUMBER_JS})(context, 6, img.naturalHeight - 6 - 192, 256, 192);
        return {{src: img.src, status: document.querySelector('#live-status').innerText, number}};
    }}
    """
    seen: list[tuple[int, str]] = []
    previous = None
    deadline = time.monotonic() + 180  # a slow shared machine shows a frame every second or two
    while len(seen) < count and time.monotonic() < deadline:
        shown = page.evaluate(read)
        if shown and shown["src"] != previous and "fps" in shown["status"]:
            previous = shown["src"]
            if shown["number"] is not None:
                seen.append((shown["number"], shown["status"]))
        page.wait_for_timeout(50)
    assert len(seen) >= count, f"only {len(seen)} frames could be read"
    return seen


def test_live_mode_follows_a_moving_shape_with_a_fake_camera(weights_dir: Path, tmp_path: Path) -> None:
    """A fake camera plays a star crossing a cluttered scene: overlays appear, the fps counter moves, the CAMs'
    hottest points follow the star, a second viewer is told the live view is busy, leaving frees the slot, and Stop
    says "stopped" under the live view."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    import re

    from playwright.sync_api import sync_playwright

    from cbam_viz.ui.server.engine import ServeSettings
    from tests.helpers.camera import clip_frames, shape_centres, write_y4m

    clip = write_y4m(tmp_path / "clip.y4m", clip_frames())
    centres = shape_centres()
    args = [*CHROMIUM_ARGS, *LIVE_ARGS, f"--use-file-for-fake-video-capture={clip}"]
    settings = ServeSettings(concurrency=1, queue_size=16, render_concurrency=1, live_sessions=1)
    with launched_app(weights_dir, weights="auto", settings=settings) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            first = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"]).new_page()
            first.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            first.locator("#input-image").wait_for(timeout=WAIT_MS)
            opacity = first.locator("input[aria-label='number input for Map opacity']")
            opacity.fill("0")  # the overlays show the plain frames: the frame number strip stays readable
            opacity.press("Enter")
            _start_webcam(first)
            first.locator("#live-status").get_by_text("fps").wait_for(timeout=WAIT_MS)
            frames = _live_frames(first, 30)  # at about 7 frames a second: the whole 3-second clip
            fps = [float(re.search(r"([\d.]+) fps", status).group(1)) for _, status in frames]
            assert max(fps) > 0.5, fps
            across: dict[int, list[list[float]]] = {}
            for number, status in frames:
                values = [int(value) / 100 for value in re.findall(r"hottest at (\d+)% across", status)]
                assert len(values) == 3, status
                across.setdefault(number % len(centres), []).append(values)
            left = [n for n in across if centres[n] < 0.4]
            right = [n for n in across if centres[n] > 0.6]
            assert left and right, across
            expected = np.mean([centres[n] for n in right]) - np.mean([centres[n] for n in left])
            peak = {n: np.mean(rows, axis=0) for n, rows in across.items()}
            moved = np.mean([peak[n] for n in right], axis=0) - np.mean([peak[n] for n in left], axis=0)
            # every model's hottest point crosses the frame with the star (the 6-cell CAM grid: within 0.15)
            assert np.all(np.abs(moved - expected) < 0.15), (moved, expected, across)

            second = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"]).new_page()
            second.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            second.locator("#input-image").wait_for(timeout=WAIT_MS)
            _start_webcam(second)
            second.locator("#live-status").get_by_text("live view is busy").wait_for(timeout=WAIT_MS)

            first.close()  # the first viewer leaves: its slot is free after the lease
            second.locator("#live-status").get_by_text("fps").wait_for(timeout=WAIT_MS)
            second.locator("#live-cam button.capture-button").click()  # Stop: the line says so, and stays
            second.locator("#live-status").get_by_text("Live view stopped").wait_for(timeout=WAIT_MS)
            second.wait_for_timeout(2000)
            assert "fps" not in second.locator("#live-status").inner_text()
        finally:
            browser.close()


def test_a_lesson_link_opens_its_view_and_the_page_writes_one(weights_dir: Path) -> None:
    """A link with an example, two models, a method, a stage, a colormap and the gate panel opens that view (and
    says which part it left out); "Copy link to this view" writes the same settings back."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    query = "?example=star&models=se_resnet50,cbam_resnet50&method=gradcam%2B%2B&stage=3&cmap=viridis&panel=gate"
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + query + "&evil=%3Cscript%3E", wait_until="domcontentloaded", timeout=WAIT_MS)
            expectations = [["se_resnet50", "cbam_resnet50"], ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)
            status = page.locator("#results-status").inner_text()
            assert status.startswith("Results for star: SE-ResNet-50, CBAM-ResNet-50; Grad-CAM++, stage 3."), status
            page.locator("#gate_equations").get_by_text("Mc[").wait_for(timeout=WAIT_MS)  # the gate panel is open
            assert page.locator("#gate_equations").inner_text().count("layer3.5") >= 1
            assert "'evil' is not a setting" in page.locator("#lesson-note").inner_text()
            assert "<script>" not in page.content().split("lesson-note", 1)[1][:400]
            page.locator("#lesson-link-button").click()
            link = page.locator("#lesson-link textarea, #lesson-link input").first
            page.wait_for_function(
                "() => { const i = document.querySelector('#lesson-link textarea, #lesson-link input');"
                " return i && i.value.startsWith('http'); }",
                timeout=WAIT_MS,
            )
            written = link.input_value()
            parts = (
                "example=star",
                "models=se_resnet50%2Ccbam_resnet50",
                "stage=3",
                "cmap=viridis",
                "panel=gate",
                "lang=en",
            )
            for part in parts:
                assert part in written, written
            assert "method=gradcam%2B%2B" in written and written.startswith(url.rstrip("/")), written
        finally:
            browser.close()


def test_a_lesson_link_with_every_key_and_a_class_analyses_that_class(weights_dir: Path) -> None:
    """Every key of a lesson link at once, ``target`` (one class for every model) included, restores the view and
    analyses it; an unknown ``?lang=`` gets the same one-line note as any other unknown value."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    query = (
        "?example=star&models=se_resnet50,cbam_resnet50&weights=demo&method=gradcam&stage=3&target=circle"
        "&sees=whole&cmap=viridis&opacity=0.6&shared=1&panel=trust&lang=xx"
    )
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + query, wait_until="domcontentloaded", timeout=WAIT_MS)
            status = page.locator("#results-status")
            page.wait_for_function(
                "() => /Results for|No results/.test(document.querySelector('#results-status')?.innerText)",
                timeout=WAIT_MS,
            )
            assert status.inner_text().startswith("Results for star: SE-ResNet-50, CBAM-ResNet-50; Grad-CAM, stage 3.")
            for arch in ("se_resnet50", "cbam_resnet50"):
                assert "“circle”" in page.locator(f"#cam-{arch}-caption").inner_text()
            assert "pick the class" not in page.locator("#image-notes").inner_text()
            assert "lang='xx'" in page.locator("#lesson-note").inner_text()
            assert page.locator("#sanity-run").is_visible()  # the trust accordion is open
        finally:
            browser.close()


def test_a_new_picture_clears_the_last_ones_checks_and_a_language_switch_keeps_the_sweep(
    weights_dir: Path, tmp_path: Path
) -> None:
    """Results belong to the picture on screen: after the star's trust checks, another picture leaves none of them
    (not while it is analysed, not after); a sweep survives a switch to Chinese and back with the same numbers."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    photo = tmp_path / "cat.png"  # not a gallery shape: no true outline, so no pointing game of its own
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (200, 240, 3), dtype=np.uint8)).save(photo)
    results_or_failure = (
        "() => /Results for|No results/.test(document.querySelector('#results-status')?.innerText || '')"
    )
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "?example=star&panel=trust", wait_until="domcontentloaded", timeout=WAIT_MS)
            page.wait_for_function(results_or_failure, timeout=WAIT_MS)
            pointing = page.locator("#pointing-cbam_resnet50")
            page.wait_for_function(
                "() => (document.querySelector('#pointing-cbam_resnet50')?.innerText || '').includes('%')",
                timeout=WAIT_MS,
            )
            page.locator("#curves-run").click()
            page.wait_for_function(
                "() => { const i = document.querySelector('#curves img'); return i && i.naturalWidth > 0; }",
                timeout=WAIT_MS,
            )

            upload(page, photo)
            page.locator("#results-status").get_by_text("Analysing the new picture").wait_for(timeout=WAIT_MS)
            assert "%" not in pointing.inner_text()  # while the new picture is analysed
            assert page.locator("#curves img").count() == 0
            page.wait_for_function(
                "() => (document.querySelector('#results-status')?.innerText || '').startsWith('Results for cat')",
                timeout=WAIT_MS,
            )
            assert "%" not in pointing.inner_text()  # after: the cat has no outline, the star's game is gone
            assert "mask" not in page.locator("#trust").inner_text().lower().split("pointing", 1)[-1]
            assert page.locator("#curves img").count() == 0
            for arch in ARCH_ORDER:
                assert "·" not in page.locator(f"#pointing-{arch}-caption").inner_text()  # no caption of the star's

            page.locator("#intervene").locator("button, .label-wrap").first.click()
            page.locator("#sweep-run").click()
            table = page.locator("#sweep-cbam_resnet50")
            page.wait_for_function(
                "() => (document.querySelector('#sweep-cbam_resnet50')?.innerText || '').includes('Δp')",
                timeout=WAIT_MS,
            )
            before = _signed_numbers(table.inner_text())
            assert before
            page.locator("#language label").filter(has_text="中文").click()
            page.wait_for_function(
                "() => (document.querySelector('#results-status')?.innerText || '').includes('cat')"
                " && !document.querySelector('#results-status').innerText.includes('Results for')",
                timeout=WAIT_MS,
            )
            page.locator("#language label").filter(has_text="English").click()
            page.locator("#results-status").get_by_text("Results for cat").wait_for(timeout=WAIT_MS)
            page.wait_for_timeout(3000)  # the panels' redraws after the switch
            assert _signed_numbers(table.inner_text()) == before
        finally:
            browser.close()


WIDTHS = (390, 768, 800, 900, 1000, 1280, 1920)


def test_every_control_shows_at_every_width_and_typed_opacity_redraws(weights_dir: Path) -> None:
    """At every width the issue lists, every control of the controls column lies inside the page, the shared-scale
    checkbox included (it was cut to nothing between 768 and 1000 px), and nothing scrolls sideways; an opacity
    typed and confirmed with Enter redraws the maps like a drag does."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "?example=star", wait_until="domcontentloaded", timeout=WAIT_MS)
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)
            before = cam_sources(page)
            opacity = page.locator("input[aria-label='number input for Map opacity']")
            opacity.fill("0.9")
            opacity.press("Enter")
            wait_for_panels(page, [*expectations[:3], before], WAIT_MS)

            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(300)
                assert page.evaluate("() => document.documentElement.scrollWidth") <= width, width
                label = page.get_by_text("One colour scale for all models").first
                box = label.bounding_box()
                assert box and box["width"] >= 120 and box["x"] + box["width"] <= width, (width, box)
                boxes = page.evaluate(
                    "() => [...document.querySelectorAll('#controls label, #controls input, #controls button')]"
                    ".filter(e => e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden')"
                    ".map(e => { const r = e.getBoundingClientRect(); return [e.innerText || e.type, r.x, r.right,"
                    " r.width]; })"
                )
                cut = [entry for entry in boxes if entry[3] < 1 and entry[0] not in ("checkbox", "radio", "range")]
                outside = [entry for entry in boxes if entry[1] < 0 or entry[2] > width + 1]
                assert not cut and not outside, (width, cut, outside)
        finally:
            browser.close()


SPLIT_WORDS = """
(selector) => {
    // every word of the matched cells, and whether the browser broke it across two lines
    const split = [];
    for (const cell of document.querySelectorAll(selector)) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (const match of node.textContent.matchAll(/\\S+/g)) {
                const range = document.createRange();
                range.setStart(node, match.index);
                range.setEnd(node, match.index + match[0].length);
                const tops = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
                if (tops.size > 1) split.push(match[0]);
            }
        }
    }
    return split;
}
"""


def test_the_pointing_table_keeps_whole_words_on_a_phone_and_a_laptop(weights_dir: Path) -> None:
    """The pointing game's table (a gallery shape's own outline) breaks lines between words only, at 390 and
    1280 px; the figures' words (the gate's strips and kernel, the randomisation tiles, the curves) are 9 px or more
    as shown, a figure too wide for a phone scrolling sideways inside its cell rather than shrinking."""
    from cbam_viz.render.text import READABLE_PX, TEXT_PX, points_px
    from cbam_viz.ui.panels import gate as gate_view
    from cbam_viz.ui.panels import trust as trust_view

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "?example=star&panel=trust", wait_until="domcontentloaded", timeout=WAIT_MS)
            page.wait_for_function(
                "() => (document.querySelector('#pointing-cbam_resnet50')?.innerText || '').includes('%')",
                timeout=WAIT_MS,
            )
            page.locator("#sanity-run").click()
            page.locator("#curves-run").click()
            page.get_by_text("Inside the gate: how the attention is computed").click()
            smallest = {  # each figure's smallest words, in px of the figure as drawn
                "gate_channel": points_px(gate_view.SMALLEST_PT, gate_view.FIGURE_DPI),
                "gate_spatial": min(TEXT_PX, points_px(gate_view.SMALLEST_PT, gate_view.FIGURE_DPI)),
                "sanity-cbam_resnet50": TEXT_PX,
                "curves": points_px(trust_view.CURVES_SMALLEST_PT, trust_view.CURVES_DPI),
            }
            page.wait_for_function(
                "ids => ids.every(id => { const i = document.querySelector(`#${id} img`);"
                " if (i) i.loading = 'eager'; return i && i.complete && i.naturalWidth > 0; })",
                arg=list(smallest),
                timeout=WAIT_MS,
            )
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(300)
                cells = '[id^="pointing-"] th, [id^="pointing-"] td'
                assert page.locator('[id^="pointing-"] th').count() > 0
                assert page.evaluate(SPLIT_WORDS, cells) == [], width
                # the figures' words readable as shown: displayed size / natural size x their smallest font
                scales = page.evaluate(
                    "ids => ids.map(id => { const i = document.querySelector(`#${id} img`);"
                    " const r = i.getBoundingClientRect();"
                    " return Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight, 1); })",
                    list(smallest),
                )
                shown = {key: px * scale for (key, px), scale in zip(smallest.items(), scales, strict=True)}
                assert all(px >= READABLE_PX - 0.05 for px in shown.values()), (width, shown)
                assert page.evaluate("() => document.documentElement.scrollWidth") <= width, width
        finally:
            browser.close()


def test_every_example_shape_is_in_sight_on_a_phone(weights_dir: Path) -> None:
    """All ten example shapes lie inside the page and inside the gallery's box at 390 px (and at 1280 px), so none
    hides past an edge or below a box that scrolls without saying so; each one's name is under it, not over it."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#examples .thumbnail-item").first.wait_for(timeout=WAIT_MS)
            for width in (390, 1280):
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(300)
                shown = page.evaluate(
                    "() => { const g = document.querySelector('#examples').getBoundingClientRect();"
                    " return [...document.querySelectorAll('#examples .thumbnail-item')].map(i => {"
                    " const r = i.getBoundingClientRect(); return r.left >= g.left - 1 && r.right <= g.right + 1"
                    " && r.right <= innerWidth && r.top >= g.top - 1 && r.bottom <= g.bottom + 1; }); }"
                )
                assert len(shown) == 10 and all(shown), (width, shown)
                covered = page.evaluate(  # each name under its picture: no caption over a shape
                    "() => [...document.querySelectorAll('#examples .thumbnail-item')].map(i => {"
                    " const p = i.querySelector('img').getBoundingClientRect();"
                    " const c = i.querySelector('.caption-label')?.getBoundingClientRect();"
                    " return c ? [c.top < p.bottom - 1 && c.bottom > p.top + 1 && c.left < p.right - 1"
                    " && c.right > p.left + 1, Math.round(p.height)] : ['no caption', 0]; })"
                )
                assert all(over is False and tall >= 40 for over, tall in covered), (width, covered)
                title = page.locator('#examples [data-testid="block-label"]').bounding_box()
                first = page.locator("#examples .thumbnail-item img").first.bounding_box()
                assert title and first and title["y"] + title["height"] <= first["y"] + 1, (width, title, first)
        finally:
            browser.close()


def test_presenter_view_at_projector_width(weights_dir: Path) -> None:
    """?presenter=1 at 1920x1080: large type, the three models side by side, no control panels, the Analyse button
    large, the top-5 enlarged; with a lesson link it opens on its example, and the first screen at 1920x1080 and at
    1280x720 shows results, not only the gallery. ``CBAM_VIZ_PRESENTER_SCREENSHOT`` saves the first screen."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(url + "?presenter=1&example=star", wait_until="domcontentloaded", timeout=WAIT_MS)
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)
            assert page.evaluate("() => document.body.classList.contains('presenter')")
            for hidden in ("#controls", "#gate", "#trust", "#export-box", "#lesson-link"):
                assert not page.locator(hidden).first.is_visible(), hidden
            assert page.locator("#analyse").is_visible() and page.locator("#examples").is_visible()
            boxes = [page.locator(f"#cam-{arch}").bounding_box() for arch in ARCH_ORDER]
            assert all(box and box["height"] >= 500 for box in boxes), boxes
            assert boxes[0]["y"] == boxes[1]["y"] == boxes[2]["y"] and boxes[2]["x"] > 1200  # side by side
            size = page.evaluate(
                "() => parseFloat(getComputedStyle(document.querySelector('#cam-resnet50-caption p')).fontSize)"
            )
            assert size >= 20, size
            top5 = page.evaluate(  # the top-5 read from the back of the hall: its class and its rows enlarged
                "() => ['.output-class', '.confidence-set dt', '.confidence-set dd'].map(s => parseFloat("
                "getComputedStyle(document.querySelector(`#top5-resnet50 ${s}`)).fontSize))"
            )
            assert top5[0] >= 40 and min(top5[1:]) >= 24, top5
            for width, height in ((1280, 720), (1920, 1080)):  # the first screen shows results, not only the gallery
                page.set_viewport_size({"width": width, "height": height})
                page.wait_for_timeout(500)
                page.evaluate("window.scrollTo(0, 0)")
                status = page.locator("#results-status").bounding_box()
                first = page.locator("#top5-resnet50 .output-class").bounding_box()
                assert status and status["y"] + status["height"] <= height, (width, status)
                assert first and first["y"] + first["height"] * 0.75 <= height, (width, first)
                assert page.locator("#examples .thumbnail-item").last.bounding_box()["y"] < status["y"]
            if os.environ.get("CBAM_VIZ_PRESENTER_SCREENSHOT"):  # the first screen, as the hall sees it
                page.screenshot(path=os.environ["CBAM_VIZ_PRESENTER_SCREENSHOT"])
                small_png(os.environ["CBAM_VIZ_PRESENTER_SCREENSHOT"])
        finally:
            browser.close()


def _fixed_words(template: str) -> str:
    """The longest run of fixed words in a catalogue text (between its fields, without Markdown's stars)."""
    runs = [run.split("}", 1)[-1].replace("*", "").strip() for run in template.split("{")]
    return max(runs, key=len)


def test_the_page_speaks_the_browsers_language_and_switches(weights_dir: Path, tmp_path: Path) -> None:
    """A browser set to Chinese gets the page in Chinese: labels, headings, explanations (their equations the same
    as in English), the banner, the results line, the demo shapes' names and an error; the switch turns the page
    to English at once, results included. ``CBAM_VIZ_CHINESE_SCREENSHOT`` saves a screenshot of the Chinese page."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    zh, en = catalogue("zh"), catalogue("en")
    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900}).new_page()
            page.goto(url + "?example=star", wait_until="domcontentloaded", timeout=WAIT_MS)
            status = page.locator("#results-status")
            status.get_by_text(_fixed_words(zh["status.results"])).wait_for(timeout=WAIT_MS)
            assert page.locator("h1").first.inner_text() == zh["page.heading"].split("\n")[0].removeprefix("# ")
            assert page.locator("#analyse").inner_text() == zh["page.analyse"]
            banner = page.locator("#banner").inner_text()
            assert _fixed_words(zh["banner.demo"]) in banner
            assert _fixed_words(zh["weights.note.offline"]) in banner and "offline mode" not in banner  # why, too
            assert zh["shape.star"] in page.locator("#top5-cbam_resnet50").inner_text()
            assert zh["shape.star"] in status.inner_text() or "star" in status.inner_text()  # the picture's name
            assert page.locator("#language input:checked").get_attribute("value") == "zh"

            # an explanation: Chinese words around the same equations, rendered by KaTeX
            explain = page.locator(".explain").filter(has_text=zh["page.what_am_i_looking_at"])
            explain.nth(1).locator("button, .label-wrap").first.click()  # the top-5 row's
            top5 = page.locator(".explain").nth(1)
            top5.locator(".katex").first.wait_for(timeout=WAIT_MS)
            assert zh["explain.top5"][:6] in top5.inner_text()
            shown = top5.locator("annotation").all_text_contents()
            english = en["explain.top5"]
            assert shown and all(f"$${tex}$$" in english or f"${tex}$" in english for tex in shown), shown

            if os.environ.get("CBAM_VIZ_CHINESE_SCREENSHOT"):
                shot = Path(os.environ["CBAM_VIZ_CHINESE_SCREENSHOT"])
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=shot)
                small_png(shot)
                page.evaluate("document.querySelector('#cam-resnet50-caption').scrollIntoView({block: 'start'})")
                results = shot.with_name(f"{shot.stem}-results{shot.suffix}")
                page.screenshot(path=results)
                small_png(results)

            # an error in Chinese: score a box before drawing one
            page.locator("#trust").locator("button, .label-wrap").first.click()
            page.locator("#box-score").click()
            page.get_by_text(zh["error.box_draw_first"]).first.wait_for(timeout=WAIT_MS)
            title = page.locator(".toast-title.error").first  # Gradio's own English word, replaced
            shown = title.evaluate("(el) => [getComputedStyle(el, '::before').content, getComputedStyle(el).fontSize]")
            assert shown == [json.dumps(zh["error.title"], ensure_ascii=False), "0px"], shown
            badges = page.locator('[data-testid="status-tracker"] span.error')  # Gradio's, over the panels' text
            assert badges.count() > 0 and not any(badge.is_visible() for badge in badges.all())

            # the switch: the page's own words at once, the server's words and the results after
            page.locator("#language label").filter(has_text="English").click()
            page.locator("#analyse").get_by_text("Analyse", exact=True).wait_for(timeout=WAIT_MS)
            status.get_by_text("Results for star").wait_for(timeout=WAIT_MS)
            assert "lang=en" in page.url
            assert page.locator("h1").first.inner_text() == "Where does attention look?"
            assert "star" in page.locator("#top5-cbam_resnet50").inner_text()
            assert _fixed_words(en["banner.demo"]) in page.locator("#banner").inner_text()
        finally:
            browser.close()


def test_the_study_section_shows_the_bundled_study_and_opens_a_disagreement(weights_dir: Path) -> None:
    """The Study section (closed at first) shows the bundled study's table; a click on a disagreement puts that
    shape into the picture input and the page analyses it with the study's settings."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: CI must install Debian's chromium"
    from playwright.sync_api import sync_playwright

    with page_app(weights_dir) as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#input-image").wait_for(timeout=WAIT_MS)
            assert not page.locator("#study-table").is_visible()  # closed until opened
            page.get_by_text("Study: the models over a whole dataset").click()
            page.locator("#study-table th").get_by_text("MaxBoxAccV2").wait_for(timeout=WAIT_MS)
            table = page.locator("#study-table").inner_text()
            assert all(title in table for title in ("ResNet-50", "SE-ResNet-50", "CBAM-ResNet-50")), table
            assert "CBAM's map points at the object in" in page.locator("#study-words").inner_text()
            assert "300 images" in page.locator("#study-about").inner_text()
            for figure in ("accuracy", "localisation", "atlas", "excitation"):  # a figure per section of the summary
                page.locator(f"#study-{figure} img").wait_for(timeout=WAIT_MS)
            thumbnail = page.locator("#study-gallery .thumbnail-item").first
            thumbnail.wait_for(timeout=WAIT_MS)
            thumbnail.click()
            page.wait_for_function(
                "() => { const s = document.querySelector('#results-status');"
                " return s && s.innerText.startsWith('Results for shapes-'); }",
                timeout=WAIT_MS,
            )
            expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
            wait_for_panels(page, expectations, WAIT_MS)
            status = page.locator("#results-status").inner_text()
            assert "ResNet-50, SE-ResNet-50, CBAM-ResNet-50; Grad-CAM, stage 4." in status, status
            page.locator("#language label").filter(has_text="中文").click()  # the open section follows the switch
            page.locator("#study-words").get_by_text("的热图在").first.wait_for(timeout=WAIT_MS)
            assert "Traceback" not in page.content()
        finally:
            browser.close()
