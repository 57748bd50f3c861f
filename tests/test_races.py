"""Requests that race to create the same row: each one succeeds or is told to
retry (409), never a 500. On PostgreSQL the inserts really run side by side
(SQLite takes one writer at a time, so there every request succeeds)."""

from concurrent.futures import ThreadPoolExecutor

import httpx

RACERS = 8


def race(make_request) -> list[httpx.Response]:
    """`make_request(i)` from RACERS threads at once; the answers in order."""
    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(make_request, range(RACERS)))


def settled(answers: list[httpx.Response], ok: set[int]) -> list[int]:
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= ok | {409}, [(a.status_code, a.text[:200]) for a in answers]
    assert set(statuses) & ok, statuses  # someone won
    for answer in answers:
        if answer.status_code == 409:  # a clear answer the client can act on
            assert answer.json()["error"]["message"], answer.text
    return statuses


def test_extensions_for_one_student(api, course):
    inst = api("inst1")
    path = f"v2/courses/{course}/assignments/ps1"
    assert inst.put(path + "/settings", json={"due_at": "2030-01-01T00:00:00Z"}).status_code == 200
    answers = race(
        lambda i: inst.put(path + "/extensions/stu1", json={"extra_seconds": 60 * (i + 1)})
    )
    settled(answers, {200})
    assert len(inst.get(path + "/extensions").json()) == 1


def test_settings_that_create_one_assignment(api, course):
    inst = api("inst1")
    path = f"v2/courses/{course}/assignments/draft1/settings"
    settled(race(lambda i: inst.patch(path, json={"max_submissions": i + 1})), {200})
    now = inst.get(path).json()  # one draft, holding one of the racers' values
    assert now["name"] == "draft1" and 1 <= now["max_submissions"] <= RACERS


def test_releases_of_one_new_assignment(api, course):
    inst = api("inst1")
    path = f"v2/courses/{course}/assignments/new1"
    empty = {"files": []}
    settled(race(lambda i: inst.put(path, json=empty)), {200, 201})
    assert inst.get(path).status_code == 200


def test_solutions_of_one_assignment(api, course):
    inst = api("inst1")
    path = f"v2/courses/{course}/assignments/sol1"
    assert inst.put(path, json={"files": []}).status_code in (200, 201)
    answers = race(lambda i: inst.put(path + "/solutions", json={"files": []}))
    settled(answers, {200, 201})


def test_v1_adding_one_student(api, course):
    inst = api("inst1")
    names = {"first_name": "N", "last_name": "E", "email": "n@x.org"}
    answers = race(lambda i: inst.post(f"student/{course}/newbie", data=names))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 409}, [(a.status_code, a.text[:200]) for a in answers]
    listed = inst.get(f"students/{course}").json()["students"]
    assert [s["username"] for s in listed].count("newbie") == 1


def test_v1_creating_one_course(api):
    admin = api("admin")
    answers = race(lambda i: admin.post("course/raced1", data={"instructors": '["inst1"]'}))
    statuses = [a.status_code for a in answers]
    assert 500 not in statuses, [(a.status_code, a.text[:200]) for a in answers]
    assert admin.get("courses").json()["courses"].count("raced1") == 1
