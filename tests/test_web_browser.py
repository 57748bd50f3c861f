"""The web pages in a real headless browser (Playwright driving Debian's chromium).

Each role logs in through the login form and does its tasks by clicking and
typing; the tests check what other roles must not see, that a script
injected through names never runs, and that the pages work from the
keyboard. Screenshots of the main pages are taken along the way; set
NGSHARE_SCREENSHOTS=docs/screenshots to refresh the ones in the docs.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.servers import ServerProcess, token_for, write_token_file
from tests.v1util import encode_files, ok
from tests.webutil import VIEWPORT, chromium_browser

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral]

pytest.importorskip("playwright.sync_api")

COURSE = "cs101"
ROSTER_CSV = (
    "student_id,first_name,last_name,email,section\n"
    "stu1,Ada,Lovelace,ada@example.org,A\n"
    "stu2,Alan,Turing,alan@example.org,A\n"
    "stu3,Grace,Hopper,grace@example.org,B\n"
    "stu4,Edsger,Dijkstra,edsger@example.org,B\n"
    "stu5,Barbara,Liskov,barbara@example.org,B\n"
    "stu6,Donald\n"
    "inst1,Ines,Tructor,ines@example.org,A\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own, so the pages (and screenshots) show only this module's courses."""
    data_dir = tmp_path_factory.mktemp("ngshare-web")
    tokens = write_token_file(data_dir / "tokens.json")
    proc = ServerProcess(data_dir, ["--token-file", str(tokens), "--admins", "admin"])
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def chromium():
    yield from chromium_browser()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("NGSHARE_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Session:
    """One user's browser window, logged in through the form, failing on any script alert."""

    def __init__(self, chromium, site: ServerProcess, user: str) -> None:
        self.site = site
        self.context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.page = self.context.new_page()
        self.alerts: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{site.root}/api/")  # -> pages -> login form
        self.page.get_by_label("Your API token").fill(token_for(user))
        self.page.get_by_label("Your API token").press("Enter")
        self.page.wait_for_url("**/api/ui/")

    def _dialog(self, dialog) -> None:
        if dialog.type == "confirm":
            dialog.accept()
        else:
            self.alerts.append(dialog.message)
            dialog.dismiss()

    def click(self, locator) -> None:
        """Click something that loads another page (a link, or a form's button), and wait for it."""
        with self.page.expect_navigation():
            locator.click()

    def press(self, key: str) -> None:
        with self.page.expect_navigation():
            self.page.keyboard.press(key)

    def open(self, path: str) -> None:
        self.page.goto(f"{self.site.root}/api/ui/{path}")

    def flash(self) -> str:
        return self.page.locator(".flash p").first.inner_text()

    def close(self) -> None:
        assert self.alerts == [], f"a script ran: {self.alerts}"
        assert self.errors == [], self.errors
        self.context.close()


@pytest.fixture(scope="module")
def login(chromium, site):
    opened: list[Session] = []

    def open_session(user: str) -> Session:
        session = Session(chromium, site, user)
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


@pytest.fixture(scope="module")
def v1(site):
    import httpx

    clients: dict[str, httpx.Client] = {}

    def client(user: str) -> httpx.Client:
        if user not in clients:
            clients[user] = httpx.Client(
                base_url=site.url + "/", headers={"Authorization": f"token {token_for(user)}"}
            )
        return clients[user]

    yield client
    for c in clients.values():
        c.close()


def test_admin_creates_a_course_and_sets_its_instructors(login, shots, v1):
    admin = login("admin")
    page = admin.page
    admin.click(page.get_by_role("link", name="All courses (admin)"))
    page.get_by_label("Course name").fill(COURSE)
    page.get_by_label("Instructors", exact=True).fill("inst1 inst2")
    admin.click(page.get_by_role("button", name="Create course"))
    assert admin.flash() == f"Course {COURSE} created."
    assert page.get_by_role("heading", level=1).inner_text() == f"Course {COURSE}"
    # a second course to show, and to delete
    admin.click(page.get_by_role("link", name="All courses (admin)"))
    page.get_by_label("Course name").fill("math200")
    admin.click(page.get_by_role("button", name="Create course"))
    admin.click(page.get_by_role("link", name="All courses (admin)"))
    admin.click(page.get_by_role("link", name=f"Set the instructors of {COURSE}"))
    page.locator("#i-username").fill("inst9")
    page.locator("#i-first").fill("Ines")
    admin.click(page.get_by_role("button", name="Add instructor"))
    assert admin.flash() == "Instructor inst9 added."
    admin.click(page.get_by_role("button", name="Remove instructor inst2"))  # confirm accepted
    assert admin.flash() == "Instructor inst2 removed."
    admin.click(page.get_by_role("button", name="Remove instructor inst9"))
    instructors = [
        i["username"] for i in ok(v1("admin").get(f"instructors/{COURSE}"))["instructors"]
    ]
    assert instructors == ["inst1"]
    # delete math200 after typing its name
    admin.click(page.get_by_role("link", name="All courses (admin)"))
    admin.click(page.get_by_role("link", name="Delete math200"))
    page.get_by_label("Type the course name to confirm").fill("math20")
    admin.click(page.get_by_role("button", name="Delete this course"))
    assert admin.flash() == "Not deleted: type the course name exactly to confirm."
    page.get_by_label("Type the course name to confirm").fill("math200")
    admin.click(page.get_by_role("button", name="Delete this course"))
    assert admin.flash() == "Course math200 deleted."
    assert ok(v1("admin").get("courses"))["courses"] == [COURSE]
    # a course to show next to cs101
    page.get_by_label("Course name").fill("phys150")
    page.get_by_label("Instructors", exact=True).fill("inst2")
    admin.click(page.get_by_role("button", name="Create course"))
    admin.click(page.get_by_role("link", name="All courses (admin)"))
    page.screenshot(path=shots / "admin-courses.png")


def test_instructor_keeps_the_roster(login, shots, v1):
    inst = login("inst1")
    page = inst.page
    inst.click(page.get_by_role("link", name=COURSE, exact=True))
    inst.click(page.get_by_role("link", name="Roster"))
    page.locator("#roster-file").set_input_files(
        files=[{"name": "cs101.csv", "mimeType": "text/csv", "buffer": ROSTER_CSV.encode()}]
    )
    inst.click(page.get_by_role("button", name="Upload and import"))
    assert inst.flash() == "cs101.csv: 5 added, 0 updated, 2 not imported."
    report = page.locator(".flash table.report tbody tr")
    assert report.count() == 7
    assert report.nth(5).inner_text().split("\t") == [
        "7",
        "stu6",
        "skipped: row has too few columns; skipped",
    ]
    page.screenshot(path=shots / "instructor-roster.png")
    # add, edit, remove one student by hand
    page.locator("#s-username").fill("stu7")
    page.locator("#s-first").fill("Kristen")
    page.locator("#s-last").fill("Nygard")
    inst.click(page.get_by_role("button", name="Add student"))
    assert inst.flash() == "Student stu7 added."
    inst.click(page.get_by_role("link", name="Edit student stu7"))
    page.get_by_label("Last name").fill("Nygaard")
    inst.click(page.get_by_role("button", name="Save"))
    assert inst.flash() == "Student stu7 updated."
    assert ok(v1("inst1").get(f"student/{COURSE}/stu7"))["last_name"] == "Nygaard"
    inst.click(page.get_by_role("button", name="Remove student stu7"))
    assert "removed from the roster" in inst.flash()
    students = [s["username"] for s in ok(v1("inst1").get(f"students/{COURSE}"))["students"]]
    assert students == ["stu1", "stu2", "stu3", "stu4", "stu5"]
    assert page.get_by_label("Filter students").is_hidden()  # only for longer tables
    # instructors cannot manage instructors, nor reach the admin pages
    assert page.get_by_role("button", name="Add instructor").count() == 0
    assert page.get_by_role("link", name="All courses (admin)").count() == 0
    inst.open("admin")
    assert page.get_by_role("heading", level=1).inner_text() == "Permission denied"


def test_instructor_sees_every_student_and_downloads(login, shots, v1):
    files = {"ps1.ipynb": b'{"cells": []}', "data/input.csv": b"1,2,3\n"}
    ok(v1("inst1").post(f"assignment/{COURSE}/ps1", data={"files": encode_files(files)}))
    ok(v1("inst1").delete(f"assignment/{COURSE}/ps1"))  # release again: version 2
    ok(v1("inst1").post(f"assignment/{COURSE}/ps1", data={"files": encode_files(files)}))
    ok(v1("inst1").post(f"assignment/{COURSE}/ps2", data={"files": encode_files(files)}))
    # a deadline tomorrow at 17:00 in Paris, and two more days for stu2 (docs/policies.md)
    due = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d 17:00")
    policy = {"due_at": due, "timezone": "Europe/Paris", "max_submissions": 5}
    v1("inst1").patch(f"v2/courses/{COURSE}/assignments/ps1/settings", json=policy)
    v1("inst1").put(
        f"v2/courses/{COURSE}/assignments/ps1/extensions/stu2", json={"extra_seconds": 172800}
    ).raise_for_status()
    stamps = {}
    for student in ("stu1", "stu2", "stu1", "stu3", "outsider"):
        body = {"files": encode_files({"ps1.ipynb": f"by {student}".encode()})}
        response = v1(student).post(f"submission/{COURSE}/ps1", data=body)
        stamps.setdefault(student, []).append(response.json().get("timestamp"))
    assert stamps["outsider"] == [None]  # not in the course: refused
    body = {"timestamp": stamps["stu1"][1], "files": encode_files({"ps1.html": b"<p>Good</p>"})}
    ok(v1("inst1").post(f"feedback/{COURSE}/ps1/stu1", data=body))
    body = {"timestamp": stamps["stu2"][0], "files": encode_files({"ps1.html": b"<p>Ok</p>"})}
    ok(v1("inst1").post(f"feedback/{COURSE}/ps1/stu2", data=body))
    ok(v1("inst1").delete(f"student/{COURSE}/stu3"))  # removed; the submission stays

    inst = login("inst1")
    page = inst.page
    inst.click(page.get_by_role("link", name=COURSE, exact=True))
    row = page.locator("table.data tbody tr").first
    assert "version 2" in row.inner_text() and "v1, v2" in row.inner_text()
    page.screenshot(path=shots / "instructor-course.png")
    inst.click(page.get_by_role("link", name="ps1", exact=True))
    rows = page.locator("#submissions-table tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert [t.split()[0] for t in texts] == ["stu1", "stu2", "stu3", "stu4", "stu5"]
    assert "Returned" in texts[0] and "2\t" in texts[0]
    assert "None yet" not in texts[1] and "Returned" in texts[1]
    assert "not on roster" in texts[2] and "None yet" in texts[2]
    assert "Not submitted" in texts[3]
    page.screenshot(path=shots / "instructor-assignment.png")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the latest submission of stu1 as zip").click()
    with zipfile.ZipFile(info.value.path()) as archive:
        assert archive.read("stu1/ps1.ipynb") == b"by stu1"
    assert info.value.suggested_filename.startswith("ps1-stu1-")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download every student's latest submission as zip").click()
    with zipfile.ZipFile(info.value.path()) as archive:
        index = json.loads(archive.read("submissions.json"))
        assert sorted(x["student"] for x in index) == ["stu1", "stu2", "stu3"]
    inst.click(page.get_by_role("link", name="Submissions of stu1"))
    assert page.locator("table.data tbody tr").count() == 2


def test_student_sees_own_work_and_nothing_else(login, shots):
    stu = login("stu1")
    page = stu.page
    assert page.get_by_role("link", name=COURSE, exact=True).count() == 1
    assert page.get_by_role("link", name="phys150").count() == 0
    stu.click(page.get_by_role("link", name=COURSE, exact=True))
    assert page.get_by_role("link", name="Roster").count() == 0
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 2
    assert "version 2" in rows.first.inner_text() and "Returned" in rows.first.inner_text()
    page.screenshot(path=shots / "student-course.png")
    stu.click(page.get_by_role("link", name="ps1", exact=True))
    subs = page.locator("table.data tbody tr")
    assert subs.count() == 2
    assert "Returned" in subs.first.inner_text() and "None yet" in subs.nth(1).inner_text()
    page.get_by_text("1 file,", exact=False).first.click()  # open the file list
    page.screenshot(path=shots / "student-assignment.png")
    feedback_link = page.get_by_role("link", name="feedback on the submission").first
    assert feedback_link.get_attribute("aria-label").endswith("as zip")
    with page.expect_download() as info:
        feedback_link.click()
    with zipfile.ZipFile(info.value.path()) as archive:
        assert archive.read("stu1/ps1.html") == b"<p>Good</p>"
    # what others may see is not reachable by typing the address either
    for path, status in (
        (f"courses/{COURSE}/roster", "Permission denied"),
        (f"courses/{COURSE}/assignments/ps1/student?name=stu2", "Permission denied"),
        ("courses/phys150", "Permission denied"),
        ("admin", "Permission denied"),
        ("courses/nope", "Not found"),
    ):
        stu.open(path)
        assert page.get_by_role("heading", level=1).inner_text() == status, path
    page_html = page.content()
    assert "stu2" not in page_html


def test_student_of_another_course_sees_nothing(login):
    other = login("stu9")
    page = other.page
    assert "not on the roster of any course" in page.locator("main").inner_text()
    other.open(f"courses/{COURSE}/assignments/ps1")
    assert page.get_by_role("heading", level=1).inner_text() == "Permission denied"
    inst2 = login("inst2")  # removed from cs101 by the admin; teaches phys150
    assert inst2.page.get_by_role("link", name=COURSE, exact=True).count() == 0
    inst2.open(f"courses/{COURSE}/roster")
    assert inst2.page.get_by_role("heading", level=1).inner_text() == "Permission denied"


def test_injected_names_never_run(login, v1):
    evil = '"><img src=x onerror=alert(1)>'
    admin = login("admin")
    page = admin.page
    admin.click(page.get_by_role("link", name="All courses (admin)"))
    page.get_by_label("Course name").fill("x" + evil)
    page.get_by_label("Instructors", exact=True).fill("inst1")
    admin.click(page.get_by_role("button", name="Create course"))
    assert admin.flash() == f"Course x{evil} created."
    assert page.get_by_role("heading", level=1).inner_text() == f"Course x{evil}"
    admin.click(page.get_by_role("link", name="Roster"))
    page.locator("#s-username").fill("<script>alert(1)</script>")
    page.locator("#s-first").fill(evil)
    admin.click(page.get_by_role("button", name="Add student"))
    assert admin.flash() == "Student <script>alert(1)</script> added."
    cell = page.locator("#students-table tbody tr").first
    assert cell.locator("th").inner_text() == "<script>alert(1)</script>"
    assert page.locator("img").count() == 0
    admin.click(page.get_by_role("link", name="All courses (admin)"))
    assert page.locator("img").count() == 0
    admin.click(page.get_by_role("link", name=f"Delete x{evil}"))
    page.get_by_label("Type the course name to confirm").fill("x" + evil)
    admin.click(page.get_by_role("button", name="Delete this course"))
    assert admin.flash() == f"Course x{evil} deleted."
    # Session.close() fails the test if any alert() ran


def test_keyboard_only(login, v1):
    more = [
        {"username": f"stu{i}", "first_name": "F", "last_name": f"L{i}", "email": ""}
        for i in range(20, 28)
    ]
    ok(v1("inst1").post(f"students/{COURSE}", data={"students": json.dumps(more)}))
    inst = login("inst1")
    page = inst.page
    inst.open(f"courses/{COURSE}/roster")
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.inner_text() == "Skip to main content"
    outline = skip.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Tab from the top of the page reaches the add-student form, in order
    seen = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.textContent")
        seen.append(focused.strip())
        if focused == "s-username":
            break
    assert "s-username" in seen, seen
    assert seen.index("Roster") < seen.index("s-username")
    # a longer table gets a filter box, which narrows it as one types
    filter_box = page.get_by_label("Filter students")
    filter_box.fill("liskov")
    visible = page.locator("#students-table tbody tr:visible")
    assert visible.count() == 1 and "stu5" in visible.inner_text()
    filter_box.fill("")
    page.locator("#s-username").focus()
    page.keyboard.type("stu8")
    page.keyboard.press("Tab")
    page.keyboard.type("Frances")
    inst.press("Enter")
    assert inst.flash() == "Student stu8 added."
    # a removal from the keyboard asks first (the dialog is accepted)
    button = page.get_by_role("button", name="Remove student stu8")
    button.focus()
    inst.press("Enter")
    assert "removed from the roster" in inst.flash()
