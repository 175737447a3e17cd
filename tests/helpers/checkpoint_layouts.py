"""Checkpoints in published layouts, built from random tensors, for the converter and weights tests.

The official CBAM layout is written out here key by key from the release's description (no package builds it), so
the tests check the converter against the layout itself, not against the converter's own idea of it.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

STAGE_DEPTHS = (3, 4, 6, 3)


def randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Random affine parameters and running statistics in every BatchNorm (a fresh one is the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                count = module.num_features
                module.weight.copy_(torch.empty(count).uniform_(0.5, 1.5, generator=generator))
                module.bias.copy_(torch.randn(count, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
                module.running_var.copy_(torch.empty(count).uniform_(0.5, 2.0, generator=generator))
    return model.eval()


def _bn(tensors: dict[str, torch.Tensor], prefix: str, count: int, generator: torch.Generator, tracked: bool) -> None:
    tensors[f"{prefix}.weight"] = torch.empty(count).uniform_(0.5, 1.5, generator=generator)
    tensors[f"{prefix}.bias"] = torch.randn(count, generator=generator) * 0.1
    tensors[f"{prefix}.running_mean"] = torch.randn(count, generator=generator) * 0.1
    tensors[f"{prefix}.running_var"] = torch.empty(count).uniform_(0.5, 2.0, generator=generator)
    if tracked:
        tensors[f"{prefix}.num_batches_tracked"] = torch.tensor(1000, dtype=torch.long)


def _conv(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    fan_in = shape[1] * shape[2] * shape[3]
    return torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5


def _linear(out_features: int, in_features: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(out_features, in_features, generator=generator) * (1.0 / in_features) ** 0.5


def official_cbam_tensors(
    seed: int = 0, width: int = 64, num_classes: int = 1000, batches_tracked: bool = True
) -> dict[str, torch.Tensor]:
    """A state_dict in the exact key layout of RESNET50_CBAM_new_name_wrap.pth (``module.`` prefix included)."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    tensors["conv1.weight"] = _conv((width, 3, 7, 7), generator)
    _bn(tensors, "bn1", width, generator, batches_tracked)
    in_channels = width
    for stage, depth in enumerate(STAGE_DEPTHS, start=1):
        planes = width * 2 ** (stage - 1)
        channels = planes * 4
        hidden = channels // 16
        for block in range(depth):
            prefix = f"layer{stage}.{block}"
            tensors[f"{prefix}.conv1.weight"] = _conv((planes, in_channels, 1, 1), generator)
            _bn(tensors, f"{prefix}.bn1", planes, generator, batches_tracked)
            tensors[f"{prefix}.conv2.weight"] = _conv((planes, planes, 3, 3), generator)
            _bn(tensors, f"{prefix}.bn2", planes, generator, batches_tracked)
            tensors[f"{prefix}.conv3.weight"] = _conv((channels, planes, 1, 1), generator)
            _bn(tensors, f"{prefix}.bn3", channels, generator, batches_tracked)
            if block == 0:
                tensors[f"{prefix}.downsample.0.weight"] = _conv((channels, in_channels, 1, 1), generator)
                _bn(tensors, f"{prefix}.downsample.1", channels, generator, batches_tracked)
            gate = f"{prefix}.cbam.ChannelGate.mlp"
            tensors[f"{gate}.1.weight"] = _linear(hidden, channels, generator)
            tensors[f"{gate}.1.bias"] = torch.randn(hidden, generator=generator) * 0.1
            tensors[f"{gate}.3.weight"] = _linear(channels, hidden, generator)
            tensors[f"{gate}.3.bias"] = torch.randn(channels, generator=generator) * 0.1
            spatial = f"{prefix}.cbam.SpatialGate.spatial"
            tensors[f"{spatial}.conv.weight"] = _conv((1, 2, 7, 7), generator)
            _bn(tensors, f"{spatial}.bn", 1, generator, batches_tracked)
            in_channels = channels
    tensors["fc.weight"] = _linear(num_classes, in_channels, generator)
    tensors["fc.bias"] = torch.randn(num_classes, generator=generator) * 0.1
    return {f"module.{key}": value for key, value in tensors.items()}


