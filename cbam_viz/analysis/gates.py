"""Inside the gate: every intermediate of one block's attention on one picture, and the equations they fill in.

``capture.capture_pass(..., gate_steps=True)`` (or a set of block names) records these in the analysis's own single
pass, from hooks on the gate's real submodules, so the numbers are the ones the model computed, not a re-run:

* CBAM channel gate: ``avg`` and ``max`` (the pooled descriptors of F, C each), ``mlp_avg`` and ``mlp_max`` (the
  shared MLP's output for each), ``logits`` (their sum) and ``gate`` (Mc = sigmoid(logits)).
* SE: ``avg`` (the squeeze), ``mlp_avg`` (the excitation MLP's output, pre-sigmoid; also ``logits``) and ``gate``.
  ``max``/``mlp_max`` are None. ``squeeze``/``excitation`` name the same arrays in SE's words.
* CBAM spatial gate: ``max_map``/``mean_map`` (max_c and mean_c of F' = F * Mc), ``conv`` (the 7x7 conv's response),
  ``bn`` (after BatchNorm), ``gate`` (Ms), the kernel's two slices in the conv's own input order (``kernel_max`` then
  ``kernel_mean``: the released weights concatenate [max, mean]) and the BatchNorm's parameters.

``recompose(steps)`` rebuilds (Mc, Ms) from those pieces alone, which is what the equations on the page claim;
``channel_equation`` / ``spatial_equation`` write one channel's or one position's equation with this picture's
numbers; ``channel_order`` sorts the channels once, strongest first, and names the strongest and weakest.

Strength is the gate's PRE-sigmoid value (``strongest_first``): in trained models many channel gates are exactly 1.0
in float32 (sigmoid saturates from about 17 on), so only what the sigmoid got still orders them; ties go by index.
The page's marks and the ``keep-top-k`` intervention (``intervene.py``) use this one order, so "keep the K
strongest" keeps exactly the K the page marks strongest, for channels and for positions alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cbam_viz.errors import CbamVizError

MARKED = 10  # how many strongest / weakest channels the page marks


@dataclass(frozen=True)
class ChannelSteps:
    """The channel gate of one block on one picture, each a (C,) float32 array."""

    kind: str  # "cbam" | "se"
    avg: np.ndarray  # avg-pooled descriptor of F (SE: the squeeze)
    max: np.ndarray | None  # max-pooled descriptor of F; None for SE
    mlp_avg: np.ndarray  # MLP(avg) (SE: the excitation, pre-sigmoid)
    mlp_max: np.ndarray | None  # MLP(max); None for SE
    logits: np.ndarray  # what the sigmoid got: MLP(avg) + MLP(max) (SE: the excitation)
    gate: np.ndarray  # Mc, as the gate computed it

    @property
    def squeeze(self) -> np.ndarray:
        """SE's word for ``avg``: the pooled descriptor."""
        return self.avg

    @property
    def excitation(self) -> np.ndarray:
        """SE's word for ``mlp_avg``: the excitation MLP's output before the sigmoid."""
        return self.mlp_avg


@dataclass(frozen=True)
class SpatialSteps:
    """CBAM's spatial gate of one block on one picture: (h, w) float32 maps, the kernel and the BN parameters."""

    max_map: np.ndarray  # max over channels of F' (the conv's first input channel)
    mean_map: np.ndarray  # mean over channels of F' (its second input channel)
    conv: np.ndarray  # the 7x7 conv's response
    bn: np.ndarray  # after BatchNorm (eval: running statistics)
    gate: np.ndarray  # Ms, as the gate computed it
    kernel_max: np.ndarray  # (k, k): the slice applied to max_map
    kernel_mean: np.ndarray  # (k, k): the slice applied to mean_map
    padding: int
    bn_mean: float
    bn_var: float
    bn_eps: float
    bn_weight: float
    bn_bias: float

    def bn_affine(self) -> tuple[float, float]:
        """(scale, shift) with BN(x) = scale * x + shift, the form a page can print."""
        scale = self.bn_weight / float(np.sqrt(np.float32(self.bn_var) + np.float32(self.bn_eps)))
        return scale, self.bn_bias - scale * self.bn_mean


@dataclass(frozen=True)
class GateSteps:
    """Inside the attention of one block: its channel gate, and for CBAM its spatial gate."""

    block: str  # "layer4.2"
    channel: ChannelSteps
    spatial: SpatialSteps | None  # None for SE


@dataclass(frozen=True)
class ChannelOrder:
    """Channels sorted once by Mc, strongest first, and the ones a page marks."""

    order: np.ndarray  # (C,) channel indices, strongest first (``strongest_first`` of the sigmoid's input)
    strongest: np.ndarray  # the ``MARKED`` strongest, strongest first
    weakest: np.ndarray  # the ``MARKED`` weakest, weakest first

    def mark(self, channel: int) -> str:
        """``"strong"``, ``"weak"`` or ``""`` for one channel (what a bar chart colours)."""
        if channel in self.strongest:
            return "strong"
        return "weak" if channel in self.weakest else ""


