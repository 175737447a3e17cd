"""Which weights to use, decided once, and ``load_model``.

``resolve_weights`` turns "auto", a set, an entry, or a checkpoint path into a ``WeightsChoice`` that says which
weights and why; ``load_model`` builds the architecture and fills it strictly. Loading never downloads (that is
``weights.download``) and never falls back silently.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cbam_viz.errors import CbamVizError, WeightsError
from cbam_viz.i18n.language import Message
from cbam_viz.model.resnet import ARCHS, ArchConfig, ResNet
from cbam_viz.vocab import ARCH_TITLES, PAPER_LINEUP, Lineup, family_of
from cbam_viz.weights import demo_set as weights_demo_set
from cbam_viz.weights import files as weights_files
from cbam_viz.weights import registry as weights_registry
from cbam_viz.weights.card import ModelCard, read_card
from cbam_viz.weights.convert import (
    LAYOUTS,
    LoadedCheckpoint,
    load_into_model,
    read_checkpoint,
    save_project_safetensors,
)
from cbam_viz.weights.files import (
    METADATA_FILE,
    check_raw,
    converted_path,
    display_path,
    entry_origin,
    entry_status,
    file_origin,
    file_sha256,
    from_origin,
    how_to_get,
    imagenet_dir,
    load_source_file,
    missing_entries,
    not_a_checkpoint,
    raw_file,
    verify_file,
    weights_root,
)
from cbam_viz.weights.registry import (
    DEFAULT_SET,
    DEMO_ORIGIN,
    DEMO_SUFFIX,
    DOWNLOAD_HINT,
    ENTRIES,
    IMAGENET_EVAL,
    SET_NAMES,
    SETS,
    LoadedWeights,
    Preprocess,
    Source,
    WeightsEntry,
    default_categories,
)

DEMO_SUBDIR = weights_files.DEMO_SUBDIR
TRAIN_HINT = weights_registry.TRAIN_HINT


def save_converted(
    entry: WeightsEntry,
    source: Source,
    loaded: LoadedCheckpoint,
    raw: Path,
    sha256: str,
    weights_dir: Path | str | None = None,
) -> Path:
    """Write the entry's project safetensors, recording which file, layout and origin it was converted from."""
    extra = {
        "entry": entry.name,
        "source_file": raw.name,
        "source_sha256": sha256,
        "layout": source.layout,
        "origin": file_origin(raw.name, weights_dir),
    }
    return save_project_safetensors(
        converted_path(entry, weights_dir),
        loaded.model,
        entry.arch,
        loaded.config,
        entry.categories,
        entry.preprocess,
        extra,
    )


def prepare_entry(entry: WeightsEntry, weights_dir: Path | str | None = None) -> tuple[ResNet, Path]:
    """The entry's model, strictly loaded; converts the original file to project safetensors the first time.

    Later loads read the safetensors only. If the weights folder is read-only the model is still returned (with a
    warning), loaded from the original file.
    """
    converted = converted_path(entry, weights_dir)
    if converted.is_file():
        try:
            loaded = load_into_model(read_checkpoint(converted), entry.arch, layout="project")
        except WeightsError as error:
            raise WeightsError(
                f"the converted {display_path(converted)} is damaged ({error}); delete it: it is rebuilt from "
                f"{entry.filename}, or run `{DOWNLOAD_HINT} {entry.name}`"
            ) from error
        return loaded.model, converted
    found = raw_file(entry, weights_dir)
    if found is None:
        raise WeightsError(
            f"{entry.name} weights are not under {display_path(imagenet_dir(weights_dir))}: "
            + how_to_get(entry.name, [entry], weights_dir)
        )
    raw, source = found
    sha256 = verify_file(entry, source, raw, weights_dir)
    try:
        loaded = load_source_file(entry, source, raw)
    except WeightsError as error:
        raise WeightsError(
            f"{display_path(raw)} is {not_a_checkpoint(entry, source, error)}: run `{DOWNLOAD_HINT} {entry.name}` "
            "to set it aside and fetch it again"
        ) from error
    try:
        save_converted(entry, source, loaded, raw, sha256, weights_dir)
    except OSError as error:
        warnings.warn(f"could not cache {entry.name} as {converted.name} ({error}); loaded {raw.name}", stacklevel=2)
        return loaded.model, raw
    return loaded.model, converted


# ---------------------------------------------------------------------------------------------------------- demo


def read_demo_metadata(weights_dir: Path | str | None = None) -> dict[str, Any]:
    """weights/demo/metadata.json, checked for the fields the loader needs (``weights.demo_set`` owns it)."""
    return weights_demo_set.read_demo_metadata(weights_root(weights_dir))


