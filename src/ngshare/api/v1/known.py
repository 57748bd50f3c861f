"""Recognising a v1 upload's file as a stored one while it is still percent-encoded.

A v1 client sends each file as `quote_plus(b64encode(bytes))` inside the
form. Undoing that holds the GIL for about 1 ms per MB (`binascii.a2b_qp`
and friends), and most of a submission is usually the release's files sent
back unchanged: every student's copy of the 20 MB dataset. So when a file's
content begins, the parser asks for the stored file at the same path (the
assignment's current release, when the caller may fetch it) and compares the
raw body with that file's encoding as it arrives. Equal bytes need no
decoding, hashing or writing; the upload then names the stored blob. The
first difference turns the comparison back into ordinary decoding, starting
with the part that matched, so any upload decodes to the same bytes either
way. Encodings of recently used files are kept within a byte budget.
"""

from __future__ import annotations

from collections.abc import Callable

from ngshare.api.permissions import load_course_context
from ngshare.auth import User
from ngshare.db.models import Release
from ngshare.domain.filesets import list_files
from ngshare.domain.lookup import fetchable_assignment
from ngshare.errors import Conflict, NgshareError
from ngshare.state import AppState
from ngshare.storage.base import BlobStore, Digest
from ngshare.storage.encoded import EncodingCache, KnownFile

Listing = dict[str, tuple[str, int, str | None]]  # path: (sha256, size, md5)


class KnownFiles:
    """The stored files one upload's contents are compared with, found when first asked."""

    def __init__(self, cache: EncodingCache, listing: Callable[[], Listing]) -> None:
        self.cache = cache
        self._listing = listing
        self._files: Listing | None = None

    def find(self, path: str) -> KnownFile | None:
        if self._files is None:
            self._files = self._listing()
        entry = self._files.get(path)
        return None if entry is None else self.cache.get(*entry)

    def staging(self, known: KnownFile) -> KnownStaging:
        """The staging of an upload found equal to `known` (counted in the metrics)."""
        self.cache.recognised(known.size)
        return KnownStaging(self.cache.store, known)


def release_listing(state: AppState, course: str, assignment: str, user: User) -> Listing:
    """The assignment's current release by path, when `user` may fetch it (else nothing):
    a comparison's timing must not tell anyone about files they may not read."""
    try:
        ctx = load_course_context(state, course, user)
        if not ctx.is_member:
            return {}
        with state.db.read() as session:
            found = fetchable_assignment(session, ctx.course_id, assignment, ctx.is_instructor)
            release = session.get(Release, found.current_release_id)
            files = list_files(session, release.fileset_id) if release is not None else []
    except NgshareError:
        return {}
    return {f.path: (f.sha256, f.size, f.md5) for f in files}


class KnownStaging:
    """The Staging of an upload found equal to a stored blob: nothing to write."""

    def __init__(self, store: BlobStore, known: KnownFile) -> None:
        self.store = store
        self.known = known

    def write(self, data: bytes) -> None:
        raise RuntimeError("a known blob takes no bytes")

    def finish(self) -> Digest:
        return self.known.digest()

    def commit(self) -> None:
        # touched at lookup, so the garbage collector spares it; should it be gone even so
        # (deleted by hand), the client is told to send the upload again, which decodes it
        if not self.store.touch(self.known.sha256):
            raise Conflict("A stored file this upload repeats was deleted meanwhile; send it again")

    def discard(self) -> None:
        pass


class Comparison:
    """The raw body compared with a known file's encoding, from position `matched` on."""

    def __init__(self, known: KnownFile, matched: int) -> None:
        self.known = known
        self.matched = matched

    @property
    def complete(self) -> bool:
        return self.matched == len(self.known.raw)

    def take(self, data: bytes) -> int:
        """How many leading bytes of `data` continue the encoding (they are consumed)."""
        raw = self.known.raw
        count = min(len(data), len(raw) - self.matched)
        if data[:count] != raw[self.matched : self.matched + count]:
            low, high = 0, count  # data[:low] matches, data[:high] does not: halve
            while high - low > 1:
                middle = (low + high) // 2
                if data[low:middle] == raw[self.matched + low : self.matched + middle]:
                    low = middle
                else:
                    high = middle
            count = low
        self.matched += count
        return count

    def escape_boundary(self) -> int:
        """The matched length backed off so it does not end inside a `%XX` escape."""
        raw = self.known.raw
        position = self.matched
        for back in (1, 2):
            if position - back >= 0 and raw[position - back : position - back + 1] == b"%":
                return position - back
        return position
