"""Which weights to load, as data: a registry of published checkpoints, named sets of three, and ``load_model``.

Modelled on torchvision's ``ResNet50_Weights``: each entry keeps, next to the builder, where the file comes from,
how to check it, which key layout and architecture switches it has, how images must be prepared for it, its
categories and its reported accuracy, licence and citation. ``load_model`` never downloads (that is
``python -m cbam_viz weights download``) and never falls back silently: ``"auto"`` says which set it picked and why.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cbam_viz.convert import LAYOUTS, load_into_model, read_checkpoint, save_project_safetensors
from cbam_viz.errors import WeightsError
from cbam_viz.resnet import ARCHS, ArchConfig, ResNet
from cbam_viz.vocab import ARCH_TITLES

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
IMAGENET_SUBDIR = "imagenet"
DEMO_SUBDIR = "demo"
DEMO_METADATA = "metadata.json"
DEMO_SUFFIX = ".demo"  # "cbam_resnet50.demo" names one model of the demo set
DOWNLOAD_HINT = "python -m cbam_viz weights download"
TRAIN_HINT = "python -m cbam_viz train-demo"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESNET_PAPER = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016. arXiv:1512.03385"
SE_PAPER = "Hu, Shen, Sun. Squeeze-and-Excitation Networks. CVPR 2018. arXiv:1709.01507"
CBAM_PAPER = "Woo, Park, Lee, Kweon. CBAM: Convolutional Block Attention Module. ECCV 2018. arXiv:1807.06521"
TIMM_CITATION = "Wightman. PyTorch Image Models. 2019. https://github.com/huggingface/pytorch-image-models"
PYTORCHCV_CITATION = "Semery. imgclsmob (pytorchcv). https://github.com/osmr/imgclsmob"


@dataclass(frozen=True)
class Preprocess:
    """How images must be prepared for a set of weights (their evaluation transform)."""

    resize: int  # shorter side in pixels before any crop (e.g. 256; demo: 96)
    crop: int | None  # evaluation centre crop (224), or None
    interpolation: str  # "bilinear" | "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Preprocess:
        crop = fields.get("crop")
        return cls(
            resize=int(fields["resize"]),
            crop=None if crop is None else int(crop),
            interpolation=str(fields.get("interpolation", "bilinear")),
            mean=tuple(float(value) for value in fields["mean"]),  # type: ignore[arg-type]
            std=tuple(float(value) for value in fields["std"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class LoadedWeights:
    """What a model returned by ``load_model`` carries as ``model.weights_info``."""

    arch: str
    set_name: str | None  # "paper" | "pytorchcv" | "demo" | None (an entry or a local file)
    entry: str | None  # registry entry name, e.g. "cbam_resnet50.official"
    source: str  # path of the file that was loaded
    layout: str  # detected/declared checkpoint layout, e.g. "official_cbam"
    categories: tuple[str, ...]
    preprocess: Preprocess
    description: str  # one line for users
    is_demo: bool


IMAGENET_EVAL = Preprocess(256, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
V15 = ArchConfig(stride_in="conv2", stem_pool="pad")
CAFFE_V1 = ArchConfig(stride_in="conv1", stem_pool="ceil")
PYTORCHCV_V1 = ArchConfig(stride_in="conv1", stem_pool="pad")


@functools.cache
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k names shipped inside torchvision (no download)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


@dataclass(frozen=True)
class WeightsEntry:
    """One published checkpoint: where it lives, how to check and convert it, how to use it."""

    name: str  # "<arch>.<tag>", e.g. "cbam_resnet50.official"
    arch: str
    title: str
    urls: tuple[str, ...]  # mirrors, tried in order
    filename: str  # the downloaded file, kept under weights/imagenet/
    layout: str  # a key of cbam_viz.convert.LAYOUTS
    config: ArchConfig
    preprocess: Preprocess
    metrics: dict[str, float] = field(hash=False)  # ImageNet-1k val, single crop, in percent
    license: str = ""
    citation: str = ""
    sha256: str | None = None  # of the downloaded file, where published
    sha256_prefix: str | None = None  # torchvision/timm/Cadene file names carry the first 8 hex digits
    sha1: str | None = None  # pytorchcv: SHA-1 (or its first 8 digits) of the .pth inside the .pth.zip
    notes: str = ""

    @property
    def categories(self) -> tuple[str, ...]:
        return imagenet_categories()

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def local_names(self) -> tuple[str, ...]:
        """File names accepted under weights/imagenet/: pytorchcv's zip or the .pth inside it."""
        if self.filename.endswith(".pth.zip"):
            return (self.filename, self.filename.removesuffix(".zip"))
        return (self.filename,)

    @property
    def description(self) -> str:
        top1 = self.metrics.get("imagenet_top1")
        accuracy = f", top-1 {top1:.1f}%" if top1 is not None else ""
        return f"ImageNet weights: {self.title}{accuracy}"