def steps_from_arrays(block: str, arrays: dict[str, np.ndarray], params: dict[str, Any] | None) -> GateSteps:
    """Unpack the capture's host arrays (batch first; the first picture is kept) into ``GateSteps``.

    ``arrays["channel"]`` is (N, 6, C) for CBAM (avg, max, MLP(avg), MLP(max), sum, Mc) or (N, 3, C) for SE
    (squeeze, excitation, sigmoid); ``arrays["spatial"]`` is (N, 5, h, w) (max_c, mean_c, conv, BN, Ms), and
    ``params`` the spatial gate's kernel (2, k, k), BN numbers and padding (``capture.spatial_params``).
    """
    vectors = arrays["channel"][0]
    if vectors.shape[0] == 6:
        avg, max_, mlp_avg, mlp_max, logits, gate = vectors
        channel = ChannelSteps("cbam", avg, max_, mlp_avg, mlp_max, logits, gate)
    else:
        avg, excitation, gate = vectors
        channel = ChannelSteps("se", avg, None, excitation, None, excitation, gate)
    if "spatial" not in arrays or params is None:
        return GateSteps(block, channel, None)
    max_map, mean_map, conv, bn, ms = arrays["spatial"][0]
    numbers = {key: params[key] for key in ("padding", "bn_mean", "bn_var", "bn_eps", "bn_weight", "bn_bias")}
    spatial = SpatialSteps(
        max_map=max_map,
        mean_map=mean_map,
        conv=conv,
        bn=bn,
        gate=ms,
        kernel_max=params["kernel"][0],
        kernel_mean=params["kernel"][1],
        **numbers,
    )
    return GateSteps(block, channel, spatial)


def recompose(steps: GateSteps) -> tuple[np.ndarray, np.ndarray | None]:
    """(Mc, Ms) recomputed from the shown pieces only: sigmoid of the MLP sum; sigmoid(BN(conv([max; mean]))).

    Float32, the model's own precision, so the result matches the captured gates to rounding. Ms is None for SE.
    """
    channel = steps.channel
    logits = torch.from_numpy(channel.mlp_avg)
    if channel.mlp_max is not None:
        logits = logits + torch.from_numpy(channel.mlp_max)
    mc = torch.sigmoid(logits).numpy()
    spatial = steps.spatial
    if spatial is None:
        return mc, None
    pooled = torch.from_numpy(np.stack([spatial.max_map, spatial.mean_map]))[None]
    kernel = torch.from_numpy(np.stack([spatial.kernel_max, spatial.kernel_mean]))[None]
    conv = F.conv2d(pooled, kernel, padding=spatial.padding)[0, 0]
    std = torch.sqrt(torch.tensor(spatial.bn_var, dtype=torch.float32) + spatial.bn_eps)
    normalised = (conv - spatial.bn_mean) / std * spatial.bn_weight + spatial.bn_bias
    return mc, torch.sigmoid(normalised).numpy()


def channel_equation(steps: GateSteps, channel: int, digits: int = 2) -> str:
    """Channel ``channel``'s equation with this picture's numbers, e.g.
    ``Mc[17] = σ(MLP(avg)[17] + MLP(max)[17]) = σ(1.32 + 0.85) = 0.90`` (SE: ``σ(MLP(squeeze)[17]) = σ(1.32)``)."""
    gate = steps.channel
    count = gate.gate.shape[0]
    if isinstance(channel, bool) or not isinstance(channel, int | np.integer) or not 0 <= channel < count:
        raise CbamVizError(f"channel must be 0-{count - 1} in {steps.block}, got {channel!r}")
    c = int(channel)
    value = _fixed(gate.gate[c], digits)
    if gate.mlp_max is None:
        return f"Mc[{c}] = σ(MLP(squeeze)[{c}]) = σ({_fixed(gate.mlp_avg[c], digits)}) = {value}"
    terms = _sum(gate.mlp_avg[c], gate.mlp_max[c], digits)
    return f"Mc[{c}] = σ(MLP(avg)[{c}] + MLP(max)[{c}]) = σ({terms}) = {value}"


def spatial_equation(steps: GateSteps, row: int, col: int, digits: int = 2) -> str:
    """Position (row, col)'s equation, e.g. ``Ms[3,5] = σ(BN(conv7x7([max; mean])[3,5])) = σ(1.90·2.10 - 0.40)
    = σ(3.59) = 0.97``, BN written as scale·x + shift."""
    spatial = steps.spatial
    if spatial is None:
        raise CbamVizError(f"{steps.block} has no spatial gate (SE attends to channels only)")
    height, width = spatial.gate.shape
    if not (0 <= row < height and 0 <= col < width):
        raise CbamVizError(f"position must be within 0-{height - 1}, 0-{width - 1} in {steps.block}, got {row}, {col}")
    k = spatial.kernel_max.shape[0]
    scale, shift = spatial.bn_affine()
    response = _fixed(spatial.conv[row, col], digits)
    product = f"{_fixed(scale, digits)}·{f'({response})' if response.startswith('-') else response}"
    return (
        f"Ms[{row},{col}] = σ(BN(conv{k}x{k}([max; mean])[{row},{col}])) = σ({_sum_text(product, shift, digits)}) "
        f"= σ({_fixed(spatial.bn[row, col], digits)}) = {_fixed(spatial.gate[row, col], digits)}"
    )


