"""The model cache: the models of a weight set or a model card, loaded once per device and shared by every analysis.

``get_models`` resolves the weights once (``weights.load.resolve_weights``) and keeps the last ``MODEL_CACHE_SIZE``
models, so the app, the CLI and the checks reuse the same frozen models instead of loading them per picture.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cbam_viz.analysis.options import checked_models
from cbam_viz.errors import CbamVizError
from cbam_viz.vocab import Lineup
from cbam_viz.weights.files import weights_root
from cbam_viz.weights.load import WeightsChoice, load_model, resolve_device, resolve_weights

MODEL_CACHE_SIZE = 6  # two weight sets of three models; ImageNet-size models are ~100 MB each


@dataclass
class ModelSet:
    """Loaded models of one weight set on one device (what ``get_models`` returns and the app warms at start-up)."""

    weights: WeightsChoice  # which weights and why, resolved once
    device: str
    models: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def weights_set(self) -> str:
        """The set, entry or file name (the JSON's ``weights.set``)."""
        return self.weights.name

    @property
    def weights_note(self) -> str:
        """One line: which weights and why."""
        return self.weights.note

    @property
    def lineup(self) -> Lineup:
        """The models these weights offer (the paper's three, or a model card's)."""
        return self.weights.lineup

    @property
    def categories(self) -> tuple[str, ...]:
        """The class names, which every model of one set shares (checked when the set is loaded)."""
        return next(iter(self.models.values())).weights_info.categories


_MODEL_CACHE: OrderedDict[tuple[str, str, str, str, str], nn.Module] = OrderedDict()
_MODEL_CACHE_LOCK = threading.Lock()


def get_models(
    models: Sequence[str] | None = None,
    weights: str | WeightsChoice = "auto",
    device: str | torch.device | None = None,
    *,
    weights_dir: Path | None = None,
) -> ModelSet:
    """The requested models of one weight set (every one of its lineup when ``models`` is None), loaded once and
    cached by (model, weights, folder, device).

    The app calls it at start-up to warm the cache. Loaded models are frozen (``requires_grad`` False) and in eval
    mode, which the short CAM backward relies on.
    """
    choice = resolve_weights(weights, weights_dir)
    names = checked_models(choice.lineup.ids if models is None else models, choice.lineup, most=None)
    target = resolve_device(device)
    loaded = ModelSet(choice, str(target))
    folder = str(weights_root(weights_dir).resolve())
    with _MODEL_CACHE_LOCK:
        for name in names:
            version = choice.card.model(name).sha256 if choice.card is not None else ""  # a card's file may change
            key = (name, choice.name, version, folder, str(target))
            if key in _MODEL_CACHE:
                _MODEL_CACHE.move_to_end(key)
            else:
                model = load_model(name, choice, device=target, weights_dir=weights_dir)
                model.eval().requires_grad_(False)
                _MODEL_CACHE[key] = model
                while len(_MODEL_CACHE) > MODEL_CACHE_SIZE:
                    _MODEL_CACHE.popitem(last=False)
            loaded.models[name] = _MODEL_CACHE[key]
    first = loaded.categories
    for name, model in loaded.models.items():
        if model.weights_info.categories != first:
            raise CbamVizError(
                f"the {name} weights of set {choice.name!r} have other classes than {names[0]}: "
                "use one weight set whose models share their classes"
            )
    return loaded


def clear_model_cache() -> None:
    """Forget every loaded model (frees their memory; the next ``get_models`` loads again)."""
    with _MODEL_CACHE_LOCK:
        _MODEL_CACHE.clear()
