"""The public API that scripts, benchmarks and notebooks rely on: every exported name imports, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cbam_viz

EXPECTED = {
    "analyze", "load_model", "get_models", "build_resnet", "ArchConfig", "decode_image", "prepare_input",
    "map_to_image", "ModelView", "Analysis", "ModelResult", "Intervention", "sanity_report", "curves_report",
    "box_game", "render_sample", "CbamVizError", "resolve_weights",
}  # fmt: skip


def test_the_public_names_are_the_documented_ones() -> None:
    assert set(cbam_viz.__all__) == EXPECTED and sorted(dir(cbam_viz)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_public_name_imports(name: str) -> None:
    value = getattr(cbam_viz, name)
    assert value is not None and getattr(value, "__name__", name) == name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cbam_viz.nope  # noqa: B018


def test_importing_the_package_loads_neither_torch_nor_gradio() -> None:
    probe = "import sys, cbam_viz; print(sorted(m for m in ('torch', 'gradio', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
