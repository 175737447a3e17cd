"""The always-visible banner: which weights answer, why, and on what device, honestly for the demo set."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cbam_viz.weights import DEMO_SUFFIX, read_demo_metadata

from .errors import escape


def banner_markdown(
    weights_set: str,
    weights_note: str,
    device: str,
    parameters: dict[str, int] | None = None,
    weights_dir: Path | None = None,
) -> str:
    """The always-visible line that says which weights answer and on what device, honestly for the demo set."""
    device_words = device
    if device.startswith("cuda") and torch.cuda.is_available():
        device_words = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    if weights_set == "demo" or weights_set.endswith(DEMO_SUFFIX):
        what = demo_description(parameters or {}, weights_dir)
    else:
        what = f"**ImageNet weights ({weights_set})**: the published models, 1000 ImageNet classes."
    return f"{what}  \n<small>Why these weights: {escape(weights_note)}. · Device: **{device_words}**.</small>"


def demo_description(parameters: dict[str, int], weights_dir: Path | None = None) -> str:
    """What the demo models are, from weights/demo/metadata.json and the loaded parameter counts."""
    metadata = read_demo_metadata(weights_dir)
    base_width = int(metadata["arch_config"].get("base_width", 64))
    size = int(metadata["preprocess"]["resize"])
    classes = len(metadata["classes"])
    width = f"1/{64 // base_width}-width " if base_width < 64 else ""
    counts = sorted(parameters.values())
    if counts:
        low, high = counts[0] / 1e6, counts[-1] / 1e6
        millions = f"{low:.2f} M" if math.isclose(low, high, rel_tol=0.005) else f"{low:.2f}-{high:.2f} M"
        size_words = f" ({millions} parameters each, against 25.6 M for a full ResNet-50)"
    else:
        size_words = ""
    trained_to_point = any(metadata.get("recipe", {}).get("cycle_localisation", ()))
    pointing_words = (
        " Their last training epoch also rewarded a Grad-CAM peak on the shape, so their CAMs point at it by training;"
        " the SE and CBAM attention was never supervised."
        if trained_to_point
        else ""
    )
    return (
        f"**Demo weights, not ImageNet**: three {width}ResNet-50s{size_words}, trained here on {classes} generated "
        f"shape classes at {size}x{size} px. They recognise shapes only; use the shape examples.{pointing_words}"
    )
