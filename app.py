"""cbam_viz web app: ResNet-50, SE-ResNet-50 and CBAM-ResNet-50 side by side. Layout and wiring only.

Run ``python app.py`` (http://127.0.0.1:7860). The logic behind every event lives in ``cbam_viz.webapp``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from cbam_viz import explain, webapp
from cbam_viz.analysis import ARCH_ORDER
from cbam_viz.errors import CbamVizError
from cbam_viz.weights import ARCH_TITLES

TITLE = "cbam_viz: where does attention look?"
CSS = """
#banner {border-left: 4px solid var(--color-accent); padding: 4px 12px; background: var(--block-background-fill);}
.panel-title h3 {margin-bottom: 0;}
"""
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
ROWS = (  # (panel, heading, explanation key) for the per-model result rows below the headers
    ("top5", "Top-5 predictions", "top5"),
    ("cam", "Where the evidence is: class activation map", "gradcam"),
    ("spatial", "Spatial attention, each stage (CBAM)", "spatial"),
    ("channel", "Channel attention of the analysed stage (SE, CBAM)", "channel"),
    ("numbers", "The model's numbers", "numbers"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on; 0.0.0.0 opens it to the network (default 127.0.0.1, or $GRADIO_SERVER_NAME)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument(
        "--weights",
        default="auto",
        choices=webapp.WEIGHT_CHOICES,
        help="auto (the ImageNet paper set if downloaded, else demo) or a set name",
    )
    parser.add_argument("--weights-dir", type=Path, default=None, help="a weights folder other than ./weights")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when there is one)")
    parser.add_argument("--queue-size", type=int, default=None, help="waiting requests before 'busy' (64 CPU, 256 GPU)")
    parser.add_argument("--share", action="store_true", help="also open a public *.gradio.live link (opt-in)")
    return parser.parse_args(argv)


def _cell(panel: str, arch: str) -> gr.components.Component:
    """One model's component in one result row."""
    elem_id = f"{panel}-{arch}"
    if panel == "header":
        return gr.Markdown(f"### {ARCH_TITLES[arch]}", elem_id=elem_id, elem_classes="panel-title")
    if panel == "top5":
        return gr.Label(num_top_classes=5, label=f"{ARCH_TITLES[arch]}: top-5", show_label=False, elem_id=elem_id)
    if panel == "numbers":
        return gr.Markdown(elem_id=elem_id)
    if not webapp.has_panel(panel, arch):
        return gr.Markdown(webapp.note_for(panel, arch), elem_id=elem_id)
    return gr.Image(label=ARCH_TITLES[arch], interactive=False, buttons=["download", "fullscreen"], elem_id=elem_id)


def _explanation(text: str, **options: Any) -> gr.Markdown:
    """Plain words with equations: $...$ inline and $$...$$ displayed."""
    return gr.Markdown(text, latex_delimiters=LATEX, **options)


def _explained_row(panel: str, heading: str, key: str, cells: dict[tuple[str, str], Any]) -> None:
    gr.Markdown(f"#### {heading}")
    with gr.Accordion("What am I looking at?", open=False):
        _explanation(explain.explanation(key))
    with gr.Row(equal_height=False):
        for arch in ARCH_ORDER:
            with gr.Column(min_width=240):
                cells[(panel, arch)] = _cell(panel, arch)


