"""Lesson-link notes: the link's values render as text, never as Markdown links; unknown languages are noted."""

from __future__ import annotations

from markdown_it import MarkdownIt

from cbam_viz.ui import lesson


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

    engine = SimpleNamespace(examples={}, is_demo=True, weight_choices=lambda: [("auto", "auto")])
    controls = {"image": "image", "note": "note"}
    request = SimpleNamespace(query_params={"lang": "__proto__"})
    updates = apply_lesson(engine, controls, {}, None, request)
    assert "lang=" in updates["note"] and "en or zh" in updates["note"], updates
    request = SimpleNamespace(query_params={"lang": "zh"})
    assert apply_lesson(engine, controls, {}, None, request)["note"] == ""
