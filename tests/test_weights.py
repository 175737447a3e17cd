"""Weights registry, "auto" resolution, the demo set, registry entries converted once, and the weights CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _checkpoint_layouts import official_cbam_tensors, one_torch_thread, save_official
from safetensors.torch import save_file

from cbam_viz import cli
from cbam_viz.convert import LAYOUTS, save_project_safetensors
from cbam_viz.errors import WeightsError
from cbam_viz.resnet import ARCHS, ArchConfig, build_resnet
from cbam_viz.shapes import CLASSES
from cbam_viz.weights import (
    DEFAULT_SET,
    ENTRIES,
    SETS,
    Preprocess,
    converted_path,
    load_model,
    resolve_weights,
)

DEMO_CONFIG = ArchConfig(base_width=8, stem_pool="none", last_stage_stride=1, num_classes=len(CLASSES))
DEMO_PREPROCESS = {
    "resize": 96,
    "crop": None,
    "interpolation": "bilinear",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder holding a demo set like the trained one: small safetensors plus metadata.json."""
    root = tmp_path_factory.mktemp("weights")
    demo = root / "demo"
    demo.mkdir()
    models = {}
    for index, arch in enumerate(ARCHS):
        torch.manual_seed(index)
        model = build_resnet(arch, DEMO_CONFIG)
        path = demo / f"{arch}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"arch": arch})
        models[arch] = {
            "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "size_bytes": path.stat().st_size,
            "params": sum(p.numel() for p in model.parameters()),
            "metrics": {"top1": 0.9 + index / 100, "pointing_game": 0.8},
        }
    metadata = {
        "classes": list(CLASSES),
        "input_size": 96,
        "preprocess": DEMO_PREPROCESS,
        "arch_config": {"stride_in": "conv2", "stem_pool": "none", "last_stage_stride": 1, "base_width": 8},
        "recipe": {"image_size": 96},
        "models": models,
        "heldout": {"images": 10},
    }
    (demo / "metadata.json").write_text(json.dumps(metadata))
    return root


@pytest.fixture
def root(demo_root: Path, tmp_path: Path) -> Path:
    """A private copy of the demo weights folder that a test may change."""
    return Path(shutil.copytree(demo_root, tmp_path / "weights"))


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


# ------------------------------------------------------------------------------------------------------ registry


def test_every_entry_is_complete() -> None:
    assert len(ENTRIES) >= 9
    for name, entry in ENTRIES.items():
        assert name == entry.name and name.split(".")[0] == entry.arch and entry.arch in ARCHS
        assert entry.urls and all(url.startswith(("https://", "http://")) for url in entry.urls)
        assert entry.filename and "/" not in entry.filename and "?" not in entry.filename
        assert entry.layout in LAYOUTS
        assert entry.preprocess.crop == 224 and entry.preprocess.resize >= 224
        assert entry.preprocess.interpolation in ("bilinear", "bicubic")
        assert len(entry.categories) == 1000 == entry.num_classes
        assert entry.metrics and all(50 < value < 100 for value in entry.metrics.values())
        assert entry.license and entry.citation and entry.title
    assert ENTRIES["resnet50.tv_v1"].categories[:2] == ("tench", "goldfish")


def test_sets_name_one_entry_per_architecture() -> None:
    assert DEFAULT_SET == "paper"
    assert SETS["paper"] == {
        "resnet50": "resnet50.tv_v1",
        "se_resnet50": "se_resnet50.caffe",
        "cbam_resnet50": "cbam_resnet50.official",
    }
    for members in SETS.values():
        assert set(members) == set(ARCHS)
        assert all(ENTRIES[entry].arch == arch for arch, entry in members.items())
    assert ENTRIES[SETS["pytorchcv"]["cbam_resnet50"]].urls[0].endswith("/v0.0.537/cbam_resnet50-0505-d8cf8488.pth.zip")


