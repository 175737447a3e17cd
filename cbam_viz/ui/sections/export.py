"""Export: the comparison figure (PNG) and the analysis (JSON) of the tab's last analysis, and that JSON on the page."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text
from cbam_viz.render import export as render
from cbam_viz.ui.errors import one_line_errors
from cbam_viz.ui.export import EXPORTS, export_name
from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels.registry import Display
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections.common import Page, Parts, Section, accordion


@dataclass
class Export:
    """The export button, its two files and the analysis's JSON."""

    button: gr.Button
    figure_file: gr.File
    json_file: gr.File
    result_json: gr.JSON  # the last analysis's JSON, as /analyze answers it


def build(parts: Parts) -> Export:
    """The closed export box."""
    with accordion(SECTION):
        with gr.Row():
            button = gr.Button(T("page.export"), elem_id="export")
            figure_file = gr.File(label=T("page.figure_file"), interactive=False)
            json_file = gr.File(label=T("page.json_file"), interactive=False)
        result_json = gr.JSON(label=T("page.result_json"))
    return Export(button, figure_file, json_file, result_json)


@one_line_errors
def export_files(result: Result | None, cmap: str, opacity: float, shared_scale: bool) -> tuple[str, str]:
    """The comparison figure (PNG) and the analysis (JSON), named after the picture."""
    if result is None:
        raise CbamVizError(text("error.export_first"))
    display = Display.checked(cmap, opacity, shared_scale)
    analysis = result.analysis
    figure = render.comparison_figure(
        analysis, cmap=display.cmap, alpha=display.opacity, shared_scale=display.shared_scale
    )
    document = json.dumps(analysis.to_json(), indent=2, ensure_ascii=False).encode("utf-8")
    return (
        EXPORTS.write(export_name(result.picture, "png"), figure),
        EXPORTS.write(export_name(result.picture, "json"), document),
    )


def wire(page: Page) -> None:
    """The button writes both files of the tab's analysis."""
    parts, inputs, handle = page.parts, page.inputs, page.export
    handle.button.click(
        export_files,
        [parts.state, inputs.cmap, inputs.opacity, inputs.shared_scale],
        [handle.figure_file, handle.json_file],
        api_name="export",
        **parts.render_queue(),
    )


SECTION = Section("export", build, wire, title="page.export_box", elem_id="export-box")