def _entry(
    name: str, title: str, urls: tuple[str, ...], layout: str, config: ArchConfig, **fields: Any
) -> WeightsEntry:
    filename = urls[0].rsplit("/", 1)[-1].split("?", 1)[0]
    fields.setdefault("preprocess", IMAGENET_EVAL)
    return WeightsEntry(
        name, name.split(".")[0], title, urls, fields.pop("filename", filename), layout, config, **fields
    )


def _pytorchcv(name: str, title: str, file_stem: str, tag: str, config: ArchConfig, **fields: Any) -> WeightsEntry:
    url = f"https://github.com/osmr/imgclsmob/releases/download/{tag}/{file_stem}.pth.zip"
    fields.setdefault("license", "MIT (osmr/imgclsmob)")
    return _entry(name, title, (url,), "pytorchcv", config, **fields)


ENTRIES: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        _entry(
            "resnet50.tv_v1",
            "ResNet-50, torchvision IMAGENET1K_V1",
            ("https://download.pytorch.org/models/resnet50-0676ba61.pth",),
            "torchvision",
            V15,
            metrics={"imagenet_top1": 76.13, "imagenet_top5": 92.862},
            license="BSD-3-Clause (torchvision)",
            citation=RESNET_PAPER,
            sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
            sha256_prefix="0676ba61",
            notes="reproduces the paper with a simple recipe",
        ),
        _entry(
            "resnet50.tv_v2",
            "ResNet-50, torchvision IMAGENET1K_V2",
            ("https://download.pytorch.org/models/resnet50-11ad3fa6.pth",),
            "torchvision",
            V15,
            preprocess=Preprocess(232, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD),
            metrics={"imagenet_top1": 80.858, "imagenet_top5": 95.434},
            license="BSD-3-Clause (torchvision)",
            citation=RESNET_PAPER,
            sha256="11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca",
            sha256_prefix="11ad3fa6",
            notes="torchvision's newer training recipe; not comparable with the 2018 attention papers",
        ),
        _entry(
            "se_resnet50.caffe",
            "SE-ResNet-50, Caffe original (Hu et al.) via Cadene",
            (
                "http://data.lip6.fr/cadene/pretrainedmodels/se_resnet50-ce0d4300.pth",
                "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/se_resnet50-ce0d4300.pth",
            ),
            "cadene",
            CAFFE_V1,
            metrics={"imagenet_top1": 77.636, "imagenet_top5": 93.752},
            license="Apache-2.0 (as listed by timm for its re-host, legacy_seresnet50.in1k)",
            citation=SE_PAPER,
            sha256_prefix="ce0d4300",
            notes="v1 (stride in conv1), ceil-mode stem pool; timm re-hosts it as legacy_seresnet50.in1k",
        ),
        _entry(
            "se_resnet50.timm_ra2",
            "SE-ResNet-50, timm ra2",
            (
                "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/seresnet50_ra_224-8efdb4bb.pth",
            ),
            "timm_seresnet",
            V15,
            preprocess=Preprocess(256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD),
            metrics={"imagenet_top1": 80.26},
            license="Apache-2.0 (timm)",
            citation=f"{SE_PAPER}; {TIMM_CITATION}",
            sha256_prefix="8efdb4bb",
            notes="timm's RandAugment recipe: stronger than the paper's training",
        ),
        _entry(
            "cbam_resnet50.official",
            "CBAM-ResNet-50, official release (Woo et al.)",
            (
                "https://www.dropbox.com/s/bt6zty02h9ibufi/RESNET50_CBAM_new_name_wrap.pth?dl=1",
                "https://drive.usercontent.google.com/download?id=1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO&export=download&confirm=t",
            ),
            "official_cbam",
            V15,
            metrics={"imagenet_top1": 77.622, "imagenet_top5": 93.948},
            license="MIT (Jongchan/attention-module)",
            citation=CBAM_PAPER,
            notes="no published hash; 100-epoch training as in the paper",
        ),
        _pytorchcv(
            "cbam_resnet50.pytorchcv",
            "CBAM-ResNet-50, pytorchcv v0.0.537",
            "cbam_resnet50-0505-d8cf8488",
            "v0.0.537",
            V15,
            metrics={"imagenet_top1": 79.83, "imagenet_top5": 94.95},
            citation=f"{CBAM_PAPER}; {PYTORCHCV_CITATION}",
            sha1="d8cf8488efb97afecd6b3287a3ca9fa093fc3127",
            notes="osmr's own training",
        ),
        _pytorchcv(
            "cbam_resnet50.pytorchcv_v125",
            "CBAM-ResNet-50, pytorchcv v0.0.125 (official weights re-packed)",
            "cbam_resnet50-0605-a1172fe6",
            "v0.0.125",
            V15,
            metrics={"imagenet_top1": 77.62, "imagenet_top5": 93.95},
            citation=f"{CBAM_PAPER}; {PYTORCHCV_CITATION}",
            sha1="a1172fe6",
            notes="converted by pytorchcv from the official release; asset availability unverified",
        ),
        _pytorchcv(
            "resnet50.pytorchcv_b",
            "ResNet-50b, pytorchcv v0.0.308",
            "resnet50b-0638-8a5473ef",
            "v0.0.308",
            V15,
            metrics={"imagenet_top1": 77.61, "imagenet_top5": 93.62},
            citation=f"{RESNET_PAPER}; {PYTORCHCV_CITATION}",
            sha1="8a5473ef985d65076a3758117ad5700d726bd952",
            notes="v1.5 (the 'b' variant: stride in conv2)",
        ),
        _pytorchcv(
            "se_resnet50.pytorchcv_b",
            "SE-ResNet-50b, pytorchcv v0.0.387",
            "seresnet50b-0539-459e6871",
            "v0.0.387",
            V15,
            metrics={"imagenet_top1": 79.21, "imagenet_top5": 94.61},
            citation=f"{SE_PAPER}; {PYTORCHCV_CITATION}",
            sha1="459e6871e944d1c7102ee9c055ea428b8d9a168c",
            notes="v1.5 (the 'b' variant: stride in conv2)",
        ),
        _pytorchcv(
            "resnet50.pytorchcv_v1",
            "ResNet-50 (v1), pytorchcv v0.0.329",
            "resnet50-0633-b00d1c8e",
            "v0.0.329",
            PYTORCHCV_V1,
            metrics={"imagenet_top5": 93.67},
            citation=f"{RESNET_PAPER}; {PYTORCHCV_CITATION}",
            sha1="b00d1c8e52aa7a2badc705b1545aaf6ccece6ce9",
            notes="v1 (stride in conv1); top-1 not recorded here",
        ),
        _pytorchcv(
            "se_resnet50.pytorchcv_v1",
            "SE-ResNet-50 (v1), pytorchcv v0.0.441",
            "seresnet50-0575-004bfde4",
            "v0.0.441",
            PYTORCHCV_V1,
            metrics={"imagenet_top5": 94.25},
            citation=f"{SE_PAPER}; {PYTORCHCV_CITATION}",
            sha1="004bfde422c860c4f11b1e1190bb5a8db477d939",
            notes="v1 (stride in conv1); top-1 not recorded here",
        ),
    )
}

