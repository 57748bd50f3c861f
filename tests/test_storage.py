"""The local blob store: atomic, content-addressed, deduplicating."""

import os
import time

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
