"""deploy/nginx.conf in front of two app replicas, all on loopback: nginx (Debian's package) runs as a foreground
subprocess with its own prefix and configuration in a temporary folder; the replicas are the app as ``python app.py
--trusted-proxies 127.0.0.1`` serves it, on the random demo weights. Checked: each client stays on one replica while
both are used, the guard sees each client's own address (not nginx's, and not one a client writes in
X-Forwarded-For), a gradio_client analysis goes through the proxy's event streams, a slowloris of half-sent headers
does not block another client, and stopping a replica gives its clients one line while the other's carry on."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest

from cbam_viz.ui import layout
from cbam_viz.ui.server import guard
from cbam_viz.ui.server.engine import Engine
from cbam_viz.ui.server.proxies import TrustedProxies
from tests.helpers.app import shape_file, write_random_demo
from tests.helpers.ports import free_port

REPO = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
CLIENTS = [f"127.0.0.{number}" for number in range(10, 26)]  # sixteen loopback visitors
TRUSTED = TrustedProxies(["127.0.0.1"])  # what --trusted-proxies 127.0.0.1 gives each replica
pytestmark = [pytest.mark.slow, pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt install nginx)")]


def request(port: int, path: str, source: str = "127.0.0.1", method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {name.lower(): value for name, value in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def _wait_healthy(port: int, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}: {process.stdout.read()[-2000:]}")
        try:
            if request(port, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"replica on {port} did not start")


def _nginx_conf(prefix: Path, listen: int, replicas: list[int]) -> Path:
    """deploy/nginx.conf with this test's ports, inside a main configuration whose files all live in ``prefix``."""
    site = (REPO / "deploy" / "nginx.conf").read_text()
    site = re.sub(r"listen 8080;", f"listen 127.0.0.1:{listen};", site)
    servers = re.findall(r"    server 127\.0\.0\.1:\d+ [^\n]*\n", site)
    assert len(servers) == 2, "deploy/nginx.conf lists two replicas"
    template = servers[0]
    site = site.replace("".join(servers), "".join(re.sub(r":\d+ ", f":{port} ", template) for port in replicas))
    (prefix / "cbam_viz.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "".join(
        f"    {kind}_temp_path {prefix / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = (
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        "worker_rlimit_nofile 4096;\nevents { worker_connections 2048; }\n"
        f"http {{\n    access_log off;\n{temps}"
        "    add_header X-Replica $upstream_addr always;  # the test's own: which replica answered\n"
        f"    include {prefix / 'cbam_viz.conf'};\n}}\n"
    )
    (prefix / "nginx.conf").write_text(main)
    return prefix / "nginx.conf"


@contextlib.contextmanager
def _replica(weights: Path, port: int) -> Iterator[gr.Blocks]:
    """One replica, as ``python app.py --trusted-proxies 127.0.0.1`` serves it (in this process: the imports are
    paid once)."""
    engine = Engine.start("demo", "cpu", weights, warm=False, offline=True)
    demo = layout.build_demo(engine)
    layout.serve(demo, "127.0.0.1", port, prevent_thread_lock=True, probe_localhost=False, trusted_proxies=TRUSTED)
    try:
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[int, gr.Blocks]]]:
    weights = write_random_demo(tmp_path_factory.mktemp("weights"))
    prefix = tmp_path_factory.mktemp("nginx")
    ports = [free_port(), free_port()]
    listen = free_port()
    conf = _nginx_conf(prefix, listen, ports)
    with contextlib.ExitStack() as stack:
        replicas = {port: stack.enter_context(_replica(weights, port)) for port in ports}
        nginx = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_healthy(listen, nginx, time.monotonic() + 30)
            yield listen, replicas
        finally:
            nginx.send_signal(signal.SIGTERM)
            try:
                nginx.wait(timeout=20)
            except subprocess.TimeoutExpired:
                nginx.kill()


def _replica_of(listen: int, source: str) -> str:
    status, headers, _ = request(listen, "/gradio_api/info", source)
    assert status == 200, (source, status)
    return headers["x-replica"]


def _upload(listen: int, source: str, forwarded_for: str | None = None) -> int:
    boundary = "deploytest"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG"
        + bytes(64)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return request(listen, "/gradio_api/upload", source, "POST", body, headers)[0]


def test_the_proxy_keeps_sessions_sees_clients_and_says_when_a_replica_stops(
    deployment: tuple[int, dict[int, gr.Blocks]], tmp_path: Path
) -> None:
    from gradio_client import Client, handle_file

    listen, replicas = deployment
    placed = {source: _replica_of(listen, source) for source in CLIENTS}
    for source in CLIENTS[:4]:
        assert {_replica_of(listen, source) for _ in range(3)} == {placed[source]}  # sticky
    assert len(set(placed.values())) == 2, placed  # and both replicas serve someone

    client = Client(f"http://127.0.0.1:{listen}", verbose=False)  # queue join and event stream through nginx
    document, _ = client.predict(handle_file(shape_file(tmp_path, 0)), api_name="/analyze")
    client.close()
    assert document["weights"]["set"] == "demo"

    # the guard's per-client budget counts each visitor on its own, behind the one proxy address
    first = CLIENTS[0]
    neighbour = next(source for source in CLIENTS[1:] if placed[source] == placed[first])
    answers = [_upload(listen, first) for _ in range(guard.UPLOAD_FILES_PER_MINUTE + 1)]
    assert set(answers[:-1]) == {200} and answers[-1] == 429, answers[-3:]
    assert _upload(listen, neighbour) == 200  # a neighbour on the same replica is not charged
    assert _upload(listen, neighbour, forwarded_for=first) == 200  # nor can claim to be the first (or spend for it)

    # a slowloris: 1 000 connections with half-sent headers do not block another client, and are cut by nginx
    held = []
    for number in range(1000):
        held.append(
            socket.create_connection(
                ("127.0.0.1", listen), timeout=5, source_address=(f"127.0.3.{1 + number % 200}", 0)
            )
        )
        held[-1].sendall(b"GET /gradio_api/info HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert _replica_of(listen, CLIENTS[-1]) == placed[CLIENTS[-1]] and time.monotonic() - started < 2
    for connection in held:
        connection.close()

    stopped_port = int(placed[first].rsplit(":", 1)[1])
    replicas[stopped_port].close()
    status, _, payload = request(listen, "/gradio_api/info", first)
    assert status == 503 and b"\n" not in payload.strip(), payload
    assert json.loads(payload)["detail"] == "this copy of the app stopped: reload the page to continue on another one"
    carrying_on = next(source for source in CLIENTS if placed[source] != placed[first])
    assert _replica_of(listen, carrying_on) == placed[carrying_on]
