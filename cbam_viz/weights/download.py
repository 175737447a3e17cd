"""Download registered weights: sources in order (a local mirror first), resumable transfers, checks, one conversion.

Every source goes through one transport (urllib): a connect timeout for the first answer and a read timeout after
it, a transient failure retried once, an interrupted transfer kept as a hidden ``.<name>.<id>.part`` file and resumed
with an HTTP Range request on the next try or run (a 206 with the right Content-Range appends, a 200 starts over).
A file reaches its final name only once it is complete, matches every published hash and loads strictly into the
expected architecture; a wrong file is deleted and the next source is tried. Its sha256 and origin are recorded in
weights/imagenet/SHA256SUMS and origins.json, and it is converted once to project safetensors.

Google Drive is handled here rather than through ``gdown.download``: gdown recognises Drive only by the host name
(``gdown.parse_url`` checks for drive.google.com / docs.google.com), so its confirmation flow cannot be pointed at a
loopback test server without a TLS-intercepting proxy, and it would bring its own temporary files, retries and a
cookie file under ~/.cache. The confirmation page is parsed with the standard library (the ``download-form`` action
and its hidden inputs, submitted as a GET); gdown's own parser is the fallback for pages of another shape.
"""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlparse, urlsplit, urlunsplit

from gdown.download import get_url_from_gdrive_confirmation
from tqdm import tqdm

from cbam_viz.errors import WeightsError, one_line
from cbam_viz.i18n.language import Message
from cbam_viz.weights.files import (
    check_raw,
    display_path,
    download_sources,
    entry_status,
    hash_problem,
    imagenet_dir,
    load_source_file,
    manual_line,
    missing_entries,
    record_download,
    set_aside,
    weights_root,
)
from cbam_viz.weights.load import TRAIN_HINT, prepare_entry, save_converted
from cbam_viz.weights.registry import DEFAULT_SET, DOWNLOAD_HINT, ENTRIES, SETS, Source, WeightsEntry

CONNECT_TIMEOUT = 10.0  # seconds for a host's first answer (DNS, connect, response headers)
READ_TIMEOUT = 60.0  # seconds without a byte once the transfer runs
DEFAULT_TIMEOUT = READ_TIMEOUT
ATTEMPTS = 2  # per source: a transient failure (5xx, reset, cut transfer, stall) is retried once, resuming
RETRY_DELAY = 1.0  # seconds before that retry
CHUNK = 1 << 20
PAGE_LIMIT = 2 << 20  # bytes of an HTML answer read to find Drive's form
USER_AGENT = "cbam_viz weights download (urllib)"
OFFLINE_ENV = "CBAM_VIZ_OFFLINE"
PROBE_TIMEOUT = 3.0  # first run: at most this long to learn that no host answers
QUOTA_MARKERS = ("too many users have viewed or downloaded this file recently", "quota exceeded", "download quota")
DOWNLOAD_LOCK = threading.Lock()  # one download at a time in this process (the app's button, first run, the CLI)
BUSY = Message("error.download_running")  # said in the visitor's language on the page, in English on the console


class Transient(WeightsError):
    """A failure worth one more try of the same source (the bytes received so far are kept)."""


class DiskError(WeightsError):
    """This machine cannot write under the weights folder (full, read-only, no permission): every source would fail
    the same way, so no other source is tried."""


def _cannot_write(folder: Path, error: OSError) -> DiskError:
    reason = error.strerror or _one_line(error)
    return DiskError(
        f"cannot write under {display_path(folder)} ({reason}): free some space or make the folder writable, "
        "then run it again"
    )


