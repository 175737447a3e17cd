"""Attention modules that sit in the single slot of each bottleneck, and the factory that builds them.

Every gate (the channel vector of SE/CBAM, the spatial map of CBAM) ends in its own ``nn.Sigmoid`` module, so a
forward hook on that module sees exactly the attention the block applied, without touching ``forward()``.
"""

from __future__ import annotations

import torch
from torch import nn

from cbam_viz.vocab import AttentionKind

REDUCTION = 16


class SqueezeExcite(nn.Module):
    """SE (Hu et al.): channel gate from the average-pooled descriptor only, with 1x1 convs as the MLP."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled per channel by sigmoid(MLP(global average pool))."""
        squeezed = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(squeezed))))


class ChannelGate(nn.Module):
    """CBAM channel attention: Mc = sigmoid(MLP(avg) + MLP(max)), one MLP shared by both descriptors."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden, bias=True)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, channels, bias=True)
        self.gate = nn.Sigmoid()

    def mlp(self, descriptor: torch.Tensor) -> torch.Tensor:
        """The shared MLP, applied to one pooled descriptor."""
        return self.fc2(self.act(self.fc1(descriptor)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled per channel by Mc = sigmoid(MLP(avg) + MLP(max))."""
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        return x * self.gate(logits)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: Ms = sigmoid(BN(conv7x7([max_c; mean_c]))); max comes first, as in the release."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled per position by Ms = sigmoid(BN(conv7x7([max_c; mean_c])))."""
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * self.gate(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., 2018): channel gate first, then the spatial gate."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate, then the spatial gate on its output."""
        return self.spatial(self.channel(x))


def create_attention(kind: AttentionKind, channels: int) -> nn.Module | None:
    """Turn ``None | "se" | "cbam"`` into the module for one bottleneck's attention slot."""
    if kind is None:
        return None
    if kind == "se":
        return SqueezeExcite(channels)
    if kind == "cbam":
        return CBAM(channels)
    raise ValueError(f"unknown attention kind {kind!r}; expected None, 'se' or 'cbam'")


def channel_gates(model: nn.Module) -> dict[str, nn.Sigmoid]:
    """The sigmoid of every channel gate (SE or CBAM), keyed by the block name, e.g. ``layer2.3``."""
    gates = {}
    for name, module in model.named_modules():
        if isinstance(module, SqueezeExcite | ChannelGate):
            gates[name.rsplit(".attn", 1)[0]] = module.gate
    return gates


def spatial_gates(model: nn.Module) -> dict[str, nn.Sigmoid]:
    """The sigmoid of every CBAM spatial gate, keyed by the block name."""
    modules = model.named_modules()
    return {name.rsplit(".attn", 1)[0]: module.gate for name, module in modules if isinstance(module, SpatialGate)}
