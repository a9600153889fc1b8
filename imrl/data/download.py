"""Verified downloads into ``data/raw/<dataset>/``.

A file reaches its final name only after its size and every known checksum match
(``verify``); until then it lives under ``<name>.partial``, which a later run resumes
with an HTTP Range request. Beside it, ``<name>.partial.json`` records where those bytes
came from: the URL and the server's validators (ETag, Last-Modified, total size). A
partial file from another URL, or with no record, is discarded; a resume sends
``If-Range`` (a server whose file changed sends all of it), and a 206 answer whose range
or validators differ from the record is refused and the partial file discarded.

URLs are tried in order (a mirror from the config first, then the registry's). Each
attempt has a wall-clock deadline (``deadline``; ``timeout`` bounds a single read), and
transient failures are retried with exponential backoff. Permanent ones move on to the
next URL at once: a 4xx answer other than 408 and 429, a refused redirect (to a scheme
other than http or https, or in a loop), a host name that does not resolve, a file
larger than it can be. A file that fails verification is deleted (a download) or renamed
to ``<name>.rejected`` (a file the user placed), so nothing that looks valid is left behind.

Where nobody publishes a checksum the sha256 of the first verified copy is pinned in
``<name>.sha256`` (sha256sum format) and every later copy must match it. Before the pin
the copy must look like the file (``check_content``): the kind its name says (gzip, zip
or tar magic; text that is not an HTML page) and a size within the registry's
``size_range``, so that an error page or a login form is never pinned.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tqdm import tqdm

from imrl.data import sources
from imrl.data.sources import Checksums, RemoteFile
from imrl.io import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
ORIGIN_SUFFIX = ".partial.json"        # where a partial file's bytes came from
VERIFIED_SUFFIX = ".verified.json"
REJECTED_SUFFIX = ".rejected"
PIN_SUFFIX = ".sha256"
CHUNK_BYTES = 1 << 20
USER_AGENT = "imrl-bench/0.1 (+dataset download; python urllib)"
RETRYABLE_STATUS = {408, 429}        # 4xx answers worth retrying; every other 4xx is final
DEFAULT_DEADLINE = 3 * 3600.0        # seconds per attempt; a slow transfer cut there resumes on the next
HEAD_BYTES = 1 << 16                 # read to tell a file's kind


class DownloadError(RuntimeError):
    """No URL produced a verified file; the message lists what each one did."""


class VerificationError(ValueError):
    """A file's size or checksum differs from the expected one; the message gives both."""


class _Transient(Exception):
    pass


class _Permanent(Exception):
    pass


# --------------------------------------------------------------------------------------
# Verification

def digests(path: Path, md5: bool = False, git_blob_sha1: bool = False) -> dict[str, str]:
    """sha256 (always) and, on request, md5 and the git blob id, in one pass."""
    size = path.stat().st_size
    hashers = {"sha256": hashlib.sha256()}
    if md5:
        hashers["md5"] = hashlib.md5()
    if git_blob_sha1:
        hashers["git_blob_sha1"] = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            for h in hashers.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashers.items()}


def pin_path(target: Path) -> Path:
    return target.with_name(target.name + PIN_SUFFIX)


def read_pin(target: Path) -> str | None:
    path = pin_path(target)
    if not path.exists():
        return None
    text = path.read_text().split()
    if not text or not re.fullmatch(r"[0-9a-f]{64}", text[0]):
        raise VerificationError(f"{path}: expected '<sha256>  <file name>', got {path.read_text()[:100]!r}")
    return text[0]


# An error page or a login form announces itself near its start.
_HTML = re.compile(rb"<(!doctype\s+html|html)[\s>]", re.IGNORECASE)
KIND_NAMES = {"tar.gz": "a gzip-compressed tar archive", "gzip": "a gzip file", "zip": "a zip archive",
              "tar": "a tar archive", "text": "a text file"}