class DownloadError(WeightsError):
    """Some files of a set could not be downloaded: ``lines`` holds one line per file, saying how to get it by hand."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(" | ".join(lines))
        self.lines = tuple(lines)


@dataclass(frozen=True)
class Fetched:
    """A complete transfer, still under its temporary name."""

    part: Path
    sha256: str
    announced_sha256: str | None  # what the host said the file's sha256 is (Hugging Face's X-Linked-Etag)


@dataclass
class Budget:
    """How long to wait for the first host to answer at all (first run); unlimited once any host has answered."""

    deadline: float | None = None
    answered: bool = False

    def connect_timeout(self, wanted: float) -> float:
        """The connect timeout for the next try: ``wanted``, cut to what is left of the first-answer deadline."""
        if self.deadline is None or self.answered:
            return wanted
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WeightsError("no host answered within the time allowed")
        return min(wanted, left)


def _one_line(error: BaseException) -> str:
    """``one_line``, at most 200 characters: a server's or a socket's words go into our messages."""
    return one_line(error, limit=200)


# -------------------------------------------------------------------------------------------------- Google Drive


class _FormParser(html.parser.HTMLParser):
    """Collects the action and hidden inputs of ``<form id="download-form">`` and any ``/uc?export=download`` link."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: list[tuple[str, str]] = []
        self.link: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and values.get("id") == "download-form":
            self.action, self._in_form = values.get("action", ""), True
        elif tag == "input" and self._in_form and values.get("type", "").lower() == "hidden" and values.get("name"):
            self.inputs.append((values["name"], values.get("value", "")))
        elif tag == "a" and self.link is None and "export=download" in values.get("href", ""):
            self.link = values["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def drive_download_url(page: str, page_url: str, manual: str) -> str:
    """The URL Drive's confirmation page leads to (its form submitted as a GET); one-line WeightsError otherwise."""
    text = " ".join(page.split()).lower()
    if any(marker in text for marker in QUOTA_MARKERS):
        raise WeightsError(
            "Google Drive says too many users have viewed or downloaded this file recently (quota exceeded): "
            f"try again later, or download it by hand from {manual}"
        )
    parser = _FormParser()
    parser.feed(page)
    if parser.action:
        parts = urlsplit(urljoin(page_url, parser.action))
        query = dict(parse_qsl(parts.query))
        query.update(parser.inputs)
        return urlunsplit(parts._replace(query=urlencode(query)))
    if parser.link:
        return urljoin(page_url, parser.link)
    try:  # pages of another shape: gdown follows Drive's changes ("downloadUrl" in a script, error captions)
        return get_url_from_gdrive_confirmation(page)
    except Exception as error:  # gdown raises FileURLRetrievalError with Drive's own caption
        raise WeightsError(f"Google Drive refused ({_one_line(error)}): download it by hand from {manual}") from error


# ----------------------------------------------------------------------------------------------------- transport


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects (Range and the other headers go along) and keeps the sha256 the Hugging Face hub announces."""

    def __init__(self) -> None:
        super().__init__()
        self.announced: str | None = None

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        self.announced = self.announced or _announced_sha256(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _announced_sha256(headers: Any) -> str | None:
    value = (headers.get("X-Linked-Etag") or "").strip().strip('"').lower()
    return value if re.fullmatch(r"[0-9a-f]{64}", value) else None


def _set_read_timeout(response: Any, seconds: float) -> None:
    """After the first answer, wait up to ``seconds`` for each further block (the connect timeout no longer applies)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _open(url: str, headers: dict[str, str], redirects: _Redirects, connect_timeout: float, read_timeout: float) -> Any:
    """GET ``url``; -> the response. Raises Transient for failures worth a retry, WeightsError for the others."""
    host = urlparse(url).hostname or url
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
    opener = urllib.request.build_opener(redirects)
    try:
        response = opener.open(request, timeout=connect_timeout)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416:
            raise
        message = f"HTTP {error.code} {error.reason}"
        if error.code >= 500 or error.code == 429:
            raise Transient(message) from error
        raise WeightsError(message) from error
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, socket.gaierror):
            raise WeightsError(f"DNS lookup for {host} failed") from error
        if isinstance(reason, ConnectionRefusedError):
            raise WeightsError(f"connection to {host} refused") from error
        if isinstance(reason, TimeoutError):
            raise WeightsError(f"no answer from {host} within {connect_timeout:g} s") from error
        if isinstance(reason, FileNotFoundError):
            raise WeightsError("no such file in the mirror folder") from error
        raise WeightsError(_one_line(reason if isinstance(reason, BaseException) else error)) from error
    except TimeoutError as error:
        raise WeightsError(f"no answer from {host} within {connect_timeout:g} s") from error
    except (http.client.HTTPException, ConnectionError) as error:
        raise Transient(_one_line(error)) from error
    except (OSError, ValueError) as error:
        raise WeightsError(_one_line(error)) from error
    _set_read_timeout(response, read_timeout)
    return response


def part_path(destination: Path, url: str) -> Path:
    """The hidden file a transfer from ``url`` grows in; one per source, so bytes of two hosts are never spliced."""
    key = hashlib.sha1(url.encode()).hexdigest()[:8]
    return destination.parent / f".{destination.name}.{key}.part"


