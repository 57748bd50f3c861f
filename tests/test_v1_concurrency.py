"""Many students at once: every submission stored once, nothing mixed up."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from tests.v1util import decode_files, encode_files, md5, ok

STUDENTS = [f"stu{i}" for i in range(1, 41)]


def test_forty_students_submit_concurrently(api, course):
    admin = api("inst1")
    roster = [{"username": s, "first_name": s, "last_name": "", "email": ""} for s in STUDENTS]
    ok(admin.post(f"students/{course}", data={"students": json.dumps(roster)}))
    shared = b"same data file for everyone " * 2000
    ok(admin.post(f"assignment/{course}/ps1", data={"files": encode_files({"data.csv": shared})}))

    def work(student: str) -> tuple[str, str]:
        files = {"answer.py": f"print({student!r})".encode(), "data.csv": shared}
        body = ok(
            api(student).post(f"submission/{course}/ps1", data={"files": encode_files(files)})
        )
        return student, body["timestamp"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        stamps = dict(pool.map(work, STUDENTS))

    listed = ok(admin.get(f"submissions/{course}/ps1"))["submissions"]
    assert sorted((x["student_id"], x["timestamp"]) for x in listed) == sorted(stamps.items())
    for student in STUDENTS[::7]:
        files = decode_files(ok(admin.get(f"submission/{course}/ps1/{student}"))["files"])
        assert files == {"answer.py": f"print({student!r})".encode(), "data.csv": shared}


def test_one_student_submitting_in_parallel_gets_distinct_increasing_stamps(api, course):
    ok(api("inst1").post(f"assignment/{course}/ps1", data={"files": "[]"}))

    def work(i: int) -> str:
        files = encode_files({"n.txt": str(i).encode()})
        return ok(api("stu1").post(f"submission/{course}/ps1", data={"files": files}))["timestamp"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        stamps = list(pool.map(work, range(16)))
    assert len(set(stamps)) == 16
    listed = [
        x["timestamp"] for x in ok(api("stu1").get(f"submissions/{course}/ps1/stu1"))["submissions"]
    ]
    parsed = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f") for s in listed]
    assert parsed == sorted(parsed) and sorted(listed) == sorted(stamps)


def test_checksums_of_a_fresh_release_under_a_rush_of_fetches(api, course):
    """v1 uploads leave md5 to the first read; 16 students fetching at once all get it right."""
    admin = api("inst1")
    roster = [{"username": s, "first_name": s, "last_name": "", "email": ""} for s in STUDENTS]
    ok(admin.post(f"students/{course}", data={"students": json.dumps(roster)}))
    files = {"data.bin": bytes(range(256)) * 8192, "nb.ipynb": b'{"cells": []}'}
    ok(admin.post(f"assignment/{course}/ps1", data={"files": encode_files(files)}))

    def fetch(student: str) -> dict[str, str]:
        body = ok(api(student).get(f"assignment/{course}/ps1"))
        return {entry["path"]: entry["checksum"] for entry in body["files"]}

    with ThreadPoolExecutor(max_workers=16) as pool:
        seen = list(pool.map(fetch, STUDENTS[:16]))
    expected = {path: md5(data) for path, data in files.items()}
    assert seen == [expected] * 16
