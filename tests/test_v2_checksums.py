"""Downloads name their blob's xxh3-128 in Repr-Digest; clients check it instead of sha256."""

import os

import httpx
import pytest
import xxhash

from ngshare.checksums import SHA256, XXH3, DownloadCheck, parse_repr_digest, repr_digest
from ngshare.client import ClientError, NgshareClient
from tests.servers import token_for
from tests.test_v2_bundles import sha
from tests.test_v2_inline import damaged
from tests.test_v2_transfers import write_tree


def xxh3(data: bytes) -> str:
    return xxhash.xxh3_128(data).hexdigest()


def put_blob(server, course: str, data: bytes, offset: int = 0) -> httpx.Response:
    url = f"{server.url}/v2/courses/{course}/blobs/{sha(data)}"
    params = {"size": len(data), "offset": offset}
    auth = {"Authorization": f"token {token_for('inst1')}"}
    return httpx.put(url, params=params, content=data[offset:], headers=auth, timeout=60)


def release_blob(server, course: str, name: str, data: bytes) -> str:
    """Release one file whose blob is already stored; the blob's URL."""
    entry = {"path": "data.bin", "sha256": sha(data), "size": len(data), "executable": False}
    auth = {"Authorization": f"token {token_for('inst1')}"}
    answer = httpx.put(
        f"{server.url}/v2/courses/{course}/assignments/{name}",
        json={"files": [entry]},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text
    return f"{server.url}/v2/courses/{course}/blobs/{sha(data)}"


def offered(url: str, user: str = "stu1", **headers) -> dict[str, str]:
    answer = httpx.get(url, headers={"Authorization": f"token {token_for(user)}", **headers})
    assert answer.status_code in (200, 206), answer.text
    return parse_repr_digest(answer.headers["repr-digest"])


def test_a_streamed_upload_is_offered_with_its_xxh3_whole_or_in_part(server, course):
    data = os.urandom(300_000)
    assert put_blob(server, course, data).status_code == 201
    url = release_blob(server, course, "ps1", data)
    expected = {SHA256: sha(data), XXH3: xxh3(data)}
    assert offered(url) == expected
    assert offered(url, Range="bytes=1000-1999") == expected  # it describes the whole blob


def test_a_resumed_upload_is_offered_with_the_xxh3_of_all_its_bytes(server, course):
    """The part that arrived in an earlier request is re-read into the xxh3 too."""
    data = os.urandom(700_000)
    partial = httpx.put(
        f"{server.url}/v2/courses/{course}/blobs/{sha(data)}",
        params={"size": len(data)},
        content=data[:300_000],
        headers={"Authorization": f"token {token_for('inst1')}"},
    )
    assert partial.status_code == 202
    assert put_blob(server, course, data, offset=300_000).status_code == 201
    assert offered(release_blob(server, course, "ps1", data)) == {
        SHA256: sha(data),
        XXH3: xxh3(data),
    }


def test_blobs_that_came_another_way_are_offered_with_their_sha256_only(server, course, tmp_path):
    """A bundle's small files (and v1's) are not streamed uploads: no xxh3 is kept."""
    data = os.urandom(5000)
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "ps1", {"small.bin": data}))
    url = f"{server.url}/v2/courses/{course}/blobs/{sha(data)}"
    assert offered(url) == {SHA256: sha(data)}


@pytest.mark.parametrize("fast", [True, False], ids=["rawhttp", "httpx"])
def test_the_client_checks_a_download_with_the_xxh3_offered(server, course, tmp_path, fast):
    data = os.urandom(9 * 1024 * 1024 + 3)  # past FAST_DOWNLOAD: a blob download of its own
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", {"big.bin": data}))
    with NgshareClient(server.url, token_for("stu1"), fast_downloads=fast) as stu:
        stu.fetch_assignment(course, "ps1", tmp_path / "good")
        assert (tmp_path / "good" / "big.bin").read_bytes() == data
    flipped = bytearray(data)
    flipped[4_000_000] ^= 1
    stu = NgshareClient(server.url, token_for("stu2"), fast_downloads=fast)
    corrupt = pytest.raises(ClientError, match=r"big\.bin is corrupt \(xxh3-128 mismatch\)")
    with damaged(server, data, bytes(flipped)), stu, corrupt:
        stu.fetch_assignment(course, "ps1", tmp_path / "bad")
    assert not (tmp_path / "bad" / "big.bin").exists()


def test_without_an_xxh3_the_client_checks_the_sha256(server, course, tmp_path):
    data = os.urandom(5000)
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", {"small.bin": data}))
    stu = NgshareClient(server.url, token_for("stu1"))
    corrupt = pytest.raises(ClientError, match=r"corrupt \(sha-256 mismatch\)")
    with damaged(server, data, os.urandom(len(data))), stu, corrupt:
        stu.download_blob(course, sha(data), len(data), tmp_path / "got")


def test_repr_digest_round_trips_and_skips_what_it_cannot_read():
    data = b"abc" * 1000
    value = repr_digest(sha(data), xxh3(data))
    assert value.startswith("sha-256=:") and ", xxh3-128=:" in value
    assert parse_repr_digest(value) == {SHA256: sha(data), XXH3: xxh3(data)}
    assert parse_repr_digest(repr_digest(sha(data))) == {SHA256: sha(data)}
    noisy = f"unixsum=:AAE=:, md5=nothex, sha-512=:!!:, {value}, =:AA==:"
    assert parse_repr_digest(noisy) == {"unixsum": "0001", SHA256: sha(data), XXH3: xxh3(data)}
    assert parse_repr_digest(None) == {} == parse_repr_digest("")


def test_a_download_check_uses_the_xxh3_only_for_the_blob_asked_for():
    data, other = b"mine" * 100, b"other" * 100
    check = DownloadCheck(sha(data))
    check.choose(repr_digest(sha(other), xxh3(other)))  # a header about another blob
    check.choose(repr_digest(sha(data), xxh3(data)))  # too late: the first answer chose
    check.update(data)
    assert (check.algorithm, check.ok()) == (SHA256, True)

    check = DownloadCheck(sha(data))
    check.choose(repr_digest(sha(data), xxh3(data)))
    check.update(data[:-1] + b"X")
    assert (check.algorithm, check.ok()) == (XXH3, False)

    check = DownloadCheck(sha(data))  # bytes before any answer: sha256
    check.update(data)
    assert (check.algorithm, check.ok()) == (SHA256, True)
