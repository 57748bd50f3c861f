"""v1 courses: list, create, delete, with the permission matrix."""

from tests.v1util import encode_files, fails, ok


def test_admin_sees_every_course_members_see_their_own(api, course):
    assert course in ok(api("admin").get("courses"))["courses"]
    assert course in ok(api("inst1").get("courses"))["courses"]
    assert course in ok(api("stu1").get("courses"))["courses"]
    assert course not in ok(api("outsider").get("courses"))["courses"]


def test_courses_are_sorted_names(api, course):
    names = ok(api("inst1").get("courses"))["courses"]
    assert names == sorted(names)


def test_create_course_sets_instructors(api):
    ok(api("admin").post("course/made-here", data={"instructors": '["inst2", "inst2"]'}))
    people = ok(api("inst2").get("instructors/made-here"))["instructors"]
    assert people == [{"username": "inst2", "first_name": None, "last_name": None, "email": None}]


def test_create_course_without_instructors(api):
    ok(api("admin").post("course/empty-course"))
    assert ok(api("admin").get("instructors/empty-course"))["instructors"] == []


def test_create_course_twice_conflicts(api, course):
    fails(api("admin").post(f"course/{course}"), 409, "Course already exists")


def test_only_admins_create_courses(api):
    for user in ("inst1", "stu1", "outsider"):
        fails(api(user).post("course/not-allowed"), 403, "Permission denied")
    fails(api("admin").get("assignments/not-allowed"), 404, "Course not found")


def test_instructors_must_be_a_json_list_of_names(api):
    for bad in ("not json", '{"a": 1}', "[1, 2]", '"inst1"'):
        fails(
            api("admin").post("course/bad-instructors", data={"instructors": bad}),
            400,
            "Instructors cannot be JSON decoded",
        )
    fails(api("admin").get("instructors/bad-instructors"), 404, "Course not found")


def test_instructors_may_come_in_the_query_string(api):
    ok(api("admin").post("course/query-course", params={"instructors": '["inst2"]'}))
    assert ok(api("inst2").get("courses"))["courses"].count("query-course") == 1


def test_delete_course_removes_everything(api, course):
    ok(api("inst1").post(f"assignment/{course}/a1", data={"files": encode_files({"x": b"1"})}))
    ok(api("stu1").post(f"submission/{course}/a1", data={"files": encode_files({"x": b"2"})}))
    fails(api("inst1").delete(f"course/{course}"), 403, "Permission denied")
    ok(api("admin").delete(f"course/{course}"))
    assert course not in ok(api("admin").get("courses"))["courses"]
    fails(api("inst1").get(f"assignments/{course}"), 404, "Course not found")
    fails(api("admin").delete(f"course/{course}"), 404, "Course not found")
    # the name is free again and the new course starts empty
    ok(api("admin").post(f"course/{course}", data={"instructors": '["inst1"]'}))
    assert ok(api("inst1").get(f"assignments/{course}"))["assignments"] == []


def test_course_lookup_comes_before_permission(api):
    fails(api("outsider").delete("course/no-such-course"), 404, "Course not found")
    fails(api("outsider").get("students/no-such-course"), 404, "Course not found")


def test_illegal_course_names_are_refused(api):
    for name in ("a%01b", "x" * 256):
        fails(api("admin").post(f"course/{name}"), 400, "Illegal course name")
