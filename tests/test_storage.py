"""The local blob store: atomic, content-addressed, deduplicating."""

import os
import time
from dataclasses import replace

import pytest

from ngshare.storage import LocalBlobStore, hash_bytes


def test_put_and_read_back(tmp_path):
    store = LocalBlobStore(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = hash_bytes(data)
    store.put_bytes(data, digest)
    assert store.exists(digest.sha256)
    assert b"".join(store.iter_chunks(digest.sha256)) == data
    assert store.path_for(digest.sha256).parent.parent.parent == tmp_path
    assert list(store.list_temporary()) == []


def test_identical_content_is_stored_once_and_touched(tmp_path):
    store = LocalBlobStore(tmp_path)
    digest = hash_bytes(b"same")
    store.put_bytes(b"same", digest)
    path = store.path_for(digest.sha256)
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    before = path.stat().st_mtime
    store.put_bytes(b"same", digest)
    assert path.stat().st_mtime > before
    assert [name for name, _ in store.list_blobs()] == [digest.sha256]


def test_failed_write_leaves_no_partial_blob(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path)
    digest = hash_bytes(b"doomed")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)  # stand-in for a full disk
    with pytest.raises(OSError):
        store.put_bytes(b"doomed", digest)
    assert not store.exists(digest.sha256)
    assert list(store.list_temporary()) == []


def test_delete_and_names_are_checked(tmp_path):
    store = LocalBlobStore(tmp_path)
    digest = hash_bytes(b"x")
    store.put_bytes(b"x", digest)
    store.delete(digest.sha256)
    store.delete(digest.sha256)
    assert not store.exists(digest.sha256)
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")
    store.check()


def test_staging_forces_only_new_blobs_to_disk(tmp_path, monkeypatch):
    """A staged copy of a stored blob is dropped unsynced; a new one is fsynced, then renamed."""
    store = LocalBlobStore(tmp_path)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    known = hash_bytes(b"stored already")
    store.put_bytes(b"stored already", known)
    synced.clear()

    again = store.stage(md5=False)
    again.write(b"stored already")
    assert again.finish() == replace(known, md5="")
    again.commit()
    assert synced == []
    assert list(store.list_temporary()) == []

    fresh = store.stage()
    fresh.write(b"new bytes")
    digest = fresh.finish()
    assert digest == hash_bytes(b"new bytes")
    fresh.commit()
    assert len(synced) == 2  # the file, then its directory after the rename
    assert b"".join(store.iter_chunks(digest.sha256)) == b"new bytes"
    assert list(store.list_temporary()) == []


def test_staging_without_md5(tmp_path):
    store = LocalBlobStore(tmp_path)
    staging = store.stage(md5=False)
    staging.write(b"abc")
    digest = staging.finish()
    assert (digest.sha256, digest.md5, digest.size) == (hash_bytes(b"abc").sha256, "", 3)
    staging.discard()


def test_md5_memo_reads_each_blob_once_for_concurrent_askers(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from ngshare.domain.filesets import _Md5Memo

    reads = []

    class CountingStore(LocalBlobStore):
        def iter_chunks(self, sha256, chunk_size=2**20):
            reads.append(sha256)
            time.sleep(0.05)  # long enough for every asker to arrive while it runs
            yield from super().iter_chunks(sha256, chunk_size)

    store = CountingStore(tmp_path)
    data = os.urandom(100_000)
    digest = hash_bytes(data)
    store.put_bytes(data, digest)
    memo = _Md5Memo(size=2)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: memo.of(store, digest.sha256), range(8)))
    assert answers == [digest.md5] * 8
    assert reads == [digest.sha256]
    assert memo.busy == {}
