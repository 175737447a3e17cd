"""Downloads against loopback servers that play each host: Drive's forms, Hugging Face redirects, cuts and resumes.

Nothing here reaches the network: every source is an http.server on 127.0.0.1, and the hosts of the real registry are
replaced by unresolvable ``.invalid`` names where a test must show that no network is handled quickly.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.server
import io
import os
import random
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import torch
from safetensors.torch import save_file

from cbam_viz.cli import main as cli
from cbam_viz.errors import WeightsError
from cbam_viz.model.resnet import ArchConfig, build_resnet
from cbam_viz.weights import download
from cbam_viz.weights.files import entry_status, read_origins, read_sums
from cbam_viz.weights.load import load_model, resolve_weights
from cbam_viz.weights.registry import CAFFE_V1, CBAM_FILE, ENTRIES, IMAGENET_EVAL, SETS, Source, WeightsEntry
from tests.helpers.checkpoint_layouts import (
    cadene_tensors,
    official_cbam_tensors,
    randomize_batchnorm,
    save_official,
)
from tests.helpers.models import NARROW

DRIVE_ID = "1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO"
DRIVE_UUID = "0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"
REPO_ROOT = Path(__file__).resolve().parent.parent


class Host(http.server.ThreadingHTTPServer):
    """The state of the loopback hosts: files, scripted failures, and a log of every request with its Range."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.folder = folder
        self.files: dict[str, bytes] = {}  # URL path -> body
        self.log: list[tuple[str, str | None]] = []
        self.fail_once: set[str] = set()  # answer 503 the first time
        self.cuts: dict[str, int] = {}  # path -> how many more transfers to cut in half
        self.stall: set[str] = set()  # send half, then wait 2 s before the rest
        self.no_ranges = False  # a host that ignores Range (answers 200)
        self.etags: dict[str, str] = {}  # Hugging Face repo -> announced sha256

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Host

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/octet-stream", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        host = self.server
        host.log.append((self.path, self.headers.get("Range")))
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if parts.path == "/drive/uc":  # Drive's "can't scan this file for viruses" page, its form spread over lines
            page = f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p class="uc-warning-caption">Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="{host.base}/drive/download" method="get">
  <input type="submit" id="uc-download-link" value="Download anyway"/>
  <input type="hidden" name="id" value="{query.get("id", "")}">
  <input type="hidden" name="export" value="download">
  <input type="hidden" name="confirm" value="t">
  <input type="hidden" name="uuid" value="{DRIVE_UUID}">
