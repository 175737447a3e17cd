"""The cells of the panels on the page: one caption and one value component per (panel, model), and their updates.

A section makes the cells of its panels (``Cells.add``); events then write to them by panel, never by position:
``draw`` answers a dict keyed by component, so an event's outputs list and its answer cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio import processing_utils
from PIL import Image

from cbam_viz.analysis.results import Analysis
from cbam_viz.ui.export import export_name
from cbam_viz.ui.panels.registry import PAGE, PANELS, Display, Panel, Shown, model_caption
from cbam_viz.vocab import PAPER_LINEUP, Lineup

CellKey = tuple[str, str]  # (panel key, model id or PAGE)


@dataclass
class Cells:
    """The components the sections made for each panel: (panel key, model id or PAGE) -> caption and value, for the
    models of one lineup (the paper's three, or a model card's)."""

    captions: dict[CellKey, Any] = field(default_factory=dict)
    values: dict[CellKey, Any] = field(default_factory=dict)
    panels: tuple[Panel, ...] = PANELS
    lineup: Lineup = PAPER_LINEUP

    def add(self, panel: Panel, key: str) -> None:
        """One cell, made inside the page's Blocks: the caption that names its model, then the panel's component."""
        spec = None if panel.page_wide else self.lineup.spec(key)
        title = "" if spec is None else model_caption(spec.title)
        self.captions[(panel.key, key)] = gr.Markdown(
            title, elem_id=f"{panel.key}-{key}-caption", elem_classes="panel-caption"
        )
        self.values[(panel.key, key)] = panel.component(spec)

    def keys(self, panels: Iterable[Panel]) -> list[CellKey]:
        """The cells of ``panels``, panel by panel, model by model (or the page's one)."""
        return [key for panel in panels for key in self._keys(panel)]

    def _keys(self, panel: Panel) -> list[CellKey]:
        return [(panel.key, PAGE)] if panel.page_wide else [(panel.key, name) for name in self.lineup.ids]

    def outputs(self, panels: Iterable[Panel]) -> list[Any]:
        """Every component the given panels write to (captions and values)."""
        components = []
        for key in self.keys(panels):
            if key in self.captions:
                components.append(self.captions[key])
            components.append(self.values[key])
        return components

    def value_components(self, panels: Iterable[Panel]) -> list[Any]:
        """The value components of ``panels`` (where a progress bar shows)."""
        return [self.values[key] for key in self.keys(panels)]

    def draw(
        self, panels: Iterable[Panel], analysis: Analysis, display: Display, picture: str = "image"
    ) -> dict[Any, Any]:
        """Updates for every cell of ``panels``: the model's value, its note, or hidden when not chosen. Images are
        saved under their download name, ``<picture>-<model>-<panel>-stage<S>.webp``. A model the panel does not
        apply to keeps its note, whatever the render function answered for it."""
        updates: dict[Any, Any] = {}
        for panel in panels:
            shown = panel.render(analysis, display)
            for key in self._keys(panel):
                updates.update(self._cell_update(panel, key, shown, analysis, picture))
        return updates

    def _cell_update(
        self, panel: Panel, key: CellKey, shown: dict[str, Shown], analysis: Analysis, picture: str
    ) -> dict[Any, Any]:
        arch = key[1]
        value = self.values[key]
        caption = self.captions.get(key)
        if not (panel.page_wide or arch in analysis.models):  # not chosen
            hidden = {value: gr.update(visible=False)}
            return hidden | ({caption: gr.update(visible=False)} if caption is not None else {})
        applies = panel.page_wide or panel.applies(self.lineup.family(arch))
        cell: Shown | None = shown.get(arch) if applies else None
        updates: dict[Any, Any] = {}
        if caption is not None:
            updates[caption] = gr.update(
                value=cell.caption if cell else self._default_caption(panel, arch), visible=True
            )
        if cell is None and not applies:  # the model does not have this panel: its note stays
            updates[value] = gr.update(visible=True)
        elif cell is None or cell.value is None:  # nothing of this analysis to show (a check not run for it, which
            updates[value] = _emptied(panel)  # its caption says how to run): nothing of another, and no empty box
        elif isinstance(cell.value, Image.Image) and isinstance(value, gr.Image):
            name = export_name(picture, "webp", model=arch, panel=panel.key, stage=cell.stage)
            updates[value] = gr.update(value=_named_image(cell.value, value, name), visible=True)
        else:
            updates[value] = gr.update(value=cell.value, visible=True)
        return updates

    def unchanged(self, panels: Iterable[Panel]) -> dict[Any, Any]:
        """Updates that change nothing (Gradio reads an empty dict as one value, not as "no updates")."""
        key = self.keys(panels)[0]
        return {self.values[key]: gr.skip()}

    def clear(self, panels: Iterable[Panel]) -> dict[Any, Any]:
        """Empty every cell that shows results, and its caption back to the model's name, so a failed run or a new
        picture never leaves the previous picture's numbers, nor a caption above an emptied cell."""
        updates: dict[Any, Any] = {}
        for panel in panels:
            for key in self._keys(panel):
                if panel.page_wide or panel.applies(self.lineup.family(key[1])):
                    updates[self.values[key]] = _emptied(panel)
                    if key in self.captions:
                        updates[self.captions[key]] = gr.update(value=self._default_caption(panel, key[1]))
        return updates

    def _default_caption(self, panel: Panel, model_id: str) -> str:
        """A cell's caption with nothing drawn: the model's name (a page-wide cell has none)."""
        return "" if panel.page_wide else model_caption(self.lineup.title(model_id))


def _emptied(panel: Panel) -> Any:
    """An emptied cell: an image cell is hidden too (a large empty box shows nothing), text keeps its place."""
    return gr.update(value=None, visible=panel.kind != "image")


def _named_image(image: Image.Image, component: gr.Image, name: str) -> str:
    """The image written into Gradio's own cache under ``name``: the browser's download button uses the file name
    (a PIL value would be saved as ``image.webp``). Gradio's cache is cleaned by ``delete_cache`` like any output."""
    stem = name.rsplit(".", 1)[0]
    return processing_utils.save_pil_to_cache(image, component.GRADIO_CACHE, name=stem, format="webp")
