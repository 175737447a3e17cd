"""One owner for every hook the analysis puts on a model, and the single forward/backward pass that uses them.

``AttentionCapture`` registers forward hooks on each attention gate (SE/CBAM channel vectors, CBAM spatial maps) and
on the CAM layer, keeps the handles and removes them in ``finally``: a failed pass never leaves a hook behind. The CAM
layer's hook hands the rest of the network a fresh graph leaf (``output.detach().requires_grad_()``), so the backward
for the CAM covers only CAM layer -> logits, whatever the model's parameters say about ``requires_grad``.

Hooks only record forwards of the thread that opened the capture, and a per-model lock keeps two captures on one model
from running at once, so concurrent analyses never see each other's maps.

Two options ride on the same single pass (for the attention lab), both off by default:

* ``gate_steps`` (True, or block names such as ``{"layer4.2"}``): extra hooks inside each chosen gate record every
  intermediate on this picture's real tensors (CBAM: avg/max descriptors, the shared MLP's two outputs, their sum,
  Mc; max_c/mean_c maps, the 7x7 conv's response, BN, Ms; SE: squeeze, excitation, sigmoid). They come back as
  ``CapturedPass.gate_steps`` (``cbam_viz.analysis.gates.GateSteps``, numpy) in the same single device-to-host copy (the
  spatial gates' kernels and BN numbers are weights: copied once per weights version, see ``spatial_params``).
  Recording all 16 blocks costs a few per cent of an analysis; a set of one or two blocks costs next to nothing.
* ``replace``: ``{(block, "channel" | "spatial"): fn}``; a hook on that gate's sigmoid returns ``fn(output, input)``
  (the sigmoid's output and its input, which still ranks saturated gates), so the block multiplies F by the
  replaced gate (``intervene.replacements`` builds these from an intervention). Like every hook here it
  acts only on the owner thread's forwards, under the model's lock, and is removed in ``finally``.
  ``channel``/``spatial`` then hold the gates as applied; ``gate_steps`` hold what each gate computed.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn

from cbam_viz.analysis.gates import GateSteps, steps_from_arrays
from cbam_viz.errors import CbamVizError
from cbam_viz.model.attention import channel_gates, spatial_gates
from cbam_viz.vocab import STAGES, all_blocks, quote, split_block

GateKey = tuple[str, str]  # (block name, "channel" | "spatial")
# (the gate's output, the sigmoid's input) -> what the block multiplies F by; the input ranks saturated gates
Replacement = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Closer = Callable[[torch.Tensor, torch.Tensor], None]  # (sigmoid input, sigmoid output) -> closes a gate-step record

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that serialises hooked passes on ``model`` (re-entrant, so a nested capture cannot deadlock)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


_GATES: weakref.WeakKeyDictionary[nn.Module, tuple[dict[str, nn.Module], dict[str, nn.Module]]] = (
    weakref.WeakKeyDictionary()
)


def gate_modules(model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """(channel gates, spatial gates) of ``model``, found once per model (walking ~300 modules every pass costs ms)."""
    with _LOCKS_GUARD:
        gates = _GATES.get(model)
        if gates is None:
            gates = _GATES[model] = (channel_gates(model), spatial_gates(model))
        return gates


def count_hooks(model: nn.Module) -> int:
    """Every module hook on ``model`` and its children: forward, forward-pre, backward and backward-pre."""
    return sum(
        len(module._forward_hooks)
        + len(module._forward_pre_hooks)
        + len(module._backward_hooks)
        + len(module._backward_pre_hooks)
        for module in model.modules()
    )


@dataclass(frozen=True)
class _GateParts:
    """The submodules one block's gate-step recorders hook, found once per model (attribute walks cost µs each)."""

    se: bool
    fc1: nn.Module
    fc2: nn.Module
    conv: nn.Module | None = None  # CBAM's spatial gate only, from here on
    spatial_tensors: tuple[torch.Tensor, ...] = ()  # conv weight, BN running mean, running var, weight, bias
    bn_eps: float = 0.0


_PARTS: weakref.WeakKeyDictionary[nn.Module, dict[str, _GateParts]] = weakref.WeakKeyDictionary()
_SPATIAL_PARAMS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, dict[str, Any]]] = weakref.WeakKeyDictionary()


