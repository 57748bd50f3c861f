"""Stored blobs as a v1 client encodes them, for comparing uploads without decoding them.

See `ngshare.api.v1.known`, which compares a v1 upload's raw body with these.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from dataclasses import dataclass

from ngshare.storage.base import BlobStore, Digest

CACHE_BYTES = 128 * 1024 * 1024  # encodings kept; a file's may use a quarter


def encode_v1(data: bytes) -> bytes:
    """What a v1 client's form encoding makes of a file: quote_plus(b64encode(data))."""
    return quote_base64(base64.b64encode(data))


def quote_base64(text: bytes) -> bytes:
    """quote_plus() of base64 text, at C speed (only `+`, `/` and `=` need escapes)."""
    return text.replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D")


@dataclass(frozen=True)
class KnownFile:
    """A stored file and its content as a v1 client encodes it."""

    sha256: str
    md5: str
    size: int
    raw: bytes

    def digest(self) -> Digest:
        return Digest(sha256=self.sha256, md5=self.md5, size=self.size)


class EncodingCache:
    """Encodings of stored blobs by sha256, least recently used dropped first."""

    def __init__(self, store: BlobStore, budget: int = CACHE_BYTES) -> None:
        self.store = store
        self.budget = budget
        self.budget_per_file = budget // 4
        self._raw: OrderedDict[str, bytes] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()  # the dict and the counters, held briefly
        self._encoding: dict[str, threading.Lock] = {}  # one per blob being encoded
        self.recognised_bytes = 0  # of uploads found equal to stored files (a metric)

    def recognised(self, size: int) -> None:
        with self._lock:
            self.recognised_bytes += size

    def get(self, sha256: str, size: int, md5: str | None) -> KnownFile | None:
        """The blob's encoding, or None when it is too large to keep or no longer stored.

        The blob is touched, so the garbage collector spares it while the
        upload that may end up naming it is in flight."""
        if size * 4 // 3 + 4 > self.budget_per_file or not self.store.touch(sha256):
            return None
        raw = self._cached(sha256)
        if raw is None:
            with self._lock:
                encoding = self._encoding.setdefault(sha256, threading.Lock())
            with encoding:  # one encoding per blob, however many uploads ask at once
                raw = self._cached(sha256)
                if raw is None:
                    with self.store.open(sha256) as handle:
                        raw = encode_v1(handle.read())
                    self._keep(sha256, raw)
            with self._lock:
                self._encoding.pop(sha256, None)
        return KnownFile(sha256=sha256, md5=md5 or "", size=size, raw=raw)

    def _cached(self, sha256: str) -> bytes | None:
        with self._lock:
            raw = self._raw.get(sha256)
            if raw is not None:
                self._raw.move_to_end(sha256)
            return raw

    def _keep(self, sha256: str, raw: bytes) -> None:
        with self._lock:
            self._raw[sha256] = raw
            self._held += len(raw)
            while self._held > self.budget:
                self._held -= len(self._raw.popitem(last=False)[1])