def save_official(path: Path, tensors: dict[str, torch.Tensor], *, extras: bool, legacy: bool) -> Path:
    """Save like the release: a ``{'state_dict': ...}`` wrapper, optionally with training entries, old or zip format."""
    wrapper: dict[str, object] = {"state_dict": tensors}
    if extras:
        wrapper.update(
            epoch=100,
            arch="resnet",
            best_prec1=torch.tensor(77.622),
            optimizer={"state": {}, "param_groups": [{"lr": 0.0001, "momentum": 0.9, "params": [0, 1, 2]}]},
        )
    torch.save(wrapper, path, _use_new_zipfile_serialization=not legacy)
    return path


def save_pytorchcv_zip(path: Path, state_dict: dict[str, torch.Tensor]) -> Path:
    """pytorchcv's release format: a zip holding one raw state_dict ``.pth`` named like the zip."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(path.name.removesuffix(".zip"), buffer.getvalue())
    return path


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: next to a busy training job, two threads made a ResNet-50 forward 20x slower here."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cadene_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A project/torchvision-keyed SE-ResNet-50 state_dict in Cadene's (= timm ``legacy_seresnet50``'s) key layout."""
    renamed = {}
    for key, tensor in state_dict.items():
        for ours, theirs in (("conv1.", "layer0.conv1."), ("bn1.", "layer0.bn1."), ("fc.", "last_linear.")):
            if key.startswith(ours):
                key = theirs + key.removeprefix(ours)
                break
        renamed[key.replace(".attn.fc", ".se_module.fc")] = tensor
    return renamed


def reference_cbam_resnet50(tensors: dict[str, torch.Tensor], x: torch.Tensor, max_first: bool = True) -> torch.Tensor:
    """CBAM-ResNet-50 written from the equations, reading the release's tensors directly (no cbam_viz module)."""

    def weight(name: str) -> torch.Tensor:
        return tensors[f"module.{name}"]

    def batch_norm(value: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.batch_norm(
            value,
            weight(f"{prefix}.running_mean"),
            weight(f"{prefix}.running_var"),
            weight(f"{prefix}.weight"),
            weight(f"{prefix}.bias"),
            training=False,
            eps=1e-5,
        )

    x = F.relu(batch_norm(F.conv2d(x, weight("conv1.weight"), stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for stage, depth in enumerate((3, 4, 6, 3), start=1):
        for block in range(depth):
            prefix = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            out = F.relu(batch_norm(F.conv2d(x, weight(f"{prefix}.conv1.weight")), f"{prefix}.bn1"))
            out = F.conv2d(out, weight(f"{prefix}.conv2.weight"), stride=stride, padding=1)
            out = F.relu(batch_norm(out, f"{prefix}.bn2"))
            out = batch_norm(F.conv2d(out, weight(f"{prefix}.conv3.weight")), f"{prefix}.bn3")
            # Channel attention: Mc = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))), one MLP for both descriptors.
            mlp = f"{prefix}.cbam.ChannelGate.mlp"

            def shared_mlp(descriptor: torch.Tensor, mlp: str = mlp) -> torch.Tensor:
                hidden = F.relu(F.linear(descriptor, weight(f"{mlp}.1.weight"), weight(f"{mlp}.1.bias")))
                return F.linear(hidden, weight(f"{mlp}.3.weight"), weight(f"{mlp}.3.bias"))

            channel = torch.sigmoid(shared_mlp(out.mean(dim=(2, 3))) + shared_mlp(out.amax(dim=(2, 3))))
            out = out * channel[:, :, None, None]
            # Spatial attention: Ms = sigmoid(BN(conv7x7([MaxPool_c(F'); AvgPool_c(F')]))).
            pooled = [out.amax(dim=1, keepdim=True), out.mean(dim=1, keepdim=True)]
            pooled = torch.cat(pooled if max_first else pooled[::-1], dim=1)
            spatial = f"{prefix}.cbam.SpatialGate.spatial"
            out = out * torch.sigmoid(
                batch_norm(F.conv2d(pooled, weight(f"{spatial}.conv.weight"), padding=3), f"{spatial}.bn")
            )
            shortcut = x
            if f"module.{prefix}.downsample.0.weight" in tensors:
                shortcut = F.conv2d(x, weight(f"{prefix}.downsample.0.weight"), stride=stride)
                shortcut = batch_norm(shortcut, f"{prefix}.downsample.1")
            x = F.relu(out + shortcut)
    x = F.avg_pool2d(x, kernel_size=7).flatten(1)  # the release's AvgPool2d(7): equals global pooling at 224
    return F.linear(x, weight("fc.weight"), weight("fc.bias"))
