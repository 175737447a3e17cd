"""The README and docs/ stay true: links resolve, the JSON reference is the schema's, and the API examples run."""

import contextlib
import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cbam_viz

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target), ![alt](target) and <img src="target">; the target up to a space (a title) or the closing bracket
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=\"([^\"]+)\"")
_FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.S | re.M)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M):
        anchor, n = _anchor(heading), 1
        while anchor in found:  # GitHub numbers repeated headings: name, name-1, name-2
            anchor, n = f"{_anchor(heading)}-{n}", n + 1
        found.add(anchor)
    return found


def _links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [a or b for a, b in _LINK.findall(text)]


def broken_links(pages: list[Path]) -> list[str]:
    """'page: target' for every relative link or image whose file, or #anchor in it, does not exist."""
    broken = []
    for page in pages:
        name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
        for target in _links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{name}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{name}: {target} (no such heading)")
    return broken


def test_every_relative_link_and_image_resolves() -> None:
    assert len(PAGES) >= 9
    assert broken_links(PAGES) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading, with `code`\n\n## Gate interventions\n")
    page.write_text(
        "[ok](there.md#a-heading-with-code) [ok](there.md#gate-interventions) ![ok](there.md) [web](https://x.org/y)\n"
        '`[not a link](gone.md)` [gone](gone.md) [bad](there.md#nowhere) <img src="gone.png" width="2">\n'
    )
    found = [line.split(": ", 1)[1] for line in broken_links([page])]
    assert found == ["gone.md", "there.md#nowhere (no such heading)", "gone.png"]


def test_the_json_reference_is_generated_from_the_schema() -> None:
    """docs/json.md is what scripts/json_docs.py writes: regenerate it after changing the schema."""
    run = subprocess.run(
        [sys.executable, "scripts/json_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr


def test_the_json_reference_follows_a_changed_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new key in the schema changes the generated page (so the check above fails until it is regenerated), and a
    note on a key the schema lacks is refused."""
    spec = importlib.util.spec_from_file_location("json_docs", ROOT / "scripts" / "json_docs.py")
    json_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(json_docs)
    before = json_docs.render()
    properties = {**json_docs.ANALYSIS_JSON_SCHEMA["properties"], "colour": {"type": "string"}}
    monkeypatch.setitem(json_docs.ANALYSIS_JSON_SCHEMA, "properties", properties)
    after = json_docs.render()
    assert "| `colour` | string |" in after and after != before
    monkeypatch.setitem(json_docs.NOTES, "no_such_key", "stale")
    with pytest.raises(SystemExit, match="no_such_key"):
        json_docs.render()


def test_the_python_api_examples_run_as_written() -> None:
    """Every Python block of docs/api.md's "From Python" runs, in order, on the demo weights."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").split("## From Python", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 9
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        for block in blocks:
            exec(compile(block, "docs/api.md", "exec"), namespace)
    assert "pentagon" in printed.getvalue()


def test_every_public_name_is_documented_with_an_example() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").split("## From Python", 1)[1]
    code = "".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))
    for name in cbam_viz.__all__:
        assert f"`{name}`" in text, f"docs/api.md does not describe {name}"
        assert re.search(rf"\b{name}\b", code), f"docs/api.md has no example of {name}"


def test_the_upload_limit_reads_the_same_on_the_page_and_in_the_readme() -> None:
    """The line under the picture, in each language, quotes the limits the decoder enforces; the README says it in the
    page's own English words."""
    from cbam_viz.i18n.language import catalogue, using
    from cbam_viz.imaging.limits import MAX_FILE_BYTES, MAX_PIXELS, formats_in_words

    megabytes, megapixels = f"{MAX_FILE_BYTES / 1e6:g} MB", f"{MAX_PIXELS / 1e6:g}"
    english = catalogue("en")["page.upload_limit"]
    assert english.startswith(formats_in_words()) and f"{megabytes} and {megapixels} megapixels" in english
    with using("zh"):
        chinese = catalogue("zh")["page.upload_limit"]
        assert chinese.startswith(formats_in_words()) and f"{megabytes}、{megapixels} 百万像素" in chinese
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert english in readme