def test_hashes_agree_with_the_file_names() -> None:
    for entry in ENTRIES.values():
        if entry.sha256_prefix:
            assert re.search(rf"-{entry.sha256_prefix}\.pth$", entry.filename)
        if entry.sha256:
            assert entry.sha256.startswith(entry.sha256_prefix or "") and len(entry.sha256) == 64
        if entry.layout == "pytorchcv":
            assert entry.sha1 and entry.filename.endswith(f"-{entry.sha1[:8]}.pth.zip")
    official = ENTRIES["cbam_resnet50.official"]
    assert [url.split("/")[2] for url in official.urls] == ["www.dropbox.com", "drive.usercontent.google.com"]


def test_archs_follow_the_layouts() -> None:
    assert ENTRIES["se_resnet50.caffe"].config.stride_in == "conv1"
    assert ENTRIES["se_resnet50.caffe"].config.stem_pool == "ceil"
    assert ENTRIES["resnet50.pytorchcv_v1"].config.stride_in == "conv1"
    for name in ("resnet50.tv_v1", "cbam_resnet50.official", "cbam_resnet50.pytorchcv", "se_resnet50.pytorchcv_b"):
        assert ENTRIES[name].config.stride_in == "conv2" and ENTRIES[name].config.stem_pool == "pad"


# ------------------------------------------------------------------------------------------------------- resolve


def test_auto_uses_the_demo_set_when_imagenet_weights_are_missing(root: Path) -> None:
    name, reason = resolve_weights("auto", root)
    assert name == "demo"
    assert "not found" in reason and "3 of 3 missing" in reason and "weights download paper" in reason


