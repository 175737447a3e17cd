"""The page: layout and wiring only. Rows of panels come from ``panels.PANELS``; what events do is in ``handlers``.

``build_demo(engine)`` returns the Blocks; ``main(argv)`` is what ``python app.py`` runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from cbam_viz.errors import CbamVizError
from cbam_viz.render import fonts
from cbam_viz.ui import gallery, handlers, i18n, live
from cbam_viz.ui.banner import banner_markdown
from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels import gate as gate_view
from cbam_viz.ui.panels import interventions as intervene_view
from cbam_viz.ui.panels.registry import COLORMAPS, IMAGE_HEIGHT, PAGE, PANELS, Panel, panels_in
from cbam_viz.ui.server import choices, guard, tempdir
from cbam_viz.ui.server import engine as engine_module
from cbam_viz.ui.server.engine import Engine, ServeSettings
from cbam_viz.ui.server.proxies import TrustedProxies
from cbam_viz.ui.uploads import image_input
from cbam_viz.vocab import (
    ARCH_ORDER,
    ARCH_TITLES,
    CAM_METHODS,
    STAGE_DEPTHS,
    STAGES,
    TARGET_MODES,
    VIEWS,
    all_blocks,
)

TITLE = "cbam_viz: where does attention look?"
LIVE_TIME_LIMIT_S = 120  # one webcam stream's server time; pressing the webcam button again starts another
LIVE_WAITING = 16  # streams past the live slots that still run (each only says "busy" until a slot frees)
LIVE_EVERY_S = 0.1  # the browser sends a frame this often: the newest wins, so more often only costs the client
CSS = """
#banner {border-left: 4px solid var(--color-accent); padding: 4px 12px; background: var(--block-background-fill);}
.panel-caption p {margin: 0; font-size: 0.95em;}
#results-status {min-height: 1.5em;}
/* A refused action says why in one line (a toast, or the line under the picture); Gradio's "Error" badge on each
   output of that event only covered the panels' own text (a phone's pointing table). */
[data-testid="status-tracker"] .clear-status, [data-testid="status-tracker"] span.error {display: none;}
[id^="pointing-"] td:first-child {white-space: nowrap;} /* "CAM" whole in a phone's narrow first column */
"""
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
# ?presenter=1: a projector in a lecture hall. Large type, the three models side by side at full width, no control
# panels: the picture, its examples and the Analyse button stay, as large buttons.
PRESENTER_JS = """
() => {
    if (new URLSearchParams(location.search).get('presenter') === '1') document.body.classList.add('presenter');
}
"""
PRESENTER_CSS = """
body.presenter, body.presenter .gradio-container {
    --text-xxs: 14px; --text-xs: 16px; --text-sm: 18px; --text-md: 22px; --text-lg: 26px; --text-xl: 32px;
    --text-xxl: 40px; --block-label-text-size: 18px; --block-title-text-size: 22px;
}
body.presenter #controls, body.presenter .explain, body.presenter #live, body.presenter #drill,
body.presenter #gate, body.presenter #intervene, body.presenter #trust, body.presenter #export-box,
body.presenter #lesson-link-button, body.presenter #lesson-link, body.presenter #banner, body.presenter footer
    {display: none !important;}
body.presenter .panel-caption p {font-size: 28px !important;}
body.presenter .panel-image {height: 520px !important;}
body.presenter .panel-image img {object-fit: contain !important; width: 100% !important; height: 100% !important;}
body.presenter #analyse {font-size: 1.6em; min-height: 3em;}
body.presenter h1 {font-size: 2.2em;}
body.presenter h4 {font-size: 1.6em;}
"""


def _explanation(text: str, **options: Any) -> gr.Markdown:
    """Plain words with equations: $...$ inline and $$...$$ displayed."""
    return gr.Markdown(text, latex_delimiters=LATEX, **options)


def _cell(panel: Panel, key: str, cells: handlers.Cells) -> None:
    """One cell: the caption that names its model, then the panel's component."""
    title = "" if panel.page_wide else f"**{ARCH_TITLES[key]}**"
    cells.captions[(panel.key, key)] = gr.Markdown(
        title, elem_id=f"{panel.key}-{key}-caption", elem_classes="panel-caption"
    )
    cells.values[(panel.key, key)] = panel.component(key)


def _panel_row(panel: Panel, cells: handlers.Cells) -> None:
    """A panel's heading, its explanation and one cell per model (or one for the page)."""
    if panel.heading:
        gr.Markdown(T(panel.heading), elem_classes="panel-heading")
    if panel.explanation:
        with gr.Accordion(T("page.what_am_i_looking_at"), open=False, elem_classes="explain"):
            _explanation(T(f"explain.{panel.explanation}"))
    if panel.page_wide:
        _cell(panel, PAGE, cells)
        return
    with gr.Row(equal_height=False):
        for arch in ARCH_ORDER:
            with gr.Column(min_width=240):
                _cell(panel, arch, cells)


