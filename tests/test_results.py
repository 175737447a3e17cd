"""The analyses tabs redraw from (``cbam_viz.ui.results``): one byte budget, least recently used out first, and a
one-line "press Analyse again" for a tab whose analysis was dropped."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from cbam_viz.i18n.language import text
from cbam_viz.pipeline import analyze
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.results import AnalysisCache, Result, analysis_bytes
from cbam_viz.ui.sections import results as results_section
from cbam_viz.weights.files import WEIGHTS_DIR


@pytest.fixture(scope="module")
def analysis():
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    return analyze(picture, device="cpu", weights_dir=WEIGHTS_DIR, weights="demo")


def test_the_budget_counts_bytes_and_drops_the_least_recently_used(analysis) -> None:
    size = analysis_bytes(analysis)
    assert size >= 400 * 300 * 3  # the picture alone, at display size
    cache = AnalysisCache(budget=int(size * 2.5))
    first, second = Result.keep(analysis, "a", cache), Result.keep(analysis, "b", cache)
    assert first.analysis is analysis  # reading it makes it the most recently used
    third = Result.keep(analysis, "c", cache)
    assert len(cache) == 2 and cache.used == 2 * size
    assert first.analysis is analysis and third.analysis is analysis
    with pytest.raises(Exception, match="press Analyse again"):
        second.analysis  # noqa: B018 - the property is what a handler reads


def test_a_dropped_analysis_is_one_line_on_the_page(analysis) -> None:
    cache = AnalysisCache(budget=1)
    gone = Result.keep(analysis, "a", cache)
    Result.keep(analysis, "b", cache)  # pushes the first out: the newest always stays
    with pytest.raises(gr.Error) as raised:
        results_section.redraw(Cells(), "display", gone, "jet", 0.5, False, 4, False)
    assert raised.value.message == text("error.dropped") and "\n" not in raised.value.message
