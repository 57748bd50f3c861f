"""`list` returns what nbgrader's own filesystem exchange returns, field by field.

One script, run with the nbgrader virtualenv's Python, drives the same course
twice through nbgrader's exchange classes as nbgrader's apps and JupyterLab
extension call them (ExchangeFactory(config).<Operation>(...).start()): once
with nbgrader's default exchange on a directory, once with ours on a real
server. At each stage it records what ExchangeList returns to the student
(released, fetched, --cached) and to the instructor (--inbound): before and
after a second submission, after collect and release_feedback, after
fetch_feedback, and after the feedback changed. The two records must be equal
once the things that must differ are named alike: where files live (the
exchange directory vs. the service URL), the time of each submission, and the
random suffix nbgrader's exchange gives inbound directories.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.exchange_util import build_venv, make_course, running_server, source_notebook
from tests.nbgrader_env import Person
from tests.servers import token_for

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral, pytest.mark.timeout(600)]

COURSE = "cmp101"

SCRIPT = r"""
import json, os, shutil, sys, time
from traitlets.config import Config
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from nbgrader.exchange import ExchangeFactory
from ngshare.exchange import configure

args = json.loads(sys.argv[1])
work = args["work"]


def run(kind, who, operation, assignment="ps1", student=None, **traits):
    c = Config()
    if kind == "ng":
        configure(c, url=args["url"])
        c.Exchange.api_token = args["tokens"][who]
    else:
        c.Exchange.root = os.path.join(work, "fs", "exchange")
    c.Exchange.cache = os.path.join(work, kind, who, "cache")
    c.Exchange.assignment_dir = os.path.join(work, kind, who, "home")
    c.CourseDirectory.root = os.path.join(work, kind, "course")
    c.CourseDirectory.course_id = args["course"]
    c.CourseDirectory.assignment_id = assignment
    if student:
        c.CourseDirectory.student_id = student
    section = {"List": "ExchangeList", "Collect": "ExchangeCollect"}.get(operation)
    for key, value in traits.items():
        setattr(c[section], key, value)
    coursedir = CourseDirectory(config=c)
    factory = ExchangeFactory(config=c)
    action = getattr(factory, operation)(
        coursedir=coursedir, authenticator=Authenticator(config=c), config=c
    )
    return action.start()


def cycle(kind):
    seen = {}
    course = os.path.join(work, kind, "course")
    release = os.path.join(course, "release", "ps1")
    os.makedirs(release)
    for name, text in args["notebooks"].items():
        with open(os.path.join(release, name), "w") as handle:
            handle.write(text)
    os.makedirs(os.path.join(work, kind, "stu1", "home"))
    run(kind, "inst1", "ReleaseAssignment")
    seen["released"] = run(kind, "stu1", "List", assignment="")
    run(kind, "stu1", "FetchAssignment")
    seen["fetched"] = run(kind, "stu1", "List", assignment="")
    run(kind, "stu1", "Submit", student="stu1")
    seen["cached_one"] = run(kind, "stu1", "List", assignment="", cached=True)
    time.sleep(0.01)
    run(kind, "stu1", "Submit", student="stu1")
    seen["cached_two"] = run(kind, "stu1", "List", assignment="", cached=True)
    seen["inbound"] = run(kind, "inst1", "List", assignment="", inbound=True)
    run(kind, "inst1", "Collect")
    submitted = os.path.join(course, "submitted", "stu1", "ps1")
    feedback = os.path.join(course, "feedback", "stu1", "ps1")
    os.makedirs(feedback)
    for name in ("timestamp.txt", "submission_secret.txt"):
        shutil.copy(os.path.join(submitted, name), feedback)
    for name in args["notebooks"]:
        with open(os.path.join(feedback, name.replace(".ipynb", ".html")), "w") as handle:
            handle.write("<p>well done</p>\n")
    run(kind, "inst1", "ReleaseFeedback")
    seen["cached_feedback"] = run(kind, "stu1", "List", assignment="", cached=True)
    seen["inbound_feedback"] = run(kind, "inst1", "List", assignment="", inbound=True)
    run(kind, "stu1", "FetchFeedback", student="stu1")
    seen["cached_fetched"] = run(kind, "stu1", "List", assignment="", cached=True)
    with open(os.path.join(feedback, "problem1.html"), "a") as handle:
        handle.write("<p>regraded</p>\n")
    run(kind, "inst1", "ReleaseFeedback")
    seen["cached_updated"] = run(kind, "stu1", "List", assignment="", cached=True)
    seen["fetched_after"] = run(kind, "stu1", "List", assignment="")
    return seen


