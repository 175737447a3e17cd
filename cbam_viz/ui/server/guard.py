"""The gate in front of Gradio's routes: one door into the queue, bounded requests, fair shares, clean 4xx answers.

One ASGI middleware, given to Gradio's FastAPI app through ``launch(app_kwargs=...)``, so that it runs before any
route reads a byte. Every refusal is a one-line JSON ``detail`` the client can show:

- one door: ``/gradio_api/run/*`` and ``/gradio_api/api/*`` run an event outside the queue (its concurrency limits,
  its size cap, "photo mode first"), so they answer 404 for every queued event (only the page's instant toggles,
  declared ``queue=False``, stay there); ``/gradio_api/openapi.json`` is off;
- who the client is: the TCP peer, or what a trusted proxy says (``proxies.TrustedProxies``); the ``X-Forwarded-*``
  headers of anyone else are dropped, and Gradio sees the resolved address;
- a non-upload request body larger than ``MAX_BODY_BYTES`` is refused with 413 before it is read whole, a body the
  client stopped sending before its end is dropped (never processed), and a JSON body must be strict JSON (no NaN or
  Infinity) nested at most ``MAX_JSON_DEPTH`` deep, with an integer ``fn_index`` the app has and a ``session_hash``
  of at most 64 letters, digits, '-' or '_';
- uploads count against ``UPLOAD_BYTES_PER_MINUTE`` and ``UPLOAD_FILES_PER_MINUTE`` per client over a sliding
  minute, chunked ones (no Content-Length) as they arrive, and one request carries at most ``MAX_FILES_PER_UPLOAD``;
- a live (webcam) frame is refused in one line before Gradio opens it with Pillow unless it is a JPEG, PNG or WebP
  of at most 4 megapixels (``imaging.headers.live_frame_problem``);
- fair shares: a client has at most ``EXPENSIVE_PER_CLIENT`` expensive jobs (Score-CAM, ROAD, sanity checks,
  deletion/insertion curves, sweeps) and ``LIVE_PER_CLIENT`` live streams waiting or running; a Score-CAM or ROAD
  analysis joins its twin event (``EXPENSIVE_TWIN``) in the ``expensive`` concurrency group, beside photo mode's;
- a URL Gradio built from the request's ``Host`` is made relative (``CachePaths.hiding``); a malformed Host is a 400;
- Gradio's "Queue is full. Max size is ..." becomes "The app is busy (N waiting): try again in a few seconds", an
  event stream's error that Gradio left without a message says what to fix, and a refused choice is quoted in at
  most ``QUOTE_CHARS`` characters;
- no answer shows the server's cache folder (``CachePaths``: a placeholder in answers, the real path in requests);
- every answer carries ``X-Content-Type-Options: nosniff`` and ``frame-ancestors 'self'``;
- ``/healthz`` answers ``{"detail": "ok"}`` at once, whatever the queue holds (a proxy's health check).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from cbam_viz.imaging.headers import LIVE_FRAME_BYTES, live_frame_problem
from cbam_viz.ui.server.proxies import TrustedProxies

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 4_000_000  # a JSON call with a pasted picture of about 3 MB; larger pictures are uploaded
UPLOAD_BYTES_PER_MINUTE = 60_000_000  # per client address: a class uploading photos, not a flood of 24 MB files
UPLOAD_FILES_PER_MINUTE = 60  # per client address: a picture a second, not 20 000 files in ten seconds
MAX_FILES_PER_UPLOAD = 4  # the page and gradio_client send one picture per request
MAX_JSON_DEPTH = 32  # a call's data is a few lists and objects deep
MAX_SESSION_HASH = 64
EXPENSIVE_PER_CLIENT = 3  # expensive jobs one client may have waiting or running: one running, two waiting
LIVE_PER_CLIENT = 3  # live streams one client address may have waiting or running (a class behind one NAT address
# shares it: the app streams 2 webcams at once on a CPU anyway)
EXPENSIVE_APIS = frozenset({"sanity", "deletion_insertion", "sweep"})
EXPENSIVE_TWIN = "_expensive"  # an analysis's twin event in the expensive group: "analyze" -> "analyze_expensive"
ANALYSIS_APIS = frozenset({"analyze", "analyze_on_change"})  # expensive with Score-CAM or ROAD (faithfulness)
FAITHFULNESS_INDEX = 8  # position of the faithfulness (ROAD) checkbox in an analysis call's data
LIVE_APIS = frozenset({"live"})
QUOTE_CHARS = 100  # of a refused value, in an answer or a log line
DISCARD_CAP = 128_000_000  # a refused body is read and dropped up to this size, so that the client sees the 413
UPLOAD_PATH = "/gradio_api/upload"
JOIN_PATHS = ("/gradio_api/queue/join", "/gradio_api/call/")
DIRECT_PATHS = ("/gradio_api/run/", "/gradio_api/api/")  # the routes that would run an event outside the queue
LIVE_FRAME_PATH = "/gradio_api/stream/"  # where a streaming input (the webcam) sends each frame
HEALTH_PATH = "/healthz"  # a replica's health check (deploy/nginx.conf)
CLOSED_PATHS = ("/gradio_api/openapi.json", "/openapi.json", "/docs", "/redoc")
_QUEUE_FULL = re.compile(rb"Queue is full\. Max size is \d+ and size is (\d+)\.")
STREAM_PATHS = ("/gradio_api/call/", "/gradio_api/queue/data")  # the event streams a client reads results from
_NAMELESS_ERROR = re.compile(rb'"error":\s*null')
_CHOICE_ERROR = re.compile(r"Value: (.*?)(?: \(type: <class '[^']*'>\))? is not in the list of choices: (.*)", re.S)
_SESSION_HASH = re.compile(rb"[A-Za-z0-9_-]{1,%d}" % MAX_SESSION_HASH)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
MALFORMED_CALL = "the call does not match this endpoint's parameters: /gradio_api/info lists them"
SESSION_HASH_RULE = f"session_hash must be 1 to {MAX_SESSION_HASH} letters, digits, '-' or '_'"
SPACES_FRAME = "https://huggingface.co"  # a Space's page embeds the app in an iframe


def security_headers(on_spaces: bool | None = None) -> tuple[tuple[bytes, bytes], ...]:
    """``nosniff``, and who may frame the page: only itself, and on Hugging Face Spaces (``SPACE_ID`` set) also the
    Space's own page (X-Frame-Options cannot name another site, so it is left out there)."""
    on_spaces = bool(os.environ.get("SPACE_ID")) if on_spaces is None else on_spaces
    ancestors = f"frame-ancestors 'self' {SPACES_FRAME}" if on_spaces else "frame-ancestors 'self'"
    headers = [(b"x-content-type-options", b"nosniff"), (b"content-security-policy", ancestors.encode())]
    return tuple(headers if on_spaces else [*headers, (b"x-frame-options", b"SAMEORIGIN")])


