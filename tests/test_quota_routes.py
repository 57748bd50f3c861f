"""The course quota holds on every route that stores a tree, v1's included: an old
client must not be a way around it. Each refusal is a 413 naming the quota, and
nothing of the refused request is committed."""

import os

import httpx
import pytest

from ngshare.client import ClientError, FeedbackFiles, NgshareClient
from tests.servers import token_for, token_server
from tests.test_v2_feedback_bulk import feedback_files
from tests.v1util import encode_files, fails, ok

KiB = 1024
QUOTA = "The course storage quota of 1 MiB would be exceeded"


@pytest.fixture(scope="module")
def quota_server(tmp_path_factory):
    proc = token_server(tmp_path_factory.mktemp("quota"), "--course-quota-mib", "1")
    yield proc
    proc.stop()


@pytest.fixture
def v1(quota_server):
    made = []

    def client(user: str) -> httpx.Client:
        headers = {"Authorization": f"token {token_for(user)}"}
        made.append(httpx.Client(base_url=quota_server.url + "/", headers=headers, timeout=60))
        return made[-1]

    yield client
    for item in made:
        item.close()


_numbers = iter(range(1, 1000))


@pytest.fixture
def course(v1) -> dict:
    """A course with a tiny release `ps1` and one tiny v1 submission by stu1."""
    name = f"q{next(_numbers)}"
    ok(v1("admin").post(f"course/{name}", data={"instructors": '["inst1"]'}))
    for student in ("stu1", "stu2"):
        names = {"first_name": "S", "last_name": "T", "email": ""}
        ok(v1("inst1").post(f"student/{name}/{student}", data=names))
    ok(v1("inst1").post(f"assignment/{name}/ps1", data={"files": encode_files({"a.py": b"1"})}))
    stamp = ok(
        v1("stu1").post(f"submission/{name}/ps1", data={"files": encode_files({"a.py": b"2"})})
    )
    return {"name": name, "stamp": stamp["timestamp"]}


def big(size: int = 1100 * KiB) -> str:
    return encode_files({"big.bin": os.urandom(size)})


def test_v1_release_submit_and_feedback_keep_to_the_quota(v1, course):
    c = course["name"]
    fails(v1("inst1").post(f"assignment/{c}/ps2", data={"files": big()}), 413, QUOTA)
    assert [a for a in ok(v1("inst1").get(f"assignments/{c}"))["assignments"]] == ["ps1"]
    fails(v1("stu2").post(f"submission/{c}/ps1", data={"files": big()}), 413, QUOTA)
    assert ok(v1("inst1").get(f"submissions/{c}/ps1"))["submissions"] == [
        {"student_id": "stu1", "timestamp": course["stamp"]}
    ]
    data = {"timestamp": course["stamp"], "files": big()}
    fails(v1("inst1").post(f"feedback/{c}/ps1/stu1", data=data), 413, QUOTA)
    answer = v1("inst1").get(f"feedback/{c}/ps1/stu1", params={"timestamp": course["stamp"]})
    assert ok(answer)["files"] == []
    # within the quota, all three still work
    ok(v1("inst1").post(f"assignment/{c}/ps2", data={"files": big(300 * KiB)}))
    ok(v1("stu2").post(f"submission/{c}/ps1", data={"files": big(300 * KiB)}))
    data = {"timestamp": course["stamp"], "files": big(300 * KiB)}
    ok(v1("inst1").post(f"feedback/{c}/ps1/stu1", data=data))


def test_v2_feedback_keeps_to_the_quota_all_or_none(quota_server, course, tmp_path):
    c = course["name"]
    with NgshareClient(quota_server.url, token_for("inst1"), retries=0) as inst:
        stu1 = inst.submissions(c, "ps1")[0]["id"]
        with NgshareClient(quota_server.url, token_for("stu2")) as stu:
            stu2 = stu.submit(c, "ps1", _tree(tmp_path / "s2", {"a.py": b"3"}))["id"]

        def sets(size: int, *ids: int) -> list[FeedbackFiles]:
            """Feedback of `size` random bytes for stu1's and then stu2's submission."""
            made = []
            for student, i in zip(("stu1", "stu2"), ids, strict=False):
                root = tmp_path / f"fb-{i}-{size}"
                made.append(
                    FeedbackFiles(student, i, feedback_files(root, {"r.html": os.urandom(size)}))
                )
            return made

        with pytest.raises(ClientError) as refused:
            inst.put_feedback_many(c, "ps1", sets(600 * KiB, stu1, stu2))  # 1.2 MiB together
        assert (refused.value.status, refused.value.message) == (413, QUOTA)
        assert [s["feedback"] for s in inst.submissions(c, "ps1")] == [None, None]
        files = feedback_files(tmp_path / "two", {"r.html": os.urandom(900 * KiB),
                                                  "s.html": os.urandom(300 * KiB)})  # fmt: skip
        with pytest.raises(ClientError) as refused:  # the single route too
            inst.put_feedback_files(c, "ps1", "stu1", stu1, files)
        assert (refused.value.status, refused.value.message) == (413, QUOTA)
        inst.put_feedback_files(c, "ps1", "stu1", stu1, files[:1])
        # replacing feedback counts what it frees: 900 KiB by 800 KiB fits at the edge
        smaller = sets(800 * KiB, stu1)
        assert [r["changed"] for r in inst.put_feedback_many(c, "ps1", smaller)] == [True]


def _tree(root, files: dict[str, bytes]):
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root
