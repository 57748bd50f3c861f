"""Whole trees as one streamed archive (tar or zip), never held in memory.

Each entry is read from the blob store in chunks as the archive is written,
so a 4 GB release streams with a flat memory footprint. zip entries are
stored (notebooks and datasets compress poorly against the CPU it costs) and
use zip64 where needed.
"""

from __future__ import annotations

import tarfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ngshare.storage import BlobStore
from ngshare.storage.base import CHUNK

FORMATS = {"tar": "application/x-tar", "zip": "application/zip"}


@dataclass(frozen=True)
class ArchiveEntry:
    name: str
    sha256: str
    size: int
    executable: bool = False


@dataclass(frozen=True)
class InlineEntry:
    """A small generated file (an index) placed in the archive as is."""

    name: str
    data: bytes


Entry = ArchiveEntry | InlineEntry


def stream_archive(fmt: str, entries: Iterable[Entry], store: BlobStore) -> Iterator[bytes]:
    if fmt == "zip":
        return _zip(entries, store)
    return _tar(entries, store)


def _chunks(entry: Entry, store: BlobStore) -> Iterator[bytes]:
    if isinstance(entry, InlineEntry):
        yield entry.data
        return
    yield from store.iter_chunks(entry.sha256, CHUNK)


def _tar(entries: Iterable[Entry], store: BlobStore) -> Iterator[bytes]:
    now = int(time.time())
    for entry in entries:
        size = len(entry.data) if isinstance(entry, InlineEntry) else entry.size
        info = tarfile.TarInfo(entry.name)
        info.size = size
        info.mtime = now
        info.mode = 0o755 if getattr(entry, "executable", False) else 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        yield from _chunks(entry, store)
        if size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


class _Sink:
    """A write-only, unseekable file that zipfile writes into and we drain."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def _zip(entries: Iterable[Entry], store: BlobStore) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for entry in entries:
            size = len(entry.data) if isinstance(entry, InlineEntry) else entry.size
            info = zipfile.ZipInfo(entry.name, date_time=time.localtime()[:6])
            mode = 0o755 if getattr(entry, "executable", False) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.file_size = size
            with archive.open(info, "w", force_zip64=size >= 2**31) as handle:
                for chunk in _chunks(entry, store):
                    handle.write(chunk)
                    yield sink.drain()
            yield sink.drain()
    yield sink.drain()
