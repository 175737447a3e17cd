"""One owner for every hook the analysis puts on a model, and the single forward/backward pass that uses them.

``AttentionCapture`` registers forward hooks on each attention gate (SE/CBAM channel vectors, CBAM spatial maps) and
on the CAM layer, keeps the handles and removes them in ``finally``: a failed pass never leaves a hook behind. The CAM
layer's hook hands the rest of the network a fresh graph leaf (``output.detach().requires_grad_()``), so the backward
for the CAM covers only CAM layer -> logits, whatever the model's parameters say about ``requires_grad``.

Hooks only record forwards of the thread that opened the capture, and a per-model lock keeps two captures on one model
from running at once, so concurrent analyses never see each other's maps.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import torch
from torch import nn

from cbam_viz.attention import channel_gates, spatial_gates
from cbam_viz.vocab import STAGES

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
    """

    def __init__(self, model: nn.Module, cam_layer: nn.Module | None = None) -> None:
        self.model = model
        self.cam_layer = cam_layer
        self.channel: dict[str, torch.Tensor] = {}
        self.spatial: dict[str, torch.Tensor] = {}
        self.cam_activations: torch.Tensor | None = None
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
            for block, gate in channel.items():
                self._handles.append(gate.register_forward_hook(self._recorder(self.channel, block, channel=True)))
            for block, gate in spatial.items():
                self._handles.append(gate.register_forward_hook(self._recorder(self.spatial, block, channel=False)))
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

    def _recorder(self, store: dict[str, torch.Tensor], block: str, *, channel: bool) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if self._mine():
                attention = output.detach()
                store[block] = attention.flatten(1) if channel else attention[:, 0]

        return hook

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


@dataclass
class CapturedPass:
    """What one forward (and at most one short backward) of one model yields, already on the CPU as numpy."""

    logits: np.ndarray  # (num_classes,) float32
    target_index: int  # the class whose score was differentiated (top-1 unless one was asked for)
    activations: np.ndarray  # (1, C, h, w) float32: the CAM layer's output
    gradients: np.ndarray | None  # (1, C, h, w) float32: d score / d activations; None when not asked for
    channel: dict[str, np.ndarray]  # block -> (C,) float32
    spatial: dict[str, np.ndarray]  # block -> (h, w) float32


def capture_pass(
    model: nn.Module, input_tensor: torch.Tensor, *, stage: int = 4, target: int | None = None, gradients: bool = True
) -> CapturedPass:
    """Run ``model`` once on a (1, 3, H, W) input and collect logits, CAM activations (+ gradients) and all gates.

    The backward starts at the target score and stops at the CAM layer's leaf; nothing is accumulated into ``.grad``.
    """
    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, 3, H, W) tensor, got shape {tuple(input_tensor.shape)}")
    device = next(model.parameters()).device
    input_tensor = input_tensor.detach().to(device)
    with torch.inference_mode(False), torch.set_grad_enabled(gradients):
        with AttentionCapture(model, stage_layer(model, stage)) as capture:
            logits = model(input_tensor)
        activations = capture.cam_activations
        if activations is None:
            raise RuntimeError(f"layer{stage} did not run in the forward pass")
        index = int(logits[0].argmax()) if target is None else int(target)
        if not 0 <= index < logits.shape[1]:
            raise ValueError(f"target class {index} is out of range for {logits.shape[1]} classes")
        grads = torch.autograd.grad(logits[0, index], activations)[0] if gradients else None
    return _to_numpy(logits[0], index, activations, grads, capture.channel, capture.spatial)


def _to_numpy(
    logits: torch.Tensor,
    index: int,
    activations: torch.Tensor,
    grads: torch.Tensor | None,
    channel: dict[str, torch.Tensor],
    spatial: dict[str, torch.Tensor],
) -> CapturedPass:
    """One device-to-host copy for everything (on a GPU, dozens of small copies would each synchronise)."""
    parts = [logits, activations, *channel.values(), *spatial.values()] + ([grads] if grads is not None else [])
    flat = torch.cat([part.detach().float().reshape(-1) for part in parts]).cpu().numpy()
    pieces = np.split(flat, np.cumsum([part.numel() for part in parts])[:-1])
    shapes = [tuple(part.shape) for part in parts]
    arrays = iter(piece.reshape(shape) for piece, shape in zip(pieces, shapes, strict=True))
    host_logits, host_activations = next(arrays), next(arrays)
    host_channel = {block: next(arrays)[0] for block in channel}
    host_spatial = {block: next(arrays)[0] for block in spatial}
    host_grads = next(arrays) if grads is not None else None
    return CapturedPass(host_logits, index, host_activations, host_grads, host_channel, host_spatial)
