"""Web pages against a real server: each role's pages, refusals, CSRF, escaping, CSV import."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import tarfile
import zipfile
from urllib.parse import quote

import markupsafe
import pytest

from tests.v1util import encode_files, ok
from tests.webutil import XSS, Browser, feedback, flash, release, submit


@pytest.fixture
def browsers(server):
    opened: dict[str, Browser] = {}

    def browser(user: str | None) -> Browser:
        key = user or ""
        if key not in opened:
            opened[key] = Browser(server, user)
        return opened[key]

    yield browser
    for b in opened.values():
        b.close()


@pytest.fixture
def course_with_work(api, course):
    """`course` with ps1 released, stu1 submitted twice (feedback on the first), stu2 never."""
    release(api, course)
    first = submit(api, course, "stu1")
    feedback(api, course, "stu1", first)
    submit(api, course, "stu1", files={"ps1.ipynb": b"second", "extra/data.csv": b"1,2"})
    return course


def test_prefix_redirects_to_the_pages_and_the_api_is_untouched(server, api, browsers):
    anonymous = browsers(None)
    response = anonymous.client.get("/api/")
    assert response.status_code == 302 and response.headers["location"] == "/api/ui/"
    response = anonymous.get("")
    assert response.status_code == 303
    assert response.headers["location"] == "/api/login?next=%2Fapi%2Fui%2F"
    deep = anonymous.get("courses/x/roster?a=1")
    assert deep.headers["location"] == "/api/login?next=%2Fapi%2Fui%2Fcourses%2Fx%2Froster%3Fa%3D1"
    assert ok(api("stu1").get("courses"))  # v1 still answers JSON below the prefix
    assert anonymous.client.get("/api/courses").status_code == 401
    css = anonymous.client.get("/api/static/ngshare.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert anonymous.client.get("/api/static/nope.css").status_code == 404
    assert anonymous.client.get("/api/static/..%2Fpages.py").status_code == 404
    login_form = anonymous.client.get("/api/login")
    assert "/api/static/ngshare.css" in login_form.text


def test_pages_are_locked_down(browsers, course_with_work):
    inst = browsers("inst1")
    for path in ("", f"courses/{course_with_work}", f"courses/{course_with_work}/roster"):
        response = inst.get(path)
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        # no inline script or style, no event handler attributes: the CSP would block them
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text)
        assert not re.search(r"\s(on\w+|style)=", response.text)
        # every form that changes something carries the CSRF token
        forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", response.text, re.S)
        assert forms and all('name="csrf"' in f for f in forms)
        # every visible input has a label
        ids = re.findall(r"<input(?![^>]*type=\"hidden\")[^>]*\bid=\"([^\"]+)\"", response.text)
        inputs = re.findall(r"<input(?![^>]*type=\"hidden\")[^>]*>", response.text)
        assert len(ids) == len(inputs)
        assert all(f'for="{i}"' in response.text for i in ids)


def test_student_sees_own_work_and_feedback_only(api, browsers, course_with_work):
    course = course_with_work
    stu1, stu2 = browsers("stu1"), browsers("stu2")
    home = stu1.page("")
    assert f'href="/api/ui/courses/{course}"' in home
    page = stu1.page(f"courses/{course}")
    assert "ps1" in page and "version 1" in page and "Returned" not in page  # latest has none
    mine = stu1.page(f"courses/{course}/assignments/ps1")
    assert mine.count('<span class="tag">latest</span>') == 1
    assert "extra/data.csv" in mine and "Returned" in mine and "None yet" in mine
    links = re.findall(r'href="(/api/ui/courses/[^"]+/(?:download|feedback)\?format=zip)"', mine)
    assert len(links) == 3  # two submissions, one feedback
    feedback_zip = stu1.client.get(next(x for x in links if "/feedback?" in x))
    assert feedback_zip.status_code == 200
    assert feedback_zip.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(feedback_zip.content)) as archive:
        assert archive.read("stu1/ps1.html") == b"<p>well done</p>"
    # another student's view has none of it, and stu1's downloads are not theirs
    other = stu2.page(f"courses/{course}/assignments/ps1")
    assert "You have not submitted" in other and "extra/data.csv" not in other
    for link in links:
        assert stu2.client.get(link).status_code == 404
    for path in (
        f"courses/{course}/roster",
        f"courses/{course}/assignments/ps1/collect?format=zip",
        f"courses/{course}/assignments/ps1/student?name=stu1",
        "admin",
    ):
        response = stu1.get(path)
        assert response.status_code == 403, path
        assert "Permission denied" in response.text
    assert stu1.get(f"courses/{course}/assignments/nope").status_code == 404
    release_tar = stu1.get(f"courses/{course}/assignments/ps1/release?format=tar")
    with tarfile.open(fileobj=io.BytesIO(release_tar.content)) as archive:
        assert archive.getnames() == ["ps1/ps1.ipynb"]
    assert stu1.get(f"courses/{course}/assignments/ps1/release?format=rar").status_code == 400


def test_instructor_assignment_table_and_downloads(api, browsers, course_with_work):
    course = course_with_work
    inst = browsers("inst1")
    ok(api("inst1").delete(f"student/{course}/stu1"))  # removed, but has submissions
    page = inst.page(f"courses/{course}")
    assert '0 of 1 <span class="muted">(+1 not on roster)</span>' in page and ">v1<" in page
    listed = {c["name"]: c for c in api("inst1").get("v2/courses").json()["courses"]}
    stored = listed[course]["stored_bytes"]
    assert stored > 0 and f'<span title="{stored} bytes">' in page  # what the quota counts
    assert "of the course quota of 214.7 GB" in page  # 200 GiB, the default
    assert 'id="storage"' not in browsers("stu2").page(f"courses/{course}")
    table = inst.page(f"courses/{course}/assignments/ps1")
    rows = re.findall(r"<tr[^>]*>\s*<th scope=\"row\">(.*?)</tr>", table, re.S)
    assert len(rows) == 2
    assert (
        "stu1" in rows[0] and "not on roster" in rows[0] and "On an earlier submission" in rows[0]
    )
    assert ">2<" in rows[0]
    assert "stu2" in rows[1] and "Not submitted" in rows[1]
    latest = re.search(r'href="([^"]+/download\?format=tar)"', rows[0]).group(1)
    with tarfile.open(fileobj=io.BytesIO(inst.client.get(latest).content)) as archive:
        assert sorted(archive.getnames()) == ["stu1/extra/data.csv", "stu1/ps1.ipynb"]
    everything = inst.get(f"courses/{course}/assignments/ps1/collect?format=zip")
    assert "attachment" in everything.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(everything.content)) as archive:
        index = json.loads(archive.read("submissions.json"))
        assert [x["student"] for x in index] == ["stu1"]
        assert archive.read("stu1/ps1.ipynb") == b"second"
    history = inst.page(f"courses/{course}/assignments/ps1/student?name=stu1")
    assert history.count("<tr>") == 3 and "Returned" in history
    assert inst.get(f"courses/{course}/assignments/ps1/student?name=stu2").status_code == 404
    # a withdrawn assignment stays visible to instructors, not to students
    ok(api("inst1").delete(f"assignment/{course}/ps1"))
    assert "Withdrawn" in inst.page(f"courses/{course}")
    assert inst.get(f"courses/{course}/assignments/ps1").status_code == 200
    assert browsers("stu2").get(f"courses/{course}/assignments/ps1").status_code == 404


def test_roster_add_edit_remove(api, browsers, course):
    inst = browsers("inst1")
    roster = f"courses/{course}/roster"
    names = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}
    shown = inst.submit(f"courses/{course}/students/add", {"username": "stu3", **names})
    assert flash(shown) == "Student stu3 added."
    assert ok(api("inst1").get(f"student/{course}/stu3"))["last_name"] == "Lovelace"
    # the flash is shown once
    assert flash(inst.page(roster)) == ""
    edit = inst.page(f"courses/{course}/students/edit?username=stu3")
    assert 'value="Lovelace"' in edit
    shown = inst.submit(
        f"courses/{course}/students/edit", {"username": "stu3", **names, "last_name": "King"}
    )
    assert flash(shown) == "Student stu3 updated."
    assert ok(api("inst1").get(f"student/{course}/stu3"))["last_name"] == "King"
    shown = inst.submit(f"courses/{course}/students/add", {"username": "inst1"})
    assert flash(shown) == "Student inst1 not added: Cannot add instructor as student"
    shown = inst.submit(f"courses/{course}/students/add", {"username": ""})
    assert flash(shown) == "Student  not added: Illegal user name"
    shown = inst.submit(f"courses/{course}/students/remove", {"username": "stu3"})
    assert "removed" in flash(shown)
    assert "stu3" not in [
        s["username"] for s in ok(api("inst1").get(f"students/{course}"))["students"]
    ]
    shown = inst.submit(f"courses/{course}/students/remove", {"username": "stu3"})
    assert flash(shown) == "stu3 is not a student here."
    assert inst.get(f"courses/{course}/students/edit?username=stu3").status_code == 404
    # instructors are managed by admins only
    assert inst.post(f"courses/{course}/instructors/add", {"username": "stu9"}).status_code == 403
    assert "Add an instructor" not in inst.page(roster)


def test_courses_are_isolated(api, browsers, course_with_work):
    course = course_with_work
    other = "other-" + course
    ok(api("admin").post(f"course/{other}", data={"instructors": '["inst2"]'}))
    sub_id = re.search(
        r"/submissions/(\d+)/download",
        browsers("inst1").page(f"courses/{course}/assignments/ps1"),
    ).group(1)
    base = f"courses/{course}/assignments/ps1"
    for user in ("inst2", "outsider"):
        b = browsers(user)
        assert f'href="/api/ui/courses/{course}"' not in b.page("")
        for path in (
            f"courses/{course}",
            f"courses/{course}/roster",
            base,
            f"{base}/collect?format=zip",
            f"{base}/release?format=zip",
            f"{base}/submissions/{sub_id}/download?format=zip",
            f"{base}/submissions/{sub_id}/feedback?format=zip",
        ):
            assert b.get(path).status_code == 403, (user, path)
        response = b.post(f"courses/{course}/students/add", {"username": "intruder"})
        assert response.status_code == 403
    # inst1 cannot reach the other course either, nor its submission through their own course
    inst1 = browsers("inst1")
    assert inst1.get(f"courses/{other}").status_code == 403
    assert inst1.get(f"courses/{other}/roster").status_code == 403
    assert browsers("stu1").get(f"courses/{other}").status_code == 403
    assert inst1.get("courses/no-such-course").status_code == 404
    assert (
        inst1.get(f"courses/{course}/assignments/ps1/submissions/999999/download").status_code
        == 404
    )
    usernames = [s["username"] for s in ok(api("inst1").get(f"students/{course}"))["students"]]
    assert "intruder" not in usernames


def test_csrf_is_required_on_every_form(api, browsers, course):
    inst = browsers("inst1")
    stu = browsers("stu1")
    target = f"courses/{course}/students/add"
    for token in (None, "", "0" * 64, stu.csrf()):
        response = inst.post(target, {"username": "csrf-victim"}, csrf=token)
        assert response.status_code == 403, token
        assert "the form is stale or came from another site" in response.text
    admin = browsers("admin")
    assert admin.post("admin/courses", {"course": "csrf-course"}, csrf=None).status_code == 403
    response = admin.post(f"admin/courses/{course}/delete", {"confirm": course}, csrf="bad")
    assert response.status_code == 403
    assert admin.post("logout", csrf=None).status_code == 403
    # no session at all: sent to log in, nothing done
    response = browsers(None).post(target, {"username": "csrf-victim"}, csrf=None)
    assert response.status_code == 303 and response.headers["location"].startswith("/api/login")
    usernames = [s["username"] for s in ok(api("inst1").get(f"students/{course}"))["students"]]
    assert "csrf-victim" not in usernames
    assert course in ok(api("admin").get("courses"))["courses"]
    assert "csrf-course" not in ok(api("admin").get("courses"))["courses"]


def test_admin_creates_staffs_and_deletes_a_course(api, browsers, course):
    admin = browsers("admin")
    name = course + "-new"
    shown = admin.submit("admin/courses", {"course": name, "instructors": "inst2, inst1"})
    assert flash(shown) == f"Course {name} created."
    assert "Course " + name in shown
    assert ok(api("admin").get(f"instructors/{name}"))["instructors"][0]["username"] == "inst1"
    shown = admin.submit("admin/courses", {"course": name})
    assert flash(shown) == "Course not created: Course already exists"
    assert "Illegal course name" in flash(admin.submit("admin/courses", {"course": "a/b"}))
    roster = f"courses/{name}/roster"
    assert "Add an instructor" in admin.page(roster)
    shown = admin.submit(f"courses/{name}/instructors/add", {"username": "stu1", "first_name": "S"})
    assert flash(shown) == "Instructor stu1 added."
    shown = admin.submit(f"courses/{name}/instructors/remove", {"username": "inst2"})
    assert flash(shown) == "Instructor inst2 removed."
    listed = [i["username"] for i in ok(api("admin").get(f"instructors/{name}"))["instructors"]]
    assert listed == ["inst1", "stu1"]
    overview = admin.page("admin")
    assert f'href="/api/ui/courses/{name}"' in overview and course in overview
    confirm = admin.page(f"admin/courses/{name}/delete")
    assert "cannot be undone" in confirm
    shown = admin.submit(f"admin/courses/{name}/delete", {"confirm": "wrong"})
    assert flash(shown) == "Not deleted: type the course name exactly to confirm."
    assert name in ok(api("admin").get("courses"))["courses"]
    shown = admin.submit(f"admin/courses/{name}/delete", {"confirm": name})
    assert flash(shown) == f"Course {name} deleted."
    assert name not in ok(api("admin").get("courses"))["courses"]
    # only admins
    inst = browsers("inst1")
    assert inst.get("admin").status_code == 403
    assert inst.get(f"admin/courses/{course}/delete").status_code == 403
    assert inst.post(f"admin/courses/{course}/delete", {"confirm": course}).status_code == 403
    assert inst.post("admin/courses", {"course": "by-inst"}).status_code == 403
    assert course in ok(api("admin").get("courses"))["courses"]


def test_names_and_paths_are_escaped(api, browsers, course):
    admin, inst = browsers("admin"), browsers("inst1")
    evil_course = course + XSS[1]
    admin.submit("admin/courses", {"course": evil_course, "instructors": "inst1"})
    evil_assignment = "ps" + XSS[1]
    body = {"files": encode_files({"a": b"1"})}
    quoted = quote(evil_course, safe="")
    ok(api("inst1").post(f"assignment/{quoted}/{quote(evil_assignment, safe='')}", data=body))
    evil_student = XSS[0]
    inst.submit(
        f"courses/{quoted}/students/add",
        {"username": evil_student, "first_name": XSS[1], "last_name": XSS[0], "email": "e@x.org"},
    )
    ok(
        api("inst1").post(
            f"student/{quoted}/stu1", data={"first_name": XSS[0], "last_name": "", "email": ""}
        )
    )
    files = {XSS[0] + ".ipynb": b"x", "d/" + XSS[1]: b"y"}
    ok(
        api("stu1").post(
            f"submission/{quoted}/{quote(evil_assignment, safe='')}",
            data={"files": encode_files(files)},
        )
    )
    a = quote(evil_assignment, safe="")
    pages = [
        admin.page(""),
        admin.page("admin"),
        inst.page(f"courses/{quoted}"),
        inst.page(f"courses/{quoted}/roster"),
        inst.page(f"courses/{quoted}/assignments/{a}"),
        inst.page(f"courses/{quoted}/assignments/{a}/student?name=stu1"),
        inst.page(f"courses/{quoted}/students/edit?username={quote(evil_student)}"),
        browsers("stu1").page(f"courses/{quoted}/assignments/{a}"),
        admin.page(f"admin/courses/{quoted}/delete"),
    ]
    for text in pages:
        for bad in (*XSS, "<img", "<script>"):
            assert bad not in text
    assert escaped(XSS[1]) in pages[2]
    assert escaped(XSS[0]) in pages[3] and escaped(XSS[1]) in pages[3]
    assert escaped(XSS[0] + ".ipynb") in pages[7]
    # the escaped student can be removed through the form like anyone else
    shown = inst.submit(f"courses/{quoted}/students/remove", {"username": evil_student})
    assert escaped(evil_student) in shown and evil_student not in shown
    assert "<script>" not in shown


def escaped(text: str) -> str:
    """How the pages write text: markupsafe escapes & < > " and '."""
    return str(markupsafe.escape(text))


