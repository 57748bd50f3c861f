"""v1 uploads compared with stored files before decoding: same bytes staged either way.

The body is cut at random places (inside escapes too) and each upload is
checked against the plain decoding; the blob store is a real one on disk.
"""

import base64
import hashlib
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngshare.api.v1.form import FormDecoder
from ngshare.api.v1.known import KnownFiles, KnownStaging
from ngshare.config import Limits
from ngshare.errors import Conflict
from ngshare.storage import LocalBlobStore, hash_bytes
from ngshare.storage.encoded import EncodingCache, encode_v1

LIMITS = Limits(2**30, 2**30, 2**30, 1000)
STORED = random.Random(7).randbytes(300_000)  # the release's data file


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = LocalBlobStore(tmp_path_factory.mktemp("known") / "blobs")
    store.put_bytes(STORED, hash_bytes(STORED))
    return store


def known_files(store, listing=None) -> KnownFiles:
    digest = hash_bytes(STORED)
    default = {"data/data.bin": (digest.sha256, digest.size, digest.md5)}
    return KnownFiles(EncodingCache(store), lambda: default if listing is None else listing)


def body_of(files: dict[str, bytes], lower: bool = False) -> bytes:
    """A form body as ngshare_exchange sends it: json.dumps, then quote_plus."""
    entries = [{"path": p, "content": base64.b64encode(d).decode()} for p, d in files.items()]
    encoded = quote_plus(json.dumps(entries))
    if lower:  # another client might write escapes in lower case
        encoded = encoded.replace("%2B", "%2b").replace("%2F", "%2f")
    return f"user=s1&files={encoded}".encode()


def upload(store, body: bytes, cuts: list[int], known: KnownFiles | None):
    made = []

    def stage():
        made.append(store.stage(md5=False))
        return made[-1]

    decoder = FormDecoder(stage, LIMITS, known=known)
    previous = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        decoder.feed(body[previous:cut])
        previous = cut
    decoder.close()
    return decoder, made


def staged_bytes(entry) -> bytes:
    if isinstance(entry.staging, KnownStaging):
        return STORED
    return entry.staging.path.read_bytes()


def variants():
    """The stored file unchanged, changed at the start, middle, end, longer and shorter."""
    middle = len(STORED) // 2
    return [
        STORED,
        b"X" + STORED[1:],
        STORED[:middle] + bytes([STORED[middle] ^ 1]) + STORED[middle + 1 :],
        STORED[:-1] + bytes([STORED[-1] ^ 1]),
        STORED + b"more",
        STORED[:-5],
        b"",
    ]


@settings(max_examples=120, deadline=None)
@given(
    which=st.integers(0, len(variants()) - 1),
    seed=st.integers(0, 2**32),
    lower=st.booleans(),
    notebook_first=st.booleans(),
)
def test_compared_uploads_stage_the_same_bytes_as_decoded_ones(
    store, which, seed, lower, notebook_first
):
    data = variants()[which]
    files = {"data/data.bin": data}
    notebook = {"nb.ipynb": b'{"cells": []}' * 50}
    files = {**notebook, **files} if notebook_first else {**files, **notebook}
    body = body_of(files, lower)
    rng = random.Random(seed)
    cuts = [rng.randrange(len(body)) for _ in range(rng.randrange(1, 12))]
    decoder, _ = upload(store, body, cuts, known_files(store))
    assert decoder.files is not None and decoder.files.error is None
    got = {entry.path: staged_bytes(entry) for entry in decoder.files.entries}
    assert got == files
    for entry in decoder.files.entries:
        assert entry.digest.sha256 == hashlib.sha256(files[entry.path]).hexdigest()
        assert entry.digest.size == len(files[entry.path])
    decoder.files.discard()