</form></body></html>"""
            return self._send(200, page.encode(), "text/html; charset=utf-8")
        if parts.path == "/drive/download":
            expected = {"id": DRIVE_ID, "export": "download", "confirm": "t", "uuid": DRIVE_UUID}
            if query != expected:
                return self._send(400, b"bad form", "text/plain")
            return self._file("/drive/file")
        if parts.path == "/quota/uc":
            page = (
                b"<html><body><p class='uc-error-caption'>Sorry, you can't view or download this file at this time."
                b"</p><p class='uc-error-subcaption'>Too many users have viewed or downloaded this file recently. "
                b"Please try accessing the file again later.</p></body></html>"
            )
            return self._send(200, page, "text/html; charset=utf-8")
        if parts.path.startswith("/html/"):
            return self._send(200, b"<!DOCTYPE html><html><body>Sign in to continue</body></html>", "text/html")
        if parts.path.startswith("/hf/") and parts.path.endswith("/resolve/main/model.safetensors"):
            repo = parts.path.removeprefix("/hf/").removesuffix("/resolve/main/model.safetensors")
            headers = {"Location": f"/cdn/{repo}.safetensors"}
            if repo in host.etags:
                headers["X_Linked_Etag"] = f'"{host.etags[repo]}"'
            return self._send(302, b"", "text/plain", **headers)
        return self._file(parts.path)

    def _file(self, path: str) -> None:
        host = self.server
        data = host.files.get(path)
        if data is None and path.startswith("/static/"):
            local = host.folder / path.removeprefix("/static/")
            data = local.read_bytes() if local.is_file() else None
        if data is None:
            return self._send(404, b"not found", "text/plain")
        if path in host.fail_once:
            host.fail_once.discard(path)
            return self._send(503, b"busy", "text/plain")
        start, status, headers = 0, 200, {}
        asked = self.headers.get("Range", "")
        if asked.startswith("bytes=") and not host.no_ranges:
            start = int(asked.removeprefix("bytes=").split("-")[0])
            status, headers = 206, {"Content_Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if host.cuts.get(path, 0) > 0:
            host.cuts[path] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        if path in host.stall:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(2)
            body = body[len(body) // 2 :]
        self.wfile.write(body)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: one torch thread for the whole module


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "RETRY_DELAY", 0.0)
    monkeypatch.delenv("CBAM_VIZ_WEIGHTS_MIRROR", raising=False)
    monkeypatch.delenv("CBAM_VIZ_OFFLINE", raising=False)


@pytest.fixture
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    server = Host(tmp_path_factory.mktemp("served"))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pth"


def _torch_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoint_bytes() -> bytes:
    torch.manual_seed(0)
    return _torch_bytes(build_resnet("resnet50", NARROW).state_dict())


def _entry(*sources: Source, arch: str = "resnet50", config: ArchConfig = NARROW) -> WeightsEntry:
    return WeightsEntry(
        name=f"{arch}.test",
        arch=arch,
        title="test weights",
        sources=sources,
        config=config,
        preprocess=IMAGENET_EVAL,
        metrics={"imagenet_top1": 70.0},
        license="test",
        citation="test",
    )


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _parts(folder: Path) -> list[str]:
    return [name for name in _files(folder) if name.endswith(".part")]


# --------------------------------------------------------------------------------------------------- plain hosts


def test_sources_are_tried_in_order_checked_recorded_and_converted_once(
    host: Host, checkpoint_bytes: bytes, closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = hashlib.sha256(checkpoint_bytes).hexdigest()
    filename = f"resnet50-{sha256[:8]}.pth"
    host.files[f"/{filename}"] = checkpoint_bytes
    entry = _entry(
        Source(closed_port_url, "torchvision", filename=filename),
        Source(f"{host.base}/missing/{filename}", "torchvision"),
        Source(f"{host.base}/{filename}", "torchvision", sha256=sha256, sha256_prefix=sha256[:8]),
    )
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    written = download.download_set(entry.name, tmp_path, progress=False, timeout=5)
    assert written == {entry.name: tmp_path / "imagenet" / "resnet50.test.safetensors"}
    assert _files(tmp_path) == [
        "imagenet/SHA256SUMS",
        "imagenet/origins.json",
        f"imagenet/{filename}",
        "imagenet/resnet50.test.safetensors",
    ]
    assert (tmp_path / "imagenet" / "SHA256SUMS").read_text() == f"{sha256}  {filename}\n"  # sha256sum -c format
    assert read_origins(tmp_path)[filename] == {"origin": "127.0.0.1", "url": f"{host.base}/{filename}"}
    model = load_model("resnet50", entry.name, weights_dir=tmp_path, device="cpu")
    assert model.weights_info.source.endswith("resnet50.test.safetensors") and model.config.base_width == 8
    assert model.weights_info.origin == "127.0.0.1"
    assert resolve_weights(entry.name, tmp_path).source.endswith("(from 127.0.0.1)")
    offline = _entry(Source(closed_port_url, "torchvision", filename=filename))
    assert download.download_entry(offline, tmp_path, progress=False) == written[entry.name]


@pytest.mark.parametrize(
    ("hashes", "expected"),
    [
        ({"sha256": "0" * 64}, r"sha256 [0-9a-f]{12}\.\.\. differs from the published 000000000000"),
        ({"sha256_prefix": "deadbeef"}, r"does not start with deadbeef, the hash in its name"),
    ],
)
def test_hash_mismatch_fails_and_leaves_nothing(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path, hashes: dict[str, str], expected: str
) -> None:
    host.files["/resnet50-deadbeef.pth"] = checkpoint_bytes
    entry = _entry(Source(f"{host.base}/resnet50-deadbeef.pth", "torchvision", **hashes))
    with pytest.raises(WeightsError, match=expected):
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == []


def test_web_page_instead_of_the_file_is_refused(host: Host, tmp_path: Path) -> None:
    entry = _entry(Source(f"{host.base}/html/weights.pth", "torchvision"))
    with pytest.raises(WeightsError, match="web page instead of the file"):
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == []


def test_unreachable_host_is_a_one_line_error_saying_what_to_do_by_hand(closed_port_url: str, tmp_path: Path) -> None:
    entry = _entry(Source(closed_port_url, "torchvision", filename="resnet50-0676ba61.pth", page="https://pytorch.org"))
    with pytest.raises(WeightsError) as raised:
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    message = str(raised.value)
    assert "\n" not in message and "connection to 127.0.0.1 refused" in message
    assert "by hand: resnet50.test: download resnet50-0676ba61.pth from https://pytorch.org and put it in " in message
    assert message.endswith("imagenet/, or use --weights demo")
    assert _files(tmp_path) == []


def test_pytorchcv_zip_is_checked_by_the_sha1_of_its_pth(host: Host, checkpoint_bytes: bytes, tmp_path: Path) -> None:
    sha1 = hashlib.sha1(checkpoint_bytes).hexdigest()
    filename = f"resnet50b-0638-{sha1[:8]}.pth.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # pytorchcv's release format: one raw .pth inside
        archive.writestr(filename.removesuffix(".zip"), checkpoint_bytes)
    host.files[f"/{filename}"] = buffer.getvalue()
    wrong = _entry(Source(f"{host.base}/{filename}", "pytorchcv", sha1="0123abcd"))
    with pytest.raises(WeightsError, match="SHA-1 .* of the .pth differs from the published 0123abcd"):
        download.download_entry(wrong, tmp_path, progress=False, timeout=5)
    assert _files(tmp_path) == []
    right = _entry(Source(f"{host.base}/{filename}", "pytorchcv", sha1=sha1))
    download.download_entry(right, tmp_path, progress=False, timeout=5)
    assert f"imagenet/{filename}" in _files(tmp_path) and entry_status(right, tmp_path) == "converted"


def test_a_file_of_another_architecture_is_deleted_and_the_next_source_tried(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path
) -> None:
    torch.manual_seed(1)
    host.files["/wrong.pth"] = _torch_bytes(build_resnet("se_resnet50", NARROW).state_dict())
    host.files["/right.pth"] = checkpoint_bytes
    entry = _entry(Source(f"{host.base}/wrong.pth", "torchvision"), Source(f"{host.base}/right.pth", "torchvision"))
    download.download_entry(entry, tmp_path, progress=False, timeout=5)
    files = _files(tmp_path / "imagenet")
    assert "wrong.pth" not in files and "right.pth" in files and _parts(tmp_path) == []
    assert list(read_sums(tmp_path)) == ["right.pth"]
    alone = _entry(Source(f"{host.base}/wrong.pth", "torchvision", filename="alone.pth"))
    with pytest.raises(WeightsError, match=r"not a resnet50 checkpoint in torchvision layout, deleted \(.*unexpected"):
        download.download_entry(alone, tmp_path / "other", progress=False, timeout=5)
    assert _files(tmp_path / "other") == []


def test_a_host_that_fails_once_then_works(host: Host, checkpoint_bytes: bytes, tmp_path: Path) -> None:
    host.files["/flaky.pth"] = checkpoint_bytes
    host.fail_once.add("/flaky.pth")
    download.download_entry(_entry(Source(f"{host.base}/flaky.pth", "torchvision")), tmp_path, progress=False)
    assert [path for path, _ in host.log] == ["/flaky.pth", "/flaky.pth"]
    assert (tmp_path / "imagenet" / "flaky.pth").read_bytes() == checkpoint_bytes


def _junk_zip() -> bytes:
    """A zip like pytorchcv's release, but holding junk: torch reads it as an archive and fails inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("weights.pth", b"junk")
    return buffer.getvalue()


