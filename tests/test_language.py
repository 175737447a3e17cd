"""The catalogues: every key in every language, the same placeholders and equations, and every key the code uses."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from cbam_viz.demo import shapes
from cbam_viz.i18n import language
from cbam_viz.i18n.language import LANGUAGES, Message, catalogue, pick, said, text, using
from cbam_viz.ui import gallery, i18n
from cbam_viz.ui.panels import interventions as intervene_view
from cbam_viz.ui.panels.registry import PANELS
from cbam_viz.vocab import CAM_METHODS, TARGET_MODES, VIEWS

TWO_MODELS = {"resnet50": SimpleNamespace(title="ResNet-50"), "cbam_resnet50": SimpleNamespace(title="CBAM-ResNet-50")}

ROOT = Path(__file__).resolve().parents[1]
MATHS = re.compile(r"\$\$.+?\$\$|\$[^$]+\$", re.DOTALL)
FIELDS = re.compile(r"(?<!\\)\{(\w+)\}")  # a format field; LaTeX groups ({ij}, {1}) sit in texts without fields


def _fields(value: str) -> list[str]:
    return sorted(FIELDS.findall(MATHS.sub("", value)))


@pytest.mark.parametrize("code", LANGUAGES[1:])
def test_every_key_exists_in_every_language(code: str) -> None:
    english, other = catalogue("en"), catalogue(code)
    assert sorted(other) == sorted(english)
    assert all(value.strip() for value in other.values())


@pytest.mark.parametrize("code", LANGUAGES[1:])
def test_translations_keep_placeholders_equations_and_markup(code: str) -> None:
    """A translation fills in the same values, shows the same equations, and keeps bold, tables and code."""
    english, other = catalogue("en"), catalogue(code)
    for key, source in english.items():
        translated = other[key]
        assert _fields(translated) == _fields(source), key
        assert MATHS.findall(translated) == MATHS.findall(source), key  # the equations stay the same
        for mark in ("**", "|", "`", "<small>", "\n\n", "$$"):
            assert translated.count(mark) == source.count(mark), (key, mark)
        if _fields(source):
            translated.format(**{name: "x" for name in _fields(source)})  # and it formats


def test_the_chinese_page_is_chinese() -> None:
    """Not English copied over: the explanations and labels carry Chinese characters (the names of models stay)."""
    chinese = catalogue("zh")
    han = re.compile(r"[\u4e00-\u9fff]")
    for key, value in chinese.items():
        if key.startswith(("explain.", "page.", "heading.", "error.", "shape.")):
            assert han.search(value), key
    assert chinese["shape.star"] != "star" and chinese["page.analyse"] != "Analyse"


def _keys_in_code() -> set[str]:
    """Literal keys handed to ``text``, ``T``, ``Message`` or ``fonts.words`` anywhere in the package."""
    found = set()
    for path in (ROOT / "cbam_viz").rglob("*.py"):
        found |= set(
            re.findall(r"""\b(?:text|T|Message|words)\(\s*["']([a-z_.+-]+)["']""", path.read_text(encoding="utf-8"))
        )
    return found


def test_every_key_the_code_uses_is_in_the_catalogue() -> None:
    english = catalogue("en")
    used = _keys_in_code()
    assert len(used) > 150
    assert sorted(used - set(english)) == []
    families = (
        [f"explain.{panel.explanation}" for panel in PANELS if panel.explanation]
        + [panel.heading for panel in PANELS if panel.heading]
        + [panel.missing(arch) for panel in PANELS for arch in ("resnet50", "se_resnet50") if not panel.applies(arch)]
        + [f"method.{name}.note" for name in CAM_METHODS]
        + [f"view.{view}" for view in VIEWS]
        + [f"target_mode.{mode}" for mode in TARGET_MODES]
        + [f"shape.{name}" for name in shapes.CLASSES]
        + [f"photo.{Path(name).stem}" for name, _ in gallery.PHOTOS]
        + [f"where.{where}" for where in intervene_view.WHERE_CHOICES]
        + [f"how.{how}" for how in intervene_view.HOWS]
        + [f"gate.which.{gate}" for gate in ("channel", "spatial", "both")]
        + [f"gallery.{name}" for name in (gallery.SHAPE_GALLERY, gallery.PHOTO_GALLERY)]
        + [f"picture.{kind}_axis" for kind in ("deletion", "insertion")]
    )
    assert sorted(set(families) - set(english)) == []


def test_text_follows_the_language_it_runs_under() -> None:
    assert text("page.analyse") == "Analyse"
    with using("zh"):
        assert text("page.analyse") == catalogue("zh")["page.analyse"]
        assert text("live.busy", count=2).count("2") == 1
        with using("en"):
            assert text("page.analyse") == "Analyse"
        assert language.current() == "zh"
    assert language.current() == "en"
    with using("xx"):  # an unknown language is the default one
        assert language.current() == "en"
    with pytest.raises(KeyError):
        text("no.such.key")


def test_a_message_reads_as_english_and_is_said_again_in_the_readers_language() -> None:
    """Start-up words (why these weights) are made before any visitor: English for the console and the API,
    Chinese in the Chinese page's banner, with a reason nested inside translated as well."""
    import json
    import pickle

    problem = Message("weights.probe.dns", host="mirror.invalid")
    note = Message("weights.note.no_network", problem=problem, hint=Message("weights.note.hint", command="cbam get"))
    english = (
        "no network (DNS lookup for mirror.invalid failed): using the demo set; `cbam get` gets the ImageNet weights"
    )
    assert note == english and json.dumps({"note": note}) == json.dumps({"note": english})
    assert said(note) == english and said("plain words") == "plain words"
    with using("zh"):
        chinese = said(note)
    assert chinese == catalogue("zh")["weights.note.no_network"].format(
        problem=catalogue("zh")["weights.probe.dns"].format(host="mirror.invalid"),
        hint=catalogue("zh")["weights.note.hint"].format(command="cbam get"),
    )
    assert "mirror.invalid" in chinese and "DNS" in chinese and "no network" not in chinese
    again = pickle.loads(pickle.dumps(note))
    assert again == note and again.key == note.key
    with using("zh"):
        assert said(again) == chinese


def test_the_banner_says_why_these_weights_in_the_page_language(tmp_path: Path) -> None:
    from cbam_viz.ui.banner import banner_markdown
    from cbam_viz.weights import download
    from cbam_viz.weights.load import resolve_weights

    outcome = download.first_run(tmp_path, offline=True, progress=False)
    choice = dataclasses.replace(resolve_weights("demo"), note=outcome.note)
    assert "offline mode: ImageNet weights not downloaded" in banner_markdown(choice, "cpu")
    with using("zh"):
        banner = banner_markdown(choice, "cpu")
    assert catalogue("zh")["weights.note.offline"].split("：")[0] in banner and "offline mode" not in banner
    assert "weights download paper" in banner  # the command stays as typed
    for requested, key in (("demo", "weights.note.demo_requested"),):
        with using("zh"):
            assert said(resolve_weights(requested).note) == catalogue("zh")[key]


@pytest.mark.parametrize(
    ("choices", "expected"),
    [
        (("zh",), "zh"),
        ((None, "zh-CN,zh;q=0.9,en;q=0.8"), "zh"),
        (("", "en-GB,en;q=0.9"), "en"),
        (("fr", "fr-FR, zh;q=0.8, en;q=0.5"), "zh"),
        (("de;q=1, en;q=0.2, zh;q=0.7",), "zh"),
        (("ja", "*"), "en"),
        (("zh-TW",), "zh"),
        ((), "en"),
    ],
)
def test_a_language_is_picked_from_a_query_or_a_header(choices: tuple, expected: str) -> None:
    assert pick(*choices) == expected


def test_a_visitor_language_comes_from_the_page_query_then_the_browser() -> None:
    request = SimpleNamespace(query_params={"lang": "zh"}, headers={"accept-language": "en-US"})
    assert i18n.visitor_language(request) == "zh"
    request = SimpleNamespace(query_params={}, headers={"accept-language": "zh-CN,zh;q=0.9"})
    assert i18n.visitor_language(request) == "zh"
    request = SimpleNamespace(query_params={"lang": "<script>"}, headers={})
    assert i18n.visitor_language(request) == "en"
    assert i18n.visitor_language(None) is None


def test_demo_shapes_are_named_in_the_page_language_imagenet_classes_stay() -> None:
    with using("zh"):
        assert language.class_name("star", demo=True) == catalogue("zh")["shape.star"]
        assert language.class_name("star", demo=False) == "star"  # an ImageNet set's class keeps the dataset's name
        assert i18n.class_choices(["circle"], True) == [(catalogue("zh")["shape.circle"], "circle")]
    with pytest.raises(KeyError):
        i18n.T("no.such.key")


def test_each_models_header_names_its_weights_in_the_page_language() -> None:
    from cbam_viz.analysis.models import get_models

    loaded = get_models(("cbam_resnet50",), "demo", "cpu").models["cbam_resnet50"].weights_info.description
    assert loaded.startswith("demo weights: CBAM-ResNet-50 at 1/4 width, 10 shapes, top-1 ")  # the API's words
    with using("zh"):
        chinese = said(loaded)
    assert chinese.startswith(catalogue("zh")["weights.header.demo"].split("{")[0] + "CBAM-ResNet-50")
    assert "demo weights" not in chinese and "held-out" not in chinese


def test_the_pages_own_words_name_page_controls_never_command_line_flags() -> None:
    """What the page says of itself (status lines, control labels, its refusals of page actions) names the page's
    controls ("choose demo in Weights"); a command or flag belongs to the README and the console."""
    from cbam_viz.i18n.language import LANGUAGES, catalogue

    for code in LANGUAGES:
        for key, value in catalogue(code).items():
            if key.split(".")[0] in ("status", "page") or key == "error.demo_not_downloaded":
                assert "python -m" not in value and " --" not in value, (code, key, value)


def test_chinese_uses_chinese_conjunctions_and_punctuation() -> None:
    """No English "and"/"or" and no ASCII comma, colon or semicolon beside Chinese characters in the catalogue (code,
    equations and fields aside); lists the code joins use 、, 或 and 和; notes are sentences; the results line names an
    example shape in Chinese."""
    from types import SimpleNamespace

    from cbam_viz.errors import CbamVizError
    from cbam_viz.i18n.language import listed, sentence
    from cbam_viz.ui import lesson
    from cbam_viz.ui.sections import results as results_section

    han = r"[\u4e00-\u9fff]"
    for key, template in catalogue("zh").items():
        words = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`|\{[^}]*\}", "", template, flags=re.S)
        words = re.sub(r"[A-Za-z][\w-]*(?:-[A-Za-z][\w-]*)+", "", words)  # names such as Squeeze-and-Excitation
        assert not re.search(r"\b(and|or)\b", words), (key, template)
        assert not re.search(rf"{han}\s*(?:[,;]|:(?!\d))|[,;:]\s*{han}", words), (key, template)
    with using("zh"):
        assert listed(["a", "b", "c"], "or") == "a、b或c" and listed(["a", "b"], "and") == "a和b"
        assert listed(["a", "b"]) == "a、b" and sentence("已按 EXIF 方向 6 转正") == "已按 EXIF 方向 6 转正。"
        with pytest.raises(CbamVizError, match="block、stage、all"):
            intervene_view.spec_from_controls("channel", "nowhere", 4, None, "one", None)
        said = lesson.read({"lang": "xx", "stage": "9"}, {}, [], []).ignored
        assert "en或zh" in said[0] and "1、2、3或4" in said[1], said
        analysis = SimpleNamespace(models=TWO_MODELS, method="gradcam", stage=4, is_demo=True)
        status = results_section.results_status(SimpleNamespace(analysis=analysis, picture="star"))
        assert status.startswith(f"**{text('shape.star')}** 的结果：ResNet-50、CBAM-ResNet-50；"), status
    assert listed(["a", "b", "c"], "or") == "a, b or c" and sentence("turned upright") == "Turned upright."
    analysis = SimpleNamespace(models=TWO_MODELS, method="gradcam", stage=4, is_demo=True)
    status = results_section.results_status(SimpleNamespace(analysis=analysis, picture="star"))
    assert status.startswith("Results for **star**: ResNet-50, CBAM-ResNet-50;"), status
