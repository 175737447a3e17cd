"""A model card: the operator's ``models.toml``, which lists their own checkpoints, read and checked once.

Each ``[[model]]`` names a file (any layout the converters know, or the project's safetensors), its family (detected
from the weights when left out), a title, its class names (inline or a labels file) and how pictures are prepared for
it. ``read_card`` checks everything before anything starts: the words of the card, every file, every layout, the
classifier's width against the class names, the family against the weights. Each problem is one line that names the
model and the fix. A checkpoint converted once is kept as project safetensors under ``weights/cards/``, named by the
original file's sha256, so later starts read the safetensors only. Relative paths are relative to the card.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbam_viz.errors import WeightsError
from cbam_viz.model.resnet import ARCHS
from cbam_viz.vocab import ARCH_TITLES, Lineup, ModelSpec, quote
from cbam_viz.weights.convert import (
    LAYOUTS,
    Checkpoint,
    LoadedCheckpoint,
    detect_family,
    load_into_model,
    read_checkpoint,
    read_project_header,
    save_project_safetensors,
)
from cbam_viz.weights.files import display_path, file_sha256, weights_root
from cbam_viz.weights.registry import IMAGENET_EVAL, INTERPOLATIONS, Preprocess, imagenet_categories

CARDS_SUBDIR = "cards"  # under the weights folder: each card model's converted safetensors, by its file's sha256
MAX_CARD_MODELS = 6  # the model cache holds six; a card lists at most this many
MAX_CLASSES = 100_000
MAX_LABEL = 200  # characters of one class name (as vocab.MAX_CLASS_NAME)
ID_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")  # safe in the JSON, element ids and lesson links
MODEL_KEYS = ("id", "file", "family", "title", "labels", "classes", "preprocess", "licence", "license", "citation")
PREPROCESS_KEYS = ("resize", "crop", "interpolation", "mean", "std")
SIDE_RANGE = (8, 2048)  # pixels of a resize or a crop
IMAGENET_CLASSES = 1000  # a classifier this wide with no names of its own gets ImageNet-1k's


@dataclass(frozen=True)
class CardModel:
    """One model of a card, checked: its weights' file and family known, its classes fit its classifier."""

    id: str
    file: Path  # the operator's checkpoint
    family: str  # resnet50 | se_resnet50 | cbam_resnet50 (given, or detected from the weights)
    title: str
    classes: tuple[str, ...]
    preprocess: Preprocess
    layout: str  # the checkpoint's layout as detected (a key of convert.LAYOUTS)
    sha256: str  # of ``file``: the converted copy's name
    converted: Path | None  # the project safetensors kept under weights/cards/ (None: the folder is read-only)
    licence: str = ""
    citation: str = ""

    @property
    def spec(self) -> ModelSpec:
        """The model as a page or run names it."""
        return ModelSpec(self.id, self.family, self.title)


@dataclass(frozen=True)
class ModelCard:
    """A checked card: its path and its models in the card's order."""

    path: Path
    models: tuple[CardModel, ...]

    @property
    def lineup(self) -> Lineup:
        """The card's models as the page and the runs list them."""
        return Lineup(tuple(model.spec for model in self.models))

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names every model of the card shares."""
        return self.models[0].classes

    def model(self, model_id: str) -> CardModel:
        """The model called ``model_id``; a one-line error naming the card's ids otherwise."""
        for model in self.models:
            if model.id == model_id:
                return model
        raise WeightsError(f"{self.path.name} has no model {quote(model_id)}: its models are {', '.join(self.ids)}")

    @property
    def ids(self) -> tuple[str, ...]:
        """The card's model ids, in order."""
        return tuple(model.id for model in self.models)


# ------------------------------------------------------------------------------------------------------- reading