def _content_range(response: Any, offset: int) -> int | None:
    """The total size if a 206 answer continues exactly at ``offset``, else None."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if response.status != 206 or match is None or int(match[1]) != offset:
        return None
    return int(match[3]) if match[3] != "*" else int(match[2]) + 1


def _receive(response: Any, part: Path, offset: int, *, progress: bool, label: str, read_timeout: float) -> None:
    """Write the body into ``part``: appended after ``offset`` for a valid 206, from the start for a 200."""
    total = _content_range(response, offset) if offset else None
    if total is None:
        offset = 0
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
    mode = "ab" if offset else "wb"
    received = offset

    def read() -> bytes:  # the host's failures: worth another try, the bytes so far kept
        try:
            return response.read(CHUNK)
        except TimeoutError as error:
            raise Transient(f"no data for {read_timeout:g} s after {received} bytes (kept, resumable)") from error
        except (http.client.IncompleteRead, ConnectionError, http.client.HTTPException) as error:
            raise Transient(f"transfer cut short after {received} bytes (kept, resumable)") from error
        except OSError as error:
            raise Transient(f"transfer failed after {received} bytes ({_one_line(error)}; kept, resumable)") from error

    try:
        with (
            part.open(mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                disable=not progress,
            ) as bar,
        ):
            while chunk := read():
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    except OSError as error:  # reading fails as Transient, so this is the disk: full, read-only, no permission
        raise _cannot_write(part.parent, error) from error
    if total is not None and received < total:
        raise Transient(f"transfer cut short: {received} of {total} bytes (kept, resumable)")
    if received == 0:
        raise WeightsError("the host sent an empty file")


def fetch_part(
    source: Source,
    destination: Path,
    *,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    progress: bool = True,
    budget: Budget | None = None,
) -> Fetched:
    """Bring ``source``'s file completely into its ``.part`` file next to ``destination``, resuming what is there.

    Nothing is written under ``destination``: the caller checks the bytes first. Network failures keep the part
    (Ctrl-C included) for the next try; an empty or HTML answer leaves it as it was. Timeouts left out are the
    module's CONNECT_TIMEOUT and READ_TIMEOUT at the time of the call.
    """
    connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    read_timeout = READ_TIMEOUT if read_timeout is None else read_timeout
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cannot_write(destination.parent, error) from error
    part = part_path(destination, source.url)
    budget = budget or Budget()
    last: Transient | None = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_DELAY)
        try:
            return _fetch_once(source, part, destination.name, connect_timeout, read_timeout, progress, budget)
        except Transient as error:
            last = error
    assert last is not None
    raise WeightsError(str(last))


def _fetch_once(
    source: Source,
    part: Path,
    label: str,
    connect_timeout: float,
    read_timeout: float,
    progress: bool,
    budget: Budget,
) -> Fetched:
    redirects = _Redirects()
    url = source.url
    restarted = False
    for _hop in range(4):  # Drive: the file, or a confirmation page whose form leads to it
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-", "Accept-Encoding": "identity"} if offset else {}
        try:
            response = _open(url, headers, redirects, budget.connect_timeout(connect_timeout), read_timeout)
        except urllib.error.HTTPError as error:  # 416: the part is not a prefix of this file; start over once
            if restarted:
                raise WeightsError(f"HTTP {error.code} {error.reason}") from error
            part.unlink(missing_ok=True)
            restarted = True
            continue
        budget.answered = True
        with response:
            if response.headers.get("Content-Type", "").startswith("text/html"):
                if source.kind != "drive":
                    raise WeightsError(
                        "the host answered with a web page instead of the file (sign-in, quota or scan page)"
                    )
                page = response.read(PAGE_LIMIT).decode("utf-8", "replace")
                url = drive_download_url(page, response.geturl(), source.manual_page)
                continue
            _receive(response, part, offset, progress=progress, label=label, read_timeout=read_timeout)
            announced = redirects.announced or _announced_sha256(response.headers)
        digest = hashlib.sha256()
        with part.open("rb") as handle:
            for block in iter(lambda: handle.read(CHUNK), b""):
                digest.update(block)
        return Fetched(part, digest.hexdigest(), announced)
    raise WeightsError("Google Drive kept answering with pages instead of the file")


def _discard(destination: Path) -> None:
    """Remove every temporary file of ``destination`` (each source's part)."""
    for stale in destination.parent.glob(f".{destination.name}.*.part"):
        stale.unlink(missing_ok=True)


def _download_from(
    entry: WeightsEntry,
    source: Source,
    weights_dir: Path | str | None,
    *,
    connect_timeout: float,
    read_timeout: float,
    progress: bool,
    budget: Budget,
) -> Path:
    """One source: fetch, check hashes, check it loads strictly, then put it in place, record it and convert it."""
    destination = imagenet_dir(weights_dir) / source.filename
    fetched = fetch_part(
        source,
        destination,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        progress=progress,
        budget=budget,
    )
    try:
        try:
            _, problem = hash_problem(source, fetched.part, source.filename, fetched.sha256)
        except Exception as error:  # junk that looks like a zip can fail zipfile in many ways
            problem = f"its hashes cannot be checked ({type(error).__name__}: {_one_line(error)})"
        if problem is None and fetched.announced_sha256 and fetched.announced_sha256 != fetched.sha256:
            announced = fetched.announced_sha256[:12]
            problem = f"sha256 {fetched.sha256[:12]}... differs from the {announced}... the host announced"
        if problem:
            raise WeightsError(problem)
        try:
            loaded = load_source_file(entry, source, fetched.part, source.filename)
        except WeightsError as error:
            raise WeightsError(
                f"not a {entry.arch} checkpoint in {source.layout} layout, deleted ({one_line(error)})"
            ) from error
    except Exception:  # whatever went wrong, the bytes are not kept: the next source starts clean
        fetched.part.unlink(missing_ok=True)
        raise
    try:
        os.replace(fetched.part, destination)
        _discard(destination)
        record_download(destination.name, fetched.sha256, source, weights_dir)
        return save_converted(entry, source, loaded, destination, fetched.sha256, weights_dir)
    except OSError as error:
        raise _cannot_write(destination.parent, error) from error


def _notice(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def _failed_at(source: Source) -> str:
    """Who failed, in a failure line: a mirror is tried once per file name, so the name is said."""
    return f"{source.origin} ({source.filename})" if source.kind == "mirror" else source.origin


def download_entry(
    entry: WeightsEntry,
    weights_dir: Path | str | None = None,
    *,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    progress: bool = True,
    budget: Budget | None = None,
    notify: Callable[[str], None] | None = None,
) -> Path:
    """Make sure ``entry`` is under weights/imagenet/ and converted; -> the project safetensors path.

    Sources are tried in order (the mirror first when set); a file already there (downloaded or put by hand) is not
    fetched again unless it does not load as the entry's architecture: then it is set aside as ``<name>.broken``
    (``notify`` says so in one line, on stderr by default) and fetched again. ``timeout`` is the read timeout once a
    host answers; timeouts left out are the module's READ_TIMEOUT and CONNECT_TIMEOUT at the time of the call.
    """
    status = entry_status(entry, weights_dir)
    if status == "broken":
        check = check_raw(entry, weights_dir)
        assert check is not None and check.problem
        try:
            moved = set_aside(check, weights_dir)
        except OSError as error:
            reason = _cannot_write(check.path.parent, error)
            raise DiskError(f"could not set {entry.name}'s broken file aside: {reason}") from error
        (notify or _notice)(
            f"{display_path(check.path)} is {check.problem}: set aside as {moved.name}, fetching {entry.name} again"
        )
    if status in ("missing", "broken"):
        failures = []
        budget = budget or Budget()
        for source in download_sources(entry):
            try:
                return _download_from(
                    entry,
                    source,
                    weights_dir,
                    connect_timeout=CONNECT_TIMEOUT if connect_timeout is None else connect_timeout,
                    read_timeout=READ_TIMEOUT if timeout is None else timeout,
                    progress=progress,
                    budget=budget,
                )
            except DiskError as error:
                raise DiskError(f"could not save {entry.name}: {error}") from error
            except WeightsError as error:
                failures.append(f"{_failed_at(source)}: {one_line(error)}")
        raise WeightsError(
            f"could not download {entry.name} ({'; '.join(failures)}); by hand: {manual_line(entry, weights_dir)}, "
            "or use --weights demo"
        )
    _, path = prepare_entry(entry, weights_dir)
    return path


def download_running() -> bool:
    """Whether a download runs in this process (the app greys its button out)."""
    return DOWNLOAD_LOCK.locked()


def download_set(
    target: str = DEFAULT_SET,
    weights_dir: Path | str | None = None,
    *,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    progress: bool = True,
    budget: Budget | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Download a set (``paper``, ``pytorchcv``) or one entry; -> {entry name: converted file}.

    Every file is tried; if some fail, DownloadError says one line per file. A second call while one runs in this
    process fails at once with "a download is already running".
    """
    if target == "demo":
        raise WeightsError(f"the demo weights are trained here, not downloaded: run `{TRAIN_HINT}`")
    if target in SETS:
        names = list(SETS[target].values())
    elif target in ENTRIES:
        names = [target]
    else:
        raise WeightsError(
            f"unknown weights {target!r} to download: use {', '.join(SETS)} or an entry name "
            f"(`python -m cbam_viz weights list`); `{DOWNLOAD_HINT}` alone gets the paper set"
        )
    if not DOWNLOAD_LOCK.acquire(blocking=False):
        raise WeightsError(BUSY)
    try:
        budget = budget or Budget()
        written: dict[str, Path] = {}
        failed: list[str] = []
        for name in names:
            try:
                written[name] = download_entry(
                    ENTRIES[name],
                    weights_dir,
                    timeout=timeout,
                    connect_timeout=connect_timeout,
                    progress=progress,
                    budget=budget,
                    notify=notify,
                )
            except DiskError:
                raise  # the other files would meet the same disk
            except WeightsError as error:
                failed.append(str(error))
    finally:
        DOWNLOAD_LOCK.release()
    if len(failed) == 1 and len(names) == 1:
        raise WeightsError(failed[0])
    if failed:
        raise DownloadError(failed)
    return written


# ------------------------------------------------------------------------------------------------------- first run


@dataclass(frozen=True)
class FirstRun:
    """What the first start did about the ImageNet weights: one line for the console and the app's banner."""

    fetched: bool
    note: str


def _probe(url: str, timeout: float) -> str | None:
    """None if ``url``'s host accepts a connection within ``timeout``, else why not (a few words)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        folder = Path(urllib.request.url2pathname(parsed.path)).parent
        return None if folder.is_dir() else Message("weights.probe.no_folder", folder=str(folder))
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            outcome.append(Message("weights.probe.dns", host=host))
            return
        try:
            family, kind, proto, _, address = addresses[0]
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout)
                sock.connect(address)
            outcome.append(None)
        except OSError as error:
            outcome.append(Message("weights.probe.refused", host=host, error=_one_line(error)))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else Message("weights.probe.silent", host=host, seconds=f"{timeout:g}")


def network_problem(entries: list[WeightsEntry], timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if the first source (the mirror when set) of some entry answers; else why the first one did not."""
    problems = []
    firsts = (download_sources(entry)[0].url for entry in entries)
    hosts = {urlparse(url).netloc or url.rsplit("/", 1)[0]: url for url in firsts}  # one probe per host or folder
    for url in hosts.values():
        problem = _probe(url, timeout)
        if problem is None:
            return None
        problems.append(problem)
    return problems[0] if problems else None


def offline_requested(offline: bool = False) -> bool:
    """Whether downloads are off: asked for here, or by ``CBAM_VIZ_OFFLINE`` (any value but empty, 0, false or no)."""
    return offline or os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def first_run(
    weights_dir: Path | None = None, *, offline: bool = False, budget_s: float = 15.0, progress: bool = True
) -> FirstRun:
    """On the app's first start, fetch the paper set unless it is here, offline mode is on, or no host answers.

    A quick probe (DNS lookup and connect to the first source's host, the mirror when set) tells within a fraction of
    a second when there is no network; no host answering keeps the start-up waiting no more than about ``budget_s``.
    """
    root = weights_root(weights_dir)
    folder = display_path(imagenet_dir(root))
    hint = Message("weights.note.hint", command=f"{DOWNLOAD_HINT} {DEFAULT_SET}")
    missing = missing_entries(DEFAULT_SET, root)
    if not missing:
        return FirstRun(False, Message("weights.note.present", folder=folder))
    if offline_requested(offline):
        return FirstRun(False, Message("weights.note.offline", hint=hint))
    started = time.monotonic()
    problem = network_problem(missing, min(PROBE_TIMEOUT, budget_s))
    if problem:
        return FirstRun(False, Message("weights.note.no_network", problem=problem, hint=hint))
    budget = Budget(deadline=started + budget_s)
    try:
        download_set(
            DEFAULT_SET, root, connect_timeout=min(CONNECT_TIMEOUT, budget_s), progress=progress, budget=budget
        )
    except DownloadError as error:
        return FirstRun(False, Message("weights.note.files_failed", count=len(error.lines), hint=hint))
    except WeightsError as error:
        return FirstRun(False, Message("weights.note.failed", error=_one_line(error)))
    return FirstRun(True, Message("weights.note.downloaded", folder=folder, name=DEFAULT_SET))
