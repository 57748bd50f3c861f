"""Large uploads written with O_DIRECT: every byte lands, resumed at any offset.

These run on the test machine's real filesystem under pytest's tmp_path; a
filesystem without O_DIRECT takes the ordinary path, which the fallback
test forces.
"""

import errno
import fcntl
import hashlib
import mmap
import os
import random

import pytest
import xxhash

from ngshare.storage import LocalBlobStore
from ngshare.storage import direct as direct_module
from ngshare.storage.direct import ALIGN, BUFFER, page_aligned

SIZE = BUFFER * 2 + ALIGN * 3 + 123  # two whole buffers, whole blocks, and a ragged tail


def payload(size: int = SIZE) -> bytes:
    return random.Random(size).randbytes(size)


def pieces(data: bytes, sizes: list[int]):
    """`data` cut at sizes taken in turn (odd sizes straddle blocks and buffers)."""
    start, turn = 0, 0
    while start < len(data):
        step = sizes[turn % len(sizes)]
        yield data[start : start + step]
        start += step
        turn += 1


@pytest.fixture
def store(tmp_path):
    return LocalBlobStore(tmp_path / "blobs", direct_min=ALIGN)


def test_large_upload_goes_direct_and_arrives_whole(store):
    data = payload()
    sha = hashlib.sha256(data).hexdigest()
    upload = store.begin_upload(sha, "alice", size=len(data))
    if upload.appender is None:
        pytest.fail("O_DIRECT was not used: this test needs a filesystem that supports it")
    for piece in pieces(data, [1 << 20, 777, 65536 + 5]):
        upload.write(piece)
    digest = upload.finish()
    assert (digest.size, digest.xxh3) == (len(data), xxhash.xxh3_128(data).hexdigest())
    assert store.path_for(sha).read_bytes() == data


@pytest.mark.parametrize("direct", [True, False])
def test_pieces_written_in_batches_arrive_whole(tmp_path, direct):
    """`write_pieces`, as the v2 PUT hands over a batch of the network's reads:
    several batches of odd-sized pieces, direct or through the page cache, and
    the hash of each batch computed behind its write."""
    store = LocalBlobStore(tmp_path / "blobs", direct_min=ALIGN if direct else 0)
    data = payload()
    sha = hashlib.sha256(data).hexdigest()
    upload = store.begin_upload(sha, "alice", size=len(data))
    assert (upload.appender is not None) == direct
    cut = list(pieces(data, [65536 + 5, 777, 300_001]))
    for start in range(0, len(cut), 7):
        upload.write_pieces(cut[start : start + 7])
    assert upload.offset == len(data)
    digest = upload.finish()
    assert (digest.size, digest.xxh3) == (len(data), xxhash.xxh3_128(data).hexdigest())
    assert store.path_for(sha).read_bytes() == data


def test_small_uploads_keep_the_page_cache(store):
    data = b"x" * (ALIGN - 1)
    upload = store.begin_upload(hashlib.sha256(data).hexdigest(), "alice", size=len(data))
    assert upload.appender is None
    upload.write(data)
    upload.finish()


@pytest.mark.parametrize("cut", [1, ALIGN - 1, ALIGN, BUFFER + 17, SIZE - 1])
def test_resume_at_any_offset(store, cut):
    """A dropped upload keeps exactly what arrived, and a resumed one continues there."""
    data = payload()
    sha = hashlib.sha256(data).hexdigest()
    first = store.begin_upload(sha, "alice", size=len(data))
    for piece in pieces(data[:cut], [300_001]):
        first.write(piece)
    first.suspend()
    assert store.upload_offset(sha, "alice") == cut
    second = store.begin_upload(sha, "alice", size=len(data))
    assert second.offset == cut
    for piece in pieces(data[cut:], [BUFFER - 1, 4097]):
        second.write(piece)
    second.finish()
    assert hashlib.sha256(store.path_for(sha).read_bytes()).hexdigest() == sha


def test_aborted_direct_upload_leaves_nothing(store):
    data = payload()
    sha = hashlib.sha256(data).hexdigest()
    upload = store.begin_upload(sha, "alice", size=len(data))
    upload.write(data[: BUFFER + 5])
    upload.abort()
    assert store.upload_offset(sha, "alice") == 0
    assert not store.exists(sha)
    assert list(store.tmp.iterdir()) == []


