"""The foot of the page: where the gallery's photographs come from (rewritten in the visitor's language by the
header's language events)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from cbam_viz.ui import gallery
from cbam_viz.ui.sections.common import Page, Parts, Section


@dataclass
class Credits:
    """The credits line."""

    markdown: gr.Markdown


def build(parts: Parts) -> Credits:
    """The photographs' credits."""
    return Credits(gr.Markdown(gallery.credits_markdown(parts.engine.examples)))


def wire(page: Page) -> None:
    """Nothing of its own: the language switch rewrites it."""


SECTION = Section("credits", build, wire)