def test_an_unchanged_file_is_not_decoded_or_written(store):
    body = body_of({"nb.ipynb": b"{}", "data/data.bin": STORED})
    cuts = list(range(0, len(body), 65536))  # the pieces a server receives
    decoder, made = upload(store, body, cuts, known_files(store))
    entries = {entry.path: entry for entry in decoder.files.entries}
    assert isinstance(entries["data/data.bin"].staging, KnownStaging)
    assert len(made) == 1  # only the notebook was staged
    assert entries["data/data.bin"].digest.sha256 == hashlib.sha256(STORED).hexdigest()
    entries["data/data.bin"].staging.commit()  # names the stored blob; nothing to write
    decoder.files.discard()


def test_without_a_stored_file_at_the_path_everything_is_decoded(store):
    body = body_of({"other.bin": STORED})
    decoder, made = upload(store, body, [1000, 50_000], known_files(store))
    assert len(made) == 1
    assert staged_bytes(decoder.files.entries[0]) == STORED
    decoder.files.discard()


def test_nothing_is_compared_for_a_caller_without_access(store):
    body = body_of({"data/data.bin": STORED})
    decoder, made = upload(store, body, [1000], known_files(store, listing={}))
    assert len(made) == 1
    decoder.files.discard()


def test_limits_hold_for_compared_files(store):
    body = body_of({"data/data.bin": STORED, "b/data.bin": STORED})
    small = Limits(2**30, 2**30, len(STORED) + 10, 1000)
    decoder = FormDecoder(lambda: store.stage(md5=False), small, known=known_files(store))
    for start in range(0, len(body), 4096):
        decoder.feed(body[start : start + 4096])
    decoder.close()
    assert decoder.files.error is not None
    assert "Upload exceeds the limit" in str(decoder.files.error)
    decoder.discard()


def test_an_unfinished_comparison_is_a_json_error(store):
    body = body_of({"data/data.bin": STORED})
    cut = body[: len(body) // 2]
    decoder, _ = upload(store, cut, [1000], known_files(store))
    assert decoder.files.error is not None
    assert "JSON" in str(decoder.files.error)
    decoder.discard()


def test_encoding_cache_keeps_within_its_budget(store):
    digest = hash_bytes(STORED)
    cache = EncodingCache(store, budget=len(encode_v1(STORED)) * 5)
    first = cache.get(digest.sha256, digest.size, None)
    assert first is not None and first.raw == encode_v1(STORED)
    assert cache.get(digest.sha256, digest.size, None).raw is first.raw  # kept, not re-encoded
    tiny = EncodingCache(store, budget=1000)
    assert tiny.get(digest.sha256, digest.size, None) is None  # too large for this budget
    assert cache.get("0" * 64, 10, None) is None  # not stored


def test_a_recognised_blob_deleted_before_commit_is_a_conflict(tmp_path):
    """Touched at lookup, the blob survives the GC; deleted by hand, the upload is refused
    with a 409 asking for it again (which then decodes it), never a 500."""
    store = LocalBlobStore(tmp_path / "blobs")
    store.put_bytes(STORED, hash_bytes(STORED))
    body = body_of({"data/data.bin": STORED})
    decoder, _ = upload(store, body, [1000], known_files(store))
    (entry,) = decoder.files.entries
    assert isinstance(entry.staging, KnownStaging)
    store.delete(entry.digest.sha256)
    with pytest.raises(Conflict, match="send it again"):
        entry.staging.commit()
    again, made = upload(store, body, [1000], known_files(store))
    assert len(made) == 1 and staged_bytes(again.files.entries[0]) == STORED
    again.files.discard()


def test_encoding_cache_drops_the_least_recently_used(tmp_path):
    store = LocalBlobStore(tmp_path / "blobs")
    blobs = [random.Random(n).randbytes(3000) for n in range(3)]
    for data in blobs:
        store.put_bytes(data, hash_bytes(data))
    digests = [hash_bytes(data) for data in blobs]
    room = max(len(encode_v1(data)) for data in blobs) * 2 + 10  # for any two, not three
    cache = EncodingCache(store, budget=room)
    cache.budget_per_file = cache.budget  # (a quarter of the budget is the usual cap per file)
    first = [cache.get(d.sha256, d.size, None) for d in digests[:2]]
    cache.get(digests[0].sha256, digests[0].size, None)  # the first is now the most recent
    cache.get(digests[2].sha256, digests[2].size, None)  # the second must go
    assert cache.get(digests[0].sha256, digests[0].size, None).raw is first[0].raw
    assert cache.get(digests[1].sha256, digests[1].size, None).raw is not first[1].raw
    assert cache._held <= cache.budget


def test_concurrent_askers_share_one_encoding(store, monkeypatch):
    """A class submitting at once: the dataset is read and encoded once, not per student."""
    digest = hash_bytes(STORED)
    cache = EncodingCache(store)
    opened = []
    real_open = store.open

    def counting_open(sha256):
        opened.append(sha256)
        time.sleep(0.05)  # long enough for the others to arrive meanwhile
        return real_open(sha256)

    monkeypatch.setattr(store, "open", counting_open)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: cache.get(digest.sha256, digest.size, None), range(8)))
    assert opened == [digest.sha256]
    assert all(item.raw is found[0].raw for item in found)
    assert cache._encoding == {}


