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


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 with BatchNorm, then the attention slot (after bn3, before the residual add)."""

    def __init__(self, in_channels: int, planes: int, stride: int, config: ArchConfig) -> None:
        super().__init__()
        out_channels = planes * EXPANSION
        stride1, stride2 = (stride, 1) if config.stride_in == "conv1" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride=stride1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride2, padding=1, bias=False)
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
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = {
            "pad": lambda: nn.MaxPool2d(3, 2, padding=1),
            "ceil": lambda: nn.MaxPool2d(3, 2, padding=0, ceil_mode=True),
            "none": nn.Identity,
        }[config.stem_pool]()
        in_channels = width
        for index, depth in enumerate(STAGE_DEPTHS):
            planes = width * 2**index
            blocks = []
            for block in range(depth):
                stride = (config.last_stage_stride if index == 3 else 2) if block == 0 and index > 0 else 1
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
