"""Weights registry, "auto" resolution, the demo set, registry entries converted once, and the weights CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cbam_viz.analysis.models import get_models
from cbam_viz.cli import main as cli
from cbam_viz.demo.shapes import CLASSES
from cbam_viz.errors import WeightsError
from cbam_viz.model.resnet import ARCHS, build_resnet
from cbam_viz.weights.convert import LAYOUTS, save_project_safetensors
from cbam_viz.weights.demo_set import model_record, write_demo_metadata
from cbam_viz.weights.files import converted_path, record_download
from cbam_viz.weights.load import load_model, resolve_weights
from cbam_viz.weights.registry import DEFAULT_SET, ENTRIES, SETS, Preprocess
from tests.helpers.checkpoint_layouts import official_cbam_tensors, save_official
from tests.helpers.models import NARROW, TINY

DEMO_CONFIG = TINY.with_(last_stage_stride=1)
DEMO_PREPROCESS = {
    "resize": 96,
    "crop": None,
    "interpolation": "bilinear",
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: one torch thread for the whole module


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
        params = sum(p.numel() for p in model.parameters())
        models[arch] = model_record(path, params=params, metrics={"top1": 0.9 + index / 100, "pointing_game": 0.8})
    write_demo_metadata(
        demo,
        classes=list(CLASSES),
        input_size=96,
        preprocess=DEMO_PREPROCESS,
        arch_config={"stride_in": "conv2", "stem_pool": "none", "last_stage_stride": 1, "base_width": 8},
        recipe={"image_size": 96},
        heldout={"images": 10},
        models=models,
    )
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
        assert entry.urls and all(url.startswith("https://") for url in entry.urls)  # no plain-HTTP host left
        for source in entry.sources:
            assert source.filename and "/" not in source.filename and "?" not in source.filename
            assert source.layout in LAYOUTS and source.kind in ("http", "drive", "huggingface")
            assert source.manual_page.startswith("https://") and source.origin
        assert entry.preprocess.crop == 224 and entry.preprocess.resize >= 224
        assert entry.preprocess.interpolation in ("bilinear", "bicubic")
        assert len(entry.categories) == 1000 == entry.num_classes
        assert entry.metrics and all(50 < value < 100 for value in entry.metrics.values())
        assert entry.license and entry.citation and entry.title
    assert ENTRIES["resnet50.tv_v1"].categories[:2] == ("tench", "goldfish")
    hub_files = [
        source.filename for entry in ENTRIES.values() for source in entry.sources if source.kind == "huggingface"
    ]
    assert (
        len(set(hub_files)) == len(hub_files) and "model.safetensors" not in hub_files
    )  # every hub file is model.safetensors


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
        for source in entry.sources:
            if source.sha256_prefix:
                assert re.search(rf"-{source.sha256_prefix}\.pth$", source.filename)
            if source.sha256:
                assert source.sha256.startswith(source.sha256_prefix or "") and len(source.sha256) == 64
            if source.layout == "pytorchcv":
                assert source.sha1 and source.filename.endswith(f"-{source.sha1[:8]}.pth.zip")
                assert len(source.sha1) == 40
    # V2's full sha256 is published; V1's is not certain, so only the prefix in its name is checked.
    assert ENTRIES["resnet50.tv_v2"].sources[0].sha256 == (
        "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca"
    )
    assert ENTRIES["resnet50.tv_v1"].sources[0].sha256 is None
    assert ENTRIES["resnet50.tv_v1"].sources[0].sha256_prefix == "0676ba61"


def test_sources_are_in_the_documented_order() -> None:
    def hosts(name: str) -> list[str]:
        return [source.url.split("/")[2] for source in ENTRIES[name].sources]

    official = ENTRIES["cbam_resnet50.official"]
    assert hosts(official.name) == ["drive.google.com", "github.com", "www.dropbox.com"]
    assert official.sources[0].kind == "drive" and "1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO" in official.sources[0].url
    assert official.sources[1].url.endswith("/v0.0.125/cbam_resnet50-0605-a1172fe6.pth.zip")
    assert official.sources[1].sha1 == "a1172fe679622224dcc88c00020936ad381806fb"
    assert [source.layout for source in official.sources] == ["official_cbam", "pytorchcv", "official_cbam"]
    assert hosts("resnet50.tv_v1") == ["download.pytorch.org", "huggingface.co"]
    assert ENTRIES["resnet50.tv_v1"].sources[1].url == (
        "https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors"
    )
    assert ENTRIES["resnet50.tv_v1"].sources[1].origin == "huggingface.co (timm/resnet50.tv_in1k)"
    assert hosts("se_resnet50.caffe") == ["github.com", "data.lip6.fr", "huggingface.co"]
    caffe = ENTRIES["se_resnet50.caffe"].sources
    assert caffe[0].url.endswith(
        "rwightman/pytorch-image-models/releases/download/v0.1-cadene/se_resnet50-ce0d4300.pth"
    )
    assert caffe[1].url == "https://data.lip6.fr/cadene/pretrainedmodels/se_resnet50-ce0d4300.pth"
    assert caffe[2].url.endswith("/timm/legacy_seresnet50.in1k/resolve/main/model.safetensors")


@pytest.mark.parametrize(
    ("timm_name", "entry_name"), [("resnet50", "resnet50.tv_v1"), ("legacy_seresnet50", "se_resnet50.caffe")]
)
def test_hugging_face_sources_declare_timm_key_names(timm_name: str, entry_name: str) -> None:
    """timm's state_dict keys are the layout of its Hugging Face files: the declared layout must rename them to ours."""
    timm = pytest.importorskip("timm")
    entry = ENTRIES[entry_name]
    source = next(source for source in entry.sources if source.kind == "huggingface")
    keys = timm.create_model(timm_name, pretrained=False).state_dict()
    renamed = LAYOUTS[source.layout].rename(dict(keys))
    ours = build_resnet(entry.arch, dataclasses.replace(entry.config, base_width=8)).state_dict()
    assert set(renamed) == set(ours)
    assert LAYOUTS[source.layout].detect(keys)


