"""weights/demo/metadata.json has one owner: this module writes it, reads it back and knows its fields.

Training (``train_cli.write_metadata``) writes it, the loader (``cbam_viz.weights``) reads it and the test helper
(``tests/helpers/models.write_demo_set``) writes small sets with it, so the three can never disagree on a field name.
Nothing here imports torch: the loader's types are imported where they are checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from safetensors import SafetensorError, safe_open

from cbam_viz.errors import WeightsError
from cbam_viz.i18n.language import Message
from cbam_viz.weights import files as demo_metadata
from cbam_viz.weights.convert import (
    LoadedCheckpoint,
    load_into_model,
    read_checkpoint,
)
from cbam_viz.weights.registry import DOWNLOAD_HINT, ENTRIES, HAND_PLACED, SETS, Source, WeightsEntry

DEMO_SUBDIR = "demo"
METADATA_FILE = "metadata.json"

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
IMAGENET_SUBDIR = "imagenet"
DEMO_METADATA = demo_metadata.METADATA_FILE
SUMS_FILE = "SHA256SUMS"  # under weights/imagenet/: the sha256 of every file at its first download
ORIGINS_FILE = "origins.json"  # under weights/imagenet/: which source served each file
_RECORDS_LOCK = threading.Lock()
MIRROR_ENV = "CBAM_VIZ_WEIGHTS_MIRROR"  # base URL or folder tried before every entry's own sources


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
