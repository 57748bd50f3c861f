"""The S3 blob store against a real S3-compatible server (moto) on loopback."""

import hashlib
import io
import json
import os
import tarfile
from datetime import UTC, datetime

import httpx
import pytest
import xxhash

from ngshare.client import NgshareClient
from ngshare.storage import HashMismatch, hash_bytes
from ngshare.storage.s3 import PART_SIZE, S3BlobStore
from tests.s3 import CREDENTIALS, S3Server
from tests.servers import ServerProcess, token_for, write_token_file
from tests.v1util import decode_files, encode_files, ok

BUNDLE = "application/vnd.ngshare.bundle"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def store(s3, request):
    bucket = s3.new_bucket(f"unit-{abs(hash(request.node.name)) % 10**8}")
    return S3BlobStore(bucket, "pre/fix", client=s3.client())


def test_put_read_range_and_delete(store):
    data = os.urandom(300_000)
    digest = hash_bytes(data)
    assert not store.exists(digest.sha256) and store.size(digest.sha256) is None
    store.put_bytes(data, digest)
    assert store.size(digest.sha256) == len(data)
    assert b"".join(store.iter_chunks(digest.sha256, 65536)) == data
    with store.open(digest.sha256) as handle:
        handle.seek(1000)
        assert handle.read(10) == data[1000:1010]
        assert handle.read(5) == data[1010:1015]
    assert [name for name, _ in store.list_blobs()] == [digest.sha256]
    store.delete(digest.sha256)
    assert not store.exists(digest.sha256)
    with pytest.raises(FileNotFoundError):
        store.open(digest.sha256)
    store.check()


def test_touch_refreshes_the_time_the_gc_sees(store):
    digest = hash_bytes(b"old")
    store.put_bytes(b"old", digest)
    first = store.written_at(digest.sha256)
    assert store.touch(digest.sha256)
    assert store.written_at(digest.sha256) >= first
    assert not store.touch(hash_bytes(b"absent").sha256)
    assert store.written_at(hash_bytes(b"absent").sha256) is None
    assert first <= datetime.now(UTC)


def test_multipart_upload_with_resume(store):
    data = os.urandom(2 * PART_SIZE + 12345)
    sha = hashlib.sha256(data).hexdigest()
    first = store.begin_upload(sha, "alice")
    first.write(data[: PART_SIZE + 7])
    first.suspend()  # connection dropped
    assert store.upload_offset(sha, "alice") == PART_SIZE + 7
    assert store.upload_offset(sha, "bob") == 0
    resumed = store.begin_upload(sha, "alice")
    assert resumed.offset == PART_SIZE + 7
    rest = data[PART_SIZE + 7 :]  # as the v2 PUT hands it over: batches of reads
    resumed.write_pieces([rest[i : i + 300_001] for i in range(0, len(rest), 300_001)])
    assert resumed.offset == len(data)
    digest = resumed.finish()
    assert (digest.sha256, digest.size) == (sha, len(data))
    assert digest.xxh3 == xxhash.xxh3_128(data).hexdigest()  # the resumed part re-read too
    assert b"".join(store.iter_chunks(sha)) == data
    assert store.upload_offset(sha, "alice") == 0
    assert list(store.list_temporary()) == []


def test_small_resume_and_hash_mismatch(store):
    data = b"a small file"
    sha = hashlib.sha256(data).hexdigest()
    part = store.begin_upload(sha, "u")
    part.write(data[:4])
    part.suspend()
    rest = store.begin_upload(sha, "u")
    rest.write(b"something else")
    with pytest.raises(HashMismatch):
        rest.finish()
    assert not store.exists(sha) and store.upload_offset(sha, "u") == 0


@pytest.fixture(scope="module")
def s3_server(s3, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("s3srv")
    proc = ServerProcess(
        data_dir,
        [
            "--token-file",
            str(write_token_file(data_dir / "t.json")),
            "--admins",
            "admin",
            *s3.server_args(s3.new_bucket("served")),
        ],
        env=CREDENTIALS,
    )
    proc.wait_ready()
    yield proc
    proc.stop()


def test_full_cycle_on_s3(s3_server, s3, tmp_path):
    api = httpx.Client(base_url=s3_server.url + "/", timeout=60)
    admin = {"Authorization": f"token {token_for('admin')}"}
    ok(api.post("course/s3c", data={"instructors": '["inst1"]'}, headers=admin))
    ok(
        api.post(
            "student/s3c/stu1",
            data={"first_name": "", "last_name": "", "email": ""},
            headers={"Authorization": f"token {token_for('inst1')}"},
        )
    )
    big = os.urandom(PART_SIZE + 1000)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.bin").write_bytes(big)
    (tmp_path / "src" / "nb.ipynb").write_bytes(b"{}")
    with NgshareClient(s3_server.url, token_for("inst1")) as inst:
        assert inst.release("s3c", "ps1", tmp_path / "src")["version"] == 1
    with NgshareClient(s3_server.url, token_for("stu1")) as stu:
        stu.fetch_assignment("s3c", "ps1", tmp_path / "got")
        assert (tmp_path / "got" / "data.bin").read_bytes() == big
        made = stu.submit("s3c", "ps1", tmp_path / "got")
    # v1 clients read the same objects, md5 computed on first listing
    body = ok(
        api.get("submission/s3c/ps1/stu1", headers={"Authorization": f"token {token_for('inst1')}"})
    )
    assert body["timestamp"] == made["timestamp"]
    assert decode_files(body["files"])["data.bin"] == big
    # ranged blob reads and archives stream from the bucket
    sha = hashlib.sha256(big).hexdigest()
    part = api.get(
        f"v2/courses/s3c/blobs/{sha}",
        headers={"Authorization": f"token {token_for('stu1')}", "Range": "bytes=10-19"},
    )
    assert part.status_code == 206 and part.content == big[10:20]
    # the manifest carries the small file, read from the bucket (ngshare.api.v2.inline)
    bundled = api.get(
        "v2/courses/s3c/assignments/ps1",
        headers={"Authorization": f"token {token_for('stu1')}", "Accept": BUNDLE},
    )
    line, _, rest = bundled.content.partition(b"\n")
    nb = {"sha256": hashlib.sha256(b"{}").hexdigest(), "size": 2}
    assert json.loads(line)["blobs"] == [nb] and rest == b"{}"
    archive = api.get("v2/courses/s3c/assignments/ps1/archive", headers=admin)
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        assert tar.extractfile("ps1/data.bin").read() == big
    ok(
        api.post(
            "assignment/s3c/v1", data={"files": encode_files({"x": b"v1 bytes"})}, headers=admin
        )
    )
    assert httpx.get(s3_server.root + "/readyz").json()["storage"] == "ok"
    objects = s3.client().list_objects_v2(Bucket="served", Prefix="ngshare/blobs/")
    assert len(objects["Contents"]) == 3  # data.bin, nb.ipynb, v1 bytes: each once
    api.close()
