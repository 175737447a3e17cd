"""Download registered weights: mirrors in order, a progress bar, hash checks, atomic writes, one conversion.

A download streams into a temporary file next to its destination and is renamed into place only once it is
complete and its hashes match, so an interrupted or corrupt transfer never leaves a partial file under weights/.
The file is then converted once to project safetensors, which every later load reads.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from tqdm import tqdm

from cbam_viz.errors import WeightsError
from cbam_viz.weights import (
    DOWNLOAD_HINT,
    ENTRIES,
    SETS,
    TRAIN_HINT,
    WeightsEntry,
    display_path,
    entry_status,
    hash_problem,
    imagenet_dir,
    prepare_entry,
)

DEFAULT_TIMEOUT = 60.0  # seconds without an answer before a mirror counts as unreachable
CHUNK = 1 << 20
USER_AGENT = "cbam_viz weights download (urllib)"
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]


def _stream(url: str, out: BinaryIO, *, timeout: float, progress: bool, label: str) -> str:
    """Copy the body of ``url`` into ``out``; -> its sha256. Raises WeightsError for anything but the whole file."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.headers.get("Content-Type", "").startswith("text/html"):
                raise WeightsError(
                    "the host answered with a web page instead of the file (sign-in, quota or scan page)"
                )
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except WeightsError:
        raise
    except NETWORK_ERRORS as error:
        raise WeightsError(_one_line(error)) from error
    if total is not None and received != total:
        raise WeightsError(f"transfer cut short: {received} of {total} bytes")
    if received == 0:
        raise WeightsError("the host sent an empty file")
    return digest.hexdigest()


def fetch(
    url: str,
    destination: Path,
    *,
    verify: Callable[[Path], str | None] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> str:
    """Download ``url`` to ``destination`` atomically; -> the file's sha256.

    ``verify(temp_path)`` returns what is wrong with the downloaded bytes (a hash mismatch) or None. On any failure,
    interruption included, the temporary file is removed and ``destination`` is left as it was.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            sha256 = _stream(url, out, timeout=timeout, progress=progress, label=destination.name)
        problem = verify(temp) if verify else None
        if problem:
            raise WeightsError(problem)
        os.replace(temp, destination)
        return sha256
    finally:
        temp.unlink(missing_ok=True)


def download_entry(
    entry: WeightsEntry,
    weights_dir: Path | str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> Path:
    """Make sure ``entry`` is under weights/imagenet/ and converted; -> the project safetensors path.

    Mirrors are tried in order; a file already there (downloaded or put by hand) is not fetched again.
    """
    if entry_status(entry, weights_dir) == "missing":
        target = imagenet_dir(weights_dir) / entry.filename
        failures = []
        for url in entry.urls:
            try:
                fetch(
                    url,
                    target,
                    verify=lambda path: hash_problem(entry, path, entry.filename)[1],
                    timeout=timeout,
                    progress=progress,
                )
                break
            except WeightsError as error:
                failures.append(f"{urlparse(url).netloc or url}: {error}")
        else:
            raise WeightsError(
                f"could not download {entry.name} ({'; '.join(failures)}): put {entry.filename} under "
                f"{display_path(imagenet_dir(weights_dir))}/ yourself, or use --weights demo"
            )
    _, path = prepare_entry(entry, weights_dir)
    return path


def download_set(
    target: str = "paper",
    weights_dir: Path | str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> dict[str, Path]:
    """Download a set (``paper``, ``pytorchcv``) or one entry; -> {entry name: converted file}."""
    if target == "demo":
        raise WeightsError(f"the demo weights are trained here, not downloaded: run `{TRAIN_HINT}`")
    if target in SETS:
        names = list(SETS[target].values())
    elif target in ENTRIES:
        names = [target]
    else:
        raise WeightsError(
            f"unknown weights {target!r} to download: use {', '.join(SETS)} or an entry name "
            f"(`python -m cbam_viz weights list`); `{DOWNLOAD_HINT}` alone gets the paper set"
        )
    return {name: download_entry(ENTRIES[name], weights_dir, timeout=timeout, progress=progress) for name in names}
