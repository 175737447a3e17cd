"""The project's promises to a new user: the README's two commands, CI running exactly the README's tests, and a
tree that docs/architecture.md describes."""

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
    # The tests run against the pinned versions: unpinned, a release upstream changes what CI installs overnight.
    assert "-c constraints.txt" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _readme_commands()[1] in ci_lines


def test_test_requirements_include_the_runtime_ones() -> None:
    assert "-r requirements.txt" in (ROOT / "requirements-test.txt").read_text().splitlines()


# ------------------------------------------------------------------------------------------- constraints.txt
# constraints.txt pins every package that requirements.txt and requirements-test.txt pull in (runtime AND test-only:
# ``-c`` only constrains what gets installed, so one file serves ``pip install -r requirements.txt -c
# constraints.txt`` and the test install alike) at the versions installed in the development venv. gdown is the
# weight downloader's dependency. Refresh: ``.venv/bin/python tests/test_project.py > constraints.txt``.

EXTRA_REQUIREMENTS = ("gdown",)


def _requirement_lines(path: Path) -> list[str]:
    """Requirement lines of a requirements file, following ``-r`` includes; ``-e .`` stands for this package's own
    dependencies, and ``-e .[extra]`` adds that extra's (``requirements-ray.txt``)."""
    import tomllib

    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    found = [line for line in lines if line and not line.startswith("-")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in lines:
        if line.startswith("-r "):
            found += _requirement_lines(path.parent / line[3:].strip())
        elif line == "-e ." or line.startswith("-e .["):
            found += project["dependencies"]
            extras = line.removeprefix("-e .").strip("[]")
            for extra in filter(None, (name.strip() for name in extras.split(","))):
                found += project["optional-dependencies"][extra]
    return found


def _dependency_closure(files: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """canonical name -> (distribution name, installed version) of every package the requirement files pull in on
    this platform, following extras (``requests[socks]``) and markers."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lines = [line for name in files for line in _requirement_lines(ROOT / name)] + list(EXTRA_REQUIREMENTS)
    pending = [Requirement(line) for line in lines]
    pending = [req for req in pending if req.marker is None or req.marker.evaluate({"extra": ""})]
    found: dict[str, tuple[str, str]] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in visited:
            continue
        visited.add(key)
        distribution = metadata.distribution(requirement.name)
        found[key[0]] = (distribution.metadata["Name"], distribution.version)
        for line in distribution.requires or []:
            child = Requirement(line)
            extras = requirement.extras or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(child)
    return found


def constraints_text() -> str:
    """The constraints file for the installed venv (what the refresh command writes)."""
    pins = _dependency_closure(("requirements.txt", "requirements-test.txt"))
    header = [
        "# Versions installed in the development venv of everything requirements.txt and requirements-test.txt",
        "# pull in (runtime and test-only). Use: pip install -r requirements.txt -c constraints.txt",
        "# Refresh: .venv/bin/python tests/test_project.py > constraints.txt",
    ]
    body = [f"{name}=={version}" for name, version in sorted(pins.values(), key=lambda pin: pin[0].lower())]
    return "\n".join(header + body) + "\n"


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in _requirement_lines(ROOT / "constraints.txt"):
        name, _, version = line.partition("==")
        assert version and not any(sign in version for sign in "<>=!~,;"), f"not an exact pin: {line}"
        pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_dependency_at_its_installed_version() -> None:
    from importlib import metadata

    pins = _pins()
    runtime = _dependency_closure(("requirements.txt",))
    everything = _dependency_closure(("requirements.txt", "requirements-test.txt"))
    assert {"torch", "gdown", "pillow", "requests", "pysocks"} <= set(runtime)  # the walk follows requests[socks]
    assert set(runtime) < set(everything) and "pytest" not in runtime
    assert not sorted(set(everything) - set(pins)), "constraints.txt misses installed dependencies"
    assert {name: pins[name] for name, (_, version) in everything.items() if pins[name] != version} == {}
    for name, version in pins.items():  # pins of other platforms' packages may be absent here, never stale
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        assert installed == version, f"{name}: pinned {version}, installed {installed}"
    assert "cbam-viz" not in pins and "pip" not in pins


def test_the_architecture_page_names_every_subpackage() -> None:
    """The tree replaces the old "Where things live" table: docs/architecture.md names every subpackage and every
    top-level module, and every path it names exists."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    package = ROOT / "cbam_viz"
    parts = {
        str(path.parent.relative_to(ROOT)) + "/" for path in package.rglob("__init__.py") if path.parent != package
    }
    parts |= {str(path.relative_to(ROOT)) for path in package.glob("*.py") if path.name not in {"__init__.py"}}
    named = set(re.findall(r"`(cbam_viz/[\w/.]+|app\.py)`", page))
    assert sorted(parts - named) == []
    assert [name for name in named if not (ROOT / name).exists()] == []


if __name__ == "__main__":
    print(constraints_text(), end="")
