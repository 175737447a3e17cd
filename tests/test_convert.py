"""Converters: every published layout loads strictly and gives the logits of the network it came from.

Oracles are the packages that define each layout (torchvision, timm, pytorchcv), with random weights and random
BatchNorm statistics; the official CBAM release has no package, so its layout is built key by key and checked
against a forward pass written here from the CBAM equations with torch.nn.functional only.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from cbam_viz.errors import WeightsError
from cbam_viz.model.resnet import build_resnet
from cbam_viz.weights.convert import detect_layouts, pytorchcv_stride, read_checkpoint
from cbam_viz.weights.load import load_model
from tests.helpers.checkpoint_layouts import (
    official_cbam_tensors,
    randomize_batchnorm,
    reference_cbam_resnet50,
    save_official,
    save_pytorchcv_zip,
)
from tests.helpers.models import NARROW

RELATIVE_TOLERANCE = 1e-5


def _close(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |difference| relative to the largest |expected logit|."""
    return float((actual - expected).abs().max() / expected.abs().max())


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: one torch thread for the whole module


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(7))


def _torchvision() -> nn.Module:
    import torchvision

    return torchvision.models.resnet50()


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


def _pytorchcv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from pytorchcv.model_provider import get_model

        return get_model(name, pretrained=False)

    return build


# oracle id -> (our arch, builder, file name in the oracle's own convention, layout we must detect)
ORACLES: dict[str, tuple[str, Callable[[], nn.Module], str, str]] = {
    "torchvision-resnet50": ("resnet50", _torchvision, "resnet50-0676ba61.pth", "torchvision"),
    "timm-seresnet50": ("se_resnet50", _timm("seresnet50"), "seresnet50_ra_224-8efdb4bb.pth", "timm_seresnet"),
    "timm-legacy_seresnet50": ("se_resnet50", _timm("legacy_seresnet50"), "se_resnet50-ce0d4300.pth", "cadene"),
    "pytorchcv-resnet50b": ("resnet50", _pytorchcv("resnet50b"), "resnet50b-0638-8a5473ef.pth.zip", "pytorchcv"),
    "pytorchcv-seresnet50b": ("se_resnet50", _pytorchcv("seresnet50b"), "seresnet50b-0539-459e6871.pth", "pytorchcv"),
    "pytorchcv-cbam_resnet50": (
        "cbam_resnet50",
        _pytorchcv("cbam_resnet50"),
        "cbam_resnet50-0505-d8cf8488.pth.zip",
        "pytorchcv",
    ),
    "pytorchcv-resnet50-v1": ("resnet50", _pytorchcv("resnet50"), "resnet50-0633-b00d1c8e.pth", "pytorchcv"),
    "pytorchcv-seresnet50-v1": (
        "se_resnet50",
        _pytorchcv("seresnet50"),
        "seresnet50-0575-004bfde4.pth.zip",
        "pytorchcv",
    ),
}


@pytest.fixture(scope="module")
def oracle_files(
    tmp_path_factory: pytest.TempPathFactory, image: torch.Tensor
) -> Callable[[str], tuple[Path, torch.Tensor]]:
    """oracle id -> (its state_dict saved in its own format, its logits); each oracle is built once per module."""
    folder = tmp_path_factory.mktemp("oracles")
    cache: dict[str, tuple[Path, torch.Tensor]] = {}

    def get(oracle_id: str) -> tuple[Path, torch.Tensor]:
        if oracle_id not in cache:
            _, build, file_name, _ = ORACLES[oracle_id]
            torch.manual_seed(sum(map(ord, oracle_id)))
            oracle = randomize_batchnorm(build(), seed=len(oracle_id))
            with torch.no_grad():
                logits = oracle(image)
            path = folder / file_name
            if file_name.endswith(".zip"):
                save_pytorchcv_zip(path, oracle.state_dict())
            else:
                torch.save(oracle.state_dict(), path)
            cache[oracle_id] = (path, logits)
        return cache[oracle_id]

    return get