# Named sets of three (arch -> entry). "demo" is not listed here: it is built from weights/demo/metadata.json.
SETS: dict[str, dict[str, str]] = {
    "paper": {
        "resnet50": "resnet50.tv_v1",
        "se_resnet50": "se_resnet50.caffe",
        "cbam_resnet50": "cbam_resnet50.official",
    },
    "pytorchcv": {
        "resnet50": "resnet50.pytorchcv_b",
        "se_resnet50": "se_resnet50.pytorchcv_b",
        "cbam_resnet50": "cbam_resnet50.pytorchcv",
    },
}
DEFAULT_SET = "paper"
SET_NAMES = (*SETS, "demo")


# --------------------------------------------------------------------------------------------------------- files


def weights_root(weights_dir: Path | str | None = None) -> Path:
    """The weights folder: ``weights_dir`` when given (tests, deployments), else the repository's weights/."""
    return Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR


def display_path(path: Path) -> str:
    """A path as users should read it: relative to the working directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def imagenet_dir(weights_dir: Path | str | None = None) -> Path:
    return weights_root(weights_dir) / IMAGENET_SUBDIR


def converted_path(entry: WeightsEntry, weights_dir: Path | str | None = None) -> Path:
    """Where the entry's project safetensors is written once converted."""
    return imagenet_dir(weights_dir) / f"{entry.name}.safetensors"