def test_archs_follow_the_layouts() -> None:
    assert ENTRIES["se_resnet50.caffe"].config.stride_in == "conv1"
    assert ENTRIES["se_resnet50.caffe"].config.stem_pool == "ceil"
    assert ENTRIES["resnet50.pytorchcv_v1"].config.stride_in == "conv1"
    for name in ("resnet50.tv_v1", "cbam_resnet50.official", "cbam_resnet50.pytorchcv", "se_resnet50.pytorchcv_b"):
        assert ENTRIES[name].config.stride_in == "conv2" and ENTRIES[name].config.stem_pool == "pad"


# ------------------------------------------------------------------------------------------------------- resolve


def test_auto_uses_the_demo_set_when_imagenet_weights_are_missing(root: Path) -> None:
    choice = resolve_weights("auto", root)
    assert (choice.kind, choice.name, choice.is_demo, choice.requested) == ("demo", "demo", True, "auto")
    assert choice.note.startswith("auto: ImageNet weights missing (3 of 3 files not under ")
    assert "using demo; `python -m cbam_viz weights download paper` gets them" in choice.note
    assert "\n" not in choice.note and "train-demo" in choice.source


def test_a_choice_is_resolved_once_and_passed_through(root: Path) -> None:
    choice = resolve_weights("auto", root)
    assert resolve_weights(choice, root) is choice
    model = load_model("resnet50", choice, weights_dir=root, device="cpu")
    assert model.weights_info.is_demo and model.weights_info.origin == "trained here by `python -m cbam_viz train-demo`"
    models = get_models(["resnet50"], choice, "cpu", weights_dir=root)
    assert models.weights is choice
    assert (models.weights_set, models.weights_note) == ("demo", choice.note)
    entry = resolve_weights("cbam_resnet50.demo", root)
    assert (entry.kind, entry.name, entry.is_demo) == ("demo", "cbam_resnet50.demo", True)
    file_choice = resolve_weights(str(root / "demo" / "resnet50.safetensors"), root)
    assert (file_choice.kind, file_choice.is_demo) == ("file", False) and file_choice.name.endswith(
        "resnet50.safetensors"
    )


