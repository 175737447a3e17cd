"""Your own models from a model card: checkpoints in each publisher's layout with a 5-class head, read from a
models.toml, against their publishers' own logits; every refusal one line, from the library, the CLI and the app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cbam_viz.analysis.schema import ANALYSIS_JSON_SCHEMA
from cbam_viz.errors import CbamVizError, WeightsError
from cbam_viz.i18n.language import using
from cbam_viz.pipeline import analyze
from cbam_viz.weights import card as card_module
from cbam_viz.weights.card import CARDS_SUBDIR, read_card
from cbam_viz.weights.files import file_sha256
from cbam_viz.weights.load import card_choice, load_model
from tests.helpers.app import launched_app
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, wait_for_panels
from tests.helpers.cards import FLOWERS, CardModelFile, cbam_official, write_card
from tests.helpers.ports import free_port
from tests.helpers.schema import validate

ROOT = Path(__file__).resolve().parents[1]
RELATIVE_TOLERANCE = 1e-5
WAIT_MS = 240_000  # full-size ResNet-50s on two CPU cores shared with other work
LAYOUTS = {"cbam_flowers": "official_cbam", "resnet_flowers": "torchvision", "se_flowers": "timm_seresnet"}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(card_files: list[CardModelFile]) -> list[CardModelFile]:
    """The three checkpoints (conftest's, built once a run): CBAM in the official release's layout, ResNet-50 from
    torchvision, SE from timm, each with a 5-class head."""
    return card_files


@pytest.fixture(scope="module")
def card(files: list[CardModelFile], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The card of the three, preparing pictures at 96 then 80 pixels: every pass on two CPU cores stays quick."""
    folder = tmp_path_factory.mktemp("card")
    for file in files:
        (folder / file.path.name).symlink_to(file.path)
    return write_card(folder, files, resize=96, crop=80)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def choice(card: Path, weights_dir: Path):
    return card_choice(card, weights_dir)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max())


def test_each_publishers_checkpoint_gives_its_publishers_logits(choice, files: list[CardModelFile]) -> None:
    image = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(11))
    assert choice.lineup.ids == ("cbam_flowers", "resnet_flowers", "se_flowers")
    for file in files:
        model = load_model(file.id, choice, device="cpu")
        with torch.no_grad():
            actual, expected = model(image), file.oracle(image)
        assert actual.shape == (2, len(FLOWERS))
        assert _close(actual, expected) <= RELATIVE_TOLERANCE, file.id
        info = model.weights_info
        assert (info.arch, info.layout, info.categories) == (file.family, LAYOUTS[file.id], FLOWERS)
        assert choice.lineup.family(file.id) == file.family  # detected: the card gives no family


