"""Which weights to load, as data: a registry of published checkpoints, named sets of three, and ``load_model``.

Modelled on torchvision's ``ResNet50_Weights``: each entry keeps, next to the builder, where the file comes from,
how to check it, which key layout and architecture switches it has, how images must be prepared for it, its
categories and its reported accuracy, licence and citation. Each entry lists its sources in order (the publisher,
re-hosts, timm's Hugging Face copy), each with its own file name, layout and hashes. ``load_model`` never downloads
(that is ``cbam_viz.download``) and never falls back silently: ``resolve_weights`` returns a ``WeightsChoice`` that
says which weights and why, decided once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

import torch
from safetensors import SafetensorError, safe_open

from cbam_viz import demo_metadata
from cbam_viz.convert import LAYOUTS, LoadedCheckpoint, load_into_model, read_checkpoint, save_project_safetensors
from cbam_viz.errors import WeightsError
from cbam_viz.language import Message
from cbam_viz.resnet import ARCHS, ArchConfig, ResNet
from cbam_viz.vocab import ARCH_TITLES

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
IMAGENET_SUBDIR = "imagenet"
DEMO_SUBDIR = demo_metadata.DEMO_SUBDIR
DEMO_METADATA = demo_metadata.METADATA_FILE
DEMO_SUFFIX = ".demo"  # "cbam_resnet50.demo" names one model of the demo set
DOWNLOAD_HINT = "python -m cbam_viz weights download"
TRAIN_HINT = demo_metadata.TRAIN_HINT
SUMS_FILE = "SHA256SUMS"  # under weights/imagenet/: the sha256 of every file at its first download
ORIGINS_FILE = "origins.json"  # under weights/imagenet/: which source served each file
HAND_PLACED = "put there by hand"
DEMO_ORIGIN = f"trained here by `{TRAIN_HINT}`"
_RECORDS_LOCK = threading.Lock()

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
    origin: str = ""  # where the file came from, e.g. "huggingface.co (timm/resnet50.tv_in1k)"


IMAGENET_EVAL = Preprocess(256, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
V15 = ArchConfig(stride_in="conv2", stem_pool="pad")
CAFFE_V1 = ArchConfig(stride_in="conv1", stem_pool="ceil")
PYTORCHCV_V1 = ArchConfig(stride_in="conv1", stem_pool="pad")


@functools.cache
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k names shipped inside torchvision (no download)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


SOURCE_KINDS = ("http", "drive", "huggingface", "mirror")
MIRROR_ENV = "CBAM_VIZ_WEIGHTS_MIRROR"  # base URL or folder tried before every entry's own sources


@dataclass(frozen=True)
class Source:
    """One place an entry's file comes from. Each source keeps its own file name, key layout and hashes, because a
    Hugging Face ``model.safetensors`` of the same weights is another file than the publisher's ``.pth``."""

    url: str
    layout: str  # a key of cbam_viz.convert.LAYOUTS
    filename: str = ""  # kept under weights/imagenet/; default: the last segment of the URL's path
    kind: str = "http"  # "http" | "drive" (confirmation page) | "huggingface" (announces sha256) | "mirror"
    sha256: str | None = None  # of the file, where published
    sha256_prefix: str | None = None  # torchvision/timm/Cadene file names carry the first 8 hex digits
    sha1: str | None = None  # pytorchcv: SHA-1 (or its first 8 digits) of the .pth inside the .pth.zip
    page: str = ""  # where a person downloads it by hand; default: the URL itself
    label: str = ""  # who hosts it, in words, e.g. "huggingface.co (timm/resnet50.tv_in1k)"; default: the host

    def __post_init__(self) -> None:
        if not self.filename:
            object.__setattr__(self, "filename", urlparse(self.url).path.rsplit("/", 1)[-1])
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {self.kind!r}")

    @property
    def host(self) -> str:
        parsed = urlparse(self.url)
        return parsed.hostname or (unquote(parsed.path).rsplit("/", 1)[0] if parsed.scheme == "file" else self.url)

    @property
    def origin(self) -> str:
        """Who served the file, for ``weights list`` and the banner: "from <origin>"."""
        return self.label or self.host

    @property
    def manual_page(self) -> str:
        return self.page or self.url

    @property
    def local_names(self) -> tuple[str, ...]:
        """File names accepted under weights/imagenet/: pytorchcv's zip or the .pth inside it."""
        if self.filename.endswith(".pth.zip"):
            return (self.filename, self.filename.removesuffix(".zip"))
        return (self.filename,)


