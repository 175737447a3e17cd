"""Can we trust these maps? in the app: /sanity, /deletion_insertion and the box option of /analyze through
gradio_client, the box drawn with two clicks, the true mask of a gallery shape, and the panels they fill.

The checks' numbers are tested in test_sanity.py and test_metrics.py; here, that the app hands them over whole.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cbam_viz.analysis import schema as analysis_module
from cbam_viz.checks import curves as checks_curves
from cbam_viz.checks import pointing as checks_pointing
from cbam_viz.checks import randomisation as checks_randomisation
from cbam_viz.demo import shapes
from cbam_viz.i18n.language import class_name
from cbam_viz.pipeline import analyze
from cbam_viz.ui import gallery
from cbam_viz.ui.panels import registry as panels
from cbam_viz.ui.panels import trust as trust_view
from cbam_viz.ui.sections import results as results_section
from cbam_viz.ui.sections import trust as trust_section
from cbam_viz.ui.sections.request import PageRequest
from cbam_viz.ui.server.engine import Engine
from cbam_viz.vocab import ARCH_ORDER
from tests.helpers.app import page_cells
from tests.helpers.models import random_model, tiny_input
from tests.helpers.schema import validate


def _schema(key: str) -> dict:
    return analysis_module.ANALYSIS_JSON_SCHEMA["properties"][key]


def test_the_checks_answer_through_the_api_as_the_engine_computes_them(
    client: Client, picture: Path, demo_weights: Path
) -> None:
    checks = client.predict(handle_file(str(picture)), api_name="/sanity")
    assert validate(checks, _schema("sanity")) == [] and set(checks["models"]) == set(ARCH_ORDER)
    engine_checks = checks_randomisation.sanity_report(
        Image.open(picture), weights="demo", weights_dir=demo_weights, independent=True
    )
    for arch, model in engine_checks.to_json()["models"].items():
        answered = checks["models"][arch]
        assert answered["cascading"] == model["cascading"] and answered["random_logit"] == model["random_logit"]
        assert [step["step"] for step in answered["independent"]] == [
            "fc",
            "layer4",
            "layer3",
            "layer2",
            "layer1",
            "stem",
        ]
    curves = client.predict(handle_file(str(picture)), ["cbam_resnet50"], api_name="/deletion_insertion")
    assert validate(curves, _schema("deletion_insertion")) == [] and list(curves["models"]) == ["cbam_resnet50"]
    engine_curves = checks_curves.curves_report(
        Image.open(picture), weights="demo", weights_dir=demo_weights, models=["cbam_resnet50"]
    )
    assert (
        curves["models"]["cbam_resnet50"]["deletion"] == engine_curves.to_json()["models"]["cbam_resnet50"]["deletion"]
    )
    with pytest.raises(Exception, match="not one of the choices") as raised:
        client.predict(handle_file(str(picture)), ["vgg"], api_name="/sanity")
    assert "\n" not in str(raised.value)


def test_a_box_on_analyze_plays_the_pointing_game_in_the_pictures_own_pixels(client: Client, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.fromarray(shapes.render_sample(5, 2, width=2048, height=1024).image).save(big)  # shown at 1024x512
    document, _ = client.predict(handle_file(str(big)), box="0,0,1024,1024", api_name="/analyze")
    assert validate(document, analysis_module.ANALYSIS_JSON_SCHEMA) == []
    region = document["pointing"]["region"]
    assert region == {"kind": "box", "box": [0.0, 0.0, 1024.0, 1024.0], "area_share": region["area_share"]}
    assert abs(region["area_share"] - 0.5) < 0.01  # the left half
    assert set(document["pointing"]["models"]["cbam_resnet50"]["spatial"]) == {"1", "2", "3", "4"}
    assert document["pointing"]["models"]["resnet50"]["spatial"] == {}
    for box, words in (("1,2,3", "four numbers"), ("50,50,10,10", "x0 < x1"), ("5000,5000,6000,6000", "a box is")):
        with pytest.raises(Exception, match=words) as raised:
            client.predict(handle_file(str(big)), box=box, api_name="/analyze")
        assert "\n" not in str(raised.value)


def test_two_clicks_draw_the_box_and_score_it_without_running_a_model(engine: Engine, picture: Path) -> None:
    asked = PageRequest(str(picture), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole")
    result, _, _ = results_section.run_analysis(engine, asked, False)
    cells = page_cells()
    page = {"box_picture": gr.Image(), "box": gr.Textbox(), "box_corner": gr.State()}
    first = trust_section.box_clicked(
        cells, page, result, None, "jet", 0.5, gr.SelectData(None, {"index": [20, 30], "value": None})
    )
    assert first[page["box_corner"]] == [20, 30] and page["box"] not in first
    second = trust_section.box_clicked(
        cells, page, result, [20, 30], "jet", 0.5, gr.SelectData(None, {"index": [90, 100], "value": None})
    )
    assert second[page["box"]] == "20,30,91,101" and second[page["box_corner"]] is None
    expected = checks_pointing.box_game(result.analysis, (20, 30, 91, 101)).to_json()["models"]
    assert result.analysis.pointing.to_json()["models"] == expected
    markdown = second[cells.values[("pointing", "cbam_resnet50")]]["value"]
    assert "| CAM |" in markdown and "spatial, stage 4" in markdown
    assert trust_view.pointing_markdown(result.analysis.pointing, "cbam_resnet50") == markdown
    with pytest.raises(gr.Error, match="draw a box first"):
        trust_section.score_box(cells, page, result, "", "jet", 0.5)


def test_a_gallery_shape_is_scored_on_its_true_mask(engine: Engine, tmp_path: Path) -> None:
    label = shapes.CLASSES.index("ring")
    sample = shapes.render_sample(gallery.EXAMPLE_SEED, label, width=gallery.EXAMPLE_SIZE, label=label)
    path = tmp_path / "ring.png"
    Image.fromarray(sample.image).save(path)
    asked = PageRequest(str(path), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole")
    result, document, _ = results_section.run_analysis(engine, asked, False)
    assert document["pointing"]["region"]["kind"] == "mask"
    expected = checks_pointing.mask_game(
        analyze(Image.open(path), weights="demo", weights_dir=engine.weights_dir), sample.mask
    )
    assert document["pointing"]["models"] == expected.to_json()["models"]
    other = tmp_path / "ring-copy.png"  # the same pixels under another name: not known to be the example
    Image.fromarray(np.ascontiguousarray(sample.image[:, ::-1])).save(other)
    assert (
        "pointing"
        not in results_section.run_analysis(
            engine, PageRequest(str(other), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole"), False
        )[1]
    )


def test_the_trust_text_names_the_classes_drawn_and_the_spread_over_draws() -> None:
    model, x = random_model("cbam_resnet50"), tiny_input()
    several = checks_randomisation.model_sanity(
        "cbam_resnet50", model, x, target=3, draws=3, other_classes=2, categories=shapes.CLASSES
    )
    said = trust_view.sanity_markdown(several, demo=True)
    assert "over 3 random networks" in said and "±" in said and "2 random other classes" in said
    assert all(f"“{class_name(other.label, True)}”" in said for other in several.random_logit.classes)
    one = checks_randomisation.model_sanity("cbam_resnet50", model, x, target=3, categories=shapes.CLASSES)
    said = trust_view.sanity_markdown(one, demo=True)
    assert "±" not in said and f"“{class_name(one.random_logit.label, True)}”" in said


def test_the_trust_panels_draw_what_was_run(engine: Engine, picture: Path) -> None:
    asked = PageRequest(str(picture), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole")
    result, _, _ = results_section.run_analysis(engine, asked, False)
    display = panels.Display()
    assert panels.render_sanity(result.analysis, display) == {}
    assert panels.render_curves(result.analysis, display)[panels.PAGE].value is None
    values = (list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole")
    trust_section.run_sanity(engine, PageRequest(str(picture), *values), result)
    trust_section.run_curves(engine, PageRequest(str(picture), *values), result)
    tiles = panels.render_sanity(result.analysis, display)
    # two tiles to a row (their words readable in one model's column): narrower than wide, every tile there
    assert set(tiles) == set(ARCH_ORDER) and all(
        shown.value.width > 250 and shown.value.height > 2 * shown.value.width for shown in tiles.values()
    )
    assert "Fully randomised" in tiles["cbam_resnet50"].caption
    curves = panels.render_curves(result.analysis, display)[panels.PAGE]
    assert isinstance(curves.value, Image.Image) and "random order" in curves.caption
    assert result.analysis.to_json()["sanity"]["models"].keys() == set(ARCH_ORDER)
