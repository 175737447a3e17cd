"""What a study reads: the built-in held-out shapes, or an ImageFolder of the user's labelled pictures.

Listing is cheap and checks everything a user can get wrong BEFORE any image is processed (a class folder naming no
class of the weights, a box file naming missing images, ``--per-class`` above a class's size), each a one-line
``CbamVizError``. Loading one item (``load(item)``) decodes it with the app's decoder and limits; what it raises is
``ImageError`` and the study lists that image in ``skipped.csv`` instead of stopping.

* ``shapes``: the held-out stream of the demo set (``demo.evaluate.HELDOUT_SEED``, 96 px, never seen in training),
  with each target's exact mask. Image ids are ``shapes-<seed>-<index>``: ``demo.shapes.render_sample(seed,
  index)`` draws the picture again.
* An ImageFolder ``root/<class>/<image>``: the class folder is an ImageNet WordNet id (``n01440764``; the sorted-wnid
  order that torchvision's and timm's class indices follow is shipped in ``imagenet_wnids.txt``), a class index, or a
  class name of the chosen weights. Optional: ``root/boxes.csv`` with rows ``image,x0,y0,x1,y1[,class]`` (pixels of
  the picture as the user sees it, EXIF applied; ``image`` relative to root, or a bare file name when unique; a
  header row is allowed; rows whose class is another than the image's are ignored) or a Pascal VOC annotation
  beside the picture (``<stem>.xml``; objects named by the class's name, index or wnid), and a mask beside an image,
  ``<stem>.mask.png`` or ``<image>.mask.png`` (non-zero = object). A mask wins over boxes. Image ids are the paths
  relative to root.
* ImageNet val as Kaggle ships it: a flat folder of ``ILSVRC2012_val_*.JPEG`` with ``LOC_val_solution.csv``
  (``ImageId,PredictionString``; the string repeats ``wnid x0 y0 x1 y1``) in that folder or up to four folders
  above it (Kaggle's ``ILSVRC/Data/CLS-LOC/val``). The class is the boxes' wnid, in the sorted-wnid order of
  ImageNet weights; every box of that class counts. The file covers all 50 000 images, so a folder holding part
  of them studies that part; a picture the file does not name is a one-line error. Image ids are the file names;
  items go by class, then name.
* ImageNet val with the ILSVRC2012 devkit: the same flat folder, and the devkit's folder ``ILSVRC2012_devkit_t12``
  (as ``ILSVRC2012_devkit_t12.tar.gz`` unpacks) in it or up to four folders above it. Its
  ``data/ILSVRC2012_validation_ground_truth.txt`` holds one ILSVRC2012_ID (1-1000) per line, line n for
  ``ILSVRC2012_val_<n>``; its ``data/meta.mat`` (``synsets``: ``ILSVRC2012_ID``, ``WNID``) maps those ids to WordNet
  ids, and so to the weights' class indices. Boxes: the Pascal VOC files of ``ILSVRC2012_bbox_val_v3.tgz``
  (``ILSVRC2012_val_<n>.xml``, objects named by WordNet id) beside the pictures, read as an ImageFolder's are.
  Kaggle's CSV wins when both are there.

Subsets are seeded: ``--per-class N`` draws N images of each class, ``--limit N`` then keeps N of those (drawn in a
seeded order for folders; the first N of the stream for shapes, which is random already). Items keep a stable order
(by class folder, then name), so shard k always holds the same images.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cbam_viz.errors import CbamVizError, ImageError
from cbam_viz.vocab import quote

SHAPES = "shapes"
SHAPES_SIZE = 96
SHAPES_DEFAULT_COUNT = 1000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MASK_SUFFIX = ".mask.png"
BOXES_FILE = "boxes.csv"
KAGGLE_SOLUTION = "LOC_val_solution.csv"
DEVKIT = "ILSVRC2012_devkit_t12"
DEVKIT_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META = "meta.mat"
VAL_PICTURE = re.compile(r"ILSVRC2012_val_(\d{8})")
WNID = re.compile(r"n\d{8}")
SEED = 0


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order (sorted), shipped as data."""
    return tuple((Path(__file__).with_name("imagenet_wnids.txt")).read_text().split())


