"""The command line never destroys a user's file: interrupted work leaves the shipped files as they were, and
``analyze`` writes only files of its own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.processes import as_at_a_terminal

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"evaluate:\s*\d+%.*?\|\s*([1-9]\d*)/\d+")


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (the bundled study's too), by its path inside it."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _wait_for_progress(log: Path, process: subprocess.Popen, timeout: float = 240.0) -> None:
    """Until the evaluation's progress bar shows at least one finished image."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it was interrupted: {log.read_text()[-2000:]}")
        if PROGRESS.search(log.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise AssertionError(f"no progress within {timeout} s: {log.read_text()[-2000:]}")


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_evaluation_leaves_the_demo_metadata_as_it_was(tmp_path: Path, signum: int) -> None:
    demo = tmp_path / "weights" / "demo"
    shutil.copytree(ROOT / "weights" / "demo", demo, ignore=shutil.ignore_patterns(".train"))
    before = _snapshot(demo)
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cbam_viz", "train-demo", "--eval-only", "--out", str(demo), "--heldout", "400"]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=as_at_a_terminal,
        )
        try:
            _wait_for_progress(log, process)
            process.send_signal(signum)
            stdout, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    errors = log.read_text()
    assert process.returncode == 130, errors[-2000:]
    assert errors.rstrip().endswith("interrupted") and "Traceback" not in errors
    assert "wrote" not in stdout
    assert _snapshot(demo) == before  # byte for byte, nothing left over


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_completed_evaluation_rewrites_the_metadata_of_the_weights_in_out(tmp_path: Path) -> None:
    """--out names the demo folder that is evaluated (not the repository's) and its recipe is kept."""
    import json

    demo = tmp_path / "weights" / "demo"
    shutil.copytree(ROOT / "weights" / "demo", demo, ignore=shutil.ignore_patterns(".train"))
    recorded = json.loads((demo / "metadata.json").read_text())
    recorded["recipe"]["train_images"] = 1234  # marks this copy's recipe apart from the default one
    (demo / "metadata.json").write_text(json.dumps(recorded, indent=2) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "cbam_viz", "train-demo", "--eval-only", "--out", str(demo), "--heldout", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads((demo / "metadata.json").read_text())
    assert written["heldout"]["heldout_images"] == 2 and written["recipe"]["train_images"] == 1234
    assert set(written["models"]["cbam_resnet50"]["metrics"]) >= {"top1", "pointing_game"}
    assert written["models"] == {
        arch: {**record, "metrics": written["models"][arch]["metrics"]} for arch, record in recorded["models"].items()
    }
    shipped = sorted(path.name for path in (ROOT / "weights" / "demo").iterdir() if path.name != ".train")
    assert sorted(path.name for path in demo.iterdir()) == shipped  # nothing left over
    assert {"metadata.json", "resnet50.safetensors", "se_resnet50.safetensors", "cbam_resnet50.safetensors"} <= set(
        shipped
    )


def _analyze(*args: str | Path, models: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; ``models`` (say "resnet50") when the test is about files, not models."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cbam_viz", "analyze", *map(str, args), "--weights", "demo", "--device", "cpu"]
    command += ["--models", models] if models else []
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _shape(path: Path, seed: int = 3) -> None:
    from PIL import Image

    from cbam_viz.demo.shapes import render_sample

    Image.fromarray(render_sample(seed, 0, 64, 64).image).save(path)


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_analyze_refuses_an_output_folder_where_results_would_replace_an_input(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _shape(photos / "star.png")
    _shape(photos / "ring.jpg", seed=4)
    before = _contents(photos)
    refused = _analyze(photos, "--out", photos)
    assert refused.returncode == 2, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: --out") and "star.png" in refused.stderr
    assert _contents(photos) == before


def test_analyze_never_writes_over_a_file_and_skips_its_own_figures(tmp_path: Path) -> None:
    """Results next to the photos: the rerun neither replaces the first run's files nor analyses its figure, and a
    user's own file of a result's name is kept."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _shape(photos / "star.jpg")
    photo = (photos / "star.jpg").read_bytes()
    first = _analyze(photos, "--out", photos, models="resnet50")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in photos.iterdir()) == ["star.jpg", "star.json", "star.npz", "star.png"]
    assert "analysed 1 image into" in first.stdout
    written = _contents(photos)
    second = _analyze(photos, "--out", photos, models="resnet50")
    assert second.returncode == 0, second.stderr
    notes = [line for line in second.stderr.splitlines() if line.startswith("note:")]
    assert any("skipped 1 comparison figure that this command wrote (star.png)" in note for note in notes), notes
    assert any("star.jpg:" in note and "star-2.png" in note for note in notes), notes
    assert [line.split(":")[0] for line in second.stdout.splitlines() if line.startswith("star")] == ["star.jpg"]
    assert "analysed 1 image into" in second.stdout
    assert {name: data for name, data in _contents(photos).items() if name in written} == written
    assert {"star-2.png", "star-2.json", "star-2.npz"} <= {p.name for p in photos.iterdir()}
    assert (photos / "star.jpg").read_bytes() == photo
    out = tmp_path / "out"
    out.mkdir()
    (out / "star.json").write_text("my own notes, not a result\n")
    third = _analyze(photos / "star.jpg", "--out", out, "--maps", "native", models="resnet50")
    assert third.returncode == 0, third.stderr
    assert (out / "star.json").read_text() == "my own notes, not a result\n"
    assert {"star-2.png", "star-2.json", "star-2"} == {p.name for p in out.iterdir()} - {"star.json"}


def test_the_last_line_is_a_sentence_when_nothing_could_be_analysed(tmp_path: Path) -> None:
    done = _analyze(tmp_path / "nope.png", "--out", tmp_path / "out")
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path / 'nope.png'}: no such file or folder"
    last = done.stdout.strip().splitlines()[-1]
    assert last == "no images analysed; 1 input gave no images"


def _shape_of_size(path: Path, width: int, height: int, seed: int = 3) -> None:
    from PIL import Image

    from cbam_viz.demo.shapes import render_sample

    Image.fromarray(render_sample(seed, 0, width, height).image).save(path)


def test_a_box_off_the_picture_is_refused_for_that_picture_and_one_past_an_edge_is_clipped_aloud(
    tmp_path: Path,
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _shape_of_size(photos / "edge.png", 64, 64)  # the box reaches past its right edge
    _shape_of_size(photos / "wide.png", 200, 100)  # the box lies inside
    _shape_of_size(photos / "small.png", 40, 40)  # the box misses it
    done = _analyze(photos, "--out", tmp_path / "out", "--box", "60,10,150,60", "--models", "resnet50")
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error:", "note:"))]
    assert lines == [
        f"note: {photos / 'edge.png'}: the box 60,10,150,60 reaches past the 64x64 picture: clipped to 60,10,64,60",
        f"error: {photos / 'small.png'}: the box 60,10,150,60 lies outside the 40x40 picture "
        "(x from 0 to 40, y from 0 to 40)",
    ]
    assert "analysed 2 of 3 images" in done.stdout
    import json

    assert json.loads((tmp_path / "out" / "edge.json").read_text())["pointing"]["region"]["box"] == [60, 10, 64, 60]
    assert json.loads((tmp_path / "out" / "wide.json").read_text())["pointing"]["region"]["box"] == [60, 10, 150, 60]
    assert not (tmp_path / "out" / "small.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_printed_answer_sums_up_every_check_that_was_asked_for(tmp_path: Path) -> None:
    import json

    _shape(tmp_path / "a.png")
    out = tmp_path / "out"
    done = _analyze(
        tmp_path / "a.png",
        "--out",
        out,
        "--box",
        "0,0,40,40",
        "--sanity",
        "--deletion-insertion",
        "--intervene",
        "layer3:spatial=one",
        "sweep",
        "--models",
        "se_resnet50",
        "cbam_resnet50",
    )
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "a.json").read_text())
    lines = done.stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("a.png: "))
    summary = lines[start + 1 : start + 6]
    assert all(line.startswith("  ") for line in summary), lines
    pointing, sanity, curves, intervention, sweep = (line.strip() for line in summary)
    assert pointing.startswith("Pointing game on the box")
    for arch, title in (
        ("se_resnet50", "SE-ResNet-50"),
        ("cbam_resnet50", "CBAM-ResNet-50"),
    ):
        cam = document["pointing"]["models"][arch]["cam"]
        assert f"{title} {'yes' if cam['hit'] else 'no'} ({cam['energy'] * 100:.0f} % of the map inside)" in pointing
        rho = document["sanity"]["models"][arch]["cascading"][-1]["spearman"]
        assert (f"{title} {rho:.2f}" if rho is not None else f"{title} –") in sanity
        deletion = document["deletion_insertion"]["models"][arch]["deletion"]
        assert f"{title} {deletion['cam']['auc']:.2f} against {deletion['random']['auc']:.2f}" in curves
    assert sanity.startswith("Randomisation check") and "Insertion AUC" in curves
    cbam = document["models"]["cbam_resnet50"]
    before, after = cbam["target"]["prob"], cbam["interventions"][0]["target_prob"]
    assert intervention.startswith("layer3:spatial=one, p(target): ")
    assert f"CBAM-ResNet-50 {before:.2f} → {after:.2f} ({after - before:+.2f})" in intervention
    assert "SE-ResNet-50 has no such gate" in intervention
    worst = min(cbam["sweep"]["entries"], key=lambda entry: entry["change"])
    assert sweep.startswith("Sweep, the largest drop") and f"CBAM-ResNet-50 {worst['spec']}" in sweep


def test_the_comparison_figure_carries_the_same_summaries(tmp_path: Path) -> None:
    from matplotlib.text import Text

    from cbam_viz import pipeline
    from cbam_viz.render import export

    _shape(tmp_path / "a.png")
    plain = pipeline.analyze(tmp_path / "a.png", weights="demo", models=("cbam_resnet50",), device="cpu")
    assert export.check_summaries(plain) == []
    result = pipeline.analyze(
        tmp_path / "a.png",
        weights="demo",
        models=("se_resnet50", "cbam_resnet50"),
        box=(0, 0, 40, 40),
        interventions=("all:channel=one",),
        device="cpu",
    )
    summaries = export.check_summaries(result)
    assert [line.split(" ")[0] for line in summaries] == ["Pointing", "all:channel=one,"]
    figure = export.comparison_figure_object(result, dpi=40)
    shown = " ".join(t.get_text().replace("\n", " ") for t in figure.findobj(Text))
    assert all(" ".join(line.split()) in " ".join(shown.split()) for line in summaries)


def test_the_console_says_once_why_the_demo_set_and_then_each_model_as_it_loads(tmp_path: Path) -> None:
    """Without ImageNet weights, "auto" takes the demo set: said once, before the seconds of loading, which the
    console shows model by model."""
    root = tmp_path / "weights"
    shutil.copytree(ROOT / "weights" / "demo", root / "demo", ignore=shutil.ignore_patterns(".train"))
    _shape(tmp_path / "star.png")
    probe = (
        "import sys; from pathlib import Path; from cbam_viz.weights import files\n"
        f"files.WEIGHTS_DIR = Path({str(root)!r})\n"
        "from cbam_viz.cli.main import main\n"
        f"sys.exit(main(['analyze', {str(tmp_path / 'star.png')!r}, '--out', {str(tmp_path / 'out')!r}, "
        "'--device', 'cpu']))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("weights: demo - auto: ImageNet weights missing") and "using demo" in lines[0]
    assert sum("demo" in line for line in lines) == 1
    assert lines[1:4] == [
        "loading ResNet-50 (1 of 3)",
        "loading SE-ResNet-50 (2 of 3)",
        "loading CBAM-ResNet-50 (3 of 3)",
    ]
    assert lines[4].startswith("star.png: ResNet-50 ")