def build_demo(
    engine: Engine,
    *,
    delete_cache: tuple[int, int] = engine_module.DELETE_CACHE,
    settings: ServeSettings | None = None,
    panels: tuple[Panel, ...] = PANELS,
) -> gr.Blocks:
    """The page: input and controls on top, one column per model below, then the drill-down and export."""
    settings = settings or ServeSettings.for_device(engine.device)
    i18n.follow_visitors()  # what handlers write is in the language of the visitor whose event it is
    cells = handlers.Cells(panels=panels)
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        state = gr.State(None, time_to_live=engine_module.STATE_TTL_S)
        with gr.Row(equal_height=True):
            gr.Markdown(T("page.heading"))
            language_choice = i18n.switch()
        banner = gr.Markdown(
            banner_markdown(engine.choice, engine.device, engine.parameters, engine.weights_dir),
            elem_id="banner",
        )
        with gr.Accordion(T("page.what_am_i_looking_at"), open=False, elem_classes="explain"):
            _explanation(T("explain.overview"))

        with gr.Row():
            with gr.Column(scale=5):
                image = image_input(
                    sources=["upload", "webcam", "clipboard"],
                    type="filepath",
                    image_mode=None,
                    label=T("page.picture"),
                    height=320,
                    elem_id="input-image",
                )
                analyse = gr.Button(T("page.analyse"), variant="primary", elem_id="analyse")
                notes = gr.Markdown(elem_id="image-notes")
                examples = gr.Gallery(
                    gallery.items_for(engine.examples, engine.is_demo),
                    label=gallery.title_for(engine.is_demo),
                    columns=5,
                    height="auto",
                    allow_preview=False,
                    elem_id="examples",
                )
            with gr.Column(scale=6, elem_id="controls"):
                models = gr.CheckboxGroup(
                    [(ARCH_TITLES[arch], arch) for arch in ARCH_ORDER],
                    value=list(ARCH_ORDER),
                    label=T("page.models"),
                )
                with gr.Row():
                    target_mode = gr.Radio(
                        [(T(f"target_mode.{mode}"), mode) for mode in TARGET_MODES],
                        value="top1",
                        label=T("page.explain"),
                    )
                    target_class = gr.Dropdown(
                        list(engine.categories(engine.weights)),
                        value="",
                        filterable=True,
                        allow_custom_value=True,
                        interactive=False,
                        label=T("page.target_class"),
                    )
                with gr.Row():
                    method = gr.Dropdown(
                        [(method.label, name) for name, method in CAM_METHODS.items()],
                        value="gradcam",
                        label=T("page.method"),
                    )
                    stage = gr.Radio(list(STAGES), value=4, label=T("page.stage"), elem_id="analysis-stage")
                with gr.Row():
                    view = gr.Radio(
                        [(T(f"view.{view_}"), view_) for view_ in VIEWS],
                        value="whole",
                        label=T("page.view"),
                    )
                    faithfulness = gr.Checkbox(False, label=T("page.faithfulness"))
                with gr.Accordion(T("page.display"), open=True):
                    with gr.Row():
                        cmap = gr.Dropdown(list(COLORMAPS), value="jet", label=T("page.cmap"))
                        opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label=T("page.opacity"))
                        shared_scale = gr.Checkbox(False, label=T("page.shared_scale"))
                    with gr.Accordion(T("page.what_do_these_change"), open=False):
                        _explanation(T("explain.display"))
                        _explanation(T("explain.view"))
                with gr.Accordion(T("page.weights"), open=False):
                    weights = gr.Dropdown(engine.weight_choices(), value="auto", label=T("page.weights_set"))
                    weights_status = gr.Markdown(T("explain.weights_sources") if engine.is_demo else "")
                    download = (
                        gr.Button(T("page.download"), size="sm", elem_id="download") if engine.allow_download else None
                    )

        with gr.Accordion(T("page.live"), open=False, elem_id="live") as live_box:
            _explanation(T("explain.live"))
            with gr.Row():
                with gr.Column(scale=2, min_width=240):
                    live_cam = gr.Image(
                        sources=["webcam"],
                        streaming=True,
                        type="numpy",
                        label=T("page.webcam"),
                        height=240,
                        webcam_options=gr.WebcamOptions(mirror=False),  # as the class sees it: text reads right
                        elem_id="live-cam",
                    )
                    live_stage = gr.Radio(list(STAGES), value=4, label=T("page.live_stage"))
                    freeze = gr.Button(T("page.freeze"), elem_id="live-freeze")
                with gr.Column(scale=5):
                    live_view = gr.Image(
                        interactive=False, format="jpeg", show_label=False, height=IMAGE_HEIGHT, elem_id="live-view"
                    )
                    live_status = gr.Markdown(T("page.live_start"), elem_id="live-status")
            live_clock = gr.State(None)
            live_frame = gr.State(None)

        with gr.Row():
            link_button = gr.Button(T("page.copy_link"), size="sm", scale=0, elem_id="lesson-link-button")
            lesson_link = gr.Textbox(
                show_label=False,
                placeholder=T("page.link_placeholder"),
                buttons=["copy"],
                max_lines=1,
                scale=4,
                elem_id="lesson-link",
            )
        lesson_note = gr.Markdown(elem_id="lesson-note")
        status = gr.Markdown(elem_id="results-status")
        for panel in panels_in("main", panels):
            _panel_row(panel, cells)
            if panel.key == "cam":
                method_note = _explanation(T("method.gradcam.note"), elem_id="method-note")
        with gr.Accordion(T("page.faithfulness_box"), open=False, elem_classes="explain"):
            _explanation(T("explain.faithfulness"))

        drill_open = gr.State(False)
        with gr.Accordion(T("page.drill"), open=False, elem_id="drill") as drill_box:
            _explanation(T("explain.blocks"))
            drill_stage = gr.Radio(list(STAGES), value=4, label=T("page.drill_stage"))
            with gr.Row(equal_height=False):
                for arch in ARCH_ORDER:
                    with gr.Column(min_width=240):
                        for panel in panels_in("drill", panels):
                            _cell(panel, arch, cells)

        gate_open = gr.State(False)
        with gr.Accordion(T("page.gate"), open=False, elem_id="gate") as gate_box:
            _explanation(T("explain.gate"))
            with gr.Row():
                gate_model = gr.Dropdown(
                    [(ARCH_TITLES[arch], arch) for arch in gate_view.GATED],
                    value=gate_view.GATED[-1],
                    allow_custom_value=True,  # the API's one-line answer for a model without gates
                    label=T("page.model"),
                    elem_id="gate-model",
                )
                gate_block = gr.Dropdown(
                    all_blocks(),
                    value=gate_view.default_block(4),
                    allow_custom_value=True,
                    label=T("page.gate_block"),
                    elem_id="gate-block",
                )
                gate_channel = gr.Textbox(  # a Number cannot be empty, and empty means "the strongest"
                    "",
                    max_lines=1,
                    max_length=8,
                    label=T("page.gate_channel"),
                    elem_id="gate-channel",
                )
            for panel in panels_in("gate", panels):
                _cell(panel, PAGE, cells)
            with gr.Accordion(T("page.gate_raw_box"), open=False):
                gate_raw = gr.Button(T("page.gate_raw"), size="sm", elem_id="gate-raw")
                gate_json = gr.JSON(label="/gate_steps", elem_id="gate-json")

        with gr.Accordion(T("page.intervene"), open=False, elem_id="intervene") as intervene_box:
            _explanation(T("explain.intervene"))
            with gr.Row():
                iv_gate = gr.Radio(
                    [(T(f"gate.which.{gate}"), gate) for gate in ("channel", "spatial", "both")],
                    value="channel",
                    label=T("page.iv_gate"),
                )
                iv_where = gr.Radio(
                    [(T(f"where.{where}"), where) for where in intervene_view.WHERE_CHOICES],
                    value="stage",
                    label=T("page.iv_where"),
                )
                iv_stage = gr.Radio(list(STAGES), value=4, label=T("page.iv_stage"))
                iv_block = gr.Slider(0, max(STAGE_DEPTHS) - 1, value=2, step=1, label=T("page.iv_block"))
            with gr.Row():
                iv_how = gr.Radio(
                    [(T(f"how.{how}"), how) for how in intervene_view.HOWS], value="one", label=T("page.iv_how")
                )
                iv_k = gr.Slider(1, 512, value=16, step=1, label=T("page.iv_k"))
            spec = gr.Textbox(
                intervene_view.DEFAULT_SPEC,
                label=T("page.iv_spec"),
                max_length=200,
                elem_id="intervene-spec",
            )
            sweep_spec = gr.State("sweep")
            with gr.Row():
                intervene = gr.Button(T("page.iv_run"), variant="primary", elem_id="intervene-run")
                sweep = gr.Button(T("page.sweep_run"), elem_id="sweep-run")
            intervention_state = gr.State(None, time_to_live=engine_module.STATE_TTL_S)
            for panel in panels_in("intervene", panels):
                _panel_row(panel, cells)
            with gr.Accordion(T("page.iv_raw_box"), open=False):
                intervention_json = gr.JSON(label="/intervene", elem_id="intervene-json")

        trust_open = gr.State(False)
        with gr.Accordion(T("page.trust"), open=False, elem_id="trust") as trust_box:
            _explanation(T("explain.trust"))
            with gr.Row():
                with gr.Column(scale=3):
                    box_picture = gr.Image(
                        interactive=False,
                        label=T("page.box_picture"),
                        height=IMAGE_HEIGHT,
                        buttons=[],
                        elem_id="box-picture",
                    )
                with gr.Column(scale=2):
                    box = gr.Textbox(
                        "",
                        max_lines=1,
                        max_length=100,
                        label=T("page.box"),
                        elem_id="box",
                    )
                    box_score = gr.Button(T("page.box_score"), size="sm", elem_id="box-score")
                    sanity_run = gr.Button(T("page.sanity_run"), elem_id="sanity-run")
                    curves_run = gr.Button(T("page.curves_run"), elem_id="curves-run")
            box_corner = gr.State(None)
            for panel in panels_in("trust", panels):
                _panel_row(panel, cells)
            with gr.Accordion(T("page.trust_raw_box"), open=False):
                sanity_json = gr.JSON(label="/sanity", elem_id="sanity-json")
                curves_json = gr.JSON(label="/deletion_insertion", elem_id="curves-json")

        with gr.Accordion(T("page.export_box"), open=False, elem_id="export-box"):
            with gr.Row():
                export = gr.Button(T("page.export"), elem_id="export")
                figure_file = gr.File(label=T("page.figure_file"), interactive=False)
                json_file = gr.File(label=T("page.json_file"), interactive=False)
            result_json = gr.JSON(label=T("page.result_json"))

        credits = gr.Markdown(gallery.credits_markdown(engine.examples))

        # ------------------------------------------------------------------------------------------------ wiring
        page = {
            "notes": notes,
            "method_note": method_note,
            "status": status,
            "drill_stage": drill_stage,
            "state": state,
            "gate_block": gate_block,
            "box_picture": box_picture,
            "box": box,
            "box_corner": box_corner,
        }
        request_inputs = [image, models, weights, target_mode, target_class, method, stage, view]
        analysis_inputs = [*request_inputs, faithfulness, box, gate_open]
        # in the order of handlers.redraw's parameters after the result:
        display_inputs = [
            cmap,
            opacity,
            shared_scale,
            drill_stage,
            drill_open,
            gate_open,
            gate_model,
            gate_block,
            gate_channel,
        ]
        show_inputs = [state, *display_inputs, trust_open]
        all_outputs = cells.outputs(panels)
        after_outputs = [
            *all_outputs,
            notes,
            method_note,
            status,
            drill_stage,
            gate_block,
            box_picture,
            box,
            box_corner,
        ]
        models_queue = {"concurrency_id": "models", "concurrency_limit": settings.concurrency}
        render_queue = {"concurrency_id": "render", "concurrency_limit": settings.render_concurrency}
        progress_on = [cells.values[("cam", arch)] for arch in ARCH_ORDER]

        def show(
            result: Any,
            cmap_: str,
            opacity_: float,
            shared_: bool,
            drill_stage_: int,
            open_: bool,
            gate_open_: bool,
            gate_model_: str,
            gate_block_: str,
            gate_channel_: str | None,
            trust_open_: bool,
        ) -> dict:
            if result is None:
                return cells.unchanged(cells.panels)
            stage_ = result.analysis.stage
            gate = handlers.GatePick.checked(gate_model_, None, gate_channel_) if gate_open_ else None
            display = handlers.Display.checked(cmap_, opacity_, shared_, stage_, gate)
            return handlers.page_outputs_after_analysis(cells, result, display, open_, page, gate_open_, trust_open_)

        def failed(request: gr.Request) -> dict:
            return handlers.failure_outputs(cells, page, request)

        analyse_now = _page_event(handlers.run_analysis, engine)
        analyse_changed = _page_event(handlers.analysis_if_image, engine)

        def after(event: Any, name: str) -> None:
            event.success(
                handlers.one_line_errors(show),
                show_inputs,
                after_outputs,
                api_name=f"{name}_panels",
                api_visibility="private",
                show_progress_on=progress_on,
                **render_queue,
            )
            event.failure(
                failed,
                None,
                [*all_outputs, notes, status, state],
                api_name=f"{name}_failed",
                api_visibility="private",
                queue=False,
                show_progress="hidden",
            )

        after(
            analyse.click(
                analyse_now,
                analysis_inputs,
                [state, result_json, banner],
                api_name="analyze",
                show_progress_on=progress_on,
                **models_queue,
            ),
            "analyze",
        )
        after(
            image.change(
                analyse_changed,
                analysis_inputs,
                [state, result_json, banner],
                api_name="analyze_on_change",
                api_visibility="private",
                show_progress_on=progress_on,
                trigger_mode="always_last",
                **models_queue,
            ),
            "analyze_on_change",
        )

        def pick(weights_: str, current: Any, selection: gr.SelectData) -> Any:
            return pick_example(engine, weights_, current, selection)

        examples.select(
            pick,
            [weights, image],
            [image],
            api_name="pick_example",
            api_visibility="private",
            queue=False,
        )
        for name, control in (
            ("models", models),
            ("target_mode", target_mode),
            ("target_class", target_class),
            ("method", method),
            ("stage", stage),
            ("view", view),
            ("faithfulness", faithfulness),
            ("weights", weights),
        ):
            control.input(
                handlers.stale_status,
                [state],
                [status],
                api_name=f"stale_{name}",
                api_visibility="private",
                queue=False,
                show_progress="hidden",
            )

        display_outputs = cells.outputs([panel for panel in panels if "display" in panel.redraw_on])
        drill_outputs = cells.outputs([panel for panel in panels if panel.section == "drill"])
        gate_outputs = cells.outputs([panel for panel in panels if panel.section == "gate"])
        intervene_outputs = cells.outputs([panel for panel in panels if panel.section == "intervene"])
        for name, trigger in (("cmap", cmap.input), ("shared_scale", shared_scale.input), ("opacity", opacity.release)):
            trigger(
                partial(handlers.redraw, cells, "display"),
                [state, *display_inputs],
                display_outputs,
                api_name=f"redraw_{name}",
                api_visibility="private",
                show_progress="minimal",
                **render_queue,
            )
        drill_stage.input(
            partial(handlers.redraw, cells, "drill"),
            [state, *display_inputs],
            drill_outputs,
            api_name="drill",
            api_visibility="private",
            **render_queue,
        )
        drill_box.expand(
            lambda: True, None, drill_open, api_name="drill_open", api_visibility="private", queue=False
        ).then(
            partial(handlers.redraw, cells, "drill"),
            [state, *display_inputs],
            drill_outputs,
            api_name="drill_opened",
            api_visibility="private",
            **render_queue,
        )
        drill_box.collapse(
            lambda: False, None, drill_open, api_name="drill_closed", api_visibility="private", queue=False
        )
        gate_box.expand(
            lambda: True, None, gate_open, api_name="gate_open", api_visibility="private", queue=False
        ).then(
            partial(handlers.show_gate, engine, cells),
            [state, image, *display_inputs],
            gate_outputs,
            api_name="gate_opened",
            api_visibility="private",
            **models_queue,
        )
        gate_box.collapse(lambda: False, None, gate_open, api_name="gate_closed", api_visibility="private", queue=False)
        for name, trigger in (
            ("model", gate_model.input),
            ("block", gate_block.input),
            ("channel", gate_channel.submit),
            ("channel_blur", gate_channel.blur),
        ):
            trigger(
                partial(handlers.show_gate, engine, cells),
                [state, image, *display_inputs],
                gate_outputs,
                api_name=f"gate_{name}",
                api_visibility="private",
                trigger_mode="always_last",
                **models_queue,
            )
        gate_raw.click(
            _gate_steps_event(engine),
            [image, gate_model, gate_block, gate_channel, weights, view],
            [gate_json],
            api_name="gate_steps",
            **models_queue,
        )
        trust_outputs = cells.outputs([panel for panel in panels if panel.section == "trust"])
        pointing_outputs = cells.outputs([panel for panel in panels if panel.key == "pointing"])
        trust_box.expand(
            lambda: True, None, trust_open, api_name="trust_open", api_visibility="private", queue=False
        ).then(
            partial(handlers.show_trust, cells),
            [state, cmap, opacity],
            trust_outputs,
            api_name="trust_opened",
            api_visibility="private",
            **render_queue,
        )
        trust_box.collapse(
            lambda: False, None, trust_open, api_name="trust_closed", api_visibility="private", queue=False
        )
        for name, run, output in (
            ("sanity", handlers.run_sanity, sanity_json),
            ("deletion_insertion", handlers.run_curves, curves_json),
        ):
            sanity_run_button = sanity_run if name == "sanity" else curves_run
            shown_on = [cells.values[("sanity", arch)] for arch in ARCH_ORDER] if name == "sanity" else None
            sanity_run_button.click(
                _checks_event(run, engine),
                [*request_inputs, state],
                [output],
                api_name=name,
                show_progress_on=shown_on or [cells.values[("curves", PAGE)]],  # the bar where the result will be
                **models_queue,
            ).success(
                partial(handlers.show_trust, cells),
                [state, cmap, opacity],
                trust_outputs,
                api_name=f"{name}_panels",
                api_visibility="private",
                **render_queue,
            )

        def box_click(result: Any, corner: Any, cmap_: str, opacity_: float, selection: gr.SelectData) -> dict:
            return handlers.box_clicked(cells, page, result, corner, cmap_, opacity_, selection)

        box_picture.select(
            box_click,
            [state, box_corner, cmap, opacity],
            [box_picture, box, box_corner, *pointing_outputs],
            api_name="box_click",
            api_visibility="private",
            show_progress="hidden",  # an overlay on the picture would catch the second click
            **render_queue,
        )
        for name, trigger in (("box_score", box_score.click), ("box_submit", box.submit)):
            trigger(
                partial(handlers.score_box, cells, page),
                [state, box, cmap, opacity],
                [box_picture, *pointing_outputs],
                api_name=name,
                api_visibility="private",
                **render_queue,
            )
        iv_controls = [iv_gate, iv_where, iv_stage, iv_block, iv_how, iv_k]
        for name, control in zip(("gate", "where", "stage", "block", "how", "k"), iv_controls, strict=True):
            (control.release if isinstance(control, gr.Slider) else control.input)(
                handlers.intervention_spec,
                iv_controls,
                [spec],
                api_name=f"intervene_{name}",
                api_visibility="private",
                queue=False,
                show_progress="hidden",
            )
        for name, button, spec_input in (("intervene", intervene, spec), ("sweep", sweep, sweep_spec)):
            button.click(
                _intervene_event(engine),
                [*request_inputs, spec_input],
                [intervention_state, intervention_json],
                api_name=name,
                show_progress_on=intervene_outputs[:1],
                **models_queue,
            ).success(
                partial(handlers.show_intervention, cells),
                [intervention_state, cmap, opacity],
                intervene_outputs,
                api_name=f"{name}_panels",
                api_visibility="private",
                **render_queue,
            )
        slots = live.LiveSlots(settings.live_sessions)

        def live_frame_in(
            frame: Any,
            models_: Any,
            weights_: Any,
            stage_: Any,
            cmap_: Any,
            opacity_: Any,
            clock: Any,
            request: gr.Request,
        ) -> Any:
            return handlers.live_step(engine, slots, frame, models_, weights_, stage_, cmap_, opacity_, clock, request)

        live_cam.stream(
            live_frame_in,
            [live_cam, models, weights, live_stage, cmap, opacity, live_clock],
            [live_view, live_status, live_clock, live_frame],
            api_name="live",
            api_visibility="private",
            stream_every=LIVE_EVERY_S,
            time_limit=LIVE_TIME_LIMIT_S,
            show_progress="hidden",
            concurrency_id="live",
            # more than the live slots: a viewer past them must run at once to be told "busy", not wait in the queue
            concurrency_limit=settings.live_sessions + LIVE_WAITING,
        )

        def live_stop(request: gr.Request) -> None:
            handlers.live_stopped(slots, request)

        live_cam.clear(live_stop, None, None, api_name="live_stop", api_visibility="private", queue=False)
        freeze.click(handlers.freeze_frame, [live_frame], [image], api_name="live_freeze", api_visibility="private")
        open_states = {"live": gr.State(False), "intervene": gr.State(False)}
        for name, box in (("live", live_box), ("intervene", intervene_box)):
            box.expand(
                lambda: True, None, open_states[name], api_name=f"{name}_open", api_visibility="private", queue=False
            )
            box.collapse(
                lambda: False, None, open_states[name], api_name=f"{name}_closed", api_visibility="private", queue=False
            )
        lesson_controls = {
            "image": image,
            "models": models,
            "weights": weights,
            "method": method,
            "stage": stage,
            "target_mode": target_mode,
            "target_class": target_class,
            "view": view,
            "cmap": cmap,
            "opacity": opacity,
            "shared": shared_scale,
            "note": lesson_note,
        }
        accordions = {"live": live_box, "drill": drill_box, "gate": gate_box, "intervene": intervene_box}
        accordions["trust"] = trust_box
        panel_open = {"live": open_states["live"], "drill": drill_open, "gate": gate_open}
        panel_open |= {"intervene": open_states["intervene"], "trust": trust_open}

        def apply_lesson(current: Any, request: gr.Request) -> dict:
            return handlers.apply_lesson(engine, lesson_controls, accordions, panel_open, current, request)

        demo.load(
            apply_lesson,
            [image],
            [*lesson_controls.values(), *accordions.values(), *panel_open.values()],
            api_name="lesson",
            api_visibility="private",
            queue=False,
        )

        def link_to_view(
            image_: Any,
            models_: Any,
            weights_: Any,
            method_: Any,
            stage_: Any,
            target_mode_: Any,
            target_class_: Any,
            view_: Any,
            cmap_: Any,
            opacity_: Any,
            shared_: Any,
            *opened: bool,
        ) -> tuple[str, str]:
            settings_ = (
                models_,
                weights_,
                method_,
                stage_,
                target_mode_,
                target_class_,
                view_,
                cmap_,
                opacity_,
                shared_,
            )
            return handlers.lesson_link(engine, image_, *settings_, dict(zip(panel_open, opened, strict=True)))

        link_button.click(
            link_to_view,
            [image, models, weights, method, stage, target_mode, target_class, view, cmap, opacity, shared_scale]
            + list(panel_open.values()),
            [lesson_link, lesson_note],
            api_name="lesson_link",
            api_visibility="private",
            queue=False,
        ).then(
            None,
            [lesson_link],
            [lesson_link],
            js="(query) => { const link = location.origin + location.pathname + query; "
            "navigator.clipboard && navigator.clipboard.writeText(link).catch(() => {}); return link; }",
            api_name="lesson_link_full",
            api_visibility="private",
            queue=False,
        )
        words = {"language": language_choice, "banner": banner, "examples": examples, "weights": weights}
        words |= {"target_class": target_class, "credits": credits}

        def page_words(result: Any, weights_: str) -> dict:
            return handlers.page_words(engine, words, result, weights_)

        def switched(language_: str, result: Any, weights_: str) -> dict:  # the language is the page's URL's now
            return handlers.page_words(engine, words, result, weights_)

        demo.load(page_words, [state, weights], list(words.values()), api_name="words", api_visibility="private")
        language_choice.input(
            switched,
            [language_choice, state, weights],
            list(words.values()),
            js=i18n.SWITCH_JS,  # the page's own words change in the browser first, then the server's follow
            api_name="language",
            api_visibility="private",
            queue=False,
        ).then(
            handlers.one_line_errors(show),
            show_inputs,
            after_outputs,
            api_name="language_panels",
            api_visibility="private",
            **render_queue,
        ).then(
            partial(handlers.show_intervention, cells),
            [intervention_state, cmap, opacity],
            intervene_outputs,
            api_name="language_intervention",
            api_visibility="private",
            **render_queue,
        )
        export.click(
            handlers.export_files,
            [state, cmap, opacity, shared_scale],
            [figure_file, json_file],
            api_name="export",
            **render_queue,
        )
        target_mode.change(
            handlers.target_mode_changed,
            [target_mode],
            [target_class],
            api_name="target_mode",
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
        weights.input(
            partial(handlers.target_choices, engine),
            [weights],
            [target_class, weights_status, examples],
            api_name="weights_choice",
            api_visibility="private",
            **models_queue,
        )
        if download is not None:
            download.click(
                partial(handlers.download_weights, engine),
                [weights],
                [weights_status, weights, examples],
                api_name="download_weights",
                concurrency_id="download",
                concurrency_limit=1,
                queue=False,
            )
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.render_concurrency)
    return demo


