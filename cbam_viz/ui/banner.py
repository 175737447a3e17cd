"""The always-visible banner: which weights answer, why, and on what device, honestly for the demo set."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cbam_viz.i18n.language import said, text
from cbam_viz.ui.errors import escape
from cbam_viz.weights.load import WeightsChoice, read_demo_metadata


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
    else:
        what = text("banner.imagenet", name=weights.name)
    return f"{what}  \n<small>{text('banner.why', note=escape(said(weights.note)), device=device_words)}</small>"


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
