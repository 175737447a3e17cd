"""Private export copies go when they expire, by the server's sweeper, not only at the next export."""

from __future__ import annotations

import time
from pathlib import Path

from cbam_viz.ui.export import ExportFiles
from cbam_viz.ui.server import tempdir


def test_the_sweeper_prunes_expired_export_copies(tmp_path: Path) -> None:
    exports = ExportFiles(keep_seconds=120, parent=tmp_path)
    exports.write("star-cbam_viz.png", b"png")
    exports.write("star-cbam_viz.json", b"{}")
    assert exports.count() == 2
    cache = tmp_path / "gradio"
    cache.mkdir()
    tempdir.sweep(cache, exports, now=time.time() + 60)
    assert exports.count() == 2  # not expired yet
    tempdir.sweep(cache, exports, now=time.time() + 121)
    assert exports.count() == 0 and list(exports.folder.iterdir()) == []
