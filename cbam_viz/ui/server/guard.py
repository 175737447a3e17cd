"""The gate in front of Gradio's routes: bounded request bodies, a per-client upload budget, clean 4xx answers.

One ASGI middleware, given to Gradio's FastAPI app through ``launch(app_kwargs=...)``, so that it runs before any
route reads a byte. It does five things, each a one-line JSON ``detail`` the client can show:

- a non-upload request body larger than ``MAX_BODY_BYTES`` is refused with 413 before it is read whole (a 50 MB
  ``target_class`` never reaches the app; pictures go through ``/gradio_api/upload``, as the browser and
  gradio_client send them);
- uploads count against ``UPLOAD_BYTES_PER_MINUTE`` per client address over a sliding minute; past it, 429 "too many
  uploads, wait a minute";
- a queue join for an ``fn_index`` the app does not have answers 404 (Gradio itself raises a KeyError: HTTP 500);
- Gradio's "Queue is full. Max size is ..." becomes "The app is busy (N waiting): try again in a few seconds";
- an event stream's error that Gradio left without a message (a malformed call) says what to fix.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 4_000_000  # a JSON call with a pasted picture of about 3 MB; larger pictures are uploaded
UPLOAD_BYTES_PER_MINUTE = 60_000_000  # per client address: a class uploading photos, not a flood of 24 MB files
DISCARD_CAP = 128_000_000  # a refused body is read and dropped up to this size, so that the client sees the 413
UPLOAD_PATH = "/gradio_api/upload"
JOIN_PATHS = ("/gradio_api/queue/join", "/gradio_api/call/")
_QUEUE_FULL = re.compile(rb"Queue is full\. Max size is \d+ and size is (\d+)\.")
STREAM_PATHS = ("/gradio_api/call/", "/gradio_api/queue/data")  # the event streams a client reads results from
_NAMELESS_ERROR = re.compile(rb'"error":\s*null')
MALFORMED_CALL = "the call does not match this endpoint's parameters: /gradio_api/info lists them"


def busy_message(waiting: int) -> str:
    """The one line a visitor gets when the server is too busy to take the request."""
    return f"The app is busy ({waiting} waiting): try again in a few seconds"


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
    """The ASGI middleware (see the module docstring). ``fn_ids`` says which fn_index values exist."""

    def __init__(
        self,
        app: App,
        *,
        fn_ids: Callable[[], Iterable[int]],
        max_body: int = MAX_BODY_BYTES,
        budget: UploadBudget | None = None,
    ) -> None:
        self.app, self.fn_ids, self.max_body = app, fn_ids, max_body
        self.budget = budget or UploadBudget()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET" and scope.get("path", "").startswith(STREAM_PATHS):
            await self.app(scope, receive, _nameless_error_rewriter(send))
            return
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        length = _content_length(scope)
        if path.rstrip("/") == UPLOAD_PATH:
            client = (scope.get("client") or ("unknown", 0))[0]
            if length is not None and not self.budget.spend(client, length):
                await _answer(send, 429, "too many uploads, wait a minute")
                return
            await self.app(scope, receive, send)  # Gradio's own max_file_size bounds each file
            return
        body = None if length is not None and length > self.max_body else await _read_body(receive, self.max_body)
        if body is None:
            await _discard(receive)  # read, never kept: the client then reads the answer instead of a reset
            await _answer(send, 413, f"the request body is larger than {self.max_body // 1_000_000} MB")
            return
        if path.rstrip("/") == JOIN_PATHS[0]:
            unknown = _unknown_fn_index(body, set(self.fn_ids()))
            if unknown is not None:
                await _answer(send, 404, f"unknown fn_index {unknown}: /gradio_api/info lists the endpoints")
                return
        joining = path.startswith(JOIN_PATHS)
        await self.app(scope, _replay(body), _busy_rewriter(send) if joining else send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` (a chunked body has no Content-Length to check)."""
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
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


def _unknown_fn_index(body: bytes, known: set[int]) -> Any:
    try:
        payload = json.loads(body)
    except ValueError:
        return None  # Gradio answers malformed JSON with its own 422
    index = payload.get("fn_index") if isinstance(payload, dict) else None
    if index is None or isinstance(index, bool) or not isinstance(index, int):
        return None
    return None if index in known else index


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


def _nameless_error_rewriter(send: Send) -> Send:
    """An event stream's error without a message (Gradio's own refusals of a malformed call, hidden because
    ``show_error`` is off) gets one line that says what to fix; every other event passes untouched."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body" and b'"error"' in message.get("body", b""):
            text = json.dumps(MALFORMED_CALL).encode()
            message = {**message, "body": _NAMELESS_ERROR.sub(b'"error": ' + text, message["body"])}
        await send(message)

    return wrapped


def app_kwargs(blocks: Any, **options: Any) -> dict[str, Any]:
    """``launch(app_kwargs=...)`` that puts the guard in front of ``blocks``' routes."""
    from starlette.middleware import Middleware

    return {"middleware": [Middleware(Guard, fn_ids=lambda: blocks.fns.keys(), **options)]}


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
