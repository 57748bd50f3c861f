"""What the client remembers about files it wrote or hashed, to avoid doing it twice.

- `HashCache`: the sha256 of a file, keyed by its path and trusted while the
  file's size, modification time, change time and inode are unchanged (what
  git's index and rsync do). A submit then hashes only the notebooks a student
  edited, not the 2 GB dataset fetched with the assignment. Optionally kept in
  a JSON file, so `nbgrader fetch` and a later `nbgrader submit` share it.
- `LocalCopies`: files this client downloaded and verified, by sha256, so the
  same content needed again (the data file in every student's submission) is
  copied on disk by the kernel instead of crossing the network again.

Both check a file's stat before trusting what they recorded; a file changed
since is hashed (or downloaded) afresh.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ngshare.storage.direct import ALIGN, open_direct

MAX_ENTRIES = 20_000  # a persistent cache keeps the newest entries


def _signature(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


class HashCache:
    """path -> (stat signature, sha256); in memory, or also in `path` when given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._entries: dict[str, tuple[list[int], str]] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if self.path is not None:
            self._entries = _load(self.path)

    def get(self, path: Path, info: os.stat_result) -> str | None:
        """The recorded sha256 of `path` if `info` (its current stat) still matches."""
        with self._lock:
            found = self._entries.get(str(Path(path).absolute()))
        if found is None or found[0] != _signature(info):
            return None
        return found[1]

    def put(self, path: Path, sha256: str, info: os.stat_result | None = None) -> None:
        """Record `path`'s hash; `info` is its stat when it was hashed (default: now)."""
        try:
            info = info or os.stat(path)
        except OSError:
            return
        with self._lock:
            key = str(Path(path).absolute())
            self._entries.pop(key, None)  # re-insert: dicts keep order, newest last
            self._entries[key] = (_signature(info), sha256)
            self._dirty = True

    def save(self) -> None:
        """Write the cache file (atomically; failures are ignored: it is only a cache)."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            items = list(self._entries.items())[-MAX_ENTRIES:]
            self._dirty = False
        data = {key: [sig, sha] for key, (sig, sha) in items}
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes-")
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(name, self.path)


def _load(path: Path) -> dict[str, tuple[list[int], str]]:
    try:
        data = json.loads(path.read_text())
        return {key: (list(sig), str(sha)) for key, (sig, sha) in data.items()}
    except (OSError, ValueError, TypeError):
        return {}


LINK_MIN = 1024 * 1024


class LocalCopies:
    """sha256 -> a file this client wrote and verified (with its stat at that time).

    A `spare` file (a blob fetched ahead by `download_trees`) belongs to no
    tree: its first use moves it into place, only later uses copy it.
    With `link_min`, later uses of a file that large become hard links to it,
    as uv and pnpm do: 200 collected submissions sharing a 2 GB dataset take
    2 GB of disk, not 400 GB. Executable files are always copied, since a
    mode change would reach every link.
    """

    def __init__(self, link_min: int | None = None) -> None:
        self.link_min = link_min
        self._files: dict[str, tuple[str, list[int], bool]] = {}
        self._lock = threading.Lock()

    def add(self, sha256: str, path: Path, *, spare: bool = False) -> None:
        with contextlib.suppress(OSError):
            signature = _signature(os.stat(path))
            with self._lock:
                self._files[sha256] = (str(path), signature, spare)

    def has(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._files

    def moved(self, old_root: Path, new_root: Path) -> None:
        """Files under `old_root` now live under `new_root` (a directory rename)."""
        old, new = str(old_root) + os.sep, str(new_root) + os.sep
        with self._lock:
            for sha256, (path, signature, spare) in list(self._files.items()):
                if path.startswith(old):
                    self._files[sha256] = (new + path[len(old) :], signature, spare)

    def copy(self, sha256: str, size: int, target: Path, executable: bool = False) -> bool:
        """Put the recorded file's bytes at `target` if it is unchanged since it was verified.

        The copy is done by the kernel (sendfile), without reading the bytes
        into Python, or is a hard link (see `link_min`): the source's stat
        proves it is the file that was hashed when it was written.
        """
        with self._lock:
            found = self._files.get(sha256)
            if found is None or found[0] == str(target):
                return False
            del self._files[sha256]
        source, signature, spare = found
        try:
            stat = os.stat(source)
            if _signature(stat) != signature:
                raise OSError("changed")
            if size != signature[0]:
                raise OSError("another size")
            if spare:
                os.replace(source, target)
            elif executable or not self._link(source, stat, target):
                shutil.copyfile(source, target)
        except OSError:
            return False
        self.add(sha256, target if spare else Path(source))
        return True

    def _link(self, source: str, stat: os.stat_result, target: Path) -> bool:
        """Hard-link `target` to `source` (whose `stat` was just taken) when allowed;
        False to copy instead."""
        if self.link_min is None or stat.st_size < self.link_min or stat.st_mode & 0o111:
            return False
        try:
            os.link(source, target)
        except OSError:  # another filesystem, too many links, links not supported
            return False
        return True


class InlineSink:
    """Writes and hashes each received piece of a download as it comes."""

    FILL = 1024 * 1024  # bytes `fill` receives at a time, into one reused buffer

    def __init__(self, handle: BinaryIO, digest: Any) -> None:
        self.handle = handle
        self.digest = digest
        self.received = handle.tell()

    def write(self, data: bytes | memoryview) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.received += len(data)

    def fill(
        self, readinto: Callable[[memoryview], int], count: int, advance: Callable[[int], object]
    ) -> None:
        """Receive up to `count` bytes by `readinto(view)` into one reused buffer, each
        read written and hashed at once (see `ngshare.client.rawhttp`). Stops early
        when `readinto` returns 0."""
        with memoryview(bytearray(min(self.FILL, count))) as buffer:
            while count > 0:
                with buffer[: min(len(buffer), count)] as view:
                    got = readinto(view)
                if not got:
                    return
                with buffer[:got] as data:
                    self.write(data)
                count -= got
                advance(got)

    def close(self) -> None:
        pass

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


class BackgroundSink(InlineSink):
    """Writes and hashes a large download on two more threads, `batch` bytes at a time.

    The receiving thread only copies the network's reads into a ring of
    `depth` + 2 page-aligned buffers, reused for the whole download; one
    thread writes each full buffer and another hashes it (both release the
    GIL), while the next one fills. A buffer is filled again once both are
    done with it, so a receiver ahead of the disk waits for one: memory stays
    at the ring's size. Writing then hashing on one thread capped a download
    at about 1 GB/s here; gathering into a new buffer per batch, then copying
    it again into an aligned one for O_DIRECT, cost 0.3 s of CPU per GiB
    more (2 GiB downloads: 701-774 MB/s against 831-964 MB/s with the ring).
    Three buffers of 16 MiB (48 MiB) rather than six of 4 MiB: a quarter of
    the hand-offs and syscalls, 0.5 s less CPU per 4 GiB (890-955 MB/s
    against 854-871 MB/s, from the server's page cache).
    A failed write is raised by the next hand-off or by `close`; the threads
    keep draining, so the receiver never blocks on them.
    `direct`: write with O_DIRECT where the filesystem allows, as the server
    stores large uploads (see `ngshare.storage.direct`): a dataset does not
    fill the page cache, which in a container counts against its memory.
    """

    def __init__(
        self,
        handle: BinaryIO,
        digest: Any,
        batch: int = 16 * 1024 * 1024,
        depth: int = 1,
        direct: bool = False,
    ) -> None:
        super().__init__(handle, digest)
        handle.flush()
        self._appender = None
        if direct:
            self._appender = open_direct(Path(handle.name), handle.fileno(), self.received)
        self.batch = batch
        self._free: queue.Queue[mmap.mmap] = queue.Queue()
        self._made, self._most = 0, depth + 2
        self._current = self._buffer()
        self._position = self.received  # where the current buffer's first byte belongs
        # the first batch ends on a block boundary, so that every later one starts on one
        self._limit = min(-self._position % ALIGN, batch) or batch
        self._filled = 0
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[_Batch | None]] = [queue.Queue(), queue.Queue()]
        self._threads = [
            threading.Thread(target=self._run, args=(jobs, work), name=name, daemon=True)
            for jobs, work, name in zip(
                self._queues,
                (self._write_batch, self._hash_batch),
                ("ngshare-download-write", "ngshare-download-hash"),
                strict=True,
            )
        ]
        for thread in self._threads:
            thread.start()

    def _buffer(self) -> mmap.mmap:
        """A free buffer of the ring, a new one while there are fewer than its size."""
        if self._free.empty() and self._made < self._most:
            self._made += 1
            return mmap.mmap(-1, self.batch)
        return self._free.get()

    def write(self, data: bytes) -> None:
        rest = memoryview(data)
        self.received += len(rest)
        while rest:
            taken = min(len(rest), self._limit - self._filled)
            self._current[self._filled : self._filled + taken] = rest[:taken]
            rest = rest[taken:]
            self._took(taken)

    def fill(
        self, readinto: Callable[[memoryview], int], count: int, advance: Callable[[int], object]
    ) -> None:
        """Receive up to `count` bytes by `readinto(view)` straight into the ring's
        buffers: the network's bytes are copied by the kernel only (see
        `ngshare.client.rawhttp`). Stops early when `readinto` returns 0."""
        while count > 0:
            end = min(self._limit, self._filled + count)
            with memoryview(self._current) as buffer, buffer[self._filled : end] as view:
                got = readinto(view)
            if not got:
                return
            self.received += got
            count -= got
            advance(got)
            self._took(got)

    def _took(self, nbytes: int) -> None:
        """Count `nbytes` more in the current buffer; hand it off once it is full
        (raising first a failed write of an earlier one)."""
        self._filled += nbytes
        if self._filled == self._limit:
            if self._error is not None:
                raise self._error
            self._hand_off()

    def _hand_off(self) -> None:
        batch = _Batch(self._current, memoryview(self._current)[: self._filled], self._position)
        for jobs in self._queues:
            jobs.put(batch)
        self._position += self._filled
        self._filled, self._limit = 0, self.batch
        self._current = self._buffer()

    def _write_batch(self, batch: _Batch) -> None:
        if self._appender is not None:
            self._appender.write_at(batch.data, batch.position)
        else:
            self.handle.write(batch.data)

    def _hash_batch(self, batch: _Batch) -> None:
        self.digest.update(batch.data)

    def _run(self, jobs: queue.Queue[_Batch | None], work: Callable[[_Batch], Any]) -> None:
        while (batch := jobs.get()) is not None:
            if self._error is None:
                try:
                    work(batch)
                except BaseException as exc:  # handed to the receiving thread
                    self._error = exc
            with self._lock:
                batch.users -= 1
                if not batch.users:
                    self._free.put(batch.buffer)

    def close(self) -> None:
        """Write what is gathered and stop the threads (idempotent); raise a failed write."""
        if any(thread.is_alive() for thread in self._threads):
            if self._filled:
                self._hand_off()
            for jobs in self._queues:
                jobs.put(None)
            for thread in self._threads:
                thread.join()
            if self._appender is not None:
                self._appender.close()
        if self._error is not None:
            raise self._error

    def hexdigest(self) -> str:
        self.close()
        return self.digest.hexdigest()


class _Batch:
    """A full buffer of the ring, handed to the writing and the hashing thread."""

    __slots__ = ("buffer", "data", "position", "users")

    def __init__(self, buffer: mmap.mmap, data: memoryview, position: int) -> None:
        self.buffer = buffer
        self.data = data  # the filled part of `buffer`
        self.position = position
        self.users = 2  # back to the ring when both threads are done with it
