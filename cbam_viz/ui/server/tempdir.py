"""The app's own temporary folder: Gradio's upload cache and the export files live under one directory per run.

``python app.py`` calls ``own()`` before the page is built. It makes ``<tmp>/cbam_viz/run-<pid>``, holds an
exclusive ``flock`` on a lock file inside it for as long as the process lives, points Gradio's cache there
(``GRADIO_TEMP_DIR``, read by every component when it is created) and the export folder too. Then it deletes every
other ``run-*`` folder whose lock nobody holds: what a killed or crashed earlier run left (a folder of another
running instance stays, its lock is held). SIGTERM and SIGINT remove the folder before the process ends, and so does
a normal exit. Gradio's cache cleanup deletes old files but not the one-per-upload folders that held them, so a
sweeper thread removes empty folders of the cache older than ``EMPTY_FOLDER_AGE_S`` every ``SWEEP_EVERY_S``.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from cbam_viz.ui.export import EXPORTS, ExportFiles

LOCK_NAME = ".lock"
SWEEP_EVERY_S = 60
EMPTY_FOLDER_AGE_S = 60  # a folder Gradio just made for an upload is filled within the same request
_CURRENT: list[Path] = []  # this process's run folder, once ``own`` made it


def default_root() -> Path:
    """``$CBAM_VIZ_TEMP`` or the system's temporary directory, then ``cbam_viz``."""
    return Path(os.environ.get("CBAM_VIZ_TEMP") or tempfile.gettempdir()) / "cbam_viz"


@dataclass
class RunFolder:
    """One run's folder; ``cleared``: how many stale folders of earlier runs were deleted at start-up."""

    path: Path
    cleared: int
    _lock: IO[bytes]

    @property
    def gradio_cache(self) -> Path:
        """Gradio's cache folder inside this run's temporary folder."""
        return self.path / "gradio"

    def remove(self) -> None:
        """Remove this run's temporary folder and let go of its lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()


def clear_stale(root: Path, keep: Path | None = None) -> int:
    """Delete every ``run-*`` folder under ``root`` whose lock is free (its process is gone); -> how many."""
    cleared = 0
    for folder in sorted(root.glob("run-*")):
        if folder == keep or not folder.is_dir():
            continue
        try:
            with open(folder / LOCK_NAME, "ab") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # another instance is running and owns it
        except OSError:
            pass  # no lock file: a folder cut short while it was made, stale all the same
        shutil.rmtree(folder, ignore_errors=True)
        cleared += 1
    return cleared


def own(root: Path | None = None, *, handle_signals: bool = True) -> RunFolder:
    """Make and lock this run's folder, point Gradio's cache and the exports at it, clear stale runs."""
    root = root or default_root()
    path = root / f"run-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    lock = open(path / LOCK_NAME, "ab")  # noqa: SIM115 - held open for the life of the process
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    cleared = clear_stale(root, keep=path)
    run = RunFolder(path, cleared, lock)
    run.gradio_cache.mkdir(exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(run.gradio_cache)
    EXPORTS.parent = path
    _CURRENT[:] = [path]
    atexit.register(run.remove)
    threading.Thread(target=_sweep_forever, args=(run.gradio_cache,), name="cbam-viz-sweeper", daemon=True).start()
    if handle_signals:
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, _remove_then_exit(run))
    return run


def current() -> Path | None:
    """This process's run folder (None until ``own`` is called: tests, the CLI)."""
    return _CURRENT[0] if _CURRENT else None


def sweep_empty_folders(root: Path, age_s: float = EMPTY_FOLDER_AGE_S, now: float | None = None) -> int:
    """Remove the empty folders under ``root`` (not ``root`` itself) last changed more than ``age_s`` ago, deepest
    first, so a folder emptied by this sweep goes too; -> how many. Symlinks are never followed."""
    now = time.time() if now is None else now
    removed = 0
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -entry[0].count(os.sep)):
        if folder == str(root):
            continue
        try:
            if os.lstat(folder).st_mtime <= now - age_s and not os.listdir(folder):
                os.rmdir(folder)
                removed += 1
        except OSError:
            continue  # filled or removed meanwhile
    return removed


def sweep(root: Path, exports: ExportFiles = EXPORTS, now: float | None = None) -> int:
    """One pass of the sweeper: expired private export copies (so none outlives ``keep_seconds`` by more than a
    pass when nobody exports again), then the empty upload folders; -> how many folders of ``root`` went."""
    exports.prune(now)
    return sweep_empty_folders(root, now=now)


def _sweep_forever(root: Path, every_s: float = SWEEP_EVERY_S) -> None:
    while True:
        time.sleep(every_s)
        sweep(root)


def _remove_then_exit(run: RunFolder):
    def handler(number: int, frame: FrameType | None) -> None:
        run.remove()
        sys.exit(128 + number)

    return handler
