"""Safe extraction against hostile archives, generated here as zip and tar.gz: every
refusal names the member, comes before anything is written (however late the member
is), and leaves the tree exactly as it was: nothing outside the destination, no
destination, no temporary folder."""

from __future__ import annotations

import hashlib
import io
import tarfile
import warnings
import zipfile

import pytest

from imrl.data import extract, sources
from imrl.data.extract import RATIO_FLOOR, ExtractError, safe_extract
from imrl.data.sources import NONE_PUBLISHED, Checksums, RemoteFile
from tests import raw_fixtures as rf

FILE, DIR, SYMLINK, HARDLINK = "file", "dir", "symlink", "hardlink"


def tar_archive(path, entries, data: bytes = b"hello\n", fmt=tarfile.PAX_FORMAT):
    """`entries`: (name, kind[, link target]) in order; files hold `data`."""
    kinds = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, HARDLINK: tarfile.LNKTYPE}
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for name, kind, *link in entries:
            info = tarfile.TarInfo(name)
            info.type = kinds.get(kind, kind)
            info.linkname = link[0] if link else ""
            info.size = len(data) if kind == FILE else 0
            tar.addfile(info, io.BytesIO(data) if kind == FILE else None)
    return path


def zip_archive(path, entries, data: bytes = b"hello\n"):
    """The same entries as a zip; a symlink is a member with the link's mode and its target as data."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")       # zipfile warns about the duplicate names we mean to write
        for name, kind, *link in entries:
            if kind == DIR:
                zf.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
            elif kind == SYMLINK:
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o120777 << 16
                zf.writestr(info, link[0])
            else:
                zf.writestr(name, data)
    return path


def archive(kind, path, entries, **kwargs):
    return (zip_archive if kind == "zip" else tar_archive)(path.with_suffix("." + kind), entries, **kwargs)


def snapshot(root):
    """Every path under `root` with a hash of its content (links as their target)."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        state[rel] = ("link:" + str(path.readlink()) if path.is_symlink() else
                      "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest())
    return state


@pytest.fixture
def tree(tmp_path):
    """data/raw/<dataset>/ as the workflow has it, with files one and two levels above
    the destination that an escape would overwrite or copy."""
    raw = tmp_path / "data/raw/ds"
    raw.mkdir(parents=True)
    (tmp_path / "data/raw/secret.txt").write_text("do not read or overwrite\n")
    (raw / "neighbour.csv").write_text("do not overwrite\n")
    return raw


def refused(tmp_path, path, message, **kwargs):
    """Extract `path` into its sibling ``.extracted``, expect `message`, and check that the
    tree is exactly as before."""
    before = snapshot(tmp_path)
    with pytest.raises(ExtractError, match=message) as err:
        safe_extract(path, path.with_name(path.name + ".extracted"), **kwargs)
    assert str(path) in str(err.value)
    assert snapshot(tmp_path) == before
    return err


LINK_CHAIN = [("d", DIR), ("d/s", SYMLINK, ".."), ("d/s/t", SYMLINK, ".."), ("d/s/t/escaped.csv", FILE),
              ("d/s/t/ds/neighbour.csv", FILE)]


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
@pytest.mark.parametrize("entries, message", [
    (LINK_CHAIN, r"member 'd/s' is a symlink"),
    ([("d/x.csv", SYMLINK, "../../neighbour.csv"), ("d/x.csv", FILE)], r"member 'd/x.csv' is a symlink"),
    ([("d/ok.csv", FILE), ("d/link", SYMLINK, "ok.csv")], r"member 'd/link' is a symlink"),
], ids=["link-chain", "write-through-link", "harmless-looking-link"])
def test_every_symlink_is_refused_before_anything_is_written(tmp_path, tree, kind, entries, message):
    refused(tmp_path, archive(kind, tree / "a", entries), message + ".*dataset archives need no links")


@pytest.mark.parametrize("entries, message", [
    ([("d", DIR), ("d/s", SYMLINK, "../.."), ("d/copy", HARDLINK, "d/s/secret.txt")],
     r"member 'd/s' is a symlink to '../..'"),
    ([("d/copy", HARDLINK, "../secret.txt")], r"member 'd/copy' is a hardlink to '../secret.txt'"),
    ([("d/ok.csv", FILE), ("d/copy", HARDLINK, "d/ok.csv")], r"member 'd/copy' is a hardlink to 'd/ok.csv'"),
])
def test_every_hardlink_is_refused(tmp_path, tree, entries, message):
    refused(tmp_path, tar_archive(tree / "a.tar.gz", entries), message)