def _gate_parts(model: nn.Module) -> dict[str, _GateParts]:
    with _LOCKS_GUARD:
        parts = _PARTS.get(model)
    if parts is not None:
        return parts
    parts = {}
    for block in gate_modules(model)[0]:
        stage, index = split_block(block)
        attn = getattr(model, f"layer{stage}")[index].attn
        gate = getattr(attn, "channel", attn)  # CBAM holds .channel and .spatial; SE is the channel gate itself
        spatial = getattr(attn, "spatial", None)
        extra = {}
        if spatial is not None:
            bn = spatial.bn
            tensors = (spatial.conv.weight, bn.running_mean, bn.running_var, bn.weight, bn.bias)
            extra = {"conv": spatial.conv, "spatial_tensors": tensors}
            extra["bn_eps"] = float(bn.eps)
        parts[block] = _GateParts(gate is attn, gate.fc1, gate.fc2, **extra)
    with _LOCKS_GUARD:
        _PARTS[model] = parts
    return parts


def spatial_params(parts: _GateParts) -> dict[str, Any]:
    """A CBAM spatial gate's kernel (2, k, k: [max, mean] slices), BN numbers and padding, on the host.

    Weights, not picture data: copied once and reused while every tensor is at the same version (loading weights
    in place bumps ``_version``), so a pass with gate steps still makes a single device-to-host copy.
    """
    key = tuple(t._version for t in parts.spatial_tensors)
    with _LOCKS_GUARD:
        cached = _SPATIAL_PARAMS.get(parts.conv)
    if cached is not None and cached[0] == key:
        return cached[1]
    weight = parts.spatial_tensors[0]
    host = torch.cat([t.detach().float().reshape(-1) for t in parts.spatial_tensors]).cpu().numpy()
    size = weight.shape[-1]
    mean, var, bn_weight, bias = (float(v) for v in host[2 * size * size :])
    params = {
        "kernel": host[: 2 * size * size].reshape(2, size, size),
        "bn_mean": mean,
        "bn_var": var,
        "bn_eps": parts.bn_eps,
        "bn_weight": bn_weight,
        "bn_bias": bias,
        "padding": int(parts.conv.padding[0]),
    }
    with _LOCKS_GUARD:
        _SPATIAL_PARAMS[parts.conv] = (key, params)
    return params