def _page_event(handler: Any, engine: Engine) -> Any:
    """``handler(engine, ...)`` as an event function. A plain function, not a partial: Gradio hands a gr.Request
    only to parameters it finds in type hints, and its parameter names are the API's keyword names."""

    def event(
        image: Any,
        models: Any,
        weights: Any,
        target_mode: Any,
        target_class: Any,
        method: Any,
        stage: Any,
        view: Any,
        faithfulness: Any,
        box: Any,
        gate_open: Any,
        request: gr.Request,
    ) -> Any:
        values = (models, weights, target_mode, target_class, method, stage, view, faithfulness, bool(gate_open), box)
        return handler(engine, image, *values, request)

    return event


def _checks_event(handler: Any, engine: Engine) -> Any:
    """``handlers.run_sanity`` / ``run_curves`` as an event function: the API's parameter names, a progress bar,
    and the tab's state (hidden from the API) to keep the report for the panels."""

    def event(
        image: Any,
        models: Any,
        weights: Any,
        target_mode: Any,
        target_class: Any,
        method: Any,
        stage: Any,
        view: Any,
        result: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's idiom
    ) -> Any:
        values = (models, weights, target_mode, target_class, method, stage, view)
        return handler(engine, result, image, *values, progress=progress)

    return event


def _intervene_event(engine: Engine) -> Any:
    """``handlers.run_intervention`` as an event function whose parameter names are the API's."""

    def event(
        image: Any,
        models: Any,
        weights: Any,
        target_mode: Any,
        target_class: Any,
        method: Any,
        stage: Any,
        view: Any,
        spec: Any,
        request: gr.Request,
    ) -> Any:
        values = (models, weights, target_mode, target_class, method, stage, view, spec)
        return handlers.run_intervention(engine, image, *values, request)

    return event