CSV = (
    "\ufeffEmail,last_name,First_Name,student_id,section\n"
    "ann@x.org,Smith,Ann,csv1,A\n"
    "bob@x.org,Jones,Bob,csv2,B\n"
    ",,,,\n"
    "short@x.org,Short,Sam,csv5\n"
    "x@x.org,Dup,Dup,csv1,C\n"
    "i@x.org,Teach,In,inst1,A\n"
    "e@x.org,Empty,Id,,A\n"
    "s@x.org,Two,Stu,stu2,A\n"
)


def test_csv_upload_reports_each_row(api, browsers, course):
    inst = browsers("inst1")
    upload = f"courses/{course}/students/upload"
    response = inst.post(upload, files={"roster": ("class.csv", CSV.encode(), "text/csv")})
    assert response.status_code == 303
    page = inst.client.get(response.headers["location"].split("#")[0]).text
    assert flash(page) == "class.csv: 2 added, 1 updated, 4 not imported."
    report = re.findall(
        r"<tr class=\"outcome-(\w+)\"><td>(\d+)</td><td>(.*?)</td><td>(.*?)</td>", page
    )
    assert [(o, int(r), u, html.unescape(m)) for o, r, u, m in report] == [
        ("added", 2, "csv1", "added"),
        ("added", 3, "csv2", "added"),
        ("skipped", 5, "csv5", "skipped: row has too few columns; skipped"),
        ("skipped", 6, "csv1", "skipped: duplicate of row 2; skipped"),
        ("refused", 7, "inst1", "refused: Cannot add instructor as student"),
        ("skipped", 8, "", "skipped: empty student_id; row skipped"),
        ("updated", 9, "stu2", "updated"),
    ]
    students = {s["username"]: s for s in ok(api("inst1").get(f"students/{course}"))["students"]}
    assert students["csv1"]["first_name"] == "Ann" and students["csv2"]["email"] == "bob@x.org"
    assert students["stu2"]["last_name"] == "Two"
    assert "inst1" not in students
    # an unusable file imports nothing
    response = inst.post(upload, files={"roster": ("bad.csv", b"name,mail\nx,y\n", "text/csv")})
    page = inst.client.get(response.headers["location"].split("#")[0]).text
    assert flash(page) == (
        "bad.csv: the header lacks the column(s) student_id, first_name, last_name, email; "
        "nothing imported."
    )
    response = inst.post(
        upload, files={"roster": ("latin.csv", "student_id\n\xe9".encode("latin-1"), "text/csv")}
    )
    page = inst.client.get(response.headers["location"].split("#")[0]).text
    assert flash(page) == "latin.csv: not UTF-8 text; nothing imported."
    assert (
        browsers("stu1")
        .post(upload, files={"roster": ("c.csv", CSV.encode(), "text/csv")})
        .status_code
        == 403
    )


