"""The example pictures: held-out shapes for the demo models, scikit-image's photographs for the ImageNet models.

The gallery follows the weights in use: shapes when the demo set answers, photographs when an ImageNet set does.
Files are written under a private folder made with ``mkdtemp`` (mode 0700, an unpredictable name) inside the app's own
temporary folder, and no symlink is followed when they are written or read back: a local user cannot publish a file of
their choosing as an example by creating the folder first.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from cbam_viz.demo import shapes
from cbam_viz.i18n.language import class_name, text
from cbam_viz.weights.registry import SETS

LOGGER = logging.getLogger("cbam_viz.app")

EXAMPLE_SEED = 7  # shapes streams 1 and 2 train and validate the demo models: seed 7 was never seen by them
EXAMPLE_SIZE = 256
PHOTOS = (  # scikit-image's bundled photographs (captions: ``photo.<stem>``); licences from skimage.data
    ("chelsea.png", "Stefan van der Walt, CC0"),
    ("coffee.png", "Rachel Michetti (courtesy of Pikolo Espresso Bar), CC0"),
    ("astronaut.png", "NASA, public domain"),
    ("rocket.jpg", "SpaceX, released into the public domain"),
    ("motorcycle_left.png", "Middlebury 2014 stereo dataset (Scharstein et al.), as shipped with scikit-image"),
)
PHOTO_GALLERY = "photos"  # the galleries' keys; their titles are the catalogue's ``gallery.<key>``
SHAPE_GALLERY = "shapes"


_ROOTS: dict[str, Path] = {}


def example_root(parent: Path | None = None) -> Path:
    """This process's private folder for the example pictures, made once with ``mkdtemp`` under ``parent`` (the
    app's run folder) or the system temp folder, which Gradio may serve from."""
    key = str(parent)
    if key not in _ROOTS or not _ROOTS[key].is_dir():
        _ROOTS[key] = Path(tempfile.mkdtemp(prefix="examples-", dir=parent))
    return _ROOTS[key]


def is_plain_file(path: Path) -> bool:
    """A regular file that is not a symlink (``Path.is_file`` follows links)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def write_examples(
    available_sets: Sequence[str], root: Path, *, photos: bool = False
) -> dict[str, list[tuple[str, str]]]:
    """Write the gallery pictures that fit the loaded weights; -> {gallery title: [(path, caption), ...]}.

    Shapes (one per class, from a seed the demo models never trained on) for the demo set; scikit-image's
    photographs for ImageNet sets, and when ``photos`` (a model card's models: everyday pictures to try). Files are
    written only when missing (a symlink in their place is replaced).
    """
    galleries: dict[str, list[tuple[str, str]]] = {}
    if "demo" in available_sets:
        folder = root / f"shapes-seed{EXAMPLE_SEED}-{EXAMPLE_SIZE}px"
        folder.mkdir(parents=True, exist_ok=True)
        items = []
        for label, name in enumerate(shapes.CLASSES):
            path = folder / f"{name}.png"
            if not is_plain_file(path):
                sample = shapes.render_sample(EXAMPLE_SEED, label, width=EXAMPLE_SIZE, label=label)
                _write_atomically(path, lambda handle, s=sample: Image.fromarray(s.image).save(handle, format="PNG"))
            items.append((str(path), name))
        galleries[SHAPE_GALLERY] = items
    if photos or any(name in SETS for name in available_sets):
        import skimage.data

        folder = root / "photos"
        folder.mkdir(parents=True, exist_ok=True)
        items = []
        for file_name, _ in PHOTOS:
            source = Path(skimage.data.data_dir) / file_name
            if not source.is_file():
                LOGGER.warning("scikit-image's %s is missing; the photo gallery skips it", file_name)
                continue
            path = folder / file_name
            if not is_plain_file(path):
                _write_atomically(path, lambda handle, s=source: handle.write(s.read_bytes()))
            items.append((str(path), Path(file_name).stem))
        galleries[PHOTO_GALLERY] = items
    return galleries


def _write_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write through a new temporary file (``O_EXCL | O_NOFOLLOW``: never through a link someone left), then rename
    it over ``path`` (a rename replaces a link, it never writes through it)."""
    temporary = path.with_name(f".{path.name}.{threading.get_ident()}.part")
    temporary.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(temporary, flags, 0o600), "wb") as handle:
        write(handle)
    temporary.replace(path)


def credits_markdown(examples: dict[str, list[tuple[str, str]]]) -> str:
    """The page's small print: the papers, and the photographs' credits when their gallery is shown."""
    credits = "; ".join(f"{text(f'photo.{Path(name).stem}')} ({credit})" for name, credit in PHOTOS)
    photos = text("gallery.photo_credits", credits=credits) + ". " if PHOTO_GALLERY in examples else ""
    return f"<small>{photos}{text('gallery.papers')}</small>"


def items_for(examples: dict[str, list[tuple[str, str]]], demo: bool) -> list[tuple[str, str]]:
    """The gallery items that fit the weights in use: shapes for the demo set, photographs for ImageNet sets, each
    captioned in the page's language (the path's stem is the name a lesson link uses)."""
    if demo:
        return [(path, class_name(name, True)) for path, name in examples.get(SHAPE_GALLERY, [])]
    return [(path, text(f"photo.{name}")) for path, name in examples.get(PHOTO_GALLERY, [])]


def title_for(demo: bool) -> str:
    """The gallery's title: the demo shapes' or the photographs'."""
    return text(f"gallery.{SHAPE_GALLERY if demo else PHOTO_GALLERY}")
