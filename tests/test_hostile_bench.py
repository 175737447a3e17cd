"""The fast subset of ``python -m benchmarks.hostile`` against the real app in this process: every probe answers as
it must (one line, the expected words) and an ordinary analysis sent alongside is still answered. The script's own
figures, timed on a launched app, are in benchmarks/README.md; here only the answers are checked, never the times."""

from __future__ import annotations

import os

from benchmarks import hostile as script


def test_the_fast_probes_answer_in_one_line_while_an_ordinary_analysis_goes_on(app_url: str) -> None:
    fast = [name for name, case in script.PROBES.items() if case.fast]
    assert {"tiff_200k_pages", "body_50_mb", "fn_index_999", "class_name_1_mb"} <= set(fast)
    assert {"run_route", "session_hash_3_mb", "truncated_body", "png_exif_2_4_mb", "choice_1_mb"} <= set(fast)
    rows = script.run_probes(app_url, os.getpid(), fast)
    table = script.table(rows)
    for row in rows:
        assert row.ok, (row.probe, row.answer, table)
        assert row.alongside_answer == "analysed", (row.probe, row.alongside_answer, table)
        assert len(row.answer) <= script.ANSWER_WIDTH and "Traceback" not in row.answer
    answers = {row.probe: row.answer for row in rows}
    assert answers["body_50_mb"].startswith("413 ") and answers["fn_index_999"].startswith("404 ")
    assert answers["tiff_200k_pages"] == "200 analysed"
    assert answers["run_route"].startswith("404 ") and answers["truncated_body"] == "0 dropped (no answer)"
    assert answers["png_exif_2_4_mb"] == "200 analysed" and answers["jpeg_icc_with_ff_da"] == "200 analysed"