@pytest.fixture
def small_hand_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The V1 and official CBAM entries at 1/8 width, V1 without the prefix check: small files can be valid ones."""
    v1 = ENTRIES["resnet50.tv_v1"]
    sources = tuple(dataclasses.replace(source, sha256_prefix=None) for source in v1.sources)
    monkeypatch.setitem(ENTRIES, v1.name, dataclasses.replace(v1, sources=sources, config=NARROW))
    official = ENTRIES["cbam_resnet50.official"]
    monkeypatch.setitem(ENTRIES, official.name, dataclasses.replace(official, config=NARROW))


@pytest.mark.usefixtures("small_hand_placed")
def test_auto_uses_the_paper_set_only_when_all_its_files_are_present_and_load(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    (imagenet / "resnet50-0676ba61.pth").write_bytes(b"raw download")
    (imagenet / "se_resnet50.caffe.safetensors").write_bytes(b"converted")
    (imagenet / "RESNET50_CBAM_new_name_wrap.pth").write_bytes(b"raw download")
    junk = resolve_weights("auto", root)  # files that are no checkpoints do not count as present
    assert junk.name == "demo" and "(2 of 3 files missing or broken under " in junk.note
    assert "; broken: resnet50-0676ba61.pth, RESNET50_CBAM_new_name_wrap.pth), using demo" in junk.note
    torch.save(build_resnet("resnet50", NARROW).state_dict(), imagenet / "resnet50-0676ba61.pth")
    (imagenet / "RESNET50_CBAM_new_name_wrap.pth").unlink()
    assert resolve_weights("auto", root).name == "demo"
    assert "1 of 3 files not under" in resolve_weights("auto", root).note
    save_official(
        imagenet / "RESNET50_CBAM_new_name_wrap.pth", official_cbam_tensors(width=8), extras=True, legacy=False
    )
    choice = resolve_weights("auto", root)
    assert (choice.kind, choice.name, choice.is_demo) == ("set", "paper", False) and "found" in choice.note
    assert "resnet50.tv_v1 put there by hand" in choice.source
    assert "cbam_resnet50.official put there by hand" in choice.source
    model = load_model("resnet50", "paper", weights_dir=root, device="cpu")
    assert model.weights_info.description.endswith("top-1 76.1%, put there by hand")


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
    entry = dataclasses.replace(ENTRIES["cbam_resnet50.official"], config=NARROW)
    monkeypatch.setitem(ENTRIES, entry.name, entry)


@pytest.mark.usefixtures("small_official")
def test_registry_entry_is_converted_once_then_read_from_safetensors(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    raw = save_official(
        imagenet / "RESNET50_CBAM_new_name_wrap.pth", official_cbam_tensors(width=8), extras=True, legacy=True
    )
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    record_download(
        raw.name, hashlib.sha256(raw.read_bytes()).hexdigest(), ENTRIES["cbam_resnet50.official"].sources[0], root
    )
    first = load_model("cbam_resnet50", "cbam_resnet50.official", weights_dir=root, device="cpu")
    assert first.weights_info.origin == "drive.google.com"
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
    assert len(info.categories) == 1000 and info.preprocess.crop == 224 and info.origin == "drive.google.com"
    assert info.description == (  # each model's header names the source that served its file
        "ImageNet weights: CBAM-ResNet-50, official release (Woo et al.), top-1 77.6%, from drive.google.com"
    )
    with torch.no_grad():
        torch.testing.assert_close(again(image), first(image), rtol=0, atol=0)
    assert _files(imagenet) == ["SHA256SUMS", "cbam_resnet50.official.safetensors", "origins.json"]


def test_entry_of_another_arch_is_refused(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    (imagenet / "RESNET50_CBAM_new_name_wrap.pth").write_bytes(b"present")
    with pytest.raises(WeightsError, match="holds cbam_resnet50 weights, not se_resnet50"):
        load_model("se_resnet50", "cbam_resnet50.official", weights_dir=root)


def test_raw_file_with_the_wrong_hash_is_refused_and_nothing_is_written(root: Path) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    torch.save(build_resnet("resnet50", NARROW).state_dict(), imagenet / "resnet50-0676ba61.pth")
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
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("cbam_viz.cli.weights",))
    return cli.main(list(argv))


def test_cli_list_shows_entries_sets_and_the_auto_choice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], demo_root: Path
) -> None:
    assert _run_cli(monkeypatch, "weights", "list", "--weights-dir", str(demo_root)) == 0
    out = capsys.readouterr().out
    assert "auto: ImageNet weights missing (3 of 3 files not under" in out
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
    torch.save(build_resnet("resnet50", NARROW).state_dict(), source)
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


HELP_IMPORTS = """
import runpy, sys
sys.argv = ["python -m cbam_viz", *sys.argv[1:]]
try:
    runpy.run_module("cbam_viz", run_name="__main__", alter_sys=True)
