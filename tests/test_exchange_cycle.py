"""Our nbgrader exchange plugin through a whole course cycle, with real nbgrader commands.

Real `nbgrader` processes (nbgrader 0.9.6 in its own virtualenv, see
tests/nbgrader_env.py) for one instructor and three students, each in an own
HOME with only a notebook server's environment (JUPYTERHUB_USER and
JUPYTERHUB_API_TOKEN), against a real `ngshare serve` process. The server
uses token-file authentication: each person has a real token that the server
checks on every request, as a JupyterHub token would be (tests/test_jupyterhub.py
covers the Hub itself; starting a Hub here would add nothing the plugin sees).

The cycle: generate_assignment, release_assignment (refused again without
--force), list/fetch_assignment/submit by three students (one submits twice),
list --cached, list --inbound, collect, autograde, generate_feedback,
release_feedback, list --inbound/--cached with feedback state, fetch_feedback,
feedback updated after a second release_feedback, release_assignment --force
(a new version; old version and submissions kept), resubmission and
collect --update.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.exchange_util import (
    RIGHT,
    WRONG,
    answer,
    api,
    build_venv,
    fails,
    inbound_line,
    instructor,
    lines,
    list_dicts,
    make_course,
    ok,
    parallel,
    person,
    running_server,
    source_notebook,
    submitted_timestamp,
    write_source,
)
from tests.servers import token_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

COURSE = "cycle101"
PS = "ps1"
NB = "problem1.ipynb"
STUDENTS = ["stu1", "stu2", "stu3"]


@pytest.fixture(scope="module")
def venv() -> Path:
    return build_venv()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("ngshare-cycle")) as proc:
        yield proc


def test_full_nbgrader_cycle(venv, server, tmp_path):
    make_course(server, COURSE, ["inst1"], STUDENTS)
    homes = tmp_path / "home"
    inst = instructor(venv, server, homes, "inst1", COURSE)
    students = {name: person(venv, server, homes, name, COURSE) for name in STUDENTS}
    root = inst.home / "course"

    # Release: ignored directories are pruned, a second release needs --force.
    write_source(inst, PS)
    (root / "source" / PS / "data").mkdir()
    (root / "source" / PS / "data" / "numbers.csv").write_text("1,2,3\n")
    ok(inst, "generate_assignment", PS)
    checkpoints = root / "release" / PS / ".ipynb_checkpoints"
    checkpoints.mkdir()
    (checkpoints / "problem1-checkpoint.ipynb").write_text("{}")
    output = ok(inst, "release_assignment", PS)
    assert f"Released as: {COURSE} {PS}" in output
    with api(server, "stu1") as stu1_api:
        release = stu1_api.assignment(COURSE, PS)
    assert sorted(f["path"] for f in release["files"]) == ["data/numbers.csv", NB]
    assert release["version"] == 1
    refused = fails(inst, "release_assignment", PS)
    assert refused == f"Destination already exists, add --force to overwrite: {COURSE} {PS}"

    # Students list, fetch, answer, submit (at the same time); stu1 twice.
    def student_round(name: str) -> list[str]:
        student = students[name]
        if name == "stu1":
            assert lines(ok(student, "list"), rf"\] {COURSE} {PS}$")
        ok(student, "fetch_assignment", PS)
        fetched = student.home / PS
        assert (fetched / NB).read_bytes() == (root / "release" / PS / NB).read_bytes()
        assert (fetched / "data" / "numbers.csv").read_text() == "1,2,3\n"
        assert not (fetched / ".ipynb_checkpoints").exists()
        answer(fetched / NB, WRONG if name != "stu2" else RIGHT)
        stamps = [submitted_timestamp(ok(student, "submit", PS), COURSE, PS)]
        if name == "stu1":
            assert lines(ok(student, "list"), rf"\] {COURSE} {PS} \(already downloaded\)$")
            answer(fetched / NB, RIGHT)
            stamps.append(submitted_timestamp(ok(student, "submit", PS), COURSE, PS))
        return stamps

    rounds = parallel(*(lambda n=n: student_round(n) for n in STUDENTS))
    timestamps = dict(zip(STUDENTS, rounds, strict=True))
    stu1 = students["stu1"]
    first, second = timestamps["stu1"]
    assert first < second and first.endswith(" UTC")
    # What the course holds is remembered beside the hash cache, for the next submit.
    known = json.loads((stu1.home / ".local/share/jupyter/ngshare/hashes.blobs.json").read_text())
    [course_blobs] = [v for k, v in known.items() if k.endswith(f"/courses/{COURSE}")]
    assert {f["sha256"] for f in release["files"]} <= set(course_blobs)

    cache = stu1.home / ".local/share/jupyter/nbgrader_cache" / COURSE
    cached = cache / f"stu1+{PS}+{second}"
    assert (cached / "timestamp.txt").read_text() == second
    assert len((cached / "submission_secret.txt").read_text()) == 128
    assert (cached / NB).read_bytes() == (stu1.home / PS / NB).read_bytes()
    # The instructor sees every submission; a student may not.
    listing, inbound, denied = parallel(
        lambda: ok(stu1, "list", "--cached"),
        lambda: ok(inst, "list", "--inbound"),
        lambda: fails(stu1, "list", "--inbound", "--course", COURSE),
    )
    for stamp in (first, second):
        assert lines(listing, inbound_line(COURSE, "stu1", PS, stamp, "no feedback available"))
    assert len(lines(inbound, rf"\] {COURSE} stu\d {PS} ")) == 4, inbound
    assert lines(inbound, inbound_line(COURSE, "stu1", PS, second, "no feedback available"))
    assert "permission denied" in denied

    # Collect the newest of each, autograde, generate and release feedback.
    ok(inst, "collect", PS)
    for name in STUDENTS:
        submitted = root / "submitted" / name / PS
        assert (submitted / "timestamp.txt").read_text() == timestamps[name][-1]
        assert (submitted / NB).read_bytes() == (students[name].home / PS / NB).read_bytes()
        assert (submitted / "submission_secret.txt").is_file()
    ok(inst, "autograde", PS)
    ok(inst, "generate_feedback", PS)
    ok(inst, "release_feedback", PS)

    # Feedback belongs to the submission it grades.
    inbound, listing = parallel(
        lambda: ok(inst, "list", "--inbound"), lambda: ok(stu1, "list", "--cached")
    )
    assert lines(inbound, inbound_line(COURSE, "stu1", PS, second, "feedback ready to be fetched"))
    assert lines(inbound, inbound_line(COURSE, "stu1", PS, first, "no feedback available"))
    assert lines(listing, inbound_line(COURSE, "stu1", PS, second, "feedback ready to be fetched"))
    assert lines(listing, inbound_line(COURSE, "stu1", PS, first, "no feedback available"))
    stu2 = students["stu2"]
    parallel(lambda: ok(stu1, "fetch_feedback", PS), lambda: ok(stu2, "fetch_feedback", PS))
    stu2_html = stu2.home / PS / "feedback" / timestamps["stu2"][0] / "problem1.html"
    assert "Score: 2.0 / 2.0" in stu2_html.read_text()
    feedback = stu1.home / PS / "feedback"
    assert [p.name for p in feedback.iterdir()] == [second]
    html = (feedback / second / "problem1.html").read_text()
    assert "Score: 2.0 / 2.0" in html
    # What the JupyterLab assignment list gets, and what the command line shows.
    listing, (entry,) = parallel(
        lambda: ok(stu1, "list", "--cached"), lambda: list_dicts(stu1, list={"cached": True})
    )
    assert lines(listing, inbound_line(COURSE, "stu1", PS, second, "feedback already fetched"))
    newest = entry["submissions"][-1]
    assert newest["has_local_feedback"] and newest["has_exchange_feedback"]
    assert not newest["feedback_updated"]
    assert newest["local_feedback_path"] == str(feedback / second)
    (notebook,) = newest["notebooks"]
    # As nbgrader's own exchange: relative to Exchange.assignment_dir.
    assert notebook["local_feedback_path"] == f"./{PS}/feedback/{second}/problem1.html"

    # Feedback released again (changed) shows as updated, and is fetched again.
    released_html = root / "feedback" / "stu1" / PS / "problem1.html"
    released_html.write_text(released_html.read_text() + "<!-- regraded -->\n")
    ok(inst, "release_feedback", PS, "--student", "stu1")
    (entry,) = list_dicts(stu1, list={"cached": True})
    assert entry["submissions"][-1]["feedback_updated"] is True
    listing = ok(stu1, "list", "--cached")
    assert lines(listing, inbound_line(COURSE, "stu1", PS, second, "feedback ready to be fetched"))
    seen = len(server.log())
    ok(stu1, "fetch_feedback", PS)
    assert "regraded" in (feedback / second / "problem1.html").read_text()
    # every submission's feedback files come with the listing: no request per file
    mine = [x for x in server.log()[seen:].splitlines() if "user=stu1" in x]
    assert not [x for x in mine if "/blobs" in x], mine
    listings = [x for x in mine if f"/assignments/{PS}/submissions/stu1 200 " in x]
    assert len(listings) == 1 and "GET /api/v2/courses/" in listings[0], mine

    # A forced re-release is a new version; submissions and version 1 are kept.
    stu3 = students["stu3"]
    answer(stu3.home / PS / NB, RIGHT)
    write_source(inst, PS, {NB: source_notebook(points=3)})

    def rerelease() -> str:
        ok(inst, "generate_assignment", PS, "--force")
        return ok(inst, "release_assignment", PS, "--force")

    output, resubmitted = parallel(rerelease, lambda: ok(stu3, "submit", PS))
    newer = submitted_timestamp(resubmitted, COURSE, PS)
    assert "Overwriting files" in output
    with api(server, "inst1") as inst_api:
        assert inst_api.assignment(COURSE, PS)["version"] == 2
        assert inst_api.assignment(COURSE, PS, version=1)["files"] == release["files"]
        assert len(inst_api.submissions(COURSE, PS)) == 5
        # stu3's feedback stays with the submission it grades, not the newer one.
        older, newest = inst_api.student_submissions(COURSE, PS, "stu3")
        assert older["feedback"] is not None and newest["feedback"] is None
        assert newest["release_version"] in (1, 2) and older["release_version"] == 1

    # stu3 resubmitted; collect --update takes only the newer one.
    output = ok(inst, "collect", PS)
    assert "Submission already exists, use --update to update: stu3" in output
    output = ok(inst, "collect", "--update", PS)
    assert "Updating submission: stu3" in output
    assert "No newer submission to collect: stu1" in output
    assert (root / "submitted" / "stu3" / PS / "timestamp.txt").read_text() == newer

    # every fetch, collect and feedback fetch is in the course's audit history
    events = httpx.get(
        f"{server.url}/v2/courses/{COURSE}/events",
        headers={"Authorization": f"token {token_for('inst1')}"},
    ).json()["events"]
    done = {(e["action"], e["actor"]) for e in events}
    for student in STUDENTS:
        assert {("fetch", student), ("submit", student)} <= done
    assert {("feedback_fetch", "stu1"), ("feedback_fetch", "stu2")} <= done  # stu3 never did
    assert {("release", "inst1"), ("collect", "inst1"), ("feedback_release", "inst1")} <= done

    log = server.log()
    assert "Traceback" not in log, log
    assert json.dumps(timestamps)  # keep the timestamps readable in a failure report
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC", second)