def huggingface(repo: str, layout: str) -> Source:
    """timm's copy on the Hugging Face hub; kept as ``<repo>.safetensors`` since every repo names it the same."""
    owner, name = repo.split("/")
    return Source(
        url=f"https://huggingface.co/{repo}/resolve/main/model.safetensors",
        layout=layout,
        filename=f"{owner}_{name}.safetensors",
        kind="huggingface",
        page=f"https://huggingface.co/{repo}",
        label=f"huggingface.co ({repo})",
    )


def google_drive(file_id: str, filename: str, layout: str) -> Source:
    return Source(
        url=f"https://drive.google.com/uc?export=download&id={file_id}",
        layout=layout,
        filename=filename,
        kind="drive",
        page=f"https://drive.google.com/file/d/{file_id}/view",
        label="drive.google.com",
    )


@dataclass(frozen=True)
class WeightsEntry:
    """One published checkpoint: where it lives (sources, in order), how to convert it, how to use it."""

    name: str  # "<arch>.<tag>", e.g. "cbam_resnet50.official"
    arch: str
    title: str
    sources: tuple[Source, ...]  # tried in order; the first one names the file a person provides
    config: ArchConfig
    preprocess: Preprocess
    metrics: dict[str, float] = field(hash=False)  # ImageNet-1k val, single crop, in percent
    license: str = ""
    citation: str = ""
    notes: str = ""

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(source.url for source in self.sources)

    @property
    def filename(self) -> str:
        """The file a person puts under weights/imagenet/ by hand: the first source's (a mirror may serve any)."""
        return self.sources[0].filename

    @property
    def layout(self) -> str:
        """The first source's layout (each source declares its own)."""
        return self.sources[0].layout

    @property
    def categories(self) -> tuple[str, ...]:
        return imagenet_categories()

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def local_names(self) -> tuple[str, ...]:
        return tuple(name for source in self.sources for name in source.local_names)

    @property
    def description(self) -> str:
        top1 = self.metrics.get("imagenet_top1")
        accuracy = Message("weights.header.imagenet_accuracy", percent=f"{top1:.1f}") if top1 is not None else ""
        return Message("weights.header.imagenet", title=self.title, accuracy=accuracy)


def _entry(name: str, title: str, sources: tuple[Source, ...], config: ArchConfig, **fields: Any) -> WeightsEntry:
    fields.setdefault("preprocess", IMAGENET_EVAL)
    return WeightsEntry(name, name.split(".")[0], title, sources, config, **fields)


def _pytorchcv(
    name: str, title: str, file_stem: str, tag: str, config: ArchConfig, sha1: str, **fields: Any
) -> WeightsEntry:
    url = f"https://github.com/osmr/imgclsmob/releases/download/{tag}/{file_stem}.pth.zip"
    fields.setdefault("license", "MIT (osmr/imgclsmob)")
    return _entry(name, title, (Source(url, "pytorchcv", sha1=sha1),), config, **fields)


CBAM_DRIVE_ID = "1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO"  # Jongchan/attention-module README since 459efad (2022-09-12)
CBAM_FILE = "RESNET50_CBAM_new_name_wrap.pth"

