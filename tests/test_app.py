"""The web app end to end: a launched server answered through gradio_client, plus its pure handlers.

The app runs on a weights folder of random demo-layout models (written once per session), so the tests need no
trained weights and every answer can be compared with ``analysis.analyze`` run directly on the same image.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
from gradio.data_classes import ImageData
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from cbam_viz.demo import shapes
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n import explain, language
from cbam_viz.i18n.language import using
from cbam_viz.imaging.limits import MAX_FILE_BYTES
from cbam_viz.pipeline import analyze
from cbam_viz.ui import banner as ui_banner
from cbam_viz.ui import export as ui_export
from cbam_viz.ui import gallery
from cbam_viz.ui.errors import one_line_errors
from cbam_viz.ui.panels import registry as panels
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections import export as export_section
from cbam_viz.ui.sections import inputs as inputs_section
from cbam_viz.ui.sections import results as results_section
from cbam_viz.ui.sections.request import PageRequest
from cbam_viz.ui.server import engine as ui_engine
from cbam_viz.ui.server.engine import Engine, ServeSettings
from cbam_viz.ui.uploads import image_input
from cbam_viz.vocab import ARCH_ORDER, ARCH_TITLES
from tests.helpers.app import DEMO_SIZE, launched_app, page_cells, shape_file

REPO = Path(__file__).resolve().parent.parent
# and download_weights, only with --allow-download:
PUBLIC_ENDPOINTS = {"analyze", "export", "gate_steps", "intervene", "sweep", "sanity", "deletion_insertion"}


def summary(document: dict) -> dict:
    """What must match between two answers for the same image: every model's top-5 and explained class."""
    return {
        arch: ([(row["label"], round(row["prob"], 5)) for row in model["top5"]], model["target"]["label"])
        for arch, model in document["models"].items()
    }


# ------------------------------------------------------------------------------------------- through the API


def test_analyze_endpoint_answers_what_analyze_answers(client: Client, demo_weights: Path, tmp_path: Path) -> None:
    picture = shape_file(tmp_path, shapes.CLASSES.index("star"))
    document, banner = client.predict(handle_file(picture), api_name="/analyze")
    direct = analyze(Image.open(picture), weights="demo", weights_dir=demo_weights, device="cpu")
    assert summary(document) == summary(direct.to_json())
    assert list(document["models"]) == list(ARCH_ORDER)
    assert document["weights"]["set"] == "demo" and document["device"] == "cpu"
    assert document["image"] == {"width": 96, "height": 96, "display_width": 96, "display_height": 96, "notes": []}
    assert "Demo weights, not ImageNet" in banner and "1/8-width" in banner and "cpu" in banner
    assert set(document["agreement"]) == {"resnet50|se_resnet50", "resnet50|cbam_resnet50", "se_resnet50|cbam_resnet50"}


def test_analyze_endpoint_options(client: Client, tmp_path: Path) -> None:
    picture = shape_file(tmp_path, shapes.CLASSES.index("ring"), size=120)
    document, _ = client.predict(
        handle_file(picture),
        models=["cbam_resnet50", "se_resnet50"],
        target_mode="shared",
        target_class="hexagon",
        method="gradcam++",
        stage=3,
        view="crop",
        faithfulness=True,
        api_name="/analyze",
    )
    assert list(document["models"]) == ["se_resnet50", "cbam_resnet50"]
    assert document["method"] == "gradcam++" and document["stage"] == 3 and document["view"]["mode"] == "crop"
    for model in document["models"].values():
        assert model["target"]["label"] == "hexagon"
        assert model["cam"]["stage"] == 3
        assert {"faithfulness_morf", "faithfulness_lerf", "faithfulness_road"} <= set(model["metrics"])
    assert "cam_spatial_correlation" in document["models"]["cbam_resnet50"]["metrics"]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"target_mode": "shared", "target_class": "dodecahedron"}, "unknown target class"),
        ({"target_mode": "shared", "target_class": ""}, "pick the class"),
        ({"models": []}, "no model chosen"),
    ],
)
def test_bad_options_get_one_line_messages(client: Client, tmp_path: Path, options: dict, words: str) -> None:
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(shape_file(tmp_path, 0)), **options, api_name="/analyze")
    message = str(caught.value)
    assert words in message and "\n" not in message and "Traceback" not in message


