"""Content-addressed blob storage: the interface and its implementations."""

from ngshare.storage.base import BlobStore, Digest, HashMismatch, Upload, UploadBusy, hash_bytes
from ngshare.storage.local import LocalBlobStore

__all__ = [
    "BlobStore",
    "Digest",
    "HashMismatch",
    "LocalBlobStore",
    "Upload",
    "UploadBusy",
    "hash_bytes",
]
