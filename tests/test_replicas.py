"""Three servers on one PostgreSQL and one object store behave as one service.

Students are spread at random over the replicas for every call; one replica
is killed (SIGKILL) in the middle of the run. Every acknowledged submission
must be there exactly once with its exact content, and every replica must
answer every listing the same way.
"""

import hashlib
import json
import os
import random
import secrets
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ngshare.client import ClientError, NgshareClient, scan_tree
from tests.s3 import CREDENTIALS, S3Server
from tests.servers import PG_ADMIN_URL, ServerProcess, token_for, write_token_file
from tests.v1util import ok

STUDENTS = [f"stu{i}" for i in range(1, 31)]


class PgDatabase:
    """A fresh PostgreSQL database whatever NGSHARE_TEST_DB says: replicas need one."""

    def __init__(self) -> None:
        from sqlalchemy import create_engine, text

        self.name = "ngshare_replicas_" + secrets.token_hex(4)
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        engine.dispose()
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name

    def drop(self) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def cluster(tmp_path):
    s3 = S3Server(tmp_path)
    bucket = s3.new_bucket("replicas")
    database = PgDatabase()
    tokens = write_token_file(tmp_path / "tokens.json")
    secret = secrets.token_hex(32)
    replicas = []
    for index in range(3):
        data_dir = tmp_path / f"replica{index}"
        data_dir.mkdir()
        args = [
            "--token-file",
            str(tokens),
            "--admins",
            "admin",
            "--cookie-secret",
            secret,
            *s3.server_args(bucket),
        ]
        replicas.append(ServerProcess(data_dir, args, env=CREDENTIALS, database=database))
    try:
        for replica in replicas:  # started together: migrations take turns
            replica.wait_ready()
        yield replicas
    finally:
        for replica in replicas:
            replica.database = _NoDrop()
            replica.stop()
        database.drop()
        s3.stop()


class _NoDrop:
    def drop(self) -> None:
        return None


def write_answer(root: Path, student: str, attempt: int) -> Path:
    folder = root / f"{student}-{attempt}"
    folder.mkdir(parents=True)
    (folder / "answer.py").write_text(f"print({student!r}, {attempt})\n")
    (folder / "data.csv").write_bytes(b"shared data\n" * 1000)
    return folder


@pytest.mark.slow
@pytest.mark.backend_neutral
def test_three_replicas_one_killed_lose_nothing(cluster, tmp_path):
    alive = list(cluster)
    lock = threading.Lock()
    admin = httpx.Client(
        base_url=cluster[0].url + "/",
        headers={"Authorization": f"token {token_for('admin')}"},
        timeout=30,
    )
    ok(admin.post("course/rep", data={"instructors": '["inst1"]'}))
    roster = [{"username": s, "first_name": s, "last_name": "", "email": ""} for s in STUDENTS]
    ok(
        httpx.post(
            cluster[1].url + "/students/rep",
            data={"students": json.dumps(roster)},
            headers={"Authorization": f"token {token_for('inst1')}"},
        )
    )
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "ps1.ipynb").write_text("{}")
    with NgshareClient(cluster[2].url, token_for("inst1")) as inst:
        inst.release("rep", "ps1", tmp_path / "release")

    acknowledged: dict[str, dict[str, str]] = {}  # id -> student, answer hash
    done = {"calls": 0}
    rng = random.Random(7)

    def some_replica() -> ServerProcess:
        with lock:
            return rng.choice(alive)

    def call(student: str, work):
        for _attempt in range(6):
            replica = some_replica()
            with NgshareClient(replica.url, token_for(student), retries=0) as client:
                try:
                    result = work(client)
                except ClientError as exc:
                    if exc.status in (0, 502, 503):
                        continue  # that replica is gone: try another
                    raise
            with lock:
                done["calls"] += 1
                if done["calls"] == 40 and len(alive) == 3:
                    victim = alive.pop()
                    os.kill(victim.process.pid, signal.SIGKILL)
            return result
        raise AssertionError(f"{student}: no replica answered")

    def student_work(student: str) -> None:
        call(
            student,
            lambda c: c.fetch_assignment(
                "rep", "ps1", tmp_path / "fetched" / student / secrets.token_hex(3)
            ),
        )
        for attempt in range(2):
            folder = write_answer(tmp_path / "answers", student, attempt)
            files = scan_tree(folder)
            key = secrets.token_hex(12)

            def submit(client, files=files, key=key):
                client.upload_files("rep", files)
                return client.request(
                    "POST",
                    "courses/rep/assignments/ps1/submissions",
                    json={"files": [f.manifest_entry() for f in files]},
                    headers={"Idempotency-Key": key},
                )

            made = call(student, submit)
            answer = hashlib.sha256((folder / "answer.py").read_bytes()).hexdigest()
            with lock:
                acknowledged[str(made["id"])] = {"student": student, "answer": answer}

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(student_work, STUDENTS))

    assert len(alive) == 2, "one replica should have been killed during the run"
    assert len(acknowledged) == 2 * len(STUDENTS)
    listings = []
    for replica in alive:
        with NgshareClient(replica.url, token_for("inst1")) as inst:
            listing = inst.submissions("rep", "ps1")
        listings.append(sorted((s["id"], s["student"], s["timestamp"]) for s in listing))
        v1 = httpx.get(
            replica.url + "/submissions/rep/ps1",
            headers={"Authorization": f"token {token_for('inst1')}"},
        ).json()
        assert sorted((s["student_id"], s["timestamp"]) for s in v1["submissions"]) == sorted(
            (student, stamp) for _id, student, stamp in listings[-1]
        )
    assert listings[0] == listings[1]
    ids = [str(entry[0]) for entry in listings[0]]
    assert sorted(ids) == sorted(acknowledged)  # each acknowledged submission exactly once
    with NgshareClient(alive[0].url, token_for("inst1")) as inst:
        for submission_id, expected in list(acknowledged.items())[::9]:
            detail = inst.submission("rep", "ps1", expected["student"], int(submission_id))
            answer = next(f for f in detail["files"] if f["path"] == "answer.py")
            assert answer["sha256"] == expected["answer"]
            target = tmp_path / "check" / submission_id
            inst.download_tree("rep", detail["files"], target)
            digest = hashlib.sha256((target / "answer.py").read_bytes()).hexdigest()
            assert digest == expected["answer"]
    admin.close()
