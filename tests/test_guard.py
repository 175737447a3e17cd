"""The guard in front of Gradio's routes (``cbam_viz.ui.server.guard``): raw HTTP against the real app, and the ASGI
middleware alone with a stand-in app where a real queue would have to be filled first."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
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


def raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """-> (status, headers, body bytes) of one raw request."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        answer = connection.getresponse()
        return answer.status, {name.lower(): value for name, value in answer.getheaders()}, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize("route", ["/gradio_api/run/analyze", "/gradio_api/api/analyze", "/gradio_api/run/sanity/"])
def test_queued_events_have_one_door(app_url: str, route: str) -> None:
    status, detail = post(app_url, route, json.dumps({"data": [None] * 11}).encode())
    assert status == 404 and "only through the queue" in detail, (status, detail)


def test_direct_routes_and_openapi_answer_404_in_one_line(app_url: str) -> None:
    status, detail = post(app_url, "/gradio_api/run/no_such_api", b'{"data": []}')
    assert status == 404 and detail == "unknown api name 'no_such_api': /gradio_api/info lists the endpoints"
    status, detail = post(app_url, "/gradio_api/run/predict", json.dumps({"data": [], "fn_index": 0}).encode())
    assert status == 404, detail
    status, _, payload = raw(app_url, "GET", "/gradio_api/openapi.json")
    assert status == 404 and b"paths" not in payload


def test_an_instant_toggle_stays_on_its_direct_route(app_url: str) -> None:
    # the page calls its queue=False events (accordion flags) on /run, as Gradio's front end does
    status, _ = post(app_url, "/gradio_api/run/gate_open", json.dumps({"data": [], "session_hash": "t1"}).encode())
    assert status == 200


@pytest.mark.parametrize(
    "body, words",
    [
        (b'{"data": [NaN], "fn_index": 0, "session_hash": "abc"}', "NaN is not a JSON number"),
        (b'{"data": [Infinity], "fn_index": 0, "session_hash": "abc"}', "Infinity is not a JSON number"),
        (b'{"data": [1e400], "fn_index": 0, "session_hash": "abc"}', "too large for a number"),
        (b'{"data": ' + b"[" * 200 + b"]" * 200 + b', "fn_index": 0}', "nested more than 32 levels"),
        (b'{"data": [], "fn_index": "999", "session_hash": "abc"}', "fn_index must be a whole number"),
        (b'{"data": [], "fn_index": 0, "session_hash": "' + b"A" * 3000 + b'"}', "session_hash must be"),
        (b'{"data": [], "fn_index": 0, "session_hash": "a b"}', "session_hash must be"),
        (b'{"data": [1, 2', "not valid JSON"),
    ],
)
def test_malformed_calls_answer_one_line_with_a_4xx(app_url: str, body: bytes, words: str) -> None:
    status, detail = post(app_url, "/gradio_api/queue/join", body)
    assert 400 <= status < 500 and words in detail and "\n" not in detail and len(detail) < 200, (status, detail)


def test_an_unknown_api_name_on_the_rest_api_is_a_404(app_url: str) -> None:
    status, detail = post(app_url, "/gradio_api/call/no_such_api", b'{"data": []}')
    assert status == 404 and detail.startswith("unknown api name 'no_such_api'"), (status, detail)


def test_long_session_hashes_in_queries_and_paths_are_refused(app_url: str) -> None:
    for path in (f"/gradio_api/queue/data?session_hash={'x' * 65}", "/gradio_api/heartbeat/a%20b"):
        status, _, payload = raw(app_url, "GET", path)
        assert status == 400 and json.loads(payload)["detail"] == guard.SESSION_HASH_RULE, path


def test_every_answer_says_nosniff_and_who_may_frame_it(app_url: str) -> None:
    status, headers, _ = raw(app_url, "GET", "/")
    assert status == 200 and headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'self'" in headers["content-security-policy"]