def stage_layer(model: nn.Module, stage: int) -> nn.Module:
    """``model.layer{stage}``: the CAM target layer of a stage (its output is that stage's final feature map)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return getattr(model, f"layer{stage}")


class AttentionCapture:
    """Context manager: hooks on all gates and on ``cam_layer`` while open, none after (even on an exception).

    While open, ``channel`` maps block names ("layer2.3") to the channel gate's output flattened to (N, C),
    ``spatial`` maps block names to the spatial gate's output as (N, H, W), and ``cam_activations`` is the CAM layer's
    output: a graph leaf that requires grad when the forward ran with grad enabled, so ``torch.autograd.grad(score,
    capture.cam_activations)`` yields the CAM gradients without touching anything upstream.

    ``gate_steps`` (True or block names) adds the gate-step recorders, filling ``steps``; ``replace`` maps
    ``(block, "channel" | "spatial")`` to a function of the gate's output whose result the block uses instead. A key
    naming a gate the model lacks raises ``CbamVizError`` before any hook is left behind.
    """

    def __init__(
        self,
        model: nn.Module,
        cam_layer: nn.Module | None = None,
        *,
        gate_steps: bool | Iterable[str] = False,
        replace: Mapping[GateKey, Replacement] | None = None,
    ) -> None:
        self.model = model
        self.cam_layer = cam_layer
        self.channel: dict[str, torch.Tensor] = {}
        self.spatial: dict[str, torch.Tensor] = {}
        self.steps: dict[str, dict[str, torch.Tensor]] = {}  # block -> packed steps (see gates.steps_from_arrays)
        self.step_params: dict[str, dict[str, Any]] = {}  # block -> the spatial gate's kernel and BN (host)
        self.cam_activations: torch.Tensor | None = None
        self._step_blocks = gate_steps
        self._replace = dict(replace or {})
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._lock = model_lock(model)
        self._locked = False
        self._owner: int | None = None

    def __enter__(self) -> AttentionCapture:
        self._lock.acquire()
        self._locked = True
        self._owner = threading.get_ident()
        try:
            channel, spatial = gate_modules(self.model)
            gates = {"channel": channel, "spatial": spatial}
            for block, kind in self._replace:
                if block not in gates.get(kind, {}):
                    raise CbamVizError(f"this model has no {kind} gate in block {quote(block)} to replace")
            closers: dict[GateKey, Closer] = {}
            for block in _chosen_blocks(self._step_blocks, channel):
                closers.update(self._register_steps(block))
            for kind, store in (("channel", self.channel), ("spatial", self.spatial)):
                for block, gate in gates[kind].items():
                    key = (block, kind)
                    hook = self._gate_hook(store, block, kind, self._replace.get(key), closers.get(key))
                    self._handles.append(gate.register_forward_hook(hook))
            if self.cam_layer is not None:
                self._handles.append(self.cam_layer.register_forward_hook(self._cam_hook))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.remove()  # returns None: an exception raised inside the block always propagates

    def remove(self) -> None:
        """Remove every hook and release the model; safe to call any number of times."""
        try:
            while self._handles:
                self._handles.pop().remove()
        finally:
            self._owner = None
            if self._locked:
                self._locked = False
                self._lock.release()

    def _mine(self) -> bool:
        return threading.get_ident() == self._owner

    def _gate_hook(
        self,
        store: dict[str, torch.Tensor],
        block: str,
        kind: str,
        replacement: Replacement | None,
        closer: Closer | None,
    ) -> Callable[..., torch.Tensor | None]:
        """The one hook on a gate's sigmoid: close its gate-step record (the gate as computed), apply any
        replacement, record the gate as applied. One registration per gate keeps the per-pass cost down."""
        channel = kind == "channel"

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
            if not self._mine():
                return None
            if closer is not None:
                closer(inputs[0], output)
            replaced = replacement(output, inputs[0]) if replacement is not None else None
            attention = (output if replaced is None else replaced).detach()
            store[block] = attention.flatten(1) if channel else attention[:, 0]
            return replaced

        return hook

    def _register_steps(self, block: str) -> dict[GateKey, Closer]:
        """Recorders inside one block's gate(s), each keeping a tensor the gate really computed; returns the closers
        that the gates' sigmoid hooks call.

        CBAM's channel gate calls its shared MLP twice, avg first (``mlp(avg) + mlp(max)`` evaluates left to right),
        so fc1's inputs and fc2's outputs arrive in the order avg, MLP(avg), max, MLP(max); each closer gets the
        sigmoid's input (the sum, resp. the BN output) and output and packs the record into one detached tensor, so
        the host copy stays a single ``cat``.
        """
        parts = _gate_parts(self.model)[block]
        se = parts.se
        calls: list[torch.Tensor] = []

        def mlp_in(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self._mine():
                calls.append(inputs[0])

        def mlp_out(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self._mine():
                calls.append(output)

        def channel_done(logits: torch.Tensor, gate: torch.Tensor) -> None:
            if se:  # SE: squeeze, excitation (also the sigmoid's input), sigmoid; all (N, C, 1, 1)
                steps = [calls[0], calls[1], gate]
            else:  # CBAM: avg, max, MLP(avg), MLP(max), their sum, Mc; all (N, C)
                steps = [calls[0], calls[2], calls[1], calls[3], logits, gate]
            packed = torch.stack(steps, dim=1).detach()
            self.steps.setdefault(block, {})["channel"] = packed.reshape(packed.shape[0], len(steps), -1)
            calls.clear()

        self._handles += [parts.fc1.register_forward_hook(mlp_in), parts.fc2.register_forward_hook(mlp_out)]
        if parts.conv is None:
            return {(block, "channel"): channel_done}
        self.step_params[block] = spatial_params(parts)
        conv_seen: list[torch.Tensor] = []

        def conv_done(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self._mine():
                conv_seen[:] = [inputs[0], output]  # [max_c; mean_c] (N, 2, h, w) and the conv's response

        def spatial_done(bn: torch.Tensor, gate: torch.Tensor) -> None:  # (N, 5, h, w): max_c, mean_c, conv, BN, Ms
            self.steps.setdefault(block, {})["spatial"] = torch.cat([*conv_seen, bn, gate], 1).detach()

        self._handles.append(parts.conv.register_forward_hook(conv_done))
        return {(block, "channel"): channel_done, (block, "spatial"): spatial_done}

    def _cam_hook(
        self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> torch.Tensor | None:
        if not self._mine():
            return None
        leaf = output.detach()
        if torch.is_grad_enabled():
            leaf.requires_grad_()
        self.cam_activations = leaf
        return leaf


def _chosen_blocks(choice: bool | Iterable[str], channel_gates: Mapping[str, nn.Module]) -> list[str]:
    """The blocks whose gate steps to record: all gated blocks for True, none for False, else the named ones.

    A name that is no block of ResNet-50, or a block of a model without gates, is a one-line ``CbamVizError``.
    """
    if choice is False:
        return []
    if choice is True:
        return list(channel_gates)
    if isinstance(choice, str):
        choice = [choice]
    names = list(choice)
    known = set(all_blocks())
    for name in names:
        if name not in known:
            raise CbamVizError(f"gate steps: {quote(name)} is no block of ResNet-50 (e.g. 'layer4.2')")
        if name not in channel_gates:
            raise CbamVizError(f"gate steps: block {name} of this model has no attention gate")
    return list(dict.fromkeys(names))


@dataclass
class CapturedPass:
    """What one forward (and at most one short backward) of one model yields, already on the CPU as numpy."""

    logits: np.ndarray  # (num_classes,) float32
    target_index: int  # the class whose score was differentiated (top-1 unless one was asked for)
    activations: np.ndarray  # (1, C, h, w) float32: the CAM layer's output
    gradients: np.ndarray | None  # (1, C, h, w) float32: d score / d activations; None when not asked for
    channel: dict[str, np.ndarray]  # block -> (C,) float32, as applied (after any replacement)
    spatial: dict[str, np.ndarray]  # block -> (h, w) float32, as applied (after any replacement)
    gate_steps: dict[str, GateSteps] = field(default_factory=dict)  # block -> inside the gate; {} unless asked for


def capture_pass(
    model: nn.Module,
    input_tensor: torch.Tensor,
    *,
    stage: int = 4,
    target: int | None = None,
    gradients: bool = True,
    gate_steps: bool | Iterable[str] = False,
    replace: Mapping[GateKey, Replacement] | None = None,
) -> CapturedPass:
    """Run ``model`` once on a (1, 3, H, W) input and collect logits, CAM activations (+ gradients) and all gates.

    The backward starts at the target score and stops at the CAM layer's leaf; nothing is accumulated into ``.grad``.
    ``gate_steps`` (True: every gated block; or names like ``{"layer4.2"}``) also records inside the gates, in this
    same pass; ``replace`` swaps gate outputs for this pass only (see ``AttentionCapture``).
    """
    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, 3, H, W) tensor, got shape {tuple(input_tensor.shape)}")
    device = next(model.parameters()).device
    input_tensor = input_tensor.detach().to(device)
    with torch.inference_mode(False), torch.set_grad_enabled(gradients):
        with AttentionCapture(model, stage_layer(model, stage), gate_steps=gate_steps, replace=replace) as capture:
            logits = model(input_tensor)
        activations = capture.cam_activations
        if activations is None:
            raise RuntimeError(f"layer{stage} did not run in the forward pass")
        index = int(logits[0].argmax()) if target is None else int(target)
        if not 0 <= index < logits.shape[1]:
            raise ValueError(f"target class {index} is out of range for {logits.shape[1]} classes")
        grads = torch.autograd.grad(logits[0, index], activations)[0] if gradients else None
    steps = (capture.steps, capture.step_params)
    return _to_numpy(logits[0], index, activations, grads, capture.channel, capture.spatial, steps)


def _to_numpy(
    logits: torch.Tensor,
    index: int,
    activations: torch.Tensor,
    grads: torch.Tensor | None,
    channel: dict[str, torch.Tensor],
    spatial: dict[str, torch.Tensor],
    gate_steps: tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, Any]]] | None = None,
) -> CapturedPass:
    """One device-to-host copy for everything (on a GPU, dozens of small copies would each synchronise)."""
    steps, params = gate_steps or ({}, {})
    step_parts = [tensor for record in steps.values() for tensor in record.values()]
    parts = [logits, activations, *channel.values(), *spatial.values(), *step_parts]
    parts += [grads] if grads is not None else []
    flat = torch.cat([part.detach().float().reshape(-1) for part in parts]).cpu().numpy()
    pieces = np.split(flat, np.cumsum([part.numel() for part in parts])[:-1])
    shapes = [tuple(part.shape) for part in parts]
    arrays = iter(piece.reshape(shape) for piece, shape in zip(pieces, shapes, strict=True))
    host_logits, host_activations = next(arrays), next(arrays)
    host_channel = {block: next(arrays)[0] for block in channel}
    host_spatial = {block: next(arrays)[0] for block in spatial}
    host_steps = {
        block: steps_from_arrays(block, {name: next(arrays) for name in record}, params.get(block))
        for block, record in steps.items()
    }
    host_grads = next(arrays) if grads is not None else None
    return CapturedPass(host_logits, index, host_activations, host_grads, host_channel, host_spatial, host_steps)
