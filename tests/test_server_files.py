"""The server's own files: example pictures in a private folder, never through a symlink; empty upload folders swept."""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

import pytest

from cbam_viz.errors import CbamVizError
from cbam_viz.ui import gallery, uploads
from cbam_viz.ui.server import tempdir


def test_examples_live_in_a_private_folder_made_with_mkdtemp(tmp_path: Path) -> None:
    predictable = Path(tempfile.gettempdir()) / "cbam_viz-examples"
    root = gallery.example_root(tmp_path)
    assert root.parent == tmp_path and root.name.startswith("examples-") and root != predictable
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert gallery.example_root(tmp_path) == root  # one folder per process


def test_an_example_is_never_written_or_read_through_a_symlink(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's environment")
    root = tmp_path / "examples"
    folder = root / f"shapes-seed{gallery.EXAMPLE_SEED}-{gallery.EXAMPLE_SIZE}px"
    folder.mkdir(parents=True)
    planted = folder / "circle.png"
    planted.symlink_to(secret)
    galleries = gallery.write_examples(["demo"], root)
    written = Path(dict((name, path) for path, name in galleries[gallery.SHAPE_GALLERY])["circle"])
    assert not written.is_symlink() and written.read_bytes().startswith(b"\x89PNG")
    assert secret.read_text() == "the server's environment"  # the link was replaced, not written through
    link = tmp_path / "link.png"
    link.symlink_to(written)
    with pytest.raises(CbamVizError):
        uploads.decode_upload(str(link))
    assert uploads.decode_upload(str(written))[0].size == (gallery.EXAMPLE_SIZE, gallery.EXAMPLE_SIZE)


def test_empty_upload_folders_are_swept_with_their_files(tmp_path: Path) -> None:
    old_empty = tmp_path / "a" / "b"
    old_empty.mkdir(parents=True)
    new_empty = tmp_path / "fresh"
    new_empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "picture.png").write_bytes(b"x")
    for folder in (old_empty, old_empty.parent, full):
        os.utime(folder, (0, 0))
    os.utime(full / "picture.png", (0, 0))
    assert tempdir.sweep_empty_folders(tmp_path, age_s=60) == 1  # b; a was just changed by that
    assert not old_empty.exists() and new_empty.exists() and full.exists()
    assert tempdir.sweep_empty_folders(tmp_path, age_s=60, now=time.time() + 120) == 2  # a, and fresh in its turn
    assert not old_empty.parent.exists() and full.exists() and tmp_path.exists()
