"""Lesson-link notes: the link's values render as text, never as Markdown links; unknown languages are noted."""

from __future__ import annotations

from markdown_it import MarkdownIt

from cbam_viz.ui import lesson
from cbam_viz.vocab import PAPER_LINEUP


def test_a_value_in_a_lesson_note_is_text_not_a_link() -> None:
    found = lesson.read({"example": "[x](http://evil.example) **bold**"}, {"star": "/tmp/star.png"}, ["auto"], ())
    html = MarkdownIt("commonmark").render(found.note())
    assert "<a " not in html and "<strong>" not in html, html
    assert "[x](http://evil.example) **bold**" in html  # the words themselves are kept


def test_unknown_languages_are_left_out_with_the_note() -> None:
    for value in ("__proto__", "constructor", "xx"):
        found = lesson.read({"lang": value}, {}, ["auto"], ())
        assert found.ignored and "lang=" in found.note() and "choose en or zh" in found.note(), value
    assert lesson.read({"lang": "zh"}, {}, ["auto"], ()).ignored == []


def test_the_page_notes_an_unknown_lang_of_its_link() -> None:
    from types import SimpleNamespace

    from cbam_viz.ui.sections.lesson import apply_lesson

    engine = SimpleNamespace(examples={}, is_demo=True, weight_choices=lambda: [("auto", "auto")], lineup=PAPER_LINEUP)
    controls = {"note": "note", "example": "example"}
    request = SimpleNamespace(query_params={"lang": "__proto__"})
    updates = apply_lesson(engine, controls, {}, request)
    assert "lang=" in updates["note"] and "en or zh" in updates["note"], updates
    request = SimpleNamespace(query_params={"lang": "zh"})
    assert apply_lesson(engine, controls, {}, request)["note"] == ""


def test_the_pages_load_never_writes_the_picture_input(tmp_path) -> None:
    """A load's answer that arrives after a quick visitor's upload must not put back the picture the load started
    with: no event the page runs on load outputs to the picture input (a link's example arrives through the hidden
    box's change, which fires only when the link names one)."""
    from cbam_viz.ui.layout import build_demo
    from cbam_viz.ui.server.engine import Engine
    from tests.helpers.app import write_random_demo

    engine = Engine.start("demo", "cpu", write_random_demo(tmp_path), warm=False, offline=True)
    demo = build_demo(engine)
    image = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "input-image")
    example = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "lesson-example")
    on_load = [fn for fn in demo.fns.values() if any(target[1] == "load" for target in fn.targets)]
    assert on_load and all(image not in fn.outputs for fn in on_load), [fn.api_name for fn in on_load]
    writers = [fn for fn in demo.fns.values() if image in fn.outputs and fn.api_name == "lesson_example"]
    assert [target[1] for fn in writers for target in fn.targets] == ["change"]
    assert all(target[0] == example._id for fn in writers for target in fn.targets)
