"""What the client knows a server holds: the blobs it fetched from a course or sent to it.

A student's submit is the notebooks they edited beside the files they
fetched. Knowing the fetched files are on the server, the client names them
by hash and carries the edited notebooks in the commit itself: one request,
where asking "which of these are missing?" first made two. At a deadline
that halves the submit phase's requests; a resubmission still carries only
the notebooks changed since (those submitted before are known too).

The knowledge is a hint, never trusted for correctness: should the server
have collected a blob meanwhile, the commit answers 409 naming it, the
client forgets it, sends it and commits again. Kept per server and course
(a blob in one course says nothing of another), optionally in a JSON file
beside the hash cache so that `nbgrader fetch` and a later `nbgrader submit`
share it; the newest `MAX_PER_SCOPE` blobs of each scope are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

MAX_PER_SCOPE = 5_000
MAX_SCOPES = 200


class KnownBlobs:
    """scope (server and course) -> the sha256 of blobs known to be there, newest last."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._scopes: dict[str, dict[str, None]] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if self.path is not None:
            self._scopes = _load(self.path)

    def known(self, scope: str) -> set[str]:
        with self._lock:
            return set(self._scopes.get(scope, ()))

    def add(self, scope: str, hashes: Iterable[str]) -> None:
        """Record that the server holds these blobs (just sent, fetched or named there)."""
        with self._lock:
            blobs = self._scopes.pop(scope, {})
            self._scopes[scope] = blobs  # the scope used last is kept longest
            for sha256 in hashes:
                blobs.pop(sha256, None)
                blobs[sha256] = None
            while len(blobs) > MAX_PER_SCOPE:
                del blobs[next(iter(blobs))]
            while len(self._scopes) > MAX_SCOPES:
                del self._scopes[next(iter(self._scopes))]
            self._dirty = True

    def forget(self, scope: str, hashes: Iterable[str]) -> None:
        """The server said it lacks these after all."""
        with self._lock:
            blobs = self._scopes.get(scope, {})
            for sha256 in hashes:
                if sha256 in blobs:
                    del blobs[sha256]
                    self._dirty = True

    def save(self) -> None:
        """Write the file (atomically; failures are ignored: it is only a hint)."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            data = {scope: list(blobs) for scope, blobs in self._scopes.items()}
            self._dirty = False
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".known-")
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(data, handle)
                os.replace(name, self.path)
            except OSError:
                os.unlink(name)
                raise


def _load(path: Path) -> dict[str, dict[str, None]]:
    """The file's scopes; an unreadable or malformed file is an empty start."""
    try:
        data = json.loads(path.read_text())
        return {
            str(scope): {str(sha256): None for sha256 in blobs}
            for scope, blobs in data.items()
            if isinstance(blobs, list)
        }
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def beside(hash_cache: Path) -> Path:
    """The file kept next to a hash cache file: `hashes.json` -> `hashes.blobs.json`."""
    path = Path(hash_cache)
    return path.with_name(f"{path.stem}.blobs{path.suffix or '.json'}")
