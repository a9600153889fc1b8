"""Safe extraction of zip and tar archives.

Nothing is written until the whole member list has been read and accepted. Refused,
each with the member named:

- absolute names, ``..`` components, and names the archive library altered (zipfile
  and tarfile keep only the text before a NUL byte);
- every symlink and hard link: dataset archives need none, and a link lets later
  members, or a hard-link copy, reach outside the destination;
- device files, FIFOs, other special members and encrypted zip members;
- a name seen before, or equal to one seen before but for case (one would overwrite
  the other on a case-insensitive disk), and a member under a file member;
- more than ``max_members`` members, an expanded size past ``max_bytes``, and an
  expansion past ``max_ratio`` times the compressed size (per member for a zip, over
  the whole archive for both kinds) once it passes ``RATIO_FLOOR``.

While the members are written no member may yield more bytes than it declared. They are
written into a new temporary folder beside the destination (no link is ever created
there, files are opened exclusively), which replaces the destination only when
everything, the inner files' checksums included, is good; on any failure it is
removed. So nothing is written outside the destination and nothing half-written stays.
"""

from __future__ import annotations

import glob
import gzip
import lzma
import os
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
DEFAULT_MAX_RATIO = 200.0
DEFAULT_MAX_MEMBERS = 100_000
RATIO_FLOOR = 1 << 20   # smaller expansions cannot fill a disk; tiny files often compress far past any ratio
COPY_BYTES = 1 << 20


class ExtractError(ValueError):
    """An archive is unsafe, corrupt or too large; the message names the archive and member."""


@dataclass
class Member:
    name: str                      # normalised relative path
    is_dir: bool
    size: int                      # declared expanded size (0 for a folder)
    compressed: int | None = None  # a zip member's compressed size; None in a tar (one compressed stream)
    open: Callable[[], IO[bytes]] | None = None


