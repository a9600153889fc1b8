"""The downloader over real HTTP on loopback: verification before use, atomic
rename, resume with Range only of the same file from the same URL, retries of
transient failures only, a deadline per attempt, mirror fallback, manual files, local
copies, first-use pins only of content that looks like the file; and that a failure
leaves nothing that looks valid."""

from __future__ import annotations

import gzip
import io
import json
import socket
import time
import zipfile

import pytest

from imrl.data import download, sources
from imrl.data.download import DownloadError, VerificationError
from imrl.data.sources import NONE_PUBLISHED, PUBLISHER, Checksums, RemoteFile
from tests import raw_fixtures as rf
from tests.loopback import LAST_MODIFIED, Loopback, etag

CONTENT = bytes(range(256)) * 4099          # ~1 MB, not a multiple of the chunk size
FAST = {"retries": 2, "backoff": 0.01, "timeout": 10, "deadline": 30, "progress": False}
HTML = b"<!DOCTYPE html>\n<html><head><title>Service unavailable</title></head><body>Try later</body></html>\n"


@pytest.fixture
def server():
    loopback = Loopback()
    yield loopback
    loopback.close()


@pytest.fixture
def registry_file(monkeypatch, server):
    """A registry entry whose URLs are all on loopback (tests never reach the internet)."""
    def make(*paths: str, checksums: Checksums | None = None, name: str = "data.bin", **fields) -> RemoteFile:
        spec = RemoteFile(name=name, urls=tuple(server.url + p for p in paths),
                          checksums=checksums if checksums is not None else
                          Checksums(size=len(CONTENT), sha256=rf.sha256(CONTENT)),
                          checksum_source=PUBLISHER if checksums is None or checksums.has_hash else NONE_PUBLISHED,
                          manual="place data.bin by hand", **fields)
        monkeypatch.setattr(sources, "remote_file", lambda dataset, name: spec)
        return spec
    return make


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_download_is_verified_then_renamed(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin")
    record = download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert (tmp_path / "data.bin").read_bytes() == CONTENT
    assert record["checked"] == ["size", "sha256"] and record["url"].endswith("/a/data.bin")
    assert leftovers(tmp_path) == ["data.bin"]


def test_corrupted_byte_fails_with_expected_and_actual_and_keeps_nothing(tmp_path, server, registry_file):
    corrupted = bytearray(CONTENT)
    corrupted[12345] ^= 0xFF
    server.files["/a/data.bin"] = bytes(corrupted)
    registry_file("/a/data.bin")
    with pytest.raises(DownloadError) as err:
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    message = str(err.value)
    assert f"sha256 mismatch: expected {rf.sha256(CONTENT)}, got {rf.sha256(bytes(corrupted))}" in message
    assert "place data.bin by hand" in message
    assert leftovers(tmp_path) == []


def test_truncated_file_fails_on_size(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT[:-1000]
    registry_file("/a/data.bin")
    with pytest.raises(DownloadError, match=f"size mismatch: expected {len(CONTENT):,} bytes, got {len(CONTENT) - 1000:,}"):
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert leftovers(tmp_path) == []


def test_download_cut_off_half_way_is_resumed_with_range(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    server.cut_once.add("/a/data.bin")
    registry_file("/a/data.bin")
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert (tmp_path / "data.bin").read_bytes() == CONTENT
    assert server.requests == [("/a/data.bin", None), ("/a/data.bin", f"bytes={len(CONTENT) // 2}-")]
    assert leftovers(tmp_path) == ["data.bin"]


def interrupted_run(tmp_path, server, path="/a/data.bin"):
    """An earlier run cut off half way: it leaves the partial file and its origin record."""
    server.cut_once.add(path)
    with pytest.raises(DownloadError, match="gave up after 1 attempts"):
        download.fetch("ds", "data.bin", tmp_path, **{**FAST, "retries": 0})
    assert leftovers(tmp_path) == ["data.bin.partial", "data.bin.partial.json"]
    server.requests.clear()
    server.if_range.clear()


def test_partial_file_of_an_earlier_run_is_resumed_with_if_range(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin")
    interrupted_run(tmp_path, server)
    origin = json.loads((tmp_path / "data.bin.partial.json").read_text())
    assert origin == {"url": server.url + "/a/data.bin", "etag": etag(CONTENT), "last_modified": LAST_MODIFIED,
                      "size": len(CONTENT)}
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert server.requests == [("/a/data.bin", f"bytes={len(CONTENT) // 2}-")]
    assert server.if_range == [etag(CONTENT)]
    assert (tmp_path / "data.bin").read_bytes() == CONTENT
    assert leftovers(tmp_path) == ["data.bin"]


@pytest.mark.parametrize("origin", [None, {"url": "http://elsewhere.example/data.bin"}])
def test_partial_of_unknown_or_other_origin_is_discarded(tmp_path, server, registry_file, origin):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin")
    (tmp_path / "data.bin.partial").write_bytes(b"\0" * 300_000)     # bytes of who knows what
    if origin:
        (tmp_path / "data.bin.partial.json").write_text(json.dumps(origin))
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert server.requests == [("/a/data.bin", None)]
    assert (tmp_path / "data.bin").read_bytes() == CONTENT
    assert leftovers(tmp_path) == ["data.bin"]


def test_stale_partial_failing_verification_is_downloaded_afresh(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin")
    (tmp_path / "data.bin.partial").write_bytes(b"\0" * 300_000)     # damaged on disk since it was recorded
    (tmp_path / "data.bin.partial.json").write_text(json.dumps(
        {"url": server.url + "/a/data.bin", "etag": etag(CONTENT), "last_modified": LAST_MODIFIED,
         "size": len(CONTENT)}))
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert server.requests == [("/a/data.bin", "bytes=300000-"), ("/a/data.bin", None)]
    assert (tmp_path / "data.bin").read_bytes() == CONTENT


@pytest.mark.parametrize("server_checks_if_range", [True, False])
def test_captive_portal_partial_is_never_resumed_from_the_real_server(tmp_path, server, registry_file,
                                                                       server_checks_if_range):
    """A portal answered the URL with its own page; the real server then offers the file.
    A server that checks If-Range sends all of it; one that ignores If-Range sends a 206
    whose validators differ from the record, which is refused."""
    server.files["/a/data.bin"] = CONTENT
    server.ignore_if_range = not server_checks_if_range
    registry_file("/a/data.bin", checksums=Checksums())
    (tmp_path / "data.bin.partial").write_bytes(HTML)
    (tmp_path / "data.bin.partial.json").write_text(json.dumps(
        {"url": server.url + "/a/data.bin", "etag": etag(HTML), "last_modified": None, "size": len(HTML)}))
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    expected = [("/a/data.bin", f"bytes={len(HTML)}-")] + ([] if server_checks_if_range else [("/a/data.bin", None)])
    assert server.requests == expected and server.if_range[0] == etag(HTML)
    assert (tmp_path / "data.bin").read_bytes() == CONTENT
    assert (tmp_path / "data.bin.sha256").read_text().split()[0] == rf.sha256(CONTENT)
    assert leftovers(tmp_path) == ["data.bin", "data.bin.sha256"]


def test_lying_206_is_refused_and_the_file_downloaded_whole(tmp_path, server, registry_file):
    """With no checksum to catch a mixed file, a 206 that serves another file's bytes
    (its own validators) after a real interruption must not be appended."""
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin", checksums=Checksums())
    interrupted_run(tmp_path, server)
    server.lying_206["/a/data.bin"] = CONTENT[::-1]
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert server.requests == [("/a/data.bin", f"bytes={len(CONTENT) // 2}-"), ("/a/data.bin", None)]
    assert (tmp_path / "data.bin").read_bytes() == CONTENT
    assert (tmp_path / "data.bin.sha256").read_text().split()[0] == rf.sha256(CONTENT)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("inner.csv", data)
    return buffer.getvalue()


TEXT = b"user,item,rating\n" + b"1,2,5\n" * 1000


@pytest.mark.parametrize("name, served, problem", [
    ("data.csv", TEXT, None),
    ("data.csv", HTML, "expected a text file, but it is an HTML page"),
    ("data.csv", CONTENT, r"expected a text file, but it holds NUL bytes \(binary data\): it starts b'\\x00"),
    ("data.json.gz", gzipped(TEXT), None),
    ("data.json.gz", HTML, "expected a gzip file, but it is an HTML page"),
    ("data.json.gz", gzipped(HTML), "expected a gzip file, but it is an HTML page: what it compresses"),
    ("data.tar.gz", rf.tar_bytes({"d/x.csv": TEXT}), None),
    ("data.tar.gz", gzipped(TEXT), "expected a gzip-compressed tar archive, but what it compresses starts"),
    ("data.zip", zipped(TEXT), None),
    ("data.zip", HTML, "expected a zip archive, but it is an HTML page"),
])
def test_without_a_checksum_only_content_of_the_right_kind_is_pinned(tmp_path, server, registry_file, name,
                                                                     served, problem):
    server.files["/a/" + name] = served
    registry_file("/a/" + name, checksums=Checksums(), name=name)
    if problem is None:
        assert download.fetch("ds", name, tmp_path, **FAST)["pinned_on_first_use"]
        assert leftovers(tmp_path) == [name, name + ".sha256"]
        return
    with pytest.raises(DownloadError, match=problem) as err:
        download.fetch("ds", name, tmp_path, **FAST)
    assert "nothing was pinned" in str(err.value)
    assert leftovers(tmp_path) == []


def test_a_file_placed_by_hand_is_checked_before_its_pin(tmp_path, registry_file):
    registry_file(checksums=Checksums(), name="data.csv")
    (tmp_path / "data.csv").write_bytes(HTML)
    with pytest.raises(VerificationError, match="expected a text file, but it is an HTML page") as err:
        download.verify_file("ds", "data.csv", tmp_path)
    assert "moved to" in str(err.value)
    assert leftovers(tmp_path) == ["data.csv.rejected"]


def test_size_outside_the_registry_range_is_refused(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin", checksums=Checksums(), size_range=(2 * len(CONTENT), 3 * len(CONTENT)))
    with pytest.raises(DownloadError, match=f"{len(CONTENT):,} bytes, outside the plausible {2 * len(CONTENT):,} "
                                            f"to {3 * len(CONTENT):,} bytes"):
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert leftovers(tmp_path) == []
    registry_file("/a/data.bin", checksums=Checksums(), size_range=(10, 1000))
    server.requests.clear()
    with pytest.raises(DownloadError, match=f"the server offers {len(CONTENT):,} bytes; the file has at most 1,000"):
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert len(server.requests) == 1 and leftovers(tmp_path) == []


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_trickling_server_is_cut_off_by_the_deadline(tmp_path, server, registry_file, part):
    """A byte every 50 ms never trips the 10 s socket timeout; the 0.5 s deadline per attempt does."""
    server.files["/a/data.bin"] = CONTENT
    server.trickle["/a/data.bin"] = part
    registry_file("/a/data.bin")
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"gave up after 2 attempts; last: the deadline of 0.5 s per attempt"):
        download.fetch("ds", "data.bin", tmp_path, **{**FAST, "retries": 1, "deadline": 0.5})
    assert time.monotonic() - started < 5
    assert len(server.requests) == 2


@pytest.mark.parametrize("status, attempts", [(404, 1), (403, 1), (410, 1), (408, 3), (429, 3), (503, 3)])
def test_only_transient_statuses_are_retried(tmp_path, server, registry_file, status, attempts):
    server.status["/a/data.bin"] = status
    registry_file("/a/data.bin")
    with pytest.raises(DownloadError, match=f"HTTP {status}"):
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert len(server.requests) == attempts and leftovers(tmp_path) == []


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/data.bin", "file:///etc/hostname"])
def test_refused_redirect_is_not_retried(tmp_path, server, registry_file, location):
    server.redirect["/a/data.bin"] = location
    registry_file("/a/data.bin")
    with pytest.raises(DownloadError, match="HTTP 302.*" + location.split(":")[0]) as err:
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert location in str(err.value)
    assert len(server.requests) == 1 and leftovers(tmp_path) == []


def test_redirect_to_http_is_followed(tmp_path, server, registry_file):
    server.files["/b/data.bin"] = CONTENT
    server.redirect["/a/data.bin"] = server.url + "/b/data.bin"
    registry_file("/a/data.bin")
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert [path for path, _ in server.requests] == ["/a/data.bin", "/b/data.bin"]


def test_unresolvable_host_is_not_retried(tmp_path, server, registry_file, monkeypatch):
    real, looked_up = socket.getaddrinfo, []

    def offline(host, *args, **kwargs):   # no DNS query leaves the machine
        looked_up.append(host)
        if host != "127.0.0.1":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    server.files["/a/data.bin"] = CONTENT
    spec = registry_file("/a/data.bin")
    monkeypatch.setattr(sources, "remote_file", lambda dataset, name: RemoteFile(
        **{**spec.__dict__, "urls": ("http://mirror.invalid/data.bin", *spec.urls)}))
    record = download.fetch("ds", "data.bin", tmp_path, **{**FAST, "backoff": 5})
    assert record["url"] == server.url + "/a/data.bin"
    assert looked_up == ["mirror.invalid", "127.0.0.1"]


def test_every_registry_file_without_a_checksum_can_be_checked_before_its_pin():
    """Kaggle's, Amazon's, LibraryThing's, GoodReads' and freeCodeCamp's files: a kind the
    content check knows, and an exact size or a plausible range."""
    unproven = [f for s in sources.SOURCES.values() for v in s.variants.values() for f in v.files
                if not f.checksums.has_hash]
    assert len(unproven) >= 10
    for spec in unproven:
        assert sources.content_kind(spec.name) is not None, spec.name
        assert spec.checksums.size is not None or spec.size_range is not None, spec.name
        assert spec.size_range is None or 0 < spec.size_range[0] < spec.size_range[1], spec.name


def test_404_then_a_working_mirror(tmp_path, server, registry_file):
    server.files["/mirror/data.bin"] = CONTENT
    registry_file("/gone/data.bin", "/mirror/data.bin")
    record = download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert record["url"].endswith("/mirror/data.bin")
    assert [path for path, _ in server.requests] == ["/gone/data.bin", "/mirror/data.bin"]   # 404 is not retried


def test_configured_mirror_is_tried_first(tmp_path, server, registry_file):
    server.files["/config/data.bin"] = CONTENT
    registry_file("/registry/data.bin")
    options = {"files": {"data.bin": {"url": server.url + "/config/data.bin"}}}
    download.fetch("ds", "data.bin", tmp_path, options, **FAST)
    assert [path for path, _ in server.requests] == ["/config/data.bin"]


def test_every_source_failing_lists_them_all(tmp_path, server, registry_file):
    registry_file("/one/data.bin", "/two/data.bin")
    with pytest.raises(DownloadError) as err:
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert "/one/data.bin: HTTP 404" in str(err.value) and "/two/data.bin: HTTP 404" in str(err.value)
    assert leftovers(tmp_path) == []


def test_manually_placed_file_is_verified_and_a_bad_one_rejected(tmp_path, server, registry_file):
    registry_file("/a/data.bin")
    (tmp_path / "data.bin").write_bytes(CONTENT)
    assert download.fetch("ds", "data.bin", tmp_path, **FAST)["sha256"] == rf.sha256(CONTENT)
    assert server.requests == []
    (tmp_path / "data.bin").write_bytes(CONTENT[:-1] + b"x")
    with pytest.raises(VerificationError, match="sha256 mismatch") as err:
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert "moved to" in str(err.value)
    assert leftovers(tmp_path) == ["data.bin.rejected"]


def test_local_path_from_the_config_is_copied_and_verified(tmp_path, server, registry_file):
    registry_file("/a/data.bin")
    local = tmp_path / "elsewhere.bin"
    local.write_bytes(CONTENT)
    raw = tmp_path / "raw"
    download.fetch("ds", "data.bin", raw, {"files": {"data.bin": {"path": str(local)}}}, **FAST)
    assert (raw / "data.bin").read_bytes() == CONTENT and server.requests == []
    local.write_bytes(CONTENT[:10])
    (raw / "data.bin").unlink()
    with pytest.raises(VerificationError, match="size mismatch"):
        download.fetch("ds", "data.bin", raw, {"files": {"data.bin": {"path": str(local)}}}, **FAST)
    assert leftovers(raw) == []


def test_no_published_checksum_pins_the_first_download(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin", checksums=Checksums())
    record = download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert record["pinned_on_first_use"]
    assert (tmp_path / "data.bin.sha256").read_text() == f"{rf.sha256(CONTENT)}  data.bin\n"
    (tmp_path / "data.bin").unlink()
    server.files["/a/data.bin"] = CONTENT[::-1]                      # the host now serves other bytes
    with pytest.raises(DownloadError, match="sha256 mismatch.*pinned on first use"):
        download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert leftovers(tmp_path) == ["data.bin.sha256"]


def test_git_blob_id_and_user_pins(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin", checksums=Checksums(git_blob_sha1=rf.git_blob_sha1(CONTENT)))
    assert download.fetch("ds", "data.bin", tmp_path, **FAST)["checked"] == ["git_blob_sha1"]
    (tmp_path / "data.bin").unlink()
    wrong = {"files": {"data.bin": {"sha256": "0" * 64}}}          # a pin replaces the registry's checksums
    with pytest.raises(DownloadError, match=f"sha256 mismatch: expected {'0' * 64}"):
        download.fetch("ds", "data.bin", tmp_path, wrong, **FAST)


def test_verify_file_records_what_was_checked(tmp_path, server, registry_file):
    registry_file("/a/data.bin")
    (tmp_path / "data.bin").write_bytes(CONTENT)
    download.verify_file("ds", "data.bin", tmp_path)
    record = json.loads((tmp_path / "data.bin.verified.json").read_text())
    assert record["sha256"] == rf.sha256(CONTENT) and record["checked"] == ["size", "sha256"]
    with pytest.raises(FileNotFoundError, match="place data.bin by hand"):
        download.verify_file("ds", "data.bin", tmp_path / "empty")
