"""``python -m cbam_viz study --models-file models.toml``: a model card's own checkpoints studied over an ImageFolder
of the card's class names, keyed by the card's ids, named by its titles, from the CLI to the app's Study section.

The card's three 5-class ResNet-50s (official CBAM, torchvision and timm layouts) are built once per module, with a
small input size (resize 64, crop 56) so that the whole file stays well under a minute on a CPU.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbam_viz.cli import main as cli
from cbam_viz.vocab import PAPER_LINEUP
from tests.helpers.cards import FLOWERS, write_labels

ROOT = Path(__file__).resolve().parent.parent
# in the card's order, which is not the paper's: the summary, the table and the figures keep it
MODELS = (
    ("cbam_flowers", "cbam_resnet50", "Flowers fine-tune, CBAM"),
    ("resnet_flowers", "resnet50", "Flowers fine-tune, plain"),
    ("se_flowers", "se_resnet50", "Flowers fine-tune, SE"),
)
TITLES = {model_id: title for model_id, _, title in MODELS}


@dataclass
class Setup:
    card: Path
    weights_dir: Path
    data: Path
    out: Path  # the CLI's study of ``data`` with ``card``
    run: subprocess.CompletedProcess[str]
    files: dict[str, str]  # model id -> its checkpoint's path


def _card_text(files: dict[str, str], labels: str = "labels.txt") -> str:
    tables = []
    for model_id, _, title in MODELS:
        tables.append(
            f'[[model]]\nid = "{model_id}"\nfile = "{files[model_id]}"\ntitle = "{title}"\nlabels = "{labels}"\n'
            '[model.preprocess]\nresize = 64\ncrop = 56\ninterpolation = "bilinear"\n'
        )
    return "\n".join(tables)


def _python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _flowers(root: Path, classes: tuple[str, ...] = FLOWERS) -> Path:
    """Two small pictures per class, each with a box in boxes.csv."""
    rng = np.random.default_rng(3)
    rows = []
    for name in classes:
        (root / name).mkdir(parents=True)
        for stem in ("a", "b"):
            pixels = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{stem}.png")
            rows.append(f"{name}/{stem}.png,20,10,60,50")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, card_files: list) -> Setup:
    from cbam_viz.weights.card import read_card

    base = tmp_path_factory.mktemp("study-cards")
    folder = base / "card"
    folder.mkdir()
    built = {one.id: str(one.path) for one in card_files}  # conftest's checkpoints, built once a run
    write_labels(folder)
    card = folder / "models.toml"
    card.write_text(_card_text(built), encoding="utf-8")
    weights_dir = base / "weights"
    read_card(card, weights_dir)  # converted once: every run below reads the safetensors
    data = _flowers(base / "flowers")
    out = base / "study"
    command = ["-m", "cbam_viz", "study", str(data), "--models-file", str(card), "--out", str(out)]
    run = _python(*command, "--weights-dir", str(weights_dir), "--batch-size", "10", "--quiet")
    return Setup(card, weights_dir, data, out, run, built)


def test_a_card_study_is_keyed_by_the_card_s_ids_and_named_by_its_titles(setup: Setup) -> None:
    assert setup.run.returncode == 0, setup.run.stderr
    assert "studied 10 of 10 image(s)" in setup.run.stdout
    assert all(title in setup.run.stdout for title in TITLES.values())  # the CLI's table names the card's models
    summary = json.loads((setup.out / "summary.json").read_text())
    assert list(summary["models"]) == [model_id for model_id, _, _ in MODELS]
    for model_id, family, title in MODELS:
        block = summary["models"][model_id]
        assert (block["family"], block["title"]) == (family, title)
        assert block["published"] is None  # nothing an ImageNet publisher reported applies to a card's model
        assert ("spatial" in block) == (family == "cbam_resnet50")  # by the family, not by the id
        assert block["images"] == 10 and block["localised"] == 10
    assert set(summary["comparisons"]) == {
        "cbam_flowers|resnet_flowers",
        "cbam_flowers|se_flowers",
        "se_flowers|resnet_flowers",
    }  # the model with more attention first
    assert set(summary["atlas"]) == {"cbam_flowers", "se_flowers"}
    assert set(summary["per_class"]) == set(FLOWERS)
    assert all(summary["per_class"][name]["se_flowers"]["n"] == 2 for name in FLOWERS)
    for name in ("accuracy", "localisation", "atlas", "excitation"):
        assert (setup.out / f"figure-{name}.png").is_file()
    assert summary["study"]["weights"] == str(setup.card.resolve())


def test_the_same_card_named_from_elsewhere_continues_the_same_study(setup: Setup) -> None:
    again = _python(
        "-m", "cbam_viz", "study", str(setup.data), "--models-file", "models.toml", "--out", str(setup.out),
        "--weights-dir", str(setup.weights_dir), "--quiet", cwd=setup.card.parent,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "studied 10 of 10 image(s)" in again.stdout


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert cli.main(["study", *argv]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: "), error
    return error


def test_a_class_folder_the_card_does_not_name_is_one_line(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _flowers(tmp_path / "data", ("daisy", "orchid"))
    out = tmp_path / "out"
    error = _refused(
        capsys, str(data), "--models-file", str(setup.card), "--out", str(out), "--weights-dir", str(setup.weights_dir)
    )
    assert "'orchid'" in error and "matches no class" in error
    assert not out.exists()


def test_a_card_with_weights_and_a_broken_card_are_one_line(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--out", str(tmp_path / "out"), "--weights-dir", str(setup.weights_dir)]
    error = _refused(capsys, str(setup.data), "--models-file", str(setup.card), "--weights", "demo", *common)
    assert "--models-file" in error and "--weights" in error
    broken = setup.card.parent / "four.toml"  # the same checkpoints, with a labels file one name short
    (setup.card.parent / "four.txt").write_text("".join(f"{name}\n" for name in FLOWERS[:4]), encoding="utf-8")
    broken.write_text(_card_text(setup.files, labels="four.txt"), encoding="utf-8")
    error = _refused(capsys, str(setup.data), "--models-file", str(broken), *common)
    assert "cbam_flowers" in error and "5" in error and "4" in error
    error = _refused(capsys, str(setup.data), "--models", "resnet50", "--models-file", str(setup.card), *common)
    assert "unknown model 'resnet50'" in error and "cbam_flowers" in error  # --models names the card's ids
    error = _refused(capsys, str(setup.data), "--models-file", "a/" * 3000 + "models.toml", *common)
    assert "6011 characters long" in error  # the words are checked before any file is looked for
    assert not (tmp_path / "out").exists()


def test_the_app_s_study_section_names_the_card_s_models(setup: Setup) -> None:
    from cbam_viz.ui import study as studies

    shelf = studies.Shelf.of([setup.out], bundled=None)
    study = shelf.open(shelf.first())
    assert study.models == [model_id for model_id, _, _ in MODELS]
    table = studies.summary_table(study)
    assert all(f"| {title} |" in table for title in TITLES.values())
    assert "Published" not in table  # no ImageNet figure claimed for the card's models
    assert study.pairs()[0] == "cbam_flowers|resnet_flowers"  # CBAM against the plain model leads
    words = studies.all_comparison_words(study)
    assert f"{TITLES['cbam_flowers']}'s map points at the object" in words and TITLES["resnet_flowers"] in words
    assert "the baseline" not in words
    pairs = (("cbam_flowers", "resnet_flowers"), ("cbam_flowers", "se_flowers"), ("se_flowers", "resnet_flowers"))
    expected = {f"{TITLES[first]} / {TITLES[second]}": f"{first}|{second}" for first, second in pairs}
    assert dict(studies.pair_choices(study)) == expected
    per_class = studies.per_class_table(study)
    assert all(f"| {name} |" in per_class for name in FLOWERS) and TITLES["se_flowers"] in per_class
    assert "models.toml" in studies.about(study) and str(setup.card.parent) not in studies.about(study)
    drawn = studies.figures(study)
    assert set(drawn) == {"accuracy", "localisation", "atlas", "excitation"}
    ids = [model_id for model_id, _, _ in MODELS]
    assert studies.analysis_settings(study, ["auto"], offered=ids)["models"] == ids
    assert "models" not in studies.analysis_settings(study, ["auto"], offered=PAPER_LINEUP.ids)  # not this server's


def test_a_ray_actor_loads_its_card_model_from_the_card_s_path(setup: Setup) -> None:
    """What each ``--engine ray`` actor does with the weights string it is given: no Ray needed to check it."""
    from cbam_viz.study import measure, sources
    from cbam_viz.study.ray_engine import ModelRows

    actor = ModelRows(
        "se_flowers",
        weights=str(setup.card.resolve()),
        weights_dir=setup.weights_dir,
        device="cpu",
        method="gradcam",
        stage=4,
        categories=FLOWERS,
    )
    (model,) = actor.models.values()
    assert list(actor.models) == ["se_flowers"] and model.weights_info.title == TITLES["se_flowers"]
    item = sources.folder_items(setup.data, FLOWERS, limit=None, per_class=None)[0]
    prepared = measure.prepare(sources.load(item), [model.weights_info.preprocess], "crop")
    record = actor({"batch": np.array([0]), "prepared": np.array([pickle.dumps([prepared])], dtype=object)})
    (measured,) = pickle.loads(record["rows|se_flowers"][0])
    assert measured.rows["se_flowers"]["label_name"] == item.image_id.split("/")[0]
    assert set(measured.channel) == {"se_flowers"}  # an SE model: its gates go to the atlas
