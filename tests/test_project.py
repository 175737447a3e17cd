"""The project's promises to a new user: the README's two commands, and CI running exactly the README's tests."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    return [b.strip() for b in blocks[:2]]


def test_readme_gives_the_app_and_the_test_command() -> None:
    app, tests = _readme_commands()
    assert app.endswith("python app.py") and "requirements.txt" in app
    assert "pytest" in tests and "requirements-test.txt" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _readme_commands()[1] in ci_lines


def test_test_requirements_include_the_runtime_ones() -> None:
    assert "-r requirements.txt" in (ROOT / "requirements-test.txt").read_text().splitlines()
