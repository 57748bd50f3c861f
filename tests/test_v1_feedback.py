"""v1 feedback: tied to one submission, replaced on re-upload, private to its student."""

import pytest

from tests.v1util import decode_files, encode_files, fails, md5, ok


@pytest.fixture
def submitted(api, course):
    ok(api("inst1").post(f"assignment/{course}/ps1", data={"files": encode_files({"q": b"?"})}))
    stamps = [
        ok(api("stu1").post(f"submission/{course}/ps1", data={"files": encode_files({"a": b"1"})}))[
            "timestamp"
        ]
        for _ in range(2)
    ]
    return course, stamps


def give(api, course, stamp, files, user="inst1", student="stu1"):
    return api(user).post(
        f"feedback/{course}/ps1/{student}",
        data={"timestamp": stamp, "files": encode_files(files)},
    )


def fetch(api, course, stamp, user="stu1", student="stu1", **params):
    params = {"timestamp": stamp, **params} if stamp else params
    return ok(api(user).get(f"feedback/{course}/ps1/{student}", params=params))


def test_feedback_round_trip_per_submission(api, submitted):
    course, (first, second) = submitted
    ok(give(api, course, first, {"ps1.html": b"<p>first</p>"}))
    ok(give(api, course, second, {"ps1.html": b"<p>second</p>", "extra/notes.txt": b"n"}))
    one = fetch(api, course, first)
    assert one["timestamp"] == first
    assert decode_files(one["files"]) == {"ps1.html": b"<p>first</p>"}
    two = fetch(api, course, second)
    assert decode_files(two["files"]) == {"ps1.html": b"<p>second</p>", "extra/notes.txt": b"n"}
    assert fetch(api, course, None)["timestamp"] == second
    listed = fetch(api, course, first, list_only="true")["files"]
    assert listed == [{"path": "ps1.html", "checksum": md5(b"<p>first</p>")}]


def test_feedback_is_replaced_not_merged(api, submitted):
    course, (first, _) = submitted
    ok(give(api, course, first, {"old.html": b"old"}))
    ok(give(api, course, first, {"new.html": b"new"}))
    assert decode_files(fetch(api, course, first)["files"]) == {"new.html": b"new"}
    assert decode_files(fetch(api, course, first, user="inst1")["files"]) == {"new.html": b"new"}


def test_no_feedback_yet_is_an_empty_list(api, submitted):
    course, (first, _) = submitted
    assert fetch(api, course, first) == {"success": True, "timestamp": first, "files": []}


def test_feedback_permissions(api, submitted):
    course, (first, _) = submitted
    for user in ("stu1", "stu2", "outsider"):
        fails(give(api, course, first, {"f": b"x"}, user=user), 403, "Permission denied")
    ok(give(api, course, first, {"f": b"x"}, user="admin"))
    fails(
        api("stu2").get(f"feedback/{course}/ps1/stu1", params={"timestamp": first}),
        403,
        "Permission denied",
    )


def test_feedback_argument_errors(api, submitted):
    course, (first, _) = submitted
    client = api("inst1")
    url = f"feedback/{course}/ps1/stu1"
    fails(client.post(url, data={"files": "[]"}), 400, "Please supply timestamp")
    fails(client.post(url, data={"timestamp": "x", "files": "[]"}), 400, "Time format incorrect")
    fails(
        client.post(url, data={"timestamp": "2000-01-01 00:00:00.000000", "files": "[]"}),
        404,
        "Submission not found",
    )
    fails(client.post(url, data={"timestamp": first}), 400, "Please supply files")
    fails(
        client.post(url, data={"timestamp": first, "files": "{"}),
        400,
        "Files cannot be JSON decoded",
    )
    fails(
        client.post(f"feedback/{course}/ps1/ghost", data={"timestamp": first, "files": "[]"}),
        404,
        "Student not found",
    )
    fails(
        client.post(f"feedback/{course}/nope/stu1", data={"timestamp": first, "files": "[]"}),
        404,
        "Assignment not found",
    )
    fails(client.get(url, params={"timestamp": "garbage"}), 400, "Time format incorrect")
    assert fetch(api, course, first)["files"] == []


def test_feedback_survives_resubmission(api, submitted):
    course, (_first, second) = submitted
    ok(give(api, course, second, {"fb.html": b"graded"}))
    third = ok(
        api("stu1").post(f"submission/{course}/ps1", data={"files": encode_files({"a": b"3"})})
    )["timestamp"]
    assert fetch(api, course, third)["files"] == []
    assert decode_files(fetch(api, course, second)["files"]) == {"fb.html": b"graded"}
