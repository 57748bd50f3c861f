"""v1 submissions: submit, list, download; timestamps and who may see what."""

from datetime import datetime

import pytest

from tests.v1util import decode_files, encode_files, fails, ok

V1_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@pytest.fixture
def released(api, course):
    ok(api("inst1").post(f"assignment/{course}/ps1", data={"files": encode_files({"q": b"?"})}))
    return course


def submit(api, course, user, files):
    return ok(api(user).post(f"submission/{course}/ps1", data={"files": encode_files(files)}))[
        "timestamp"
    ]


def test_timestamp_format_and_strictly_increasing(api, released):
    stamps = [submit(api, released, "stu1", {"a": str(i).encode()}) for i in range(5)]
    parsed = [datetime.strptime(s, V1_FORMAT) for s in stamps]
    assert all(len(s) == 26 for s in stamps)
    assert parsed == sorted(parsed) and len(set(parsed)) == 5
    listed = ok(api("inst1").get(f"submissions/{released}/ps1/stu1"))["submissions"]
    assert [x["timestamp"] for x in listed] == stamps


def test_download_latest_or_by_timestamp(api, released):
    first = submit(api, released, "stu1", {"a.py": b"first"})
    second = submit(api, released, "stu1", {"a.py": b"second", "b.py": b"more"})
    latest = ok(api("inst1").get(f"submission/{released}/ps1/stu1"))
    assert latest["timestamp"] == second
    assert decode_files(latest["files"]) == {"a.py": b"second", "b.py": b"more"}
    for text in (first, first + " UTC", first + "  UTC  "):
        older = ok(api("inst1").get(f"submission/{released}/ps1/stu1", params={"timestamp": text}))
        assert (older["timestamp"], decode_files(older["files"])) == (first, {"a.py": b"first"})


def test_download_list_only(api, released):
    stamp = submit(api, released, "stu1", {"a.py": b"x"})
    body = ok(api("inst1").get(f"submission/{released}/ps1/stu1", params={"list_only": "true"}))
    assert body == {
        "success": True,
        "timestamp": stamp,
        "files": [{"path": "a.py", "checksum": "9dd4e461268c8034f5c8564e155c67a6"}],
    }


def test_student_downloads_only_his_own(api, released):
    submit(api, released, "stu1", {"a": b"mine"})
    assert decode_files(ok(api("stu1").get(f"submission/{released}/ps1/stu1"))["files"]) == {
        "a": b"mine"
    }
    fails(api("stu2").get(f"submission/{released}/ps1/stu1"), 403, "Permission denied")
    fails(api("stu2").get(f"submissions/{released}/ps1/stu1"), 403, "Permission denied")
    fails(api("stu1").get(f"submissions/{released}/ps1"), 403, "Permission denied")
    fails(api("outsider").get(f"submission/{released}/ps1/outsider"), 403, "Permission denied")


def test_submission_lookups(api, released):
    fails(api("inst1").get(f"submission/{released}/ps1/stu2"), 404, "Submission not found")
    submit(api, released, "stu2", {"a": b"1"})
    fails(
        api("inst1").get(
            f"submission/{released}/ps1/stu2", params={"timestamp": "2001-01-01 00:00:00.000000"}
        ),
        404,
        "Submission not found",
    )
    fails(
        api("inst1").get(f"submission/{released}/ps1/stu2", params={"timestamp": "yesterday"}),
        400,
        "Time format incorrect",
    )
    fails(api("inst1").get(f"submission/{released}/ps1/ghost"), 404, "Student not found")
    fails(api("inst1").get(f"submission/{released}/nope/stu2"), 404, "Assignment not found")


def test_listing_all_submissions(api, released):
    a = submit(api, released, "stu1", {"a": b"1"})
    b = submit(api, released, "stu2", {"a": b"2"})
    c = submit(api, released, "inst1", {"a": b"3"})
    listed = ok(api("inst1").get(f"submissions/{released}/ps1"))["submissions"]
    assert listed == [
        {"student_id": "stu1", "timestamp": a},
        {"student_id": "stu2", "timestamp": b},
        {"student_id": "inst1", "timestamp": c},
    ]
    assert ok(api("stu1").get(f"submissions/{released}/ps1/stu1"))["submissions"] == listed[:1]
    assert ok(api("stu2").get(f"submissions/{released}/ps1/stu2"))["submissions"] == listed[1:2]


def test_outsider_cannot_submit(api, released):
    fails(
        api("outsider").post(f"submission/{released}/ps1", data={"files": "[]"}),
        403,
        "Permission denied",
    )


def test_submit_to_missing_assignment(api, course):
    fails(
        api("stu1").post(f"submission/{course}/ps1", data={"files": "[]"}),
        404,
        "Assignment not found",
    )


def test_resubmitted_release_files_are_stored_right(api, course):
    """Files the release holds, sent back unchanged or changed (ngshare_exchange's
    b64encode form): compared with the stored ones first, they read back the same."""
    import base64
    import json
    import os

    data = os.urandom(3 * 1024 * 1024 + 11)
    notebook = os.urandom(100)  # blobs are shared by every test on this server
    release = {"data/data.bin": data, "nb.ipynb": notebook}
    ok(api("inst1").post(f"assignment/{course}/ps1", data={"files": encode_files(release)}))
    changed = bytearray(data)
    changed[2_000_000] ^= 0xFF
    for student, files in [
        ("stu1", {"nb.ipynb": notebook + b"!", "data/data.bin": data}),
        ("stu2", {"data/data.bin": bytes(changed)}),
        ("stu1", {"data/data.bin": data + b"!"}),
    ]:
        entries = [{"path": p, "content": base64.b64encode(c).decode()} for p, c in files.items()]
        ok(api(student).post(f"submission/{course}/ps1", data={"files": json.dumps(entries)}))
        got = ok(api("inst1").get(f"submission/{course}/ps1/{student}"))
        assert decode_files(got["files"]) == files
