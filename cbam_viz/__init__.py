"""cbam_viz: see where convolutional attention looks (ResNet-50, SE-ResNet-50 and CBAM-ResNet-50 side by side).

The public API (docs/api.md) is imported lazily, so that ``python -m cbam_viz --help`` and the app's start-up stay
quick: ``import cbam_viz`` loads neither torch nor Gradio until a name below is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that owns it: the one list of what scripts, benchmarks and notebooks may rely on
_EXPORTS = {
    "analyze": "cbam_viz.pipeline",
    "load_model": "cbam_viz.weights.load",
    "resolve_weights": "cbam_viz.weights.load",
    "get_models": "cbam_viz.analysis.models",
    "build_resnet": "cbam_viz.model.resnet",
    "ArchConfig": "cbam_viz.model.resnet",
    "decode_image": "cbam_viz.imaging.decode",
    "prepare_input": "cbam_viz.imaging.view",
    "map_to_image": "cbam_viz.imaging.view",
    "ModelView": "cbam_viz.imaging.view",
    "Analysis": "cbam_viz.analysis.results",
    "ModelResult": "cbam_viz.analysis.results",
    "Intervention": "cbam_viz.analysis.options",
    "sanity_report": "cbam_viz.checks.randomisation",
    "curves_report": "cbam_viz.checks.curves",
    "box_game": "cbam_viz.checks.pointing",
    "render_sample": "cbam_viz.demo.shapes",
    "CbamVizError": "cbam_viz.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # "name as name": these imports re-export (for type checkers and IDEs)
    from cbam_viz.analysis.models import get_models as get_models
    from cbam_viz.analysis.options import Intervention as Intervention
    from cbam_viz.analysis.results import Analysis as Analysis
    from cbam_viz.analysis.results import ModelResult as ModelResult
    from cbam_viz.checks.curves import curves_report as curves_report
    from cbam_viz.checks.pointing import box_game as box_game
    from cbam_viz.checks.randomisation import sanity_report as sanity_report
    from cbam_viz.demo.shapes import render_sample as render_sample
    from cbam_viz.errors import CbamVizError as CbamVizError
    from cbam_viz.imaging.decode import decode_image as decode_image
    from cbam_viz.imaging.view import (
        ModelView as ModelView,
    )
    from cbam_viz.imaging.view import (
        map_to_image as map_to_image,
    )
    from cbam_viz.imaging.view import (
        prepare_input as prepare_input,
    )
    from cbam_viz.model.resnet import ArchConfig as ArchConfig
    from cbam_viz.model.resnet import build_resnet as build_resnet
    from cbam_viz.pipeline import analyze as analyze
    from cbam_viz.weights.load import load_model as load_model
    from cbam_viz.weights.load import resolve_weights as resolve_weights


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cbam_viz' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    """The public names, for ``dir(cbam_viz)`` and tab completion."""
    return __all__
