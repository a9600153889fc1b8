"""Safe extraction: every unsafe member is refused by name, a corrupt or truncated
archive is an error, and a failure leaves neither the destination nor a temporary
folder behind."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from imrl.data import extract
from imrl.data.extract import ExtractError, safe_extract
from imrl.data.sources import Checksums
from tests import raw_fixtures as rf


def tar_with(path, *members: tarfile.TarInfo, data: bytes = b"hello\n", mode: str = "w:gz"):
    with tarfile.open(path, mode) as tar:
        for info in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("bad, message", [
    (member("data/../../evil.txt"), "'data/../../evil.txt' has a '..' component"),
    (member("/etc/evil.txt"), "'/etc/evil.txt' has an absolute path"),
    (member("data/link", tarfile.SYMTYPE, "../../outside"), "'data/link' is a symlink to '../../outside'"),
    (member("data/abs-link", tarfile.SYMTYPE, "/etc/passwd"), "'data/abs-link' is a symlink to '/etc/passwd'"),
    (member("data/hard", tarfile.LNKTYPE, "../outside"), "'data/hard' is a hardlink to '../outside'"),
    (member("data/tty", tarfile.CHRTYPE), "'data/tty' is a device"),
    (member("data/pipe", tarfile.FIFOTYPE), "'data/pipe' is a FIFO"),
])
def test_unsafe_tar_members_are_refused_by_name(tmp_path, bad, message):
    archive = tar_with(tmp_path / "a.tar.gz", member("data/ok.txt"), bad)
    with pytest.raises(ExtractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        safe_extract(archive, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_links_inside_the_target_are_fine(tmp_path):
    archive = tar_with(tmp_path / "a.tar.gz", member("data/ok.txt"), member("data/link", tarfile.SYMTYPE, "ok.txt"),
                       member("data/hard", tarfile.LNKTYPE, "data/ok.txt"))
    assert safe_extract(archive, tmp_path / "dest") == ["data/ok.txt", "data/link", "data/hard"]
    assert (tmp_path / "dest/data/link").read_text() == (tmp_path / "dest/data/hard").read_text() == "hello\n"


@pytest.mark.parametrize("name, message", [("../evil.txt", "has a '..' component"),
                                           ("/abs/evil.txt", "has an absolute path"),
                                           ("C:/windows/evil.txt", "has an absolute path")])
def test_unsafe_zip_members_are_refused(tmp_path, name, message):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    with pytest.raises(ExtractError, match=message):
        safe_extract(archive, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_expansion_past_the_limit_is_refused_naming_the_member(tmp_path):
    archive = tar_with(tmp_path / "a.tar.gz", member("small.txt"), member("big.bin"), data=b"x" * 1000)
    with pytest.raises(ExtractError, match=r"member 'big.bin' \(1,000 bytes\) would take the extracted size past the limit of 1,500"):
        safe_extract(archive, tmp_path / "dest", max_bytes=1500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


@pytest.mark.parametrize("suffix", ["tar.gz", "zip", "tar"])
def test_truncated_archive_is_an_error_and_leaves_nothing(tmp_path, suffix):
    members = {"data/a.bin": bytes(range(256)) * 400, "data/b.bin": bytes(range(255, -1, -1)) * 400}
    whole = rf.zip_bytes(members) if suffix == "zip" else rf.tar_bytes(members, "w:gz" if suffix == "tar.gz" else "w")
    archive = tmp_path / f"a.{suffix}"
    archive.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(ExtractError, match="corrupt or truncated archive"):
        safe_extract(archive, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


def test_members_filter_and_inner_checksums(tmp_path):
    members = {"d/keep.txt": b"keep\n", "d/skip.txt": b"skip\n"}
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(rf.tar_bytes(members))
    good = {"d/keep.txt": Checksums(size=5, sha256=rf.sha256(b"keep\n"))}
    assert safe_extract(archive, tmp_path / "dest", members=["d/keep.txt"], inner=good) == ["d/keep.txt"]
    assert not (tmp_path / "dest/d/skip.txt").exists()
    bad = {"d/keep.txt": Checksums(md5="0" * 32)}
    with pytest.raises(ExtractError, match=r"member 'd/keep.txt': keep.txt: md5 mismatch: expected 0{32}"):
        safe_extract(archive, tmp_path / "dest2", members=["d/keep.txt"], inner=bad)
    assert not (tmp_path / "dest2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "dest"]


def test_extract_file_needs_a_verified_archive(tmp_path):
    with pytest.raises(FileNotFoundError, match="not verified yet"):
        extract.extract_file("ml-20m", "ml-20m.zip", tmp_path)
