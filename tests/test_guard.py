"""The guard in front of Gradio's routes (``cbam_viz.ui.server.guard``): raw HTTP against the real app, and the ASGI
middleware alone with a stand-in app where a real queue would have to be filled first."""

from __future__ import annotations

import asyncio
import http.client
import json
from urllib.parse import urlsplit

import pytest

from cbam_viz.ui.server import guard


def post(url: str, path: str, body: bytes, headers: dict[str, str] | None = None, chunked: bool = False):
    """-> (status, detail) of one raw POST; ``chunked`` sends the body without a Content-Length."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        head = {"Content-Type": "application/json", **(headers or {})}
        if chunked:
            connection.request(
                "POST",
                path,
                body=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
                headers=head,
                encode_chunked=True,
            )
        else:
            connection.request("POST", path, body=body, headers=head)
        answer = connection.getresponse()
        payload = json.loads(answer.read() or b"{}")
        return answer.status, payload.get("detail") if isinstance(payload, dict) else payload
    finally:
        connection.close()


def test_an_unknown_fn_index_is_a_404_with_one_line(app_url: str) -> None:
    status, detail = post(
        app_url, "/gradio_api/queue/join", json.dumps({"data": [], "fn_index": 999, "session_hash": "abc"}).encode()
    )
    assert status == 404 and detail == "unknown fn_index 999: /gradio_api/info lists the endpoints"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_huge_json_body_is_refused_before_it_is_kept(app_url: str, chunked: bool) -> None:
    body = b'{"data": ["' + b"x" * 20_000_000 + b'"], "fn_index": 0, "session_hash": "abc"}'
    status, detail = post(app_url, "/gradio_api/queue/join", body, chunked=chunked)
    assert status == 413 and detail == "the request body is larger than 4 MB"


def test_run_history_and_monitoring_are_off(app_url: str) -> None:
    parts = urlsplit(app_url)
    for path in ("/gradio_api/runs", "/gradio_api/monitoring"):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("GET", path)
        assert connection.getresponse().status == 404, path
        connection.close()


def test_uploads_past_the_budget_wait_a_minute(app_url: str) -> None:
    boundary = "cbamvizboundary"
    picture = b"\x89PNG" + bytes(19_000_000)  # three fit in 60 MB a minute, a fourth does not
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + picture
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    answers = [post(app_url, "/gradio_api/upload", body, headers)[0] for _ in range(4)]
    assert answers[:3] == [200, 200, 200] and answers[3] == 429, answers
    status, detail = post(app_url, "/gradio_api/upload", body, headers)
    assert (status, detail) == (429, "too many uploads, wait a minute")


def test_the_upload_budget_slides_and_forgets() -> None:
    budget = guard.UploadBudget(per_window=100, window_s=60)
    assert budget.spend("a", 60, now=0) and not budget.spend("a", 60, now=10) and budget.spend("b", 60, now=10)
    assert budget.spend("a", 60, now=61)  # the first upload left the window
    budget.spend("c", 1, now=2000)
    assert set(budget._seen) == {"c"}  # clients gone for ten minutes take no memory


def _run(middleware: guard.Guard, path: str, body: bytes) -> tuple[int, bytes]:
    """One request through the middleware alone: -> (status, body) as the client would see them."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", str(len(body)).encode())]}
    asyncio.run(middleware(scope, receive, send))
    start = next(message for message in sent if message["type"] == "http.response.start")
    payload = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    length = dict(start["headers"]).get(b"content-length")
    assert length is None or int(length) == len(payload)
    return start["status"], payload


def test_a_full_queue_says_try_again() -> None:
    seen: list[bytes] = []

    async def full_queue(scope: dict, receive, send) -> None:
        seen.append((await receive())["body"])
        detail = json.dumps({"detail": "Queue is full. Max size is 64 and size is 64."}).encode()
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"60")]})
        await send({"type": "http.response.body", "body": detail[:20], "more_body": True})
        await send({"type": "http.response.body", "body": detail[20:], "more_body": False})

    middleware = guard.Guard(full_queue, fn_ids=lambda: [0, 1])
    body = json.dumps({"data": [], "fn_index": 1, "session_hash": "s"}).encode()
    status, payload = _run(middleware, "/gradio_api/queue/join", body)
    assert status == 503 and json.loads(payload) == {"detail": guard.busy_message(64)}
    assert guard.busy_message(64) == "The app is busy (64 waiting): try again in a few seconds"
    assert seen == [body]  # the app read exactly what the client sent
    status, payload = _run(middleware, "/gradio_api/call/analyze", b'{"data": []}')
    assert status == 503 and b"try again in a few seconds" in payload


def test_a_malformed_call_answers_without_reprs_or_paths(app_url: str) -> None:
    status, _ = post(app_url, "/gradio_api/call/analyze", b'{"data": [1, 2, 3]}')
    assert status == 200
    parts = urlsplit(app_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request(
        "POST", "/gradio_api/call/analyze", body=b'{"data": [1, 2, 3]}', headers={"Content-Type": "application/json"}
    )
    event_id = json.loads(connection.getresponse().read())["event_id"]
    connection.request("GET", f"/gradio_api/call/analyze/{event_id}")
    stream = connection.getresponse().read().decode()
    connection.close()
    assert "event: error" in stream
    assert "object at 0x" not in stream and "/tmp" not in stream and "/work" not in stream, stream
    assert guard.MALFORMED_CALL in stream and '"error": null' not in stream, stream  # it says what to fix
