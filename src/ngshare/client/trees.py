"""Local directory trees: scanning with hashes, safe writing of downloads.

A tree is scanned once: each file is read in chunks and its sha256 computed
on the way, so a 4 GB dataset costs one pass and flat memory. Downloads are
written under a temporary directory beside the destination, each file's hash
checked as it is written, and only a complete, verified tree is moved into
place. Paths from the server are checked like the server checks uploads, and
nothing is written through a symlink.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ngshare.client.errors import ClientError
from ngshare.client.local import HashCache
from ngshare.paths import is_safe_path

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative POSIX path inside the tree
    source: Path
    sha256: str
    size: int
    executable: bool

    def manifest_entry(self) -> dict[str, object]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "executable": self.executable,
        }


class Progress(Protocol):
    """Told about bytes moved; implementations draw a bar or write a log line."""

    def start(self, total_bytes: int, total_files: int, label: str) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, path: str) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, total_bytes: int, total_files: int, label: str) -> None:
        return None

    def advance(self, nbytes: int) -> None:
        return None

    def file_done(self, path: str) -> None:
        return None

    def finish(self) -> None:
        return None


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def scan_tree(
    root: Path,
    ignore: Iterable[str] = (),
    include: Callable[[str, int], bool] | None = None,
    cache: HashCache | None = None,
) -> list[LocalFile]:
    """Every regular file below `root` (symlinks and ignored names skipped), hashed.

    `ignore` holds glob patterns matched against each file or directory name;
    an ignored directory is pruned, not descended into. `include(path, size)`
    may veto single files. With a `cache`, files unchanged since they were
    last hashed (or downloaded) are not read again.
    """
    root = Path(root)
    patterns = list(ignore)
    found: list[LocalFile] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not _ignored(d, patterns) and not os.path.islink(os.path.join(directory, d))
        )
        for name in sorted(filenames):
            full = Path(directory, name)
            info = full.lstat()
            if _ignored(name, patterns) or not stat.S_ISREG(info.st_mode):
                continue
            relative = full.relative_to(root).as_posix()
            if include is not None and not include(relative, info.st_size):
                continue
            sha256 = cache.get(full, info) if cache is not None else None
            size = info.st_size
            if sha256 is None:
                sha256, size = hash_file(full)
                if cache is not None and size == info.st_size:
                    cache.put(full, sha256, info)
            found.append(LocalFile(relative, full, sha256, size, bool(info.st_mode & 0o111)))
    return found


def _ignored(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def safe_target(root: Path, relative: str) -> Path:
    """Where a server-named file goes below `root`; refuses anything that could escape."""
    if not is_safe_path(relative):
        raise ClientError(f"The server sent an unsafe path: {relative!r}")
    target = root.joinpath(*relative.split("/"))
    current = root
    for part in relative.split("/")[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise ClientError(f"Refusing to write through {current}: not a plain directory")
    if target.is_symlink():
        raise ClientError(f"Refusing to overwrite the symlink {target}")
    return target