def normalise(name: str, archive: Path) -> str:
    """The member's relative path, or ExtractError if it is absolute or climbs out."""
    if "\0" in name:
        raise ExtractError(f"{archive}: member {name!r} has a NUL byte in its name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise ExtractError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ExtractError(f"{archive}: member {name!r} has a '..' component")
    if not parts:
        raise ExtractError(f"{archive}: member {name!r} names the archive root")
    return "/".join(parts)


class _TarInfo(tarfile.TarInfo):
    """A tar header that remembers its name as stored when tarfile cut it at a NUL byte."""

    cut_name: str | None = None

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> "_TarInfo":
        info = super().frombuf(buf, encoding, errors)
        # The name field, and the prefix field that tarfile joins to it for these types.
        fields = [buf[0:100]] + ([buf[345:500]] if info.type not in tarfile.GNU_TYPES else [])
        cut = [field.rstrip(b"\0") for field in fields if b"\0" in field.rstrip(b"\0")]
        if cut:
            info.cut_name = cut[0].decode(encoding, errors)
        return info

    def _proc_gnulong(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        member = super()._proc_gnulong(tar)
        if self.type == tarfile.GNUTYPE_LONGNAME:
            # The record is the name and one NUL (a folder's also its "/", which tarfile drops);
            # a longer one went on past a NUL.
            if len(member.name.encode(tar.encoding, tar.errors)) + member.isdir() + 1 < self.size:
                member.cut_name = member.name + "\0..."
        return member


def _link_text(kind: str, target: str | None) -> str:
    to = "" if target is None else f" to {target!r}"
    return f"is a {kind}{to}; dataset archives need no links, so none is extracted"


def _tar_members(archive: Path, tar: tarfile.TarFile) -> Iterator[Member]:
    for info in tar:
        if info.cut_name is not None:
            raise ExtractError(f"{archive}: member {info.cut_name!r} has a NUL byte in its name "
                               f"(tarfile reads it as {info.name!r})")
        name = normalise(info.name, archive)
        if info.isdir():
            yield Member(name, True, 0)
        elif info.isreg():
            yield Member(name, False, info.size, open=lambda info=info: tar.extractfile(info))
        elif info.issym() or info.islnk():
            raise ExtractError(f"{archive}: member {info.name!r} "
                               + _link_text("symlink" if info.issym() else "hardlink", info.linkname))
        else:
            kind = "device" if info.ischr() or info.isblk() else "FIFO" if info.isfifo() else f"type {info.type!r}"
            raise ExtractError(f"{archive}: member {info.name!r} is a {kind}; refusing special files")


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[Member]:
    for info in zf.infolist():
        if info.orig_filename != info.filename:
            raise ExtractError(f"{archive}: member {info.orig_filename!r} has a name that zipfile alters "
                               f"(to {info.filename!r})")
        name = normalise(info.filename, archive)
        mode = info.external_attr >> 16
        file_type = mode & 0o170000
        if info.is_dir():
            yield Member(name, True, 0)
        elif file_type == 0o120000:
            raise ExtractError(f"{archive}: member {info.filename!r} "
                               + _link_text("symlink", None))   # its target is member data: left unread
        elif file_type not in (0, 0o100000):
            raise ExtractError(f"{archive}: member {info.filename!r} is a special file (mode {oct(mode)}); refusing")
        elif info.flag_bits & 0x1:
            raise ExtractError(f"{archive}: member {info.filename!r} is encrypted; refusing")
        else:
            yield Member(name, False, info.file_size, info.compress_size, open=lambda info=info: zf.open(info))


def _accept(archive: Path, listing: Iterable[Member], wanted: set[str] | None,
            max_bytes: int, max_ratio: float, max_members: int) -> list[Member]:
    """Check every member before anything is written; returns the members to extract."""
    archive_bytes = max(archive.stat().st_size, 1)
    seen: dict[str, Member] = {}       # case-folded name -> member
    folders: dict[str, str] = {}       # case-folded folder that members lie in -> one such member
    chosen: list[Member] = []
    total = 0
    for count, member in enumerate(listing, 1):
        where = f"{archive}: member {member.name!r}"
        if count > max_members:
            raise ExtractError(f"{where} is member number {count:,}; the limit is {max_members:,} members")
        key = member.name.casefold()
        earlier = seen.get(key)
        if earlier is not None and not (earlier.is_dir and member.is_dir and earlier.name == member.name):
            how = "repeats an earlier member" if earlier.name == member.name else \
                f"differs only in case from member {earlier.name!r}"
            raise ExtractError(f"{where} {how} (one would overwrite the other)")
        seen[key] = member
        parts = key.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in seen and not seen[folder].is_dir:
                raise ExtractError(f"{where} lies under the file member {seen[folder].name!r}")
            folders.setdefault(folder, member.name)
        if not member.is_dir and key in folders:
            raise ExtractError(f"{where} is a file, but member {folders[key]!r} lies under it")
        if wanted is not None and member.name not in wanted:
            continue
        chosen.append(member)
        total += member.size
        if total > max_bytes:
            raise ExtractError(f"{where} ({member.size:,} bytes) would take the extracted size past the limit "
                               f"of {max_bytes:,} bytes")
        if member.compressed is not None and member.size > RATIO_FLOOR \
                and member.size > max_ratio * max(member.compressed, 1):
            raise ExtractError(f"{where} expands {member.size / max(member.compressed, 1):,.0f}x "
                               f"({member.compressed:,} -> {member.size:,} bytes); the limit is {max_ratio:g}x")
        if total > RATIO_FLOOR and total > max_ratio * archive_bytes:
            raise ExtractError(f"{where} takes the expanded size to {total:,} bytes, {total / archive_bytes:,.0f}x "
                               f"the archive's {archive_bytes:,} bytes; the limit is {max_ratio:g}x")
    return chosen


def _write(archive: Path, member: Member, root: Path) -> None:
    target = root / member.name
    if member.is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with member.open() as source, open(target, "xb") as out:
        while block := source.read(COPY_BYTES):
            written += len(block)
            if written > member.size:
                raise ExtractError(f"{archive}: member {member.name!r} yields more than its declared "
                                   f"{member.size:,} bytes")
            out.write(block)


def safe_extract(archive: str | Path, dest: str | Path, *, members: Iterable[str] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_ratio: float = DEFAULT_MAX_RATIO,
                 max_members: int = DEFAULT_MAX_MEMBERS,
                 inner: Mapping[str, Checksums] | None = None) -> list[str]:
    """Extract `archive` (zip or any tar) into `dest`, only `members` if given, checking
    `inner` checksums of extracted members. Returns the extracted member names. `dest`
    appears complete or not at all."""
    archive, dest = Path(archive), Path(dest)
    wanted = None if members is None else {normalise(m, archive) for m in members}
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"):   # left by a killed extraction
        shutil.rmtree(stale)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    current = "(archive header)"

    def tracked(listing: Iterable[Member]) -> Iterator[Member]:
        nonlocal current
        for member in listing:
            current = member.name
            yield member

    try:
        if zipfile.is_zipfile(archive):
            container: Any = zipfile.ZipFile(archive)
            listing = _zip_members(archive, container)
        else:
            container = tarfile.open(archive, "r:*", tarinfo=_TarInfo)
            listing = _tar_members(archive, container)
        with container:
            chosen = _accept(archive, tracked(listing), wanted, max_bytes, max_ratio, max_members)
            for member in tracked(chosen):
                _write(archive, member, tmp)
        for name, checksums in (inner or {}).items():
            path = tmp / normalise(name, archive)
            if not path.is_file():
                raise ExtractError(f"{archive}: expected member {name!r} is missing")
            try:
                verify(path, checksums)
            except VerificationError as err:
                raise ExtractError(f"{archive}: member {name!r}: {err}") from None
        if dest.exists():
            old = tmp.with_suffix(".old.tmp")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
        return [member.name for member in chosen]
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
    inner files. ``params.max_extract_bytes`` caps the expanded size and
    ``params.max_extract_ratio`` the expansion over the compressed size."""
    spec = sources.remote_file(dataset, file_name)
    archive = Path(raw_dir) / spec.name
    if not spec.archive:
        raise ValueError(f"{dataset}/{spec.name} is not an archive")
    if not archive.with_name(archive.name + VERIFIED_SUFFIX).exists():
        raise FileNotFoundError(f"{archive}: not verified yet (no {archive.name}{VERIFIED_SUFFIX}); verify it first")
    options = options or {}
    return safe_extract(archive, sources.extracted_dir(raw_dir, spec.name), members=spec.extract_members,
                        max_bytes=int(options.get("max_extract_bytes") or DEFAULT_MAX_BYTES),
                        max_ratio=float(options.get("max_extract_ratio") or DEFAULT_MAX_RATIO),
                        inner=sources.expected_inner(spec, options))