def _kind_problem(path: Path, kind: str) -> str | None:
    """Why `path` is not of `kind` (``sources.content_kind``), or None."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    html = _HTML.search(head[:1024]) is not None
    shown = ("it is an HTML page: " if html else "") + f"it starts {head[:40]!r}"
    if kind == "text" and html:
        return shown
    if kind == "text":
        return f"it holds NUL bytes (binary data): {shown}" if b"\0" in head else None
    if kind == "zip":
        return None if head.startswith(b"PK\x03\x04") else shown
    if kind == "tar":
        return None if head[257:262] == b"ustar" else shown
    if not head.startswith(b"\x1f\x8b"):   # gzip and tar.gz
        return shown
    try:
        with gzip.open(path) as fh:
            inner = fh.read(HEAD_BYTES)
    except (OSError, EOFError) as err:
        return f"its gzip stream does not open ({type(err).__name__}: {err})"
    shown = f"what it compresses starts {inner[:40]!r}"
    if kind == "tar.gz":
        return None if inner[257:262] == b"ustar" else f"{shown}, not a tar header"
    return f"it is an HTML page: {shown}" if _HTML.search(inner[:1024]) else None


def plausible_size(spec: RemoteFile, expected: Checksums) -> tuple[int, int] | None:
    """The registry's size range, where nothing expected (no checksum, no size) applies."""
    return spec.size_range if not expected.has_hash and expected.size is None else None


def check_content(path: Path, spec: RemoteFile, expected: Checksums, target: Path) -> None:
    """Refuse what is plainly not the file where nothing proves it: a size outside the
    registry's plausible range, or content of another kind than the name says (an HTML
    error page, a login form)."""
    size = path.stat().st_size
    bounds = plausible_size(spec, expected)
    unproven = "no checksum is published, so nothing was pinned"
    if bounds and not bounds[0] <= size <= bounds[1]:
        raise VerificationError(f"{target.name}: {size:,} bytes, outside the plausible {bounds[0]:,} to "
                                f"{bounds[1]:,} bytes the registry gives ({unproven})")
    kind = sources.content_kind(spec.name)
    problem = kind and _kind_problem(path, kind)
    if problem:
        raise VerificationError(f"{target.name}: expected {KIND_NAMES[kind]}, but {problem} ({unproven})")


def verify(path: Path, expected: Checksums, target: Path | None = None,
           spec: RemoteFile | None = None) -> dict[str, Any]:
    """Check `path` against `expected` (and, with no published hash, against the sha256
    pinned beside `target`, the file's final name; with no pin yet, `spec`'s kind and
    size range: ``check_content``). Returns a record of what was checked; raises
    VerificationError naming every mismatch, expected vs actual."""
    target = target or path
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise VerificationError(f"{target.name}: size mismatch: expected {expected.size:,} bytes, got {size:,}")
    pinned = None if expected.has_hash else read_pin(target)
    if spec is not None and not expected.has_hash and pinned is None:
        check_content(path, spec, expected, target)
    actual = digests(path, md5=expected.md5 is not None, git_blob_sha1=expected.git_blob_sha1 is not None)
    wanted = {"sha256": expected.sha256 or pinned, "md5": expected.md5, "git_blob_sha1": expected.git_blob_sha1}
    problems = [f"{kind} mismatch: expected {value}, got {actual[kind]}"
                for kind, value in wanted.items() if value is not None and actual[kind] != value]
    if problems:
        hint = (f" (sha256 pinned on first use in {pin_path(target)}; delete it if the publisher changed the file)"
                if pinned else "")
        raise VerificationError(f"{target.name}: " + "; ".join(problems) + hint)
    checked = ["size"] if expected.size is not None else []
    checked += [kind for kind, value in wanted.items() if value is not None]
    return {"file": target.name, "size": size, **actual, "checked": checked,
            "pinned_on_first_use": not expected.has_hash and pinned is None}


