"""Validation of the relative paths inside a file tree.

A path names a file inside an assignment directory. It must be relative POSIX,
with no empty, `.` or `..` component, no backslash, NUL or other control
character; one tree may not name a path twice, nor a path and a directory
prefix of it (that would be a file and a directory at once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ngshare.errors import BadRequest

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")  # control characters and the backslash
MAX_PATH_LENGTH = 4096
MAX_COMPONENT_LENGTH = 255


def is_safe_path(path: object) -> bool:
    """True if `path` may be written below a target directory as given."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH:
        return False
    if _FORBIDDEN.search(path):
        return False
    parts = path.split("/")
    return all(
        part not in ("", ".", "..") and len(part.encode()) <= MAX_COMPONENT_LENGTH for part in parts
    )


def check_tree(paths: Iterable[object], named: bool = False) -> list[str]:
    """Return the paths if every one is safe and the tree is consistent; else 400.

    `named`: the message names the path and why (v2). v1's contract says just
    `Illegal path`.
    """
    checked: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if not is_safe_path(path):
            raise _illegal(
                named,
                path,
                "it must be relative, without '.', '..', backslashes or control characters",
            )
        assert isinstance(path, str)
        if path in seen:
            raise _illegal(named, path, "listed twice")
        seen.add(path)
        checked.append(path)
    for path in checked:
        parent = path.rpartition("/")[0]
        while parent:
            if parent in seen:
                raise _illegal(named, parent, "a file, and a directory of other paths")
            parent = parent.rpartition("/")[0]
    return checked


def _illegal(named: bool, path: object, why: str) -> BadRequest:
    return BadRequest(f"Illegal path {str(path)[:200]!r}: {why}" if named else "Illegal path")
