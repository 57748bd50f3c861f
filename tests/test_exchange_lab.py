"""JupyterLab's nbgrader extensions (Assignments tab, formgrader) through our exchange plugin.

Real software end to end: a real `ngshare serve` process (token-file
authentication, each person with a real token the server checks), and two
real `jupyter lab` servers from the nbgrader virtualenv (tests/nbgrader_env.py;
nbgrader 0.9.6 depends on `jupyterlab>=4,<5` and ships its Lab extensions and
server extensions, so that virtualenv already is a complete JupyterLab and no
second one is built). Each Lab runs as one person, in an own HOME and
notebook directory holding an nbgrader_config.py that calls
`ngshare.exchange.configure(c, url=...)`, with the environment a JupyterHub
single-user server would give it (JUPYTERHUB_USER, and the token in
NGSHARE_TOKEN). No Hub: the plugin sees nothing from a Hub beyond those
variables (tests/test_jupyterhub.py covers the Hub itself).

The instructor prepares ps1 with the real nbgrader CLI (generate_assignment,
release_assignment). Then, in Debian's chromium driven by Playwright:

- the student opens JupyterLab, opens Nbgrader > Assignment List, clicks
  Fetch on ps1 (the notebook arrives in the student's directory), answers it,
  clicks Submit, and sees the submission under "Submitted assignments";
- the service holds that submission (v2 API, read as the instructor);
- the instructor opens JupyterLab, opens Nbgrader > Formgrader, sees ps1 as
  released, clicks its Collect button, and the Manage Submissions page of ps1
  lists stu1.

Set NGSHARE_SCREENSHOTS=docs/screenshots to save the screenshots there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.exchange_util import (
    RIGHT,
    answer,
    api,
    build_venv,
    instructor,
    make_course,
    ok,
    person,
    running_server,
    write_source,
)
from tests.nbgrader_env import Person
from tests.servers import free_port
from tests.webutil import VIEWPORT, chromium_browser

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral, pytest.mark.timeout(600)]

pytest.importorskip("playwright.sync_api")

COURSE = "lab101"
PS = "ps1"
NB = "problem1.ipynb"
UI_TIMEOUT = 60_000  # ms; the first Lab page load compiles nothing but fetches a lot


class Lab:
    """`jupyter lab` run as one person, from their HOME, on a loopback port of its own."""

    def __init__(self, who: Person, server_url: str) -> None:
        self.who = who
        self.port = free_port()
        self.token = f"lab-{who.name}-" + os.urandom(8).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        # No "official Jupyter news?" toast over the pages (a user setting, in this HOME).
        settings = who.home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}\n')
        env = who.environment()
        env.pop("JUPYTERHUB_API_TOKEN", None)
        env.update(NGSHARE_URL=server_url, NGSHARE_TOKEN=who.token)
        self.log_path = who.home.parent / f"lab-{who.name}.log"
        self._log = self.log_path.open("wb")
        command = [
            str(who.venv / "bin" / "jupyter"), "lab",
            "--no-browser", "--ip", "127.0.0.1", "--port", str(self.port),
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={who.home}",
            "--ServerApp.port_retries=0",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip
        if os.geteuid() == 0:
            command.append("--allow-root")  # a container's root; Lab refuses it otherwise
        self.process = subprocess.Popen(
            command,
            cwd=who.home,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log()}")
            try:
                status = httpx.get(
                    f"{self.url}/api/status", params={"token": self.token}, timeout=2
                )
                if status.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"jupyter lab not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: Lab and its kernels
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def venv() -> Path:
    venv = build_venv()
    if not (venv / "bin" / "jupyter-lab").exists():
        pytest.fail(f"{venv} has no jupyter-lab (nbgrader 0.9.6 should have pulled in jupyterlab)")
    return venv


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("ngshare-lab")) as proc:
        yield proc


@pytest.fixture(scope="module")
def chromium():
    yield from chromium_browser()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("NGSHARE_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def labs() -> Iterator[list[Lab]]:
    started: list[Lab] = []
    yield started
    for lab in started:
        lab.stop()


def open_lab(chromium, lab: Lab, errors: list[str]):
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{lab.url}/lab?token={lab.token}")
    page.locator("#jp-main-dock-panel").wait_for()
    return context, page


def nbgrader_menu(page, item: str) -> None:
    """Open a command through the menu bar: Nbgrader > item."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def test_student_fetches_and_submits_in_lab_instructor_collects_in_formgrader(
    venv, server, chromium, shots, labs, tmp_path
):
    make_course(server, COURSE, ["inst1"], ["stu1"])
    homes = tmp_path / "home"
    inst = instructor(venv, server, homes, "inst1", COURSE)
    stu1 = person(venv, server, homes, "stu1", None)
    write_source(inst, PS)
    ok(inst, "generate_assignment", PS)
    ok(inst, "release_assignment", PS)

    student_lab, instructor_lab = Lab(stu1, server.url), Lab(inst, server.url)
    labs.extend([student_lab, instructor_lab])
    for lab in labs:
        lab.wait_ready()
    errors: list[str] = []

    # The student: Assignments tab, Fetch, Submit.
    context, page = open_lab(chromium, student_lab, errors)
    nbgrader_menu(page, "Assignment List")
    released = page.locator("#released_assignments_list")
    row = released.locator(".list_item", has_text=PS)
    row.get_by_role("button", name="Fetch").wait_for()
    assert COURSE in row.inner_text()
    page.screenshot(path=shots / "lab-student-assignments.png")
    row.get_by_role("button", name="Fetch").click()
    fetched = page.locator("#fetched_assignments_list").locator(".list_item", has_text=PS)
    fetched.get_by_role("button", name="Submit").wait_for()
    notebook = stu1.home / PS / NB
    release_copy = inst.home / "course" / "release" / PS / NB
    assert notebook.read_bytes() == release_copy.read_bytes()
    answer(notebook, RIGHT)
    fetched.get_by_role("button", name="Submit").click()
    submitted = page.locator("#submitted_assignments_list").locator(".list_item", has_text=PS)
    submitted.first.wait_for()
    student_sees = page.locator("#submitted_assignments_list").inner_text()
    page.screenshot(path=shots / "lab-student-submitted.png")
    context.close()

    # The service holds it.
    with api(server, "inst1") as inst_api:
        (submission,) = inst_api.submissions(COURSE, PS)
    assert submission["student"] == "stu1", submission

    # The instructor: formgrader inside Lab, Collect, Manage Submissions.
    context, page = open_lab(chromium, instructor_lab, errors)
    nbgrader_menu(page, "Formgrader")
    frame = page.frame_locator("iframe").first
    ps_row = frame.locator("tr", has_text=PS)
    ps_row.locator(".status", has_text="released").wait_for()
    ps_row.locator(".collect a").click()
    frame.get_by_text(f"Successfully collected submissions of '{PS}'").wait_for()
    frame.locator("#success-modal .modal-footer button", has_text="OK").click()
    frame.locator("#success-modal").wait_for(state="detached")
    collected = inst.home / "course" / "submitted" / "stu1" / PS
    assert (collected / NB).read_bytes() == notebook.read_bytes()
    stamp = (collected / "timestamp.txt").read_text()
    assert stamp in student_sees, (stamp, student_sees)  # the one the student submitted
    frame.locator("tr", has_text=PS).locator(".num-submissions a", has_text="1").click()
    frame.get_by_role("heading", name="Manage Submissions").wait_for()
    student_row = frame.locator("tbody tr", has_text="stu1")
    student_row.wait_for()
    assert "needs autograding" in student_row.inner_text()
    assert frame.locator("tbody tr").count() == 1
    student_row.scroll_into_view_if_needed()
    page.screenshot(path=shots / "lab-formgrader-submissions.png")
    context.close()

    assert errors == [], errors
    for lab in labs:
        assert "Traceback" not in lab.log(), lab.log()