def test_large_csv_report_fits_in_its_cookie(api, browsers, course):
    inst = browsers("inst1")
    names = [hashlib.sha256(f"{course}{i}".encode()).hexdigest()[:12] for i in range(400)]
    rows = "".join(f"{n},First,Last,{n}@example.org\n" for n in names)
    text = "student_id,first_name,last_name,email\n" + rows + f"{names[1]},Again,Dup,d@x.org\n"
    response = inst.post(
        f"courses/{course}/students/upload",
        files={"roster": ("big.csv", text.encode(), "text/csv")},
    )
    page = inst.client.get(response.headers["location"].split("#")[0]).text
    assert flash(page) == "big.csv: 400 added, 0 updated, 1 not imported."
    assert "duplicate of row 3; skipped" in page
    assert "400 more rows imported without problems are not listed." in page
    assert len(ok(api("inst1").get(f"students/{course}"))["students"]) == 402


def test_logout_ends_the_session(server, browsers):
    b = Browser(server, "stu1")
    try:
        response = b.post("logout")
        assert response.status_code == 303 and response.headers["location"] == "/api/ui/logged-out"
        page = b.client.get("/api/ui/logged-out")
        assert "You are logged out" in page.text
        assert b.get("").status_code == 303
    finally:
        b.close()


def test_activity_page_answers_who_fetched_and_when(api, browsers, course_with_work):
    course = course_with_work["course"] if isinstance(course_with_work, dict) else course_with_work
    ok(api("stu2").get(f"assignment/{course}/ps1"))  # stu2 fetched, never submitted
    page = browsers("inst1").page(f"courses/{course}/activity?student=stu2&action=fetch")
    assert "<td>fetch</td>" in page and "<td>stu2</td>" in page
    everything = browsers("inst1").page(f"courses/{course}/activity")
    assert "submit" in everything and "feedback release" in everything
    csv_text = browsers("inst1").get(f"courses/{course}/activity.csv?student=stu2").text
    assert csv_text.splitlines()[0].startswith("at,course,action,actor")
    assert all(",stu2," in line for line in csv_text.splitlines()[1:])
    assert browsers("stu1").get(f"courses/{course}/activity").status_code == 403