def test_bad_upload_is_refused_and_the_next_one_works(client: Client, tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("Shopping list: milk, bread", encoding="utf-8")
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(notes), api_name="/analyze")
    assert "not an image we can read" in str(caught.value)
    assert "/tmp" not in str(caught.value)  # no server path in what visitors read
    document, _ = client.predict(handle_file(shape_file(tmp_path, 1)), api_name="/analyze")
    assert document["models"]["cbam_resnet50"]["top5"]


def test_export_gives_the_figure_and_the_json_of_the_last_analysis(client: Client, tmp_path: Path) -> None:
    document, _ = client.predict(handle_file(shape_file(tmp_path, 2)), stage=2, api_name="/analyze")
    figure_path, json_path = client.predict("viridis", 0.7, True, api_name="/export")
    figure = Image.open(figure_path)
    assert figure.format == "PNG" and figure.width > 600 and figure.height > 300
    assert json.loads(Path(json_path).read_text(encoding="utf-8")) == document


def test_the_api_page_describes_every_parameter_and_its_snippets_run_as_shown(client: Client, tmp_path: Path) -> None:
    """The API page's description: every parameter and output named in words (not a catalogue object, not
    ``value_<id>``), the stage an integer; a call built as its snippets build one (each parameter's default, else
    its example; a local picture for the example URL) is answered, for every endpoint that takes the picture."""
    api = client.view_api(return_format="dict", print_info=False)
    for name in ("/analyze", "/sweep", "/intervene", "/sanity", "/gate_steps"):
        endpoint = api["named_endpoints"][name]
        for entry in [*endpoint["parameters"], *endpoint["returns"]]:
            assert isinstance(entry["label"], str) and not entry["label"].startswith("value_"), (name, entry)
        for stage in [entry for entry in endpoint["parameters"] if entry["parameter_name"] == "stage"]:
            assert stage["type"]["type"] == "integer" and stage["python_type"]["type"] == "Literal[1, 2, 3, 4]"
            assert stage["parameter_default"] == 4
    assert any(entry["parameter_name"] == "stage" for entry in api["named_endpoints"]["/analyze"]["parameters"])
    picture = handle_file(shape_file(tmp_path, 5))
    for name in ("/analyze", "/sweep"):
        shown = {}
        for entry in api["named_endpoints"][name]["parameters"]:
            value = entry["parameter_default"] if entry["parameter_has_default"] else entry["example_input"]
            shown[entry["parameter_name"]] = picture if entry["parameter_name"] == "image" else value
        answer = client.predict(**shown, api_name=name)
        document = answer[0] if isinstance(answer, tuple | list) else answer
        assert document["stage"] == 4, name


def test_every_event_is_named_or_private(launched: tuple[str, Engine, gr.Blocks]) -> None:
    events = launched[2].fns.values()
    assert len(events) > 10
    assert {event.api_name for event in events if event.api_visibility != "private"} == PUBLIC_ENDPOINTS


# ------------------------------------------------------------------------------------------- launch hygiene


def test_server_refuses_paths_monitoring_and_oversized_uploads(
    launched: tuple[str, Engine, gr.Blocks], tmp_path: Path
) -> None:
    app_url = launched[0].rstrip("/")
    small = shape_file(tmp_path, 3)
    with small.open("rb") as handle:
        uploaded = httpx.post(f"{app_url}/gradio_api/upload", files={"files": handle}, timeout=60).json()[0]
    assert httpx.get(f"{app_url}/gradio_api/file={uploaded}", timeout=30).content == small.read_bytes()
    for path in ("/etc/passwd", str(REPO / "app.py"), str(REPO / "cbam_viz" / "weights.py")):
        answer = httpx.get(f"{app_url}/gradio_api/file={path}", timeout=30)
        assert answer.status_code in (403, 404), path
        assert "root:" not in answer.text
    for route in ("/monitoring", "/monitoring/summary", "/monitoring/any-key"):
        assert httpx.get(f"{app_url}{route}", timeout=30).status_code == 403, route  # "monitoring is not enabled"
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(MAX_FILE_BYTES + 1024))
    with big.open("rb") as handle:
        answer = httpx.post(f"{app_url}/gradio_api/upload", files={"files": handle}, timeout=60)
    assert answer.status_code == 413

    demo = launched[2]
    assert (
        demo.max_file_size == MAX_FILE_BYTES
        and demo.show_error is False
        and demo.enable_monitoring is False
        and demo.run_history is False
    )