def demo_available(weights_dir: Path | str | None = None) -> tuple[bool, str]:
    """(present, why not) for the demo set: metadata plus one file per architecture."""
    root = weights_root(weights_dir)
    try:
        metadata = read_demo_metadata(root)
        missing = [arch for arch in ARCHS if not weights_demo_set.demo_file(metadata, arch, root).is_file()]
    except WeightsError as error:
        return False, str(error)
    if missing:
        return False, f"demo files missing for {', '.join(missing)} under {display_path(root / DEMO_SUBDIR)}"
    return True, ""


def _load_demo(arch: str, weights_dir: Path | str | None) -> tuple[ResNet, LoadedWeights]:
    root = weights_root(weights_dir)
    metadata = read_demo_metadata(root)
    path = weights_demo_set.demo_file(metadata, arch, root)
    model_meta = metadata["models"][arch]
    if not path.is_file():
        raise WeightsError(f"demo weights {display_path(path)} are missing; train them with `{TRAIN_HINT}`")
    expected = model_meta.get("sha256")
    if expected and file_sha256(path) != expected:
        raise WeightsError(
            f"{display_path(path)} does not match the sha256 in {METADATA_FILE}: the file is damaged or was replaced; "
            f"train the demo again with `{TRAIN_HINT}`"
        )
    classes = tuple(str(name) for name in metadata["classes"])
    config = ArchConfig(**{**metadata["arch_config"], "num_classes": len(classes)})
    loaded = load_into_model(read_checkpoint(path), arch, layout="project", config=config)
    top1 = model_meta.get("metrics", {}).get("top1")
    accuracy = (
        Message("weights.header.demo_accuracy", percent=weights_demo_set.held_out_percent(float(top1)))
        if top1 is not None
        else ""
    )
    width = Message("weights.header.demo_width", fraction=64 // config.base_width) if config.base_width < 64 else ""
    info = LoadedWeights(
        arch=arch,
        set_name="demo",
        entry=f"{arch}{DEMO_SUFFIX}",
        source=str(path),
        layout="project",
        categories=classes,
        preprocess=Preprocess.from_dict(metadata["preprocess"]),
        description=Message(
            "weights.header.demo", model=ARCH_TITLES[arch], width=width, count=len(classes), accuracy=accuracy
        ),
        is_demo=True,
        origin=DEMO_ORIGIN,
    )
    return loaded.model, info


# ------------------------------------------------------------------------------------------------------- resolve


@dataclass(frozen=True)
class WeightsChoice:
    """Which weights to load, decided once at the boundary ("auto" resolved) and then passed around as is."""

    kind: str  # "set" (paper, pytorchcv) | "demo" (the set or one "<arch>.demo") | "entry" | "file"
    name: str  # set name, entry name ("resnet50.tv_v1", "cbam_resnet50.demo") or the checkpoint's path
    note: str  # one line: why these weights (and, when auto fell back to the demo, how to get ImageNet's); a Message
    is_demo: bool
    source: str  # one line: where the files are and where they came from
    requested: str = "auto"  # what the caller asked for
    card: ModelCard | None = None  # kind "card": the operator's models, checked

    @property
    def lineup(self) -> Lineup:
        """The models these weights offer: a card's, or the paper's three."""
        return self.card.lineup if self.card is not None else PAPER_LINEUP


def card_choice(path: Path | str, weights_dir: Path | str | None = None) -> WeightsChoice:
    """The models of a model card (``--models-file``), every one checked and converted before anything starts."""
    card = read_card(path, weights_dir)
    titles = "; ".join(model.title for model in card.models)
    note = Message("weights.note.card", name=card.path.name, count=len(card.models), titles=titles)
    source = f"{display_path(card.path)} ({'; '.join(f'{model.id}: {model.file.name}' for model in card.models)})"
    return WeightsChoice("card", str(card.path), note, False, source, str(path), card)


def _is_demo_name(name: str) -> bool:
    return name == "demo" or (name.endswith(DEMO_SUFFIX) and name.removesuffix(DEMO_SUFFIX) in ARCHS)


def _set_source(set_name: str, root: Path) -> str:
    folder = display_path(imagenet_dir(root))
    parts = [
        f"{name} {from_origin(entry_origin(ENTRIES[name], root) or 'nowhere yet')}" for name in SETS[set_name].values()
    ]
    return f"{folder} ({'; '.join(parts)})"


def _demo_choice(name: str, note: str, requested: str, root: Path) -> WeightsChoice:
    source = f"{display_path(root / DEMO_SUBDIR)} ({DEMO_ORIGIN})"
    return WeightsChoice("demo", name, note, True, source, requested)


def resolve_weights(weights: str | WeightsChoice = "auto", weights_dir: Path | str | None = None) -> WeightsChoice:
    """-> the weights to load and why (one line). A WeightsChoice is returned unchanged. Raises WeightsError.

    "auto" is the ImageNet ``paper`` set when all its files are under weights/imagenet/, otherwise ``demo``. A path
    ending in ``.toml`` is a model card (``card_choice``).
    """
    if isinstance(weights, WeightsChoice):
        return weights
    requested = str(weights)
    root = weights_root(weights_dir)
    folder = display_path(imagenet_dir(root))
    if requested == "auto":
        missing = missing_entries(DEFAULT_SET, root)
        if not missing:
            note = Message("weights.note.auto_found", folder=folder, name=DEFAULT_SET)
            return WeightsChoice("set", DEFAULT_SET, note, False, _set_source(DEFAULT_SET, root), requested)
        present, why_not = demo_available(root)
        if not present:
            raise WeightsError(f"no weights to load: ImageNet weights not under {folder} and {why_not}")
        broken = [check.path.name for entry in missing if (check := check_raw(entry, root)) and check.problem]
        where = (
            Message("weights.note.broken_under", folder=folder, names=", ".join(broken))
            if broken
            else Message("weights.note.not_under", folder=folder)
        )
        command = f"{DOWNLOAD_HINT} {DEFAULT_SET}"
        note = Message("weights.note.auto_missing", count=len(missing), where=where, command=command)
        return _demo_choice("demo", note, requested, root)
    if requested in SETS:
        missing = missing_entries(requested, root)
        if missing:
            raise WeightsError(f"the {requested} set is not under {folder}: " + how_to_get(requested, missing, root))
        note = Message("weights.note.set_requested", name=requested)
        return WeightsChoice("set", requested, note, False, _set_source(requested, root), requested)
    if _is_demo_name(requested):
        present, why_not = demo_available(root)
        if not present:
            raise WeightsError(why_not)
        return _demo_choice(requested, Message("weights.note.demo_requested"), requested, root)
    if requested in ENTRIES:
        entry = ENTRIES[requested]
        if entry_status(entry, root) == "missing":
            raise WeightsError(f"{requested} is not under {folder}: " + how_to_get(requested, [entry], root))
        source = f"{folder} ({from_origin(entry_origin(entry, root))})"
        note = Message("weights.note.entry_requested", name=requested)
        return WeightsChoice("entry", requested, note, False, source, requested)
    path = Path(requested).expanduser()
    if path.suffix == ".toml":  # a model card (``--models-file``): what workers and study.json name the models by
        return card_choice(path, root)
    if path.is_file():
        note = Message("weights.note.file_requested", name=path.name)
        return WeightsChoice("file", str(path), note, False, str(path), requested)
    if path.suffix or os.sep in requested:
        raise WeightsError(f"checkpoint file {requested} does not exist: check the path")
    raise WeightsError(
        f"unknown weights {requested!r}: use auto, a set ({', '.join(SET_NAMES)}), an entry "
        f"(`python -m cbam_viz weights list`) or the path of a checkpoint file"
    )


def _load_file(arch: str, path: Path, stride_in: str | None) -> tuple[ResNet, LoadedWeights]:
    loaded = load_into_model(read_checkpoint(path), arch, stride_in=stride_in)
    meta = loaded.project_meta
    if meta is not None:
        categories, preprocess = meta["categories"], Preprocess.from_dict(meta["preprocess"])
        if len(categories) != loaded.config.num_classes:
            raise WeightsError(
                f"{path.name} names {len(categories)} categories for {loaded.config.num_classes} "
                "outputs: convert it again"
            )
    else:
        categories, preprocess = default_categories(loaded.config.num_classes), IMAGENET_EVAL
    notes = "; ".join(loaded.notes)
    info = LoadedWeights(
        arch=arch,
        set_name=None,
        entry=None,
        source=str(path),
        layout=loaded.layout,
        categories=categories,
        preprocess=preprocess,
        description=f"{path.name}: {ARCH_TITLES[arch]} ({LAYOUTS[loaded.layout].title} layout"
        + (f"; {notes})" if notes else ")"),
        is_demo=False,
        origin=f"local file {path}",
    )
    return loaded.model, info


def _load_entry(entry: WeightsEntry, set_name: str | None, weights_dir: Path) -> tuple[ResNet, LoadedWeights]:
    model, source = prepare_entry(entry, weights_dir)
    origin = entry_origin(entry, weights_dir)
    info = LoadedWeights(
        arch=entry.arch,
        set_name=set_name,
        entry=entry.name,
        source=str(source),
        layout=entry.layout,
        categories=entry.categories,
        preprocess=entry.preprocess,
        description=(  # each model's header says where its file came from
            Message("weights.header.with_origin", description=entry.description, origin=from_origin(origin))
            if origin
            else entry.description
        ),
        is_demo=False,
        origin=origin,
    )
    return model, info


def _load_card_model(card: ModelCard, model_id: str) -> tuple[ResNet, LoadedWeights]:
    """A card's model from its converted copy (or, when the weights folder is read-only, its own file)."""
    model = card.model(model_id)
    loaded = None
    if model.converted is not None:
        try:
            loaded = load_into_model(read_checkpoint(model.converted), model.family, layout="project")
        except WeightsError:  # the copy was damaged since: the original, whose sha256 the card checked, still is whole
            warnings.warn(f"{model.converted.name} is damaged; loaded {model.file.name} instead", stacklevel=2)
    if loaded is None:
        loaded = load_into_model(read_checkpoint(model.file), model.family)
    classes = ", ".join(model.classes[:5]) + (", ..." if len(model.classes) > 5 else "")
    prepared = model.preprocess
    crop = f", crop {prepared.crop}" if prepared.crop else ", no crop"
    said = [
        f"{ARCH_TITLES[model.family]}, {LAYOUTS[model.layout].title} layout",
        f"{len(model.classes)} classes: {classes}",
        f"resize {prepared.resize}{crop}, {prepared.interpolation}",
        f"mean {list(prepared.mean)}, std {list(prepared.std)}",
    ]
    said += [f"licence: {model.licence}"] * bool(model.licence) + [f"cite: {model.citation}"] * bool(model.citation)
    info = LoadedWeights(
        arch=model.family,
        set_name=None,
        entry=model.id,
        source=str(model.file),
        layout=model.layout,
        categories=model.classes,
        preprocess=model.preprocess,
        description=f"{model.file.name}: {model.title} ({'; '.join(said)})",
        is_demo=False,
        origin=f"model card {card.path}",
        title=model.title,
    )
    return loaded.model, info


def model_family(model: torch.nn.Module) -> str:
    """The architecture of a built model, from its own attention slot."""
    return family_of(getattr(getattr(model, "config", None), "attention", None))


def model_title(model: torch.nn.Module) -> str:
    """A loaded model's name for people: its card's title, else its architecture's."""
    info = getattr(model, "weights_info", None)
    return (info.title if info is not None else "") or ARCH_TITLES[model_family(model)]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> the GPU when there is one, else the CPU; a bare "cuda" gets its index so cache keys are stable."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise CbamVizError(f"unknown device {device!r}: use 'cpu' or 'cuda'") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise CbamVizError("CUDA was asked for but no GPU is available: use --device cpu")
        if resolved.index is None:
            resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def load_model(
    arch: str,
    weights: str | WeightsChoice = "auto",
    *,
    device: str | torch.device | None = None,
    weights_dir: Path | None = None,
    num_classes: int | None = None,
    stride_in: str | None = None,
) -> ResNet:
    """``arch`` with ``weights`` ("auto", a set, an entry, a checkpoint path or a WeightsChoice): eval mode, frozen.

    With a model card's choice (``card_choice``), ``arch`` is the id of one of the card's models.

    ``num_classes`` comes from the weights; passing a different one raises. ``stride_in`` ("conv1" | "conv2") is
    only needed for a local pytorchcv file whose name does not tell v1 from v1.5. The model carries
    ``model.weights_info`` (LoadedWeights).
    """
    if stride_in not in (None, "conv1", "conv2"):
        raise WeightsError(f"stride_in must be 'conv1' or 'conv2', not {stride_in!r}")
    root = weights_root(weights_dir)
    choice = resolve_weights(weights, root)
    if arch not in ARCHS and choice.card is None:
        raise WeightsError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    name = choice.name
    if choice.card is not None:
        model, info = _load_card_model(choice.card, arch)
    elif _is_demo_name(name):
        if name not in ("demo", f"{arch}{DEMO_SUFFIX}"):
            raise WeightsError(f"{name} holds {name.removesuffix(DEMO_SUFFIX)} weights, not {arch}: use {arch}.demo")
        model, info = _load_demo(arch, root)
    elif name in SETS:
        model, info = _load_entry(ENTRIES[SETS[name][arch]], name, root)
    elif name in ENTRIES:
        entry = ENTRIES[name]
        if entry.arch != arch:
            raise WeightsError(f"{name} holds {entry.arch} weights, not {arch}: pick an entry starting with {arch}.")
        model, info = _load_entry(entry, None, root)
    else:
        model, info = _load_file(arch, Path(name), stride_in)
    if num_classes is not None and num_classes != model.config.num_classes:
        raise WeightsError(
            f"{name} weights have {model.config.num_classes} classes, not the {num_classes} asked for: "
            "the number of classes comes from the weights; drop num_classes or pick other weights"
        )
    model.eval().requires_grad_(False)
    model.to(resolve_device(device))
    model.weights_info = info
    return model
