"""One ResNet-50 family: a single ``Bottleneck`` with one attention slot, and thin builders for each variant.

The switches (``ArchConfig``) are exactly the ones that the real checkpoints differ in, so that every published
layout loads into this one class: where a down-sampling block strides, how the stem pools, the width and the classes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from cbam_viz.model.attention import create_attention
from cbam_viz.vocab import ARCH_ATTENTION as ARCHS
from cbam_viz.vocab import STAGE_DEPTHS, AttentionKind

EXPANSION = 4


@dataclass(frozen=True)
class ArchConfig:
    """Architecture switches. Defaults are torchvision's ResNet-50 (v1.5, padded stem pool)."""

    attention: AttentionKind = None
    stride_in: Literal["conv1", "conv2"] = "conv2"  # "conv1" is the Caffe/v1 layout, "conv2" is v1.5
    stem_pool: Literal["pad", "ceil", "none"] = "pad"  # pad: MaxPool(3,2,1); ceil: MaxPool(3,2,0,ceil); none: no pool
    last_stage_stride: Literal[1, 2] = 2  # 1 keeps layer4 at 1/16 of the input: finer CAMs for small demo images
    base_width: int = 64
    num_classes: int = 1000

    def with_(self, **changes: object) -> ArchConfig:
        """A copy with ``changes``."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Sampling:
    """One layer that moves or thins the feature grid, along either axis: its window, stride, zero padding and
    rounding. The network is built from these, and the map geometry (``imaging.view.CellGeometry``) reads them."""

    kernel: int
    stride: int
    padding: int = 0
    ceil: bool = False  # ceil_mode: a last, partial window counts

    def cells(self, size: int) -> int:
        """Output length for an input of ``size`` (PyTorch's rule, the last window starting inside the input)."""
        span = size + 2 * self.padding - self.kernel
        count = (-(-span // self.stride) if self.ceil else span // self.stride) + 1
        if self.ceil and (count - 1) * self.stride >= size + self.padding:
            count -= 1
        return count

    @property
    def shift(self) -> float:
        """Where output cell 0's window is centred, in input cells: cell j's centre is ``shift + j * stride``."""
        return (self.kernel - 1) / 2 - self.padding


STEM_CONV = Sampling(7, 2, 3)
STEM_POOLS: dict[str, Sampling | None] = {
    "pad": Sampling(3, 2, 1),
    "ceil": Sampling(3, 2, 0, ceil=True),  # Caffe SE-ResNet: no padding, a last partial window
    "none": None,
}


def strided_conv(config: ArchConfig, stride: int) -> Sampling:
    """The conv of a down-sampling bottleneck that strides: the 3x3 conv2 (v1.5) or the 1x1 conv1 (v1)."""
    return Sampling(1, stride, 0) if config.stride_in == "conv1" else Sampling(3, stride, 1)


def stage_stride(config: ArchConfig, stage_index: int) -> int:
    """The stride of stage ``stage_index`` (0-based) in its first block."""
    return 1 if stage_index == 0 else (config.last_stage_stride if stage_index == 3 else 2)


def grid_chains(config: ArchConfig) -> dict[str, tuple[Sampling, ...]]:
    """Every feature grid a map may live on (the stem's conv and pool, each stage's output), as the layers that
    lead there from the input; stride-1 convs with ``kernel // 2`` padding keep the grid and are left out."""
    chain: tuple[Sampling, ...] = (STEM_CONV,)
    chains = {"conv1": chain}
    pool = STEM_POOLS[config.stem_pool]
    if pool is not None:
        chain += (pool,)
        chains["maxpool"] = chain
    for index in range(len(STAGE_DEPTHS)):
        stride = stage_stride(config, index)
        if stride != 1:
            chain += (strided_conv(config, stride),)
        chains[f"layer{index + 1}"] = chain
    return chains


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 with BatchNorm, then the attention slot (after bn3, before the residual add)."""

    def __init__(self, in_channels: int, planes: int, stride: int, config: ArchConfig) -> None:
        super().__init__()
        out_channels = planes * EXPANSION
        stride1, stride2 = (stride, 1) if config.stride_in == "conv1" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride=stride1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride2, padding=1, bias=False)  # see strided_conv
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.attn = create_attention(config.attention, out_channels)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """1x1, 3x3, 1x1 convolutions, the attention slot, then the shortcut added and a ReLU."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.attn is not None:
            out = self.attn(out)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """ResNet-50 layout (3, 4, 6, 3 bottlenecks) with an adaptive global pool, so any input size works."""

    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.config = config
        width = config.base_width
        conv, pool = STEM_CONV, STEM_POOLS[config.stem_pool]
        self.conv1 = nn.Conv2d(3, width, conv.kernel, stride=conv.stride, padding=conv.padding, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = (
            nn.Identity()
            if pool is None
            else nn.MaxPool2d(pool.kernel, pool.stride, padding=pool.padding, ceil_mode=pool.ceil)
        )
        in_channels = width
        for index, depth in enumerate(STAGE_DEPTHS):
            planes = width * 2**index
            blocks = []
            for block in range(depth):
                stride = stage_stride(config, index) if block == 0 else 1
                blocks.append(Bottleneck(in_channels, planes, stride, config))
                in_channels = planes * EXPANSION
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He init for convs, and bn3 of every block at zero so each block starts as the identity: the usual
        recipe that lets a 50-layer net train from scratch (pretrained loads overwrite all of it)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, Bottleneck):
                nn.init.zeros_(module.bn3.weight)

    @property
    def stages(self) -> list[nn.Sequential]:
        """The four stages, ``layer1`` to ``layer4``."""
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and the four stages: the last feature map, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def build_resnet(arch: str, config: ArchConfig | None = None) -> ResNet:
    """Build ``arch`` (``resnet50``, ``se_resnet50`` or ``cbam_resnet50``); the arch decides the attention."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return ResNet((config or ArchConfig()).with_(attention=ARCHS[arch]))