@pytest.mark.parametrize("bad, message", [
    (("data/../../evil.txt", FILE), r"'data/../../evil.txt' has a '..' component"),
    (("/etc/evil.txt", FILE), r"'/etc/evil.txt' has an absolute path"),
    (("data/tty", tarfile.CHRTYPE), r"'data/tty' is a device"),
    (("data/pipe", tarfile.FIFOTYPE), r"'data/pipe' is a FIFO"),
])
def test_unsafe_tar_members_are_refused_by_name(tmp_path, tree, bad, message):
    refused(tmp_path, tar_archive(tree / "a.tar.gz", [("data/ok.txt", FILE), bad]), message)


@pytest.mark.parametrize("name, message", [("../evil.txt", "has a '..' component"),
                                           ("/abs/evil.txt", "has an absolute path"),
                                           ("C:/windows/evil.txt", "has an absolute path")])
def test_unsafe_zip_members_are_refused(tmp_path, tree, name, message):
    refused(tmp_path, zip_archive(tree / "a.zip", [("ok.txt", FILE), (name, FILE)]), f"'{name}' {message}")


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_late_refusal_leaves_nothing_behind(tmp_path, tree, kind):
    """Fifty good members, then one that climbs out: not one of the fifty is written."""
    entries = [(f"d/good{i:02}.csv", FILE) for i in range(50)] + [("d/../../../late.csv", FILE)]
    refused(tmp_path, archive(kind, tree / "a", entries), r"member 'd/../../../late.csv' has a '..' component")


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
@pytest.mark.parametrize("entries, message", [
    ([("d/a.csv", FILE), ("d/b.csv", FILE), ("d/a.csv", FILE)], r"member 'd/a.csv' repeats an earlier member"),
    ([("d/Ratings.csv", FILE), ("d/ratings.csv", FILE)],
     r"member 'd/ratings.csv' differs only in case from member 'd/Ratings.csv'"),
    ([("D", DIR), ("d", DIR)], r"member 'd' differs only in case from member 'D'"),
    ([("d/x", FILE), ("d/x/y.csv", FILE)], r"member 'd/x/y.csv' lies under the file member 'd/x'"),
    ([("d/x/y.csv", FILE), ("D/X", FILE)], r"member 'D/X' is a file, but member 'd/x/y.csv' lies under it"),
])
def test_duplicates_and_members_under_files_are_refused(tmp_path, tree, kind, entries, message):
    refused(tmp_path, archive(kind, tree / "a", entries), message)


def test_a_folder_listed_twice_is_fine(tmp_path):
    path = tar_archive(tmp_path / "a.tar.gz", [("d", DIR), ("d/a.csv", FILE), ("d", DIR)])
    assert safe_extract(path, tmp_path / "out") == ["d", "d/a.csv", "d"]


@pytest.mark.parametrize("fmt, name", [(tarfile.USTAR_FORMAT, "d/evil\0.csv"),
                                       (tarfile.GNU_FORMAT, "d/" + "x" * 120 + "\0.csv"),
                                       (tarfile.PAX_FORMAT, "d/" + "x" * 120 + "\0.csv")],
                         ids=["ustar", "gnu-longname", "pax"])
def test_tar_names_cut_at_a_nul_byte_are_refused(tmp_path, tree, fmt, name):
    """tarfile keeps only the text before a NUL (except in a pax record, where it stays)."""
    path = tar_archive(tree / "a.tar.gz", [("d/ok.csv", FILE), (name, FILE)], fmt=fmt)
    refused(tmp_path, path, r"member 'd/(evil|x+)\\x00.* has a NUL byte in its name")


def test_zip_names_altered_by_zipfile_are_refused(tmp_path, tree):
    path = zip_archive(tree / "a.zip", [("d/ok.csv", FILE), ("d/evilX.csv", FILE)])
    path.write_bytes(path.read_bytes().replace(b"d/evilX.csv", b"d/evil\0.csv"))   # local and central headers
    refused(tmp_path, path, r"member 'd/evil\\x00.csv' has a name that zipfile alters \(to 'd/evil'\)")


def test_too_many_members_is_refused_naming_the_first_past_the_limit(tmp_path, tree):
    path = zip_archive(tree / "a.zip", [(f"d/{i}.csv", FILE) for i in range(12)])
    refused(tmp_path, path, r"member 'd/10.csv' is member number 11; the limit is 10 members", max_members=10)
    assert len(safe_extract(path, tmp_path / "out", max_members=12)) == 12


def test_expansion_past_the_size_limit_is_refused_naming_the_member(tmp_path, tree):
    path = tar_archive(tree / "a.tar.gz", [("small.txt", FILE), ("big.bin", FILE)], data=b"x" * 1000)
    refused(tmp_path, path, r"member 'big.bin' \(1,000 bytes\) would take the extracted size past the limit of 1,500",
            max_bytes=1500)


BOMB = b"\0" * (8 * RATIO_FLOOR)      # deflates about 1000x