print(json.dumps({"fs": cycle("fs"), "ng": cycle("ng")}))
"""


def normalize(value, kind: str, work: Path, exchange: list[str], stamps: dict[str, str]):
    """Name alike what must differ: locations on the exchange, times, random suffixes."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "random_string":
                out[key] = "<random>" if kind == "fs" or item is None else item
            else:
                out[key] = normalize(item, kind, work, exchange, stamps)
        return out
    if isinstance(value, list):
        return [normalize(item, kind, work, exchange, stamps) for item in value]
    if isinstance(value, str):
        for stamp, name in stamps.items():
            value = value.replace(stamp, name)
        for prefix in exchange:
            if value.startswith(prefix):
                name = value.rsplit("/", 1)[-1]
                return "<exchange>" + (f"/{name}" if name.endswith(".ipynb") else "")
        return value.replace(str(work / kind), "<work>")
    return value


def timestamps(record: dict) -> dict[str, str]:
    found = sorted(
        set(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC", json.dumps(record)))
    )
    return {stamp: f"<time {i}>" for i, stamp in enumerate(found)}


@pytest.fixture(scope="module")
def venv() -> Path:
    return build_venv()


def test_list_returns_what_the_filesystem_exchange_returns(venv, tmp_path_factory, tmp_path):
    with running_server(tmp_path_factory.mktemp("ngshare-compare")) as server:
        make_course(server, COURSE, ["inst1"], ["stu1"])
        runner = Person("runner", "", venv, tmp_path / "runner")
        notebooks = {"problem1.ipynb": source_notebook(), "problem2.ipynb": source_notebook()}
        options = {
            "work": str(tmp_path),
            "url": server.url,
            "course": COURSE,
            "tokens": {user: token_for(user) for user in ("inst1", "stu1")},
            "notebooks": notebooks,
        }
        result = runner.python(SCRIPT, json.dumps(options))

    fs_exchange = str(tmp_path / "fs" / "exchange" / COURSE)
    ng_exchange = f"{server.url}/v2/courses/{COURSE}/assignments"
    fs = normalize(result["fs"], "fs", tmp_path, [fs_exchange], timestamps(result["fs"]))
    ng = normalize(result["ng"], "ng", tmp_path, [ng_exchange], timestamps(result["ng"]))
    assert list(fs) == list(ng)
    for stage in fs:
        assert ng[stage] == fs[stage], stage

    # The states the JupyterLab list shows, as nbgrader's exchange has them.
    assert [a["status"] for a in ng["released"]] == ["released"]
    assert [a["status"] for a in ng["fetched"]] == ["fetched"]
    (updated,) = ng["cached_updated"]
    newest = updated["submissions"][-1]
    assert newest["has_local_feedback"] and newest["has_exchange_feedback"]
    assert newest["feedback_updated"] is True
    assert updated["submissions"][0]["has_exchange_feedback"] is False


URL_SCRIPT = r"""
import json, os
from traitlets.config import Config
from nbgrader.exchange.abc import ExchangeError
from ngshare.exchange.base import Exchange

found = {}
for name in ("NGSHARE_URL", "JUPYTERHUB_API_URL", "NGSHARE_SERVICE_NAME"):
    os.environ.pop(name, None)
c = Config()
c.Exchange.ngshare_url = "http://127.0.0.1:1/explicit/"
found["explicit"] = Exchange(config=c).service_url()
os.environ["NGSHARE_URL"] = "http://127.0.0.1:2/from-env"
found["env"] = Exchange().service_url()
del os.environ["NGSHARE_URL"]
os.environ["JUPYTERHUB_API_URL"] = "http://127.0.0.1:8081/prefix/hub/api"
found["hub"] = Exchange().service_url()
c = Config()
c.Exchange.service_name = "share2"
found["hub_named"] = Exchange(config=c).service_url()
del os.environ["JUPYTERHUB_API_URL"]
try:
    Exchange().service_url()
except ExchangeError as exc:
    found["none"] = str(exc)
for bad in ("..", "a/b", ""):
    try:
        Exchange().local_name(bad, "course")
    except ExchangeError as exc:
        found.setdefault("refused", []).append(str(exc))
print(json.dumps(found))
"""


def test_service_url_and_names(venv, tmp_path):
    found = Person("runner", "", venv, tmp_path / "runner").python(URL_SCRIPT)
    assert found == {
        "explicit": "http://127.0.0.1:1/explicit",
        "env": "http://127.0.0.1:2/from-env",
        "hub": "http://127.0.0.1:8081/prefix/services/ngshare",
        "hub_named": "http://127.0.0.1:8081/prefix/services/share2",
        "none": "Cannot find the ngshare service: set c.Exchange.ngshare_url in "
        "nbgrader_config.py or the NGSHARE_URL environment variable",
        "refused": [
            "Refusing to use '..' as a course directory name",
            "Refusing to use 'a/b' as a course directory name",
            "Refusing to use '' as a course directory name",
        ],
    }