def read_card(path: Path | str, weights_dir: Path | str | None = None) -> ModelCard:
    """Read and check ``path``; convert each model the first time. Raises ``WeightsError`` (one line) on any problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"model card {path} does not exist: check the path (a models.toml)")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise WeightsError(f"{path.name} is not UTF-8 text: save the card as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as error:
        raise WeightsError(f"{path.name} is not valid TOML ({error}): fix that line") from None
    except OSError as error:
        raise WeightsError(f"cannot read the model card {path} ({error.strerror or error})") from None
    extra = sorted(set(document) - {"model"})
    if extra:
        raise WeightsError(f"{path.name}: unknown table or key {quote(extra[0])}: a card holds [[model]] tables only")
    entries = document.get("model")
    if not isinstance(entries, list) or not entries or not all(isinstance(entry, dict) for entry in entries):
        raise WeightsError(f"{path.name} lists no models: add a [[model]] table with an id and a file")
    if len(entries) > MAX_CARD_MODELS:
        raise WeightsError(f"{path.name} lists {len(entries)} models: a card holds at most {MAX_CARD_MODELS}")
    written = [_written_model(entry, number, path) for number, entry in enumerate(entries, 1)]
    _check_unique(written, path)
    cache = weights_root(weights_dir) / CARDS_SUBDIR
    models = tuple(_checked_model(fields, path, cache) for fields in written)
    first = models[0]
    for model in models[1:]:
        if model.classes != first.classes:
            raise WeightsError(
                f"{path.name}: model {quote(model.id)} has other class names than {quote(first.id)} "
                f"({len(model.classes)} and {len(first.classes)} classes): the models of one card share one class "
                "list; put the others in a card of their own"
            )
    return ModelCard(path, models)


def _written_model(entry: dict[str, Any], number: int, card: Path) -> dict[str, Any]:
    """One [[model]] table's words checked (no file is opened yet): id, file, family, title, classes, preprocess."""
    raw_id = entry.get("id")
    if not isinstance(raw_id, str) or not ID_PATTERN.fullmatch(raw_id):
        raise WeightsError(
            f"{card.name}: model {number} has id {quote(raw_id)}: an id is 1-40 lower-case letters, digits or _, "
            "starting with a letter (it names the model in the JSON and in lesson links)"
        )
    where = f"{card.name}: model {quote(raw_id)}"
    unknown = [key for key in entry if key not in MODEL_KEYS]
    if unknown:
        raise WeightsError(f"{where} has an unknown key {quote(unknown[0])}: the keys are {', '.join(MODEL_KEYS)}")
    file = entry.get("file")
    if not isinstance(file, str) or not file.strip():
        raise WeightsError(f'{where} names no file: add file = "its checkpoint.pth"')
    family = entry.get("family")
    if family is not None and family not in ARCHS:
        raise WeightsError(f"{where} has family {quote(family)}: use {', '.join(ARCHS)}, or leave it out to detect it")
    title = entry.get("title", raw_id)
    if not isinstance(title, str) or not title.strip() or len(title) > 80:
        raise WeightsError(f"{where} has title {quote(title)}: a title is 1-80 characters of text")
    licence = entry.get("licence", entry.get("license", ""))
    citation = entry.get("citation", "")
    for key, value in (("licence", licence), ("citation", citation)):
        if not isinstance(value, str) or len(value) > 1000:
            raise WeightsError(f"{where} has a {key} that is not text of at most 1 000 characters")
    return {
        "id": raw_id,
        "where": where,
        "file": _beside(card, file),
        "family": family,
        "title": " ".join(title.split()),
        "classes": _written_classes(entry, where, card),
        "preprocess": _preprocess(entry.get("preprocess", {}), where),
        "licence": licence.strip(),
        "citation": citation.strip(),
    }