@dataclass(frozen=True)
class Item:
    """One picture of a study, not yet read: where it is, its true class, and where its object is said to be."""

    image_id: str
    label: int
    path: Path | None = None  # a file of an ImageFolder; None for shapes
    shapes: tuple[int, int] | None = None  # (seed, index) of a held-out shape
    mask_path: Path | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # pixels of the upright original picture
    xml_path: Path | None = None  # a Pascal VOC annotation beside the picture, read when the picture is
    class_names: tuple[str, ...] = ()  # the names its objects of the true class may have there (normalised)


@dataclass
class Loaded:
    """One decoded picture and its object: a mask of the original's size, boxes, or nothing."""

    item: Item
    picture: Image.Image  # decoded, upright 8-bit RGB (``imaging.decode_image``)
    mask: np.ndarray | None = None  # (height, width) bool at the original size
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    notes: list[str] = field(default_factory=list)


def load(item: Item) -> Loaded:
    """Decode ``item`` (``ImageError`` for an unusable picture) and read its mask; a broken mask only loses the
    localisation columns, with a note."""
    from cbam_viz.demo.shapes import render_sample
    from cbam_viz.imaging.decode import decode_image

    if item.shapes is not None:
        sample = render_sample(item.shapes[0], item.shapes[1], SHAPES_SIZE)
        return Loaded(item, decode_image(Image.fromarray(sample.image)), mask=sample.mask)
    assert item.path is not None
    picture = decode_image(item.path)
    loaded = Loaded(item, picture, boxes=item.boxes)
    if item.xml_path is not None and not item.boxes:
        try:
            loaded.boxes = voc_boxes(item.xml_path, item.class_names)
        except (ValueError, OSError, SyntaxError) as error:
            loaded.notes.append(f"boxes of {item.xml_path.name} not used: {' '.join(str(error).split())[:120]}")
    if item.mask_path is not None:
        try:
            mask = np.asarray(decode_image(item.mask_path, name=item.mask_path.name).convert("L")) > 0
            if mask.shape != (picture.height, picture.width):
                raise ImageError(f"is {mask.shape[1]}x{mask.shape[0]}, the picture {picture.width}x{picture.height}")
            if not mask.any():
                raise ImageError("marks no pixel")
            loaded.mask = mask
        except (CbamVizError, OSError) as error:
            loaded.notes.append(f"mask {item.mask_path.name} not used: {error}")
    return loaded


# ------------------------------------------------------------------------------------------------------ shapes


def shapes_items(categories: Sequence[str], limit: int | None, per_class: int | None) -> list[Item]:
    """The held-out shapes: the first ``limit`` (default ``SHAPES_DEFAULT_COUNT``), or the first ``per_class`` of
    each class (then at most ``limit`` of those)."""
    from cbam_viz.demo.evaluate import HELDOUT_SEED
    from cbam_viz.demo.shapes import CLASSES

    if tuple(categories) != CLASSES:
        raise CbamVizError("the shapes study needs the demo weights, whose classes are the shapes: use --weights demo")

    def label_of(index: int) -> int:  # render_sample's first draw, without rendering
        return int(np.random.default_rng([HELDOUT_SEED, index]).integers(len(CLASSES)))

    def item(index: int) -> Item:
        return Item(f"{SHAPES}-{HELDOUT_SEED}-{index:06d}", label_of(index), shapes=(HELDOUT_SEED, index))

    if per_class is None:
        return [item(index) for index in range(limit or SHAPES_DEFAULT_COUNT)]
    counts, chosen, index = [0] * len(CLASSES), [], 0
    while min(counts) < per_class:
        label = label_of(index)
        if counts[label] < per_class:
            counts[label] += 1
            chosen.append(item(index))
        index += 1
    return chosen[:limit] if limit else chosen


# ------------------------------------------------------------------------------------------------- ImageFolder


