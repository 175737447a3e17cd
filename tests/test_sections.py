"""The page's sections: one list of them (``ui.sections.SECTIONS``) that the layout, the redraws, the lesson links and
the presenter view all read; one request with the API's parameter names; and cells that keep a model's note."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import gradio as gr
import pytest

from cbam_viz.i18n.language import using
from cbam_viz.ui import layout, lesson, style
from cbam_viz.ui.panels import registry as panels
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.sections import SECTIONS, inputs
from cbam_viz.ui.sections.request import FIELDS, PageRequest, api_event
from cbam_viz.ui.server.engine import Engine
from cbam_viz.vocab import ARCH_ORDER, has_channel_attention
from cbam_viz.weights import download
from tests.helpers.app import write_random_demo

REQUEST = ["image", "models", "weights", "target_mode", "target_class", "method", "stage", "view"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    weights_dir = write_random_demo(tmp_path_factory.mktemp("weights"))
    return Engine.start("demo", "cpu", weights_dir, warm=False, offline=True)


@pytest.fixture(scope="module")
def demo(engine: Engine) -> gr.Blocks:
    return layout.build_demo(engine)


def test_a_panel_that_does_not_apply_keeps_its_note_whatever_its_render_answers() -> None:
    """A render function that answers every model must not overwrite the note of a model without the panel."""

    def render_every_model(analysis, display):
        return {arch: panels.Shown(f"value of {arch}", f"caption of {arch}") for arch in analysis.models}

    gated = panels.Panel(
        "gated",
        "",
        None,
        "markdown",
        render_every_model,
        panels.ON_ANALYSIS,
        applies=has_channel_attention,
        missing=lambda arch: "missing.no_gates",
    )
    cells = Cells(panels=(gated,))
    with gr.Blocks():
        for arch in ARCH_ORDER:
            cells.add(gated, arch)
    note = cells.values[("gated", "resnet50")]
    assert isinstance(note, gr.Markdown) and "panel-missing" in note.elem_classes  # the "no gates" note
    analysis = SimpleNamespace(models=dict.fromkeys(ARCH_ORDER))
    updates = cells.draw([gated], analysis, panels.Display())
    assert updates[note] == {"__type__": "update", "visible": True}  # shown, its value untouched
    caption = updates[cells.captions[("gated", "resnet50")]]["value"]
    assert caption == panels.model_caption("ResNet-50")
    for arch in ("se_resnet50", "cbam_resnet50"):
        assert updates[cells.values[("gated", arch)]]["value"] == f"value of {arch}"


def test_every_panel_belongs_to_a_section_and_the_accordions_are_read_off_the_list() -> None:
    keys = [section.key for section in SECTIONS]
    assert len(keys) == len(set(keys))
    assert {panel.section for panel in panels.PANELS} <= set(keys)
    remembered = [section.key for section in SECTIONS if section.remembered]
    assert remembered == ["live", "drill", "gate", "intervene", "trust"]
    assert all(section.title and section.elem_id for section in SECTIONS if section.remembered)
    hidden = style.presenter_css().split("{display: none")[0].rsplit("}", 1)[-1]  # the selectors it hides
    for section in SECTIONS:
        for elem_id in section.hidden_for_presenter():
            assert f"body.presenter #{elem_id}" in hidden
    assert "#results-status" not in hidden and "#analyse" not in hidden and "#input-image" not in hidden
    assert lesson.read({"panel": "gate"}, {}, ["auto"], remembered).panel == "gate"
    refused = lesson.read({"panel": "results"}, {}, ["auto"], remembered)
    assert refused.panel is None and "live, drill, gate, intervene or trust" in refused.note()
    query, _ = lesson.write(
        picture=None,
        examples={},
        models=["resnet50"],
        weights="auto",
        method="gradcam",
        stage=4,
        target=None,
        view="whole",
        cmap="jet",
        opacity=0.5,
        shared=False,
        panel="trust",
        openable=remembered,
    )
    assert "panel=trust" in query


def test_the_request_adapter_gives_the_apis_names_and_one_request() -> None:
    assert list(FIELDS) == REQUEST
    seen = []
    event = api_event(lambda asked, **after: seen.append((asked, after)) or "answer", "spec", visitor=True)
    parameters = inspect.signature(event).parameters
    assert list(parameters) == [*REQUEST, "spec", "request"]
    assert parameters["request"].annotation is gr.Request
    assert [parameter.name for parameter in gr.utils.get_positional_input_parameters(event)] == [*REQUEST, "spec"]
    visitor = gr.Request(session_hash="tab")
    assert event("x.png", ["resnet50"], "demo", "top1", "", "gradcam", 4, "whole", "layer4:channel=one", visitor)
    asked, after = seen[0]
    assert asked == PageRequest("x.png", ["resnet50"], "demo", "top1", "", "gradcam", 4, "whole")
    assert after == {"spec": "layer4:channel=one", "request": visitor}
    checks = api_event(lambda asked, **after: after, "result", progress=True)
    assert isinstance(inspect.signature(checks).parameters["progress"].default, gr.Progress)


def test_the_pages_api_keeps_its_names_and_every_section_its_place(demo: gr.Blocks) -> None:
    endpoints = demo.get_api_info()["named_endpoints"]
    names = {endpoint: [p["parameter_name"] for p in info["parameters"]] for endpoint, info in endpoints.items()}
    assert names["/analyze"] == [*REQUEST, "faithfulness", "box"]  # the open gate is the tab's state
    assert names["/intervene"] == [*REQUEST, "spec"]
    assert names["/sweep"] == REQUEST and names["/sanity"] == REQUEST and names["/deletion_insertion"] == REQUEST
    assert names["/gate_steps"] == ["image", "model", "block", "channel", "weights", "view"]
    assert names["/export"] == ["cmap", "opacity", "shared_scale"]
    accordions = [block for block in demo.blocks.values() if isinstance(block, gr.Accordion) and block.elem_id]
    assert [block.elem_id for block in accordions] == [section.elem_id for section in SECTIONS if section.title]
    opened = {fn.api_name for fn in demo.fns.values()}
    for section in SECTIONS:
        if section.remembered:
            assert {f"{section.key}_open", f"{section.key}_closed"} <= opened


def test_build_demo_is_a_short_composition() -> None:
    source = inspect.getsource(layout.build_demo)
    assert len(source.splitlines()) < 100
    assert not any(f'"{section.key}"' in source for section in SECTIONS)  # it reads the list, never a name


def test_one_download_at_a_time_is_said_in_the_pages_words(engine: Engine) -> None:
    """The page has no lock of its own: the weights' download lock is the one, and the page says so in its words."""
    with download.DOWNLOAD_LOCK:
        with pytest.raises(gr.Error, match="a download is already running"):
            inputs.download_weights(engine, "paper")
        with using("zh"), pytest.raises(gr.Error, match="已有一个下载正在进行"):
            inputs.download_weights(engine, "paper")