ENTRIES: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in (
        _entry(
            "resnet50.tv_v1",
            "ResNet-50, torchvision IMAGENET1K_V1",
            (
                # Only the 8-digit prefix in torchvision's file name is certain: a full sha256 for V1 could not be
                # checked against a published source, so none is claimed (the first download records its own).
                Source(
                    "https://download.pytorch.org/models/resnet50-0676ba61.pth", "torchvision", sha256_prefix="0676ba61"
                ),
                huggingface("timm/resnet50.tv_in1k", "torchvision"),  # timm's resnet50 keys are torchvision's
            ),
            V15,
            metrics={"imagenet_top1": 76.13, "imagenet_top5": 92.862},
            license="BSD-3-Clause (torchvision)",
            citation=RESNET_PAPER,
            notes="reproduces the paper with a simple recipe",
        ),
        _entry(
            "resnet50.tv_v2",
            "ResNet-50, torchvision IMAGENET1K_V2",
            (
                Source(
                    "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
                    "torchvision",
                    # published by torchvision (its weights table)
                    sha256="11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca",
                    sha256_prefix="11ad3fa6",
                ),
            ),
            V15,
            preprocess=Preprocess(232, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD),
            metrics={"imagenet_top1": 80.858, "imagenet_top5": 95.434},
            license="BSD-3-Clause (torchvision)",
            citation=RESNET_PAPER,
            notes="torchvision's newer training recipe; not comparable with the 2018 attention papers",
        ),
        _entry(
            "se_resnet50.caffe",
            "SE-ResNet-50, Caffe original (Hu et al.) via Cadene",
            (
                Source(
                    "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/se_resnet50-ce0d4300.pth",
                    "cadene",
                    sha256_prefix="ce0d4300",
                    label="github.com (timm's re-host of Cadene's file)",
                ),
                Source(
                    "https://data.lip6.fr/cadene/pretrainedmodels/se_resnet50-ce0d4300.pth",
                    "cadene",
                    sha256_prefix="ce0d4300",
                    page="https://github.com/Cadene/pretrained-models.pytorch",
                ),
                huggingface("timm/legacy_seresnet50.in1k", "cadene"),  # timm's legacy_seresnet50 keys are Cadene's
            ),
            CAFFE_V1,
            metrics={"imagenet_top1": 77.636, "imagenet_top5": 93.752},
            license="Apache-2.0 (as listed by timm for its re-host, legacy_seresnet50.in1k)",
            citation=SE_PAPER,
            notes="v1 (stride in conv1), ceil-mode stem pool; timm re-hosts it as legacy_seresnet50.in1k",
        ),
        _entry(
            "se_resnet50.timm_ra2",
            "SE-ResNet-50, timm ra2",
            (
                Source(
                    "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/seresnet50_ra_224-8efdb4bb.pth",
                    "timm_seresnet",
                    sha256_prefix="8efdb4bb",
                ),
                huggingface("timm/seresnet50.ra2_in1k", "timm_seresnet"),
            ),
            V15,
            preprocess=Preprocess(256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD),
            metrics={"imagenet_top1": 80.26},
            license="Apache-2.0 (timm)",
            citation=f"{SE_PAPER}; {TIMM_CITATION}",
            notes="timm's RandAugment recipe: stronger than the paper's training",
        ),
        _entry(
            "cbam_resnet50.official",
            "CBAM-ResNet-50, official release (Woo et al.)",
            (
                google_drive(CBAM_DRIVE_ID, CBAM_FILE, "official_cbam"),
                Source(  # the same weights re-packed by pytorchcv, checked by the full SHA-1 of the .pth inside
                    "https://github.com/osmr/imgclsmob/releases/download/v0.0.125/cbam_resnet50-0605-a1172fe6.pth.zip",
                    "pytorchcv",
                    sha1="a1172fe679622224dcc88c00020936ad381806fb",
                    label="github.com (pytorchcv v0.0.125)",
                ),
                Source(  # the README's link before 2022-09-12; kept last in case Drive refuses
                    f"https://www.dropbox.com/s/bt6zty02h9ibufi/{CBAM_FILE}?dl=1",
                    "official_cbam",
                    page="https://github.com/Jongchan/attention-module",
                ),
            ),
            V15,
            metrics={"imagenet_top1": 77.622, "imagenet_top5": 93.948},
            license="MIT (Jongchan/attention-module)",
            citation=CBAM_PAPER,
            notes="no published hash for the release file; 100-epoch training as in the paper",
        ),
        _pytorchcv(
            "cbam_resnet50.pytorchcv",
            "CBAM-ResNet-50, pytorchcv v0.0.537",
            "cbam_resnet50-0505-d8cf8488",
            "v0.0.537",
            V15,
            "d8cf8488efb97afecd6b3287a3ca9fa093fc3127",
            metrics={"imagenet_top1": 79.83, "imagenet_top5": 94.95},
            citation=f"{CBAM_PAPER}; {PYTORCHCV_CITATION}",
            notes="osmr's own training",
        ),
        _pytorchcv(
            "cbam_resnet50.pytorchcv_v125",
            "CBAM-ResNet-50, pytorchcv v0.0.125 (official weights re-packed)",
            "cbam_resnet50-0605-a1172fe6",
            "v0.0.125",
            V15,
            "a1172fe679622224dcc88c00020936ad381806fb",
            metrics={"imagenet_top1": 77.62, "imagenet_top5": 93.95},
            citation=f"{CBAM_PAPER}; {PYTORCHCV_CITATION}",
            notes="converted by pytorchcv from the official release; asset availability unverified",
        ),
        _pytorchcv(
            "resnet50.pytorchcv_b",
            "ResNet-50b, pytorchcv v0.0.308",
            "resnet50b-0638-8a5473ef",
            "v0.0.308",
            V15,
            "8a5473ef985d65076a3758117ad5700d726bd952",
            metrics={"imagenet_top1": 77.61, "imagenet_top5": 93.62},
            citation=f"{RESNET_PAPER}; {PYTORCHCV_CITATION}",
            notes="v1.5 (the 'b' variant: stride in conv2)",
        ),
        _pytorchcv(
            "se_resnet50.pytorchcv_b",
            "SE-ResNet-50b, pytorchcv v0.0.387",
            "seresnet50b-0539-459e6871",
            "v0.0.387",
            V15,
            "459e6871e944d1c7102ee9c055ea428b8d9a168c",
            metrics={"imagenet_top1": 79.21, "imagenet_top5": 94.61},
            citation=f"{SE_PAPER}; {PYTORCHCV_CITATION}",
            notes="v1.5 (the 'b' variant: stride in conv2)",
        ),
        _pytorchcv(
            "resnet50.pytorchcv_v1",
            "ResNet-50 (v1), pytorchcv v0.0.329",
            "resnet50-0633-b00d1c8e",
            "v0.0.329",
            PYTORCHCV_V1,
            "b00d1c8e52aa7a2badc705b1545aaf6ccece6ce9",
            metrics={"imagenet_top5": 93.67},
            citation=f"{RESNET_PAPER}; {PYTORCHCV_CITATION}",
            notes="v1 (stride in conv1); top-1 not recorded here",
        ),
        _pytorchcv(
            "se_resnet50.pytorchcv_v1",
            "SE-ResNet-50 (v1), pytorchcv v0.0.441",
            "seresnet50-0575-004bfde4",
            "v0.0.441",
            PYTORCHCV_V1,
            "004bfde422c860c4f11b1e1190bb5a8db477d939",
            metrics={"imagenet_top5": 94.25},
            citation=f"{SE_PAPER}; {PYTORCHCV_CITATION}",
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


def mirror_base(mirror: str | None = None) -> str | None:
    """The local mirror's base URL (``CBAM_VIZ_WEIGHTS_MIRROR``; a folder becomes a file:// URL), or None."""
    base = (mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")).strip()
    if not base:
        return None
    if base.startswith(("http://", "https://", "file://")):
        return base.rstrip("/")
    return Path(base).expanduser().resolve().as_uri()


def mirror_sources(entry: WeightsEntry, mirror: str | None = None) -> tuple[Source, ...]:
    """The entry's files on the local mirror, one per source in order: ``<base>/<that source's file name>``.

    The teacher's copy came from whichever source answered (Drive, the pytorchcv zip, a Hugging Face safetensors), so
    every source's file name is tried, each checked with that source's hashes and layout; () when no mirror is set.
    """
    base = mirror_base(mirror)
    if base is None:
        return ()
    parsed = urlparse(base)
    where = parsed.hostname or display_path(Path(unquote(parsed.path)))
    mirrored: list[Source] = []
    for source in entry.sources:
        if any(known.filename == source.filename for known in mirrored):
            continue  # two hosts of the same file (GitHub and lip6): one name on the mirror
        url = f"{base}/{quote(source.filename)}"
        mirrored.append(dataclasses.replace(source, url=url, kind="mirror", label=f"mirror {where}"))
    return tuple(mirrored)


def download_sources(entry: WeightsEntry) -> tuple[Source, ...]:
    """The sources a download tries, in order: the mirror's files first when one is set, then the entry's own."""
    return (*mirror_sources(entry), *entry.sources)


def raw_file(entry: WeightsEntry, weights_dir: Path | str | None = None) -> tuple[Path, Source] | None:
    """The downloaded (or hand-placed) original file and the source whose name it has, if present.

    Only complete files count: a download in progress lives under a hidden ``.<name>.<id>.part`` name.
    """
    for source in entry.sources:
        for name in source.local_names:
            path = imagenet_dir(weights_dir) / name
            if path.is_file() and path.stat().st_size > 0:
                return path, source
    return None


def raw_path(entry: WeightsEntry, weights_dir: Path | str | None = None) -> Path | None:
    found = raw_file(entry, weights_dir)
    return found[0] if found else None


@dataclass(frozen=True)
class RawCheck:
    """An entry's original file under weights/imagenet/, checked: its sha256 and why it cannot be used, if so."""

    path: Path
    source: Source  # the source whose file name it has
    sha256: str  # computed from the file ("" when it could not be read)
    problem: str | None  # one line; None when it matches its hashes and loads strictly into the entry's architecture


_RAW_CHECKS: dict[tuple[Any, ...], tuple[str, str | None]] = {}


def check_raw(entry: WeightsEntry, weights_dir: Path | str | None = None) -> RawCheck | None:
    """Check the entry's original file (hashes, then a strict load); None when there is none.

    A file put there by hand, or damaged since its download, must not count as present: only loading it tells. The
    outcome is kept while the file's size and modification time and its recorded sha256 stay the same.
    """
    found = raw_file(entry, weights_dir)
    if found is None:
        return None
    path, source = found
    stat = path.stat()
    recorded = read_sums(weights_dir).get(path.name)
    key = (entry, str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, recorded)
    with _RECORDS_LOCK:
        outcome = _RAW_CHECKS.get(key)
    if outcome is None:
        outcome = _check_file(entry, source, path, weights_dir)
        with _RECORDS_LOCK:
            _RAW_CHECKS[key] = outcome
    return RawCheck(path, source, *outcome)


def _check_file(
    entry: WeightsEntry, source: Source, path: Path, weights_dir: Path | str | None
) -> tuple[str, str | None]:
    """-> (sha256, problem) of a file in the weights folder; any failure to read it is a problem, never a crash."""
    try:
        sha256, problem = file_problem(source, path, weights_dir)
    except Exception as error:  # a junk zip can fail zipfile in many ways
        return "", f"not the published {entry.name} file ({type(error).__name__}: {one_line(error)})"
    if problem:
        return sha256, f"not the published {entry.name} file ({problem})"
    try:
        load_source_file(entry, source, path)
    except WeightsError as error:
        return sha256, not_a_checkpoint(entry, source, error)
    return sha256, None


def entry_status(entry: WeightsEntry, weights_dir: Path | str | None = None) -> str:
    """'converted', 'downloaded' (original file only, checked), 'broken' (original file unusable) or 'missing'."""
    if converted_path(entry, weights_dir).is_file():
        return "converted"
    check = check_raw(entry, weights_dir)
    if check is None:
        return "missing"
    return "broken" if check.problem else "downloaded"


def missing_entries(set_name: str, weights_dir: Path | str | None = None) -> list[WeightsEntry]:
    """The set's entries without usable weights here: missing, or only a broken original file."""
    entries = [ENTRIES[name] for name in SETS[set_name].values()]
    return [entry for entry in entries if entry_status(entry, weights_dir) in ("missing", "broken")]


def set_aside(check: RawCheck, weights_dir: Path | str | None = None) -> Path:
    """Move a broken original file to ``<name>.broken`` and forget its records; -> the new path.

    It may be a file someone fetched by hand, so it is kept for them to look at (nothing ever loads that name).
    """
    target = check.path.with_name(f"{check.path.name}.broken")
    os.replace(check.path, target)
    forget_download(check.path.name, weights_dir)
    return target


def manual_line(entry: WeightsEntry, weights_dir: Path | str | None = None) -> str:
    """How to get one file by hand, in one line: the page, the file name, the folder."""
    first = entry.sources[0]
    return (
        f"{entry.name}: download {first.filename} from {first.manual_page} "
        f"and put it in {display_path(imagenet_dir(weights_dir))}/"
    )


def how_to_get(target: str, entries: list[WeightsEntry], weights_dir: Path | str | None = None) -> str:
    """The one-line instruction shared by every 'weights missing' error."""
    files = ", ".join(entry.filename for entry in entries)
    return (
        f"run `{DOWNLOAD_HINT} {target}`, or put {files} under {display_path(imagenet_dir(weights_dir))}/ "
        f"(`python -m cbam_viz weights list` says where to get each), or use --weights demo"
    )


# ------------------------------------------------------------------------------------------------------- records


def read_sums(weights_dir: Path | str | None = None) -> dict[str, str]:
    """weights/imagenet/SHA256SUMS (``sha256sum`` format): file name -> sha256 recorded at its first download."""
    path = imagenet_dir(weights_dir) / SUMS_FILE
    sums: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            digest, _, name = line.partition("  ")
            if len(digest) == 64 and name:
                sums[name.lstrip("*")] = digest.lower()
    return sums


def read_origins(weights_dir: Path | str | None = None) -> dict[str, dict[str, str]]:
    """weights/imagenet/origins.json: file name -> {"origin", "url"} of the source that served it."""
    path = imagenet_dir(weights_dir) / ORIGINS_FILE
    try:
        origins = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return origins if isinstance(origins, dict) else {}


def _write_atomically(path: Path, text: str) -> None:
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)


def record_download(name: str, sha256: str, source: Source, weights_dir: Path | str | None = None) -> None:
    """Remember a downloaded file's sha256 (SHA256SUMS, checkable with ``sha256sum -c``) and where it came from."""
    folder = imagenet_dir(weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with _RECORDS_LOCK:
        sums = read_sums(weights_dir)
        sums[name] = sha256
        _write_atomically(folder / SUMS_FILE, "".join(f"{digest}  {file}\n" for file, digest in sorted(sums.items())))
        origins = read_origins(weights_dir)
        origins[name] = {"origin": source.origin, "url": source.url}
        _write_atomically(folder / ORIGINS_FILE, json.dumps(origins, indent=2, sort_keys=True) + "\n")


def forget_download(name: str, weights_dir: Path | str | None = None) -> None:
    """Drop file ``name`` from SHA256SUMS and origins.json (it was set aside: its records no longer describe it)."""
    folder = imagenet_dir(weights_dir)
    with _RECORDS_LOCK:
        sums, origins = read_sums(weights_dir), read_origins(weights_dir)
        if sums.pop(name, None) is not None:
            _write_atomically(
                folder / SUMS_FILE, "".join(f"{digest}  {file}\n" for file, digest in sorted(sums.items()))
            )
        if origins.pop(name, None) is not None:
            _write_atomically(folder / ORIGINS_FILE, json.dumps(origins, indent=2, sort_keys=True) + "\n")


def file_origin(name: str, weights_dir: Path | str | None = None) -> str:
    """Who served file ``name`` (recorded at download), or that it was put there by hand."""
    return read_origins(weights_dir).get(name, {}).get("origin") or HAND_PLACED


def from_origin(origin: str) -> Message:
    """``origin`` as the end of a sentence: "from drive.google.com", or "put there by hand" (a Message: the model
    headers say it in the visitor's language)."""
    return Message("weights.header.by_hand") if origin == HAND_PLACED else Message("weights.header.from", origin=origin)


def converted_extra(entry: WeightsEntry, weights_dir: Path | str | None = None) -> dict[str, Any]:
    """What the entry's project safetensors says it was converted from (file, sha256, layout, origin); {} if none."""
    converted = converted_path(entry, weights_dir)
    if not converted.is_file():
        return {}
    try:
        with safe_open(str(converted), framework="pt") as handle:
            extra = json.loads((handle.metadata() or {}).get("extra", "{}"))
    except (OSError, ValueError, SafetensorError):
        return {}
    return extra if isinstance(extra, dict) else {}


def entry_origin(entry: WeightsEntry, weights_dir: Path | str | None = None) -> str:
    """Where the entry's weights came from, as ``weights list`` and the banner say it ("" when missing)."""
    origin = converted_extra(entry, weights_dir).get("origin")
    if origin:
        return str(origin)
    found = raw_file(entry, weights_dir)
    return file_origin(found[0].name, weights_dir) if found else ""


# -------------------------------------------------------------------------------------------------------- hashes


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


def hash_problem(
    source: Source, path: Path, name: str | None = None, sha256: str | None = None
) -> tuple[str, str | None]:
    """-> (sha256 of the file, what does not match the source's published hashes or None).

    ``name`` is the file name ``path`` stands for (a download is checked under its temporary name); the full
    sha256 and the file-name prefix apply to ``source.filename`` only, the pytorchcv SHA-1 to the zip and the .pth.
    ``sha256`` is the file's, when the caller computed it already (a download hashes what it receives).
    """
    name = name or path.name
    sha256 = sha256 or file_sha256(path)
    if name == source.filename and source.sha256 and sha256 != source.sha256:
        return sha256, f"sha256 {sha256[:12]}... differs from the published {source.sha256[:12]}..."
    if name == source.filename and source.sha256_prefix and not sha256.startswith(source.sha256_prefix):
        return sha256, f"sha256 {sha256[:8]}... does not start with {source.sha256_prefix}, the hash in its name"
    if source.sha1:
        sha1 = pytorchcv_sha1(path)
        if not sha1.startswith(source.sha1):
            return sha256, f"SHA-1 {sha1[:8]}... of the .pth differs from the published {source.sha1[:8]}..."
    return sha256, None


def file_problem(source: Source, path: Path, weights_dir: Path | str | None = None) -> tuple[str, str | None]:
    """-> (sha256, what does not match the source's published hashes or the sha256 recorded at download, or None)."""
    sha256, problem = hash_problem(source, path)
    recorded = read_sums(weights_dir).get(path.name)
    if problem is None and recorded and recorded != sha256:
        problem = f"sha256 {sha256[:12]}... differs from the {recorded[:12]}... recorded in {SUMS_FILE} at download"
    return sha256, problem


def verify_file(entry: WeightsEntry, source: Source, path: Path, weights_dir: Path | str | None = None) -> str:
    """Check the source's published hashes and the sha256 recorded at download; -> the file's sha256."""
    sha256, problem = file_problem(source, path, weights_dir)
    if problem:
        raise WeightsError(
            f"{display_path(path)} is not the published {entry.name} file ({problem}): "
            f"delete it and run `{DOWNLOAD_HINT} {entry.name}`"
        )
    return sha256


# ---------------------------------------------------------------------------------------------------- conversion


def one_line(error: BaseException | str) -> str:
    """An error as one line (readers' messages may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def not_a_checkpoint(entry: WeightsEntry, source: Source, error: BaseException | str) -> str:
    """The one line for a file that does not load as the entry's architecture in the source's layout."""
    return f"not a {entry.arch} checkpoint in {source.layout} layout ({one_line(error)})"


def load_source_file(entry: WeightsEntry, source: Source, path: Path, name: str | None = None) -> LoadedCheckpoint:
    """Strictly load ``path`` (standing for file ``name``) in the source's layout into the entry's architecture.

    A file that is not a checkpoint of the entry's architecture fails here, which is how a download without a
    published hash is told from a wrong file. Whatever the bytes are, the failure is a WeightsError: a reader's own
    exception (junk reaches torch's unpickler as anything) would skip the next source and end in a traceback.
    """
    try:
        checkpoint = read_checkpoint(path)
        if name:
            checkpoint = dataclasses.replace(checkpoint, name=name)
        return load_into_model(checkpoint, entry.arch, layout=source.layout, config=entry.config)
    except WeightsError:
        raise
    except Exception as error:
        raise WeightsError(
            f"cannot read {name or path.name}: the file is truncated or not a checkpoint "
            f"({type(error).__name__}: {one_line(error)})"
        ) from error


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
    """weights/demo/metadata.json, checked for the fields the loader needs (``cbam_viz.demo_metadata`` owns it)."""
    return demo_metadata.read_demo_metadata(weights_root(weights_dir))


def demo_available(weights_dir: Path | str | None = None) -> tuple[bool, str]:
    """(present, why not) for the demo set: metadata plus one file per architecture."""
    root = weights_root(weights_dir)
    try:
        metadata = read_demo_metadata(root)
        missing = [arch for arch in ARCHS if not demo_metadata.demo_file(metadata, arch, root).is_file()]
    except WeightsError as error:
        return False, str(error)
    if missing:
        return False, f"demo files missing for {', '.join(missing)} under {display_path(root / DEMO_SUBDIR)}"
    return True, ""


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%" if value <= 1 else f"{value:.0f}%"


def _load_demo(arch: str, weights_dir: Path | str | None) -> tuple[ResNet, LoadedWeights]:
    root = weights_root(weights_dir)
    metadata = read_demo_metadata(root)
    path = demo_metadata.demo_file(metadata, arch, root)
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
    accuracy = Message("weights.header.demo_accuracy", percent=_percent(float(top1))) if top1 is not None else ""
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

    "auto" is the ImageNet ``paper`` set when all its files are under weights/imagenet/, otherwise ``demo``.
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
    if path.is_file():
        note = Message("weights.note.file_requested", name=path.name)
        return WeightsChoice("file", str(path), note, False, str(path), requested)
    if path.suffix or os.sep in requested:
        raise WeightsError(f"checkpoint file {requested} does not exist: check the path")
    raise WeightsError(
        f"unknown weights {requested!r}: use auto, a set ({', '.join(SET_NAMES)}), an entry "
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


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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

    ``num_classes`` comes from the weights; passing a different one raises. ``stride_in`` ("conv1" | "conv2") is
    only needed for a local pytorchcv file whose name does not tell v1 from v1.5. The model carries
    ``model.weights_info`` (LoadedWeights).
    """
    if arch not in ARCHS:
        raise WeightsError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    if stride_in not in (None, "conv1", "conv2"):
        raise WeightsError(f"stride_in must be 'conv1' or 'conv2', not {stride_in!r}")
    root = weights_root(weights_dir)
    name = resolve_weights(weights, root).name
    if _is_demo_name(name):
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