def class_index(folder: str, categories: Sequence[str]) -> int:
    """The class index a folder names: a WordNet id (1000-class weights), an index, or a class name."""
    from cbam_viz.analysis.cam import resolve_target

    if WNID.fullmatch(folder):
        wnids = imagenet_wnids()
        if len(categories) != len(wnids) or folder not in wnids:
            raise CbamVizError(
                f"class folder {quote(folder)} is a WordNet id, but it is none of the {len(categories)} classes of "
                "these weights: use ImageNet weights, or name folders by class index or name"
            )
        return wnids.index(folder)
    try:
        return int(resolve_target(folder, categories))  # an index, or a name (case and _ ignored)
    except CbamVizError as error:
        raise CbamVizError(f"class folder {quote(folder)} matches no class of these weights: {error}") from None


def folder_items(root: Path, categories: Sequence[str], limit: int | None, per_class: int | None) -> list[Item]:
    """The pictures of ``root/<class>/``, with their boxes and masks, subset as asked (see the module docstring)."""
    if not root.is_dir():
        raise CbamVizError(f"{quote(str(root))} is no folder: give shapes, or a folder of class folders")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise CbamVizError(f"{quote(str(root))} holds no class folder: pictures go in root/<class>/<image>")
    by_class: dict[str, list[Path]] = {}
    labels: dict[str, int] = {}
    for folder in classes:
        labels[folder.name] = class_index(folder.name, categories)
        by_class[folder.name] = sorted(
            p
            for p in folder.iterdir()
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and not p.name.lower().endswith(MASK_SUFFIX)
            and not p.name.startswith(".")
        )
    boxes = read_boxes(root, [p for paths in by_class.values() for p in paths], categories, labels)
    chosen = _subset(by_class, limit, per_class)
    return [
        Item(
            path.relative_to(root).as_posix(),
            labels[path.parent.name],
            path=path,
            mask_path=_mask_of(path),
            boxes=tuple(boxes.get(path, ())),
            xml_path=path.with_suffix(".xml") if path.with_suffix(".xml").is_file() else None,
            class_names=class_names(labels[path.parent.name], categories),
        )
        for path in chosen
    ]


def _subset(by_class: dict[str, list[Path]], limit: int | None, per_class: int | None) -> list[Path]:
    rng = np.random.default_rng(SEED)
    chosen: list[Path] = []
    for name, paths in by_class.items():
        if per_class is not None:
            if per_class > len(paths):
                raise CbamVizError(
                    f"--per-class {per_class} is more than class {quote(name)} has ({len(paths)} pictures)"
                )
            picked = sorted(rng.choice(len(paths), size=per_class, replace=False))
            paths = [paths[i] for i in picked]
        chosen += paths
    if limit is not None and limit < len(chosen):
        keep = sorted(np.random.default_rng(SEED + 1).choice(len(chosen), size=limit, replace=False))
        chosen = [chosen[i] for i in keep]
    return chosen


def voc_boxes(path: Path, names: Sequence[str]) -> tuple[tuple[float, float, float, float], ...]:
    """The boxes of a Pascal VOC annotation whose object ``name`` is one of ``names`` (normalised), as written
    (xmin, ymin, xmax, ymax). ValueError for a file that is not such an annotation."""
    import xml.etree.ElementTree as ElementTree

    if path.stat().st_size > 1 << 20:
        raise ValueError("larger than 1 MB: not an annotation")
    root = ElementTree.parse(path).getroot()
    if root.tag != "annotation":
        raise ValueError(f"its root is <{root.tag[:40]}>, not <annotation>")
    boxes = []
    for found in root.iter("object"):
        name = _normalised(found.findtext("name") or "")
        box = found.find("bndbox")
        if name in names and box is not None:
            boxes.append(tuple(float(box.findtext(edge) or "nan") for edge in ("xmin", "ymin", "xmax", "ymax")))
    if any(not all(np.isfinite(box)) for box in boxes):
        raise ValueError("a <bndbox> lacks xmin, ymin, xmax or ymax")
    return tuple(boxes)  # type: ignore[return-value]


