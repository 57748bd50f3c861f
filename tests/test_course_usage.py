"""Each course's storage count (what its quota reads) stays the exact sum of its file
sets through every way of adding and removing one, over v1, v2, the GC, the import
and course deletion; fsck finds a wrong count and `--recount` sets it right."""

import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import create_engine, text

from ngshare.client import ClientError, NgshareClient
from tests.servers import ServerProcess, token_for, token_server
from tests.v1util import encode_files, ok

# The oracle, written independently of the server's code: the distinct file sets
# that some row of the course references, summed.
HELD = """
SELECT c.name, COALESCE((SELECT SUM(fs.total_size) FROM filesets fs WHERE fs.id IN (
    SELECT r.fileset_id FROM releases r JOIN assignments a ON a.id = r.assignment_id
     WHERE a.course_id = c.id
    UNION SELECT s.fileset_id FROM submissions s JOIN assignments a ON a.id = s.assignment_id
     WHERE a.course_id = c.id
    UNION SELECT f.fileset_id FROM feedback f JOIN submissions s ON s.id = f.submission_id
     JOIN assignments a ON a.id = s.assignment_id WHERE a.course_id = c.id
    UNION SELECT a.solutions_fileset_id FROM assignments a WHERE a.course_id = c.id
)), 0), c.stored_bytes FROM courses c ORDER BY c.name
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("usage")
    proc = token_server(data_dir, "--course-quota-mib", "1")
    engine = create_engine(proc.database.url)
    v1 = httpx.Client(base_url=proc.url + "/", timeout=30)
    clients = {u: NgshareClient(proc.url, token_for(u)) for u in ("inst1", "stu1")}
    yield proc, engine, v1, clients
    for client in clients.values():
        client.close()
    v1.close()
    engine.dispose()
    proc.stop()


def as_(user: str) -> dict:
    return {"Authorization": f"token {token_for(user)}"}


def counts(engine) -> dict[str, tuple[int, int]]:
    """course -> (bytes its file sets hold, its stored_bytes)."""
    with engine.connect() as connection:
        return {name: (int(held), int(counted)) for name, held, counted in connection.execute(
            text(HELD)
        )}  # fmt: skip


def assert_exact(engine, course: str, held: int) -> None:
    assert counts(engine)[course] == (held, held)


def tree(root, files: dict[str, bytes]):
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def ngshare(proc: ServerProcess, *args: str) -> subprocess.CompletedProcess:
    location = ["--data-dir", str(proc.data_dir), "--database-url", proc.database.url]
    return subprocess.run(
        [sys.executable, "-m", "ngshare", *args, *location],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_change_keeps_the_count_exact(env, tmp_path):
    proc, engine, v1, clients = env
    inst, stu = clients["inst1"], clients["stu1"]
    ok(v1.post("course/u1", data={"instructors": '["inst1"]'}, headers=as_("admin")))
    names = {"first_name": "S", "last_name": "T", "email": "s@x.org"}
    ok(v1.post("student/u1/stu1", data=names, headers=as_("inst1")))
    assert_exact(engine, "u1", 0)

    inst_, stu_ = as_("inst1"), as_("stu1")
    ok(v1.post("assignment/u1/a", data={"files": encode_files({"q": b"1" * 100})}, headers=inst_))
    assert_exact(engine, "u1", 100)
    inst.release("u1", "b", tree(tmp_path / "b", {"q": b"2" * 1000, "d": b"3" * 3000}))
    inst.release("u1", "b", tree(tmp_path / "b2", {"q": b"4" * 10}))  # a new version
    assert_exact(engine, "u1", 100 + 4000 + 10)

    answer = v1.post(
        "submission/u1/a", data={"files": encode_files({"s": b"5" * 50})}, headers=stu_
    )
    stamp = ok(answer)["timestamp"]
    sub = stu.submit("u1", "b", tree(tmp_path / "s", {"q": b"6" * 20}))
    base = 4110 + 50 + 20
    assert_exact(engine, "u1", base)

    for size in (7, 9):  # feedback, then feedback replaced over v1
        files = encode_files({"f.html": b"7" * size})
        body = {"timestamp": stamp, "files": files}
        ok(v1.post("feedback/u1/a/stu1", data=body, headers=inst_))
    assert_exact(engine, "u1", base + 9)
    inst.put_feedback("u1", "b", "stu1", sub["id"], tree(tmp_path / "f1", {"f": b"8" * 30}))
    inst.put_feedback("u1", "b", "stu1", sub["id"], tree(tmp_path / "f2", {"f": b"9" * 40}))
    assert_exact(engine, "u1", base + 9 + 40)
    inst.withdraw_feedback("u1", "b", "stu1", sub["id"])
    assert_exact(engine, "u1", base + 9)

    inst.put_solutions("u1", "b", tree(tmp_path / "x1", {"sol": b"a" * 300}))
    inst.put_solutions("u1", "b", tree(tmp_path / "x2", {"sol": b"b" * 200}))
    assert_exact(engine, "u1", base + 9 + 200)
    inst.withdraw_solutions("u1", "b")
    assert_exact(engine, "u1", base + 9)

    ok(v1.delete("assignment/u1/a", headers=inst_))  # withdraws: submissions stay
    assert_exact(engine, "u1", base + 9)
    gc = ngshare(proc, "gc")
    assert gc.returncode == 0, gc.stderr
    assert_exact(engine, "u1", base + 9)

    fsck = ngshare(proc, "fsck", "--quick")
    assert fsck.returncode == 0 and "0 course storage counts off" in fsck.stdout, fsck.stdout


def test_quota_is_freed_by_withdrawing_and_refused_over_it(env, tmp_path):
    _proc, engine, v1, clients = env
    inst = clients["inst1"]
    ok(v1.post("course/u2", data={"instructors": '["inst1"]'}, headers=as_("admin")))
    half = os.urandom(600 * 1024)
    inst.release("u2", "a", tree(tmp_path / "r", {"q": b"x"}))
    inst.put_solutions("u2", "a", tree(tmp_path / "s1", {"sol": half}))
    with pytest.raises(ClientError) as refused:
        inst.release("u2", "b", tree(tmp_path / "big", {"d": os.urandom(600 * 1024)}))
    assert refused.value.status == 413
    assert refused.value.message == "The course storage quota of 1 MiB would be exceeded"
    inst.withdraw_solutions("u2", "a")
    inst.release("u2", "b", tree(tmp_path / "big2", {"d": os.urandom(600 * 1024)}))
    assert_exact(engine, "u2", 1 + 600 * 1024)


def test_fsck_finds_a_wrong_count_and_recount_sets_it_right(env, tmp_path):
    proc, engine, v1, clients = env
    ok(v1.post("course/u3", data={"instructors": '["inst1"]'}, headers=as_("admin")))
    clients["inst1"].release("u3", "a", tree(tmp_path / "r", {"q": b"y" * 77}))
    with engine.begin() as connection:
        connection.execute(text("UPDATE courses SET stored_bytes = 5 WHERE name = 'u3'"))
    found = ngshare(proc, "fsck", "--quick")
    assert found.returncode == 1
    assert "miscounted: u3: counted 5, holds 77" in found.stdout
    fixed = ngshare(proc, "fsck", "--quick", "--recount")
    assert fixed.returncode == 0 and "(recounted)" in fixed.stdout, fixed.stdout
    assert_exact(engine, "u3", 77)
    again = ngshare(proc, "fsck", "--quick")
    assert again.returncode == 0 and "0 course storage counts off" in again.stdout


def test_deleting_a_course_takes_its_file_sets(env, tmp_path):
    _proc, engine, v1, clients = env
    ok(v1.post("course/u4", data={"instructors": '["inst1"]'}, headers=as_("admin")))
    inst = clients["inst1"]
    ok(v1.post("student/u4/stu1", data={"first_name": "S", "last_name": "T", "email": ""},
               headers=as_("inst1")))  # fmt: skip
    inst.release("u4", "a", tree(tmp_path / "r", {"q": b"z" * 5}))
    sub = clients["stu1"].submit("u4", "a", tree(tmp_path / "s", {"q": b"w" * 6}))
    inst.put_feedback("u4", "a", "stu1", sub["id"], tree(tmp_path / "f", {"f": b"v" * 7}))
    ok(v1.delete("course/u4", headers=as_("admin")))  # a set three levels down, too
    assert "u4" not in counts(engine)
    with engine.connect() as connection:
        owned = connection.scalar(text("SELECT count(*) FROM filesets WHERE course_id IS NULL"))
    assert owned == 0  # not even orphans left for the GC


def test_concurrent_commits_lose_no_bytes(env, tmp_path):
    """Eight students submitting three times each while feedback is replaced, all at
    once: every commit adds to the same course row, and none may overwrite another."""
    from concurrent.futures import ThreadPoolExecutor

    proc, engine, v1, clients = env
    ok(v1.post("course/u5", data={"instructors": '["inst1"]'}, headers=as_("admin")))
    students = [f"stu1{i}" for i in range(8)]
    for student in students:
        names = {"first_name": "S", "last_name": "T", "email": ""}
        ok(v1.post(f"student/u5/{student}", data=names, headers=as_("inst1")))
    clients["inst1"].release("u5", "a", tree(tmp_path / "r", {"q": b"r" * 3}))

    def work(index: int) -> int:
        student = students[index]
        added = 0
        with (
            NgshareClient(proc.url, token_for(student)) as me,
            NgshareClient(proc.url, token_for("inst1")) as inst,
        ):
            for turn in range(3):
                size = 100 * index + 10 * turn + 1
                root = tree(tmp_path / f"{student}-{turn}", {"a": bytes([65 + turn]) * size})
                sub = me.submit("u5", "a", root)
                feedback = {"f": bytes([97 + index]) * (size + 1)}
                inst.put_feedback("u5", "a", student, sub["id"], tree(root / "fb", feedback))
                added += size + (size + 1)
        return added

    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(work, range(8)))
    assert_exact(engine, "u5", 3 + total)


def test_instructors_and_admins_see_what_a_course_stores_students_do_not(env, tmp_path):
    proc, engine, v1, clients = env
    ok(v1.post("course/u6", data={"instructors": '["inst1"]'}, headers=as_("admin")))
    names = {"first_name": "S", "last_name": "T", "email": ""}
    ok(v1.post("student/u6/stu1", data=names, headers=as_("inst1")))
    clients["inst1"].release("u6", "a", tree(tmp_path / "r", {"q": b"q" * 1234}))
    held = counts(engine)["u6"][0]
    assert held == 1234
    quota = {"stored_bytes": held, "quota_bytes": 1024 * 1024}
    by_inst = {c["name"]: c for c in clients["inst1"].courses()}
    assert by_inst["u6"] == {"name": "u6", "role": "instructor", **quota}
    by_student = {c["name"]: c for c in clients["stu1"].courses()}
    assert by_student["u6"] == {"name": "u6", "role": "student", "stored_bytes": None,
                                "quota_bytes": None}  # fmt: skip
    with NgshareClient(proc.url, token_for("admin")) as admin:
        assert {"name": "u6", "role": "admin", **quota} in admin.courses()
