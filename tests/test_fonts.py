"""The words inside pictures: Chinese on the Chinese page, drawn in a face that has the glyphs, never as empty boxes;
English, said at start-up, on a machine without such a face.

CI installs Debian's fonts-noto-cjk (``.ci/run``), so there the tests that need a Chinese face must run; elsewhere
they are skipped when the machine has none.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cbam_viz.i18n.language import catalogue, using
from cbam_viz.render import attention, export, fonts, overlay, text
from tests.helpers.pictures import channel_vectors, fake_analysis

HAN = re.compile(r"[\u4e00-\u9fff]")
IN_CI = os.environ.get("CI", "").lower() == "true"
needs_han = pytest.mark.skipif(
    not IN_CI and fonts.han_faces() is None, reason="no Chinese font on this machine (apt-get install fonts-noto-cjk)"
)


@pytest.fixture
def no_han_face(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(fonts, "han_faces", lambda: None)
    yield


@needs_han
def test_the_chinese_page_draws_chinese_words_in_a_face_that_has_them() -> None:
    assert fonts.han_faces() is not None, "CI must install fonts-noto-cjk"
    with using("zh"):
        assert fonts.picture_language() == "zh"
        face = fonts.face()
        sheet = attention._channel_sheet(channel_vectors("cbam"), 4, title="", width_px=720, display_width=400)
    drawn = " ".join(words for _, _, words in sheet.texts)
    assert catalogue("zh")["picture.channel_title"].format(stage=4) in drawn and "channel" not in drawn
    assert face != fonts._dejavu(False) and fonts.draws(face, drawn)
    assert not fonts.draws(fonts._dejavu(False), drawn)  # DejaVu would have drawn empty boxes
    with using("zh"):
        assert fonts.class_name("star", True) == catalogue("zh")["shape.star"]
    with using("en"):
        english = attention._channel_sheet(channel_vectors("cbam"), 4, title="", width_px=720, display_width=400)
        assert fonts.face() == fonts._dejavu(False)
    assert not HAN.search(" ".join(words for _, _, words in english.texts))


@needs_han
def test_a_chinese_sentence_is_wrapped_inside_the_picture() -> None:
    with using("zh"):
        note = catalogue("zh")["picture.channel_note"].format(channels=512)
        lines = text.wrap(note, 13, 200)
        assert len(lines) > 1 and all(text.text_width(line, 13) <= 200 for line in lines)
        assert "".join(lines).replace(" ", "") == note.replace(" ", "")  # nothing lost, a space at a break


def _missing_glyph_warnings(figure: Figure) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FigureCanvasAgg(figure).print_png(io.BytesIO())
    return [str(warning.message) for warning in caught if "missing from" in str(warning.message)]


@needs_han
def test_matplotlib_figures_get_the_chinese_face_per_figure() -> None:
    words = catalogue("zh")["picture.class_probability"]
    plain = Figure(figsize=(3, 1))
    plain.text(0.1, 0.5, words)
    assert _missing_glyph_warnings(plain), "without the Chinese face the words would be empty boxes"
    with using("zh"):
        figure = Figure(figsize=(3, 1))
        figure.text(0.1, 0.5, words)
        figure.suptitle("Grad-CAM 0.50")
        fonts.set_figure_fonts(figure)
    assert _missing_glyph_warnings(figure) == []
    english = Figure(figsize=(3, 1))
    english.text(0.1, 0.5, "probability")
    fonts.set_figure_fonts(english)  # outside a Chinese event: left as it is
    assert english.texts[0].get_fontfamily() != figure.texts[0].get_fontfamily()


@needs_han
def test_the_export_figure_speaks_chinese_without_empty_boxes() -> None:
    analysis = fake_analysis(("resnet50", "se_resnet50", "cbam_resnet50"))
    with using("zh"):
        figure = export.comparison_figure_object(analysis, dpi=60)
    words = " ".join(text.get_text() for text in figure.findobj(lambda artist: hasattr(artist, "get_text")))
    assert catalogue("zh")["export.title"] in words and "Where the models look" not in words
    assert _missing_glyph_warnings(figure) == []


def test_without_a_chinese_face_pictures_keep_english_words_and_start_up_says_so(no_han_face: None) -> None:
    with using("zh"):
        assert fonts.picture_language() == "en" and fonts.face() == fonts._dejavu(False)
        assert fonts.words("picture.cam_value") == "CAM value"
        assert fonts.class_name("star", True) == "star"  # a tile's shape name too: never Chinese in DejaVu
        bar = overlay.colorbar_image("jet", 0.0, 1.0, width=200, label=fonts.words("picture.cam_value"))
        figure = export.comparison_figure_object(fake_analysis(("cbam_resnet50",)), dpi=60)
    assert isinstance(bar, Image.Image) and np.asarray(bar).std() > 0
    assert _missing_glyph_warnings(figure) == []  # English words: nothing DejaVu cannot draw
    note = fonts.missing_note()
    assert note and "fonts-noto-cjk" in note and fonts.FONT_ENV in note


def test_a_font_file_named_in_the_environment_is_used_or_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    found = fonts.han_faces()
    try:
        fonts.han_faces.cache_clear()
        monkeypatch.setenv(fonts.FONT_ENV, str(tmp_path / "nothing.ttf"))
        assert fonts.han_faces() is None  # not there: the pictures stay English, start-up says so
        assert fonts.missing_note() is not None
        if found is not None:
            fonts.han_faces.cache_clear()
            monkeypatch.setenv(fonts.FONT_ENV, found[0].path)
            chosen = fonts.han_faces()
            assert chosen is not None and chosen[0].path == found[0].path
            assert fonts.family_is_simplified(chosen[0].family)
        fonts.han_faces.cache_clear()
        monkeypatch.setenv(fonts.FONT_ENV, fonts._dejavu(False).path)  # a face without Chinese is not taken
        assert fonts.han_faces() is None
    finally:
        monkeypatch.delenv(fonts.FONT_ENV, raising=False)
        fonts.han_faces.cache_clear()


@pytest.mark.parametrize(
    ("stem", "weight"),
    [
        ("notosanscjk-regular", "regular"),
        ("notosanscjk-bold", "bold"),
        ("msyh", "regular"),
        ("msyhbd", "bold"),
        ("notosanscjk-demilight", "other"),
        ("notosanscjksc-black", "other"),
        ("sourcehansanssc-semibold", "other"),
    ],
)
def test_only_plain_and_bold_weights_are_candidates(stem: str, weight: str) -> None:
    assert fonts._weight(stem) == weight