def _normalised(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def class_names(label: int, categories: Sequence[str]) -> tuple[str, ...]:
    """What an annotation may call class ``label``: its index, its name, and its WordNet id (ImageNet weights)."""
    names = [str(label), _normalised(categories[label])]
    if len(categories) == len(imagenet_wnids()):
        names.append(imagenet_wnids()[label])
    return tuple(names)


def _mask_of(path: Path) -> Path | None:
    for candidate in (path.with_name(path.stem + MASK_SUFFIX), path.with_name(path.name + MASK_SUFFIX)):
        if candidate.is_file():
            return candidate
    return None


def read_boxes(
    root: Path, paths: Sequence[Path], categories: Sequence[str], labels: dict[str, int]
) -> dict[Path, list[tuple[float, float, float, float]]]:
    """``root/boxes.csv`` as picture -> boxes of its own class; {} without the file. One-line errors for a row that
    is not ``image,x0,y0,x1,y1[,class]`` and for images that do not exist (named with the first of them)."""
    file = root / BOXES_FILE
    if not file.is_file():
        return {}
    by_relative = {p.relative_to(root).as_posix(): p for p in paths}
    by_name: dict[str, list[Path]] = {}
    for p in paths:
        by_name.setdefault(p.name, []).append(p)
    boxes: dict[Path, list[tuple[float, float, float, float]]] = {}
    missing: list[str] = []
    with file.open(newline="", encoding="utf-8", errors="replace") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            try:
                values = tuple(float(cell) for cell in cells[1:5])
                if len(cells) not in (5, 6) or len(values) != 4:
                    raise ValueError
            except ValueError:
                if number == 1:
                    continue  # a header
                raise CbamVizError(
                    f"{BOXES_FILE} line {number} is not image,x0,y0,x1,y1[,class]: {quote(','.join(cells), 80)}"
                ) from None
            name = cells[0].replace("\\", "/")
            path = by_relative.get(name) or (by_name[name][0] if len(by_name.get(name, [])) == 1 else None)
            if path is None:
                missing.append(name)
                continue
            if len(cells) == 6 and cells[5] and class_index(cells[5], categories) != labels[path.parent.name]:
                continue  # a box of another object in the picture
            boxes.setdefault(path, []).append(values)  # type: ignore[arg-type]
    if missing:
        raise CbamVizError(
            f"{BOXES_FILE} names {len(missing)} picture(s) that are not in the class folders, e.g. {quote(missing[0])}"
        )
    return boxes


def kaggle_solution(root: Path) -> Path | None:
    """Kaggle's ``LOC_val_solution.csv`` for a flat folder of pictures: in it or up to four folders above it."""
    for folder in [root, *root.parents][:5]:
        if (folder / KAGGLE_SOLUTION).is_file():
            return folder / KAGGLE_SOLUTION
    return None


def kaggle_items(
    root: Path, solution: Path, categories: Sequence[str], limit: int | None, per_class: int | None
) -> list[Item]:
    """The flat folder's pictures with the classes and boxes of Kaggle's solution file (see the module docstring)."""
    wnids = imagenet_wnids()
    if len(categories) != len(wnids):
        raise CbamVizError(
            f"{KAGGLE_SOLUTION} labels ImageNet's 1000 classes; these weights have {len(categories)}: use ImageNet "
            "weights (--weights paper)"
        )
    pictures = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    wanted = {p.stem: p for p in pictures}
    labelled: dict[str, tuple[int, tuple[tuple[float, float, float, float], ...]]] = {}
    with solution.open(newline="", encoding="utf-8", errors="replace") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if number == 1 or not row or row[0].strip() not in wanted:
                continue
            tokens = row[1].split() if len(row) > 1 else []
            try:
                if not tokens or len(tokens) % 5 or any(t not in wnids for t in tokens[::5]):
                    raise ValueError
                groups = [tokens[i : i + 5] for i in range(0, len(tokens), 5)]
                label = wnids.index(groups[0][0])
                boxes = tuple(tuple(float(v) for v in g[1:]) for g in groups if g[0] == groups[0][0])
            except ValueError:
                raise CbamVizError(
                    f'{KAGGLE_SOLUTION} line {number} is not ImageId,"wnid x0 y0 x1 y1 ...": {quote(",".join(row), 80)}'
                ) from None
            labelled[row[0].strip()] = (label, boxes)  # type: ignore[assignment]
    unnamed = [stem for stem in wanted if stem not in labelled]
    if unnamed:
        raise CbamVizError(
            f"{KAGGLE_SOLUTION} names no class for {len(unnamed)} picture(s) of {root}, "
            f"e.g. {quote(wanted[unnamed[0]].name)}"
        )
    by_class: dict[str, list[Path]] = {}
    for stem, path in wanted.items():
        by_class.setdefault(wnids[labelled[stem][0]], []).append(path)
    chosen = _subset(dict(sorted(by_class.items())), limit, per_class)
    chosen.sort(key=lambda p: (labelled[p.stem][0], p.name))  # by class: a shard's atlas sums hold few classes
    return [Item(p.name, labelled[p.stem][0], path=p, boxes=labelled[p.stem][1]) for p in chosen]


def devkit_folder(root: Path) -> Path | None:
    """The ILSVRC2012 devkit (``ILSVRC2012_devkit_t12``) for a flat folder of val pictures: in it or up to four
    folders above it."""
    for folder in [root, *root.parents][:5]:
        if (folder / DEVKIT).is_dir():
            return folder / DEVKIT
    return None


def devkit_wnids(meta: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> WordNet id of the 1000 classes, from the devkit's ``meta.mat`` (``synsets``)."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
        ids = [int(np.asarray(value).reshape(-1)[0]) for value in np.asarray(synsets["ILSVRC2012_ID"]).reshape(-1)]
        names = [str(np.asarray(value).reshape(-1)[0]) for value in np.asarray(synsets["WNID"]).reshape(-1)]
    except (OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError, MatReadError) as error:
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise CbamVizError(
            f"{meta} is not the devkit's meta.mat (synsets with ILSVRC2012_ID and WNID): {reason}"
        ) from None
    known = {number: wnid for number, wnid in zip(ids, names, strict=True) if 1 <= number <= 1000}
    wrong = [wnid for wnid in known.values() if wnid not in imagenet_wnids()]
    if len(known) != 1000 or wrong:
        what = f"e.g. {quote(wrong[0])} is no ImageNet-1k class" if wrong else f"{len(known)} of ids 1-1000"
        raise CbamVizError(f"{meta} does not map ILSVRC2012_ID 1-1000 onto the 1000 classes ({what})")
    return known


def devkit_truth(path: Path) -> list[int]:
    """The devkit's ground truth: line n is the ILSVRC2012_ID (1-1000) of ``ILSVRC2012_val_<n>``."""
    truth = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                value = int(line.strip())
                if not 1 <= value <= 1000:
                    raise ValueError
            except ValueError:
                raise CbamVizError(
                    f"{DEVKIT_TRUTH} line {number} is not an ILSVRC2012_ID from 1 to 1000: {quote(line.strip(), 40)}"
                ) from None
            truth.append(value)
    return truth


def devkit_items(
    root: Path, devkit: Path, categories: Sequence[str], limit: int | None, per_class: int | None
) -> list[Item]:
    """The flat folder's pictures with the devkit's classes and the VOC boxes beside them (module docstring)."""
    wnids = imagenet_wnids()
    if len(categories) != len(wnids):
        raise CbamVizError(
            f"the ILSVRC2012 devkit labels ImageNet's 1000 classes; these weights have {len(categories)}: use "
            "ImageNet weights (--weights paper)"
        )
    data = devkit / "data"
    for needed in (data / DEVKIT_META, data / DEVKIT_TRUTH):
        if not needed.is_file():
            raise CbamVizError(f"the ILSVRC2012 devkit {devkit} has no data/{needed.name}: unpack the whole devkit")
    by_id = devkit_wnids(data / DEVKIT_META)
    truth = devkit_truth(data / DEVKIT_TRUTH)
    pictures = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    labels: dict[Path, int] = {}
    for picture in pictures:
        named = VAL_PICTURE.fullmatch(picture.stem)
        if named is None:
            raise CbamVizError(
                f"{quote(picture.name)} is not an ImageNet val picture (ILSVRC2012_val_<8 digits>): the devkit's "
                "ground truth names pictures by number"
            )
        number = int(named.group(1))
        if not 1 <= number <= len(truth):
            raise CbamVizError(
                f"{DEVKIT_TRUTH} has {len(truth)} lines, but {quote(picture.name)} is picture {number}: "
                "use the full 50 000-line file"
            )
        labels[picture] = wnids.index(by_id[truth[number - 1]])
    by_class: dict[str, list[Path]] = {}
    for picture, label in labels.items():
        by_class.setdefault(wnids[label], []).append(picture)
    chosen = _subset(dict(sorted(by_class.items())), limit, per_class)
    chosen.sort(key=lambda p: (labels[p], p.name))  # by class: a shard's atlas sums hold few classes
    return [
        Item(
            p.name,
            labels[p],
            path=p,
            xml_path=p.with_suffix(".xml") if p.with_suffix(".xml").is_file() else None,
            class_names=class_names(labels[p], categories),
        )
        for p in chosen
    ]


def list_items(data: str, categories: Sequence[str], *, limit: int | None, per_class: int | None) -> list[Item]:
    """The items of ``data`` ("shapes", an ImageFolder, or a flat ImageNet val folder) in their stable order, subset
    as asked."""
    for name, value in (("--limit", limit), ("--per-class", per_class)):
        if value is not None and value < 1:
            raise CbamVizError(f"{name} must be at least 1, got {value}")
    if data == SHAPES:
        return shapes_items(categories, limit, per_class)
    root = Path(data).expanduser()
    if root.is_dir() and not any(
        p.is_dir() and not p.name.startswith(".") and p.name != DEVKIT for p in root.iterdir()
    ):
        solution = kaggle_solution(root)  # a flat folder: ImageNet val, labelled by Kaggle's CSV or the devkit
        if solution is not None:
            return kaggle_items(root, solution, categories, limit, per_class)
        devkit = devkit_folder(root)
        if devkit is not None:
            return devkit_items(root, devkit, categories, limit, per_class)
    return folder_items(root, categories, limit, per_class)


SHAPES_ID = re.compile(rf"{SHAPES}-(\d{{1,9}})-(\d{{1,9}})")


def picture_of(data: str, image_id: str) -> Image.Image:
    """The picture a study row's ``image_id`` names, decoded as the study read it (upright 8-bit RGB).

    A shapes id draws its shape again; a folder's id is a path under the study's data folder, which must stay
    inside it and be a plain file (never a link). Anything else is a one-line ``CbamVizError``."""
    from cbam_viz.demo.shapes import render_sample
    from cbam_viz.imaging.decode import decode_image

    if data == SHAPES:
        found = SHAPES_ID.fullmatch(image_id)
        if found is None:
            raise CbamVizError(f"{quote(image_id)} is not a shapes image id (shapes-<seed>-<index>)")
        sample = render_sample(int(found.group(1)), int(found.group(2)), SHAPES_SIZE)
        return decode_image(Image.fromarray(sample.image))
    root = Path(data).resolve()
    candidate = root / image_id
    if Path(image_id).is_absolute() or root not in candidate.resolve().parents:
        raise CbamVizError(f"{quote(image_id)} is not a picture inside the study's data folder")
    links = [p for p in (candidate, *candidate.parents) if root in p.parents and p.is_symlink()]
    if links or not candidate.is_file():
        raise CbamVizError(f"{quote(image_id)} is no longer a plain file in {root}")
    return decode_image(candidate)
