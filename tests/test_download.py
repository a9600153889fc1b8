"""The downloader over real HTTP on loopback: verification before use, atomic
rename, resume with Range, retries, mirror fallback, manual files, local copies,
first-use pins; and that a failure leaves nothing that looks valid."""

from __future__ import annotations

import json

import pytest

from imrl.data import download, sources
from imrl.data.download import DownloadError, VerificationError
from imrl.data.sources import NONE_PUBLISHED, PUBLISHER, Checksums, RemoteFile
from tests import raw_fixtures as rf
from tests.loopback import Loopback

CONTENT = bytes(range(256)) * 4099          # ~1 MB, not a multiple of the chunk size
FAST = {"retries": 2, "backoff": 0.01, "timeout": 10, "progress": False}


@pytest.fixture
def server():
    loopback = Loopback()
    yield loopback
    loopback.close()


@pytest.fixture
def registry_file(monkeypatch, server):
    """A registry entry whose URLs are all on loopback (tests never reach the internet)."""
    def make(*paths: str, checksums: Checksums | None = None, **fields) -> RemoteFile:
        spec = RemoteFile(name="data.bin", urls=tuple(server.url + p for p in paths),
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


def test_partial_file_of_an_earlier_run_is_resumed(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin")
    (tmp_path / "data.bin.partial").write_bytes(CONTENT[:300_000])
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert server.requests == [("/a/data.bin", "bytes=300000-")]
    assert (tmp_path / "data.bin").read_bytes() == CONTENT


def test_stale_partial_failing_verification_is_downloaded_afresh(tmp_path, server, registry_file):
    server.files["/a/data.bin"] = CONTENT
    registry_file("/a/data.bin")
    (tmp_path / "data.bin.partial").write_bytes(b"\0" * 300_000)     # bytes of another file
    download.fetch("ds", "data.bin", tmp_path, **FAST)
    assert server.requests == [("/a/data.bin", "bytes=300000-"), ("/a/data.bin", None)]
    assert (tmp_path / "data.bin").read_bytes() == CONTENT


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
