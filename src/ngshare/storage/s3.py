"""Blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, GCS interoperability).

Layout under the configured prefix:
- `blobs/<sha256>`: a stored blob (written only whole, after its hash checked out);
- `touch/<sha256>`: an empty marker whose time says a request still wants the
  blob (S3 cannot refresh an object's time in place); the GC looks at both;
- `partial/<sha256>-<uploader>`: what arrived of an interrupted upload.

Uploads stream into a multipart upload in parts of `PART_SIZE` bytes, hashing
on the way; only a verified upload is completed under `blobs/`. An upload that
is suspended (connection dropped) is completed under `partial/`; resuming it
re-reads that object once to restore the hash and copies it server-side as the
first part of the new multipart upload. Credentials come from boto3's usual
chain (environment variables, shared config/credentials files, instance roles).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, BinaryIO

from ngshare.checksums import new_xxh3
from ngshare.storage.base import CHUNK, Digest, Hashes, HashMismatch

PART_SIZE = 8 * 1024 * 1024  # S3 needs at least 5 MiB for every part but the last


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region)
        self.s3 = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    # names

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}/{name}"

    def blob_key(self, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self._key("blobs", sha256)

    def _head(self, key: str) -> dict | None:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    # reading

    def exists(self, sha256: str) -> bool:
        return self._head(self.blob_key(sha256)) is not None

    def size(self, sha256: str) -> int | None:
        head = self._head(self.blob_key(sha256))
        return None if head is None else int(head["ContentLength"])

    def open(self, sha256: str) -> BinaryIO:
        size = self.size(sha256)
        if size is None:
            raise FileNotFoundError(sha256)
        return S3Reader(self, self.blob_key(sha256), size)  # type: ignore[return-value]

    def local_file(self, sha256: str) -> None:
        return None

    def iter_chunks(self, sha256: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.blob_key(sha256))["Body"]
        except self.s3.exceptions.NoSuchKey:
            raise FileNotFoundError(sha256) from None
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    # writing

    def put_bytes(self, data: bytes, digest: Digest) -> None:
        if self.touch(digest.sha256):
            return
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self.blob_key(digest.sha256),
            Body=data,
            ChecksumAlgorithm="SHA256",
        )

    def touch(self, sha256: str) -> bool:
        if not self.exists(sha256):
            return False
        self.s3.put_object(Bucket=self.bucket, Key=self._key("touch", sha256), Body=b"")
        return True

    def delete(self, sha256: str) -> None:
        for key in (self.blob_key(sha256), self._key("touch", sha256)):
            self.s3.delete_object(Bucket=self.bucket, Key=key)

    def written_at(self, sha256: str) -> datetime | None:
        head = self._head(self.blob_key(sha256))
        if head is None:
            return None
        touched = self._head(self._key("touch", sha256))
        times = [head["LastModified"]] + ([touched["LastModified"]] if touched else [])
        return max(times)

    def _list(self, kind: str) -> Iterator[dict]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(kind, "")):
            yield from page.get("Contents", [])

    def list_blobs(self) -> Iterator[tuple[str, datetime]]:
        touched = {o["Key"].rsplit("/", 1)[1]: o["LastModified"] for o in self._list("touch")}
        for item in self._list("blobs"):
            name = item["Key"].rsplit("/", 1)[1]
            yield name, max(item["LastModified"], touched.get(name, item["LastModified"]))

    def list_temporary(self) -> Iterator[tuple[Any, datetime]]:
        for item in self._list("partial"):
            yield S3Object(self, item["Key"]), item["LastModified"]

    def check(self) -> None:
        key = self._key("ready", "probe")
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"")
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # botocore errors are not OSErrors
            raise OSError(f"object store not writable: {type(exc).__name__}") from exc

    # resumable uploads

    def _partial_key(self, sha256: str, key: str) -> str:
        self.blob_key(sha256)
        tag = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self._key("partial", f"{sha256}-{tag}")

    def stage(self, md5: bool = True) -> S3Staging:
        return S3Staging(self, md5)

    def begin_upload(self, sha256: str, key: str, size: int | None = None) -> S3Upload:
        return S3Upload(self, sha256, self._partial_key(sha256, key))

    def upload_offset(self, sha256: str, key: str) -> int:
        head = self._head(self._partial_key(sha256, key))
        return 0 if head is None else int(head["ContentLength"])


class S3Object:
    """A temporary object the GC may delete (`unlink`, like a Path)."""

    def __init__(self, store: S3BlobStore, key: str) -> None:
        self.store = store
        self.key = key

    def unlink(self, missing_ok: bool = True) -> None:
        self.store.s3.delete_object(Bucket=self.store.bucket, Key=self.key)


class S3Reader(io.RawIOBase):
    """A seekable reader over one object, fetching ranges as it goes."""

    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        self.store = store
        self.key = key
        self.length = size
        self.position = 0
        self.body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self._drop()
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.length:
            return b""
        if self.body is None:
            response = self.store.s3.get_object(
                Bucket=self.store.bucket, Key=self.key, Range=f"bytes={self.position}-"
            )
            self.body = response["Body"]
        data = self.body.read(None if size is None or size < 0 else size)
        self.position += len(data)
        return data

    def _drop(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        self._drop()
        super().close()


class S3Staging:
    """Spooled to a local temporary file (hashing on the way), uploaded on commit."""

    def __init__(self, store: S3BlobStore, md5: bool = True) -> None:
        self.store = store
        self.spool = tempfile.TemporaryFile(prefix="ngshare-stage-")  # noqa: SIM115 (closed in commit or discard)
        self.hashes = Hashes(md5)

    def write(self, data: bytes) -> None:
        self.spool.write(data)
        self.hashes.update(data)

    def finish(self) -> Digest:
        return self.hashes.digest()

    def commit(self) -> None:
        digest = self.finish()
        if not self.store.touch(digest.sha256):
            self.spool.seek(0)
            self.store.s3.upload_fileobj(
                self.spool, self.store.bucket, self.store.blob_key(digest.sha256)
            )
        self.spool.close()

    def discard(self) -> None:
        self.spool.close()


class S3Upload:
    """A multipart upload, continued from an earlier partial object when there is one."""

    def __init__(self, store: S3BlobStore, sha256: str, partial_key: str) -> None:
        self.store = store
        self.s3 = store.s3
        self.sha256 = sha256
        self.partial_key = partial_key
        self.hasher = hashlib.sha256()
        self.quick = new_xxh3()  # what downloads are checked with (ngshare.checksums)
        self.buffer = bytearray()
        self.parts: list[dict] = []
        self.closed = False
        self.upload_id = self.s3.create_multipart_upload(
            Bucket=store.bucket, Key=partial_key + ".next"
        )["UploadId"]
        self.offset = 0
        self._continue_partial()

    def _continue_partial(self) -> None:
        """Restore the hash from what arrived before, and reuse those bytes as part one."""
        head = self.store._head(self.partial_key)
        if head is None:
            return
        size = int(head["ContentLength"])
        body = self.s3.get_object(Bucket=self.store.bucket, Key=self.partial_key)["Body"]
        small = size < PART_SIZE
        for chunk in body.iter_chunks(CHUNK):
            self.hasher.update(chunk)
            self.quick.update(chunk)
            if small:
                self.buffer += chunk
        self.offset = size
        if not small:
            copied = self.s3.upload_part_copy(
                Bucket=self.store.bucket,
                Key=self.partial_key + ".next",
                UploadId=self.upload_id,
                PartNumber=1,
                CopySource={"Bucket": self.store.bucket, "Key": self.partial_key},
            )
            self.parts.append({"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]})

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def write(self, data: bytes) -> None:
        self.hasher.update(data)
        self.quick.update(data)
        self.buffer += data
        self.offset += len(data)
        while len(self.buffer) >= PART_SIZE:
            self._send_part(bytes(self.buffer[:PART_SIZE]))
            del self.buffer[:PART_SIZE]

    def _send_part(self, data: bytes) -> None:
        number = len(self.parts) + 1
        sent = self.s3.upload_part(
            Bucket=self.store.bucket,
            Key=self.partial_key + ".next",
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        self.parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def _complete(self) -> None:
        if self.buffer or not self.parts:
            self._send_part(bytes(self.buffer))
            self.buffer.clear()
        self.s3.complete_multipart_upload(
            Bucket=self.store.bucket,
            Key=self.partial_key + ".next",
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def finish(self) -> Digest:
        actual = self.hasher.hexdigest()
        if actual != self.sha256:
            self.abort()
            raise HashMismatch(self.sha256, actual)
        self._complete()
        self._move(self.partial_key + ".next", self.store.blob_key(self.sha256))
        self.s3.delete_object(Bucket=self.store.bucket, Key=self.partial_key)
        self.closed = True
        return Digest(sha256=actual, md5="", size=self.offset, xxh3=self.quick.hexdigest())

    def _move(self, source: str, target: str) -> None:
        """Server-side copy (multipart above 5 GiB), then delete the source."""
        bucket = self.store.bucket
        self.s3.copy(
            {"Bucket": bucket, "Key": source},
            bucket,
            target,
            ExtraArgs={"MetadataDirective": "COPY"},
        )
        self.s3.delete_object(Bucket=bucket, Key=source)

    def suspend(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.offset == 0:
            self._abort_multipart()
            return
        self._complete()
        self._move(self.partial_key + ".next", self.partial_key)

    def abort(self) -> None:
        if not self.closed:
            self._abort_multipart()
            self.closed = True
        self.s3.delete_object(Bucket=self.store.bucket, Key=self.partial_key)

    def _abort_multipart(self) -> None:
        self.s3.abort_multipart_upload(
            Bucket=self.store.bucket, Key=self.partial_key + ".next", UploadId=self.upload_id
        )
