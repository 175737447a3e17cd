"""Writing a file so that no reader ever sees half of it: through a hidden temporary name in the same folder, then
``os.replace``. The weights folder's files (converted checkpoints, the demo set's metadata, the download records) and
the app's example pictures are all written this way; two processes starting at once each see a whole file or none.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` to fill a hidden ``.<name>.*.part`` file beside ``path``, then move it into place.

    The temporary file exists (empty) when ``write`` is called; on any failure it is removed and ``path`` is untouched.
    The new content reaches the disk before it takes the old one's name, and the file keeps the old one's permissions
    (a new one gets the usual 0644 rather than ``mkstemp``'s private 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        write(Path(temporary))
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def write_text_atomically(path: Path | str, text: str) -> Path:
    """``write_atomically`` for UTF-8 text."""
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