def _gate_steps_event(engine: Engine) -> Any:
    """``handlers.gate_steps_api`` as an event function whose parameter names are the API's."""

    def event(image: Any, model: Any, block: Any, channel: Any, weights: Any, view: Any) -> Any:
        return handlers.gate_steps_api(engine, image, model, block, channel, weights, view)

    return event


def pick_example(engine: Engine, weights: str, current: Any, selection: gr.SelectData) -> Any:
    """A click on a gallery thumbnail puts that picture into the input (which starts its analysis).

    The input only ever gets a value, never ``gr.skip()`` or another property update: Gradio answers those by
    building the component anew for the session, and the rebuilt one would lose ``uploads.image_input``'s own
    preprocessing (Pillow would then open uploads before the app's decoder sees them)."""
    demo = engine.resolve(weights) == "demo"
    items = gallery.items_for(engine.examples, demo)
    index = selection.index if isinstance(selection.index, int) else 0
    if not 0 <= index < len(items):
        return current
    return items[index][0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="cbam_viz web app: ResNet-50, SE-ResNet-50 and CBAM-ResNet-50.")
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on; 0.0.0.0 opens it to the network (default 127.0.0.1, or $GRADIO_SERVER_NAME)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument(
        "--weights",
        default="auto",
        choices=engine_module.WEIGHT_CHOICES,
        help="auto (the ImageNet paper set if downloaded, else demo) or a set name",
    )
    parser.add_argument("--weights-dir", type=Path, default=None, help="a weights folder other than ./weights")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when there is one)")
    parser.add_argument("--queue-size", type=int, default=None, help="waiting requests before 'busy' (64 CPU, 256 GPU)")
    parser.add_argument(
        "--offline", action="store_true", help="never download weights at start-up (also: CBAM_VIZ_OFFLINE=1)"
    )
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="show the in-page Download button and the /download_weights API (operator's choice)",
    )
    parser.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (opt-in)")
    parser.add_argument(
        "--trusted-proxies",
        type=_proxies,
        default=TrustedProxies(),
        metavar="ADDR[,ADDR]",
        help="reverse proxies whose X-Forwarded-For is believed (addresses or networks; default: none)",
    )
    return parser.parse_args(argv)