def _accept(path: Path, target: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Move a verified file to its final name, pinning its sha256 when nothing else proves it."""
    if path != target:
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(path, target)
    if record["pinned_on_first_use"]:
        atomic_write_text(pin_path(target), f"{record['sha256']}  {target.name}\n")
        log.warning("%s: no published checksum; pinned sha256 %s in %s (set the dataset's "
                    "params.files.%s.sha256 in the config to pin it for everyone)",
                    target.name, record["sha256"], pin_path(target), target.name)
    return record


def check_existing(target: Path, expected: Checksums, spec: RemoteFile | None = None) -> dict[str, Any]:
    """Verify a file already at its final name (placed by hand, or from an earlier run).
    A file that fails is renamed to ``<name>.rejected`` so it cannot be used."""
    try:
        record = verify(target, expected, spec=spec)
    except VerificationError as err:
        rejected = target.with_name(target.name + REJECTED_SUFFIX)
        os.replace(target, rejected)
        raise VerificationError(f"{target}: {err}; the file was moved to {rejected}") from None
    return _accept(target, target, record)


# --------------------------------------------------------------------------------------
# HTTP with resume

@dataclass(frozen=True)
class _Policy:
    retries: int
    backoff: float        # seconds before the first retry, doubled each time
    timeout: float        # seconds one socket operation may wait
    deadline: float       # seconds one attempt may take in all
    progress: bool | None


class _Partial:
    """``<name>.partial`` and the record of where its bytes came from (``<name>.partial.json``:
    URL, ETag, Last-Modified, total size)."""

    def __init__(self, target: Path):
        self.path = target.with_name(target.name + PARTIAL_SUFFIX)
        self.origin_path = target.with_name(target.name + ORIGIN_SUFFIX)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def claim(self, url: str) -> dict[str, Any] | None:
        """The record, when the partial file holds bytes from `url`; otherwise those bytes
        (of another URL, or of unknown origin) are discarded and None is returned."""
        try:
            origin = json.loads(self.origin_path.read_text())
        except (OSError, ValueError):
            origin = None
        if self.size() and isinstance(origin, dict) and origin.get("url") == url:
            return origin
        if self.size():
            log.info("%s: discarding %s: its bytes came from %s", url, self.path.name,
                     origin.get("url") if isinstance(origin, dict) else "an unrecorded source")
        self.discard()
        return None

    def start(self, origin: dict[str, Any]) -> None:
        """Forget the bytes held, then record where the new ones come from."""
        self.path.unlink(missing_ok=True)
        atomic_write_json(self.origin_path, origin)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.origin_path.unlink(missing_ok=True)


def _validators(response: http.client.HTTPResponse) -> dict[str, Any]:
    """What identifies the file an answer serves: ETag, Last-Modified and total size."""
    if response.status == 206:
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
    else:
        total = response.headers.get("Content-Length") or ""
    return {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified"),
            "size": int(total) if total.isdigit() else None}


def _content_range_start(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (value or "").strip())
    return int(match.group(1)) if match else None


class _Deadline:
    """One attempt's wall-clock limit. A socket timeout bounds a single read, so a server
    sending a byte a minute never trips it: when the time is up, the connections of the
    attempt are shut down, which ends a read in progress, and `explain` says why."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self.opener = urllib.request.build_opener(_TrackedHTTP(self), _TrackedHTTPS(self), _RedirectHandler())

    def connection_class(self, base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        """`base`, remembering its socket (urllib hands the socket to the response and
        drops the connection's reference to it)."""
        deadline = self

        class Tracked(base):
            def connect(self) -> None:
                super().connect()
                with deadline._lock:
                    deadline._sockets.append(self.sock)
                    if deadline.expired:
                        deadline._shut(self.sock)
        return Tracked

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            # The plain socket's shutdown: an SSL socket's own would also drop its TLS state
            # under the thread that is reading.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    def explain(self, what: str) -> str:
        return f"the deadline of {self.seconds:g} s per attempt passed ({what})" if self.expired else what

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _TrackedHTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.deadline.connection_class(http.client.HTTPConnection), req)


class _TrackedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.deadline.connection_class(http.client.HTTPSConnection), req)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http and https only (urllib would also follow one to ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} refused (only http and https are "
                                         "followed)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _stream_once(url: str, partial: _Partial, origin: dict[str, Any] | None, limit: int | None,
                 policy: _Policy) -> None:
    """One HTTP request within the deadline: append to the partial file (whose bytes came
    from `url` as `origin` records, if any) from its current size, or rewrite it."""
    offset = partial.size() if origin else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        etag = origin.get("etag") or ""
        # If-Range takes a strong ETag only; else the date.
        if_range = etag if etag and not etag.startswith("W/") else origin.get("last_modified")
        if if_range:
            headers["If-Range"] = if_range
    with _Deadline(policy.deadline) as deadline:
        try:
            response = deadline.opener.open(urllib.request.Request(url, headers=headers), timeout=policy.timeout)
        except urllib.error.HTTPError as err:
            total = ((err.headers and err.headers.get("Content-Range")) or "").rpartition("/")[2]
            if err.code == 416 and offset and total.isdigit() and int(total) == offset == origin.get("size"):
                return   # we hold the whole file already
            if err.code == 416 and offset:
                partial.discard()
                raise _Transient(f"HTTP 416 for bytes={offset}-; restarting from byte 0") from None
            if 300 <= err.code < 500 and err.code not in RETRYABLE_STATUS:
                raise _Permanent(f"HTTP {err.code} {err.reason}") from None
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        except urllib.error.URLError as err:
            if isinstance(err.reason, socket.gaierror):
                raise _Permanent(f"cannot resolve the host name ({err.reason}); not retried") from None
            if not isinstance(err.reason, OSError):
                raise _Permanent(f"{err.reason}") from None
            raise _Transient(deadline.explain(f"{type(err.reason).__name__}: {err.reason}")) from None
        except ValueError as err:
            raise _Permanent(f"not a usable URL: {err}") from None
        except (OSError, http.client.HTTPException) as err:
            raise _Transient(deadline.explain(f"{type(err).__name__}: {err}")) from None
        with response:
            _receive(url, response, partial, origin, offset, limit, deadline, policy.progress)