def _multipart(count: int, size: int = 100) -> tuple[bytes, dict[str, str]]:
    boundary = "cbamvizboundary"
    part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG"
        + bytes(size)
        + b"\r\n"
    )
    body = part * count + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_an_upload_carries_a_few_files_at_most(app_url: str) -> None:
    body, headers = _multipart(guard.MAX_FILES_PER_UPLOAD + 1)
    status, detail = post(app_url, "/gradio_api/upload", body, headers)
    assert (status, detail) == (413, f"at most {guard.MAX_FILES_PER_UPLOAD} files in one upload")
    body, headers = _multipart(2)
    status, paths = post(app_url, "/gradio_api/upload", body, headers)
    assert status == 200 and len(paths) == 2


def _through(middleware: guard.Guard, scope: dict, messages: list[dict]) -> tuple[int | None, bytes]:
    """Messages from a client through the middleware alone: -> (status or None when nothing was answered, body)."""
    sent: list[dict] = []
    pending = list(messages)

    async def receive() -> dict:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    starts = [message for message in sent if message["type"] == "http.response.start"]
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return (starts[0]["status"] if starts else None), body


def _consumer(seen: list) -> guard.App:
    """A stand-in app that reads the whole body (as Gradio's routes do), records it, and answers 200."""

    async def app(scope: dict, receive, send) -> None:
        parts = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("client gone")
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen.append((scope, b"".join(parts)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    return app


def _scope(path: str, headers: list | None = None, client: str = "10.0.0.9") -> dict:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [], "client": (client, 5000)}


def test_a_body_that_ends_early_is_dropped_not_processed() -> None:
    seen: list = []
    middleware = guard.Guard(_consumer(seen), fn_ids=lambda: [0])
    body = json.dumps({"data": [], "fn_index": 0, "session_hash": "abc"}).encode()
    messages = [{"type": "http.request", "body": body[:-1], "more_body": True}, {"type": "http.disconnect"}]
    status, _ = _through(
        middleware, _scope("/gradio_api/queue/join", [(b"content-length", b"%d" % len(body))]), messages
    )
    assert status is None and seen == []
    status, _ = _through(middleware, _scope("/gradio_api/queue/join"), [{"type": "http.request", "body": body}])
    assert status == 200 and seen[0][1] == body


def test_chunked_uploads_are_charged_as_they_arrive() -> None:
    seen: list = []
    middleware = guard.Guard(_consumer(seen), fn_ids=lambda: [], budget=guard.UploadBudget(per_window=3_000_000))
    body, headers = _multipart(1, size=2_000_000)
    scope = _scope("/gradio_api/upload", [(b"content-type", headers["Content-Type"].encode())])
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    assert _through(middleware, scope, list(messages))[0] == 200  # 2 MB of 3
    status, payload = _through(middleware, scope, list(messages))
    assert status == 429 and json.loads(payload)["detail"] == "too many uploads, wait a minute"
    assert len(seen) == 1  # the second never reached the route whole


def test_uploads_are_counted_in_files_too() -> None:
    seen: list = []
    middleware = guard.Guard(_consumer(seen), fn_ids=lambda: [], file_budget=guard.UploadBudget(per_window=3))
    body, headers = _multipart(2)
    scope = _scope("/gradio_api/upload", [(b"content-type", headers["Content-Type"].encode())])
    assert _through(middleware, scope, [{"type": "http.request", "body": body}])[0] == 200
    status, payload = _through(middleware, scope, [{"type": "http.request", "body": body}])
    assert status == 429 and json.loads(payload)["detail"] == "too many files uploaded, wait a minute"


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    seen: list = []
    proxies = guard.TrustedProxies(["127.0.0.1", "10.1.0.0/16"])
    middleware = guard.Guard(_consumer(seen), fn_ids=lambda: [], proxies=proxies)
    spoof = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-host", b"evil.example")]
    message = [{"type": "http.request", "body": b""}]
    _through(middleware, _scope("/gradio_api/reset", spoof, client="198.51.100.4"), list(message))
    scope = seen[-1][0]
    assert scope["client"][0] == "198.51.100.4" and scope["headers"] == []  # an untrusted peer's claims are dropped
    chain = [(b"x-forwarded-for", b"203.0.113.7, 198.51.100.4, 10.1.2.3")]  # visitor-written, client, inner proxy
    _through(middleware, _scope("/gradio_api/reset", chain, client="127.0.0.1"), list(message))
    assert seen[-1][0]["client"][0] == "198.51.100.4"  # the right-most hop that is not a trusted proxy
    assert proxies.client("127.0.0.1", "10.1.0.1") == "10.1.0.1"  # all trusted: the first hop
    assert guard.TrustedProxies().client("127.0.0.1", "203.0.113.7") == "127.0.0.1"  # default: nobody is trusted
    with pytest.raises(ValueError, match="--trusted-proxies"):
        guard.TrustedProxies.parse("127.0.0.1,not-an-address")


class _Fn:
    def __init__(self, api_name: str, queue: bool = True) -> None:
        self.api_name, self.queue = api_name, queue


class _Event:
    def __init__(self, fn: _Fn, client: str, data: list | None = None) -> None:
        self.fn, self.closed = fn, False
        self.request = type("Request", (), {"client": type("Client", (), {"host": client})()})()
        self.data = type("Body", (), {"data": data or []})()


def test_expensive_work_and_live_streams_have_a_per_client_share() -> None:
    functions = {0: _Fn("analyze"), 1: _Fn("sanity"), 2: _Fn("live")}
    queued: list[_Event] = []
    seen: list = []
    middleware = guard.Guard(
        _consumer(seen), fn_ids=functions.keys, functions=lambda: functions, events=lambda: list(queued)
    )

    def join(fn_index: int, client: str, data: list | None = None) -> tuple[int | None, bytes]:
        body = json.dumps({"data": data or [], "fn_index": fn_index, "session_hash": "s"}).encode()
        answer = _through(
            middleware, _scope("/gradio_api/queue/join", client=client), [{"type": "http.request", "body": body}]
        )
        if answer[0] == 200:
            queued.append(_Event(functions[fn_index], client, data))
        return answer

    assert [join(1, "10.0.0.1")[0] for _ in range(3)] == [200, 200, 200]
    status, payload = join(1, "10.0.0.1")
    assert status == 429 and "3 expensive analyses waiting or running" in json.loads(payload)["detail"]
    assert join(0, "10.0.0.1", ["img", "m", "demo", "top1", "", "scorecam"])[0] == 429  # Score-CAM is expensive
    assert join(0, "10.0.0.1", ["img", "m", "demo", "top1", "", "gradcam", 4, "whole", True])[0] == 429  # ROAD
    assert join(0, "10.0.0.1", ["img", "m", "demo", "top1", "", "gradcam", 4, "whole", False])[0] == 200
    assert join(1, "10.0.0.2")[0] == 200  # another client has its own share
    assert [join(2, "10.0.0.3")[0] for _ in range(guard.LIVE_PER_CLIENT + 1)][-2:] == [200, 429]
    queued[0].closed = True  # a finished job frees its place
    assert join(1, "10.0.0.1")[0] == 200


def test_a_refused_choice_is_quoted_short() -> None:
    message = f"Value: '{'A' * 100_000}' (type: <class 'str'>) is not in the list of choices: ['demo', 'paper']"
    short = guard.choice_refusal(message)
    assert short is not None and len(short) < 200 and "<class" not in short and short.startswith("'AAAA")
    assert short.endswith("is not one of the choices: ['demo', 'paper']")
    assert (
        guard.choice_refusal("Value: x is not in the list of choices: ['a']") == "'x' is not one of the choices: ['a']"
    )
    assert guard.choice_refusal("something else") is None


def test_a_refused_choice_answers_short_through_the_api(app_url: str, tmp_path, capfd: pytest.CaptureFixture) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from tests.helpers.app import shape_file

    client = Client(app_url, verbose=False)
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(shape_file(tmp_path, 0)), method="x" * 200_000, api_name="/analyze")
    client.close()
    words = str(caught.value)
    assert len(words) < 400 and "<class" not in words and "xxxx" in words, words[:300]
    logged = capfd.readouterr()
    assert "x" * 200 not in logged.err + logged.out and "is not in the list of choices" not in logged.err  # no echo


