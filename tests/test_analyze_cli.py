"""``python -m cbam_viz analyze``: every output file per image, one-line errors for bad files, exit codes."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbam_viz import pipeline as analysis
from cbam_viz.analysis.cam import GRADCAM_CLASSES
from cbam_viz.analysis.schema import ANALYSIS_JSON_SCHEMA
from cbam_viz.cli import analyze as analyze_cli
from cbam_viz.cli import main as cli
from cbam_viz.demo.shapes import render_sample
from cbam_viz.model.resnet import ARCHS
from cbam_viz.vocab import ARCH_TITLES
from cbam_viz.weights import files as weights
from tests.helpers.models import random_model, write_demo_set
from tests.helpers.schema import validate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with a demo set of random 1/8-width models at 48 px, in the real demo set's layout."""
    models = {arch: random_model(arch, seed) for seed, arch in enumerate(ARCHS)}
    return write_demo_set(tmp_path_factory.mktemp("weights"), models, resize=48)


@pytest.fixture()
def use_demo_root(demo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(weights, "WEIGHTS_DIR", demo_root)
    return demo_root


def write_image(path: Path, width: int, height: int, seed: int = 3, exif_orientation: int | None = None) -> None:
    pixels = render_sample(seed, 0, width, height).image
    if exif_orientation == 6:  # stored turned, EXIF says "rotate 90 CW to view": upright it is width x height
        stored = Image.fromarray(np.ascontiguousarray(np.rot90(pixels, k=1)))
        exif = Image.Exif()
        exif[0x0112] = 6
        stored.save(path, exif=exif)
    else:
        Image.fromarray(pixels).save(path)


def test_the_subcommand_is_registered_and_lists_the_engines_methods() -> None:
    assert tuple(analyze_cli.CAM_METHODS) == tuple(GRADCAM_CLASSES)
    args = cli.build_parser().parse_args(["analyze", "a.png", "b", "--out", "o", "--stage", "2", "--faithfulness"])
    assert (args.func, args.inputs, args.stage, args.faithfulness, args.view) == (
        analyze_cli.run,
        ["a.png", "b"],
        2,
        True,
        "whole",
    )


def test_folder_with_a_bad_file_writes_everything_for_the_good_ones(
    use_demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "wide.png", 90, 60)
    write_image(folder / "turned.jpg", 60, 80, exif_orientation=6)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    out = tmp_path / "out"
    code = cli.main(["analyze", str(folder), "--out", str(out), "--weights", "demo"])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert "Traceback" not in captured.err
    assert captured.out.startswith("weights: demo - demo set requested")
    assert "analysed 2 of 3 images into" in captured.out
    assert not (out / "broken.json").exists() and not (out / "notes.json").exists()
    for stem, size in (("wide", (90, 60)), ("turned", (60, 80))):
        assert Image.open(out / f"{stem}.png").format == "PNG"
        document = json.loads((out / f"{stem}.json").read_text())
        assert (document["image"]["width"], document["image"]["height"]) == size
        assert document["source"].endswith(stem + (".png" if stem == "wide" else ".jpg"))
        assert list(document["models"]) == list(ARCHS)
        assert set(document) <= set(ANALYSIS_JSON_SCHEMA["properties"])
        assert set(ANALYSIS_JSON_SCHEMA["required"]) <= set(document)
        assert not (out / stem).exists()  # the default is one compressed file of native maps, not 19 big arrays
        with np.load(out / f"{stem}.npz") as maps:
            cam = maps["cbam_resnet50_cam"]
            summary = document["models"]["cbam_resnet50"]["cam"]
            assert cam.shape == (summary["height"], summary["width"]) and cam.dtype == np.float32
            assert float(cam.max()) == pytest.approx(summary["max"], rel=1e-5)
            spatial = [key for key in maps.files if key.startswith("cbam_resnet50_spatial_layer")]
            assert len(spatial) == 16 and maps["cbam_resnet50_spatial_layer4.2"].ndim == 2
            assert maps["se_resnet50_channel_layer4.2"].shape == (8 * 8 * 4,)
            assert not [k for k in maps.files if k.startswith("resnet50_channel_") or k.startswith("se_resnet50_spa")]
            listed = [name for names in document["maps"].values() for name in names]
            assert sorted(listed) == sorted(f"{stem}.npz:{key}" for key in maps.files)
            assert document["maps"]["resnet50"] == [f"{stem}.npz:resnet50_cam"]
    assert Image.open(folder / "turned.jpg").size == (80, 60)  # stored sideways; the maps above are upright
    direct = analysis.analyze(io.BytesIO((folder / "wide.png").read_bytes()), weights="demo").to_json()
    document = json.loads((out / "wide.json").read_text())
    assert document["models"] == direct["models"] and document["agreement"] == direct["agreement"]
    top1 = [line for line in captured.out.splitlines() if line.startswith(("wide.png:", "turned.jpg:"))]
    assert len(top1) == 2
    for line in top1:
        name = line.split(":", 1)[0]
        models = json.loads((out / f"{Path(name).stem}.json").read_text())["models"]
        expected = " | ".join(
            f"{ARCH_TITLES[arch]} {models[arch]['top5'][0]['label']} {models[arch]['top5'][0]['prob']:.2f}"
            for arch in ARCHS
        )
        assert line == f"{name}: {expected}"


def test_full_resolution_maps_are_an_option(use_demo_root: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "turned.jpg", 60, 80, exif_orientation=6)
    out = tmp_path / "out"
    assert (
        cli.main(["analyze", str(tmp_path / "turned.jpg"), "--out", str(out), "--weights", "demo", "--maps", "image"])
        == 0
    )
    stem, size = "turned", (60, 80)
    document = json.loads((out / f"{stem}.json").read_text())
    cam = np.load(out / stem / "cbam_resnet50_cam.npy")
    assert cam.shape == (size[1], size[0]) and cam.dtype == np.float32 and np.nanmin(cam) >= 0
    spatial = sorted((out / stem).glob("cbam_resnet50_spatial_layer*.npy"))
    assert len(spatial) == 16 and np.load(out / stem / "cbam_resnet50_spatial_layer3.2.npy").shape == cam.shape
    assert np.load(out / stem / "se_resnet50_channel_layer4.2.npy").shape == (8 * 8 * 4,)
    assert not list((out / stem).glob("resnet50_channel_*")) and not list((out / stem).glob("se_*_spatial_*"))
    listed = {name for names in document["maps"].values() for name in names}
    assert listed == {f"{stem}/{p.name}" for p in (out / stem).iterdir()}
    assert not (out / f"{stem}.npz").exists()


def test_options_reach_the_engine_and_maps_can_be_native_or_skipped(use_demo_root: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 64, 64)
    write_image(tmp_path / "a.jpg", 64, 64, seed=4)
    out = tmp_path / "out"
    args = [
        "analyze",
        str(tmp_path / "a.png"),
        str(tmp_path / "a.jpg"),
        "--out",
        str(out),
        "--weights",
        "demo",
        "--models",
        "cbam_resnet50",
        "--method",
        "layercam",
        "--target",
        "ring",
        "--stage",
        "3",
        "--view",
        "crop",
        "--maps",
        "native",
    ]
    assert cli.main(args) == 0
    document = json.loads((out / "a.json").read_text())
    assert (document["method"], document["stage"], document["view"]["mode"]) == ("layercam", 3, "crop")
    assert list(document["models"]) == ["cbam_resnet50"]
    assert document["models"]["cbam_resnet50"]["target"]["label"] == "ring"
    assert np.load(out / "a" / "cbam_resnet50_cam.npy").shape == (6, 6)  # native: 48 px crop, stage 3 stride 8
    assert (out / "a_jpg.json").is_file() and (out / "a_jpg" / "cbam_resnet50_cam.npy").is_file()  # no overwrite
    bare = [
        "analyze",
        str(tmp_path / "a.png"),
        "--out",
        str(tmp_path / "bare"),
        "--weights",
        "demo",
        "--models",
        "resnet50",
        "--maps",
        "none",
    ]
    assert cli.main(bare) == 0
    assert not (tmp_path / "bare" / "a").exists() and (tmp_path / "bare" / "a.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "octagon"], "error: unknown target class 'octagon'"),
        (["--method", "gradcam+"], "error: unknown CAM method 'gradcam+'"),
        (["--models", "vgg16"], "error: unknown model 'vgg16'"),
    ],
)
def test_bad_options_stop_before_any_work(
    use_demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    write_image(tmp_path / "x.png", 48, 48)
    code = cli.main(["analyze", str(tmp_path / "x.png"), "--out", str(tmp_path / "out"), "--weights", "demo", *extra])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.strip().startswith(message) and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "x.json").exists()