def _beside(card: Path, name: str) -> Path:
    """A path the card names: relative ones are relative to the card's folder."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else card.parent / path


def _written_classes(entry: dict[str, Any], where: str, card: Path) -> tuple[str, ...] | None:
    """The class names from ``classes`` or the ``labels`` file; None when neither is given (decided by the weights)."""
    if "classes" in entry and "labels" in entry:
        raise WeightsError(f"{where} has both classes and labels: keep one")
    if "classes" in entry:
        names = entry["classes"]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise WeightsError(f'{where}: classes must be a list of names, e.g. classes = ["daisy", "rose"]')
        return _checked_names([name.strip() for name in names], where, "classes")
    if "labels" in entry:
        if not isinstance(entry["labels"], str):
            raise WeightsError(f'{where}: labels must be a file name, e.g. labels = "labels.txt"')
        labels = _beside(card, entry["labels"])
        if not labels.is_file():
            raise WeightsError(f"{where}: labels file {display_path(labels)} does not exist: check the path")
        if labels.stat().st_size > MAX_CLASSES * (MAX_LABEL + 1):
            raise WeightsError(f"{where}: labels file {labels.name} is too large for a list of class names")
        try:
            lines = labels.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError:
            raise WeightsError(f"{where}: labels file {labels.name} is not UTF-8 text: save it as UTF-8") from None
        except OSError as error:
            raise WeightsError(f"{where}: cannot read labels file {labels.name} ({error.strerror or error})") from None
        names = [line.strip() for line in lines]
        while names and not names[-1]:
            names.pop()
        return _checked_names(names, where, f"labels file {labels.name}")
    return None


def _checked_names(names: list[str], where: str, source: str) -> tuple[str, ...]:
    if not names:
        raise WeightsError(f"{where}: {source} names no class: one name a line")
    if len(names) > MAX_CLASSES:
        raise WeightsError(f"{where}: {source} names {len(names)} classes; at most {MAX_CLASSES}")
    for number, name in enumerate(names, 1):
        if not name:
            raise WeightsError(f"{where}: {source} has an empty class name (number {number}): one name a line")
        if len(name) > MAX_LABEL:
            raise WeightsError(f"{where}: class name {number} of {source} is over {MAX_LABEL} characters")
    seen: dict[str, int] = {}
    for number, name in enumerate(names, 1):
        if name in seen:
            raise WeightsError(f"{where}: {source} names {quote(name)} twice (classes {seen[name]} and {number})")
        seen[name] = number
    return tuple(names)


def _preprocess(fields: Any, where: str) -> Preprocess:
    """``[model.preprocess]`` over ImageNet's evaluation transform; ``crop = false`` keeps the whole resized picture."""
    if not isinstance(fields, dict):
        raise WeightsError(f"{where}: preprocess must be a table ([model.preprocess])")
    unknown = [key for key in fields if key not in PREPROCESS_KEYS]
    if unknown:
        raise WeightsError(
            f"{where}: preprocess has an unknown key {quote(unknown[0])}: the keys are {', '.join(PREPROCESS_KEYS)}"
        )
    resize = fields.get("resize", IMAGENET_EVAL.resize)
    crop = fields.get("crop", IMAGENET_EVAL.crop if "resize" not in fields else min(IMAGENET_EVAL.crop, resize))
    low, high = SIDE_RANGE
    if isinstance(resize, bool) or not isinstance(resize, int) or not low <= resize <= high:
        raise WeightsError(f"{where}: preprocess resize is {quote(resize)}: a whole number of pixels, {low}-{high}")
    if crop is False:
        crop = None
    elif isinstance(crop, bool) or not isinstance(crop, int) or not low <= crop <= resize:
        raise WeightsError(
            f"{where}: preprocess crop is {quote(crop)}: a whole number of pixels from {low} to the resize ({resize}), "
            "or false for no crop"
        )
    interpolation = fields.get("interpolation", IMAGENET_EVAL.interpolation)
    if interpolation not in INTERPOLATIONS:
        raise WeightsError(
            f"{where}: preprocess interpolation is {quote(interpolation)}: use {', '.join(INTERPOLATIONS)}"
        )
    mean = _three(fields.get("mean", IMAGENET_EVAL.mean), where, "mean", positive=False)
    std = _three(fields.get("std", IMAGENET_EVAL.std), where, "std", positive=True)
    return Preprocess(resize, crop, interpolation, mean, std)


def _three(value: Any, where: str, key: str, *, positive: bool) -> tuple[float, float, float]:
    numbers = value if isinstance(value, list | tuple) else []
    if len(numbers) != 3 or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
        raise WeightsError(f"{where}: preprocess {key} must be three numbers (red, green, blue), got {quote(value)}")
    if any(not abs(x) < 1e6 for x in numbers) or (positive and any(x <= 0 for x in numbers)):
        raise WeightsError(f"{where}: preprocess {key} {quote(value)} must be finite" + (" and above 0" * positive))
    return tuple(float(x) for x in numbers)  # type: ignore[return-value]


def _check_unique(written: list[dict[str, Any]], card: Path) -> None:
    for key in ("id", "title"):
        seen: set[str] = set()
        for fields in written:
            if fields[key] in seen:
                raise WeightsError(f"{card.name}: two models have the {key} {quote(fields[key])}: give each its own")
            seen.add(fields[key])


# ------------------------------------------------------------------------------------------------ the weights


def _checked_model(fields: dict[str, Any], card: Path, cache: Path) -> CardModel:
    """The model's weights read (from its converted copy once there is one), its family and classes checked."""
    where, file = fields["where"], fields["file"]
    if not file.is_file():
        raise WeightsError(f"{where}: checkpoint {display_path(file)} does not exist: check file = in {card.name}")
    try:
        sha256 = file_sha256(file)
    except OSError as error:
        raise WeightsError(f"{where}: cannot read {display_path(file)} ({error.strerror or error})") from None
    converted: Path | None = cache / f"{sha256}.safetensors"
    cached = _cached(converted, sha256, fields) if converted.is_file() else None
    loaded = cached or _load(_read(file, where), fields)
    classes = _classes_for(fields, loaded)
    if cached is None:
        converted = _keep(converted, loaded, fields, classes, sha256, file)
    return CardModel(
        id=fields["id"],
        file=file,
        family=loaded.family,
        title=fields["title"],
        classes=classes,
        preprocess=fields["preprocess"],
        layout=loaded.layout,
        sha256=sha256,
        converted=converted,
        licence=fields["licence"],
        citation=fields["citation"],
    )


