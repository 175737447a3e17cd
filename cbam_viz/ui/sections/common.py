"""What every section of the page shares: the ``Section`` record, the parts a section is built from, the ``Page``
its events are wired against, an accordion that remembers whether it is open, and a few layout helpers.

A section module (``ui/sections/<key>.py``) declares ``SECTION = Section(key, build, wire, ...)``: ``build(parts)``
lays out its components inside the page's Blocks and returns a small dataclass of them (its handle); ``wire(page)``
connects its events, once every section is built. ``ui.sections.SECTIONS`` is the one list of them, in page order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.panels.registry import PAGE, Panel, panels_in
from cbam_viz.ui.server.engine import Engine, ServeSettings
from cbam_viz.ui.study import Shelf

if TYPE_CHECKING:  # the handles' types, for annotations only: each section module imports this one
    from cbam_viz.ui.sections.credits import Credits
    from cbam_viz.ui.sections.drill import Drill
    from cbam_viz.ui.sections.export import Export
    from cbam_viz.ui.sections.gate import Gate
    from cbam_viz.ui.sections.header import Header
    from cbam_viz.ui.sections.inputs import Inputs
    from cbam_viz.ui.sections.intervene import Intervene
    from cbam_viz.ui.sections.lesson import LessonLink
    from cbam_viz.ui.sections.live import Live
    from cbam_viz.ui.sections.results import Results
    from cbam_viz.ui.sections.study import StudyView
    from cbam_viz.ui.sections.trust import Trust

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


@dataclass(frozen=True)
class Section:
    """One area of the page, declared once: how it is built and wired, and how the page treats it."""

    key: str  # its module's name under ui/sections, and the ``section`` of the panels it shows
    build: Callable[[Parts], Any]
    wire: Callable[[Page], None]
    title: str = ""  # catalogue key of its accordion's title ("": always shown, no accordion)
    elem_id: str = ""  # its accordion's element id (the page's CSS and the browser tests find it by this)
    remembered: bool = False  # its open state is kept per tab: redraws reach it only while open, a link may open it
    own_runs: bool = False  # its panels show runs of their own (interventions, checks): a new analysis clears them
    presenter_hides: tuple[str, ...] = ()  # element ids ``?presenter=1`` leaves out (besides its accordion)

    def hidden_for_presenter(self) -> tuple[str, ...]:
        """The element ids a projector does not show: every accordion, and what the section names."""
        return ((self.elem_id,) if self.title else ()) + self.presenter_hides


@dataclass
class Parts:
    """What every section is built from: the page, the engine, the server's limits, the panels' cells and the
    tab's state."""

    blocks: gr.Blocks  # the page (its load events)
    engine: Engine
    settings: ServeSettings
    cells: Cells
    state: gr.State  # the tab's analysis (a ``ui.results.Result``)
    studies: Shelf = field(default_factory=Shelf)  # the studies the Study section may open (the allow-list)

    def panels(self, section: Section) -> list[Panel]:
        """The panels ``section`` shows, in the registry's order."""
        return panels_in(section.key, self.cells.panels)

    def models_queue(self) -> dict[str, Any]:
        """Events that run a model share the analysis slots."""
        return {"concurrency_id": "models", "concurrency_limit": self.settings.concurrency}

    def expensive_queue(self) -> dict[str, Any]:
        """Expensive events (Score-CAM and ROAD analyses, sanity checks, curves, sweeps) share their own small group,
        beside the analysis slots: photo mode keeps its slot whatever waits here."""
        return {"concurrency_id": "expensive", "concurrency_limit": self.settings.expensive_concurrency}

    def render_queue(self) -> dict[str, Any]:
        """Events that only draw from a cached analysis share the drawing slots."""
        return {"concurrency_id": "render", "concurrency_limit": self.settings.render_concurrency}


@dataclass
class Box:
    """A section's accordion and, when the section is remembered, its open state (a per-tab ``gr.State``)."""

    section: Section
    accordion: gr.Accordion
    opened: gr.State | None


@dataclass
class Page:
    """Every section's handle, by section key: what ``wire`` functions read."""

    parts: Parts
    sections: tuple[Section, ...]
    header: Header
    inputs: Inputs
    live: Live
    lesson: LessonLink
    results: Results
    drill: Drill
    gate: Gate
    intervene: Intervene
    trust: Trust
    study: StudyView
    export: Export
    credits: Credits

    def boxes(self) -> list[Box]:
        """The remembered accordions, in page order (a lesson link opens the first one open)."""
        return [getattr(self, section.key).box for section in self.sections if section.remembered]

    def opened(self) -> list[gr.State]:
        """The open states of the remembered accordions, in page order."""
        return [box.opened for box in self.boxes()]


@contextmanager
def accordion(section: Section) -> Iterator[Box]:
    """The section's accordion, closed, with its open state when the section is remembered."""
    opened = gr.State(False) if section.remembered else None
    with gr.Accordion(T(section.title), open=False, elem_id=section.elem_id) as box:
        yield Box(section, box, opened)


def track(box: Box) -> Any:
    """Keep ``box.opened`` in step with the accordion; -> the expand event, for what opening it should draw."""
    key = box.section.key
    expanded = box.accordion.expand(
        lambda: True, None, box.opened, api_name=f"{key}_open", api_visibility="private", queue=False
    )
    box.accordion.collapse(
        lambda: False, None, box.opened, api_name=f"{key}_closed", api_visibility="private", queue=False
    )
    return expanded


def explanation(text: Any, **options: Any) -> gr.Markdown:
    """Plain words with equations: $...$ inline and $$...$$ displayed."""
    return gr.Markdown(text, latex_delimiters=LATEX, **options)


def explained(key: str) -> None:
    """A closed "What am I looking at?" box with the catalogue's ``explain.<key>``."""
    with gr.Accordion(T("page.what_am_i_looking_at"), open=False, elem_classes="explain"):
        explanation(T(f"explain.{key}"))


def panel_row(panel: Panel, cells: Cells) -> None:
    """A panel's heading, its explanation and one cell per model (or one for the page)."""
    if panel.heading:
        gr.Markdown(T(panel.heading), elem_classes="panel-heading")
    if panel.explanation:
        explained(panel.explanation)
    if panel.page_wide:
        cells.add(panel, PAGE)
        return
    with gr.Row(equal_height=False):
        for model_id in cells.lineup.ids:
            with gr.Column(min_width=240, elem_classes="model-column"):
                cells.add(panel, model_id)
