"""The typefaces of the words drawn into pictures, one per language, and the language those words are in.

English is DejaVu Sans as bundled with matplotlib (crisp hinted TrueType, the same face as the export figure).
Chinese needs Han glyphs, which no pip package ships: the file ``CBAM_VIZ_CJK_FONT`` names, else the first Chinese
face found on this machine (Noto Sans CJK from Debian's ``fonts-noto-cjk``, PingFang on macOS, Microsoft YaHei on
Windows, ...). Without one, the words inside pictures stay English on the Chinese page (``picture_language``) and
the app says so once at start-up (``missing_note``); everything else on the page is still Chinese.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image, ImageDraw, ImageFont

from cbam_viz.i18n import language
from cbam_viz.i18n.language import LANGUAGES, current, text, using

FONT_ENV = "CBAM_VIZ_CJK_FONT"  # a .ttf/.otf/.ttc with Chinese glyphs, for machines where none is found
_DEJAVU = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_HAN_FILES = (  # file names of common Chinese faces, best first (lower case, without the extension)
    "notosanscjk",
    "notosanssc",
    "sourcehansans",
    "pingfang",
    "msyh",
    "notoserifcjk",
    "simhei",
    "wqy-zenhei",
    "wqy-microhei",
    "droidsansfallback",
)
_HAN_PROBE = "注意力"  # "attention": a face that has these has the glyphs the catalogue uses


@dataclass(frozen=True)
class Face:
    """One typeface: its file, and which face of a collection (.ttc) it is."""

    path: str
    index: int = 0
    family: str = ""  # the family name the file gives (for matplotlib)


@cache
def _dejavu(bold: bool) -> Face:
    path = _DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    if path.is_file():
        return Face(str(path), 0, "DejaVu Sans")
    found = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else 400))
    return Face(found, 0, "DejaVu Sans")


def _glyph(font: ImageFont.FreeTypeFont, character: str) -> bytes:
    picture = Image.new("L", (40, 40), 0)
    ImageDraw.Draw(picture).text((4, 4), character, fill=255, font=font)
    return picture.tobytes()


def draws(face: Face, characters: str) -> bool:
    """Whether ``face`` has a glyph of its own for every character, not the missing-glyph box they would share."""
    font = ImageFont.truetype(face.path, 24, index=face.index)
    missing = _glyph(font, "\U0010fffd")  # a private-use code point that no face draws
    return all(_glyph(font, character) != missing for character in set(characters) if not character.isspace())


def _simplified_face(path: str) -> Face | None:
    """The face of ``path`` that draws Chinese, preferring a Simplified Chinese one ("... SC") of a plain weight in
    a collection (PingFang.ttc holds every weight of three scripts)."""
    faces = []
    for index in range(32):
        try:
            family, style = ImageFont.truetype(path, 16, index=index).getname()
        except OSError:
            break
        if draws(Face(path, index, family or ""), _HAN_PROBE):
            faces.append((not family_is_simplified(family or ""), style not in ("Regular", "Bold"), index, family))
    if not faces:
        return None
    _, _, index, family = min(faces)
    return Face(path, index, family or "")


def family_is_simplified(family: str) -> bool:
    """Whether a face's family name marks it as Simplified Chinese (the catalogue's script)."""
    return family.endswith((" SC", "SC")) or "YaHei" in family or "PingFang" in family


_OTHER_WEIGHTS = ("black", "heavy", "light", "thin", "medium", "semibold", "extrabold", "demi")


def _weight(stem: str) -> str:
    """ "regular", "bold" or "other" from a lower-case file name (NotoSansCJK-Bold, msyhbd, NotoSansCJK-Light)."""
    if any(word in stem for word in _OTHER_WEIGHTS):
        return "other"
    return "bold" if "bold" in stem or stem.endswith("bd") else "regular"


def _candidates() -> list[str]:
    """Font files on this machine that are likely Chinese faces of a plain weight, best first."""
    ranked = []
    for path in font_manager.findSystemFonts(fontext="ttf"):
        stem = Path(path).stem.lower()
        rank = next((position for position, hint in enumerate(_HAN_FILES) if stem.startswith(hint)), None)
        if rank is not None and _weight(stem) != "other":
            ranked.append((rank, path))
    return [path for _, path in sorted(ranked)]


@cache
def han_faces() -> tuple[Face, Face] | None:
    """(regular, bold) faces with Chinese glyphs, or None when this machine has none (looked up once)."""
    chosen = os.environ.get(FONT_ENV, "").strip()
    if chosen:
        face = _simplified_face(chosen) if Path(chosen).is_file() else None
        return (face, face) if face else None
    regular = bold = None
    for path in _candidates():
        is_bold = _weight(Path(path).stem.lower()) == "bold"
        if (bold if is_bold else regular) is not None:
            continue
        face = _simplified_face(path)
        if face is None:
            continue
        if is_bold:
            bold = face
        else:
            regular = face
        if regular and bold:
            break
    regular = regular or bold
    return (regular, bold or regular) if regular else None


def picture_language() -> str:
    """The language of the words drawn into pictures: the page's, unless it is Chinese and no face draws it."""
    language = current()
    return language if language == LANGUAGES[0] or han_faces() else LANGUAGES[0]


def face(bold: bool = False) -> Face:
    """The typeface for the words of a picture drawn now (``picture_language``)."""
    faces = han_faces() if picture_language() == "zh" else None
    return faces[1 if bold else 0] if faces else _dejavu(bold)


def words(key: str, /, **values: object) -> str:
    """``text(key)`` in the language pictures can be drawn in (English where the page is Chinese but no face is)."""
    with using(picture_language()):
        return text(key, **values)


def said(words: str) -> str:
    """``language.said`` in the language pictures can be drawn in: a note made earlier, for a picture's words."""
    with using(picture_language()):
        return language.said(words)


def class_name(label: str, demo: bool) -> str:
    """``language.class_name`` in the language pictures can be drawn in: a demo shape's name on a tile."""
    with using(picture_language()):
        return language.class_name(label, demo)


@cache
def _matplotlib_family(han: Face) -> str:
    font_manager.fontManager.addfont(han.path)  # matplotlib 3.11 registers every face of a collection
    if any(entry.name == han.family for entry in font_manager.fontManager.ttflist):
        return han.family
    return font_manager.FontProperties(fname=han.path).get_name()


def set_figure_fonts(figure: Figure) -> None:
    """Draw every text of a matplotlib figure in the Chinese face (DejaVu Sans behind it for what it lacks) when
    pictures speak Chinese, as the Pillow pictures are, so that text is measured in the face it is drawn in. Per
    figure: never the global rc settings, which other threads' figures read at the same time."""
    if picture_language() != "zh":
        return
    families = [_matplotlib_family(face()), "DejaVu Sans"]
    for artist in figure.findobj(Text):
        artist.set_fontfamily(families)


def missing_note() -> str | None:
    """One line for the start-up log when the Chinese page's pictures will have English words; None otherwise."""
    if han_faces():
        return None
    return (
        "no Chinese font found on this machine: words inside pictures stay English on the Chinese page "
        f"(install fonts-noto-cjk, or set {FONT_ENV} to a font file)"
    )