@dataclass(frozen=True)
class _Loaded:
    """A card model's weights, strictly loaded, and what the file itself said."""

    family: str
    layout: str
    config: Any
    model: Any  # the filled model when the file was just converted; None when read from the copy's header
    own_classes: tuple[str, ...] | None = None  # the class names a project safetensors file carries


def _read(file: Path, where: str) -> Checkpoint:
    try:
        return read_checkpoint(file)
    except WeightsError as error:
        raise WeightsError(f"{where}: {error}") from error


def _load(checkpoint: Checkpoint, fields: dict[str, Any]) -> _Loaded:
    """Strictly load the checkpoint as its family (given, or detected from its keys)."""
    where, given = fields["where"], fields["family"]
    detected = detect_family(checkpoint)
    if given is not None and detected is not None and detected != given:
        raise WeightsError(_family_mismatch(where, given, detected))
    family = given or detected
    if family is None:
        layouts = ", ".join(LAYOUTS)
        raise WeightsError(
            f"{where}: {checkpoint.name} is in no layout cbam_viz knows ({layouts}) as a ResNet-50, SE-ResNet-50 or "
            "CBAM-ResNet-50: save the model's state_dict from one of these, or convert it with "
            "`python -m cbam_viz weights convert`"
        )
    try:
        loaded: LoadedCheckpoint = load_into_model(checkpoint, family)
    except WeightsError as error:
        raise WeightsError(f"{where}: {error}") from error
    own = tuple(loaded.project_meta["categories"]) if loaded.project_meta else None
    return _Loaded(family, loaded.layout, loaded.config, loaded.model, own or None)


def _cached(converted: Path, sha256: str, fields: dict[str, Any]) -> _Loaded | None:
    """What the converted copy's header says, when it was made from this very file; None to convert again. Only the
    header is read: the tensors are loaded once, by ``load_model``."""
    meta = read_project_header(converted)
    extra = meta["extra"] if meta is not None else {}
    if meta is None or extra.get("source_sha256") != sha256:
        return None
    family = meta["arch"]
    given = fields["family"]
    if given is not None and given != family:
        raise WeightsError(_family_mismatch(fields["where"], given, family))
    own = extra.get("own_classes")
    layout = str(extra.get("layout", "project"))
    return _Loaded(family, layout, meta["config"], None, tuple(own) if own else None)


def _family_mismatch(where: str, given: str, found: str) -> str:
    return (
        f'{where}: family = "{given}" but the weights are a {ARCH_TITLES[found]}\'s: write family = "{found}" '
        "or leave family out"
    )


def _classes_for(fields: dict[str, Any], loaded: _Loaded) -> tuple[str, ...]:
    """The card's class names, checked against the classifier; left unnamed, the names a project safetensors file
    carries, or ImageNet's for a 1 000-wide classifier."""
    where, classes, width = fields["where"], fields["classes"], loaded.config.num_classes
    if classes is None:
        if loaded.own_classes is not None and len(loaded.own_classes) == width:
            return loaded.own_classes
        if width == IMAGENET_CLASSES:
            return imagenet_categories()
        raise WeightsError(
            f'{where} names no classes and its classifier has {width} outputs: add labels = "labels.txt" '
            f"(one name a line) or classes = [...] with {width} names"
        )
    if len(classes) != width:
        raise WeightsError(
            f"{where}: its classifier has {width} outputs but the card names {len(classes)} classes: "
            f"give exactly {width} class names, in the order of the classifier's outputs"
        )
    return classes


def _keep(
    converted: Path, loaded: _Loaded, fields: dict[str, Any], classes: tuple[str, ...], sha256: str, file: Path
) -> Path | None:
    """Write the converted copy (atomically); None, with a warning, when the weights folder cannot be written."""
    extra = {
        "card_model": fields["id"],
        "source_file": file.name,
        "source_sha256": sha256,
        "layout": loaded.layout,
        "own_classes": list(loaded.own_classes) if loaded.own_classes else None,
    }
    try:
        return save_project_safetensors(
            converted, loaded.model, loaded.family, loaded.config, classes, fields["preprocess"], extra
        )
    except OSError as error:
        warnings.warn(
            f"could not keep {fields['id']} converted under {display_path(converted.parent)} ({error}); "
            f"{file.name} is read again at each start",
            stacklevel=2,
        )
        return None


__all__ = ["CARDS_SUBDIR", "MAX_CARD_MODELS", "CardModel", "ModelCard", "read_card"]