def test_the_intervention_pickers_and_spec_never_disagree() -> None:
    """The block picker offers only the chosen stage's blocks (a pick past the last becomes the last, and the spec
    says the same); a spec typed by hand moves the pickers, or says in one line why it cannot."""
    from cbam_viz.ui.sections import intervene

    spec, block, note = intervene.intervention_spec("spatial", "block", 1, 5, "mean", 16)
    assert spec == "layer1.2:spatial=mean" and block["maximum"] == 2 and block["value"] == 2 and note == ""
    spec, block, _ = intervene.intervention_spec("channel", "block", 4, 2, "one", 16)
    assert spec == "layer4.2:channel=one" and block["maximum"] == 2
    assert intervene.intervention_spec("channel", "block", 3, 9, "one", 16)[1]["maximum"] == 5
    gate, where, stage, block, how, k, note = intervene.pickers_from_spec("layer2.1:spatial=keep-top-k:8")
    assert (gate, where, stage, how, k, note) == ("spatial", "block", 2, "keep-top-k", 8, "")
    assert block["value"] == 1 and block["maximum"] == 3
    assert intervene.pickers_from_spec("all:both=shuffle")[:2] == ("both", "all")
    *unchanged, note = intervene.pickers_from_spec("layer1.7:channel=one")
    assert all(value == gr.skip() for value in unchanged) and "layer1 has blocks .0-.2" in note