def test_a_model_is_converted_once_keyed_by_the_sha256_of_its_file(
    files: list[CardModelFile], card: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    read_card(card, weights_dir)
    cached = {path.name for path in (weights_dir / CARDS_SUBDIR).glob("*.safetensors")}
    assert cached == {f"{file_sha256(file.path)}.safetensors" for file in files}

    def never(*_: object) -> None:
        raise AssertionError("the original was read again")

    monkeypatch.setattr(card_module, "_load", never)
    again = read_card(card, weights_dir)
    assert {model.converted.name for model in again.models} == cached
    monkeypatch.undo()

    # another file under the same name is another sha256: converted again, the old copy left for the old file
    folder = tmp_path / "changed"
    folder.mkdir()
    changed = cbam_official(folder, seed=99)
    model = read_card(write_card(folder, [changed]), weights_dir).models[0]
    assert model.converted.name == f"{file_sha256(changed.path)}.safetensors" != f"{file_sha256(files[0].path)}"
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    loaded = load_model("cbam_flowers", card_choice(folder / "models.toml", weights_dir), device="cpu")
    with torch.no_grad():
        assert _close(loaded(image), changed.oracle(image)) <= RELATIVE_TOLERANCE

    # a copy damaged after the card was read: the model still loads, from the original the card hashed
    choice = card_choice(folder / "models.toml", weights_dir)
    whole = model.converted.stat().st_size
    model.converted.write_bytes(model.converted.read_bytes()[: whole // 2])
    with pytest.warns(UserWarning, match="is damaged; loaded cbam_flowers.pth instead"):
        again = load_model("cbam_flowers", choice, device="cpu")
    with torch.no_grad():
        assert _close(again(image), changed.oracle(image)) <= RELATIVE_TOLERANCE
    # and the next read of the card converts it again: its model loads from the copy, with no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        renewed = load_model("cbam_flowers", card_choice(folder / "models.toml", weights_dir), device="cpu")
    assert model.converted.stat().st_size == whole
    with torch.no_grad():
        assert _close(renewed(image), changed.oracle(image)) <= RELATIVE_TOLERANCE


def test_an_analysis_names_the_cards_classes_models_and_preprocessing(choice, weights_dir: Path) -> None:
    picture = Image.fromarray((np.random.default_rng(3).random((240, 320, 3)) * 255).astype(np.uint8))
    result = analyze(picture, weights=choice, view="crop", models=["se_flowers", "cbam_flowers"])
    assert list(result.models) == ["cbam_flowers", "se_flowers"]  # the card's order
    assert result.view.input_size == (80, 80)  # the card's crop
    document = result.to_json()
    assert validate(document, ANALYSIS_JSON_SCHEMA) == []
    for model_id, model in document["models"].items():
        assert {label["label"] for label in model["top5"]} == set(FLOWERS)
        assert model["family"] == choice.lineup.family(model_id)
        assert model["title"] == choice.lineup.title(model_id)
        assert "models.toml" not in model["weights"] and "5 classes: daisy" in model["weights"]
    assert result.models["cbam_flowers"].spatial_attention and not result.models["se_flowers"].spatial_attention
    by_path = analyze(picture, weights=str(choice.card.path), weights_dir=weights_dir, view="crop")
    assert list(by_path.models) == list(choice.lineup.ids) and by_path.is_card
    with pytest.raises(CbamVizError, match="at most 3 models"):
        analyze(picture, weights=choice, models=["cbam_flowers", "resnet_flowers", "se_flowers", "x"])
    with pytest.raises(CbamVizError, match="unknown model 'cbam_resnet50': choose from cbam_flowers"):
        analyze(picture, weights=choice, models=["cbam_resnet50"])


def test_two_models_of_one_family_side_by_side(files: list[CardModelFile], weights_dir: Path, tmp_path: Path) -> None:
    """ "CBAM, epoch 10" against "CBAM, epoch 90": two models of one family are two columns, each its own maps."""
    later = cbam_official(tmp_path, seed=90)
    (tmp_path / "labels.txt").write_text("\n".join(FLOWERS) + "\n", encoding="utf-8")
    tables = [
        _table(files[0].path, 'title = "CBAM, epoch 10"\n', "epoch10"),
        _table(later.path, 'title = "CBAM, epoch 90"\n', "epoch90"),
    ]
    path = tmp_path / "epochs.toml"
    path.write_text("\n".join(tables), encoding="utf-8")
    choice = card_choice(path, weights_dir)
    picture = Image.fromarray((np.random.default_rng(4).random((64, 64, 3)) * 255).astype(np.uint8))
    result = analyze(picture, weights=choice)
    assert [(model.title, model.family) for model in result.models.values()] == [
        ("CBAM, epoch 10", "cbam_resnet50"),
        ("CBAM, epoch 90", "cbam_resnet50"),
    ]
    first, second = result.models.values()
    assert first.spatial_attention and second.spatial_attention
    assert not np.allclose(first.cam, second.cam)  # two sets of weights, two maps
    assert list(result.agreement) == ["epoch10|epoch90"]


# ---------------------------------------------------------------------------------------------------------- refusals


def _table(file: Path, body: str = "", model_id: str = "mine", labels: bool = True) -> str:
    names = 'labels = "labels.txt"\n' if labels else ""
    return f'[[model]]\nid = "{model_id}"\nfile = "{file}"\n{names}{body}'


def _refusal_cases(cbam: Path, folder: Path) -> dict[str, tuple[str, str]]:
    """case -> (the card's text, words its one-line refusal must hold)."""
    (folder / "four.txt").write_text("a\nb\nc\nd\n", encoding="utf-8")
    (folder / "junk.pth").write_bytes(b"not a checkpoint at all")
    torch.save({"features.weird.weight": torch.zeros(3)}, folder / "unknown.pth")
    torch.save(torch.nn.Linear(2, 2), folder / "module.pth")
    return {
        "width": (
            _table(cbam, labels=False) + 'labels = "four.txt"\n',
            "classifier has 5 outputs but the card names 4",
        ),
        "missing": (_table(folder / "nowhere.pth"), "nowhere.pth does not exist"),
        "layout": (_table(folder / "unknown.pth"), "is in no layout cbam_viz knows"),
        "pickle": (_table(folder / "module.pth"), "holds Python objects besides tensors"),
        "not a checkpoint": (_table(folder / "junk.pth"), "junk.pth"),
        "family": (_table(cbam, 'family = "se_resnet50"\n'), 'family = "se_resnet50" but the weights are a CBAM'),
        "unknown family": (_table(cbam, 'family = "vgg16"\n'), "has family 'vgg16'"),
        "no classes": (_table(cbam, labels=False), "names no classes and its classifier has 5 outputs"),
        "toml": ("[[model]\nid = 1", "is not valid TOML"),
        "key": (_table(cbam, 'lables = "x.txt"\n'), "unknown key 'lables'"),
        "id": (_table(cbam, model_id="My Model"), "an id is 1-40 lower-case letters"),
        "twice": (_table(cbam) + "\n" + _table(cbam, 'title = "other"\n'), "two models have the id 'mine'"),
        "both": (_table(cbam, 'classes = ["a"]\n'), "has both classes and labels"),
        "crop": (_table(cbam, "[model.preprocess]\nresize = 128\ncrop = 224\n"), "preprocess crop is 224"),
        "interpolation": (_table(cbam, '[model.preprocess]\ninterpolation = "lanczos"\n'), "use bilinear, bicubic"),
        "std": (
            _table(cbam, "[model.preprocess]\nstd = [0.2, 0, 0.2]\n"),
            "std [0.2, 0, 0.2] must be finite and above 0",
        ),
        "nothing": ("", "lists no models"),
        "classes differ": (
            _table(cbam) + "\n" + _table(cbam, 'classes = ["1", "2", "3", "4", "5"]\n', "other", labels=False),
            "has other class names than 'mine'",
        ),
    }


def test_every_problem_of_a_card_is_one_line_naming_the_model_and_the_fix(
    files: list[CardModelFile], weights_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "labels.txt").write_text("\n".join(FLOWERS) + "\n", encoding="utf-8")
    for case, (body, words) in _refusal_cases(files[0].path, tmp_path).items():
        path = tmp_path / f"{case.replace(' ', '_')}.toml"
        path.write_text(body, encoding="utf-8")
        with pytest.raises(WeightsError) as raised:
            read_card(path, weights_dir)
        message = str(raised.value)
        assert words in message and "\n" not in message, (case, message)
        if case not in ("toml", "nothing", "id"):
            assert "'mine'" in message, (case, message)
    with pytest.raises(WeightsError, match="model card .*nowhere.toml does not exist"):
        read_card(tmp_path / "nowhere.toml", weights_dir)
    six = "\n".join(_table(files[0].path, model_id=f"m{number}", body=f'title = "{number}"\n') for number in range(7))
    (tmp_path / "seven.toml").write_text(six, encoding="utf-8")
    with pytest.raises(WeightsError, match="lists 7 models: a card holds at most 6"):
        read_card(tmp_path / "seven.toml", weights_dir)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "CBAM_VIZ_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("entry", ["cli", "app"])
def test_the_cli_and_the_app_refuse_a_bad_card_in_one_line_before_anything_starts(
    entry: str, files: list[CardModelFile], weights_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "labels.txt").write_text("\n".join(FLOWERS) + "\n", encoding="utf-8")
    cases = _refusal_cases(files[0].path, tmp_path)
    picture = tmp_path / "flower.png"
    Image.new("RGB", (64, 48), "yellow").save(picture)
    for case in ("width",) if entry == "cli" else ("family",):  # the library's test above has every case
        body, words = cases[case]
        path = tmp_path / f"{case}.toml"
        path.write_text(body, encoding="utf-8")
        if entry == "cli":
            args = ["-m", "cbam_viz", "analyze", str(picture), "--models-file", str(path), "--out", "out"]
        else:
            args = [str(ROOT / "app.py"), "--models", str(path), "--port", str(free_port())]
        done = _run([*args, "--weights-dir", str(weights_dir)], tmp_path)
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, (case, done.stdout, done.stderr)
        assert len(errors) == 1 and errors[0].startswith("error: ") and words in errors[0], (case, done.stderr)
        assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    both = (
        ["-m", "cbam_viz", "analyze", str(picture), "--models-file", "x.toml", "--weights", "demo", "--out", "out"]
        if entry == "cli"
        else [str(ROOT / "app.py"), "--models", "x.toml", "--weights", "demo", "--port", str(free_port())]
    )
    done = _run(both, tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "drop --weights demo" in done.stderr, done.stderr


def test_the_cli_analyses_with_the_card(card: Path, weights_dir: Path, tmp_path: Path) -> None:
    picture = tmp_path / "flower.png"
    Image.fromarray((np.random.default_rng(5).random((90, 120, 3)) * 255).astype(np.uint8)).save(picture)
    args = ["-m", "cbam_viz", "analyze", str(picture), "--models-file", str(card), "--weights-dir", str(weights_dir)]
    done = _run([*args, "--models", "resnet_flowers", "cbam_flowers", "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("flower.png: "))
    assert line.startswith("flower.png: CBAM-ResNet-50, cbam flowers ") and "| ResNet-50, resnet flowers " in line
    assert any(name in line for name in FLOWERS)
    document = json.loads((tmp_path / "out" / "flower.json").read_text())
    assert list(document["models"]) == ["cbam_flowers", "resnet_flowers"]
    assert document["weights"]["set"] == str(card)


# ------------------------------------------------------------------------------------------------- the app itself


@pytest.fixture(scope="module")
def app(card: Path, weights_dir: Path):
    """``python app.py --models models.toml`` as the tests meet it (layout.build_demo + layout.serve)."""
    with launched_app(weights_dir, models_file=card) as running:
        yield running


def test_the_api_answers_with_the_cards_models_and_refuses_others_in_one_line(app, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, engine, _ = app
    picture = tmp_path / "flower.png"
    Image.fromarray((np.random.default_rng(8).random((120, 160, 3)) * 255).astype(np.uint8)).save(picture)
    client = Client(url, verbose=False)
    try:
        document, banner, *_ = client.predict(handle_file(str(picture)), api_name="/analyze")
        assert list(document["models"]) == ["cbam_flowers", "resnet_flowers", "se_flowers"]
        for model in document["models"].values():
            assert {row["label"] for row in model["top5"]} == set(FLOWERS)
        assert "Your models, from models.toml" in banner and "CBAM-ResNet-50, cbam flowers" in banner
        assert "5 classes: daisy, dandelion, rose, sunflower, tulip" in banner and "resize 96, crop 80" in banner
        assert "shape" not in banner.lower() and "demo" not in banner.lower()
        refusals = {  # the page's choices hold the card's models only (ui.server.choices answers in one line)
            "'cbam_resnet50' is not one of the choices: ['cbam_flowers', 'resnet_flowers', 'se_flowers']": {
                "models": ["cbam_resnet50"]
            },
            "'paper' is not one of the choices: ['auto']": {"weights": "paper"},
        }
        for words, changed in refusals.items():
            with pytest.raises(Exception) as raised:
                client.predict(handle_file(str(picture)), **changed, api_name="/analyze")
            assert words in str(raised.value) and "\n" not in str(raised.value).strip(), str(raised.value)
        steps = client.predict(
            handle_file(str(picture)), "cbam_flowers", "", None, "auto", "whole", api_name="/gate_steps"
        )
        assert steps["model"] == "cbam_flowers" and steps["spatial"] is not None
        with pytest.raises(Exception, match="ResNet-50, resnet flowers has no gates: pick"):
            client.predict(
                handle_file(str(picture)), "resnet_flowers", "", None, "auto", "whole", api_name="/gate_steps"
            )
    finally:
        client.close()
    assert engine.lineup.ids == ("cbam_flowers", "resnet_flowers", "se_flowers")


def test_the_lab_the_checks_and_export_work_on_the_cards_models(app, tmp_path: Path) -> None:
    """Interventions, the sweep, deletion and insertion, the randomisation check and the export, through the API, on
    the card's models: each answers with the card's ids and class names."""
    from gradio_client import Client, handle_file

    url, _, _ = app
    picture = tmp_path / "flower.png"
    Image.fromarray((np.random.default_rng(10).random((100, 100, 3)) * 255).astype(np.uint8)).save(picture)
    ids = ["cbam_flowers", "resnet_flowers", "se_flowers"]
    request = [handle_file(str(picture)), ids, "auto", "top1", "", "gradcam", 4, "whole"]
    client = Client(url, verbose=False)
    try:
        intervened = client.predict(*request, "layer4:channel=one", api_name="/intervene")["models"]
        assert intervened["cbam_flowers"]["interventions"][0]["spec"] == "layer4:channel=one"
        assert {row["label"] for row in intervened["se_flowers"]["interventions"][0]["top5"]} <= set(FLOWERS)
        assert "no attention gates" in intervened["resnet_flowers"]["interventions"][0]["note"]
        swept = client.predict(*request, api_name="/sweep")["models"]
        assert swept["cbam_flowers"]["sweep"]["entries"] and "sweep" not in swept["resnet_flowers"]
        curves = client.predict(handle_file(str(picture)), ["se_flowers"], api_name="/deletion_insertion")
        assert list(curves["models"]) == ["se_flowers"]
        checks = client.predict(handle_file(str(picture)), ["cbam_flowers"], api_name="/sanity")
        assert list(checks["models"]) == ["cbam_flowers"]
        assert {other["label"] for other in checks["models"]["cbam_flowers"]["random_logit"]["classes"]} <= set(FLOWERS)
        document, _ = client.predict(handle_file(str(picture)), api_name="/analyze")
        figure_path, json_path = client.predict("viridis", 0.7, True, api_name="/export")
        assert json.loads(Path(json_path).read_text(encoding="utf-8")) == document
        assert Image.open(figure_path).format == "PNG"
    finally:
        client.close()


def test_live_mode_names_the_cards_models(choice) -> None:
    from cbam_viz.ui import live

    frame = (np.random.default_rng(12).random((120, 160, 3)) * 255).astype(np.uint8)
    shown = live.analyse_frame(frame, ["cbam_flowers", "se_flowers"], choice, device="cpu")
    assert shown.titles == {"cbam_flowers": "CBAM-ResNet-50, cbam flowers", "se_flowers": "SE-ResNet-50, se flowers"}
    assert all(label in FLOWERS for label, _ in shown.top1.values())
    line = live.status_line(shown, 10.0)
    assert "CBAM-ResNet-50, cbam flowers" in line and "SE-ResNet-50, se flowers" in line


def test_lesson_links_name_the_cards_model_ids() -> None:
    from cbam_viz.ui import lesson

    ids = ("cbam_flowers", "resnet_flowers", "se_flowers")
    found = lesson.read({"models": "se_flowers,cbam_flowers"}, {}, ["auto"], (), ids)
    assert found.models == ["cbam_flowers", "se_flowers"] and not found.ignored
    refused = lesson.read({"models": "cbam_resnet50"}, {}, ["auto"], (), ids)
    assert refused.models is None and "cbam_flowers" in refused.ignored[0]
    query, _ = lesson.write(
        picture=None,
        examples={},
        models=["se_flowers", "cbam_flowers"],
        weights="auto",
        method="gradcam",
        stage=4,
        target=None,
        view="whole",
        cmap="jet",
        opacity=0.5,
        shared=False,
        panel=None,
        model_ids=ids,
    )
    assert "models=cbam_flowers%2Cse_flowers" in query


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CI", "").lower() != "true" and not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"
)
def test_in_the_browser_the_cards_models_show_their_classes_maps_and_lab(app, tmp_path: Path) -> None:
    """A researcher's card in the page: their models' titles side by side, their class names in the top-5, every map,
    the gate lab on their CBAM, and a lesson link that names their model ids."""
    from playwright.sync_api import sync_playwright

    url, _, _ = app
    picture = tmp_path / "flower.png"
    Image.fromarray((np.random.default_rng(9).random((150, 200, 3)) * 255).astype(np.uint8)).save(picture)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=WAIT_MS)
            page.locator("#input-image").wait_for(timeout=WAIT_MS)
            banner = page.locator("#banner").inner_text()
            assert "Your models, from models.toml" in banner and "SE-ResNet-50, se flowers" in banner, banner
            body = page.locator("body").inner_text().lower()
            assert not any(words in body for words in ("generated shape", "shapes demo", "demo weights")), body
            models = page.locator("#models").inner_text()
            assert all(title in models for title in ("cbam flowers", "resnet flowers", "se flowers")), models
            page.locator("#input-image input[type=file]").set_input_files(str(picture))
            ids = ["cbam_flowers", "resnet_flowers", "se_flowers"]
            wait_for_panels(page, [ids, ["cbam_flowers"], ["cbam_flowers", "se_flowers"], None], WAIT_MS)
            for model_id in ids:
                top5 = page.locator(f"#top5-{model_id}").inner_text()
                assert sum(name in top5 for name in FLOWERS) >= 3, top5
                caption = page.locator(f"#cam-{model_id}-caption").inner_text()
                assert caption.startswith(app[1].lineup.title(model_id)), caption
            assert "No spatial" in page.locator("#spatial-se_flowers").inner_text()
            status = page.locator("#results-status").inner_text()
            assert "CBAM-ResNet-50, cbam flowers" in status and "shape" not in status.lower(), status
            # a model not chosen gives its column's width to the chosen ones
            page.locator("#models").get_by_text("ResNet-50, resnet flowers").click()
            page.locator("#results-status").get_by_text("Settings changed").wait_for(timeout=WAIT_MS)
            page.locator("#analyse").click()
            page.locator("#results-status").get_by_text("Results for").wait_for(timeout=WAIT_MS)
            wait_for_panels(page, [["cbam_flowers", "se_flowers"], ["cbam_flowers"], ["se_flowers"], None], WAIT_MS)
            assert page.locator("#cam-resnet_flowers img").count() == 0
            shares = page.evaluate(
                """() => { const cell = document.querySelector('#cam-cbam_flowers');
                  const row = cell.closest('.model-column').parentElement;
                  return Array.from(row.children).filter(c => getComputedStyle(c).display !== 'none')
                    .map(c => c.getBoundingClientRect().width / row.getBoundingClientRect().width); }"""
            )
            status = page.locator("#results-status").inner_text()
            assert status.startswith("Results for flower: CBAM-ResNet-50, cbam flowers, SE-ResNet-50"), status
            assert len(shares) == 2 and min(shares) > 0.45, shares
            page.get_by_text("Inside the gate: how the attention is computed").click()
            page.locator("#gate_equations").get_by_text("Ms[").wait_for(timeout=WAIT_MS)
            assert "cbam flowers" in page.locator("#gate_channel-page-caption").inner_text()
            page.locator("#lesson-link-button").click()
            page.wait_for_function(
                "() => { const i = document.querySelector('#lesson-link textarea, #lesson-link input');"
                " return i && i.value.startsWith('http'); }",
                timeout=WAIT_MS,
            )
            written = page.locator("#lesson-link textarea, #lesson-link input").first.input_value()
            assert "models=cbam_flowers%2Cse_flowers" in written, written
            if os.environ.get("CBAM_VIZ_CARD_SCREENSHOT"):
                page.screenshot(path=os.environ["CBAM_VIZ_CARD_SCREENSHOT"], full_page=True)
        finally:
            browser.close()


def test_the_banner_says_each_models_preprocessing_once(choice) -> None:
    """Models that prepare pictures alike get one sentence for it; a model that differs says its own."""
    import dataclasses

    from cbam_viz.ui.banner import card_description
    from cbam_viz.weights.registry import Preprocess

    card = choice.card
    alike = card_description(card)
    assert alike.count("resize 96, crop 80") == 1 and "Each prepares a picture the same way" in alike
    bicubic = Preprocess(288, None, "bicubic", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    models = (dataclasses.replace(card.models[0], preprocess=bicubic, licence="CC BY 4.0"), *card.models[1:])
    differ = card_description(dataclasses.replace(card, models=models))
    own = "resize 288, no crop, bicubic, mean [0.5, 0.5, 0.5], std [0.25, 0.25, 0.25]; licence: CC BY 4.0"
    assert f"(CBAM-ResNet-50; {own})" in differ
    assert differ.count("resize 96, crop 80") == 2 and "the same way" not in differ
    with using("zh"):  # the page's language switch redraws the banner in the visitor's language
        chinese = card_description(card)
    assert chinese.startswith("**你的模型，来自 models.toml**") and "缩放到 96，中心裁剪 80" in chinese, chinese


def test_our_own_safetensors_brings_its_class_names(
    choice, files: list[CardModelFile], weights_dir: Path, tmp_path: Path
) -> None:
    """A file written by ``weights convert`` (our safetensors, with its classes) needs no labels in the card."""
    from cbam_viz.weights.convert import save_project_safetensors
    from cbam_viz.weights.registry import IMAGENET_EVAL

    model = load_model("se_flowers", choice, device="cpu")
    path = save_project_safetensors(
        tmp_path / "se_flowers.safetensors", model, "se_resnet50", model.config, FLOWERS, IMAGENET_EVAL
    )
    (tmp_path / "own.toml").write_text(f'[[model]]\nid = "own"\nfile = "{path.name}"\n', encoding="utf-8")
    own = read_card(tmp_path / "own.toml", weights_dir).models[0]
    assert (own.classes, own.family, own.layout, own.title) == (FLOWERS, "se_resnet50", "project", "own")
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(13))
    loaded = load_model("own", card_choice(tmp_path / "own.toml", weights_dir), device="cpu")
    with torch.no_grad():
        assert _close(loaded(image), files[2].oracle(image)) <= RELATIVE_TOLERANCE
