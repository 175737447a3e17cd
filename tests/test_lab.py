"""The attention lab in the app: "Inside the gate" and "Switch gates off" as panels, handlers and API endpoints.

The engine's numbers (gates.py, intervene.py) are tested in test_gates.py and test_intervene.py; here: the page's
pick of a gate, the spec its pickers spell, what the panels draw, and that ``/gate_steps``, ``/intervene`` and
``/sweep`` answer through gradio_client with the same numbers as the engine, or with one line.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from cbam_viz.analysis import gates
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import class_name, using
from cbam_viz.pipeline import analyze
from cbam_viz.ui.panels import interventions as intervene_view
from cbam_viz.ui.panels import registry as panels
from cbam_viz.ui.panels.gate import GatePick
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections import gate as gate_section
from cbam_viz.ui.sections import intervene as intervene_section
from cbam_viz.ui.sections import results as results_section
from cbam_viz.ui.sections.request import PageRequest
from cbam_viz.ui.server.engine import Engine
from cbam_viz.vocab import ARCH_ORDER
from tests.helpers.app import page_cells


def _analyse(engine: Engine, picture: Path, gate_open: bool) -> Result:
    asked = PageRequest(str(picture), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 3, "whole")
    result, _, _ = results_section.run_analysis(engine, asked, False, gate_open)
    return result


# ------------------------------------------------------------------------------------------------ the pick


def test_a_gate_pick_is_checked_once_with_one_line_errors() -> None:
    assert GatePick.checked("cbam_resnet50", "", None) == GatePick("cbam_resnet50", None, None)
    assert GatePick.checked("se_resnet50", " layer2.3 ", 17.0) == GatePick("se_resnet50", "layer2.3", 17)
    for arch, block, channel, words in (
        ("resnet50", "", None, "ResNet-50 has no gates: pick SE-ResNet-50 or CBAM-ResNet-50"),
        ("vgg16", "", None, "unknown model 'vgg16'"),
        ("cbam_resnet50", "layer4.3", None, "block must be a name like layer4.2"),
        ("cbam_resnet50", "x" * 5000, None, "block must be a name like layer4.2"),
        ("cbam_resnet50", "layer4.2", 1.5, "channel must be a whole number"),
    ):
        with pytest.raises(CbamVizError, match=words) as raised:
            GatePick.checked(arch, block, channel)
        assert "\n" not in str(raised.value) and len(str(raised.value)) < 200


def test_the_pickers_spell_the_clis_spec() -> None:
    spell = intervene_view.spec_from_controls
    assert spell("channel", "stage", 4, 2, "one", 16) == "layer4:channel=one" == intervene_view.DEFAULT_SPEC
    assert spell("spatial", "block", 3, 5, "mean", 16) == "layer3.5:spatial=mean"
    assert spell("both", "all", 1, 0, "keep-top-k", 16.0) == "all:both=keep-top-k:16"
    assert spell("channel", "block", 4, None, "shuffle", None) == "layer4.2:channel=shuffle"
    with pytest.raises(CbamVizError, match="stage 4 has blocks 0-2"):
        spell("channel", "block", 4, 5, "one", 16)
    with pytest.raises(CbamVizError, match="where must be"):
        spell("channel", "everywhere", 4, 0, "one", 16)


# ----------------------------------------------------------------------------------------- inside the gate


def test_inside_the_gate_draws_the_recorded_steps_of_the_picked_block(engine: Engine, picture: Path) -> None:
    result = _analyse(engine, picture, gate_open=True)
    analysis = result.analysis
    assert not analysis.models["resnet50"].gate_steps
    assert set(analysis.models["cbam_resnet50"].gate_steps) == set(analysis.models["cbam_resnet50"].channel_attention)
    display = panels.Display.checked("viridis", 0.4, False, 3, GatePick.checked("cbam_resnet50", "", None))
    equations = panels.render_gate_equations(analysis, display)[panels.PAGE]
    steps = analysis.models["cbam_resnet50"].gate_steps["layer3.5"]  # the last block of the analysed stage
    strongest = int(gates.channel_order(steps).order[0])
    assert "**layer3.5**" in equations.value and gates.channel_equation(steps, strongest) in equations.value
    assert gates.spatial_equation(steps, *gates.strongest_position(steps)) in equations.value
    assert "CBAM-ResNet-50" in equations.caption
    for render in (panels.render_gate_channel, panels.render_gate_spatial):
        shown = render(analysis, display)[panels.PAGE]
        assert isinstance(shown.value, Image.Image) and shown.value.width >= 600 and shown.stage == 3
    se = panels.Display.checked("jet", 0.5, False, 3, GatePick.checked("se_resnet50", "layer1.0", 3))
    assert "MLP(squeeze)[3]" in panels.render_gate_equations(analysis, se)[panels.PAGE].value
    spatial = panels.render_gate_spatial(analysis, se)[panels.PAGE]
    assert spatial.value is None and "no spatial gate" in spatial.caption


def test_a_gate_opened_after_the_analysis_runs_that_model_once_more_with_the_same_numbers(
    engine: Engine, picture: Path
) -> None:
    recorded = _analyse(engine, picture, gate_open=True).analysis.models["cbam_resnet50"].gate_steps["layer2.3"]
    result = _analyse(engine, picture, gate_open=False)
    assert all(not model.gate_steps for model in result.analysis.models.values())
    cells = page_cells()
    values = ("jet", 0.5, False, 4, False, True, "cbam_resnet50", "layer2.3", None)
    updates = gate_section.show_gate(engine, cells, result, str(picture), *values)
    again = result.analysis.models["cbam_resnet50"].gate_steps["layer2.3"]
    assert np.array_equal(again.channel.gate, recorded.channel.gate)
    assert np.array_equal(again.spatial.gate, recorded.spatial.gate)
    shown = {key: update for key, update in updates.items()}
    equations = shown[cells.values[("gate_equations", panels.PAGE)]]["value"]
    assert gates.channel_equation(again, int(gates.channel_order(again).order[0])) in equations
    assert not result.analysis.models["se_resnet50"].gate_steps  # only the picked model ran again
    closed = gate_section.show_gate(engine, cells, result, str(picture), *values[:5], False, *values[6:])
    assert closed and all(update == gr.skip() for update in closed.values())


def test_gate_steps_api_answers_the_engines_numbers_and_one_line_errors(client: Client, picture: Path) -> None:
    answer = client.predict(
        handle_file(str(picture)), "cbam_resnet50", "layer3.1", 7, "demo", "whole", api_name="/gate_steps"
    )
    assert answer["model"] == "cbam_resnet50" and answer["block"] == "layer3.1" and answer["equation_channel"] == 7
    assert answer["recomposition_error"]["channel"] <= 1e-6 and answer["recomposition_error"]["spatial"] <= 1e-6
    assert answer["channel_equation"].startswith("Mc[7] = σ(MLP(avg)[7] + MLP(max)[7])")
    assert len(answer["order"]) == answer["channels"] == len(answer["channel"]["gate"])
    gate = np.array(answer["channel"]["gate"])
    assert np.all(np.diff(gate[answer["order"]]) <= 0)  # strongest first
    assert len(answer["strongest"]) == len(answer["weakest"]) == gates.MARKED
    spatial = answer["spatial"]
    assert np.array(spatial["gate"]).ndim == 2 and np.array(spatial["kernel_max"]).shape == (7, 7)
    assert spatial["equation"].startswith(f"Ms[{spatial['position'][0]},{spatial['position'][1]}]")
    default = client.predict(
        handle_file(str(picture)), "se_resnet50", "", None, "demo", "whole", api_name="/gate_steps"
    )
    assert default["block"] == "layer4.2" and default["kind"] == "se" and default["spatial"] is None
    assert default["channel"]["max"] is None
    for model, block, words in (
        ("resnet50", "", "ResNet-50 has no gates: pick SE-ResNet-50 or CBAM-ResNet-50"),
        ("cbam_resnet50", "layer5.0", "block must be a name like layer4.2"),
    ):
        with pytest.raises(Exception, match=words) as raised:
            client.predict(handle_file(str(picture)), model, block, None, "demo", "whole", api_name="/gate_steps")
        assert "\n" not in str(raised.value)


# --------------------------------------------------------------------------------------------- interventions


def test_intervene_and_sweep_apis_match_the_engine(client: Client, picture: Path, demo_weights: Path) -> None:
    request = [handle_file(str(picture)), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole"]
    answer = client.predict(*request, "layer3:spatial=one", api_name="/intervene")
    engine_answer = analyze(
        Image.open(picture), weights="demo", weights_dir=demo_weights, interventions=["layer3:spatial=one"]
    ).to_json()
    for arch in ("cbam_resnet50",):
        assert answer["models"][arch]["interventions"] == engine_answer["models"][arch]["interventions"]
    assert "spatial" in answer["models"]["se_resnet50"]["interventions"][0]["note"]
    swept = client.predict(*request, api_name="/sweep")
    assert {entry["gate"] for entry in swept["models"]["cbam_resnet50"]["sweep"]["entries"]} == {"channel", "spatial"}
    assert {entry["gate"] for entry in swept["models"]["se_resnet50"]["sweep"]["entries"]} == {"channel"}
    for models, spec, words in (
        (["resnet50"], "layer3:channel=one", "no attention gates"),
        (list(ARCH_ORDER), "layer3:channel=off", "how must be one, mean, shuffle or keep-top-k"),
        (list(ARCH_ORDER), "x" * 100_000, "bad intervention"),
    ):
        with pytest.raises(Exception, match=words) as raised:
            client.predict(request[0], models, *request[2:], spec, api_name="/intervene")
        assert "\n" not in str(raised.value) and len(str(raised.value)) < 300


def test_the_intervention_panels_show_before_and_after(engine: Engine, picture: Path) -> None:
    asked = PageRequest(str(picture), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole")
    result, document = intervene_section.run_intervention(engine, asked, "all:both=one")
    analysis = result.analysis
    display = panels.Display()
    top5 = panels.render_intervene_top5(analysis, display)
    change = document["models"]["cbam_resnet50"]["interventions"][0]["target_prob_change"]
    assert f"Δp = {change:+.3f}" in top5["cbam_resnet50"].value and "| before | after |" in top5["cbam_resnet50"].value
    assert "no attention gates" in top5["resnet50"].value
    assert "| before | after |" in top5["se_resnet50"].value  # ``both`` is every gate SE has: its channel gate
    spatial, _ = intervene_section.run_intervention(engine, asked, "all:spatial=one")
    noted = panels.render_intervene_top5(spatial.analysis, display)
    assert "SE-ResNet-50 has no spatial gate" in noted["se_resnet50"].value  # said, never a silent no-op
    assert "CBAM" not in noted["se_resnet50"].value and "Δp" in noted["cbam_resnet50"].value
    cbam = analysis.models["cbam_resnet50"]
    labels = [label for label, _ in cbam.top5] + [cbam.intervention_labels[i] for i, _ in cbam.interventions[0].top5]
    with using("zh"):  # the shapes are named in the page's language: before, after and in p(...)
        chinese = panels.render_intervene_top5(analysis, display)["cbam_resnet50"].value
        names = [class_name(label, True) for label in labels]
        target = class_name(cbam.target_label, True)
    assert all(name in chinese for name in names) and f"p(“{target}”)" in chinese
    assert not any(f" {label} (" in chinese for label in labels if label not in names)  # no English shape left
    cams = panels.render_intervene_cam(analysis, display)
    assert set(cams) == {"se_resnet50", "cbam_resnet50"} and "correlation" in cams["cbam_resnet50"].caption
    assert panels.render_sweep(analysis, display) == {}  # a single intervention has no sweep
    swept, _ = intervene_section.run_intervention(engine, asked, "sweep")
    table = panels.render_sweep(swept.analysis, display)["cbam_resnet50"].value
    assert all(f"\n| {stage} | " in table for stage in (1, 2, 3, 4)) and "spatial gates off" in table


def test_a_picture_cleared_from_the_cache_asks_for_a_new_upload(engine: Engine, picture: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone.png"
    gone.write_bytes(picture.read_bytes())
    result = _analyse(engine, gone, gate_open=False)
    gone.unlink()  # what delete_cache does to an upload after a few minutes
    with pytest.raises(gr.Error, match="cleared from the server after a few minutes: upload it again"):
        asked = PageRequest(str(gone), list(ARCH_ORDER), "demo", "top1", "", "gradcam", 4, "whole")
        intervene_section.run_intervention(engine, asked, "layer4:channel=one")
    cells = page_cells()
    with pytest.raises(gr.Error, match="upload it again"):
        gate_section.show_gate(
            engine, cells, result, str(gone), "jet", 0.5, False, 4, False, True, "cbam_resnet50", "", ""
        )
