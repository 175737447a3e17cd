"""Plain-language "what am I looking at" texts for every panel of the app, with the equations behind each picture.

They are written for a classroom: one short paragraph a student can read aloud, then the formula for those who want
it, then what to look for. The texts live in the catalogues (``cbam_viz/locales``, keys ``explain.<panel>``, one
file per language, the equations the same in each); they are Markdown with ``$$ ... $$`` display maths, which
``gr.Markdown`` renders.
"""

from __future__ import annotations

from cbam_viz.i18n.language import has, text
from cbam_viz.vocab import CAM_METHODS


def method_note(method: str) -> str:
    """One line on the chosen CAM method, shown under the Grad-CAM row so students know what changed."""
    key = f"method.{method}.note"
    return text(key) if method in CAM_METHODS and has(key) else text("method.other.note", method=method)
