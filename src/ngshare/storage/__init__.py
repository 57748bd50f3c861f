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


def open_store(settings) -> BlobStore:
    """The blob store the settings choose."""
    if settings.storage == "s3":
        from ngshare.storage.s3 import S3BlobStore

        return S3BlobStore(
            settings.s3_bucket,
            settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    return LocalBlobStore(settings.storage_dir, direct_min=settings.storage_direct_io_mb * 2**20)