def test_an_encoding_in_progress_does_not_hold_up_other_blobs(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path / "blobs")
    slow, quick = random.Random(1).randbytes(5000), random.Random(2).randbytes(5000)
    for data in (slow, quick):
        store.put_bytes(data, hash_bytes(data))
    slow_digest, quick_digest = hash_bytes(slow), hash_bytes(quick)
    cache = EncodingCache(store)
    cache.get(quick_digest.sha256, quick_digest.size, None)  # cached already
    entered, release = threading.Event(), threading.Event()
    real_open = store.open

    def stalled_open(sha256):
        if sha256 == slow_digest.sha256:
            entered.set()
            assert release.wait(10), "the test never let the slow read finish"
        return real_open(sha256)

    monkeypatch.setattr(store, "open", stalled_open)
    with ThreadPoolExecutor(2) as pool:
        stalled = pool.submit(cache.get, slow_digest.sha256, slow_digest.size, None)
        assert entered.wait(5)  # the slow blob is being read now
        other = pool.submit(cache.get, quick_digest.sha256, quick_digest.size, None)
        assert other.result(timeout=5) is not None  # served while the slow one is read
        release.set()
        assert stalled.result(timeout=5).raw == encode_v1(slow)


def test_the_server_recognises_files_as_large_as_its_encoding_cache_allows(tmp_path):
    """`--v1-encoding-cache-mib 16`: a file whose encoding fits in a quarter of 16 MiB is
    recognised when a v1 client sends it back; one a little larger (which the default
    128 MiB would take) is decoded."""
    import httpx

    from tests.servers import token_for, token_server
    from tests.v1util import ok

    proc = token_server(tmp_path, "--v1-encoding-cache-mib", "16")
    try:
        api = httpx.Client(base_url=proc.url + "/", timeout=60)

        def as_(user):
            return {"Authorization": f"token {token_for(user)}"}

        def recognised() -> float:
            text = api.get("../metrics", headers=as_("admin")).text
            (line,) = [x for x in text.splitlines() if x.startswith("ngshare_v1_recognised_bytes")]
            return float(line.split()[-1])

        ok(api.post("course/c", data={"instructors": '["inst1"]'}, headers=as_("admin")))
        names = {"first_name": "S", "last_name": "T", "email": "s@x.org"}
        ok(api.post("student/c/stu1", data=names, headers=as_("inst1")))
        for name, size, expected in (("fits", 3_000_000, 3_000_000), ("over", 3_300_000, 0)):
            files = [
                {"path": "d.bin", "content": base64.b64encode(random.randbytes(size)).decode()}
            ]
            body = {"files": json.dumps(files)}
            ok(api.post(f"assignment/c/{name}", data=body, headers=as_("inst1")))
            before = recognised()
            ok(api.post(f"submission/c/{name}", data=body, headers=as_("stu1")))
            assert recognised() - before == expected, name
        api.close()
    finally:
        proc.stop()
