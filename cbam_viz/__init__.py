"""cbam_viz: see where convolutional attention looks (ResNet-50, SE-ResNet-50 and CBAM-ResNet-50 side by side).

The public API is imported lazily, so that ``python -m cbam_viz --help`` and the app's start-up stay quick.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_model": "cbam_viz.weights",
    "resolve_weights": "cbam_viz.weights",
    "analyze": "cbam_viz.analysis",
    "decode_image": "cbam_viz.imaging",
    "build_resnet": "cbam_viz.resnet",
    "ArchConfig": "cbam_viz.resnet",
    "CbamVizError": "cbam_viz.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cbam_viz' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
