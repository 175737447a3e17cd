"""Downloads: mirrors in order, hashes checked, atomic writes, one conversion; never the network (a local server)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _checkpoint_layouts import one_torch_thread

from cbam_viz import cli, download
from cbam_viz.errors import WeightsError
from cbam_viz.resnet import ArchConfig, build_resnet
from cbam_viz.weights import ENTRIES, IMAGENET_EVAL, SETS, WeightsEntry, load_model

SMALL = ArchConfig(base_width=8)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, plus /html/... (a sign-in page) and /short/... (a transfer cut in the middle)."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/html/"):
            body = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/short/"):
            data = (Path(self.directory) / self.path.removeprefix("/short/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, folder) of an HTTP server on 127.0.0.1 in a thread."""
    folder = tmp_path_factory.mktemp("served")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pth"


@pytest.fixture(scope="module")
def checkpoint_bytes() -> bytes:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(build_resnet("resnet50", SMALL).state_dict(), buffer)
    return buffer.getvalue()


def _entry(urls: tuple[str, ...], filename: str, **hashes: str | None) -> WeightsEntry:
    return WeightsEntry(
        name="resnet50.test",
        arch="resnet50",
        title="ResNet-50 test weights",
        urls=urls,
        filename=filename,
        layout="torchvision",
        config=SMALL,
        preprocess=IMAGENET_EVAL,
        metrics={"imagenet_top1": 70.0},
        license="test",
        citation="test",
        **hashes,
    )


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_download_tries_mirrors_checks_hashes_and_converts_once(
    served: tuple[str, Path],
    checkpoint_bytes: bytes,
    closed_port_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, folder = served
    sha256 = hashlib.sha256(checkpoint_bytes).hexdigest()
    filename = f"resnet50-{sha256[:8]}.pth"
    (folder / filename).write_bytes(checkpoint_bytes)
    entry = _entry(
        (closed_port_url, f"{base}/missing/{filename}", f"{base}/{filename}"),
        filename,
        sha256=sha256,
        sha256_prefix=sha256[:8],
    )
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    written = download.download_set(entry.name, tmp_path, progress=False, timeout=5)
    assert written == {entry.name: tmp_path / "imagenet" / "resnet50.test.safetensors"}
    assert _files(tmp_path) == [f"imagenet/{filename}", "imagenet/resnet50.test.safetensors"]
    model = load_model("resnet50", entry.name, weights_dir=tmp_path, device="cpu")
    assert model.weights_info.source.endswith("resnet50.test.safetensors") and model.config.base_width == 8
    offline = _entry((closed_port_url,), filename, sha256=sha256)
    assert download.download_entry(offline, tmp_path, progress=False) == written[entry.name]


@pytest.mark.parametrize(
    ("hashes", "expected"),
    [
        ({"sha256": "0" * 64}, r"sha256 [0-9a-f]{12}\.\.\. differs from the published 000000000000"),
        ({"sha256_prefix": "deadbeef"}, r"does not start with deadbeef, the hash in its name"),
    ],
)
def test_hash_mismatch_fails_and_leaves_nothing(
    served: tuple[str, Path], checkpoint_bytes: bytes, tmp_path: Path, hashes: dict[str, str], expected: str
) -> None:
    base, folder = served
    (folder / "resnet50-deadbeef.pth").write_bytes(checkpoint_bytes)
    entry = _entry((f"{base}/resnet50-deadbeef.pth",), "resnet50-deadbeef.pth", **hashes)
    with pytest.raises(WeightsError, match=expected):
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == []


def test_web_page_instead_of_the_file_is_refused(served: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = served
    entry = _entry((f"{base}/html/weights.pth",), "weights.pth")
    with pytest.raises(WeightsError, match="web page instead of the file"):
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == []


def test_transfer_cut_short_leaves_no_partial_file(
    served: tuple[str, Path], checkpoint_bytes: bytes, tmp_path: Path
) -> None:
    base, folder = served
    (folder / "cut.pth").write_bytes(checkpoint_bytes)
    entry = _entry((f"{base}/short/cut.pth",), "cut.pth")
    with pytest.raises(
        WeightsError, match=r"could not download resnet50.test \(127.0.0.1:\d+: .*(cut short|Incomplete)"
    ):
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == []


def test_unreachable_host_is_a_one_line_error_saying_what_to_do(closed_port_url: str, tmp_path: Path) -> None:
    entry = _entry((closed_port_url,), "resnet50-0676ba61.pth")
    with pytest.raises(WeightsError) as raised:
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    message = str(raised.value)
    assert "\n" not in message and "refused" in message.lower()
    assert "put resnet50-0676ba61.pth under" in message and "imagenet/ yourself, or use --weights demo" in message
    assert _files(tmp_path) == []


def test_pytorchcv_zip_is_checked_by_the_sha1_of_its_pth(
    served: tuple[str, Path], checkpoint_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, folder = served
    sha1 = hashlib.sha1(checkpoint_bytes).hexdigest()
    filename = f"resnet50b-0638-{sha1[:8]}.pth.zip"
    with zipfile.ZipFile(folder / filename, "w") as archive:  # pytorchcv's release format: one raw .pth inside
        archive.writestr(filename.removesuffix(".zip"), checkpoint_bytes)
    wrong = _entry((f"{base}/{filename}",), filename, sha1="0123abcd")
    with pytest.raises(WeightsError, match="SHA-1 .* of the .pth differs from the published 0123abcd"):
        download.download_entry(wrong, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == []
    right = _entry((f"{base}/{filename}",), filename, sha1=sha1)
    download.download_entry(right, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == sorted([f"imagenet/{filename}", "imagenet/resnet50.test.safetensors"])


def test_interrupted_download_removes_its_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(url: str, out: io.BufferedWriter, **_: object) -> str:
        out.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download.fetch("http://127.0.0.1/x", tmp_path / "imagenet" / "x.pth", progress=False)
    assert _files(tmp_path) == []


def test_demo_and_unknown_sets_are_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="trained here, not downloaded.*train-demo"):
        download.download_set("demo", tmp_path)
    with pytest.raises(WeightsError, match="unknown weights 'imagenet' to download"):
        download.download_set("imagenet", tmp_path)


def test_cli_download_with_an_unreachable_host_exits_2_with_one_line(
    closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SETS["paper"].values():
        monkeypatch.setitem(ENTRIES, name, dataclasses.replace(ENTRIES[name], urls=(closed_port_url,)))
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("cbam_viz.weights_cli",))
    code = cli.main(["weights", "download", "--weights-dir", str(tmp_path), "--no-progress", "--timeout", "5"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and error.startswith("error: could not download resnet50.tv_v1 (127.0.0.1:")
    assert "put resnet50-0676ba61.pth under" in error and "--weights demo" in error
    assert _files(tmp_path) == []
