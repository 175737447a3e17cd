"""Numbers a visitor types: "²" passes ``str.isdigit`` and 5 000 digits pass it too, but ``int`` refuses both; each
gets a clear one-line message through the page's error boundary, never "something went wrong (ValueError)"."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from cbam_viz.analysis.cam import resolve_target
from cbam_viz.analysis.options import Intervention
from cbam_viz.ui.errors import one_line_errors
from cbam_viz.ui.sections.request import PageRequest

ENGINE = SimpleNamespace(choice_for=lambda weights: "demo")


def _message(call) -> str:
    with pytest.raises(gr.Error) as caught:
        one_line_errors(call)()
    return caught.value.message


def _request(target: str) -> PageRequest:
    fields = dict.fromkeys(PageRequest.__dataclass_fields__)
    fields |= {"models": ["resnet50"], "weights": "auto", "target_mode": "shared", "target_class": target}
    fields |= {"method": "gradcam", "stage": 4, "view": "overlay"}
    return PageRequest(**fields)


@pytest.mark.parametrize("target", ["²", "9" * 5000])
def test_a_target_class_that_is_no_index_is_one_clear_line(target: str) -> None:
    message = _message(lambda: _request(target).options(ENGINE))
    assert "ValueError" not in message and "class" in message and "\n" not in message and len(message) < 200
    message = _message(lambda: resolve_target(target, ["a", "b"]))
    assert "ValueError" not in message and "class" in message and len(message) < 200


@pytest.mark.parametrize("spec", ["layer2:channel=keep-top-k:" + "9" * 5000, "layer2:channel=keep-top-k:²"])
def test_keep_top_k_with_no_usable_number_is_one_clear_line(spec: str) -> None:
    message = _message(lambda: Intervention.parse(spec))
    assert "ValueError" not in message and "keep-top-k" in message and len(message) < 300


def test_a_block_number_of_many_digits_is_one_clear_line() -> None:
    message = _message(lambda: Intervention.parse("layer2." + "9" * 5000 + ":channel=one"))
    assert "ValueError" not in message and "layer" in message
