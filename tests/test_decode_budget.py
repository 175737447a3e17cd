"""Every file the allow-list admits decodes, or is refused with one line, within the hostile-input budget: 2 s on the
development machine, scaled on a slower one by its time for the same ordinary 49-megapixel decode.

The adversarial files (``tests/helpers/decode_cases.py``) are made and decoded in a fresh process: this module run
as a script. Run with ``-s`` to see the measured times.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cbam_viz.imaging.limits import MAX_FILE_BYTES
from tests.helpers.decode_cases import CASES, MP49, REFERENCE, many_frame_gif, many_page_tiff, measure

BUDGET_S = 2.0  # per file, on the 2-core development machine
# The same reference decode there: an ordinary 49-megapixel RGB PNG, the first big decode of a fresh process (0.5 s
# to 0.9 s measured). A slower machine (a CI runner whose page faults cost twice as much) gets a budget scaled by
# its own time for that decode, measured side by side in the same process.
DEV_REFERENCE_S = 0.5


@pytest.fixture(scope="module")
def measured() -> dict[str, dict]:
    """Every case decoded in a fresh process, as a freshly started server would: the test process itself has
    loaded many models by now, and a 200 MB decode there costs twice its CPU time in page faults alone."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300, cwd=repo, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return {row["key"]: row for row in map(json.loads, done.stdout.splitlines())}


@pytest.fixture(scope="module")
def budget(measured: dict[str, dict]) -> float:
    """2 s on the development machine; on a slower one, scaled by its time for the reference decode."""
    assert measured[REFERENCE].get("size") == [MP49, MP49], measured[REFERENCE]
    return BUDGET_S * max(1.0, measured[REFERENCE]["cpu"] / DEV_REFERENCE_S)


@pytest.mark.parametrize("key", sorted(CASES))
def test_decodes_or_is_refused_within_the_budget(key: str, measured: dict[str, dict], budget: float) -> None:
    case, row = CASES[key], measured[key]
    assert row["bytes"] <= MAX_FILE_BYTES
    print(f"\n{key}: {row['bytes'] / 1e6:.2f} MB, {row['cpu']:.2f} s CPU, {row['wall']:.2f} s wall")
    assert row["cpu"] < budget, f"{key} took {row['cpu']:.2f} s of CPU (budget {budget:.2f} s on this machine)"
    if case.size is None:
        outcome = row.get("refused")
        assert isinstance(outcome, str), f"{key} should have been refused"
        assert "\n" not in outcome and len(outcome) < 200 and outcome.startswith(f"{key}.bin "), outcome
        assert case.words in outcome, outcome
    else:
        assert "refused" not in row, row["refused"]
        assert tuple(row["size"]) == case.size and row["mode"] == "RGB"
        assert not case.words or case.words in row["notes"], row["notes"]


def test_the_floods_really_fill_the_upload_limit() -> None:
    """The refusals above are not luck of a small file: each flood is as large as an upload may be."""
    for key in ("gif_comment_flood", "png_chunk_flood", "jpeg_comment_flood", "bmp_rle_runs_of_one"):
        assert MAX_FILE_BYTES - 250_000 < len(CASES[key].make()) <= MAX_FILE_BYTES, key


def test_the_many_page_tiff_really_has_its_pages() -> None:
    """Pillow itself sees every page (counted on a smaller copy: counting all 200000 is what must not happen)."""
    with Image.open(io.BytesIO(many_page_tiff(300))) as opened:
        assert opened.n_frames == 300
    with Image.open(io.BytesIO(many_frame_gif(300))) as opened:
        assert opened.n_frames == 300


if __name__ == "__main__":  # the fresh process of ``measured``: one JSON line per case
    for name in [REFERENCE, *sorted(CASES)]:  # the reference first: a fresh server's first big decode
        print(json.dumps(measure(name)), flush=True)
