"""A per-call cost bound: the sanity checks with Score-CAM are refused on a CPU server, in one line that says why,
before the picture is decoded; Grad-CAM's go on."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from cbam_viz.i18n import language
from cbam_viz.ui.sections.request import PageRequest
from cbam_viz.ui.sections.trust import run_sanity


def _asked(method: str) -> PageRequest:
    fields = dict.fromkeys(PageRequest.__dataclass_fields__)
    fields |= {"image": None, "models": ["resnet50"], "weights": "auto", "target_mode": "top1", "target_class": ""}
    return PageRequest(**fields | {"method": method, "stage": 4, "view": "whole"})


def test_score_cam_sanity_checks_are_refused_on_a_cpu_server() -> None:
    engine = SimpleNamespace(device="cpu", choice_for=lambda weights: "demo")
    with pytest.raises(gr.Error) as caught:
        run_sanity(engine, _asked("scorecam"))
    assert caught.value.message == language.text("error.sanity_scorecam_cpu") and "GPU" in caught.value.message
    assert "\n" not in caught.value.message
    with pytest.raises(gr.Error) as caught:  # Grad-CAM's checks go on (here: to the missing picture)
        run_sanity(engine, _asked("gradcam"))
    assert "GPU" not in caught.value.message


def test_the_refusal_speaks_both_languages() -> None:
    english = language.text("error.sanity_scorecam_cpu")
    with language.using("zh"):
        chinese = language.text("error.sanity_scorecam_cpu")
    assert chinese != english and "GPU" in chinese and "Score-CAM" in chinese