def test_auto_uses_the_paper_set_only_when_all_its_files_are_present(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    (imagenet / "resnet50-0676ba61.pth").write_bytes(b"raw download")
    (imagenet / "se_resnet50.caffe.safetensors").write_bytes(b"converted")
    assert resolve_weights("auto", root)[0] == "demo"
    assert "1 of 3 missing" in resolve_weights("auto", root)[1]
    (imagenet / "RESNET50_CBAM_new_name_wrap.pth").write_bytes(b"raw download")
    name, reason = resolve_weights("auto", root)
    assert name == "paper" and "found" in reason


def test_explicit_paper_set_without_files_says_how_to_get_them(root: Path) -> None:
    with pytest.raises(WeightsError) as raised:
        resolve_weights("paper", root)
    message = str(raised.value)
    assert "python -m cbam_viz weights download paper" in message
    assert "RESNET50_CBAM_new_name_wrap.pth" in message and "--weights demo" in message
    with pytest.raises(WeightsError, match="weights download paper"):
        load_model("resnet50", "paper", weights_dir=root)


def test_no_weights_at_all_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no weights to load.*train-demo"):
        resolve_weights("auto", tmp_path)


def test_unknown_names_and_missing_paths_are_errors(root: Path) -> None:
    with pytest.raises(WeightsError, match="unknown weights 'imagenet'"):
        resolve_weights("imagenet", root)
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(str(root / "nothing.pth"), root)
    with pytest.raises(WeightsError, match="unknown architecture"):
        load_model("vgg16", "demo", weights_dir=root)


# ---------------------------------------------------------------------------------------------------------- demo


@pytest.mark.parametrize("arch", list(ARCHS))
def test_demo_models_load_frozen_in_eval_mode_with_their_info(demo_root: Path, arch: str) -> None:
    model = load_model(arch, "auto", weights_dir=demo_root, device="cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.config == DEMO_CONFIG.with_(attention=ARCHS[arch])
    info = model.weights_info
    assert (info.arch, info.set_name, info.entry, info.layout, info.is_demo) == (
        arch,
        "demo",
        f"{arch}.demo",
        "project",
        True,
    )
    assert info.categories == CLASSES
    assert info.preprocess == Preprocess(96, None, "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert info.description.startswith("demo weights: ") and "1/8 width, 10 shapes, top-1 9" in info.description
    from safetensors.torch import load_file

    stored = load_file(str(demo_root / "demo" / f"{arch}.safetensors"))
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored[key]), key


def test_demo_file_that_does_not_match_its_sha256_is_refused(root: Path) -> None:
    path = root / "demo" / "cbam_resnet50.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match the sha256"):
        load_model("cbam_resnet50", "demo", weights_dir=root)
    assert load_model("resnet50", "demo", weights_dir=root).weights_info.is_demo


def test_num_classes_comes_from_the_weights(root: Path) -> None:
    assert load_model("resnet50", "demo", weights_dir=root, num_classes=10).config.num_classes == 10
    with pytest.raises(WeightsError, match="10 classes, not the 1000"):
        load_model("resnet50", "demo", weights_dir=root, num_classes=1000)


def test_demo_entry_of_another_arch_is_refused(root: Path) -> None:
    assert load_model("se_resnet50", "se_resnet50.demo", weights_dir=root).weights_info.arch == "se_resnet50"
    with pytest.raises(WeightsError, match="use resnet50.demo"):
        load_model("resnet50", "se_resnet50.demo", weights_dir=root)


# ----------------------------------------------------------------------------------------------- registry entries


@pytest.fixture
def small_official(monkeypatch: pytest.MonkeyPatch) -> None:
    """The official CBAM entry at 1/8 width, so that a test can convert a file in its layout in well under a second."""
    entry = dataclasses.replace(ENTRIES["cbam_resnet50.official"], config=ArchConfig(base_width=8))
    monkeypatch.setitem(ENTRIES, entry.name, entry)


@pytest.mark.usefixtures("small_official")
def test_registry_entry_is_converted_once_then_read_from_safetensors(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    raw = save_official(
        imagenet / "RESNET50_CBAM_new_name_wrap.pth", official_cbam_tensors(width=8), extras=True, legacy=True
    )
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    first = load_model("cbam_resnet50", "cbam_resnet50.official", weights_dir=root, device="cpu")
    converted = converted_path(ENTRIES["cbam_resnet50.official"], root)
    assert first.weights_info.source == str(converted) and converted.is_file()
    raw.unlink()
    again = load_model("cbam_resnet50", "cbam_resnet50.official", weights_dir=root, device="cpu")
    info = again.weights_info
    assert (info.set_name, info.entry, info.layout, info.is_demo) == (
        None,
        "cbam_resnet50.official",
        "official_cbam",
        False,
    )
    assert len(info.categories) == 1000 and info.preprocess.crop == 224
    assert info.description == "ImageNet weights: CBAM-ResNet-50, official release (Woo et al.), top-1 77.6%"
    with torch.no_grad():
        torch.testing.assert_close(again(image), first(image), rtol=0, atol=0)
    assert _files(imagenet) == ["cbam_resnet50.official.safetensors"]


def test_entry_of_another_arch_is_refused(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    (imagenet / "RESNET50_CBAM_new_name_wrap.pth").write_bytes(b"present")
    with pytest.raises(WeightsError, match="holds cbam_resnet50 weights, not se_resnet50"):
        load_model("se_resnet50", "cbam_resnet50.official", weights_dir=root)


def test_raw_file_with_the_wrong_hash_is_refused_and_nothing_is_written(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    torch.save(build_resnet("resnet50", ArchConfig(base_width=8)).state_dict(), imagenet / "resnet50-0676ba61.pth")
    with pytest.raises(WeightsError, match="is not the published resnet50.tv_v1 file.*sha256") as raised:
        load_model("resnet50", "resnet50.tv_v1", weights_dir=root)
    assert "\n" not in str(raised.value)
    assert _files(imagenet) == ["resnet50-0676ba61.pth"]


@pytest.mark.usefixtures("small_official")
def test_truncated_raw_file_is_an_error_and_leaves_no_partial_file(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    raw = save_official(
        imagenet / "RESNET50_CBAM_new_name_wrap.pth", official_cbam_tensors(width=8), extras=False, legacy=False
    )
    raw.write_bytes(raw.read_bytes()[:-5000])
    with pytest.raises(WeightsError, match="truncated or not a checkpoint"):
        load_model("cbam_resnet50", "cbam_resnet50.official", weights_dir=root)
    assert _files(imagenet) == ["RESNET50_CBAM_new_name_wrap.pth"]


# ------------------------------------------------------------------------------------------- project safetensors


def test_project_safetensors_keeps_arch_config_categories_and_preprocess(tmp_path: Path) -> None:
    torch.manual_seed(5)
    source = build_resnet("cbam_resnet50", DEMO_CONFIG).eval()
    preprocess = Preprocess(96, None, "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    path = save_project_safetensors(
        tmp_path / "mine.safetensors", source, "cbam_resnet50", DEMO_CONFIG, CLASSES, preprocess, {"note": "x"}
    )
    assert _files(tmp_path) == ["mine.safetensors"]
    model = load_model("cbam_resnet50", str(path), device="cpu")
    assert model.config == source.config and model.weights_info.categories == CLASSES
    assert model.weights_info.preprocess == preprocess and model.weights_info.layout == "project"
    image = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(image), source(image), rtol=0, atol=0)
    with pytest.raises(WeightsError, match="holds cbam_resnet50 weights, not resnet50"):
        load_model("resnet50", str(path))


# ----------------------------------------------------------------------------------------------------------- CLI


def _run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("cbam_viz.weights_cli",))
    return cli.main(list(argv))


def test_cli_list_shows_entries_sets_and_the_auto_choice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], demo_root: Path
) -> None:
    assert _run_cli(monkeypatch, "weights", "list", "--weights-dir", str(demo_root)) == 0
    out = capsys.readouterr().out
    assert "auto -> demo: ImageNet weights not found" in out
    assert re.search(r"paper\s+0/3 present\s+resnet50.tv_v1, se_resnet50.caffe, cbam_resnet50.official", out)
    assert re.search(r"demo\s+present: 10 classes, 96 px input", out)
    for name in ENTRIES:
        assert re.search(rf"^  {re.escape(name)}\s+missing\s", out, re.MULTILINE)


def test_cli_convert_round_trips(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tensors = official_cbam_tensors(width=8, num_classes=10, batches_tracked=False)
    source = save_official(tmp_path / "RESNET50_CBAM_new_name_wrap.pth", tensors, extras=True, legacy=False)
    out = tmp_path / "converted" / "cbam.safetensors"
    assert _run_cli(monkeypatch, "weights", "convert", str(source), "--arch", "cbam_resnet50", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "detected layout: official_cbam" in printed and "width 8, 10 classes" in printed
    assert _files(out.parent) == ["cbam.safetensors"]
    image = torch.randn(1, 3, 64, 64)
    original = load_model("cbam_resnet50", str(source), device="cpu")
    converted = load_model("cbam_resnet50", str(out), device="cpu")
    assert converted.weights_info.layout == "project" and converted.weights_info.categories == tuple(
        f"class {i}" for i in range(10)
    )
    with torch.no_grad():
        torch.testing.assert_close(converted(image), original(image), rtol=0, atol=0)


def test_cli_convert_errors_are_one_line_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "r.pth"
    torch.save(build_resnet("resnet50", ArchConfig(base_width=8)).state_dict(), source)
    assert (
        _run_cli(
            monkeypatch,
            "weights",
            "convert",
            str(source),
            "--arch",
            "cbam_resnet50",
            "--out",
            str(tmp_path / "o.safetensors"),
        )
        == 2
    )
    error = capsys.readouterr().err
    assert error.startswith("error: r.pth does not fit cbam_resnet50") and error.count("\n") == 1
    assert "load it as resnet50" in error
    assert (
        _run_cli(monkeypatch, "weights", "convert", str(source), "--arch", "resnet50", "--out", str(tmp_path / "o.pth"))
        == 2
    )
    assert "must end in .safetensors" in capsys.readouterr().err
    assert _files(tmp_path) == ["r.pth"]