def test_the_port_check_passes_a_port_left_in_time_wait() -> None:
    from cbam_viz.ui import layout

    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        caller = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first: its end of the connection lingers in TIME_WAIT
        caller.close()
    assert layout.port_problem("127.0.0.1", port) is None


def test_the_health_check_answers_at_once(app_url: str) -> None:
    status, _, payload = raw(app_url, "GET", "/healthz")
    assert status == 200 and json.loads(payload) == {"detail": "ok"}


def test_no_answer_shows_the_servers_cache_folder(app_url: str) -> None:
    from gradio.utils import get_upload_folder

    root = get_upload_folder()
    body, headers = _multipart(1)
    status, paths = post(app_url, "/gradio_api/upload", body, headers)
    assert status == 200 and paths[0].startswith("@cache/") and root not in paths[0], paths
    status, _, served = raw(app_url, "GET", f"/gradio_api/file={paths[0]}")
    assert status == 200 and served.startswith(b"\x89PNG")  # the placeholder still names the file
    for page in ("/", "/config"):
        status, _, payload = raw(app_url, "GET", page)
        assert status == 200 and root.encode() not in payload and b"/tmp/" not in payload, page


def _data_url(image, fmt: str, **options) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_live_frame_is_refused_before_pillow_opens_it_unless_a_small_jpeg_png_or_webp() -> None:
    from PIL import Image

    from cbam_viz.imaging.headers import LIVE_FRAME_PIXELS, live_frame_problem
    from tests.helpers import hostile

    seen: list = []
    functions = {0: _Fn("live"), 1: _Fn("analyze")}
    middleware = guard.Guard(_consumer(seen), fn_ids=functions.keys, functions=lambda: functions)
    small = Image.new("RGB", (64, 48), (200, 30, 30))
    ordinary = [_data_url(small, "JPEG"), _data_url(small, "PNG"), _data_url(small, "WEBP")]
    bomb_png = "data:image/png;base64," + __import__("base64").b64encode(hostile.black_png_bytes(2500, 2000)).decode()
    others = [_data_url(small, "TGA"), _data_url(small, "PCX"), _data_url(small, "BMP"), bomb_png]
    big_webp = _data_url(Image.new("RGB", (2100, 2000)), "WEBP", lossless=True)
    for url in ordinary:
        body = json.dumps({"data": [{"url": url, "meta": {"_type": "gradio.FileData"}}], "event_id": "e"}).encode()
        assert _through(middleware, _scope("/gradio_api/stream/e"), [{"type": "http.request", "body": body}])[0] == 200
    for url in [*others, big_webp]:
        body = json.dumps({"data": [{"url": url}], "event_id": "e"}).encode()
        status, payload = _through(middleware, _scope("/gradio_api/stream/e"), [{"type": "http.request", "body": body}])
        assert status == 413 and "live frame" in json.loads(payload)["detail"], (url[:30], payload)
        join = json.dumps({"data": [{"url": url}], "fn_index": 0, "session_hash": "s"}).encode()
        assert (
            _through(middleware, _scope("/gradio_api/queue/join"), [{"type": "http.request", "body": join}])[0] == 413
        )
    assert len(seen) == 3  # only the ordinary frames reached Gradio
    assert LIVE_FRAME_PIXELS == 4_000_000 and live_frame_problem(b"GIF89a") is not None