def test_filesystem_without_o_direct_falls_back(store, monkeypatch):
    real_open = os.open

    def no_direct(path, flags, *args):
        if flags & direct_module.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct_module.os, "open", no_direct)
    data = payload(BUFFER + 99)
    sha = hashlib.sha256(data).hexdigest()
    upload = store.begin_upload(sha, "alice", size=len(data))
    assert upload.appender is None
    upload.write(data)
    upload.finish()
    assert store.path_for(sha).read_bytes() == data


def test_direct_io_can_be_turned_off(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs", direct_min=0)
    data = payload(BUFFER)
    upload = store.begin_upload(hashlib.sha256(data).hexdigest(), "alice", size=len(data))
    assert upload.appender is None
    upload.abort()


def test_a_filesystem_refusing_direct_writes_falls_back_mid_upload(store, monkeypatch):
    """Some filesystems take O_DIRECT at open and refuse the writes: the first refusal
    (here after a whole buffer and a short write) turns the rest into ordinary writes,
    from where the last whole buffer ended (the partial file is opened to append)."""
    real_pwrite = os.pwrite
    direct_writes = []

    def refusing(fd, data, offset):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & direct_module.O_DIRECT:
            direct_writes.append(offset)
            if len(direct_writes) == 2:  # a short write first, then the refusal
                return real_pwrite(fd, data[: 2 * ALIGN], offset)
            if len(direct_writes) > 2:
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(direct_module.os, "pwrite", refusing)
    data = payload()
    sha = hashlib.sha256(data).hexdigest()
    upload = store.begin_upload(sha, "alice", size=len(data))
    assert upload.appender is not None
    for piece in pieces(data, [1 << 20, 4097]):
        upload.write(piece)
    upload.finish()
    assert direct_writes == [0, BUFFER, BUFFER + 2 * ALIGN]  # whole, short, refused; none after
    assert store.path_for(sha).read_bytes() == data


def aligned_copy(data: bytes) -> memoryview:
    """`data` in page-aligned memory, as the server's upload ring holds it."""
    buffer = mmap.mmap(-1, len(data))
    buffer[:] = data
    return memoryview(buffer)


def test_page_aligned_memory_goes_to_the_disk_from_where_it_is(store, monkeypatch):
    """A batch from the upload ring (an mmap) is written with O_DIRECT as it is; only
    a tail short of a block is gathered. Bytes, or an unaligned position, are gathered."""
    data = payload()
    sha = hashlib.sha256(data).hexdigest()
    upload = store.begin_upload(sha, "alice", size=len(data))
    appender = upload.appender
    assert appender is not None
    direct_writes: list[tuple[int, int]] = []
    real_pwrite = os.pwrite

    def recording(fd, piece, offset):
        if fd == appender.direct_fd:
            direct_writes.append((offset, len(piece)))
        return real_pwrite(fd, piece, offset)

    monkeypatch.setattr(direct_module.os, "pwrite", recording)
    first = BUFFER + ALIGN + 5  # whole blocks, then a tail
    upload.write_pieces([aligned_copy(data[:first])])
    assert direct_writes == [(0, BUFFER + ALIGN)]
    assert appender.filled == 5  # the tail waits in the appender's own buffer
    second = first + 2 * ALIGN
    upload.write_pieces([aligned_copy(data[first:second])])  # something waits: gathered too
    assert appender.filled == 5 + 2 * ALIGN and len(direct_writes) == 1
    upload.write_pieces([data[second:]])  # bytes: gathered
    assert upload.finish().size == len(data)
    assert store.path_for(sha).read_bytes() == data


def test_what_counts_as_page_aligned():
    aligned = aligned_copy(bytes(3 * ALIGN))
    assert page_aligned(aligned) and page_aligned(aligned[ALIGN:])
    assert not page_aligned(aligned[1:])
    assert not page_aligned(aligned[: ALIGN - 1])  # less than a block
    assert not page_aligned(memoryview(bytes(aligned)))  # read-only: bytes
