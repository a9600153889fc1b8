"""Safe extraction of zip and tar archives.

Every member is checked before anything is written: absolute names, ``..``
components, links whose target leaves the destination, device files, FIFOs and any
other special member are refused, and so is an archive whose members would expand
past ``max_bytes``; the error names the member. Extraction happens in a temporary
sibling directory that is renamed onto the destination only when everything
(including the checksums of inner files) is good, so a failure leaves nothing behind.
"""

from __future__ import annotations

import gzip
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping

from imrl.data import sources
from imrl.data.download import VERIFIED_SUFFIX, VerificationError, verify
from imrl.data.sources import Checksums

DEFAULT_MAX_BYTES = 16 << 30
COPY_BYTES = 1 << 20


class ExtractError(ValueError):
    """An archive is unsafe, corrupt or too large; the message names the archive and member."""


@dataclass
class Member:
    name: str                      # normalised relative path
    kind: str                      # "file", "dir", "symlink", "hardlink"
    size: int
    link: str = ""                 # symlink target as stored / hardlink target (archive path)
    open: Callable[[], IO[bytes]] | None = None


def normalise(name: str, archive: Path) -> str:
    """The member's relative path, or ExtractError if it is absolute or climbs out."""
    if not name or "\0" in name:
        raise ExtractError(f"{archive}: member {name!r} has an empty or invalid name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise ExtractError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ExtractError(f"{archive}: member {name!r} has a '..' component")
    if not parts:
        raise ExtractError(f"{archive}: member {name!r} names the archive root")
    return "/".join(parts)


def _inside(path: str) -> bool:
    normal = posixpath.normpath(path)
    return not (normal == ".." or normal.startswith("../") or posixpath.isabs(normal))


def _tar_members(archive: Path, tar: tarfile.TarFile) -> Iterator[Member]:
    for info in tar:
        name = normalise(info.name, archive)
        if info.isdir():
            yield Member(name, "dir", 0)
        elif info.isreg():
            yield Member(name, "file", info.size, open=lambda info=info: tar.extractfile(info))
        elif info.issym():
            yield Member(name, "symlink", 0, link=info.linkname)
        elif info.islnk():
            yield Member(name, "hardlink", 0, link=info.linkname)
        else:
            kind = "device" if info.ischr() or info.isblk() else "FIFO" if info.isfifo() else f"type {info.type!r}"
            raise ExtractError(f"{archive}: member {info.name!r} is a {kind}; refusing special files")


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[Member]:
    for info in zf.infolist():
        name = normalise(info.filename, archive)
        mode = info.external_attr >> 16
        file_type = mode & 0o170000
        if info.is_dir():
            yield Member(name, "dir", 0)
        elif file_type == 0o120000:
            yield Member(name, "symlink", 0, link=zf.read(info).decode("utf-8", "replace"))
        elif file_type in (0, 0o100000):
            yield Member(name, "file", info.file_size, open=lambda info=info: zf.open(info))
        else:
            raise ExtractError(f"{archive}: member {info.filename!r} is a special file (mode {oct(mode)}); refusing")


def _copy_limited(source: IO[bytes], path: Path, budget: int, member: str, archive: Path) -> int:
    written = 0
    with open(path, "wb") as out:
        while block := source.read(COPY_BYTES):
            written += len(block)
            if written > budget:
                raise ExtractError(f"{archive}: member {member!r} expands past the size limit")
            out.write(block)
    return written


def _extract_into(archive: Path, members: Iterable[Member], root: Path, wanted: set[str] | None,
                  max_bytes: int) -> list[str]:
    total = 0
    done: list[str] = []
    for member in members:
        target = root / member.name
        if member.kind in ("symlink", "hardlink"):
            # A symlink resolves from its own folder; a hard link names an archive path.
            base = posixpath.dirname(member.name) if member.kind == "symlink" else ""
            if posixpath.isabs(member.link) or not _inside(posixpath.join(base, member.link)):
                raise ExtractError(f"{archive}: member {member.name!r} is a {member.kind} to {member.link!r}, "
                                   "outside the destination")
        if wanted is not None and member.name not in wanted:
            continue
        if member.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if member.kind == "symlink":
            os.symlink(member.link, target)
        elif member.kind == "hardlink":
            linked = root / posixpath.normpath(member.link)
            if not linked.is_file():
                raise ExtractError(f"{archive}: member {member.name!r} links to {member.link!r}, not extracted")
            shutil.copyfile(linked, target)
        else:
            if total + member.size > max_bytes:
                raise ExtractError(f"{archive}: member {member.name!r} ({member.size:,} bytes) would take the "
                                   f"extracted size past the limit of {max_bytes:,} bytes")
            with member.open() as source:
                total += _copy_limited(source, target, max_bytes - total, member.name, archive)
        done.append(member.name)
    return done


def safe_extract(archive: str | Path, dest: str | Path, *, members: Iterable[str] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 inner: Mapping[str, Checksums] | None = None) -> list[str]:
    """Extract `archive` (zip or any tar) into `dest`, only `members` if given, checking
    `inner` checksums of extracted members. Returns the extracted member names. `dest`
    appears complete or not at all."""
    archive, dest = Path(archive), Path(dest)
    wanted = None if members is None else {normalise(m, archive) for m in members}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    current = "(archive header)"
    try:
        if zipfile.is_zipfile(archive):
            container = zipfile.ZipFile(archive)
            listing = _zip_members(archive, container)
        else:
            container = tarfile.open(archive, "r:*")
            listing = _tar_members(archive, container)

        def tracked() -> Iterator[Member]:
            nonlocal current
            for member in listing:
                current = member.name
                yield member

        with container:
            extracted = _extract_into(archive, tracked(), tmp, wanted, max_bytes)
        for name, checksums in (inner or {}).items():
            path = tmp / normalise(name, archive)
            if not path.is_file():
                raise ExtractError(f"{archive}: expected member {name!r} is missing")
            try:
                verify(path, checksums)
            except VerificationError as err:
                raise ExtractError(f"{archive}: member {name!r}: {err}") from None
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return extracted
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as err:
        raise ExtractError(f"{archive}: corrupt or truncated archive (at member {current!r}): "
                           f"{type(err).__name__}: {err}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def extract_file(dataset: str, file_name: str, raw_dir: str | Path,
                 options: Mapping[str, Any] | None = None) -> list[str]:
    """Extract a verified archive of the registry into ``<archive>.extracted/`` (its
    members of interest only), checking the registry's (or the config's) checksums of
    inner files. ``params.max_extract_bytes`` caps the expanded size."""
    spec = sources.remote_file(dataset, file_name)
    archive = Path(raw_dir) / spec.name
    if not spec.archive:
        raise ValueError(f"{dataset}/{spec.name} is not an archive")
    if not archive.with_name(archive.name + VERIFIED_SUFFIX).exists():
        raise FileNotFoundError(f"{archive}: not verified yet (no {archive.name}{VERIFIED_SUFFIX}); verify it first")
    max_bytes = int((options or {}).get("max_extract_bytes") or DEFAULT_MAX_BYTES)
    return safe_extract(archive, sources.extracted_dir(raw_dir, spec.name), members=spec.extract_members,
                        max_bytes=max_bytes, inner=sources.expected_inner(spec, options))
