"""A hostile visitor on loopback: every hostile probe against a launched app, with a normal analysis alongside.

    python -m benchmarks.hostile            # every probe, against `python app.py --weights demo` on a free port
    python -m benchmarks.hostile --fast     # the quick subset (what tests/test_hostile_bench.py runs in-process)

For each probe it prints one row: the probe, the answer (HTTP status and the one-line message, cut to 90
characters), how long the answer took, the server's resident memory before and after, and whether an ordinary
analysis sent 0.1 s after the probe, from another client, was answered within 2 s, and the machine's load average
after it (the table's header names the machine's cores). Everything is bounded: at most
about 40 requests, each with a timeout, only to 127.0.0.1. Each probe speaks from its own loopback address
(127.0.0.2, 127.0.0.3, ...), as a classroom of hostile visitors would, so the per-client upload budget is tested by
the one probe that floods it and no other probe is refused for its neighbours' uploads.

The adversarial files are the decode-budget test's own (``tests/helpers/decode_cases.py``) and the EXIF bombs of
``tests/helpers/hostile.py``, made on the fly.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tests.helpers.decode_cases import CASES
from tests.helpers.ports import free_port

REPO = Path(__file__).resolve().parent.parent

ALONGSIDE_BUDGET_S = 2.0
ANSWER_WIDTH = 90
TIMEOUT_S = 120.0


@dataclass
class Row:
    probe: str
    answer: str  # "413 the request body is larger than 4 MB"
    seconds: float
    rss_before_mb: float
    rss_after_mb: float
    alongside_s: float | None  # the ordinary analysis's answer time; None: not sent (the probe fills the queue)
    alongside_answer: str = ""
    expected: str = ""  # words the answer must contain
    ok: bool = field(default=False)
    load: float = 0.0  # the machine's one-minute load average after the probe

    @property
    def alongside_ok(self) -> bool | None:
        if self.alongside_s is None:
            return None
        return self.alongside_answer == "analysed" and self.alongside_s <= ALONGSIDE_BUDGET_S


# ------------------------------------------------------------------------------------------------- raw HTTP


class Visitor:
    """One client of the app, speaking raw HTTP from its own loopback address."""

    def __init__(self, url: str, source: str = "127.0.0.1") -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self.host, self.port, self.source = host, int(port), source

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S, source_address=(self.source, 0))

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple:
        """-> (status, body bytes)."""
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def upload(self, name: str, data: bytes) -> tuple[int, str]:
        """-> (status, the server's path of the file, or its one-line refusal)."""
        boundary = "cbamvizhostile"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, payload = self.request(
            "POST", "/gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        document = _json(payload)
        if status == 200 and isinstance(document, list) and document:
            return status, document[0]
        return status, _detail(document, payload)

    def call(self, api: str, data: list) -> tuple[int, str]:
        """One event through Gradio's call API: -> (status, "analysed" or the one-line error it answered)."""
        body = json.dumps({"data": data}).encode()
        status, payload = self.request("POST", f"/gradio_api/call/{api}", body, {"Content-Type": "application/json"})
        document = _json(payload)
        if status != 200 or not isinstance(document, dict) or "event_id" not in document:
            return status, _detail(document, payload)
        status, stream = self.request("GET", f"/gradio_api/call/{api}/{document['event_id']}")
        return status, sse_outcome(stream.decode("utf-8", "replace"))

    def analyse(self, server_path: str, target_class: str = "", models: list | None = None) -> tuple[int, str]:
        image = {"path": server_path, "meta": {"_type": "gradio.FileData"}, "orig_name": Path(server_path).name}
        models = ["resnet50", "se_resnet50", "cbam_resnet50"] if models is None else models
        mode = "shared" if target_class else "top1"
        return self.call("analyze", [image, models, "auto", mode, target_class, "gradcam", 4, "whole", False, ""])


def sse_outcome(stream: str) -> str:
    """ "analysed" for a completed event, else the error line it carried."""
    event = ""
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            if event == "complete":
                return "analysed"
            data = _json(line.split(":", 1)[1].strip().encode())
            if isinstance(data, dict):  # Gradio 6: {"error": message, "duration", "visible", "title"}
                data = data.get("error")
            return data if isinstance(data, str) else "error (no message)"
    return f"no answer ({event or 'empty stream'})"


def _json(payload: bytes) -> object:
    try:
        return json.loads(payload or b"null")
    except ValueError:
        return None


def _detail(document: object, payload: bytes) -> str:
    if isinstance(document, dict) and "detail" in document:
        return str(document["detail"])
    return payload[:200].decode("utf-8", "replace")


def shorten(text: str, width: int = ANSWER_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------------------------------- probes

Probe = Callable[[Visitor, str], tuple[int, str]]  # (visitor, the ordinary picture's server path) -> answer


def file_probe(case: str) -> Probe:
    """Upload one adversarial file of the decode-budget test and analyse it."""

    def probe(visitor: Visitor, _: str) -> tuple[int, str]:
        status, path = visitor.upload(f"{case}.bin", CASES[case].make())
        return visitor.analyse(path) if status == 200 else (status, path)

    return probe


def huge_class_name(size: int) -> Probe:
    def probe(visitor: Visitor, picture: str) -> tuple[int, str]:
        return visitor.analyse(picture, target_class="x" * size)

    return probe


def many_models(visitor: Visitor, picture: str) -> tuple[int, str]:
    return visitor.analyse(picture, models=["cbam_resnet50"] * 10_000)


def narrow_picture(visitor: Visitor, _: str) -> tuple[int, str]:
    """A picture 9 px wide (its panels are drawn by ``tests/test_render.py``; here the server must analyse it)."""
    buffer = io.BytesIO()
    Image.new("RGB", (9, 64), (200, 40, 40)).save(buffer, format="PNG")
    status, path = visitor.upload("narrow.png", buffer.getvalue())
    return visitor.analyse(path) if status == 200 else (status, path)


def malformed_call(visitor: Visitor, _: str) -> tuple[int, str]:
    return visitor.call("analyze", [1, 2, 3])


def unknown_fn_index(visitor: Visitor, _: str) -> tuple[int, str]:
    body = json.dumps({"data": [], "fn_index": 999, "session_hash": "hostile"}).encode()
    status, payload = visitor.request("POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    return status, _detail(_json(payload), payload)


def huge_body(visitor: Visitor, _: str) -> tuple[int, str]:
    body = b'{"data": ["' + b"x" * 50_000_000 + b'"], "fn_index": 0, "session_hash": "hostile"}'
    status, payload = visitor.request("POST", "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    return status, _detail(_json(payload), payload)


def get(path: str) -> Probe:
    def probe(visitor: Visitor, _: str) -> tuple[int, str]:
        status, payload = visitor.request("GET", path)
        return status, _detail(_json(payload), payload)

    return probe


def upload_flood(visitor: Visitor, _: str) -> tuple[int, str]:
    """24 MB uploads, one after the other, until the server says wait (at most 8 of them)."""
    data = b"\x89PNG" + bytes(24_000_000 - 4)
    for count in range(1, 9):
        status, answer = visitor.upload("flood.png", data)
        if status != 200:
            return status, f"after {count - 1} uploads: {answer}"
    return status, "8 uploads of 24 MB accepted"


def queue_flood(visitor: Visitor, picture: str) -> tuple[int, str]:
    """Slow analyses (faithfulness on) from 24 clients at once, more than the launched app's queue holds."""
    image = {"path": picture, "meta": {"_type": "gradio.FileData"}, "orig_name": "picture.png"}
    data = [image, ["resnet50", "se_resnet50", "cbam_resnet50"], "auto", "top1", "", "gradcam", 4, "whole", True, ""]
    answers: list[str] = []

    def one(index: int) -> None:
        source = f"127.0.1.{index + 1}"
        answers.append(Visitor(f"http://{visitor.host}:{visitor.port}", source).call("analyze", data)[1])

    threads = [threading.Thread(target=one, args=(index,)) for index in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    busy = [answer for answer in answers if "busy" in answer]
    return (503 if busy else 200), (busy[0] if busy else f"all {len(answers)} answered: {answers[0]}")


def post_json(path: str, body: bytes) -> Probe:
    """One raw JSON POST: -> (status, its one-line detail)."""

    def probe(visitor: Visitor, _: str) -> tuple[int, str]:
        status, payload = visitor.request("POST", path, body, {"Content-Type": "application/json"})
        return status, _detail(_json(payload), payload)

    return probe


def join_body(data: str = "[]", fn_index: str = "0", session_hash: str = '"hostile"') -> bytes:
    return f'{{"data": {data}, "fn_index": {fn_index}, "session_hash": {session_hash}}}'.encode()


def exif_probe(name: str) -> Probe:
    """Upload one of ``tests/hostile.py``'s EXIF bombs (the issue's sizes) and analyse it."""

    def probe(visitor: Visitor, _: str) -> tuple[int, str]:
        from tests.helpers import hostile

        status, path = visitor.upload(f"{name}.bin", hostile.exif_bombs()[name])
        return visitor.analyse(path) if status == 200 else (status, path)

    return probe


def icc_with_sos_bytes(visitor: Visitor, _: str) -> tuple[int, str]:
    from tests.helpers import hostile

    status, path = visitor.upload("icc.jpg", hostile.jpeg_icc_with_sos_bytes())
    return visitor.analyse(path) if status == 200 else (status, path)


def truncated_body(visitor: Visitor, _: str) -> tuple[int, str]:
    """A join whose body stops one byte short of its Content-Length, then the client leaves: nothing may run."""
    body = join_body()
    with socket.create_connection((visitor.host, visitor.port), timeout=10, source_address=(visitor.source, 0)) as sock:
        head = "POST /gradio_api/queue/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:-1])
        sock.shutdown(socket.SHUT_WR)
        try:
            answer = sock.recv(200)
        except TimeoutError:
            answer = b""  # held open, but nothing answered and nothing run
    return (0, "dropped (no answer)") if not answer else (int(answer.split()[1]), answer.decode("latin-1")[:80])


def many_files(visitor: Visitor, _: str) -> tuple[int, str]:
    boundary = "cbamvizhostile"
    part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG"
        + bytes(60)
        + b"\r\n"
    )
    body = part * 1000 + f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, payload = visitor.request("POST", "/gradio_api/upload", body, headers)
    return status, _detail(_json(payload), payload)


def chunked_upload_flood(visitor: Visitor, _: str) -> tuple[int, str]:
    """24 MB uploads without a Content-Length (chunked), until the server says wait (at most 8)."""
    boundary = "cbamvizhostile"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="c.png"\r\n\r\n'.encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    for count in range(1, 9):
        chunks = iter([head, b"\x89PNG" + bytes(24_000_000), f"\r\n--{boundary}--\r\n".encode()])
        connection = visitor._connection()
        try:
            connection.request("POST", "/gradio_api/upload", body=chunks, headers=headers, encode_chunked=True)
            answer = connection.getresponse()
            status, payload = answer.status, answer.read()
        finally:
            connection.close()
        if status != 200:
            return status, f"after {count - 1} uploads: {_detail(_json(payload), payload)}"
    return status, "8 chunked uploads of 24 MB accepted"


def refused_choice(visitor: Visitor, picture: str) -> tuple[int, str]:
    image = {"path": picture, "meta": {"_type": "gradio.FileData"}, "orig_name": "picture.png"}
    return visitor.call("analyze", [image, ["resnet50"], "auto", "top1", "", "x" * 1_000_000, 4, "whole", False, ""])


def expensive_flood(visitor: Visitor, picture: str) -> tuple[int, str]:
    """Eight sanity checks at once from one client: past its share, it is told to wait (Grad-CAM: the accepted
    three finish within the probe's time on the demo models)."""
    image = {"path": picture, "meta": {"_type": "gradio.FileData"}, "orig_name": "picture.png"}
    data = [image, ["resnet50", "se_resnet50", "cbam_resnet50"], "auto", "top1", "", "gradcam", 4, "whole"]
    answers: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda: answers.append(visitor.call("sanity", data))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    refused = [answer for answer in answers if answer[0] == 429]
    return refused[0] if refused else (200, f"all {len(answers)} answered")


def live_join_flood(visitor: Visitor, _: str) -> tuple[int, str]:
    """Twenty joins to the live stream at once from one client, none with a frame: at most its share is taken
    (a join whose stream has already ended holds nothing, so fewer refusals are no harm)."""
    status, payload = visitor.request("GET", "/config")
    config = _json(payload) or {}
    live = next((d["id"] for d in config.get("dependencies", []) if d.get("api_name") == "live"), None)
    if live is None:
        return 0, "no live event"
    answers: list[tuple[int, str]] = []

    def one(count: int) -> None:
        body = join_body("[null, null, null, null, null, null, null]", str(live), f'"liveflood{count}"')
        answers.append(post_json("/gradio_api/queue/join", body)(visitor, ""))

    threads = [threading.Thread(target=one, args=(count,)) for count in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    refused = [detail for status, detail in answers if status == 429]
    return (429 if refused else 200), f"{len(refused)} of 20 live joins refused" + (
        f": {refused[0]}" if refused else ""
    )


def live_frame(kind: str) -> Probe:
    """A join to the live stream whose frame Gradio would open with Pillow: a 169-megapixel PNG header in 0.5 MB,
    or a TGA picture (a format ``/analyze`` refuses)."""

    def probe(visitor: Visitor, _: str) -> tuple[int, str]:
        import base64

        from tests.helpers import hostile

        if kind == "png_169_mp":
            frame, mime = hostile.black_png_bytes(13_000, 13_000), "png"
        else:
            buffer = io.BytesIO()
            Image.new("RGB", (640, 480), (90, 90, 90)).save(buffer, "TGA")
            frame, mime = buffer.getvalue(), "x-tga"
        status, payload = visitor.request("GET", "/config")
        config = _json(payload) or {}
        live = next((d["id"] for d in config.get("dependencies", []) if d.get("api_name") == "live"), None)
        if live is None:
            return 0, "no live event"
        url = f"data:image/{mime};base64," + base64.b64encode(frame).decode()
        data = json.dumps([{"url": url, "meta": {"_type": "gradio.FileData"}}, None, None, None, None, None, None])
        return post_json("/gradio_api/queue/join", join_body(data, str(live), '"liveframe"'))(visitor, "")

    return probe


@dataclass(frozen=True)
class Case:
    probe: Probe
    expected: str  # words the answer must contain
    fast: bool = False  # in the suite's quick subset
    alongside: bool = True  # send an ordinary analysis at the same time


PROBES: dict[str, Case] = {
    "tiff_200k_pages": Case(file_probe("tiff_200k_pages"), "analysed", fast=True),
    "gif_1m_frames": Case(file_probe("gif_1m_frames"), "analysed"),
    "png_49mp_grey": Case(file_probe("png_49mp_grey"), "analysed"),
    "png_ztxt_one_gigabyte": Case(file_probe("png_ztxt_one_gigabyte"), "compressed text"),
    "gif_comment_flood": Case(file_probe("gif_comment_flood"), "slow to decode"),
    "jpeg_144_megapixels": Case(file_probe("jpeg_144_megapixels"), "144.0 megapixels"),
    "class_name_1_mb": Case(huge_class_name(1_000_000), "at most 200", fast=True),
    "models_list_10k": Case(many_models, "model", fast=True),
    "body_50_mb": Case(huge_body, "larger than 4 MB", fast=True),
    "picture_9_px_wide": Case(narrow_picture, "analysed", fast=True),
    "malformed_call": Case(malformed_call, "does not match this endpoint's parameters", fast=True),
    "fn_index_999": Case(unknown_fn_index, "unknown fn_index 999", fast=True),
    "run_history": Case(get("/gradio_api/runs"), "404"),
    "monitoring": Case(get("/gradio_api/monitoring"), "404"),
    "upload_flood": Case(upload_flood, "too many uploads, wait a minute"),
    "queue_flood": Case(queue_flood, "try again in a few seconds", alongside=False),
    "run_route": Case(post_json("/gradio_api/run/analyze", b'{"data": []}'), "only through the queue", fast=True),
    "api_route": Case(post_json("/gradio_api/api/sanity", b'{"data": []}'), "only through the queue", fast=True),
    "openapi": Case(get("/gradio_api/openapi.json"), "404", fast=True),
    "unknown_api_name": Case(post_json("/gradio_api/call/nope", b'{"data": []}'), "unknown api name", fast=True),
    "fn_index_string": Case(
        post_json("/gradio_api/queue/join", join_body(fn_index='"999"')), "whole number", fast=True
    ),
    "nan_in_json": Case(post_json("/gradio_api/queue/join", join_body("[NaN]")), "not a JSON number", fast=True),
    "number_1e400": Case(post_json("/gradio_api/queue/join", join_body("[1e400]")), "too large", fast=True),
    "nesting_500": Case(post_json("/gradio_api/queue/join", join_body("[" * 500 + "]" * 500)), "nested", fast=True),
    "session_hash_3_mb": Case(
        post_json("/gradio_api/queue/join", join_body(session_hash='"' + "a" * 3_000_000 + '"')),
        "session_hash must be",
        fast=True,
    ),
    "truncated_body": Case(truncated_body, "dropped", fast=True),
    "choice_1_mb": Case(refused_choice, "is not one of the choices", fast=True),
    "files_1000_in_one": Case(many_files, "at most 4 files", fast=True),
    "chunked_upload_flood": Case(chunked_upload_flood, "too many uploads, wait a minute"),
    "jpeg_icc_with_ff_da": Case(icc_with_sos_bytes, "analysed", fast=True),
    "png_exif_2_4_mb": Case(exif_probe("png_exif_2_4_mb"), "analysed", fast=True),
    "png_exif_4_8_mb": Case(exif_probe("png_exif_4_8_mb"), "analysed"),
    "webp_exif_2_4_mb": Case(exif_probe("webp_exif_2_4_mb"), "analysed"),
    "png_ifd_65535_entries": Case(exif_probe("png_ifd_65535_entries"), "analysed"),
    "tiff_4000_spanning_tags": Case(exif_probe("tiff_4000_spanning_tags"), "slow to decode"),
    "png_raw_profile_exif": Case(exif_probe("png_raw_profile_exif"), "analysed"),
    "jpeg_exif_segments": Case(exif_probe("jpeg_exif_segments"), "slow to decode", fast=True),
    "live_frame_png_169_mp": Case(live_frame("png_169_mp"), "live frame", fast=True),
    "live_frame_tga": Case(live_frame("tga"), "live frame", fast=True),
    "expensive_flood": Case(expensive_flood, "wait for one to finish"),
    "live_join_flood": Case(live_join_flood, "live joins refused"),
}


# ------------------------------------------------------------------------------------------------ the runner


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ordinary_picture() -> bytes:
    from cbam_viz.demo import shapes

    buffer = io.BytesIO()
    Image.fromarray(shapes.render_sample(13, 3, width=256).image).save(buffer, format="PNG")
    return buffer.getvalue()


def run_probes(url: str, server_pid: int, names: list[str]) -> list[Row]:
    """Every named probe in turn, each with an ordinary analysis from 127.0.0.1 sent 0.1 s after it starts."""
    neighbour = Visitor(url)
    status, picture = neighbour.upload("ordinary.png", ordinary_picture())
    if status != 200:
        raise RuntimeError(f"the ordinary picture was refused: {status} {picture}")
    if neighbour.analyse(picture)[1] != "analysed":  # warm: the first analysis of a process pays one-time costs
        raise RuntimeError("the ordinary analysis failed before any probe ran")
    rows = []
    for number, name in enumerate(names, start=2):
        case = PROBES[name]
        visitor = Visitor(url, f"127.0.0.{number}")
        before = rss_mb(server_pid)
        alongside: dict[str, object] = {}

        def ordinary(case: Case = case, alongside: dict = alongside) -> None:
            time.sleep(0.1)
            started = time.perf_counter()
            alongside["answer"] = neighbour.analyse(picture)[1]
            alongside["seconds"] = time.perf_counter() - started

        thread = threading.Thread(target=ordinary, daemon=True)
        if case.alongside:
            thread.start()
        started = time.perf_counter()
        try:
            status, answer = case.probe(visitor, picture)
        except (OSError, http.client.HTTPException) as error:
            status, answer = 0, f"connection failed: {type(error).__name__}: {error}"
        seconds = time.perf_counter() - started
        if case.alongside:
            thread.join(TIMEOUT_S)
        text = f"{status} {answer}"
        row = Row(
            name,
            shorten(text),
            seconds,
            before,
            rss_mb(server_pid),
            alongside.get("seconds") if case.alongside else None,  # type: ignore[arg-type]
            str(alongside.get("answer", "")),
            case.expected,
            load=os.getloadavg()[0],
        )
        row.ok = case.expected in text and "\n" not in answer and "object at 0x" not in answer and "/tmp" not in answer
        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        f"{os.cpu_count()} CPU cores; load average after each probe in the last column",
        "",
        "| probe | answer | time | server RSS before → after | ordinary analysis alongside | load |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.alongside_s is None:
            alongside = "not sent (the probe fills the queue)"
        else:
            verdict = "yes" if row.alongside_ok else "**no**"
            alongside = f"{verdict}, {row.alongside_s:.2f} s" + (
                "" if row.alongside_answer == "analysed" else f" ({shorten(row.alongside_answer, 40)})"
            )
        mark = "" if row.ok else " **(unexpected)**"
        lines.append(
            f"| `{row.probe}` | {row.answer}{mark} | {row.seconds:.2f} s | "
            f"{row.rss_before_mb:.0f} → {row.rss_after_mb:.0f} MB | {alongside} | {row.load:.1f} |"
        )
    return "\n".join(lines)


@contextmanager
def launched(queue_size: int, startup_s: float = 180.0) -> Iterator[tuple[str, int]]:
    """``python app.py --weights demo`` in a subprocess, with its own temporary folder: -> (url, pid)."""
    port = free_port()
    folder = tempfile.mkdtemp(prefix="cbam_viz-hostile-")
    env = {**os.environ, "CBAM_VIZ_TEMP": folder}
    command = [sys.executable, str(REPO / "app.py"), "--weights", "demo", "--offline", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--queue-size", str(queue_size)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the app exited: {server.stderr.read().decode()[-1000:]}")
            try:
                if Visitor(url).request("GET", "/gradio_api/info")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not start in time")
            time.sleep(0.5)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--fast", action="store_true", help="only the quick subset")
    parser.add_argument("--probe", action="append", choices=sorted(PROBES), help="run only these (repeatable)")
    parser.add_argument("--url", help="probe an app already running here instead (needs --pid)")
    parser.add_argument("--pid", type=int, help="the process id of the app at --url (for its memory)")
    parser.add_argument("--queue-size", type=int, default=8, help="the launched app's queue (default 8)")
    args = parser.parse_args(argv)
    names = args.probe or [name for name, case in PROBES.items() if case.fast or not args.fast]
    if args.url:
        if args.pid is None:
            parser.error("--url needs --pid")
        rows = run_probes(args.url, args.pid, names)
    else:
        with launched(args.queue_size) as (url, pid):
            rows = run_probes(url, pid, names)
    print(table(rows))
    failed = [row.probe for row in rows if not row.ok or row.alongside_ok is False]
    if failed:
        print(f"\nnot as expected: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