def build_demo(
    engine: webapp.Engine,
    *,
    delete_cache: tuple[int, int] = webapp.DELETE_CACHE,
    settings: webapp.ServeSettings | None = None,
) -> gr.Blocks:
    """The page: input and controls on top, one column per model below, then agreement, drill-down and export."""
    settings = settings or webapp.ServeSettings.for_device(engine.device)
    with gr.Blocks(title=TITLE, delete_cache=delete_cache) as demo:
        analysis = gr.State(None, time_to_live=webapp.STATE_TTL_S)
        gr.Markdown("# Where does attention look?\nResNet-50, SE-ResNet-50 and CBAM-ResNet-50 on the same picture.")
        banner = gr.Markdown(
            webapp.banner_markdown(
                engine.weights, engine.weights_note, engine.device, engine.parameters, engine.weights_dir
            ),
            elem_id="banner",
        )
        with gr.Accordion("What am I looking at?", open=False):
            _explanation(explain.explanation("overview"))

        with gr.Row():
            with gr.Column(scale=5):
                image = webapp.image_input(
                    sources=["upload", "webcam", "clipboard"],
                    type="filepath",
                    image_mode=None,
                    label="Your picture (upload, webcam or paste)",
                    height=320,
                    elem_id="input-image",
                )
                analyse = gr.Button("Analyse", variant="primary", elem_id="analyse")
                image_notes = gr.Markdown(elem_id="image-notes")
                for title, items in engine.examples.items():
                    gr.Examples(
                        [[path] for path, _ in items],
                        inputs=[image],
                        label=title,
                        example_labels=[caption for _, caption in items],
                        examples_per_page=10,
                        cache_examples=False,
                        api_visibility="private",
                    )
            with gr.Column(scale=6):
                models = gr.CheckboxGroup(list(webapp.MODEL_CHOICES), value=list(ARCH_ORDER), label="Models to compare")
                with gr.Row():
                    target_mode = gr.Radio(list(webapp.TARGET_MODES), value=webapp.TARGET_TOP1, label="Explain")
                    target_class = gr.Dropdown(
                        list(engine.categories(engine.weights)),
                        value="",
                        filterable=True,
                        allow_custom_value=True,
                        interactive=False,
                        label="Class for every model (type to search)",
                    )
                with gr.Row():
                    method = gr.Dropdown(list(webapp.METHOD_CHOICES), value="gradcam", label="CAM method")
                    stage = gr.Radio(list(webapp.STAGES), value=4, label="Stage (CAM and channel plot)")
                with gr.Row():
                    view = gr.Radio(list(webapp.VIEW_CHOICES), value="whole", label="What the models see")
                    faithfulness = gr.Checkbox(False, label="Measure faithfulness (ROAD, slower)")
                with gr.Accordion("Display: redraws at once, without re-running the models", open=True):
                    with gr.Row():
                        cmap = gr.Dropdown(list(webapp.COLORMAPS), value="jet", label="Colormap")
                        opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Map opacity")
                        shared_scale = gr.Checkbox(False, label="One colour scale for all models")
                    with gr.Accordion("What do these change?", open=False):
                        _explanation(explain.explanation("display") + "\n\n" + explain.explanation("view"))
                with gr.Accordion("Weights", open=False):
                    weights = gr.Dropdown(engine.weight_choices(), value="auto", label="Weights set")
                    weights_status = gr.Markdown()
                    download = gr.Button("Download the chosen ImageNet set", size="sm")

        cells: dict[tuple[str, str], Any] = {}
        with gr.Row(equal_height=False):
            for arch in ARCH_ORDER:
                with gr.Column(min_width=240):
                    cells[("header", arch)] = _cell("header", arch)
        for panel, heading, key in ROWS:
            _explained_row(panel, heading, key, cells)
            if panel == "cam":
                method_note = _explanation(explain.method_note("gradcam"))

        with gr.Accordion("Faithfulness: does the model rely on the hot pixels?", open=False):
            _explanation(explain.explanation("faithfulness"))
        gr.Markdown("#### Do the models agree?")
        with gr.Accordion("What am I looking at?", open=False):
            _explanation(explain.explanation("agreement"))
        agreement = gr.Markdown(elem_id="agreement")

        drill_open = gr.State(False)
        with gr.Accordion("Every block of one stage", open=False, elem_id="drill") as drill_box:
            _explanation(explain.explanation("blocks"))
            drill_stage = gr.Radio(list(webapp.STAGES), value=4, label="Stage")
            with gr.Row(equal_height=False):
                for arch in ARCH_ORDER:
                    with gr.Column(min_width=240):
                        gr.Markdown(f"**{ARCH_TITLES[arch]}**")
                        for panel in webapp.DRILL_PANELS:
                            cells[(panel, arch)] = _cell(panel, arch)

        with gr.Accordion("Export and raw numbers", open=False):
            with gr.Row():
                export = gr.Button("Make the comparison figure and the JSON", elem_id="export")
                figure_file = gr.File(label="Comparison figure (PNG)", interactive=False)
                json_file = gr.File(label="Analysis (JSON)", interactive=False)
            result_json = gr.JSON(label="Analysis (the /analyze API answer)")

        gr.Markdown(webapp.credits_markdown(engine.examples))

        analysis_inputs = [image, models, weights, target_mode, target_class, method, stage, view, faithfulness]
        analysis_outputs = [analysis, result_json, banner]
        display_inputs = [cmap, opacity, shared_scale]
        main_outputs = [cells[key] for key in webapp.panel_keys(webapp.MAIN_PANELS)]
        main_outputs += [agreement, image_notes, method_note]
        overlay_outputs = [cells[key] for key in webapp.panel_keys(webapp.OVERLAY_PANELS)]
        drill_outputs = [cells[key] for key in webapp.panel_keys(webapp.DRILL_PANELS)]
        models_queue = {"concurrency_id": "models", "concurrency_limit": settings.concurrency}
        render_queue = {"concurrency_id": "render", "concurrency_limit": settings.render_concurrency}
        progress_on = [cells[("cam", arch)] for arch in ARCH_ORDER]

        def show_results(event: Any) -> None:
            """After a successful analysis: main panels, then the drill-down at the analysed stage."""
            shown = event.success(
                webapp.render_main,
                [analysis, *display_inputs],
                main_outputs,
                api_visibility="private",
                show_progress_on=progress_on,
                **render_queue,
            )
            shown = shown.success(
                webapp.drill_stage_value,
                [analysis],
                [drill_stage],
                api_visibility="private",
                queue=False,
                show_progress="hidden",
            )
            shown.success(
                webapp.render_drill_if_open,
                [analysis, drill_open, drill_stage, *display_inputs],
                drill_outputs,
                api_visibility="private",
                **render_queue,
            )

        show_results(
            analyse.click(
                partial(webapp.run_analysis, engine),
                analysis_inputs,
                analysis_outputs,
                api_name="analyze",
                show_progress_on=progress_on,
                **models_queue,
            )
        )
        show_results(
            image.change(
                partial(webapp.analysis_if_image, engine),
                analysis_inputs,
                analysis_outputs,
                api_visibility="private",
                show_progress_on=progress_on,
                trigger_mode="always_last",
                **models_queue,
            )
        )
        for trigger in (cmap.input, shared_scale.input, opacity.release):
            trigger(
                webapp.render_overlays,
                [analysis, *display_inputs],
                overlay_outputs,
                api_visibility="private",
                show_progress="minimal",
                **render_queue,
            ).then(
                webapp.redraw_drill_overlays,
                [analysis, drill_open, drill_stage, *display_inputs],
                drill_outputs,
                api_visibility="private",
                show_progress="minimal",
                **render_queue,
            )
        drill_stage.input(
            webapp.render_drill,
            [analysis, drill_stage, *display_inputs],
            drill_outputs,
            api_visibility="private",
            **render_queue,
        )
        drill_box.expand(webapp.set_open, None, drill_open, api_visibility="private", queue=False).then(
            webapp.render_drill,
            [analysis, drill_stage, *display_inputs],
            drill_outputs,
            api_visibility="private",
            **render_queue,
        )
        drill_box.collapse(webapp.set_closed, None, drill_open, api_visibility="private", queue=False)
        export.click(
            webapp.export_files,
            [analysis, *display_inputs],
            [figure_file, json_file],
            api_name="export",
            **render_queue,
        )
        target_mode.change(
            webapp.target_mode_changed,
            [target_mode],
            [target_class],
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
        weights.input(
            partial(webapp.target_choices, engine),
            [weights],
            [target_class, weights_status],
            api_visibility="private",
            **models_queue,
        )
        download.click(
            partial(webapp.download_weights, engine),
            [weights],
            [weights_status, weights],
            api_name="download_weights",
            concurrency_id="download",
            concurrency_limit=1,
        )
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.render_concurrency)
    return demo


def serve(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    prevent_thread_lock: bool = False,
    probe_localhost: bool = True,
) -> tuple[Any, str, str]:
    """Launch with the app's limits (upload size, no monitoring route, no extra served paths).

    ``probe_localhost=False`` skips Gradio's start-up probe of the page (three-second timeout), which a busy
    test machine can miss; Gradio would then refuse to start without a share link.
    """
    return demo.launch(
        **webapp.launch_options(host, port, share),
        prevent_thread_lock=prevent_thread_lock,
        css=CSS,
        theme=gr.themes.Soft(),
        _frontend=probe_localhost,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    webapp.limit_malloc_arenas()  # before any server thread allocates: keeps a long-running server's memory flat
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        engine = webapp.Engine.start(args.weights, args.device, args.weights_dir)
    except CbamVizError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"weights: {engine.weights} ({engine.weights_note})")
    print(f"device: {engine.device}")
    settings = webapp.ServeSettings.for_device(engine.device, args.queue_size)
    print(f"queue: {settings.queue_size} waiting at most, {settings.concurrency} analysis at a time")
    print(f"open http://{args.host}:{args.port}")
    serve(build_demo(engine, settings=settings), args.host, args.port, args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
