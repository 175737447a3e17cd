"""weights/demo/metadata.json has one owner: this module writes it, reads it back and knows its fields.

Training (``cli.train.write_metadata``) writes it, the loader (``weights.load``) reads it and the test helpers
(``tests/helpers/models.write_demo_set``) write small sets with it, so the three can never disagree on a field name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cbam_viz.errors import WeightsError
from cbam_viz.model.resnet import ArchConfig
from cbam_viz.weights.atomic import write_text_atomically
from cbam_viz.weights.files import DEMO_SUBDIR, METADATA_FILE, display_path
from cbam_viz.weights.registry import DEFAULT_SET, DOWNLOAD_HINT, TRAIN_HINT, Preprocess

REQUIRED_FIELDS = ("classes", "preprocess", "arch_config", "models")


def held_out_percent(share: float) -> str:
    """A held-out figure (a share, 0..1) as the model headers and docs/demo-models.md both write it: ``99.6 %``."""
    return f"{100 * share:.1f} %"


def demo_dir(weights_root: Path) -> Path:
    """Where the demo set lives inside a weights folder."""
    return Path(weights_root) / DEMO_SUBDIR


def metadata_path(weights_root: Path) -> Path:
    """Where the demo set's metadata.json lives inside a weights folder."""
    return demo_dir(weights_root) / METADATA_FILE


def model_record(path: Path, *, params: int | None = None, metrics: Mapping[str, float] | None = None) -> dict:
    """One model's entry: its file name inside weights/demo/ and the sha256 the loader checks before loading it."""
    data = Path(path).read_bytes()
    record: dict[str, Any] = {
        "file": Path(path).name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
    }
    if params is not None:
        record["params"] = int(params)
    record["metrics"] = dict(metrics or {})
    return record


def write_demo_metadata(
    folder: Path,
    *,
    classes: list[str] | tuple[str, ...],
    preprocess: Mapping[str, Any],
    arch_config: Mapping[str, Any],
    models: Mapping[str, Mapping[str, Any]],
    input_size: int | None = None,
    recipe: Mapping[str, Any] | None = None,
    heldout: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``folder``/metadata.json atomically (a reader never sees half a file); -> its path.

    ``folder`` is the demo folder itself (weights/demo/, or a training run's output folder).
    """
    metadata: dict[str, Any] = {"classes": list(classes)}
    if input_size is not None:
        metadata["input_size"] = int(input_size)
    metadata["preprocess"] = {
        key: list(value) if isinstance(value, tuple) else value for key, value in preprocess.items()
    }
    metadata["arch_config"] = dict(arch_config)
    if recipe is not None:
        metadata["recipe"] = dict(recipe)
    metadata["heldout"] = dict(heldout or {})
    metadata["models"] = {arch: dict(record) for arch, record in models.items()}
    return write_text_atomically(Path(folder) / METADATA_FILE, json.dumps(metadata, indent=2) + "\n")


def read_demo_metadata(weights_root: Path) -> dict[str, Any]:
    """The demo set's metadata, checked for every field the loader needs; one-line WeightsError otherwise."""
    path = metadata_path(weights_root)
    if not path.is_file():
        raise WeightsError(
            f"demo weights are missing ({display_path(path)} not found): train them with `{TRAIN_HINT}` "
            f"or get ImageNet weights with `{DOWNLOAD_HINT} {DEFAULT_SET}`"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
        missing = [name for name in REQUIRED_FIELDS if name not in metadata]
        if missing:
            raise KeyError(", ".join(missing))
        classes, models = metadata["classes"], metadata["models"]
        Preprocess.from_dict(metadata["preprocess"])
        ArchConfig(**metadata["arch_config"])
        valid = isinstance(classes, list) and bool(classes) and isinstance(models, dict)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsError(
            f"{display_path(path)} is damaged ({type(error).__name__}: {error}); train the demo again"
        ) from error
    if not valid:
        raise WeightsError(f"{display_path(path)} lists no classes or no models; train the demo again")
    return metadata


def demo_file(metadata: Mapping[str, Any], arch: str, weights_root: Path) -> Path:
    """The file of ``arch`` that the metadata names: a bare file name inside weights/demo/, never a path."""
    folder = demo_dir(weights_root)
    model_meta = metadata["models"].get(arch)
    if not isinstance(model_meta, dict) or "file" not in model_meta:
        raise WeightsError(f"the demo set has no {arch} model; train the demo again with `{TRAIN_HINT}`")
    file_name = str(model_meta["file"])
    if Path(file_name).name != file_name:
        raise WeightsError(f"demo metadata names {file_name!r}; expected a file name inside {display_path(folder)}")
    return folder / file_name
