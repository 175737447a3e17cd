"""Export files (the comparison figure, the JSON) under friendly names, in a private folder made on first use.

Gradio copies each returned file into its own cache (which ``delete_cache`` cleans), so our copy is only needed
briefly: older ones are pruned (by the server's sweeper, ``server.tempdir.sweep``, and before each export), and the
folder is removed at exit. Names carry the picture's name, so two exports never collide in a downloads folder:
``<picture>-cbam_viz.png`` and ``.json``, ``<picture>-<model>-<panel>-stage<S>``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import time
from pathlib import Path

EXPORT_KEEP_S = 120


def export_name(
    picture: str, extension: str, *, model: str | None = None, panel: str | None = None, stage: int | None = None
) -> str:
    """``<picture>-cbam_viz.<ext>`` for the whole comparison, ``<picture>-<model>-<panel>-stage<S>.<ext>`` per panel."""
    if model is None:
        return f"{picture}-cbam_viz.{extension}"
    parts = [picture, model, panel or "panel"] + ([f"stage{stage}"] if stage is not None else [])
    return "-".join(parts) + f".{extension}"


class ExportFiles:
    """A private folder for export files, created lazily (importing the app writes nothing to disk)."""

    def __init__(self, keep_seconds: float = EXPORT_KEEP_S, parent: Path | None = None) -> None:
        self.keep_seconds = keep_seconds
        self.parent = parent
        self._folder: Path | None = None
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        """The private folder, made on first use."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="cbam_viz-export-", dir=self.parent))
            atexit.register(shutil.rmtree, self._folder, True)
        return self._folder

    def write(self, name: str, data: bytes) -> str:
        """Write ``data`` under ``name`` (pruning old copies first); -> its path."""
        with self._lock:
            self._prune(time.time())
            folder = Path(tempfile.mkdtemp(dir=self.folder))  # one folder per export keeps the friendly file name
            path = folder / name
            path.write_bytes(data)
            return str(path)

    def prune(self, now: float | None = None) -> None:
        """Remove the copies older than ``keep_seconds``."""
        with self._lock:
            self._prune(time.time() if now is None else now)

    def _prune(self, now: float) -> None:
        if self._folder is None:
            return
        for folder in self._folder.iterdir():
            if now - folder.stat().st_mtime > self.keep_seconds:
                shutil.rmtree(folder, ignore_errors=True)

    def count(self) -> int:
        """How many export files the folder holds."""
        return 0 if self._folder is None else sum(1 for path in self._folder.rglob("*") if path.is_file())


EXPORTS = ExportFiles()
