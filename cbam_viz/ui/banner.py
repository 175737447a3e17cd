"""The always-visible banner: which weights answer, why, and on what device, honestly for the demo set."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cbam_viz.i18n.language import listed, said, text
from cbam_viz.ui.errors import escape
from cbam_viz.vocab import ARCH_TITLES
from cbam_viz.weights.card import ModelCard
from cbam_viz.weights.load import WeightsChoice, read_demo_metadata
from cbam_viz.weights.registry import Preprocess


def banner_markdown(
    weights: WeightsChoice,
    device: str,
    parameters: dict[str, int] | None = None,
    weights_dir: Path | None = None,
) -> str:
    """The always-visible line that says which weights answer and on what device, honestly for the demo set."""
    device_words = device
    if device.startswith("cuda") and torch.cuda.is_available():
        device_words = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    if weights.is_demo:
        what = demo_description(parameters or {}, weights_dir)
    elif weights.card is not None:
        what = card_description(weights.card)
    else:
        what = text("banner.imagenet", name=weights.name)
    return f"{what}  \n<small>{text('banner.why', note=escape(said(weights.note)), device=device_words)}</small>"


def card_description(card: ModelCard, shown_classes: int = 12) -> str:
    """A model card's models: each one's title and architecture, how it prepares a picture (said once when they all
    prepare it the same way), its licence, then the classes they share."""
    shared = len({model.preprocess for model in card.models}) == 1
    models = []
    for model in card.models:
        licence = text("banner.card_licence", licence=escape(model.licence)) if model.licence else ""
        own = "" if shared else f"; {_preprocess_words(model.preprocess)}{licence}"
        models.append(f"**{escape(model.title)}** ({ARCH_TITLES[model.family]}{own})")
    classes = list(card.classes[:shown_classes]) + (["…"] if len(card.classes) > shown_classes else [])
    words = text(
        "banner.card",
        name=escape(card.path.name),
        models=listed(models),
        count=len(card.classes),
        classes=escape(", ".join(classes)),
    )
    if shared:
        licences = sorted({model.licence for model in card.models if model.licence})
        licence = text("banner.card_licence", licence=escape(", ".join(licences))) if licences else ""
        words += " " + text(
            "banner.card_shared", preprocess=_preprocess_words(card.models[0].preprocess), licence=licence
        )
    return words


def _preprocess_words(prepared: Preprocess) -> str:
    numbers = {"mean": list(prepared.mean), "std": list(prepared.std), "interpolation": prepared.interpolation}
    if prepared.crop:
        return text("banner.card_preprocess", resize=prepared.resize, crop=prepared.crop, **numbers)
    return text("banner.card_no_crop", resize=prepared.resize, **numbers)


def demo_description(parameters: dict[str, int], weights_dir: Path | None = None) -> str:
    """What the demo models are, from weights/demo/metadata.json and the loaded parameter counts."""
    metadata = read_demo_metadata(weights_dir)
    base_width = int(metadata["arch_config"].get("base_width", 64))
    size = int(metadata["preprocess"]["resize"])
    classes = len(metadata["classes"])
    width = text("banner.demo_width", fraction=64 // base_width) if base_width < 64 else ""
    counts = sorted(parameters.values())
    if counts:
        low, high = counts[0] / 1e6, counts[-1] / 1e6
        millions = f"{low:.2f} M" if math.isclose(low, high, rel_tol=0.005) else f"{low:.2f}-{high:.2f} M"
        size_words = text("banner.demo_size", millions=millions)
    else:
        size_words = ""
    trained_to_point = any(metadata.get("recipe", {}).get("cycle_localisation", ()))
    pointing_words = text("banner.demo_pointing") if trained_to_point else ""
    return text("banner.demo", width=width, size=size_words, classes=classes, side=size, pointing=pointing_words)