def raw_path(entry: WeightsEntry, weights_dir: Path | str | None = None) -> Path | None:
    """The downloaded (or hand-placed) original file, if present."""
    for name in entry.local_names:
        path = imagenet_dir(weights_dir) / name
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def entry_status(entry: WeightsEntry, weights_dir: Path | str | None = None) -> str:
    """'converted', 'downloaded' (original file only) or 'missing'."""
    if converted_path(entry, weights_dir).is_file():
        return "converted"
    return "downloaded" if raw_path(entry, weights_dir) else "missing"


def missing_entries(set_name: str, weights_dir: Path | str | None = None) -> list[WeightsEntry]:
    return [ENTRIES[name] for name in SETS[set_name].values() if entry_status(ENTRIES[name], weights_dir) == "missing"]


def how_to_get(target: str, entries: list[WeightsEntry], weights_dir: Path | str | None = None) -> str:
    """The one-line instruction shared by every 'weights missing' error."""
    files = ", ".join(entry.filename for entry in entries)
    return (
        f"run `{DOWNLOAD_HINT} {target}`, or put {files} under {display_path(imagenet_dir(weights_dir))}/, "
        "or use --weights demo"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pytorchcv_sha1(path: Path) -> str:
    """SHA-1 of the raw .pth, which pytorchcv publishes: the one member of its release zip, or the file itself.

    A torch checkpoint is itself a zip (with ``data.pkl``); only a zip without one is pytorchcv's wrapper.
    """
    digest = hashlib.sha1()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if not any(info.filename.endswith("data.pkl") for info in members):
                if len(members) != 1:
                    raise WeightsError(f"{path.name} should hold exactly one .pth, it holds {len(members)} files")
                with archive.open(members[0]) as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                return digest.hexdigest()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_problem(entry: WeightsEntry, path: Path, name: str | None = None) -> tuple[str, str | None]:
    """-> (sha256 of the file, what does not match the published hashes or None).

    ``name`` is the file name ``path`` stands for (a download is checked under its temporary name); the full
    sha256 and the file-name prefix apply to ``entry.filename`` only, the pytorchcv SHA-1 to the zip and the .pth.
    """
    name = name or path.name
    sha256 = file_sha256(path)
    if name == entry.filename and entry.sha256 and sha256 != entry.sha256:
        return sha256, f"sha256 {sha256[:12]}... differs from the published {entry.sha256[:12]}..."
    if name == entry.filename and entry.sha256_prefix and not sha256.startswith(entry.sha256_prefix):
        return sha256, f"sha256 {sha256[:8]}... does not start with {entry.sha256_prefix}, the hash in its name"
    if entry.sha1:
        sha1 = pytorchcv_sha1(path)
        if not sha1.startswith(entry.sha1):
            return sha256, f"SHA-1 {sha1[:8]}... of the .pth differs from the published {entry.sha1[:8]}..."
    return sha256, None


def verify_file(entry: WeightsEntry, path: Path) -> str:
    """Check every hash the entry knows; -> the file's sha256. Raises WeightsError naming the mismatch."""
    sha256, problem = hash_problem(entry, path)
    if problem:
        raise WeightsError(
            f"{display_path(path)} is not the published {entry.name} file ({problem}): "
            f"delete it and run `{DOWNLOAD_HINT} {entry.name}`"
        )
    return sha256


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
    raw = raw_path(entry, weights_dir)
    if raw is None:
        raise WeightsError(
            f"{entry.name} weights are not under {display_path(imagenet_dir(weights_dir))}: "
            + how_to_get(entry.name, [entry], weights_dir)
        )
    sha256 = verify_file(entry, raw)
    loaded = load_into_model(read_checkpoint(raw), entry.arch, layout=entry.layout, config=entry.config)
    extra = {"entry": entry.name, "source_file": raw.name, "source_sha256": sha256, "layout": entry.layout}
    try:
        save_project_safetensors(
            converted, loaded.model, entry.arch, loaded.config, entry.categories, entry.preprocess, extra
        )
    except OSError as error:
        warnings.warn(f"could not cache {entry.name} as {converted.name} ({error}); loaded {raw.name}", stacklevel=2)
        return loaded.model, raw
    return loaded.model, converted


# ---------------------------------------------------------------------------------------------------------- demo


def read_demo_metadata(weights_dir: Path | str | None = None) -> dict[str, Any]:
    """weights/demo/metadata.json, checked for the fields the loader needs."""
    path = weights_root(weights_dir) / DEMO_SUBDIR / DEMO_METADATA
    if not path.is_file():
        raise WeightsError(
            f"demo weights are missing ({display_path(path)} not found): train them with `{TRAIN_HINT}` "
            f"or get ImageNet weights with `{DOWNLOAD_HINT} {DEFAULT_SET}`"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
        classes = metadata["classes"]
        Preprocess.from_dict(metadata["preprocess"])
        ArchConfig(**metadata["arch_config"])
        models = metadata["models"]
        valid = isinstance(classes, list) and classes and isinstance(models, dict)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsError(
            f"{display_path(path)} is damaged ({type(error).__name__}: {error}); train the demo again"
        ) from error
    if not valid:
        raise WeightsError(f"{display_path(path)} lists no classes or no models; train the demo again")
    return metadata


def demo_available(weights_dir: Path | str | None = None) -> tuple[bool, str]:
    """(present, why not) for the demo set: metadata plus one file per architecture."""
    demo_dir = weights_root(weights_dir) / DEMO_SUBDIR
    try:
        metadata = read_demo_metadata(weights_dir)
        missing = [arch for arch in ARCHS if not _demo_file(metadata, arch, demo_dir).is_file()]
    except WeightsError as error:
        return False, str(error)
    if missing:
        return False, f"demo files missing for {', '.join(missing)} under {display_path(demo_dir)}"
    return True, ""


def _demo_file(metadata: dict[str, Any], arch: str, demo_dir: Path) -> Path:
    """The demo file of ``arch`` named by the metadata (a bare file name inside weights/demo/)."""
    model_meta = metadata["models"].get(arch)
    if not isinstance(model_meta, dict) or "file" not in model_meta:
        raise WeightsError(f"the demo set has no {arch} model; train the demo again with `{TRAIN_HINT}`")
    file_name = str(model_meta["file"])
    if Path(file_name).name != file_name:
        raise WeightsError(f"demo metadata names {file_name!r}; expected a file name inside {display_path(demo_dir)}")
    return demo_dir / file_name


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%" if value <= 1 else f"{value:.0f}%"


def _load_demo(arch: str, weights_dir: Path | str | None) -> tuple[ResNet, LoadedWeights]:
    metadata = read_demo_metadata(weights_dir)
    demo_dir = weights_root(weights_dir) / DEMO_SUBDIR
    path = _demo_file(metadata, arch, demo_dir)
    model_meta = metadata["models"][arch]
    if not path.is_file():
        raise WeightsError(f"demo weights {display_path(path)} are missing; train them with `{TRAIN_HINT}`")
    expected = model_meta.get("sha256")
    if expected and file_sha256(path) != expected:
        raise WeightsError(
            f"{display_path(path)} does not match the sha256 in {DEMO_METADATA}: the file is damaged or was replaced; "
            f"train the demo again with `{TRAIN_HINT}`"
        )
    classes = tuple(str(name) for name in metadata["classes"])
    config = ArchConfig(**{**metadata["arch_config"], "num_classes": len(classes)})
    loaded = load_into_model(read_checkpoint(path), arch, layout="project", config=config)
    top1 = model_meta.get("metrics", {}).get("top1")
    accuracy = f", top-1 {_percent(float(top1))} on held-out shapes" if top1 is not None else ""
    width = f" at 1/{64 // config.base_width} width" if config.base_width < 64 else ""
    info = LoadedWeights(
        arch=arch,
        set_name="demo",
        entry=f"{arch}{DEMO_SUFFIX}",
        source=str(path),
        layout="project",
        categories=classes,
        preprocess=Preprocess.from_dict(metadata["preprocess"]),
        description=f"demo weights: {ARCH_TITLES[arch]}{width}, {len(classes)} shapes{accuracy}",
        is_demo=True,
    )
    return loaded.model, info


# ------------------------------------------------------------------------------------------------------- resolve


def resolve_weights(weights: str = "auto", weights_dir: Path | None = None) -> tuple[str, str]:
    """-> (set name, entry name or checkpoint path; one-line reason). Raises WeightsError if it cannot be loaded.

    "auto" is the ImageNet ``paper`` set when all its files are under weights/imagenet/, otherwise ``demo``.
    """
    weights = str(weights)
    root = weights_root(weights_dir)
    if weights == "auto":
        missing = missing_entries(DEFAULT_SET, root)
        if not missing:
            return (
                DEFAULT_SET,
                f"ImageNet weights found under {display_path(imagenet_dir(root))}: using the {DEFAULT_SET} set",
            )
        present, why_not = demo_available(root)
        if not present:
            raise WeightsError(
                f"no weights to load: ImageNet weights not under {display_path(imagenet_dir(root))} and {why_not}"
            )
        return "demo", (
            f"ImageNet weights not found under {display_path(imagenet_dir(root))} "
            f"({len(missing)} of 3 missing): using the demo set; `{DOWNLOAD_HINT} {DEFAULT_SET}` gets them"
        )
    if weights in SETS:
        missing = missing_entries(weights, root)
        if missing:
            raise WeightsError(
                f"the {weights} set is not under {display_path(imagenet_dir(root))}: "
                + how_to_get(weights, missing, root)
            )
        return weights, f"{weights} set requested"
    if weights == "demo" or (weights.endswith(DEMO_SUFFIX) and weights.removesuffix(DEMO_SUFFIX) in ARCHS):
        present, why_not = demo_available(root)
        if not present:
            raise WeightsError(why_not)
        return weights, "demo set requested"
    if weights in ENTRIES:
        entry = ENTRIES[weights]
        if entry_status(entry, root) == "missing":
            raise WeightsError(
                f"{weights} is not under {display_path(imagenet_dir(root))}: " + how_to_get(weights, [entry], root)
            )
        return weights, f"registered weights {weights} requested"
    path = Path(weights).expanduser()
    if path.is_file():
        return str(path), f"local checkpoint {path.name}"
    if path.suffix or os.sep in weights:
        raise WeightsError(f"checkpoint file {weights} does not exist: check the path")
    raise WeightsError(
        f"unknown weights {weights!r}: use auto, a set ({', '.join(SET_NAMES)}), an entry "
        f"(`python -m cbam_viz weights list`) or the path of a checkpoint file"
    )


def default_categories(count: int) -> tuple[str, ...]:
    """ImageNet names for a 1000-way head, otherwise neutral names (a checkpoint without category metadata)."""
    return imagenet_categories() if count == 1000 else tuple(f"class {index}" for index in range(count))


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
    )
    return loaded.model, info


def _load_entry(entry: WeightsEntry, set_name: str | None, weights_dir: Path) -> tuple[ResNet, LoadedWeights]:
    model, source = prepare_entry(entry, weights_dir)
    info = LoadedWeights(
        arch=entry.arch,
        set_name=set_name,
        entry=entry.name,
        source=str(source),
        layout=entry.layout,
        categories=entry.categories,
        preprocess=entry.preprocess,
        description=entry.description,
        is_demo=False,
    )
    return model, info


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(
    arch: str,
    weights: str = "auto",
    *,
    device: str | torch.device | None = None,
    weights_dir: Path | None = None,
    num_classes: int | None = None,
    stride_in: str | None = None,
) -> ResNet:
    """``arch`` with ``weights`` ("auto", a set, an entry or a checkpoint path): eval mode, frozen, on ``device``.

    ``num_classes`` comes from the weights; passing a different one raises. ``stride_in`` ("conv1" | "conv2") is
    only needed for a local pytorchcv file whose name does not tell v1 from v1.5. The model carries
    ``model.weights_info`` (LoadedWeights).
    """
    if arch not in ARCHS:
        raise WeightsError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    if stride_in not in (None, "conv1", "conv2"):
        raise WeightsError(f"stride_in must be 'conv1' or 'conv2', not {stride_in!r}")
    root = weights_root(weights_dir)
    name, _ = resolve_weights(weights, root)
    if name == "demo" or (name.endswith(DEMO_SUFFIX) and name.removesuffix(DEMO_SUFFIX) in ARCHS):
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
    model.to(torch.device(device) if device is not None else default_device())
    model.weights_info = info
    return model