_FORWARDED = (b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port", b"forwarded")


_PLAIN_HOST = re.compile(rb"[A-Za-z0-9.:\[\]_-]{1,255}")  # a Host Gradio could have put into a URL as it is


class Refused(Exception):
    """A request the guard answers itself: HTTP ``status`` and a one-line ``detail``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def busy_message(waiting: int) -> str:
    """The one line a visitor gets when the server is too busy to take the request."""
    return f"The app is busy ({waiting} waiting): try again in a few seconds"


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """A visitor's value for an answer or a log line: one line, at most ``limit`` characters, no object reprs."""
    words = " ".join(str(value).split())
    return repr(words if len(words) <= limit else words[: limit - 1] + "…")


def choice_refusal(message: str) -> str | None:
    """Gradio's "Value: 'AAAA…' (type: <class 'str'>) is not in the list of choices: [...]" as one short line."""
    found = _CHOICE_ERROR.fullmatch(message.strip())
    if found is None:
        return None
    value = found.group(1).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return f"{quoted(value)} is not one of the choices: {quoted(found.group(2), 2 * QUOTE_CHARS)[1:-1]}"


class UploadBudget:
    """Bytes uploaded per client address over the last ``window_s`` seconds (thread-safe, pruned as it goes)."""

    def __init__(self, per_window: int = UPLOAD_BYTES_PER_MINUTE, window_s: float = 60.0) -> None:
        self.per_window, self.window_s = per_window, window_s
        self._seen: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def spend(self, client: str, size: int, now: float | None = None) -> bool:
        """Record ``size`` bytes for ``client``; False (and nothing recorded) when that would pass the budget."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for address in [address for address, seen in self._seen.items() if seen and seen[-1][0] < now - 600]:
                del self._seen[address]  # clients gone for ten minutes take no memory
            seen = self._seen.setdefault(client, deque())
            while seen and seen[0][0] <= now - self.window_s:
                seen.popleft()
            if sum(spent for _, spent in seen) + size > self.per_window:
                return False
            seen.append((now, size))
            return True


class Guard:
    """The ASGI middleware (see the module docstring).

    ``fn_ids`` says which fn_index values exist; ``functions`` (fn_index -> Gradio's BlockFunction: ``api_name``,
    ``queue``) and ``events`` (the queue's events: ``fn``, ``request``, ``data``, ``closed``) let the guard close the
    direct routes and count a client's jobs; without them every direct call is refused and nothing is counted."""

    def __init__(
        self,
        app: App,
        *,
        fn_ids: Callable[[], Iterable[int]],
        functions: Callable[[], Mapping[int, Any]] | None = None,
        events: Callable[[], Iterable[Any]] | None = None,
        max_body: int = MAX_BODY_BYTES,
        budget: UploadBudget | None = None,
        file_budget: UploadBudget | None = None,
        proxies: TrustedProxies | None = None,
        expensive_per_client: int = EXPENSIVE_PER_CLIENT,
        live_per_client: int = LIVE_PER_CLIENT,
        cache_root: str | None = None,
    ) -> None:
        self.app, self.fn_ids, self.max_body = app, fn_ids, max_body
        self.functions, self.events = functions, events
        self.budget = budget or UploadBudget()
        self.file_budget = file_budget or UploadBudget(per_window=UPLOAD_FILES_PER_MINUTE)
        self.proxies = proxies or TrustedProxies()
        self.caps = {"expensive": expensive_per_client, "live": live_per_client}
        self._joining: Counter[tuple[str, str]] = Counter()  # (client, cost) of joins the queue has not taken yet
        self.paths = CachePaths(cache_root) if cache_root else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope = self._resolve_client(scope)
        if scope["type"] == "http":
            send = _with_security_headers(send)
            if self.paths is not None:
                host = next((value for name, value in scope.get("headers", []) if name == b"host"), None)
                server = scope.get("server") or ("localhost", None)
                own = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
                scope, send = self.paths.reveal_path(scope), self.paths.hiding(send, host, own.encode())
        try:
            if scope["type"] == "http":
                await self._http(scope, receive, send)
            else:
                _check_session_hashes(scope, None)
                await self.app(scope, receive, send)
        except Refused as refused:
            if scope["type"] == "http":
                await _answer(send, refused.status, refused.detail)

    def _resolve_client(self, scope: Scope) -> Scope:
        """The scope with the visitor's own address as ``client``, and no forwarded headers from an untrusted peer."""
        peer, port = scope.get("client") or ("unknown", 0)
        headers = scope.get("headers", [])
        forwarded = b",".join(value for name, value in headers if name == b"x-forwarded-for").decode("latin-1")
        if self.proxies.trusts(peer):
            return {**scope, "client": (self.proxies.client(peer, forwarded), port)}
        kept = [(name, value) for name, value in headers if name not in _FORWARDED]
        return {**scope, "client": (peer, port), "headers": kept}

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope.get("path", ""), scope.get("method")
        _check_session_hashes(scope, None)
        host = next((value for name, value in scope.get("headers", []) if name == b"host"), None)
        if host is not None and not _PLAIN_HOST.fullmatch(host):
            raise Refused(400, "Bad Host header: a host name or address, and a port")
        if path.rstrip("/") in CLOSED_PATHS:
            raise Refused(404, "Not Found")
        if path == HEALTH_PATH and method in ("GET", "HEAD"):
            await _answer(send, 200, "ok")  # answered here, off the analysis threads: a busy replica is alive
            return
        if method == "GET" and path.startswith(STREAM_PATHS):
            await self.app(scope, receive, _stream_rewriter(send))
            return
        if method not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        client = scope["client"][0]
        if path.rstrip("/") == UPLOAD_PATH:
            await self._upload(scope, receive, send, client)
            return
        await self._call(scope, receive, send, client)

    async def _call(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        """A POST with a body to read whole and check before any route sees it (joins, calls, the direct routes)."""
        path = scope.get("path", "")
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            await _discard(receive)  # read, never kept: the client then reads the answer instead of a reset
            raise Refused(413, _too_large(self.max_body))
        body = await _read_body(receive, self.max_body)
        if body is None:
            return  # the client stopped before the end of its body: nothing to answer, nothing to run
        if isinstance(body, Refused):
            await _discard(receive)
            raise body
        payload = _json_payload(scope, body)
        if isinstance(payload, dict):
            _check_session_hashes(scope, payload)
        fn = self._function(path, payload)
        if self.paths is not None:
            body = self.paths.reveal(body)
        if path.startswith(DIRECT_PATHS):
            self._check_direct(path, fn)
        cost = self._cost(fn, payload) if _is_join(path) else None
        if (cost == "live" or path.startswith(LIVE_FRAME_PATH)) and isinstance(payload, dict):
            _check_live_frames(payload.get("data"), self.paths)
        if cost is not None:
            self._check_share(client, cost)
            self._joining[(client, cost)] += 1
        if cost == "expensive" and getattr(fn, "api_name", None) in ANALYSIS_APIS:
            scope, body = self._to_twin(scope, body, fn.api_name)
        try:
            await self.app(scope, _replay(body), _busy_rewriter(send) if path.startswith(JOIN_PATHS) else send)
        finally:
            if cost is not None:
                self._joining[(client, cost)] -= 1
                if self._joining[(client, cost)] <= 0:
                    del self._joining[(client, cost)]

    def _to_twin(self, scope: Scope, body: bytes, name: str) -> tuple[Scope, bytes]:
        """A Score-CAM or ROAD analysis joining the queue goes to its twin event in the expensive group, so it never
        holds photo mode's slot: by its ``fn_index`` (the page, gradio_client), or by the api name in a REST
        ``/call/<api>`` path (Gradio's ``/call/<api>/<event_id>`` stream answers any event id, so the caller reads
        its result where it asked)."""
        twin_name = name + EXPENSIVE_TWIN
        payload = json.loads(body)
        if isinstance(payload, dict) and payload.get("fn_index") is not None:
            twin = next(
                (index for index, fn in self.functions().items() if getattr(fn, "api_name", None) == twin_name), None
            )
            return scope, body if twin is None else json.dumps({**payload, "fn_index": twin}).encode()
        path = scope["path"]
        for prefix in ("/gradio_api/call/v2/", JOIN_PATHS[1]):
            if path.startswith(prefix) and path[len(prefix) :].strip("/") == name:
                twin_path = prefix + twin_name
                return {**scope, "path": twin_path, "raw_path": twin_path.encode()}, body
        return scope, body

    def _function(self, path: str, payload: Any) -> Any:
        """The event a call names (by ``fn_index``, or by the api name in its path), checked; None when unnamed."""
        index = payload.get("fn_index") if isinstance(payload, dict) else None
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int):
                raise Refused(422, f"fn_index must be a whole number, not {quoted(index, 40)}")
            if index not in set(self.fn_ids()):
                raise Refused(404, f"unknown fn_index {index}: /gradio_api/info lists the endpoints")
            return (self.functions() if self.functions else {}).get(index)
        for prefix in (*DIRECT_PATHS, "/gradio_api/call/v2/", JOIN_PATHS[1]):
            if path.startswith(prefix):
                name = path[len(prefix) :].strip("/")
                if name == "predict" and prefix in DIRECT_PATHS:
                    return None
                if "/" in name:
                    return None  # /call/<api>/<event_id> and the like: Gradio's own routes
                if self.functions is None:
                    return None
                for fn in self.functions().values():
                    if getattr(fn, "api_name", None) == name:
                        return fn
                raise Refused(404, f"unknown api name {quoted(name, 60)}: /gradio_api/info lists the endpoints")
        return None

    def _check_direct(self, path: str, fn: Any) -> None:
        """One door: an event that has a queue runs only through it (Gradio's ``api_open=False``, in one line);
        the instant toggles the page declares ``queue=False`` stay on the direct route, as the page calls them."""
        if fn is None or getattr(fn, "queue", True) is not False:
            raise Refused(404, "this endpoint runs only through the queue: use gradio_client or /gradio_api/call/<api>")

    def _cost(self, fn: Any, payload: Any) -> str | None:
        """ "expensive", "live" or None (an ordinary call) for a join's event."""
        name = getattr(fn, "api_name", None)
        data = payload.get("data") if isinstance(payload, dict) else None
        if name in LIVE_APIS:
            return "live"
        if name in EXPENSIVE_APIS or (isinstance(name, str) and name.endswith(EXPENSIVE_TWIN)):
            return "expensive"
        if name in ANALYSIS_APIS and _is_expensive_analysis(data):
            return "expensive"
        return None

    def _check_share(self, client: str, cost: str) -> None:
        held = self._joining[(client, cost)]
        for event in self.events() if self.events else ():
            if getattr(event, "closed", False) or _event_client(event) != client:
                continue
            data = getattr(getattr(event, "data", None), "data", None)
            if self._cost(getattr(event, "fn", None), {"data": data}) == cost:
                held += 1
        if held >= self.caps[cost]:
            what = "expensive analyses" if cost == "expensive" else "live streams"
            raise Refused(429, f"you already have {held} {what} waiting or running: wait for one to finish")

    async def _upload(self, scope: Scope, receive: Receive, send: Send, client: str) -> None:
        """Gradio's upload route, with the client's bytes and files counted as they arrive (chunked bodies too)."""
        length = _content_length(scope)
        if length is not None and not self.budget.spend(client, length):
            await _discard(receive)
            raise Refused(429, "too many uploads, wait a minute")
        meter = _UploadMeter(self, client, _boundary(scope), charge_bytes=length is None)

        async def counted() -> Message:
            if meter.refusal:
                return {"type": "http.disconnect"}
            message = await receive()
            meter.refusal = meter.refusal or meter.check(message)
            if meter.refusal is None:
                return message
            if message.get("more_body", False):
                await _discard(receive)
            return {"type": "http.disconnect"}

        async def answered(message: Message) -> None:
            if meter.refusal is None:
                await send(message)

        try:
            await self.app(scope, counted, answered)
        except Exception:
            if meter.refusal is None:
                raise
        if meter.refusal is not None and meter.refusal.status != 400:
            raise meter.refusal


class _UploadMeter:
    """One upload's bytes (when it has no Content-Length) and files, charged to its client as they arrive."""

    def __init__(self, guard: Guard, client: str, boundary: bytes | None, *, charge_bytes: bool) -> None:
        self.guard, self.client, self.charge_bytes = guard, client, charge_bytes
        self.parts = _PartCounter(boundary)
        self.uncharged = 0
        self.refusal: Refused | None = None

    def check(self, message: Message) -> Refused | None:
        if message["type"] == "http.disconnect":
            return Refused(400, "the upload stopped before its end")  # nobody left to answer: dropped
        chunk = message.get("body", b"")
        self.uncharged += len(chunk) if self.charge_bytes else 0
        if self.uncharged and (self.uncharged >= 1_000_000 or not message.get("more_body", False)):
            spent, self.uncharged = self.uncharged, 0
            if not self.guard.budget.spend(self.client, spent):
                return Refused(429, "too many uploads, wait a minute")
        for _ in range(self.parts.feed(chunk)):
            if self.parts.parts > MAX_FILES_PER_UPLOAD:
                return Refused(413, f"at most {MAX_FILES_PER_UPLOAD} files in one upload")
            if not self.guard.file_budget.spend(self.client, 1):
                return Refused(429, "too many files uploaded, wait a minute")
        return None


class CachePaths:
    """The server's cache folder, never shown: answers say ``PLACEHOLDER/...`` where Gradio wrote the absolute path
    of a cached file (upload answers, the page's config, file URLs, event streams), and requests that quote the
    placeholder (a file URL, a file handed back in a call) get the real path back before Gradio reads them."""

    PLACEHOLDER = "@cache"
    _TEXT_TYPES = (b"application/json", b"text/html", b"text/event-stream", b"text/plain", b"application/javascript")

    def __init__(self, root: str) -> None:
        roots = {root.rstrip("/"), os.path.realpath(root).rstrip("/")}
        self.roots = sorted((item.encode() + b"/" for item in roots if item), key=len, reverse=True)
        self.real = root.rstrip("/").encode() + b"/"
        self.shown = self.PLACEHOLDER.encode() + b"/"

    def hide(self, data: bytes, origins: tuple[bytes, ...] = (), own: bytes = b"") -> bytes:
        for root in self.roots:
            data = data.replace(root, self.shown)
        for origin in origins:  # "http://<Host>/gradio_api/file=..." -> "/gradio_api/file=..."
            # The config's "root" stays absolute: Gradio's page builds every call on it (``new URL(root)``), and an
            # empty root made it post to its own URL, query string included (a lesson link broke).
            data = re.sub(rb'(?<!"root":)(?<!"root": )"' + re.escape(origin), b'"', data)
            data = re.sub(
                rb'(?<!"root":)(?<!"root": )(?<!")' + re.escape(origin), origin.partition(b"//")[0] + b"//" + own, data
            )  # the API page's code examples
        return data

    def reveal(self, data: bytes) -> bytes:
        return data.replace(b'"' + self.shown, b'"' + self.real).replace(b"file=" + self.shown, b"file=" + self.real)

    def reveal_path(self, scope: Scope) -> Scope:
        path = scope.get("path", "")
        marker = "file=" + self.PLACEHOLDER + "/"
        if marker not in path:
            return scope
        real = path.replace(marker, "file=" + self.real.decode())
        return {**scope, "path": real, "raw_path": real.encode()}

    def hiding(self, send: Send, host: bytes | None = None, own: bytes = b"localhost") -> Send:
        """``send`` with the cache folder hidden in every text answer (a whole answer is held to fix its length), and
        URLs that Gradio built from the request's ``Host`` (any visitor may send any Host) made relative: the page's
        client resolves a relative root against its own address; the API page's code examples name ``own``, the
        address the server was reached at."""
        origins = (b"http://" + host, b"https://" + host) if host and _PLAIN_HOST.fullmatch(host) else ()
        state: dict[str, Any] = {"start": None, "parts": [], "text": False}

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                state["text"] = headers.get(b"content-type", b"").startswith(self._TEXT_TYPES)
                if state["text"] and b"content-length" in headers:
                    state["start"] = message  # held until the body is whole
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or not state["text"]:
                await send(message)
                return
            if state["start"] is None:  # a stream: each chunk on its own
                await send({**message, "body": self.hide(message.get("body", b""), origins, own)})
                return
            state["parts"].append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = self.hide(b"".join(state["parts"]), origins, own)
            start = state["start"]
            headers = [(name, value) for name, value in start.get("headers", []) if name != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return wrapped


class _PartCounter:
    """Counts the parts of a multipart body as its chunks go by (a delimiter may be split between two chunks):
    a part is complete when the next delimiter (or the closing one) arrives."""

    def __init__(self, boundary: bytes | None) -> None:
        self.delimiter = b"--" + boundary if boundary else None
        self.tail, self.seen = b"", 0

    @property
    def parts(self) -> int:
        return max(0, self.seen - 1)

    def feed(self, chunk: bytes) -> int:
        """-> how many parts ``chunk`` completed."""
        if self.delimiter is None:
            return 0
        before = self.parts
        window = self.tail + chunk
        self.seen += window.count(self.delimiter)
        self.tail = window[-(len(self.delimiter) - 1) :]
        return self.parts - before


def _check_live_frames(data: Any, paths: CachePaths | None) -> None:
    """Refuse a webcam frame Gradio would open with Pillow (any of its formats, any size) before it does: a frame is
    a JPEG, PNG or WebP of at most ``headers.LIVE_FRAME_PIXELS``, read from its header (a data URL, or a cached
    upload)."""
    for value in data if isinstance(data, list) else []:
        if not isinstance(value, dict):
            continue
        url, where = value.get("url"), value.get("path")
        if isinstance(url, str) and url.startswith("data:"):
            encoded = url.partition(",")[2]
            try:
                frame = base64.b64decode(encoded[: (LIVE_FRAME_BYTES * 4 // 3) + 8], validate=False)
            except (ValueError, binascii.Error):
                frame = b""
        elif isinstance(where, str) and where:
            real = paths.reveal(b'"' + where.encode() + b'"')[1:-1].decode() if paths else where
            frame = _cached_head(real)
        else:
            continue
        problem = live_frame_problem(frame)
        if problem is not None:
            raise Refused(413, problem)


def _cached_head(path: str) -> bytes:
    """The first bytes of a cached upload (never through a symlink), enough for its header checks."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return b""
        with open(path, "rb") as handle:
            return handle.read(LIVE_FRAME_BYTES + 1)
    except OSError:
        return b""


def _is_join(path: str) -> bool:
    """Whether a POST to ``path`` puts an event in the queue (the page's join, or the REST API's call)."""
    if path.rstrip("/") == JOIN_PATHS[0]:
        return True
    name = path.removeprefix("/gradio_api/call/v2/") if path.startswith("/gradio_api/call/v2/") else None
    name = name if name is not None else path.removeprefix(JOIN_PATHS[1]) if path.startswith(JOIN_PATHS[1]) else None
    return name is not None and "/" not in name.strip("/")


def _boundary(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"content-type" and b"boundary=" in value:
            boundary = value.split(b"boundary=", 1)[1].split(b";", 1)[0].strip().strip(b'"')
            return boundary[:200] or None
    return None


def _is_expensive_analysis(data: Any) -> bool:
    values = list(data.values()) if isinstance(data, dict) else data if isinstance(data, list) else []
    if any(isinstance(value, str) and value.strip().lower() == "scorecam" for value in values):
        return True
    if isinstance(data, dict):
        return data.get("faithfulness") is True
    return len(values) > FAITHFULNESS_INDEX and values[FAITHFULNESS_INDEX] is True


def _event_client(event: Any) -> str | None:
    client = getattr(getattr(event, "request", None), "client", None)
    return getattr(client, "host", None)


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit // 1_000_000} MB"


def _check_session_hashes(scope: Scope, payload: dict | None) -> None:
    """Refuse a session hash (or upload id) that is long or odd: each becomes a key Gradio keeps for a while."""
    values: list[Any] = []
    if payload is None:
        query = scope.get("query_string", b"")
        if query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            values += [value for key, value in pairs if key in ("session_hash", "upload_id")]
        path = scope.get("path", "")
        if path.startswith("/gradio_api/heartbeat/"):
            values.append(path[len("/gradio_api/heartbeat/") :].strip("/"))
    elif "session_hash" in payload and payload["session_hash"] is not None:
        values.append(payload["session_hash"])
    for value in values:
        if not isinstance(value, str) or not _SESSION_HASH.fullmatch(value.encode("utf-8", "replace")):
            raise Refused(400, SESSION_HASH_RULE)


def _json_payload(scope: Scope, body: bytes) -> Any:
    """The body as strict JSON when it is JSON (None otherwise); ``Refused`` 400 for NaN, Infinity, deep nesting
    or a body that is not JSON at all."""
    kind = next((value for name, value in scope.get("headers", []) if name == b"content-type"), b"")
    if not body.strip() or (kind and not kind.startswith(b"application/json")):
        return None
    if _nesting(body) > MAX_JSON_DEPTH:
        raise Refused(400, f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except Refused:
        raise
    except (ValueError, RecursionError):
        raise Refused(400, "the request body is not valid JSON") from None


def _nesting(body: bytes) -> int:
    """How deep the body's lists and objects nest, read without parsing (strings' contents skipped)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets, dtype=np.uint8)
    return int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)).max())


def _no_constant(name: str) -> Any:
    raise Refused(400, f"{name} is not a JSON number: send a finite number")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise Refused(400, f"{quoted(text, 30)} is too large for a number: send a finite one")
    return number


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | Refused | None:
    """The whole body; ``Refused`` 413 as soon as it passes ``limit`` (a chunked body has no Content-Length to
    check); None when the client disconnected before its end (a truncated body is never processed)."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return Refused(413, _too_large(limit))
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _discard(receive: Receive, cap: int = DISCARD_CAP) -> None:
    """Drop the rest of a refused body, up to ``cap`` bytes (past that the connection is simply closed)."""
    size = 0
    while size <= cap:
        message = await receive()
        size += len(message.get("body", b""))
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _busy_rewriter(send: Send) -> Send:
    """Gradio's 503 "Queue is full" answer, reworded with a "try again" (its length changes: headers follow)."""
    held: Message | None = None
    parts: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message.get("status") == 503:
            held = message
            return
        if held is not None and message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            start, held = held, None
            body = b"".join(parts)
            found = _QUEUE_FULL.search(body)
            if found:
                body = json.dumps({"detail": busy_message(int(found.group(1)))}).encode()
            headers = [(name, value) for name, value in start.get("headers", []) if name != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return wrapped


def _stream_rewriter(send: Send) -> Send:
    """An event stream's messages, each made fit to show: an error without a message (Gradio's own refusal of a
    malformed call, hidden because ``show_error`` is off) says what to fix, and a refused choice is quoted short."""

    async def wrapped(message: Message) -> None:
        body = message.get("body", b"") if message["type"] == "http.response.body" else b""
        if b'"error"' in body or b"is not in the list of choices" in body:
            body = _NAMELESS_ERROR.sub(b'"error": ' + json.dumps(MALFORMED_CALL).encode(), body)
            message = {**message, "body": _shorten_choice_errors(body)}
        await send(message)

    return wrapped


def _shorten_choice_errors(body: bytes) -> bytes:
    """Each ``data: {...}`` line of an event stream whose message is Gradio's choice refusal, rewritten short."""
    if b"is not in the list of choices" not in body:
        return body
    lines = body.split(b"\n")
    for number, line in enumerate(lines):
        if not line.startswith(b"data:") or b"is not in the list of choices" not in line:
            continue
        try:
            event = json.loads(line[5:])
        except ValueError:
            continue
        for key in ("output", None):
            holder = event.get(key) if key else event
            if not isinstance(holder, dict):
                continue
            for field in ("error", "message", "title"):
                if isinstance(holder.get(field), str) and (short := choice_refusal(holder[field])):
                    holder[field] = short
        lines[number] = b"data: " + json.dumps(event).encode()
    return b"\n".join(lines)


def _with_security_headers(send: Send) -> Send:
    extra = security_headers()

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [(name, value) for name, value in extra if name not in present]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def app_kwargs(blocks: Any, *, proxies: TrustedProxies | None = None, **options: Any) -> dict[str, Any]:
    """``launch(app_kwargs=...)`` that puts the guard in front of ``blocks``' routes."""
    from gradio.utils import get_upload_folder
    from starlette.middleware import Middleware

    def events() -> Iterable[Any]:
        queue = getattr(blocks, "_queue", None)
        return list(getattr(queue, "event_ids_to_events", {}).values())

    return {
        "middleware": [
            Middleware(
                Guard,
                fn_ids=lambda: blocks.fns.keys(),
                functions=lambda: blocks.fns,
                events=events,
                proxies=proxies,
                cache_root=options.pop("cache_root", get_upload_folder()),
                **options,
            )
        ]
    }


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
