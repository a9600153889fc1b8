"""Verified downloads into ``data/raw/<dataset>/``.

A file reaches its final name only after its size and every known checksum match
(``verify``); until then it lives under ``<name>.partial``, which is also what a later
run resumes with an HTTP Range request. URLs are tried in order (a mirror from the
config first, then the registry's), each with retries and exponential backoff for
transient failures; a 4xx answer moves on to the next URL at once. A file that fails
verification is deleted (a download) or renamed to ``<name>.rejected`` (a file the user
placed), so nothing that looks valid is left behind.

Where nobody publishes a checksum the sha256 of the first verified copy is pinned in
``<name>.sha256`` (sha256sum format) and every later copy must match it.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from tqdm import tqdm

from imrl.data import sources
from imrl.data.sources import Checksums, RemoteFile
from imrl.io import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
VERIFIED_SUFFIX = ".verified.json"
REJECTED_SUFFIX = ".rejected"
PIN_SUFFIX = ".sha256"
CHUNK_BYTES = 1 << 20
USER_AGENT = "imrl-bench/0.1 (+dataset download; python urllib)"
RETRYABLE_STATUS = {408, 425, 429}   # 4xx answers worth retrying; every other 4xx is final


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


def verify(path: Path, expected: Checksums, target: Path | None = None) -> dict[str, Any]:
    """Check `path` against `expected` (and, with no published hash, against the sha256
    pinned beside `target`, the file's final name). Returns a record of what was
    checked; raises VerificationError naming every mismatch, expected vs actual."""
    target = target or path
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        raise VerificationError(f"{target.name}: size mismatch: expected {expected.size:,} bytes, got {size:,}")
    actual = digests(path, md5=expected.md5 is not None, git_blob_sha1=expected.git_blob_sha1 is not None)
    pinned = None if expected.has_hash else read_pin(target)
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


def check_existing(target: Path, expected: Checksums) -> dict[str, Any]:
    """Verify a file already at its final name (placed by hand, or from an earlier run).
    A file that fails is renamed to ``<name>.rejected`` so it cannot be used."""
    try:
        record = verify(target, expected)
    except VerificationError as err:
        rejected = target.with_name(target.name + REJECTED_SUFFIX)
        os.replace(target, rejected)
        raise VerificationError(f"{target}: {err}; the file was moved to {rejected}") from None
    return _accept(target, target, record)


# --------------------------------------------------------------------------------------
# HTTP with resume

def _content_range_start(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (value or "").strip())
    return int(match.group(1)) if match else None


def _stream_once(url: str, partial: Path, timeout: float, progress: bool | None) -> None:
    """One HTTP request: append to `partial` from its current size (Range) or rewrite it."""
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Nothing beyond what we hold: complete if the server's total agrees, else start over.
            total = (err.headers.get("Content-Range") or "").rpartition("/")[2]
            if total.isdigit() and int(total) == offset:
                return
            partial.unlink()
            raise _Transient(f"HTTP 416 for bytes={offset}-; restarting from byte 0") from None
        if 400 <= err.code < 500 and err.code not in RETRYABLE_STATUS:
            raise _Permanent(f"HTTP {err.code} {err.reason}") from None
        raise _Transient(f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(f"{type(err).__name__}: {err}") from None
    with response:
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                partial.unlink()
                raise _Transient(f"asked to resume at byte {offset:,}, server sent Content-Range "
                                 f"{response.headers.get('Content-Range')!r}; restarting")
            mode = "ab"
        else:
            if offset:
                log.info("%s: server ignored the Range request; downloading from byte 0", url)
            offset, mode = 0, "wb"
        total = None if length is None else offset + length
        received = 0
        with open(partial, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                              unit_divisor=1024, desc=partial.name.removesuffix(PARTIAL_SUFFIX),
                                              disable=None if progress is None else not progress) as bar:
            try:
                while block := response.read(CHUNK_BYTES):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:
                raise _Transient(f"connection lost after {offset + received:,} bytes: {type(err).__name__}") from None
        if length is not None and received != length:
            raise _Transient(f"connection closed after {offset + received:,} of {total:,} bytes")


def _download(url: str, partial: Path, expected_size: int | None, retries: int, backoff: float,
              timeout: float, progress: bool | None) -> bool:
    """Fill `partial` from `url`, resuming across transient failures. Returns True if
    any bytes came from an earlier attempt (so a checksum failure may be a stale mix)."""
    resumed = False
    for attempt in range(retries + 1):
        held = partial.stat().st_size if partial.exists() else 0
        if expected_size is not None and held > expected_size:
            partial.unlink()
            held = 0
        if expected_size is not None and held == expected_size and held:
            return True
        resumed = resumed or held > 0
        try:
            _stream_once(url, partial, timeout, progress)
            return resumed
        except _Permanent as err:
            raise DownloadError(str(err)) from None
        except _Transient as err:
            if attempt == retries:
                raise DownloadError(f"gave up after {retries + 1} attempts; last: {err}") from None
            delay = backoff * 2 ** attempt
            log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", url, err, delay, attempt + 2, retries + 1)
            time.sleep(delay)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------
# The entry point the workflow calls

def fetch(dataset: str, file_name: str, raw_dir: str | Path, options: Mapping[str, Any] | None = None, *,
          retries: int = 4, backoff: float = 2.0, timeout: float = 60.0,
          progress: bool | None = None) -> dict[str, Any]:
    """Make ``raw_dir/file_name`` a verified copy of the registry's file: keep (after
    verifying) a file already there, else copy the configured local path, else copy it
    from the installed package that ships it, else download from the configured mirror
    and the registry's URLs in order. Returns the verification record."""
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
        return check_existing(target, expected)
    if override.get("path"):
        return _copy_local(Path(override["path"]).expanduser(), target, expected)
    if spec.package and not override.get("url"):
        located = sources.package_file(spec)
        if located is None:
            raise DownloadError(f"{dataset}/{spec.name}: NOT AVAILABLE: {spec.package} is not in the installed "
                                f"packages. {spec.manual}")
        return _copy_local(located, target, expected)

    urls = ([override["url"]] if override.get("url") else []) + list(spec.urls)
    if not urls:
        raise DownloadError(f"{dataset}/{spec.name}: no public URL. {spec.manual}")
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    failures: list[str] = []
    for url in urls:
        for fresh_retry in (False, True):
            log.info("%s: downloading %s", spec.name, url)
            try:
                resumed = _download(url, partial, expected.size, retries, backoff, timeout, progress)
            except DownloadError as err:
                failures.append(f"{url}: {err}")
                break
            try:
                record = verify(partial, expected, target)
            except VerificationError as err:
                partial.unlink(missing_ok=True)
                failures.append(f"{url}: {err}; the downloaded file was deleted")
                if resumed and not fresh_retry:
                    log.warning("%s: verification failed after a resumed download; downloading afresh", spec.name)
                    continue
                break
            record["url"] = url
            log.info("%s: verified (%s)", spec.name, ", ".join(record["checked"]))
            return _accept(partial, target, record)
    raise DownloadError(f"{dataset}/{spec.name}: no source gave a verified file:\n  " + "\n  ".join(failures)
                        + (f"\nBy hand: {spec.manual}" if spec.manual else ""))


def _copy_local(source_path: Path, target: Path, expected: Checksums) -> dict[str, Any]:
    if not source_path.is_file():
        raise DownloadError(f"{target.name}: configured local path {source_path} is not a file")
    with atomic_path(target, suffix=PARTIAL_SUFFIX) as tmp:
        shutil.copyfile(source_path, tmp)
        record = verify(tmp, expected, target)
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
    record = check_existing(target, sources.expected_checksums(spec, options))
    record.update(dataset=dataset, checksum_source=spec.checksum_source, note=spec.note)
    atomic_write_json(target.with_name(target.name + VERIFIED_SUFFIX), record)
    return record
