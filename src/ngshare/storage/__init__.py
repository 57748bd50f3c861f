"""Content-addressed blob storage: the interface and its implementations."""

from ngshare.storage.base import BlobStore, Digest, hash_bytes
from ngshare.storage.local import LocalBlobStore

__all__ = ["BlobStore", "Digest", "LocalBlobStore", "hash_bytes"]
