"""The web app end to end: a launched server answered through gradio_client, plus its pure handlers.

The app runs on a weights folder of random demo-layout models (written once per session), so the tests need no
trained weights and every answer can be compared with ``analysis.analyze`` run directly on the same image.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
import torch
from gradio.data_classes import ImageData
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from safetensors.torch import save_file

from cbam_viz import explain, shapes, webapp
from cbam_viz.analysis import ARCH_ORDER, analyze
from cbam_viz.errors import CbamVizError
from cbam_viz.imaging import MAX_FILE_BYTES
from cbam_viz.resnet import ARCHS, ArchConfig, build_resnet
from cbam_viz.weights import IMAGENET_MEAN, IMAGENET_STD

REPO = Path(__file__).resolve().parent.parent
DEMO_SIZE = 64  # input size of the random demo set: small keeps every analysis fast on two CPU cores
PUBLIC_ENDPOINTS = {"analyze", "export", "download_weights"}


def load_app_module():
    """app.py by path (it is a script at the repository root, not part of the package)."""
    if "cbam_viz_app" in sys.modules:
        return sys.modules["cbam_viz_app"]
    spec = importlib.util.spec_from_file_location("cbam_viz_app", REPO / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cbam_viz_app"] = module
    spec.loader.exec_module(module)
    return module


def write_random_demo(root: Path) -> Path:
    """A weights folder with a demo set of random 1/8-width models (the trained set's file layout and metadata)."""
    demo = root / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    config = ArchConfig(base_width=8, stem_pool="none", num_classes=len(shapes.CLASSES))
    models = {}
    for seed, arch in enumerate(ARCHS):
        torch.manual_seed(seed)
        model = build_resnet(arch, config)
        for module in model.modules():  # random BatchNorm statistics give every map real structure
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.3, 0.3)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        tensors = {key: value.contiguous() for key, value in model.state_dict().items()}
        save_file(tensors, str(demo / f"{arch}.safetensors"), metadata={"arch": arch})
        models[arch] = {"file": f"{arch}.safetensors"}
    metadata = {
        "classes": list(shapes.CLASSES),
        "preprocess": {
            "resize": DEMO_SIZE,
            "crop": None,
            "interpolation": "bilinear",
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
        },
        "arch_config": {"base_width": 8, "stem_pool": "none", "num_classes": len(shapes.CLASSES)},
        "models": models,
    }
    (demo / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def launched_app(
    weights_dir: Path,
    *,
    settings: webapp.ServeSettings | None = None,
    delete_cache: tuple[int, int] = webapp.DELETE_CACHE,
    weights: str = "demo",
) -> Iterator[tuple[str, webapp.Engine, gr.Blocks]]:
    """The real app (app.build_demo + app.serve, as ``python app.py`` runs it) on a free local port."""
    app = load_app_module()
    engine = webapp.Engine.start(weights, "cpu", weights_dir, warm=False)
    demo = app.build_demo(engine, settings=settings, delete_cache=delete_cache)
    _, url, _ = app.serve(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, probe_localhost=False)
    try:
        yield url, engine, demo
    finally:
        demo.close()


def shape_file(folder: Path, label: int, seed: int = webapp.EXAMPLE_SEED, size: int = 96) -> Path:
    """A held-out shape picture as a PNG file."""
    path = folder / f"{shapes.CLASSES[label]}-{seed}-{size}.png"
    Image.fromarray(shapes.render_sample(seed, label, width=size, label=label).image).save(path)
    return path


def summary(document: dict) -> dict:
    """What must match between two answers for the same image: every model's top-5 and explained class."""
    return {
        arch: ([(row["label"], round(row["prob"], 5)) for row in model["top5"]], model["target"]["label"])
        for arch, model in document["models"].items()
    }


@pytest.fixture(scope="session")
def demo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_demo(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def launched(demo_weights: Path) -> Iterator[tuple[str, webapp.Engine, gr.Blocks]]:
    with launched_app(demo_weights) as running:
        yield running


@pytest.fixture(scope="module")
def app_url(launched: tuple[str, webapp.Engine, gr.Blocks]) -> str:
    return launched[0]


@pytest.fixture(scope="module")
def client(app_url: str) -> Iterator[Client]:
    connection = Client(app_url, verbose=False)
    yield connection
    connection.close()


# ------------------------------------------------------------------------------------------- through the API


def test_analyze_endpoint_answers_what_analyze_answers(client: Client, demo_weights: Path, tmp_path: Path) -> None:
    picture = shape_file(tmp_path, shapes.CLASSES.index("star"))
    document, banner = client.predict(handle_file(picture), api_name="/analyze")
    direct = analyze(Image.open(picture), weights="demo", weights_dir=demo_weights, device="cpu")
    assert summary(document) == summary(direct.to_json())
    assert list(document["models"]) == list(ARCH_ORDER)
    assert document["weights"]["set"] == "demo" and document["device"] == "cpu"
    assert document["image"] == {"width": 96, "height": 96, "display_width": 96, "display_height": 96}
    assert "Demo weights, not ImageNet" in banner and "1/8-width" in banner and "cpu" in banner
    assert set(document["agreement"]) == {"resnet50|se_resnet50", "resnet50|cbam_resnet50", "se_resnet50|cbam_resnet50"}


def test_analyze_endpoint_options(client: Client, tmp_path: Path) -> None:
    picture = shape_file(tmp_path, shapes.CLASSES.index("ring"), size=120)
    document, _ = client.predict(
        handle_file(picture),
        models=["cbam_resnet50", "se_resnet50"],
        target_mode=webapp.TARGET_SHARED,
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
        ({"target_mode": webapp.TARGET_SHARED, "target_class": "dodecahedron"}, "unknown target class"),
        ({"target_mode": webapp.TARGET_SHARED, "target_class": ""}, "pick the class"),
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


def test_every_event_is_named_or_private(launched: tuple[str, webapp.Engine, gr.Blocks]) -> None:
    events = launched[2].fns.values()
    assert len(events) > 10
    assert {event.api_name for event in events if event.api_visibility != "private"} == PUBLIC_ENDPOINTS


# ------------------------------------------------------------------------------------------- launch hygiene


def test_server_refuses_paths_monitoring_and_oversized_uploads(
    launched: tuple[str, webapp.Engine, gr.Blocks], tmp_path: Path
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
    assert demo.max_file_size == MAX_FILE_BYTES and demo.show_error is True and demo.enable_monitoring is False


# ------------------------------------------------------------------------------------------- pure handlers


@pytest.fixture(scope="module")
def engine(demo_weights: Path) -> webapp.Engine:
    return webapp.Engine.start("demo", "cpu", demo_weights, warm=False)


def test_display_controls_redraw_without_running_a_model(
    engine: webapp.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_analyze = webapp.analyze
    monkeypatch.setattr(webapp, "analyze", lambda *a, **k: calls.append(1) or real_analyze(*a, **k))
    result, _, _ = webapp.run_analysis(
        engine,
        str(shape_file(tmp_path, 5)),
        list(ARCH_ORDER),
        "auto",
        webapp.TARGET_TOP1,
        "",
        "gradcam",
        4,
        "whole",
        False,
    )
    first = webapp.render_overlays(result, "jet", 0.5, False)
    second = webapp.render_overlays(result, "viridis", 0.8, True)
    assert len(calls) == 1
    keys = webapp.panel_keys(webapp.OVERLAY_PANELS)
    assert len(first) == len(keys)
    cam = keys.index(("cam", "cbam_resnet50"))
    before, after = np.asarray(first[cam]["value"]), np.asarray(second[cam]["value"])
    assert before.shape == after.shape and np.abs(before.astype(int) - after.astype(int)).mean() > 5
    spatial = keys.index(("spatial", "cbam_resnet50"))
    assert isinstance(second[spatial]["value"], Image.Image)
    assert second[keys.index(("spatial", "resnet50"))] == gr.skip()  # the baseline keeps its note


def test_render_main_fills_every_panel_and_hides_unchosen_models(engine: webapp.Engine, tmp_path: Path) -> None:
    result, _, _ = webapp.run_analysis(
        engine,
        str(shape_file(tmp_path, 6)),
        ["resnet50", "cbam_resnet50"],
        "demo",
        webapp.TARGET_TOP1,
        "",
        "gradcam",
        4,
        "whole",
        False,
    )
    values = webapp.render_main(result, "jet", 0.5, False)
    keys = webapp.panel_keys(webapp.MAIN_PANELS)
    assert len(values) == len(keys) + 3
    panels = dict(zip(keys, values[: len(keys)], strict=True))
    assert all(panels[(panel, "se_resnet50")]["visible"] is False for panel in webapp.MAIN_PANELS)
    top5 = result.models["cbam_resnet50"].top5
    assert set(panels[("top5", "cbam_resnet50")]["value"]) == {label for label, _ in top5}
    assert "CBAM" in panels[("header", "cbam_resnet50")]["value"]
    assert "p = " in panels[("cam", "resnet50")]["label"]
    assert isinstance(panels[("channel", "cbam_resnet50")]["value"], Image.Image)
    assert panels[("channel", "resnet50")] == {"__type__": "update", "visible": True}  # keeps its note
    agreement, notes, method = values[len(keys) :]
    assert "ResNet-50 vs CBAM-ResNet-50" in agreement
    assert "96x96" in notes and "whole picture" in notes
    assert method == explain.method_note("gradcam")
    drill_keys = webapp.panel_keys(webapp.DRILL_PANELS)
    assert webapp.render_drill_if_open(result, False, 2, "jet", 0.5, False) == [gr.skip()] * len(drill_keys)
    drill = dict(zip(drill_keys, webapp.render_drill_if_open(result, True, 2, "jet", 0.5, False), strict=True))
    assert "every block of stage 2" in drill[("drill_spatial", "cbam_resnet50")]["label"]
    assert "stage 2 (4 blocks)" in drill[("drill_channel", "cbam_resnet50")]["label"]
    assert drill[("drill_channel", "se_resnet50")]["visible"] is False  # not chosen
    redrawn = dict(zip(drill_keys, webapp.redraw_drill_overlays(result, True, 2, "magma", 0.9, True), strict=True))
    assert isinstance(redrawn[("drill_spatial", "cbam_resnet50")]["value"], Image.Image)
    assert redrawn[("drill_channel", "cbam_resnet50")] == gr.skip()  # channel plots ignore display controls


def test_nothing_to_render_before_an_analysis() -> None:
    assert all(value == gr.skip() for value in webapp.render_overlays(None, "jet", 0.5, False))
    with pytest.raises(gr.Error, match="analyse an image first"):
        webapp.export_files(None, "jet", 0.5, False)
    with pytest.raises(CbamVizError, match="unknown colormap"):
        webapp.Display.checked("rainbow-unicorn", 0.5, False)
    with pytest.raises(CbamVizError, match="opacity must be between 0 and 1"):
        webapp.Display.checked("jet", 1.5, False)


def test_unexpected_failures_become_one_line_messages(caplog: pytest.LogCaptureFixture) -> None:
    @webapp.one_line_errors
    def broken() -> None:
        raise ZeroDivisionError("division by zero in /srv/secret/path.py")

    with pytest.raises(gr.Error) as caught:
        broken()
    assert "ZeroDivisionError" in caught.value.message and "/srv" not in caught.value.message
    assert "broken failed" in caplog.text  # logged with its traceback, not swallowed


def test_uploaded_image_hands_over_the_file_untouched(tmp_path: Path) -> None:
    component = webapp.image_input(sources=["upload"], type="filepath", image_mode=None, render=False)
    assert component.get_block_name() == "image"
    assert not (REPO / "cbam_viz" / "webapp.pyi").exists()  # no Component subclass, so Gradio writes no stub
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert component.preprocess(ImageData(path=str(broken))) == str(broken)
    assert component.preprocess(ImageData(url="data:image/png;base64,aGVsbG8=")) == b"hello"
    with pytest.raises(gr.Error, match="bad base64"):
        component.preprocess(ImageData(url="data:image/png;base64,@@@"))


def test_demo_banner_states_the_models_honestly(engine: webapp.Engine) -> None:
    banner = webapp.banner_markdown(
        engine.weights, engine.weights_note, engine.device, engine.parameters, engine.weights_dir
    )
    assert "1/8-width ResNet-50s" in banner and "0.38-0.42 M parameters" in banner
    assert "10 generated shape classes" in banner and f"{DEMO_SIZE}x{DEMO_SIZE} px" in banner
    assert "Device: **cpu**" in banner


def test_examples_are_held_out_shapes_and_credited_photos(tmp_path: Path) -> None:
    galleries = webapp.write_examples(["demo", "paper"], tmp_path)
    (shape_title, shape_items), (photo_title, photo_items) = galleries.items()
    assert [caption for _, caption in shape_items] == list(shapes.CLASSES)
    first = np.asarray(Image.open(shape_items[0][0]))
    assert first.shape == (webapp.EXAMPLE_SIZE, webapp.EXAMPLE_SIZE, 3)
    assert np.array_equal(first, shapes.render_sample(webapp.EXAMPLE_SEED, 0, webapp.EXAMPLE_SIZE, label=0).image)
    assert [Path(path).name for path, _ in photo_items] == [name for name, _, _ in webapp.PHOTOS]
    assert Image.open(photo_items[0][0]).size == (451, 300)
    assert "CC0" in webapp.PHOTO_ATTRIBUTION and "public domain" in webapp.PHOTO_ATTRIBUTION
    assert "Chelsea the cat (Stefan van der Walt, CC0)" in webapp.credits_markdown(galleries)
    assert "scikit-image" not in webapp.credits_markdown({webapp.SHAPE_GALLERY: shape_items})
    assert webapp.write_examples([], tmp_path) == {}


def test_export_copies_are_pruned(tmp_path: Path) -> None:
    store = webapp.ExportFiles(keep_seconds=60)
    path = Path(store.write("figure.png", b"\x89PNG"))
    assert path.read_bytes() == b"\x89PNG" and store.count() == 1
    store.prune(now=path.stat().st_mtime + 30)
    assert store.count() == 1
    store.prune(now=path.stat().st_mtime + 61)
    assert store.count() == 0


def test_serve_settings_fit_the_device() -> None:
    cpu, gpu = webapp.ServeSettings.for_device("cpu"), webapp.ServeSettings.for_device("cuda:0")
    assert cpu.concurrency == 1 and gpu.concurrency > cpu.concurrency
    assert webapp.ServeSettings.for_device("cpu", queue_size=5).queue_size == 5
    options = webapp.launch_options("127.0.0.1", 7860)
    assert options["max_file_size"] == MAX_FILE_BYTES == 25_000_000 and options["enable_monitoring"] is False
    assert options["allowed_paths"] == [] and options["share"] is False


@pytest.mark.parametrize(
    ("weights", "words"),
    [("auto", "pick the ImageNet set"), ("demo", "trained here, not downloaded"), ("nonsense", "unknown weights set")],
)
def test_download_refuses_what_cannot_be_downloaded(engine: webapp.Engine, weights: str, words: str) -> None:
    with pytest.raises(gr.Error, match=words):
        webapp.download_weights(engine, weights)


def test_weights_choices_say_what_is_ready(engine: webapp.Engine) -> None:
    labels = dict((value, label) for label, value in engine.weight_choices())
    assert labels["demo"] == "demo (shapes demo, ready)" and labels["paper"] == "paper (ImageNet, not downloaded)"
    assert labels["auto"] == "auto (now: demo)"
    update, status = webapp.target_choices(engine, "paper")
    assert update["choices"] == [] and status.startswith("⚠️") and "download" in status
    update, status = webapp.target_choices(engine, "auto")
    assert update["choices"] == list(shapes.CLASSES) and "10 classes" in status
    with pytest.raises(CbamVizError, match="unknown weights set"):
        engine.resolve("/etc/passwd")  # visitors pick sets; server paths are not theirs to load