# ------------------------------------------------------------------------------------------- pure handlers


def _by_key(cells: Cells, updates: dict) -> dict:
    """Updates keyed by (panel, arch) and "caption" for the caption cells, for readable assertions."""
    named = {}
    for key, component in cells.values.items():
        if component in updates:
            named[key] = updates[component]
    for key, component in cells.captions.items():
        if component in updates:
            named[(*key, "caption")] = updates[component]
    return named


def _analyse(engine: Engine, path: Path, models: list[str], weights: str = "auto", **options) -> Result:
    asked = PageRequest(
        str(path),
        models,
        weights,
        options.get("target_mode", "top1"),
        "",
        options.get("method", "gradcam"),
        4,
        "whole",
    )
    result, _, _ = results_section.run_analysis(engine, asked, False)
    return result


def test_display_controls_redraw_without_running_a_model(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_analyze = results_section.analyze
    monkeypatch.setattr(results_section, "analyze", lambda *a, **k: calls.append(1) or real_analyze(*a, **k))
    result = _analyse(engine, shape_file(tmp_path, 5), list(ARCH_ORDER))
    cells = page_cells()
    first = _by_key(cells, results_section.redraw(cells, "display", result, "jet", 0.5, False, 4, False))
    second = _by_key(cells, results_section.redraw(cells, "display", result, "viridis", 0.8, True, 4, False))
    assert len(calls) == 1
    display_keys = {key for key in cells.values if key[0] in {"cam", "spatial"}}
    assert {key for key in first if len(key) == 2} == display_keys  # only what a display control changes
    before = np.asarray(Image.open(first[("cam", "cbam_resnet50")]["value"]))
    after = np.asarray(Image.open(second[("cam", "cbam_resnet50")]["value"]))
    assert before.shape == after.shape and np.abs(before.astype(int) - after.astype(int)).mean() > 5
    assert Path(second[("spatial", "cbam_resnet50")]["value"]).name == "star-7-96-cbam_resnet50-spatial.webp"
    assert "value" not in second[("spatial", "resnet50")]  # the baseline keeps its note


def test_analysis_panels_fill_every_cell_and_hide_unchosen_models(engine: Engine, tmp_path: Path) -> None:
    result = _analyse(engine, shape_file(tmp_path, 6), ["resnet50", "cbam_resnet50"], "demo")
    cells = page_cells()
    page = {name: gr.Markdown(render=False) for name in ("notes", "method_note", "status", "drill_stage", "state")}
    display = panels.Display.checked("jet", 0.5, False, 4)
    updates = results_section.after_analysis(cells, result, display, {}, page)
    shown = _by_key(cells, updates)
    main = [panel for panel in panels.PANELS if panel.section == "results" and not panel.page_wide]
    assert all(shown[(panel.key, "se_resnet50")]["visible"] is False for panel in main)
    top5 = result.analysis.models["cbam_resnet50"].top5
    assert set(shown[("top5", "cbam_resnet50")]["value"]) == {label for label, _ in top5}
    assert "CBAM" in shown[("header", "cbam_resnet50", "caption")]["value"]
    assert "p = " in shown[("cam", "resnet50", "caption")]["value"]
    assert Path(shown[("channel", "cbam_resnet50")]["value"]).name.endswith("-cbam_resnet50-channel-stage4.webp")
    assert shown[("channel", "resnet50")] == {"__type__": "update", "visible": True}  # keeps its note
    for (panel, arch, *caption), update in shown.items():  # every visible cell names its model
        if caption and update.get("visible") and arch != panels.PAGE:
            assert ARCH_TITLES[arch] in update["value"], (panel, arch)
    assert "ResNet-50 vs CBAM-ResNet-50" in shown[("agreement", panels.PAGE)]["value"]
    assert "96x96" in updates[page["notes"]] and "whole picture" in updates[page["notes"]]
    assert updates[page["method_note"]] == explain.method_note("gradcam")
    assert not any(key[0].startswith("drill") for key in shown)  # the closed drill-down costs nothing
    drill = _by_key(cells, results_section.redraw(cells, "drill", result, "jet", 0.5, False, 2, True))
    assert "every block of stage 2" in drill[("drill_spatial", "cbam_resnet50", "caption")]["value"]
    assert "stage 2 (4 blocks)" in drill[("drill_channel", "cbam_resnet50", "caption")]["value"]
    assert drill[("drill_channel", "se_resnet50")]["visible"] is False  # not chosen
    redrawn = _by_key(cells, results_section.redraw(cells, "display", result, "magma", 0.9, True, 2, True))
    assert Path(redrawn[("drill_spatial", "cbam_resnet50")]["value"]).name.endswith(
        "-cbam_resnet50-drill_spatial-stage2.webp"
    )
    assert ("drill_channel", "cbam_resnet50") not in redrawn  # channel plots ignore display controls


def test_a_check_not_run_says_how_to_run_it_and_shows_no_empty_box(engine: Engine, tmp_path: Path) -> None:
    """The curves before anyone pressed for them: the caption says which button draws them, and no empty image box
    (with its broken-picture icon) sits under it."""
    result = _analyse(engine, shape_file(tmp_path, 6), list(ARCH_ORDER), "demo")
    cells = page_cells()
    curves = [panel for panel in panels.PANELS if panel.key == "curves"]
    shown = _by_key(cells, cells.draw(curves, result.analysis, panels.Display.checked("jet", 0.5, False, 4)))
    assert shown[("curves", panels.PAGE)] == {"__type__": "update", "value": None, "visible": False}
    assert "Deletion and insertion curves" in shown[("curves", panels.PAGE, "caption")]["value"]


def test_a_failed_run_clears_every_result_and_keeps_the_message(engine: Engine, tmp_path: Path) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture", encoding="utf-8")
    request = gr.Request(session_hash="session-1")
    with pytest.raises(gr.Error) as caught:
        asked = PageRequest(str(notes), list(ARCH_ORDER), "auto", "top1", "", "gradcam", 4, "whole")
        results_section.run_analysis(engine, asked, False, request=request)
    assert caught.value.visible is False  # no toast: the message goes under the picture, once
    cells = page_cells()
    page = {name: gr.Markdown(render=False) for name in ("notes", "status", "state")}
    updates = results_section.failure_outputs(cells, page, request)
    assert "not an image we can read" in updates[page["notes"]] and updates[page["state"]] is None
    cleared = _by_key(cells, updates)
    assert cleared[("cam", "cbam_resnet50")]["value"] is None and cleared[("top5", "resnet50")]["value"] is None


def test_a_new_picture_forgets_every_result_and_caption_of_the_last(engine: Engine, tmp_path: Path) -> None:
    """The picture changed: every cell and its caption, the checks, the box and the tab's analysis go at once; a
    check this analysis did not run draws nothing rather than leaving the last picture's."""
    result = _analyse(engine, shape_file(tmp_path, 6), list(ARCH_ORDER), "demo")
    cells = page_cells()
    names = ("notes", "status", "state", "box_picture", "box_corner", "box")
    page = {name: gr.Markdown(render=False) for name in names}
    runs = [gr.JSON(render=False)]
    updates = results_section.forget_picture(cells, page, runs)
    cleared = _by_key(cells, updates)
    assert cleared[("pointing", "cbam_resnet50")]["value"] is None and cleared[("sanity", "resnet50")]["value"] is None
    assert cleared[("cam", "cbam_resnet50", "caption")]["value"] == "**CBAM-ResNet-50**"  # no old caption
    assert updates[page["state"]] is None and updates[page["box"]] == "" and updates[runs[0]] is None
    assert "new picture" in updates[page["status"]]
    failed = _by_key(cells, results_section.failure_outputs(cells, page, gr.Request(session_hash="s-2")))
    assert failed[("top5", "se_resnet50", "caption")]["value"] == "**SE-ResNet-50**"
    analysis = result.analysis
    analysis.pointing = None  # a photograph: no outline, no pointing game of its own
    trust = [panel for panel in cells.panels if panel.key in ("pointing", "sanity")]
    drawn = _by_key(cells, cells.draw(trust, analysis, panels.Display(), "photo"))
    assert drawn[("pointing", "cbam_resnet50")]["value"] is None and drawn[("sanity", "se_resnet50")]["value"] is None
    assert drawn[("sanity", "se_resnet50")]["visible"] is False  # an empty image cell takes no room
    assert drawn[("pointing", "se_resnet50")]["visible"] is True


def test_an_upload_the_server_cleared_is_said_before_the_click_and_keeps_the_results(
    engine: Engine, tmp_path: Path
) -> None:
    """The server's cache removed the upload still on screen: a changed setting says at once that it must be
    uploaded again; pressing Analyse anyway says the same and leaves the results on screen."""
    gone = shape_file(tmp_path, 2)
    result = _analyse(engine, gone, list(ARCH_ORDER), "demo")
    assert inputs_section.stale_status(result, str(gone)) == language.text("status.stale")
    gone.unlink()
    assert "upload it again" in inputs_section.stale_status(result, str(gone))
    assert "upload it again" in inputs_section.stale_status(None, str(gone))  # before any result, too
    request = gr.Request(session_hash="session-cleared")
    with pytest.raises(gr.Error):
        asked = PageRequest(str(gone), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole")
        results_section.run_analysis(engine, asked, False, request=request)
    cells = page_cells()
    page = {name: gr.Markdown(render=False) for name in ("notes", "status", "state")}
    updates = results_section.failure_outputs(cells, page, request)
    assert set(updates) == {page["notes"], page["status"]}  # no cell cleared, the tab keeps its analysis
    assert "upload it again" in updates[page["notes"]] and "results below stay" in updates[page["status"]]


def test_an_upload_is_decoded_once_and_its_notes_reach_the_page(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = shapes.render_sample(3, 2, width=96, label=2).image
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(pixels, k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the upright picture needs a quarter turn
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    from cbam_viz import pipeline as analysis
    from cbam_viz.imaging import decode as imaging

    opened = []
    real_open = imaging.Image.open
    monkeypatch.setattr(imaging.Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    result = _analyse(engine, path, list(ARCH_ORDER))
    assert len(opened) == 1  # decoded once: analyze receives the decoded picture
    assert any("turned upright" in note for note in result.analysis.notes)
    assert "turned upright" in results_section.image_notes(result.analysis).lower()
    said = results_section.image_notes(result.analysis)  # sentences: a capital after each stop, a stop after each
    assert re.search(r"px\. Turned upright \(EXIF orientation 6\)\. The model saw ", said), said
    with using("zh"):
        chinese = results_section.image_notes(result.analysis)
    assert re.search(r"像素。已按 EXIF 方向 6 转正。[^ ]", chinese) and chinese.endswith("。</small>"), chinese
    assert result.analysis.to_json()["image"]["notes"] == list(result.analysis.notes)
    assert result.picture == "rotated"
    assert analysis.decode_image is imaging.decode_image


def test_nothing_to_render_before_an_analysis() -> None:
    cells = page_cells()
    updates = results_section.redraw(cells, "display", None, "jet", 0.5, False, 4, False)
    # a non-empty dict of skips: Gradio reads an empty dict as one value and fails a many-output event
    assert updates and all(update == gr.skip() for update in updates.values())
    with pytest.raises(gr.Error, match="analyse an image first"):
        export_section.export_files(None, "jet", 0.5, False)
    with pytest.raises(CbamVizError, match="unknown colormap"):
        panels.Display.checked("rainbow-unicorn", 0.5, False)
    with pytest.raises(CbamVizError, match="opacity must be between 0 and 1"):
        panels.Display.checked("jet", 1.5, False)


def test_a_new_panel_is_one_object(demo_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/architecture.md's recipe: one Panel, its render function and its heading in each language's catalogue,
    and the page shows it for every model."""
    for code, heading in (("en", "Mean of the CAM"), ("zh", "CAM 的平均值")):
        monkeypatch.setitem(language.catalogue(code), "heading.mean_cam", heading)

    def render_mean_cam(analysis, display):
        return {
            arch: panels.Shown(f"mean CAM {result.cam.mean():.4f}", panels.model_caption(result.title, "mean CAM"))
            for arch, result in analysis.models.items()
        }

    dummy = panels.Panel("mean_cam", "heading.mean_cam", None, "markdown", render_mean_cam, panels.ON_ANALYSIS)
    with launched_app(demo_weights, panel_set=(*panels.PANELS, dummy)) as (url, _, demo):
        component_ids = {block.elem_id for block in demo.blocks.values()}
        assert {f"mean_cam-{arch}" for arch in ARCH_ORDER} <= component_ids
        client = Client(url, verbose=False)
        document, _ = client.predict(handle_file(shape_file(tmp_path, 4)), api_name="/analyze")
        client.close()
    cells = _cells_with(dummy)
    result = _analyse(Engine.start("demo", "cpu", demo_weights, warm=False), shape_file(tmp_path, 4), list(ARCH_ORDER))
    page = {name: gr.Markdown(render=False) for name in ("notes", "method_note", "status", "drill_stage", "state")}
    display = panels.Display.checked("jet", 0.5, False, 4)
    shown = _by_key(cells, results_section.after_analysis(cells, result, display, {}, page))
    for arch in ARCH_ORDER:
        assert shown[("mean_cam", arch)]["value"].startswith("mean CAM ")
        assert ARCH_TITLES[arch] in shown[("mean_cam", arch, "caption")]["value"]
    assert set(document["models"]) == set(ARCH_ORDER)


def _cells_with(extra: panels.Panel) -> Cells:
    cells = Cells(panels=(*panels.PANELS, extra))
    with gr.Blocks():
        for panel in cells.panels:
            for key in [panels.PAGE] if panel.page_wide else ARCH_ORDER:
                cells.add(panel, key)
    return cells


def test_unexpected_failures_become_one_line_messages(caplog: pytest.LogCaptureFixture) -> None:
    @one_line_errors
    def broken() -> None:
        raise ZeroDivisionError("division by zero in /srv/secret/path.py")

    with pytest.raises(gr.Error) as caught:
        broken()
    assert "ZeroDivisionError" in caught.value.message and "/srv" not in caught.value.message
    assert "broken failed" in caplog.text  # logged with its traceback, not swallowed


def test_uploaded_image_hands_over_the_file_untouched(tmp_path: Path) -> None:
    component = image_input(sources=["upload"], type="filepath", image_mode=None, render=False)
    assert component.get_block_name() == "image"
    assert not list((REPO / "cbam_viz").rglob("*.pyi"))  # no Component subclass, so Gradio writes no stub
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert component.preprocess(ImageData(path=str(broken))) == str(broken)
    assert component.preprocess(ImageData(url="data:image/png;base64,aGVsbG8=")) == b"hello"
    with pytest.raises(gr.Error, match="bad base64"):
        component.preprocess(ImageData(url="data:image/png;base64,@@@"))


def test_demo_banner_states_the_models_honestly(engine: Engine) -> None:
    banner = ui_banner.banner_markdown(engine.choice, engine.device, engine.parameters, engine.weights_dir)
    assert "1/8-width ResNet-50s" in banner and "0.38-0.42 M parameters" in banner
    assert "10 generated shape classes" in banner and f"{DEMO_SIZE}x{DEMO_SIZE} px" in banner
    assert "Device: **cpu**" in banner


def test_examples_are_held_out_shapes_and_credited_photos(tmp_path: Path) -> None:
    galleries = gallery.write_examples(["demo", "paper"], tmp_path)
    (shape_title, shape_items), (photo_title, photo_items) = galleries.items()
    assert [caption for _, caption in shape_items] == list(shapes.CLASSES)
    first = np.asarray(Image.open(shape_items[0][0]))
    assert first.shape == (gallery.EXAMPLE_SIZE, gallery.EXAMPLE_SIZE, 3)
    assert np.array_equal(first, shapes.render_sample(gallery.EXAMPLE_SEED, 0, gallery.EXAMPLE_SIZE, label=0).image)
    assert [Path(path).name for path, _ in photo_items] == [name for name, _ in gallery.PHOTOS]
    assert Image.open(photo_items[0][0]).size == (451, 300)
    credits = gallery.credits_markdown(galleries)
    assert "CC0" in credits and "public domain" in credits
    assert "Chelsea the cat (Stefan van der Walt, CC0)" in credits
    assert gallery.items_for(galleries, False)[0][1] == "Chelsea the cat"
    with language.using("zh"):
        assert gallery.items_for(galleries, True)[0][1] == language.text("shape.circle") != "circle"
        assert "Stefan van der Walt, CC0" in gallery.credits_markdown(galleries)
    assert "scikit-image" not in gallery.credits_markdown({gallery.SHAPE_GALLERY: shape_items})
    assert gallery.write_examples([], tmp_path) == {}


def test_export_copies_are_pruned(tmp_path: Path) -> None:
    store = ui_export.ExportFiles(keep_seconds=60)
    path = Path(store.write("figure.png", b"\x89PNG"))
    assert path.read_bytes() == b"\x89PNG" and store.count() == 1
    store.prune(now=path.stat().st_mtime + 30)
    assert store.count() == 1
    store.prune(now=path.stat().st_mtime + 61)
    assert store.count() == 0


def test_serve_settings_fit_the_device() -> None:
    cpu, gpu = ServeSettings.for_device("cpu"), ServeSettings.for_device("cuda:0")
    assert cpu.concurrency == 1 and gpu.concurrency > cpu.concurrency
    assert ServeSettings.for_device("cpu", queue_size=5).queue_size == 5
    options = ui_engine.launch_options("127.0.0.1", 7860)
    assert options["max_file_size"] == MAX_FILE_BYTES == 25_000_000 and options["enable_monitoring"] is False
    assert options["allowed_paths"] == [] and options["share"] is False


@pytest.mark.parametrize(
    ("weights", "words"), [("demo", "choose demo in Weights"), ("nonsense", "unknown weights set")]
)
def test_download_refuses_what_cannot_be_downloaded(engine: Engine, weights: str, words: str) -> None:
    with pytest.raises(gr.Error, match=words):
        inputs_section.download_weights(engine, weights)


def test_download_with_auto_fetches_the_paper_set(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """ "auto (now: demo)" is what a newcomer leaves chosen: Download then fetches the paper set, not "pick a set"."""
    import cbam_viz.weights.download

    asked = []
    monkeypatch.setattr(
        cbam_viz.weights.download, "download_set", lambda name, *_, **__: asked.append(name) or ["a", "b", "c"]
    )
    monkeypatch.setattr(engine, "refresh_examples", lambda: None)
    status, _, _ = inputs_section.download_weights(engine, "auto", progress=lambda *_, **__: None)
    assert asked == ["paper"] and "3 files of the **paper** set" in status


def test_weights_choices_say_what_is_ready(engine: Engine) -> None:
    labels = dict((value, label) for label, value in engine.weight_choices())
    assert labels["demo"] == "demo (shapes demo, ready)" and labels["paper"] == "paper (ImageNet, not downloaded)"
    assert labels["auto"] == "auto (now: demo)"
    update, status, _ = inputs_section.target_choices(engine, "paper")
    assert update["choices"] == [] and status.startswith("⚠️") and "download" in status
    update, status, gallery_update = inputs_section.target_choices(engine, "auto")
    assert update["choices"] == [(name, name) for name in shapes.CLASSES] and "10 classes" in status
    with pytest.raises(CbamVizError, match="unknown weights set"):
        engine.resolve("/etc/passwd")  # visitors pick sets; server paths are not theirs to load
    assert [caption for _, caption in gallery_update["value"]] == list(shapes.CLASSES)  # the gallery follows them


def test_downloads_exist_only_when_the_operator_allows_them(demo_weights: Path) -> None:
    with launched_app(demo_weights, allow_download=True) as (_, _, demo):
        names = {event.api_name for event in demo.fns.values() if event.api_visibility != "private"}
        assert names == PUBLIC_ENDPOINTS | {"download_weights"}
        download = next(event for event in demo.fns.values() if event.api_name == "download_weights")
        assert download.queue is False  # never occupies the analysis queue
    with launched_app(demo_weights) as (_, _, demo):
        assert "download" not in {block.elem_id for block in demo.blocks.values()}


def test_the_start_up_choice_and_its_reason_answer_every_auto_analysis(demo_weights: Path, tmp_path: Path) -> None:
    """Weights are chosen once, as a typed value: an analysis with "auto" is answered by the engine's own choice,
    its reason included (here, why a first run fell back to the demo set), in the JSON and the banner alike."""
    engine = Engine.start("demo", "cpu", demo_weights, warm=False)
    engine.choice = dataclasses.replace(engine.choice, note="no network: the demo set, until the paper set arrives")
    asked = PageRequest(str(shape_file(tmp_path, 5)), ["cbam_resnet50"], "auto", "top1", "", "gradcam", 4, "whole")
    result, document, banner = results_section.run_analysis(engine, asked, False)
    assert result.analysis.weights is engine.choice and result.analysis.is_demo
    assert document["weights"]["note"] == engine.choice.note
    assert "no network: the demo set" in banner and "Demo weights" in banner
    assert engine.choice_for("demo") is engine.choice and engine.choice_for("paper") == "paper"