@pytest.mark.parametrize("oracle_id", list(ORACLES))
def test_oracle_checkpoint_gives_the_oracle_logits(
    oracle_id: str, oracle_files: Callable[[str], tuple[Path, torch.Tensor]], image: torch.Tensor
) -> None:
    arch, _, _, layout = ORACLES[oracle_id]
    path, expected = oracle_files(oracle_id)
    model = load_model(arch, str(path), device="cpu")
    with torch.no_grad():
        actual = model(image)
    assert model.weights_info.layout == layout
    assert model.config.num_classes == 1000 and len(model.weights_info.categories) == 1000
    assert _close(actual, expected) <= RELATIVE_TOLERANCE


def test_anonymous_pytorchcv_v1_file_needs_the_stride_hint(
    oracle_files: Callable[[str], tuple[Path, torch.Tensor]], image: torch.Tensor, tmp_path: Path
) -> None:
    path, expected = oracle_files("pytorchcv-resnet50-v1")
    anonymous = shutil.copy(path, tmp_path / "my_weights.pth")
    assumed = load_model("resnet50", str(anonymous), device="cpu")
    hinted = load_model("resnet50", str(anonymous), device="cpu", stride_in="conv1")
    with torch.no_grad():
        assert _close(hinted(image), expected) <= RELATIVE_TOLERANCE
        assert _close(assumed(image), expected) > 1e-3  # v1.5 is a different network: the hint matters
    assert assumed.config.stride_in == "conv2" and "assumed v1.5" in assumed.weights_info.description
    assert hinted.config.stride_in == "conv1"


def test_pytorchcv_file_names_decide_the_stride() -> None:
    assert pytorchcv_stride("resnet50-0633-b00d1c8e.pth", "resnet50")[0] == "conv1"
    assert pytorchcv_stride("seresnet50-0575-004bfde4.pth.zip", "se_resnet50")[0] == "conv1"
    assert pytorchcv_stride("resnet50b-0638-8a5473ef.pth.zip", "resnet50")[0] == "conv2"
    assert pytorchcv_stride("seresnet50b-0539-459e6871.pth", "se_resnet50")[0] == "conv2"
    assert pytorchcv_stride("cbam_resnet50-0505-d8cf8488.pth.zip", "cbam_resnet50")[0] == "conv2"
    assert pytorchcv_stride("resnet50b-0638-8a5473ef.pth", "resnet50", hint="conv1")[0] == "conv1"


# ------------------------------------------------------------------------------------------ official CBAM release