def test_a_space_may_frame_the_page_and_nobody_else() -> None:
    here = dict(guard.security_headers(on_spaces=False))
    assert here[b"content-security-policy"] == b"frame-ancestors 'self'" and here[b"x-frame-options"] == b"SAMEORIGIN"
    spaces = dict(guard.security_headers(on_spaces=True))
    assert spaces[b"content-security-policy"] == b"frame-ancestors 'self' https://huggingface.co"
    assert b"x-frame-options" not in spaces and spaces[b"x-content-type-options"] == b"nosniff"


def test_the_command_line_names_the_trusted_proxies(capsys: pytest.CaptureFixture) -> None:
    from cbam_viz.ui import layout

    assert not layout.parse_args([]).trusted_proxies  # default: nobody's X-Forwarded-For is believed
    proxies = layout.parse_args(["--trusted-proxies", "127.0.0.1,10.0.0.0/8"]).trusted_proxies
    assert proxies.trusts("10.1.2.3") and proxies.trusts("127.0.0.1") and not proxies.trusts("192.0.2.1")
    with pytest.raises(SystemExit):
        layout.parse_args(["--trusted-proxies", "localhost"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--trusted-proxies takes IP addresses or networks" in error and "Traceback" not in error


def test_a_spoofed_host_is_not_reflected_into_file_urls(app_url: str) -> None:
    """File URLs are relative whatever the Host; the config's root stays the absolute address Gradio's page builds
    its calls on (an empty one made the page post to its own URL, query string and all)."""
    for page in ("/", "/config"):
        status, _, payload = raw(app_url, "GET", page, headers={"Host": "evil.example:666"})
        assert status == 200 and b"evil.example:666/gradio_api/file=" not in payload, page
    status, _, payload = raw(app_url, "GET", "/config", headers={"Host": "evil.example:666"})
    config = json.loads(payload)
    assert config["root"].startswith("http") and any("/gradio_api/file=" in url for url in _urls(config))
    assert all(url.startswith("/gradio_api/file=") for url in _urls(config) if "gradio_api/file=" in url)
    status, _, payload = raw(app_url, "GET", "/config", headers={"Host": "evil.example/x?"})
    assert status == 400 and b"evil" not in payload


def _urls(value: object) -> list[str]:
    """Every ``url`` string in a JSON document."""
    if isinstance(value, dict):
        found = [value["url"]] if isinstance(value.get("url"), str) else []
        return found + [url for item in value.values() for url in _urls(item)]
    if isinstance(value, list):
        return [url for item in value for url in _urls(item)]
    return []


def test_an_expensive_analysis_runs_in_the_expensive_group() -> None:
    functions = {0: _Fn("analyze"), 1: _Fn("analyze" + guard.EXPENSIVE_TWIN), 2: _Fn("sanity")}
    seen: list = []
    middleware = guard.Guard(_consumer(seen), fn_ids=functions.keys, functions=lambda: functions, events=list)

    def join(data: list) -> int:
        body = json.dumps({"data": data, "fn_index": 0, "session_hash": "s"}).encode()
        _through(middleware, _scope("/gradio_api/queue/join"), [{"type": "http.request", "body": body}])
        return json.loads(seen[-1][1])["fn_index"]

    assert join(["img", "m", "demo", "top1", "", "scorecam"]) == 1  # Score-CAM: the twin in the expensive group
    assert join(["img", "m", "demo", "top1", "", "gradcam", 4, "whole", True]) == 1  # ROAD too
    assert join(["img", "m", "demo", "top1", "", "gradcam", 4, "whole", False]) == 0  # photo mode keeps its slot


def test_an_expensive_rest_call_is_sent_to_the_twin_by_its_path() -> None:
    """``/gradio_api/call/analyze`` names no fn_index: a Score-CAM analysis there goes to the twin's path."""
    functions = {0: _Fn("analyze"), 1: _Fn("analyze" + guard.EXPENSIVE_TWIN)}
    seen: list = []
    middleware = guard.Guard(_consumer(seen), fn_ids=functions.keys, functions=lambda: functions, events=list)

    def call(path: str, data: list) -> str:
        body = json.dumps({"data": data}).encode()
        _through(middleware, _scope(path), [{"type": "http.request", "body": body}])
        return seen[-1][0]["path"]

    scorecam = ["img", "m", "demo", "top1", "", "scorecam"]
    assert call("/gradio_api/call/analyze", scorecam) == "/gradio_api/call/analyze_expensive"
    assert call("/gradio_api/call/v2/analyze/", scorecam) == "/gradio_api/call/v2/analyze_expensive"
    assert call("/gradio_api/call/analyze", ["img", "m", "demo", "top1", "", "gradcam"]) == "/gradio_api/call/analyze"


def test_expensive_events_have_their_own_concurrency_group(tmp_path) -> None:
    from cbam_viz.ui.layout import build_demo
    from cbam_viz.ui.server.engine import Engine
    from tests.helpers.app import write_random_demo

    engine = Engine.start("demo", "cpu", write_random_demo(tmp_path), warm=False, offline=True)
    demo = build_demo(engine)
    groups = {fn.api_name: fn.concurrency_id for fn in demo.fns.values()}
    expensive = ("sanity", "deletion_insertion", "sweep", "analyze_expensive", "analyze_on_change_expensive")
    assert {groups[name] for name in expensive} == {"expensive"}, groups
    assert groups["analyze"] == groups["analyze_on_change"] == "models"
    limits = {fn.concurrency_id: fn.concurrency_limit for fn in demo.fns.values()}
    assert limits["expensive"] == 1 and limits["models"] == 1


def test_a_score_cam_analysis_through_rest_answers_from_the_twin(app_url: str, tmp_path) -> None:
    """The documented REST route with Score-CAM: the twin runs it, and the caller reads the answer where it asked.
    (From 127.0.0.2, a client of its own: other tests here spend 127.0.0.1's upload budget.)"""
    from tests.helpers.app import shape_file

    parts = urlsplit(app_url)

    def request(method: str, path: str, body: bytes | None = None, kind: str = "application/json") -> tuple[int, str]:
        address = ("127.0.0.2", 0)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120, source_address=address)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": kind})
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    boundary = "cbamvizboundary"
    upload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="star.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + shape_file(tmp_path, 0).read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, answer = request("POST", "/gradio_api/upload", upload, f"multipart/form-data; boundary={boundary}")
    assert status == 200, answer
    picture = {"path": json.loads(answer)[0], "meta": {"_type": "gradio.FileData"}}
    status, info = request("GET", "/gradio_api/info")
    parameters = json.loads(info)["named_endpoints"]["/analyze"]["parameters"]
    asked = {"image": picture, "models": ["resnet50"], "weights": "demo", "method": "scorecam"}
    data = [asked.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]
    body = json.dumps({"data": data}).encode()
    status, answer = request("POST", "/gradio_api/call/analyze", body)
    assert status == 200, answer
    status, stream = request("GET", f"/gradio_api/call/analyze/{json.loads(answer)['event_id']}")
    assert status == 200 and "event: complete" in stream, stream[:300]
    assert '"method": "scorecam"' in stream, stream[:300]


def test_a_score_cam_analysis_through_the_client_answers_from_the_expensive_group(app_url: str, tmp_path) -> None:
    from gradio_client import Client, handle_file

    from tests.helpers.app import shape_file

    client = Client(app_url, verbose=False)
    document, _ = client.predict(
        handle_file(shape_file(tmp_path, 0)), models=["resnet50"], method="scorecam", api_name="/analyze"
    )
    assert document["method"] == "scorecam" and list(document["models"]) == ["resnet50"], document.get("method")