def _lone_tensor() -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.zeros(3), buffer)
    return buffer.getvalue()


JUNK = {  # bytes a host may serve instead of a checkpoint; the first three made torch raise KeyError/IndexError/...
    "text": b"junk\n",
    "random bytes": random.Random(2).randbytes(18),
    "zip of junk": _junk_zip(),
    "zeros": b"\0" * 16,
    "bad safetensors header": (5).to_bytes(8, "little") + b"{abc}xyz",
    "a lone tensor": _lone_tensor(),
}


@pytest.mark.parametrize("kind", list(JUNK))
def test_junk_from_a_host_is_deleted_and_the_next_source_tried(
    kind: str, host: Host, checkpoint_bytes: bytes, tmp_path: Path
) -> None:
    host.files["/junk.pth"] = JUNK[kind]
    host.files["/right.pth"] = checkpoint_bytes
    entry = _entry(Source(f"{host.base}/junk.pth", "torchvision"), Source(f"{host.base}/right.pth", "torchvision"))
    download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert [path for path, _ in host.log] == ["/junk.pth", "/right.pth"]
    assert _files(tmp_path) == [
        "imagenet/SHA256SUMS",
        "imagenet/origins.json",
        "imagenet/resnet50.test.safetensors",
        "imagenet/right.pth",
    ]
    assert list(read_sums(tmp_path)) == ["right.pth"]