def _proxies(value: str) -> TrustedProxies:
    try:
        return TrustedProxies.parse(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (checked before the models load), or None."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as uvicorn binds: a port whose last connections still linger in TIME_WAIT after a stop is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return f"cannot listen on {host}:{port} ({error.strerror or error}): pick another with --port"
    return None


def serve(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    prevent_thread_lock: bool = False,
    probe_localhost: bool = True,
    trusted_proxies: TrustedProxies | None = None,
) -> tuple[Any, str, str]:
    """Launch with the app's limits (upload size, no monitoring route, no extra served paths) behind the guard.

    ``probe_localhost=False`` skips Gradio's start-up probe of the page (three-second timeout), which a busy
    test machine can miss; Gradio would then refuse to start without a share link. ``trusted_proxies``: whose
    X-Forwarded-For the guard believes (nobody's by default; uvicorn's own belief in loopback peers is switched off).
    """
    demo.api_open = False  # queued events run only through the queue (the guard answers the direct routes)
    os.environ["FORWARDED_ALLOW_IPS"] = ""  # read by uvicorn at launch: the guard alone decides who the client is
    choices.install()
    return demo.launch(
        **engine_module.launch_options(host, port, share),
        app_kwargs=guard.app_kwargs(demo, proxies=trusted_proxies),
        prevent_thread_lock=prevent_thread_lock,
        css=CSS + PRESENTER_CSS + i18n.TOAST_CSS,
        js=f"() => {{ ({PRESENTER_JS.strip()})(); ({i18n.LANGUAGE_JS.strip()})(); }}",
        i18n=i18n.catalogues(),
        theme=gr.themes.Soft(),
        _frontend=probe_localhost,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine_module.limit_malloc_arenas()  # before any server thread allocates: keeps a long-running server flat
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    run = tempdir.own()  # before any component exists: Gradio's cache is read when each one is made
    stale = f" ({run.cleared} left by earlier runs removed)" if run.cleared else ""
    print(f"temporary files: {run.path}{stale}")
    try:
        engine = Engine.start(
            args.weights, args.device, args.weights_dir, offline=args.offline, allow_download=args.allow_download
        )
    except CbamVizError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"weights: {engine.weights} ({engine.weights_note})")
    if missing_font := fonts.missing_note():
        print(f"note: {missing_font}")
    threads = engine_module.fit_torch_threads(str(engine.device), engine.weights)
    print(f"device: {engine.device} ({threads} torch thread{'s' if threads != 1 else ''})")
    settings = ServeSettings.for_device(engine.device, args.queue_size)
    print(f"queue: {settings.queue_size} waiting at most, {settings.concurrency} analysis at a time")
    print(f"open http://{args.host}:{args.port}")
    serve(build_demo(engine, settings=settings), args.host, args.port, args.share, trusted_proxies=args.trusted_proxies)
    return 0
