"""Manifest answers with their small files inline (see ngshare.api.v2.inline).

The client asks for them on the GETs that precede a download (an assignment
to fetch, feedback to fetch): the notebooks come in the same answer as the
manifest, and the download that follows writes them from memory instead of
asking again. A server that does not offer it answers JSON, which reads as
a bundle carrying nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

import httpx

from ngshare.client.batches import BUNDLE_MEDIA_TYPE
from ngshare.client.errors import ClientError, json_answer

ACCEPT = f"{BUNDLE_MEDIA_TYPE}, application/json;q=0.9"
# What the client keeps: a few answers' worth (the server sends at most 4 MiB per answer)
KEEP_BYTES = 16 * 1024 * 1024


def read_answer(response: httpx.Response) -> tuple[dict, dict[str, bytes]]:
    """The JSON answer, and the blobs it carried by sha256, each one's hash checked."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != BUNDLE_MEDIA_TYPE:
        return json_answer(response), {}
    line, newline, rest = response.content.partition(b"\n")
    try:
        head = json.loads(line) if newline else None
        listed = [(str(b["sha256"]), int(b["size"])) for b in head.pop("blobs")]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ClientError("The server's bundle does not start with a line of JSON") from None
    if sum(size for _sha, size in listed) != len(rest):
        raise ClientError("The server's bundle holds other bytes than the blobs it names")
    blobs: dict[str, bytes] = {}
    view, offset = memoryview(rest), 0
    for sha256, size in listed:
        data = bytes(view[offset : offset + size])
        offset += size
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ClientError(f"Blob {sha256} in the server's answer is corrupt (hash mismatch)")
        blobs[sha256] = data
    return head, blobs


class RecentBlobs:
    """Small blobs received with manifests, by sha256, newest kept within KEEP_BYTES.

    Content-addressed, so never stale: a download that names one of them
    writes it from here.
    """

    def __init__(self, limit: int = KEEP_BYTES) -> None:
        self.limit = limit
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # as HashCache, LocalCopies and KnownBlobs

    def add(self, blobs: dict[str, bytes]) -> None:
        with self._lock:
            for sha256, data in blobs.items():
                if sha256 in self._blobs:
                    self._blobs.move_to_end(sha256)
                    continue
                self._blobs[sha256] = data
                self._size += len(data)
            while self._size > self.limit and self._blobs:
                _sha, data = self._blobs.popitem(last=False)
                self._size -= len(data)

    def get(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._blobs.get(sha256)

    def __len__(self) -> int:
        with self._lock:
            return len(self._blobs)
