"""Which weights exist, as data: a registry of published checkpoints, named sets of three, and how to prepare
a picture for each.

Modelled on torchvision's ``ResNet50_Weights``: each entry keeps, next to the builder, where the file comes from,
how to check it, which key layout and architecture switches it has, how images must be prepared for it
(``Preprocess``), its categories and its reported accuracy, licence and citation. Each entry lists its sources in
order (the publisher, re-hosts, timm's Hugging Face copy), each with its own file name, layout and hashes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from cbam_viz.i18n.language import Message
from cbam_viz.model.resnet import ArchConfig

TRAIN_HINT = "python -m cbam_viz train-demo"
DEMO_SUFFIX = ".demo"  # "cbam_resnet50.demo" names one model of the demo set
DOWNLOAD_HINT = "python -m cbam_viz weights download"
HAND_PLACED = "put there by hand"
DEMO_ORIGIN = f"trained here by `{TRAIN_HINT}`"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESNET_PAPER = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016. arXiv:1512.03385"
SE_PAPER = "Hu, Shen, Sun. Squeeze-and-Excitation Networks. CVPR 2018. arXiv:1709.01507"
CBAM_PAPER = "Woo, Park, Lee, Kweon. CBAM: Convolutional Block Attention Module. ECCV 2018. arXiv:1807.06521"
TIMM_CITATION = "Wightman. PyTorch Image Models. 2019. https://github.com/huggingface/pytorch-image-models"
PYTORCHCV_CITATION = "Semery. imgclsmob (pytorchcv). https://github.com/osmr/imgclsmob"


INTERPOLATIONS = ("bilinear", "bicubic", "nearest")  # how a picture may be resized for a model (Pillow's filters)


@dataclass(frozen=True)
class Preprocess:
    """How images must be prepared for a set of weights (their evaluation transform)."""

    resize: int  # shorter side in pixels before any crop (e.g. 256; demo: 96)
    crop: int | None  # evaluation centre crop (224), or None
    interpolation: str  # one of INTERPOLATIONS
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Preprocess:
        """A ``Preprocess`` from its JSON fields (metadata files, safetensors headers)."""
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
    title: str = ""  # the model's name on the page: a model card's title; the architecture's title when empty


IMAGENET_EVAL = Preprocess(256, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
V15 = ArchConfig(stride_in="conv2", stem_pool="pad")
CAFFE_V1 = ArchConfig(stride_in="conv1", stem_pool="ceil")
PYTORCHCV_V1 = ArchConfig(stride_in="conv1", stem_pool="pad")


@functools.cache
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k names shipped inside torchvision (no download)."""
    # Imported here, not at the top: torchvision costs 1.6 s to import, and only ImageNet weights need these names.
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


SOURCE_KINDS = ("http", "drive", "huggingface", "mirror")


@dataclass(frozen=True)
class Source:
    """One place an entry's file comes from. Each source keeps its own file name, key layout and hashes, because a
    Hugging Face ``model.safetensors`` of the same weights is another file than the publisher's ``.pth``."""

    url: str
    layout: str  # a key of cbam_viz.weights.convert.LAYOUTS
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
        """Who serves the file: the URL's host, or the folder of a file:// URL."""
        parsed = urlparse(self.url)
        return parsed.hostname or (unquote(parsed.path).rsplit("/", 1)[0] if parsed.scheme == "file" else self.url)

    @property
    def origin(self) -> str:
        """Who served the file, for ``weights list`` and the banner: "from <origin>"."""
        return self.label or self.host

    @property
    def manual_page(self) -> str:
        """The page to open for a download by hand."""
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
    """A source on Google Drive, by its file id."""
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
        """Every source's URL, in the order they are tried."""
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
        """The 1000 ImageNet class names."""
        return imagenet_categories()

    @property
    def num_classes(self) -> int:
        """How many classes the model predicts."""
        return self.config.num_classes

    @property
    def local_names(self) -> tuple[str, ...]:
        """Every file name the entry's sources may leave in the weights folder."""
        return tuple(name for source in self.sources for name in source.local_names)

    @property
    def description(self) -> str:
        """One line for headers: the title and ImageNet accuracy (a Message: said in the visitor's language)."""
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


def default_categories(count: int) -> tuple[str, ...]:
    """ImageNet names for a 1000-way head, otherwise neutral names (a checkpoint without category metadata)."""
    return imagenet_categories() if count == 1000 else tuple(f"class {index}" for index in range(count))