except SystemExit as done:
    code = done.code
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "safetensors", "timm"))
print("exit", code, "weights_cli" if "cbam_viz.cli.weights" in sys.modules else "-", "heavy:", *heavy[:5])
"""


@pytest.mark.parametrize("action", [[], ["download"], ["list"]])
def test_weights_help_does_not_import_torch(action: list[str]) -> None:
    """In a child process (this one has torch loaded): ``weights --help`` leaves torch out of ``sys.modules``."""
    argv = [sys.executable, "-c", HELP_IMPORTS, "weights", *action, "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert "usage: python -m cbam_viz weights" in done.stdout, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "exit 0 weights_cli heavy:"


def test_cli_list_shows_sources_hashes_origins_and_the_manual_fallback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    v1 = ENTRIES["resnet50.tv_v1"]
    monkeypatch.setitem(ENTRIES, v1.name, dataclasses.replace(v1, config=NARROW))
    hub = v1.sources[1]
    state = {key: value.contiguous() for key, value in build_resnet("resnet50", NARROW).state_dict().items()}
    save_file(state, str(imagenet / hub.filename))
    sha256 = hashlib.sha256((imagenet / hub.filename).read_bytes()).hexdigest()
    record_download(hub.filename, sha256, hub, root)
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_MIRROR", "http://lab-server.example:8000/")
    assert _run_cli(monkeypatch, "weights", "list", "--weights-dir", str(root)) == 0
    out = capsys.readouterr().out
    assert "mirror first (CBAM_VIZ_WEIGHTS_MIRROR): http://lab-server.example:8000/<file name> (each source's" in out
    assert re.search(r"^  resnet50.tv_v1\s+downloaded\s", out, re.MULTILINE)
    assert "source 1: https://download.pytorch.org/models/resnet50-0676ba61.pth  (resnet50-0676ba61.pth" in out
    assert "source 2: https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors" in out
    assert f"file: {hub.filename}  sha256 {sha256}  from huggingface.co (timm/resnet50.tv_in1k)" in out
    assert "SHA256SUMS" in out and (imagenet / "SHA256SUMS").read_text() == f"{sha256}  {hub.filename}\n"
    manual = re.search(r"by hand: cbam_resnet50.official: download (\S+) from (\S+) and put it in (\S+)/$", out, re.M)
    assert manual and manual.groups()[:2] == (
        "RESNET50_CBAM_new_name_wrap.pth",
        "https://drive.google.com/file/d/1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO/view",
    )
    assert manual.group(3).endswith("imagenet")
    assert out.count("by hand: ") == len(ENTRIES) - 1


def test_cli_list_says_a_junk_file_put_there_by_hand_is_broken_with_its_sha256(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    (imagenet / "RESNET50_CBAM_new_name_wrap.pth").write_bytes(b"junk\n")
    assert _run_cli(monkeypatch, "weights", "list", "--weights-dir", str(root)) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  cbam_resnet50.official\s+broken\s", out, re.MULTILINE)
    assert "downloaded" not in out and "from put there by hand" not in out
    sha256 = hashlib.sha256(b"junk\n").hexdigest()
    assert (
        f"file: RESNET50_CBAM_new_name_wrap.pth  sha256 {sha256} (computed now: not recorded at download)  "
        "put there by hand\n" in out
    )
    [broken] = re.findall(r"^      broken: .*$", out, re.MULTILINE)
    assert broken.startswith("      broken: not a cbam_resnet50 checkpoint in official_cbam layout (cannot read ")
    assert broken.endswith(
        "; `python -m cbam_viz weights download cbam_resnet50.official` sets it aside and fetches it again"
    )
    assert re.search(r"paper\s+0/3 present", out)


@pytest.mark.usefixtures("small_official")
def test_cli_list_shows_the_sha256_of_a_converted_entry_whose_original_is_gone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    imagenet = root / "imagenet"
    imagenet.mkdir()
    raw = save_official(
        imagenet / "RESNET50_CBAM_new_name_wrap.pth", official_cbam_tensors(width=8), extras=True, legacy=False
    )
    sha256 = hashlib.sha256(raw.read_bytes()).hexdigest()
    load_model("cbam_resnet50", "cbam_resnet50.official", weights_dir=root, device="cpu")  # converts it
    raw.unlink()
    assert _run_cli(monkeypatch, "weights", "list", "--weights-dir", str(root)) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  cbam_resnet50.official\s+converted\s", out, re.MULTILINE)
    assert (
        f"      converted put there by hand; original RESNET50_CBAM_new_name_wrap.pth (gone) had sha256 {sha256}\n"
        in out
    )


def test_the_readme_tells_how_to_get_each_paper_file_by_hand() -> None:
    """The README's manual table says what ``weights list`` says: page, file name and folder of each paper file."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Which weights?", 1)[1].split("\n## ", 1)[0]
    for name in SETS["paper"].values():
        first = ENTRIES[name].sources[0]
        assert f"| `{first.filename}` | {first.manual_page} | `weights/imagenet/` |" in section
    assert "CBAM_VIZ_WEIGHTS_MIRROR=" in section and "CBAM_VIZ_OFFLINE=1" in section and "--offline" in section
