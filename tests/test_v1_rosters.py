"""v1 rosters: instructors and students, names, bulk add, removal."""

import json

import pytest

from tests.v1util import encode_files, fails, ok

NAMES = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}


def test_admin_adds_instructor_with_names(api, course):
    ok(api("admin").post(f"instructor/{course}/inst2", data=NAMES))
    assert ok(api("stu1").get(f"instructor/{course}/inst2")) == {
        "success": True,
        "username": "inst2",
        **NAMES,
    }
    listed = ok(api("stu2").get(f"instructors/{course}"))["instructors"]
    assert [p["username"] for p in listed] == ["inst1", "inst2"]


def test_instructor_updates_only_himself(api, course):
    ok(api("inst1").post(f"instructor/{course}/inst1", data=NAMES))
    assert ok(api("inst1").get(f"instructor/{course}/inst1"))["email"] == NAMES["email"]
    fails(api("inst1").post(f"instructor/{course}/inst2", data=NAMES), 403, "Permission denied")
    fails(api("stu1").post(f"instructor/{course}/stu1", data=NAMES), 403, "Permission denied")
    fails(api("inst1").get(f"instructor/{course}/inst2"), 404, "Instructor not found")


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("first_name", "Please supply first name"),
        ("last_name", "Please supply last name"),
        ("email", "Please supply email"),
    ],
)
def test_names_are_required_but_may_be_empty(api, course, missing, message):
    data = {k: v for k, v in NAMES.items() if k != missing}
    fails(api("admin").post(f"instructor/{course}/inst2", data=data), 400, message)
    fails(api("inst1").post(f"student/{course}/stu3", data=data), 400, message)
    empty = {"first_name": "", "last_name": "", "email": ""}
    ok(api("inst1").post(f"student/{course}/stu3", data=empty))
    assert ok(api("inst1").get(f"student/{course}/stu3"))["first_name"] == ""


def test_student_promoted_to_instructor(api, course):
    ok(api("admin").post(f"instructor/{course}/stu1", data=NAMES))
    assert "stu1" in [
        p["username"] for p in ok(api("inst1").get(f"instructors/{course}"))["instructors"]
    ]
    assert "stu1" not in [
        s["username"] for s in ok(api("inst1").get(f"students/{course}"))["students"]
    ]
    # a fresh instructor can now do instructor things
    ok(api("stu1").get(f"students/{course}"))


def test_instructor_cannot_become_student(api, course):
    fails(
        api("inst1").post(f"student/{course}/inst1", data=NAMES),
        409,
        "Cannot add instructor as student",
    )


def test_remove_instructor_is_admin_only(api, course):
    ok(api("admin").post(f"instructor/{course}/inst2", data=NAMES))
    fails(api("inst1").delete(f"instructor/{course}/inst2"), 403, "Permission denied")
    ok(api("admin").delete(f"instructor/{course}/inst2"))
    fails(api("admin").delete(f"instructor/{course}/inst2"), 404, "Instructor not found")
    fails(api("inst2").get(f"assignments/{course}"), 403, "Permission denied")


def test_student_record_visible_to_instructors_and_himself(api, course):
    expected = {
        "success": True,
        "username": "stu1",
        "first_name": "STU1",
        "last_name": "Test",
        "email": "stu1@x.org",
    }
    assert ok(api("inst1").get(f"student/{course}/stu1")) == expected
    assert ok(api("stu1").get(f"student/{course}/stu1")) == expected
    assert ok(api("admin").get(f"student/{course}/stu1")) == expected
    fails(api("stu2").get(f"student/{course}/stu1"), 403, "Permission denied")
    fails(api("outsider").get(f"student/{course}/stu1"), 403, "Permission denied")
    fails(api("inst1").get(f"student/{course}/nobody"), 404, "Student not found")


def test_students_listing_is_for_instructors(api, course):
    listed = ok(api("inst1").get(f"students/{course}"))["students"]
    assert [s["username"] for s in listed] == ["stu1", "stu2"]
    for user in ("stu1", "outsider"):
        fails(api(user).get(f"students/{course}"), 403, "Permission denied")
    for user in ("stu1", "outsider"):
        fails(api(user).post(f"student/{course}/stu9", data=NAMES), 403, "Permission denied")


def test_student_names_update_in_place(api, course):
    ok(api("inst1").post(f"student/{course}/stu1", data=NAMES))
    assert ok(api("inst1").get(f"student/{course}/stu1"))["last_name"] == "Lovelace"
    assert len(ok(api("inst1").get(f"students/{course}"))["students"]) == 2


def test_bulk_add_students_reports_each(api, course):
    students = [
        {"username": "stu5", "first_name": "F", "last_name": "L", "email": "e"},
        {"username": "inst1", "first_name": "I", "last_name": "N", "email": "i"},
        {"username": "stu1", "first_name": "New", "last_name": "Name", "email": "n"},
    ]
    body = ok(api("inst1").post(f"students/{course}", data={"students": json.dumps(students)}))
    assert body["status"] == [
        {"username": "stu5", "success": True},
        {"username": "inst1", "success": False, "message": "Cannot add instructor as student"},
        {"username": "stu1", "success": True},
    ]
    assert ok(api("inst1").get(f"student/{course}/stu1"))["first_name"] == "New"
    assert ok(api("stu5").get(f"student/{course}/stu5"))["username"] == "stu5"


@pytest.mark.parametrize(
    ("students", "message"),
    [
        (None, "Please supply students"),
        ("", "Please supply students"),
        ("[]", "Please supply students"),
        ("nope", "Students cannot be JSON decoded"),
        ('{"username": "x"}', "Incorrect request format"),
        ('[{"username": "x"}]', "Incorrect request format"),
        (
            '[{"username": 1, "first_name": "", "last_name": "", "email": ""}]',
            "Incorrect request format",
        ),
        ('["stu1"]', "Incorrect request format"),
    ],
)
def test_bulk_add_rejects_bad_input_and_changes_nothing(api, course, students, message):
    data = {} if students is None else {"students": students}
    fails(api("inst1").post(f"students/{course}", data=data), 400, message)
    assert len(ok(api("inst1").get(f"students/{course}"))["students"]) == 2


def test_removed_student_keeps_submissions(api, course):
    ok(api("inst1").post(f"assignment/{course}/a1", data={"files": encode_files({"f": b"1"})}))
    stamp = ok(
        api("stu1").post(f"submission/{course}/a1", data={"files": encode_files({"f": b"2"})})
    )["timestamp"]
    ok(api("inst1").delete(f"student/{course}/stu1"))
    fails(api("inst1").delete(f"student/{course}/stu1"), 404, "Student not found")
    fails(api("stu1").get(f"assignments/{course}"), 403, "Permission denied")
    assert course not in ok(api("stu1").get("courses"))["courses"]
    listed = ok(api("inst1").get(f"submissions/{course}/a1"))["submissions"]
    assert listed == [{"student_id": "stu1", "timestamp": stamp}]
    assert ok(api("inst1").get(f"submissions/{course}/a1/stu1"))["submissions"] == listed
    body = ok(api("inst1").get(f"submission/{course}/a1/stu1"))
    assert body["timestamp"] == stamp
    fails(api("inst1").get(f"submissions/{course}/a1/never-here"), 404, "Student not found")