def _receive(url: str, response: http.client.HTTPResponse, partial: _Partial, origin: dict[str, Any] | None,
             offset: int, limit: int | None, deadline: _Deadline, progress: bool | None) -> None:
    validators = _validators(response)
    if response.status == 206:
        content_range = response.headers.get("Content-Range")
        recorded = {key: origin.get(key) for key in validators} if origin else None
        if not offset or _content_range_start(content_range) != offset or recorded != validators:
            partial.discard()
            asked = f"bytes={offset}- of {recorded}" if offset else "the whole file"
            raise _Transient(f"asked for {asked}, the server answered 206 with Content-Range {content_range!r} "
                             f"of {validators}; discarded the partial file, restarting")
        mode = "ab"
    else:
        if offset:
            log.info("%s: the server sent the whole file (changed, or no ranges); restarting from byte 0", url)
        partial.start({"url": url, **validators})
        offset, mode = 0, "wb"
    if limit is not None and validators["size"] is not None and validators["size"] > limit:
        partial.discard()
        raise _Permanent(f"the server offers {validators['size']:,} bytes; the file has at most {limit:,}")
    length_header = response.headers.get("Content-Length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    total = None if length is None else offset + length
    received = 0
    with open(partial.path, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                               unit_divisor=1024, desc=partial.path.name.removesuffix(PARTIAL_SUFFIX),
                                               disable=None if progress is None else not progress) as bar:
        try:
            while block := response.read(CHUNK_BYTES):
                if limit is not None and offset + received + len(block) > limit:
                    partial.discard()
                    raise _Permanent(f"the server sent more than the {limit:,} bytes the file can have")
                out.write(block)
                received += len(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as err:
            raise _Transient(deadline.explain(f"connection lost after {offset + received:,} bytes: "
                                              f"{type(err).__name__}")) from None
    if deadline.expired or (length is not None and received != length):
        raise _Transient(deadline.explain(f"connection closed after {offset + received:,} of "
                                          f"{'?' if total is None else format(total, ',')} bytes"))


def _download(url: str, partial: _Partial, expected_size: int | None, limit: int | None, policy: _Policy) -> bool:
    """Fill the partial file from `url`, resuming across transient failures. Returns True
    if any bytes came from an earlier attempt (so a checksum failure may be a stale mix)."""
    resumed = False
    for attempt in range(policy.retries + 1):
        origin = partial.claim(url)
        held = partial.size()
        if limit is not None and held > limit:
            partial.discard()
            origin, held = None, 0
        if expected_size is not None and held == expected_size and held:
            return True
        resumed = resumed or held > 0
        try:
            _stream_once(url, partial, origin, limit, policy)
            return resumed
        except _Permanent as err:
            raise DownloadError(str(err)) from None
        except _Transient as err:
            if attempt == policy.retries:
                raise DownloadError(f"gave up after {policy.retries + 1} attempts; last: {err}") from None
            delay = policy.backoff * 2 ** attempt
            log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", url, err, delay, attempt + 2,
                        policy.retries + 1)
            time.sleep(delay)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------
# The entry point the workflow calls

def fetch(dataset: str, file_name: str, raw_dir: str | Path, options: Mapping[str, Any] | None = None, *,
          retries: int = 4, backoff: float = 2.0, timeout: float = 60.0, deadline: float = DEFAULT_DEADLINE,
          progress: bool | None = None) -> dict[str, Any]:
    """Make ``raw_dir/file_name`` a verified copy of the registry's file: keep (after
    verifying) a file already there, else copy the configured local path, else copy it
    from the installed package that ships it, else download from the configured mirror
    and the registry's URLs in order. `timeout` bounds one socket operation, `deadline`
    one attempt. Returns the verification record."""
    spec: RemoteFile = sources.remote_file(dataset, file_name)
    expected = sources.expected_checksums(spec, options)
    override = sources.file_override(options, file_name)
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / spec.name

    if spec.checksums.has_hash and expected != spec.checksums:
        log.warning("%s: the config's checksum pins replace the registry's (%s)", spec.name, spec.checksum_source)
    if target.exists():
        log.info("%s: already present; verifying", target)
        return check_existing(target, expected, spec)
    if override.get("path"):
        return _copy_local(Path(override["path"]).expanduser(), target, expected, spec)
    if spec.package and not override.get("url"):
        located = sources.package_file(spec)
        if located is None:
            raise DownloadError(f"{dataset}/{spec.name}: NOT AVAILABLE: {spec.package} is not in the installed "
                                f"packages. {spec.manual}")
        return _copy_local(located, target, expected, spec)

    urls = ([override["url"]] if override.get("url") else []) + list(spec.urls)
    if not urls:
        raise DownloadError(f"{dataset}/{spec.name}: no public URL. {spec.manual}")
    policy = _Policy(retries, backoff, timeout, deadline, progress)
    bounds = plausible_size(spec, expected)
    limit = expected.size if expected.size is not None else bounds[1] if bounds else None
    partial = _Partial(target)
    failures: list[str] = []
    for url in urls:
        for fresh_retry in (False, True):
            log.info("%s: downloading %s", spec.name, url)
            try:
                resumed = _download(url, partial, expected.size, limit, policy)
            except DownloadError as err:
                failures.append(f"{url}: {err}")
                break
            try:
                record = verify(partial.path, expected, target, spec)
            except VerificationError as err:
                partial.discard()
                failures.append(f"{url}: {err}; the downloaded file was deleted")
                if resumed and not fresh_retry:
                    log.warning("%s: verification failed after a resumed download; downloading afresh", spec.name)
                    continue
                break
            record["url"] = url
            log.info("%s: verified (%s)", spec.name, ", ".join(record["checked"]))
            record = _accept(partial.path, target, record)
            partial.discard()   # its origin record
            return record
    raise DownloadError(f"{dataset}/{spec.name}: no source gave a verified file:\n  " + "\n  ".join(failures)
                        + (f"\nBy hand: {spec.manual}" if spec.manual else ""))


def _copy_local(source_path: Path, target: Path, expected: Checksums, spec: RemoteFile) -> dict[str, Any]:
    if not source_path.is_file():
        raise DownloadError(f"{target.name}: configured local path {source_path} is not a file")
    with atomic_path(target, suffix=PARTIAL_SUFFIX) as tmp:
        shutil.copyfile(source_path, tmp)
        record = verify(tmp, expected, target, spec)
    record["path"] = str(source_path)
    return _accept(target, target, record)


def verify_file(dataset: str, file_name: str, raw_dir: str | Path,
                options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Verify ``raw_dir/file_name`` where it lies (downloaded or placed by hand) and
    write the record to ``<file>.verified.json``, which later stages depend on."""
    spec = sources.remote_file(dataset, file_name)
    target = Path(raw_dir) / spec.name
    if not target.exists():
        raise FileNotFoundError(f"{target}: not found. {spec.manual}")
    record = check_existing(target, sources.expected_checksums(spec, options), spec)
    record.update(dataset=dataset, checksum_source=spec.checksum_source, note=spec.note)
    atomic_write_json(target.with_name(target.name + VERIFIED_SUFFIX), record)
    return record