def test_missing_inputs_are_reported_and_fail_the_run(
    use_demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image(tmp_path / "ok.png", 48, 48)
    (tmp_path / "empty").mkdir()
    code = cli.main(
        [
            "analyze",
            str(tmp_path / "ok.png"),
            str(tmp_path / "nope.png"),
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "out"),
            "--weights",
            "demo",
            "--models",
            "resnet50",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "nope.png: no such file or folder" in err and "empty: no images in this folder" in err
    assert (tmp_path / "out" / "ok.json").is_file()


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [["--help"], ["analyze", "--help"]])
def test_help_is_plain_text_and_imports_no_torch(argv: list[str]) -> None:
    shown = _python("-m", "cbam_viz", *argv)
    assert shown.returncode == 0, shown.stderr
    assert "``" not in shown.stdout and "usage: python -m cbam_viz" in shown.stdout
    if argv == ["--help"]:
        assert "compare ResNet-50, SE-ResNet-50 and CBAM-ResNet-50" in shown.stdout
        assert all(name in shown.stdout for name in cli.SUBCOMMANDS)
    else:
        assert "npz" in shown.stdout and "--maps" in shown.stdout
    probe = (
        "import sys; from cbam_viz.cli import main as cli\n"
        f"try:\n    cli.main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('imported:', sorted(m for m in ('torch', 'gradio', 'PIL', 'numpy') if m in sys.modules))"
    )
    checked = _python("-c", probe)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip().splitlines()[-1] == "imported: []"


def test_the_overview_lists_each_module_s_own_help() -> None:
    """cli.SUBCOMMANDS (what --help shows without importing) says what each module registers."""
    parser = cli.build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    registered = {choice.dest: choice.help for choice in commands._choices_actions}
    assert registered == {name: help_text for name, (_, help_text) in cli.SUBCOMMANDS.items()}
    assert {module for module, _ in cli.SUBCOMMANDS.values()} == set(cli.SUBCOMMAND_MODULES)
    assert cli.requested_command(["analyze", "x.png", "--out", "o"]) == "analyze"
    assert cli.requested_command(["--help"]) == "" and cli.requested_command(["nonsense"]) == ""


def test_interventions_from_the_command_line(use_demo_root: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", 64, 64)
    out = tmp_path / "out"
    base = [sys.executable, "-m", "cbam_viz", "analyze", str(tmp_path / "a.png"), "--out", str(out)]
    done = subprocess.run(
        [*base, "--weights", "demo", "--intervene", "layer3:spatial=one", "sweep"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "a.json").read_text())
    cbam = document["models"]["cbam_resnet50"]
    assert cbam["interventions"][0]["spec"] == "layer3:spatial=one" and len(cbam["sweep"]["entries"]) == 8
    assert document["models"]["se_resnet50"]["interventions"][0]["note"].startswith("SE-ResNet-50 has no spatial")
    with np.load(out / "a.npz") as maps:
        assert maps["cbam_resnet50_cam_layer3_spatial-one"].shape == maps["cbam_resnet50_cam"].shape
    plain = subprocess.run(
        [*base, "--weights", "demo", "--models", "resnet50", "--intervene", "all:channel=one"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 2 and len(plain.stderr.strip().splitlines()) == 1
    assert "ResNet-50 has no attention gates" in plain.stderr


def test_checks_of_the_maps_from_the_command_line(tmp_path: Path) -> None:
    """--box, --sanity and --deletion-insertion: the JSON gains pointing, sanity and deletion_insertion (schema-valid),
    the randomised CAMs join the maps, and the box is in the picture's own pixels (here twice the displayed size)."""
    write_image(tmp_path / "wide.png", 2048, 1024)
    out = tmp_path / "out"
    base = [sys.executable, "-m", "cbam_viz", "analyze", str(tmp_path / "wide.png"), "--out", str(out)]
    done = subprocess.run(
        [*base, "--weights", "demo", "--box", "0,0,1024,1024", "--sanity", "--deletion-insertion"]
        + ["--sanity-draws", "2", "--other-classes", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "wide.json").read_text())
    assert validate(document, ANALYSIS_JSON_SCHEMA) == []
    assert document["image"]["display_width"] == 1024  # the maps lie on a copy half the picture's size
    region = document["pointing"]["region"]
    assert region["box"] == [0.0, 0.0, 1024.0, 1024.0] and abs(region["area_share"] - 0.5) < 0.01
    assert set(document["pointing"]["models"]["cbam_resnet50"]["spatial"]) == {"1", "2", "3", "4"}
    steps = [step["step"] for step in document["sanity"]["models"]["cbam_resnet50"]["cascading"]]
    assert steps == ["fc", "layer4", "layer3", "layer2", "layer1", "stem"]
    assert len(document["sanity"]["models"]["resnet50"]["independent"]) == 6
    assert document["sanity"]["draws"] == 2 and document["sanity"]["other_classes"] == 3
    assert len(document["sanity"]["models"]["se_resnet50"]["random_logit"]["classes"]) == 3
    curves = document["deletion_insertion"]["models"]["se_resnet50"]
    assert len(curves["deletion"]["cam"]["probs"]) == len(document["deletion_insertion"]["fractions"]) == 21
    assert set(curves["insertion"]) == {"cam", "random"}
    with np.load(out / "wide.npz") as maps:
        assert maps["sanity_cbam_resnet50.cascading.stem"].shape == maps["cbam_resnet50_cam"].shape
    assert "wide.npz:sanity_resnet50.random_logit" in document["maps"]["sanity"]
    refused = subprocess.run(
        [*base, "--weights", "demo", "--box", "10,10,5,100"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "x0 < x1 and y0 < y1" in refused.stderr
    refused = subprocess.run(
        [*base, "--sanity", "--sanity-draws", "0"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2 and "expected a whole number >= 1" in refused.stderr.strip().splitlines()[-1]