def strongest_first(pre_sigmoid: torch.Tensor) -> torch.Tensor:
    """Indices along dim 1 of (N, C) pre-sigmoid gate values, strongest first; ties by index (a stable sort).

    The one ranking of gate strength: the page's channel order and marks, its strongest position, and
    ``keep-top-k``. Sorting the sigmoid's output instead would leave saturated gates (exactly 1.0) in an arbitrary
    order."""
    return torch.argsort(-pre_sigmoid, dim=1, stable=True)


def _order(pre_sigmoid: np.ndarray) -> np.ndarray:
    return strongest_first(torch.from_numpy(np.asarray(pre_sigmoid).reshape(1, -1)))[0].numpy()


def channel_order(gate: GateSteps | ChannelSteps | np.ndarray, marked: int = MARKED) -> ChannelOrder:
    """Sort channels once, strongest first (by the sigmoid's input for captured steps, by the values given for a
    plain array), and pick the ``marked`` strongest and weakest (never overlapping)."""
    if isinstance(gate, GateSteps):
        gate = gate.channel
    values = gate.logits if isinstance(gate, ChannelSteps) else np.asarray(gate).reshape(-1)
    order = _order(values)
    count = min(marked, values.size // 2)
    return ChannelOrder(order=order, strongest=order[:count], weakest=order[::-1][:count])


def _fixed(value: float, digits: int) -> str:
    return f"{float(value):.{digits}f}"


def _sum(first: float, second: float, digits: int) -> str:
    return _sum_text(_fixed(first, digits), second, digits)


def _sum_text(first: str, second: float, digits: int) -> str:
    """``"1.32 + 0.85"`` or ``"1.32 - 0.85"``: a negative second term reads as a subtraction."""
    sign = "-" if float(second) < 0 else "+"
    return f"{first} {sign} {_fixed(abs(float(second)), digits)}"


def position_order(steps: GateSteps) -> np.ndarray:
    """Flat (row-major) positions of the spatial gate, strongest first: by the BN output (Ms's pre-sigmoid value),
    ties in reading order (``strongest_first``)."""
    if steps.spatial is None:
        raise CbamVizError(f"{steps.block} has no spatial gate (SE attends to channels only)")
    return _order(steps.spatial.bn)


def strongest_position(steps: GateSteps) -> tuple[int, int]:
    """(row, col) of the strongest Ms (``position_order``'s first): the default spatial equation."""
    flat = int(position_order(steps)[0])
    row, col = np.unravel_index(flat, steps.spatial.gate.shape)
    return int(row), int(col)


def recomposition_error(steps: GateSteps) -> dict[str, float | None]:
    """Largest absolute difference between the recomposed and the captured Mc and Ms (the page's own check)."""
    mc, ms = recompose(steps)
    spatial = None if ms is None else float(np.max(np.abs(ms - steps.spatial.gate)))
    return {"channel": float(np.max(np.abs(mc - steps.channel.gate))), "spatial": spatial}


def steps_json(steps: GateSteps, channel: int | None = None) -> dict:
    """The ``/gate_steps`` answer: every step as plain lists, the channel order, the equations and the check.

    ``channel`` is the one the channel equation is written for (None: the strongest)."""
    order = channel_order(steps)
    chosen = int(order.order[0]) if channel is None else channel
    gate = steps.channel
    vectors = {"avg": gate.avg, "max": gate.max, "mlp_avg": gate.mlp_avg, "mlp_max": gate.mlp_max}
    document: dict[str, Any] = {
        "block": steps.block,
        "kind": gate.kind,
        "channels": int(gate.gate.shape[0]),
        "channel": {
            **{name: None if values is None else _floats(values) for name, values in vectors.items()},
            "logits": _floats(gate.logits),
            "gate": _floats(gate.gate),
        },
        "order": [int(i) for i in order.order],
        "strongest": [int(i) for i in order.strongest],
        "weakest": [int(i) for i in order.weakest],
        "equation_channel": chosen,
        "channel_equation": channel_equation(steps, chosen),
        "spatial": None,
        "recomposition_error": recomposition_error(steps),
    }
    spatial = steps.spatial
    if spatial is not None:
        row, col = strongest_position(steps)
        scale, shift = spatial.bn_affine()
        maps = {"max_map": spatial.max_map, "mean_map": spatial.mean_map, "conv": spatial.conv, "bn": spatial.bn}
        document["spatial"] = {
            **{name: _floats(values) for name, values in maps.items()},
            "gate": _floats(spatial.gate),
            "kernel_max": _floats(spatial.kernel_max),
            "kernel_mean": _floats(spatial.kernel_mean),
            "bn_scale": scale,
            "bn_shift": shift,
            "position": [row, col],
            "equation": spatial_equation(steps, row, col),
        }
    return document


def _floats(values: np.ndarray) -> list:
    return np.asarray(values, dtype=np.float64).tolist()