@pytest.mark.parametrize("kind, message", [
    ("zip", r"member 'd/bomb.bin' expands [\d,]+x \([\d,]+ -> 8,388,608 bytes\); the limit is 200x"),
    ("tar.gz", r"member 'd/bomb.bin' takes the expanded size to 8,388,608 bytes, [\d,]+x the archive's [\d,]+ "
               r"bytes; the limit is 200x"),
])
def test_a_compression_bomb_is_refused_by_its_ratio(tmp_path, tree, kind, message):
    path = archive(kind, tree / "a", [("d/bomb.bin", FILE)], data=BOMB)
    refused(tmp_path, path, message)
    assert safe_extract(path, tmp_path / "out", max_ratio=5000) == ["d/bomb.bin"]   # configurable


def test_small_archives_are_not_held_to_the_ratio(tmp_path):
    """Below RATIO_FLOOR a high ratio is repetition, not a bomb: it cannot fill a disk."""
    path = zip_archive(tmp_path / "a.zip", [("d/zeros.bin", FILE)], data=b"\0" * (RATIO_FLOOR // 2))
    assert safe_extract(path, tmp_path / "out") == ["d/zeros.bin"]


def test_a_member_yielding_more_than_it_declared_is_stopped_while_written(tmp_path, tree, monkeypatch):
    """Neither zipfile nor tarfile lets a member run past its header; the bound while
    writing holds even if a library did."""
    path = tar_archive(tree / "a.tar.gz", [("d/a.csv", FILE)])
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, info: io.BytesIO(b"x" * (2 * info.size + 1)))
    refused(tmp_path, path, r"member 'd/a.csv' yields more than its declared 6 bytes")


@pytest.mark.parametrize("suffix", ["tar.gz", "zip", "tar"])
def test_truncated_archive_is_an_error_and_leaves_nothing(tmp_path, suffix):
    members = {"data/a.bin": bytes(range(256)) * 400, "data/b.bin": bytes(range(255, -1, -1)) * 400}
    whole = rf.zip_bytes(members) if suffix == "zip" else rf.tar_bytes(members, "w:gz" if suffix == "tar.gz" else "w")
    path = tmp_path / f"a.{suffix}"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    refused(tmp_path, path, "corrupt or truncated archive")


def test_a_new_extraction_replaces_the_old_one_whole(tmp_path):
    dest = tmp_path / "a.tar.gz.extracted"
    safe_extract(tar_archive(tmp_path / "a.tar.gz", [("d/old.csv", FILE)]), dest)
    (tmp_path / ".a.tar.gz.extracted.killed.tmp").mkdir()          # left by an extraction killed half way
    safe_extract(tar_archive(tmp_path / "a.tar.gz", [("d/new.csv", FILE)]), dest)
    assert sorted(snapshot(tmp_path)) == ["a.tar.gz", "a.tar.gz.extracted", "a.tar.gz.extracted/d",
                                          "a.tar.gz.extracted/d/new.csv"]


def test_members_filter_and_inner_checksums(tmp_path):
    members = {"d/keep.txt": b"keep\n", "d/skip.txt": b"skip\n"}
    path = tmp_path / "a.tar.gz"
    path.write_bytes(rf.tar_bytes(members))
    good = {"d/keep.txt": Checksums(size=5, sha256=rf.sha256(b"keep\n"))}
    assert safe_extract(path, tmp_path / "dest", members=["d/keep.txt"], inner=good) == ["d/keep.txt"]
    assert not (tmp_path / "dest/d/skip.txt").exists()
    bad = {"d/keep.txt": Checksums(md5="0" * 32)}
    with pytest.raises(ExtractError, match=r"member 'd/keep.txt': keep.txt: md5 mismatch: expected 0{32}"):
        safe_extract(path, tmp_path / "dest2", members=["d/keep.txt"], inner=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "dest"]


def test_extract_file_needs_a_verified_archive(tmp_path):
    with pytest.raises(FileNotFoundError, match="not verified yet"):
        extract.extract_file("ml-20m", "ml-20m.zip", tmp_path)


def test_extract_file_takes_the_ratio_limit_from_the_params(tmp_path, tree, monkeypatch):
    spec = RemoteFile(name="a.zip", urls=(), checksums=Checksums(), checksum_source=NONE_PUBLISHED, archive=True)
    monkeypatch.setattr(sources, "remote_file", lambda dataset, name: spec)
    zip_archive(tree / "a.zip", [("d/bomb.bin", FILE)], data=BOMB)
    (tree / "a.zip.verified.json").write_text("{}")
    with pytest.raises(ExtractError, match="the limit is 200x"):
        extract.extract_file("ds", "a.zip", tree)
    assert extract.extract_file("ds", "a.zip", tree, {"max_extract_ratio": 5000}) == ["d/bomb.bin"]
    with pytest.raises(ValueError, match=r"datasets.ds.params.max_extract_ratio: expected a number >= 1, got '5000'"):
        sources.check_params("ml-20m", {"max_extract_ratio": "5000"}, where="datasets.ds.params")