@pytest.fixture(scope="module")
def official(image: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    tensors = official_cbam_tensors(seed=3)
    with torch.no_grad():
        return tensors, reference_cbam_resnet50(tensors, image)


def test_reference_is_sensitive_to_the_spatial_pooling_order(
    official: tuple[dict[str, torch.Tensor], torch.Tensor], image: torch.Tensor
) -> None:
    tensors, expected = official
    with torch.no_grad():
        swapped = reference_cbam_resnet50(tensors, image, max_first=False)
    assert _close(swapped, expected) > 1e-3


# (num_batches_tracked present, legacy serialization, wrapper extras): every pair of values appears once.
OFFICIAL_VARIANTS = [(True, False, True), (False, True, True), (True, True, False), (False, False, False)]


@pytest.mark.parametrize(("tracked", "legacy", "extras"), OFFICIAL_VARIANTS)
def test_official_cbam_release_loads_strictly_and_matches_the_equations(
    tracked: bool,
    legacy: bool,
    extras: bool,
    official: tuple[dict[str, torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    tmp_path: Path,
) -> None:
    tensors, expected = official
    if not tracked:
        tensors = {key: value for key, value in tensors.items() if not key.endswith("num_batches_tracked")}
    path = save_official(tmp_path / "RESNET50_CBAM_new_name_wrap.pth", tensors, extras=extras, legacy=legacy)
    model = load_model("cbam_resnet50", str(path), device="cpu")
    with torch.no_grad():
        actual = model(image)
    assert model.weights_info.layout == "official_cbam"
    assert _close(actual, expected) <= RELATIVE_TOLERANCE
    tracked_value = int(model.layer1[0].bn1.num_batches_tracked)
    assert tracked_value == (1000 if tracked else 0)
    assert ("ignored wrapper entries" in model.weights_info.description) == extras


# ---------------------------------------------------------------------------------------------------- broken files


def _small(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return build_resnet(arch, NARROW.with_(num_classes=10)).eval()


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "truncated.pth"
    torch.save(_small("resnet50").state_dict(), path, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or not a checkpoint") as raised:
        load_model("resnet50", str(path), device="cpu")
    assert "\n" not in str(raised.value)


def test_truncated_safetensors_is_a_clear_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "truncated.safetensors"
    save_file({key: value.contiguous() for key, value in _small("resnet50").state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or not a checkpoint"):
        load_model("resnet50", str(path), device="cpu")


def test_resnet18_is_refused_as_resnet50(tmp_path: Path) -> None:
    import torchvision

    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsError) as raised:
        load_model("resnet50", str(path), device="cpu")
    message = str(raised.value)
    assert "layouts tried: torchvision" in message
    assert "not a ResNet-50 of this project's family" in message
    assert "unexpected keys" in message or "missing keys" in message


def test_cbam_checkpoint_loaded_as_se_resnet50_names_the_keys_and_the_right_arch(tmp_path: Path) -> None:
    path = save_official(
        tmp_path / "cbam.pth", official_cbam_tensors(width=8, num_classes=10), extras=False, legacy=False
    )
    with pytest.raises(WeightsError) as raised:
        load_model("se_resnet50", str(path), device="cpu")
    message = str(raised.value)
    assert "unexpected keys layer1.0.attn.channel.fc1.weight" in message
    assert "missing keys layer1.0.attn.fc1.weight" in message
    assert "layouts tried: official_cbam" in message
    assert "load it as cbam_resnet50" in message


def test_pickled_module_is_never_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pth"
    torch.save(_small("resnet50"), path)
    with pytest.raises(WeightsError, match="never unpickles"):
        load_model("resnet50", str(path), device="cpu")


def test_unknown_layout_lists_every_layout_tried(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, path)
    with pytest.raises(WeightsError) as raised:
        load_model("resnet50", str(path), device="cpu")
    assert "layouts tried: project, torchvision, timm_seresnet, cadene, pytorchcv, official_cbam" in str(raised.value)


def test_linear_and_1x1_conv_shapes_are_fitted(tmp_path: Path) -> None:
    se = _small("se_resnet50")
    state = {
        key: value.flatten(1) if ".attn.fc" in key and value.ndim == 4 else value
        for key, value in se.state_dict().items()
    }
    assert state["layer1.0.attn.fc1.weight"].ndim == 2
    path = tmp_path / "linear_se.pth"
    torch.save(state, path)
    model = load_model("se_resnet50", str(path), device="cpu")
    torch.testing.assert_close(model.layer1[0].attn.fc1.weight, se.layer1[0].attn.fc1.weight, rtol=0, atol=0)


def test_layout_signatures_are_exclusive() -> None:
    samples = {
        "torchvision": ["conv1.weight", "fc.weight", "layer1.0.conv1.weight"],
        "timm_seresnet": ["conv1.weight", "fc.weight", "layer1.0.se.fc1.weight"],
        "cadene": ["layer0.conv1.weight", "last_linear.weight", "layer1.0.se_module.fc1.weight"],
        "pytorchcv": ["features.init_block.conv.conv.weight", "output.weight"],
        "official_cbam": ["conv1.weight", "fc.weight", "layer1.0.cbam.ChannelGate.mlp.1.weight"],
        "project": ["conv1.weight", "fc.weight", "layer1.0.attn.fc1.weight"],
    }
    for layout, keys in samples.items():
        assert detect_layouts(keys) == [layout]


def test_module_prefix_and_wrapper_are_unwrapped(tmp_path: Path) -> None:
    state = _small("resnet50").state_dict()
    path = tmp_path / "wrapped.pth"
    torch.save({"model": {f"module.{key}": value for key, value in state.items()}, "epoch": 3}, path)
    checkpoint = read_checkpoint(path)
    assert set(checkpoint.tensors) == set(state) and checkpoint.ignored == ("epoch",)
