"""The top of the page: its heading, the language switch, the banner that says which weights answer, and the
overview. Its events write the server's words into the page in the visitor's language (on load and on a switch),
then redraw the panels in it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n import language
from cbam_viz.ui import gallery, i18n
from cbam_viz.ui.banner import banner_markdown
from cbam_viz.ui.i18n import T, class_choices
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections import intervene, results
from cbam_viz.ui.sections.common import Page, Parts, Section, explained
from cbam_viz.ui.server.engine import Engine


@dataclass
class Header:
    """The language switch and the banner."""

    language: gr.Radio
    banner: gr.Markdown


def build(parts: Parts) -> Header:
    """The heading, the language switch, the banner and the overview."""
    engine = parts.engine
    with gr.Row(equal_height=True):
        gr.Markdown(T("page.heading" if engine.card is None else "page.heading_card"), elem_id="page-heading")
        language_choice = i18n.switch()
    banner = gr.Markdown(
        banner_markdown(engine.choice, engine.device, engine.parameters, engine.weights_dir), elem_id="banner"
    )
    explained("overview")
    return Header(language_choice, banner)


def page_words(engine: Engine, words: dict[str, Any], result: Result | None, weights: str) -> dict[Any, Any]:
    """What the server writes into the page outside the panels, in the visitor's language: on page load and when the
    language switch changes (the panels follow through the usual redraw). ``words`` names the components."""
    try:
        demo = engine.resolve(weights) == "demo"
        categories = engine.categories(weights)
    except CbamVizError:
        demo, categories = engine.is_demo, engine.categories(engine.weights)
    try:
        analysis = result.analysis if result is not None else None
    except CbamVizError:
        analysis = None  # dropped from the cache: the start-up banner
    return {
        words["language"]: language.current(),
        words["banner"]: results.analysis_banner(engine, analysis),
        words["examples"]: gr.update(value=gallery.items_for(engine.examples, demo), label=gallery.title_for(demo)),
        words["weights"]: gr.update(choices=engine.weight_choices()),
        words["target_class"]: gr.update(choices=class_choices(categories, demo)),
        words["credits"]: gallery.credits_markdown(engine.examples),
    }


def wire(page: Page) -> None:
    """The server's words on load and on a language switch, then the panels redrawn in that language."""
    parts, inputs = page.parts, page.inputs
    engine = parts.engine
    words = {
        "language": page.header.language,
        "banner": page.header.banner,
        "examples": inputs.examples,
        "weights": inputs.weights,
        "target_class": inputs.target_class,
        "credits": page.credits.markdown,
    }

    def on_load(result: Any, weights: str) -> dict:
        return page_words(engine, words, result, weights)

    def switched(language_: str, result: Any, weights: str) -> dict:  # the language is the page's URL's now
        return page_words(engine, words, result, weights)

    parts.blocks.load(
        on_load, [parts.state, inputs.weights], list(words.values()), api_name="words", api_visibility="private"
    )
    page.header.language.input(
        switched,
        [page.header.language, parts.state, inputs.weights],
        list(words.values()),
        js=i18n.SWITCH_JS,  # the page's own words change in the browser first, then the server's follow
        api_name="language",
        api_visibility="private",
        queue=False,
    ).then(
        results.show_event(page, new_analysis=False),
        results.show_inputs(page),
        results.show_outputs(page),
        api_name="language_panels",
        api_visibility="private",
        **parts.render_queue(),
    ).then(
        intervene.show_event(page),
        intervene.show_inputs(page),
        intervene.outputs(page),
        api_name="language_intervention",
        api_visibility="private",
        **parts.render_queue(),
    )


SECTION = Section("header", build, wire, presenter_hides=("banner",))