def test_junk_from_every_source_is_one_line_through_the_cli_and_leaves_nothing(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for number, data in enumerate(JUNK.values()):
        host.files[f"/junk{number}.pth"] = data
    entry = _entry(*(Source(f"{host.base}/junk{number}.pth", "torchvision") for number in range(len(JUNK))))
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    with pytest.raises(WeightsError) as raised:
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("could not download resnet50.test (127.0.0.1: not a resnet50")
    assert message.count("not a resnet50 checkpoint in torchvision layout, deleted (") == len(JUNK)
    assert [path for path, _ in host.log] == [f"/junk{number}.pth" for number in range(len(JUNK))]
    assert _files(tmp_path) == []
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("cbam_viz.cli.weights",))
    code = cli.main(["weights", "download", entry.name, "--weights-dir", str(tmp_path), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: could not download resnet50.test (")
    assert _files(tmp_path) == []


def test_a_junk_file_on_disk_is_set_aside_and_fetched_again_by_the_cli(
    host: Host,
    official_small: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file put there by hand that is no checkpoint shows as broken, and ``weights download`` replaces it."""
    official = ENTRIES["cbam_resnet50.official"]
    source = dataclasses.replace(official.sources[0], url=f"{host.base}/{CBAM_FILE}", kind="http", label="")
    small = dataclasses.replace(official, sources=(source,), config=NARROW)
    monkeypatch.setitem(ENTRIES, small.name, small)
    host.files[f"/{CBAM_FILE}"] = official_small
    imagenet = tmp_path / "imagenet"
    imagenet.mkdir()
    (imagenet / CBAM_FILE).write_bytes(b"junk\n")
    assert entry_status(small, tmp_path) == "broken" and download.missing_entries("paper", tmp_path)[-1] == small
    with pytest.raises(WeightsError, match="^[^\n]*is not a cbam_resnet50 checkpoint in official_cbam layout"):
        load_model("cbam_resnet50", small.name, weights_dir=tmp_path, device="cpu")
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("cbam_viz.cli.weights",))
    code = cli.main(["weights", "download", small.name, "--weights-dir", str(tmp_path), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [notice] = captured.err.splitlines()
    assert notice.startswith(f"note: {imagenet / CBAM_FILE} is not a cbam_resnet50 checkpoint in official_cbam layout")
    assert notice.endswith(f"set aside as {CBAM_FILE}.broken, fetching cbam_resnet50.official again")
    assert captured.out.startswith("cbam_resnet50.official: ") and "(from 127.0.0.1)" in captured.out
    assert (imagenet / f"{CBAM_FILE}.broken").read_bytes() == b"junk\n"
    assert (imagenet / CBAM_FILE).read_bytes() == official_small and entry_status(small, tmp_path) == "converted"
    assert _parts(tmp_path) == []


def test_a_broken_file_on_disk_with_no_source_answering_is_one_line(
    closed_port_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = _entry(Source(closed_port_url, "torchvision", filename="w.pth"))
    imagenet = tmp_path / "imagenet"
    imagenet.mkdir()
    (imagenet / "w.pth").write_bytes(random.Random(2).randbytes(18))
    with pytest.raises(WeightsError) as raised:
        download.download_entry(entry, tmp_path, progress=False)
    assert "\n" not in str(raised.value) and str(raised.value).startswith("could not download resnet50.test (")
    assert capsys.readouterr().err.count("set aside as w.pth.broken") == 1
    assert _files(imagenet) == ["w.pth.broken"] and entry_status(entry, tmp_path) == "missing"


# ------------------------------------------------------------------------------------------------ a full disk


class _FullDisk(io.BufferedWriter):
    """A part file on a disk that fills up after ``room`` bytes, as a real one does: ENOSPC on write or flush."""

    def __init__(self, raw: io.FileIO, room: int) -> None:
        super().__init__(raw)
        self.room = room

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.room < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return super().write(data)


def test_a_full_disk_is_one_line_and_no_other_source_is_tried(
    host: Host,
    checkpoint_bytes: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host.files["/a.pth"] = host.files["/b.pth"] = checkpoint_bytes
    entry = _entry(Source(f"{host.base}/a.pth", "torchvision"), Source(f"{host.base}/b.pth", "torchvision"))
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    opened = Path.open

    def open_on_a_full_disk(path: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if path.name.endswith(".part") and mode in ("wb", "ab"):
            return _FullDisk(io.FileIO(path, mode), room=len(checkpoint_bytes) // 3)
        return opened(path, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_on_a_full_disk)
    monkeypatch.setattr(download, "CHUNK", 4096)  # the disk fills up part-way through
    with pytest.raises(WeightsError) as raised:
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("could not save resnet50.test: cannot write under ")
    assert "(No space left on device): free some space or make the folder writable" in message
    assert [path for path, _ in host.log] == ["/a.pth"]  # every source would meet the same disk
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("cbam_viz.cli.weights",))
    second = dataclasses.replace(entry, name="resnet50.second")
    monkeypatch.setitem(ENTRIES, second.name, second)
    monkeypatch.setitem(SETS, "full", {"resnet50": entry.name, "se_resnet50": second.name})
    code = cli.main(["weights", "download", "full", "--weights-dir", str(tmp_path), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.count("\n") == 1  # one line for the set: one disk
    assert captured.err.startswith("error: could not save resnet50.test: cannot write under ")
    monkeypatch.setattr(Path, "open", opened)  # space freed: the next run resumes what was written
    download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert entry_status(entry, tmp_path) == "converted" and host.log[-1][1] is not None  # a Range request: resumed


def test_a_folder_that_cannot_take_the_converted_file_is_one_line(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host.files["/a.pth"] = checkpoint_bytes
    entry = _entry(Source(f"{host.base}/a.pth", "torchvision"))

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(download, "save_converted", refused)
    with pytest.raises(WeightsError) as raised:
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert "\n" not in str(raised.value) and "(Permission denied): free some space or make the" in str(raised.value)


# -------------------------------------------------------------------------------------------- resume and timeouts


def test_a_cut_transfer_is_kept_and_resumed_with_a_range_request_on_the_next_run(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path
) -> None:
    host.files["/cut.pth"] = checkpoint_bytes
    host.cuts["/cut.pth"] = download.ATTEMPTS  # every try of the first run is cut in half
    entry = _entry(Source(f"{host.base}/cut.pth", "torchvision"))
    with pytest.raises(WeightsError, match=r"could not download resnet50.test \(127.0.0.1: transfer cut short"):
        download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert entry_status(entry, tmp_path) == "missing" and "imagenet/cut.pth" not in _files(tmp_path)
    [part] = _parts(tmp_path)
    half = len(checkpoint_bytes) // 2
    resumed_at = half + (len(checkpoint_bytes) - half) // 2
    assert host.log[1] == ("/cut.pth", f"bytes={half}-")  # the retry within the run resumed too (and was cut)
    assert (tmp_path / part).read_bytes() == checkpoint_bytes[:resumed_at]
    host.log.clear()
    download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert host.log == [("/cut.pth", f"bytes={resumed_at}-")]
    assert (tmp_path / "imagenet" / "cut.pth").read_bytes() == checkpoint_bytes and _parts(tmp_path) == []


def test_a_host_that_ignores_range_is_downloaded_again_from_the_start(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path
) -> None:
    host.files["/full.pth"] = checkpoint_bytes
    host.no_ranges = True
    source = Source(f"{host.base}/full.pth", "torchvision")
    destination = tmp_path / "imagenet" / "full.pth"
    destination.parent.mkdir()
    download.part_path(destination, source.url).write_bytes(b"bytes of an older attempt")
    download.download_entry(_entry(source), tmp_path, progress=False)
    assert host.log == [("/full.pth", "bytes=25-")]
    assert destination.read_bytes() == checkpoint_bytes


def test_a_stalled_transfer_stops_at_the_read_timeout_and_keeps_its_bytes(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    host.files["/slow.pth"] = checkpoint_bytes
    host.stall.add("/slow.pth")
    started = time.monotonic()
    with pytest.raises(WeightsError, match=r"no data for 0.3 s after \d+ bytes \(kept, resumable\)"):
        download.download_entry(_entry(Source(f"{host.base}/slow.pth", "torchvision")), tmp_path, timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert len(_parts(tmp_path)) == 1


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback host that accepts the TCP connection (the kernel's backlog does) and never answers a byte."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/weights.pth"


def test_a_host_that_connects_but_never_answers_is_left_after_the_connect_timeout(
    silent_url: str, host: Host, checkpoint_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer is bounded by CONNECT_TIMEOUT, read when the download runs (here 1 s, not the default 10 s)."""
    monkeypatch.setattr(download, "CONNECT_TIMEOUT", 1.0)
    host.files["/next.pth"] = checkpoint_bytes
    entry = _entry(Source(silent_url, "torchvision", filename="w.pth"), Source(f"{host.base}/next.pth", "torchvision"))
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    started = time.monotonic()
    download.download_set(entry.name, tmp_path, progress=False)
    assert 0.9 < time.monotonic() - started < 4
    assert "imagenet/next.pth" in _files(tmp_path) and _parts(tmp_path) == []
    alone = _entry(Source(silent_url, "torchvision", filename="w.pth"))
    started = time.monotonic()
    with pytest.raises(WeightsError) as raised:
        download.download_entry(alone, tmp_path / "other", progress=False)
    assert 0.9 < time.monotonic() - started < 3  # not retried: a silent host is not a transient failure
    assert "\n" not in str(raised.value) and "(127.0.0.1: no answer from 127.0.0.1 within 1 s)" in str(raised.value)
    assert _files(tmp_path / "other") == []


def test_ctrl_c_keeps_only_a_hidden_part_and_the_next_run_resumes(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host.files["/big.pth"] = checkpoint_bytes
    entry = _entry(Source(f"{host.base}/big.pth", "torchvision"))
    monkeypatch.setattr(download, "CHUNK", 4096)

    class Interrupted(download.tqdm):  # type: ignore[name-defined,misc]
        def update(self, n: float | None = 1) -> bool | None:
            super().update(n)
            if self.n >= 3 * 4096:
                raise KeyboardInterrupt
            return None

    monkeypatch.setattr(download, "tqdm", Interrupted)
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    with pytest.raises(KeyboardInterrupt):  # a disabled bar counts nothing: this one shows
        download.download_set(entry.name, tmp_path, progress=True)
    [part] = _parts(tmp_path)
    assert Path(part).name.startswith(".big.pth.") and (tmp_path / part).stat().st_size == 3 * 4096
    assert entry_status(entry, tmp_path) == "missing" and not download.download_running()
    monkeypatch.undo()
    monkeypatch.setattr(download, "RETRY_DELAY", 0.0)
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    download.download_set(entry.name, tmp_path, progress=False)
    assert host.log[-1] == ("/big.pth", f"bytes={3 * 4096}-")
    assert (tmp_path / "imagenet" / "big.pth").read_bytes() == checkpoint_bytes


# ---------------------------------------------------------------------------------------- Drive and Hugging Face


@pytest.fixture(scope="module")
def official_small(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("official") / "RESNET50_CBAM_new_name_wrap.pth"
    return save_official(path, official_cbam_tensors(width=8), extras=True, legacy=False).read_bytes()


def test_drive_confirmation_form_is_submitted_with_its_hidden_inputs(
    host: Host, official_small: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host.files["/drive/file"] = official_small
    drive = Source(
        f"{host.base}/drive/uc?export=download&id={DRIVE_ID}",
        "official_cbam",
        filename="RESNET50_CBAM_new_name_wrap.pth",
        kind="drive",
        label="drive.google.com",
    )
    entry = _entry(drive, arch="cbam_resnet50")
    monkeypatch.setitem(ENTRIES, entry.name, entry)
    download.download_entry(entry, tmp_path, progress=False, timeout=5)
    assert [urlsplit(path).path for path, _ in host.log] == ["/drive/uc", "/drive/download"]
    assert parse_qs(urlsplit(host.log[1][0]).query) == {
        "id": [DRIVE_ID],
        "export": ["download"],
        "confirm": ["t"],
        "uuid": [DRIVE_UUID],
    }
    assert (tmp_path / "imagenet" / "RESNET50_CBAM_new_name_wrap.pth").read_bytes() == official_small
    model = load_model("cbam_resnet50", entry.name, weights_dir=tmp_path, device="cpu")
    assert model.weights_info.origin == "drive.google.com" and model.weights_info.layout == "official_cbam"


def test_drive_quota_page_says_so_in_one_line_with_the_manual_link(host: Host, tmp_path: Path) -> None:
    manual = f"https://drive.google.com/file/d/{DRIVE_ID}/view"
    drive = Source(f"{host.base}/quota/uc?id={DRIVE_ID}", "official_cbam", filename="x.pth", kind="drive", page=manual)
    with pytest.raises(WeightsError) as raised:
        download.download_entry(_entry(drive, arch="cbam_resnet50"), tmp_path, progress=False, timeout=5)
    message = str(raised.value)
    assert "\n" not in message and "too many users have viewed or downloaded this file recently" in message
    assert f"quota exceeded): try again later, or download it by hand from {manual}" in message
    assert _files(tmp_path) == []


def test_drive_page_of_another_shape_goes_through_gdown(host: Host) -> None:
    page = '<script>var x = {"downloadUrl":"https://drive.usercontent.google.com/download?id\\u003dabc\\u0026confirm\\u003dt"}'
    assert download.drive_download_url(page, "https://drive.google.com/uc?id=abc", "manual") == (
        "https://drive.usercontent.google.com/download?id=abc&confirm=t"
    )
    with pytest.raises(WeightsError, match="Google Drive refused .*download it by hand from https://m"):
        download.drive_download_url("<html><body>Nothing here</body></html>", "https://d/uc", "https://m")


def test_hugging_face_safetensors_in_timm_layout_gives_timm_logits(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's legacy_seresnet50 file (timm keys) converts to the model timm itself computes."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(3)
    oracle = randomize_batchnorm(timm.create_model("legacy_seresnet50", pretrained=False), seed=3)
    buffer = tmp_path / "model.safetensors"
    save_file({key: value.contiguous() for key, value in oracle.state_dict().items()}, str(buffer))
    data = buffer.read_bytes()
    buffer.unlink()
    repo = "timm/legacy_seresnet50.in1k"
    host.files[f"/cdn/{repo}.safetensors"] = data
    host.etags[repo] = hashlib.sha256(data).hexdigest()
    caffe = ENTRIES["se_resnet50.caffe"]
    hub = next(source for source in caffe.sources if source.kind == "huggingface")
    hub = dataclasses.replace(hub, url=f"{host.base}/hf/{repo}/resolve/main/model.safetensors")
    monkeypatch.setitem(ENTRIES, caffe.name, dataclasses.replace(caffe, sources=(hub,)))
    download.download_set(caffe.name, tmp_path, progress=False)
    assert host.log[0][0].startswith("/hf/") and host.log[1][0] == f"/cdn/{repo}.safetensors"
    model = load_model("se_resnet50", caffe.name, weights_dir=tmp_path, device="cpu")
    assert model.weights_info.origin == "huggingface.co (timm/legacy_seresnet50.in1k)"
    assert model.config.stride_in == "conv1" and model.config.stem_pool == "ceil"
    image = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(image), oracle(image), rtol=1e-4, atol=1e-4)


def test_a_hugging_face_file_that_differs_from_the_announced_sha256_is_refused(
    host: Host, checkpoint_bytes: bytes, tmp_path: Path
) -> None:
    save = tmp_path / "m.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in build_resnet("resnet50", NARROW).state_dict().items()}, str(save))
    host.files["/cdn/timm/resnet50.tv_in1k.safetensors"] = save.read_bytes()
    host.etags["timm/resnet50.tv_in1k"] = "f" * 64
    url = f"{host.base}/hf/timm/resnet50.tv_in1k/resolve/main/model.safetensors"
    entry = _entry(Source(url, "torchvision", filename="hub.safetensors", kind="huggingface"))
    with pytest.raises(WeightsError, match=r"differs from the ffffffffffff\.\.\. the host announced"):
        download.download_entry(entry, tmp_path / "w", progress=False)
    assert _files(tmp_path / "w") == []


# -------------------------------------------------------------------------------------------------------- mirror


@pytest.fixture(scope="module")
def official_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size checkpoint in the official CBAM release's layout, under the release's file name."""
    folder = tmp_path_factory.mktemp("mirror")
    return save_official(folder / "RESNET50_CBAM_new_name_wrap.pth", official_cbam_tensors(), extras=True, legacy=False)


@pytest.mark.parametrize("kind", ["folder", "url"])
def test_the_mirror_variable_is_tried_first_through_the_cli(
    kind: str, host: Host, official_full: Path, tmp_path: Path
) -> None:
    host.folder = official_full.parent
    mirror = str(official_full.parent) if kind == "folder" else f"{host.base}/static/"
    env = {**os.environ, "CBAM_VIZ_WEIGHTS_MIRROR": mirror}
    command = [sys.executable, "-m", "cbam_viz", "weights", "download", "cbam_resnet50.official"]
    done = subprocess.run(
        [*command, "--weights-dir", str(tmp_path), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    where = "127.0.0.1" if kind == "url" else str(official_full.parent)
    assert done.stdout.startswith("cbam_resnet50.official: ") and f"(from mirror {where})" in done.stdout
    assert _files(tmp_path) == [
        "imagenet/RESNET50_CBAM_new_name_wrap.pth",
        "imagenet/SHA256SUMS",
        "imagenet/cbam_resnet50.official.safetensors",
        "imagenet/origins.json",
    ]
    sha256 = hashlib.sha256(official_full.read_bytes()).hexdigest()
    assert read_sums(tmp_path) == {"RESNET50_CBAM_new_name_wrap.pth": sha256}
    if kind == "url":
        assert [path for path, _ in host.log] == ["/static/RESNET50_CBAM_new_name_wrap.pth"]


@pytest.mark.parametrize("kind", ["folder", "url"])
def test_the_mirror_tries_every_source_file_name_with_that_source_checks(
    kind: str, host: Host, checkpoint_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The teacher's copy came from a later source (timm's Hugging Face safetensors): the mirror serves only that."""
    v1 = ENTRIES["resnet50.tv_v1"]
    offline = tuple(
        dataclasses.replace(source, url=f"http://cbam-viz-test-host.invalid/{source.filename}") for source in v1.sources
    )
    small = dataclasses.replace(v1, sources=offline, config=dataclasses.replace(v1.config, base_width=8))
    monkeypatch.setitem(ENTRIES, small.name, small)
    hub_name = v1.sources[1].filename
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in build_resnet("resnet50", NARROW).state_dict().items()}, teacher / hub_name)
    if kind == "folder":
        monkeypatch.setenv("CBAM_VIZ_WEIGHTS_MIRROR", str(teacher))
    else:  # the first source's name is there too, but fails that source's check (the sha256 prefix in its name)
        host.files[f"/lab/{v1.sources[0].filename}"] = checkpoint_bytes
        host.files[f"/lab/{hub_name}"] = (teacher / hub_name).read_bytes()
        monkeypatch.setenv("CBAM_VIZ_WEIGHTS_MIRROR", f"{host.base}/lab/")
    weights = tmp_path / "weights"
    written = download.download_set(small.name, weights, progress=False)
    assert _files(weights) == [
        "imagenet/SHA256SUMS",
        "imagenet/origins.json",
        "imagenet/resnet50.tv_v1.safetensors",
        f"imagenet/{hub_name}",
    ]
    where = "127.0.0.1" if kind == "url" else str(teacher)
    assert read_origins(weights)[hub_name]["origin"] == f"mirror {where}"
    if kind == "url":
        assert [path for path, _ in host.log] == [f"/lab/{v1.sources[0].filename}", f"/lab/{hub_name}"]
    model = load_model("resnet50", small.name, weights_dir=weights, device="cpu")
    assert model.weights_info.source == str(written[small.name]) and model.weights_info.layout == "torchvision"


def test_a_mirror_without_the_file_says_which_names_it_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = ENTRIES["resnet50.tv_v1"]
    offline = tuple(
        dataclasses.replace(source, url=f"http://cbam-viz-test-host.invalid/{source.filename}") for source in v1.sources
    )
    monkeypatch.setitem(ENTRIES, v1.name, dataclasses.replace(v1, sources=offline))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_MIRROR", str(tmp_path / "empty"))
    with pytest.raises(WeightsError) as raised:
        download.download_set(v1.name, tmp_path / "weights", progress=False)
    message = str(raised.value)
    for source in v1.sources:
        assert f"mirror {tmp_path / 'empty'} ({source.filename}): no such file in the mirror folder" in message
    assert "\n" not in message and _files(tmp_path / "weights") == []


# ----------------------------------------------------------------------------------------------------- first run


@pytest.fixture
def small_paper_set(monkeypatch: pytest.MonkeyPatch, official_small: bytes, tmp_path: Path) -> dict[str, bytes]:
    """The paper entries at 1/8 width, whose own hosts do not resolve; -> the files a mirror must serve."""
    torch.manual_seed(4)
    files = {
        "resnet50-0676ba61.pth": _torch_bytes(build_resnet("resnet50", NARROW).state_dict()),
        "se_resnet50-ce0d4300.pth": _torch_bytes(
            cadene_tensors(build_resnet("se_resnet50", dataclasses.replace(CAFFE_V1, base_width=8)).state_dict())
        ),
        "RESNET50_CBAM_new_name_wrap.pth": official_small,
    }
    for name, filename in zip(SETS["paper"].values(), files, strict=True):
        entry = ENTRIES[name]
        source = Source(f"http://cbam-viz-test-host.invalid/{filename}", entry.layout)
        small = dataclasses.replace(entry, sources=(source,), config=dataclasses.replace(entry.config, base_width=8))
        monkeypatch.setitem(ENTRIES, name, small)
    return files


def test_first_run_without_network_falls_back_at_once(
    small_paper_set: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_MIRROR", "http://cbam-viz-mirror.invalid/weights")
    started = time.monotonic()
    outcome = download.first_run(tmp_path, progress=False)
    assert time.monotonic() - started < 3
    assert not outcome.fetched and "\n" not in outcome.note
    assert outcome.note == (
        "no network (DNS lookup for cbam-viz-mirror.invalid failed): using the demo set; "
        "`python -m cbam_viz weights download paper` gets the ImageNet weights"
    )
    monkeypatch.delenv("CBAM_VIZ_WEIGHTS_MIRROR")
    assert "DNS lookup for cbam-viz-test-host.invalid failed" in download.first_run(tmp_path, progress=False).note
    assert _files(tmp_path) == []


def test_first_run_does_nothing_offline(
    small_paper_set: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_probe(*args: object) -> None:
        raise AssertionError("offline mode must not touch the network")

    monkeypatch.setattr(download, "_probe", no_probe)
    assert download.first_run(tmp_path, offline=True).note.startswith("offline mode: ImageNet weights not downloaded")
    monkeypatch.setenv("CBAM_VIZ_OFFLINE", "1")
    assert not download.first_run(tmp_path).fetched


def test_first_run_fetches_the_paper_set_from_a_mirror_then_has_nothing_to_do(
    small_paper_set: dict[str, bytes], host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, data in small_paper_set.items():
        host.files[f"/lab/{name}"] = data
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_MIRROR", f"{host.base}/lab")
    outcome = download.first_run(tmp_path, progress=False)
    assert outcome.fetched and outcome.note.startswith("downloaded the ImageNet weights into ")
    choice = resolve_weights("auto", tmp_path)
    assert (choice.kind, choice.name) == ("set", "paper") and choice.source.count("from mirror 127.0.0.1") == 3
    again = download.first_run(tmp_path, progress=False)
    assert not again.fetched and again.note.endswith("nothing to download")


def test_first_run_with_junk_on_the_mirror_falls_back_in_one_line_and_leaves_nothing(
    small_paper_set: dict[str, bytes], host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number, name in enumerate(small_paper_set):
        host.files[f"/lab/{name}"] = list(JUNK.values())[number]
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_MIRROR", f"{host.base}/lab")
    outcome = download.first_run(tmp_path, progress=False)
    assert not outcome.fetched and "\n" not in outcome.note
    assert outcome.note.startswith("could not download 3 ImageNet files (`python -m cbam_viz weights list` says")
    assert sorted(path for path, _ in host.log) == sorted(f"/lab/{name}" for name in small_paper_set)
    assert _files(tmp_path) == []


# -------------------------------------------------------------------------------------------- the operator decides


def test_a_second_download_is_refused_at_once_while_one_runs(tmp_path: Path) -> None:
    with download.DOWNLOAD_LOCK:
        assert download.download_running()
        started = time.monotonic()
        with pytest.raises(WeightsError, match="^a download is already running: wait for it to finish$"):
            download.download_set("paper", tmp_path)
        assert time.monotonic() - started < 0.5
    assert not download.download_running()


def test_demo_and_unknown_sets_are_not_downloaded(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="trained here, not downloaded.*train-demo"):
        download.download_set("demo", tmp_path)
    with pytest.raises(WeightsError, match="unknown weights 'imagenet' to download"):
        download.download_set("imagenet", tmp_path)


def test_cli_download_with_an_unreachable_host_says_one_line_per_file(
    closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SETS["paper"].values():
        entry = ENTRIES[name]
        sources = tuple(
            dataclasses.replace(source, url=closed_port_url, page=source.manual_page) for source in entry.sources
        )
        monkeypatch.setitem(ENTRIES, name, dataclasses.replace(entry, sources=sources))
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", ("cbam_viz.cli.weights",))
    code = cli.main(["weights", "download", "--weights-dir", str(tmp_path), "--no-progress", "--timeout", "5"])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 3
    for line, name in zip(lines, SETS["paper"].values(), strict=True):
        assert line.startswith(f"error: could not download {name} (") and "refused" in line
        assert f"by hand: {name}: download {ENTRIES[name].filename} from https://" in line
    assert "https://drive.google.com/file/d/1mvAVvhLR_2XY_bPYxh-SEz4vDmGzSArO/view" in lines[2]
    assert _files(tmp_path) == []
