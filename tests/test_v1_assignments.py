"""v1 assignments: release, list, download (with list_only and md5), withdraw."""

import base64
import json

import pytest

from tests.v1util import decode_files, encode_files, fails, md5, ok

FILES = {
    "ps1.ipynb": b'{"cells": []}',
    "data/table.csv": b"a,b\n1,2\n",
    "data/empty.txt": b"",
    "bin/blob.bin": bytes(range(256)) * 300,
    "unicod\u00e9/\u6587\u4ef6.txt": "h\u00e9llo".encode(),
}


def release(api, course, name="ps1", files=FILES, user="inst1"):
    return api(user).post(f"assignment/{course}/{name}", data={"files": encode_files(files)})


def test_release_then_download_round_trips_every_byte(api, course):
    ok(release(api, course))
    for user in ("inst1", "stu1", "admin"):
        body = ok(api(user).get(f"assignment/{course}/ps1"))
        assert decode_files(body["files"]) == FILES
        assert [e["path"] for e in body["files"]] == list(FILES)
        assert {e["path"]: e["checksum"] for e in body["files"]} == {
            p: md5(c) for p, c in FILES.items()
        }


def test_list_only_omits_content(api, course):
    ok(release(api, course))
    body = ok(api("stu1").get(f"assignment/{course}/ps1", params={"list_only": "true"}))
    assert body["files"] == [{"path": p, "checksum": md5(c)} for p, c in FILES.items()]


def test_assignments_listed_in_release_order(api, course):
    for name in ("zeta", "alpha", "mid"):
        ok(release(api, course, name))
    assert ok(api("stu1").get(f"assignments/{course}"))["assignments"] == ["zeta", "alpha", "mid"]


def test_release_permissions(api, course):
    for user in ("stu1", "outsider"):
        fails(release(api, course, user=user), 403, "Permission denied")
    ok(release(api, course, user="admin"))
    fails(api("outsider").get(f"assignment/{course}/ps1"), 403, "Permission denied")
    fails(api("outsider").get(f"assignments/{course}"), 403, "Permission denied")


def test_release_twice_conflicts_and_keeps_first(api, course):
    ok(release(api, course))
    fails(release(api, course, files={"other": b"x"}), 409, "Assignment already exists")
    assert decode_files(ok(api("stu1").get(f"assignment/{course}/ps1"))["files"]) == FILES


def test_missing_assignment(api, course):
    fails(api("stu1").get(f"assignment/{course}/nope"), 404, "Assignment not found")
    fails(api("inst1").delete(f"assignment/{course}/nope"), 404, "Assignment not found")
    fails(api("inst1").get(f"submissions/{course}/nope"), 404, "Assignment not found")


def test_empty_assignment_is_allowed(api, course):
    ok(api("inst1").post(f"assignment/{course}/empty", data={"files": "[]"}))
    assert ok(api("stu1").get(f"assignment/{course}/empty"))["files"] == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (None, "Please supply files"),
        ("{not json", "Files cannot be JSON decoded"),
        ('{"path": "a", "content": ""}', "Incorrect request format"),
        ('[{"path": "a"}]', "Incorrect request format"),
        ('[{"path": "a", "content": 5}]', "Incorrect request format"),
        ('["a"]', "Incorrect request format"),
        ('[{"path": "a", "content": "!!!"}]', "Content cannot be base64 decoded"),
        ('[{"path": "a", "content": "abc"}]', "Content cannot be base64 decoded"),
        (
            '[{"path": "a", "content": "\u00e9\u00e9\u00e9\u00e9"}]',
            "Content cannot be base64 decoded",
        ),
    ],
)
def test_bad_files_field_is_refused_and_nothing_released(api, course, files, message):
    data = {} if files is None else {"files": files}
    fails(api("inst1").post(f"assignment/{course}/ps1", data=data), 400, message)
    assert ok(api("inst1").get(f"assignments/{course}"))["assignments"] == []


ILLEGAL_PATHS = [
    "",
    "/etc/passwd",
    "../escape",
    "a/../../b",
    "a/./b",
    ".",
    "..",
    "a//b",
    "a/",
    "a\\b",
    "..\\windows",
    "nul\x00byte",
    "ctrl\x1bchar",
    "line\nbreak",
    "x" * 256,
]


@pytest.mark.parametrize("path", ILLEGAL_PATHS)
def test_illegal_paths_are_refused(api, course, path):
    files = json.dumps([{"path": path, "content": base64.b64encode(b"x").decode()}])
    fails(api("inst1").post(f"assignment/{course}/ps1", data={"files": files}), 400, "Illegal path")
    fails(
        api("stu1").post(f"submission/{course}/ps1", data={"files": files}),
        404,
        "Assignment not found",
    )


def test_non_string_path_is_illegal(api, course):
    files = json.dumps([{"path": 7, "content": ""}])
    fails(api("inst1").post(f"assignment/{course}/ps1", data={"files": files}), 400, "Illegal path")


@pytest.mark.parametrize(
    "paths",
    [["a", "a"], ["dir/x", "dir"], ["dir", "dir/x"]],
    ids=["duplicate", "file-dir", "dir-file"],
)
def test_conflicting_paths_in_one_tree_are_illegal(api, course, paths):
    files = json.dumps([{"path": p, "content": ""} for p in paths])
    fails(api("inst1").post(f"assignment/{course}/ps1", data={"files": files}), 400, "Illegal path")


def test_withdraw_and_rerelease_keeps_submissions(api, course):
    ok(release(api, course))
    stamp = ok(
        api("stu1").post(f"submission/{course}/ps1", data={"files": encode_files({"a": b"1"})})
    )["timestamp"]
    fails(api("stu1").delete(f"assignment/{course}/ps1"), 403, "Permission denied")
    ok(api("inst1").delete(f"assignment/{course}/ps1"))
    assert ok(api("stu1").get(f"assignments/{course}"))["assignments"] == []
    fails(api("stu1").get(f"assignment/{course}/ps1"), 404, "Assignment not found")
    fails(api("stu1").get(f"submission/{course}/ps1/stu1"), 404, "Assignment not found")
    # instructors still reach what was submitted, and can return feedback on it
    assert ok(api("inst1").get(f"submissions/{course}/ps1"))["submissions"][0]["timestamp"] == stamp
    ok(api("inst1").get(f"submission/{course}/ps1/stu1"))
    ok(
        api("inst1").post(
            f"feedback/{course}/ps1/stu1",
            data={"timestamp": stamp, "files": encode_files({"f": b"late"})},
        )
    )
    ok(release(api, course, files={"v2.txt": b"second version"}))
    assert decode_files(ok(api("stu1").get(f"assignment/{course}/ps1"))["files"]) == {
        "v2.txt": b"second version"
    }
    listed = ok(api("inst1").get(f"submissions/{course}/ps1"))["submissions"]
    assert listed == [{"student_id": "stu1", "timestamp": stamp}]


def test_identical_files_are_stored_once(api, course, server):
    payload = b"shared dataset " * 10000
    ok(release(api, course, "d1", {"data.bin": payload}))
    ok(release(api, course, "d2", {"copy/data.bin": payload}))
    for user in ("stu1", "stu2"):
        ok(api(user).post(f"submission/{course}/d1", data={"files": encode_files({"d": payload})}))
    blob_dir = server.data_dir / "blobs"
    matches = [p for p in blob_dir.rglob("*") if p.is_file() and p.read_bytes() == payload]
    assert len(matches) == 1
