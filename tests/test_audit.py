"""Audit history: every release, fetch, submit, collect and feedback, with who, when, where."""

import csv
import io

import httpx

from ngshare.client import NgshareClient
from tests.servers import token_for
from tests.v1util import encode_files, ok


def history(server, course, user="inst1", **params):
    response = httpx.get(
        f"{server.url}/v2/courses/{course}/events",
        params=params,
        headers={"Authorization": f"token {token_for(user)}"},
    )
    return response


def test_v1_cycle_is_recorded_in_order(server, api, course):
    ok(api("inst1").post(f"assignment/{course}/ps1", data={"files": encode_files({"q": b"?"})}))
    ok(api("stu1").get(f"assignment/{course}/ps1", params={"list_only": "true"}))  # not a fetch
    ok(
        api("stu1").get(
            f"assignment/{course}/ps1", headers={"X-Forwarded-For": "10.1.2.3, 1.1.1.1"}
        )
    )
    stamp = ok(
        api("stu1").post(f"submission/{course}/ps1", data={"files": encode_files({"a": b"1"})})
    )["timestamp"]
    ok(api("inst1").get(f"submission/{course}/ps1/stu1"))
    ok(
        api("inst1").post(
            f"feedback/{course}/ps1/stu1",
            data={"timestamp": stamp, "files": encode_files({"f.html": b"ok"})},
        )
    )
    ok(api("stu1").get(f"feedback/{course}/ps1/stu1", params={"timestamp": stamp}))
    events = history(server, course).json()["events"]
    assert [(e["action"], e["actor"], e["student"]) for e in events] == [
        ("release", "inst1", None),
        ("fetch", "stu1", None),
        ("submit", "stu1", "stu1"),
        ("collect", "inst1", "stu1"),
        ("feedback_release", "inst1", "stu1"),
        ("feedback_fetch", "stu1", "stu1"),
    ]
    assert events[1]["remote"] == "10.1.2.3" and events[0]["remote"] == "127.0.0.1"
    assert {e["api"] for e in events} == {"v1"}
    assert events[0]["version"] == 1 and len(events[0]["digest"]) == 64
    assert events[1]["digest"] == events[0]["digest"]
    assert events[2]["submission_id"] == events[3]["submission_id"] == events[4]["submission_id"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    only_stu1_fetch = history(server, course, student="stu1", action="feedback_fetch").json()
    assert len(only_stu1_fetch["events"]) == 1


def test_history_is_for_instructors_and_exports_csv(server, course):
    assert history(server, course, user="stu1").status_code == 403
    assert history(server, course, user="outsider").status_code == 403
    response = history(server, course, format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "at",
        "course",
        "action",
        "actor",
        "assignment",
        "student",
        "submission_id",
        "version",
        "digest",
        "remote",
        "api",
    ]


def test_v2_reports_are_checked(server, course, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "q").write_text("?")
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", tmp_path / "src")
    with NgshareClient(server.url, token_for("stu1")) as stu:
        made = stu.submit(course, "ps1", tmp_path / "src")
    url = f"{server.url}/v2/courses/{course}/events"

    def report(user, **body):
        return httpx.post(url, json=body, headers={"Authorization": f"token {token_for(user)}"})

    assert report("stu2", action="fetch", assignment="ps1").status_code == 201
    assert report("outsider", action="fetch", assignment="ps1").status_code == 403
    assert report("stu2", action="fetch", assignment="ps1", version=9).status_code == 404
    assert (
        report("stu2", action="collect", assignment="ps1", submission_id=made["id"]).status_code
        == 403
    )
    assert (
        report(
            "stu1", action="feedback_fetch", assignment="ps1", submission_id=made["id"]
        ).status_code
        == 404
    )  # no feedback yet
    assert (
        report("inst1", action="collect", assignment="ps1", submission_id=made["id"]).status_code
        == 201
    )
    assert report("stu1", action="delete_everything", assignment="ps1").status_code == 400
    httpx.get(
        f"{server.url}/v2/courses/{course}/assignments/ps1/collect",
        headers={"Authorization": f"token {token_for('inst1')}"},
    )
    events = history(server, course).json()["events"]
    assert [(e["action"], e["actor"], e["api"]) for e in events] == [
        ("release", "inst1", "v2"),
        ("submit", "stu1", "v2"),
        ("fetch", "stu2", "v2"),
        ("collect", "inst1", "v2"),
        ("collect", "inst1", "v2"),
    ]
    assert events[2]["version"] == 1 and events[2]["digest"] == events[0]["digest"]
