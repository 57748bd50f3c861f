"""nbgrader list: released assignments, submissions (--inbound), the local cache (--cached).

The dicts returned are those of nbgrader's filesystem exchange, key for key,
so the JupyterLab assignment list and formgrader show the right state. Paths
of things that live on the service (a released assignment not yet fetched, a
submission listed with --inbound) are the service's URLs of them.

Requests: one for the caller's courses (only when no course is configured),
one per course for its assignments, and one per assignment for all of its
submissions with their files and feedback; never one per submission.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
from urllib.parse import quote

from nbgrader.exchange.abc import ExchangeList as ABCExchangeList

from ngshare.client import ClientError
from ngshare.exchange.base import SECRET_FILE, Exchange, file_sha256, manifest_sha, secret_sha256

CACHED = re.compile(
    r".*/(?P<course_id>.*)/(?P<student_id>.*)\+(?P<assignment_id>.*)\+(?P<timestamp>.*)"
)
INSTRUCTOR_ROLES = ("instructor", "admin")


def _q(value: str) -> str:
    return quote(value, safe="")


def top_notebooks(paths: list[str]) -> list[str]:
    """The top-level `*.ipynb` of a tree (what `glob(path/*.ipynb)` finds), sorted."""
    return sorted(p for p in paths if "/" not in p and fnmatch.fnmatch(p, "*.ipynb"))


class ExchangeList(Exchange, ABCExchangeList):
    def init_src(self):
        pass

    def init_dest(self):
        pass

    def copy_files(self):
        pass

    # Which courses and assignments

    def wanted(self, value: str) -> str:
        return value if value else "*"

    def courses(self, instructor: bool) -> list[str]:
        course = self.coursedir.course_id
        if course and not glob.has_magic(course):
            return [course]
        mine = self.my_courses()
        return sorted(
            name
            for name, role in mine.items()
            if fnmatch.fnmatchcase(name, self.wanted(course))
            and (not instructor or role in INSTRUCTOR_ROLES)
        )

    def allowed_courses(self) -> set[str] | None:
        """The authenticator's say (nbgrader's own course filter), as the filesystem exchange."""
        if self.authenticator is None or not self.coursedir.student_id:
            return None
        courses = self.authenticator.get_student_courses(self.coursedir.student_id)
        return None if courses is None else set(courses)

    def assignments_of(self, course: str) -> list[dict]:
        pattern = self.wanted(self.coursedir.assignment_id)
        with self.attempt(f"list the assignments of course {course}", course):
            listed = self.client.assignments(course)
        return [a for a in listed if fnmatch.fnmatchcase(a["name"], pattern)]

    def local_dir(self, course: str, assignment: str) -> str:
        if self.path_includes_course:
            return os.path.join(self.assignment_dir, course, assignment)
        return os.path.join(self.assignment_dir, assignment)

    def service_path(self, course: str, assignment: str, *rest: str) -> str:
        base = f"{self.service_url()}/v2/courses/{_q(course)}/assignments/{_q(assignment)}"
        return "/".join([base, *(_q(part) for part in rest)])

    # Released assignments

    def list_outbound(self) -> list[dict]:
        allowed = self.allowed_courses()
        found = []
        for course in self.courses(instructor=False):
            if allowed is not None and course not in allowed:
                continue
            for item in self.assignments_of(course):
                info = self.outbound_info(course, item["name"])
                self.add_policy(info, item)
                found.append(info)
        return sorted(found, key=lambda info: (info["course_id"], info["assignment_id"]))

    @staticmethod
    def add_policy(info: dict, item: dict) -> None:
        """The deadline and the caller's standing (docs/policies.md).

        Key `ngshare` (due, state, status, ...) only for assignments with a policy
        (a deadline, a limit, closed, solutions), so the others keep exactly the
        filesystem exchange's keys; `notes` feed the `nbgrader list` line."""
        me = item.get("me") or {}
        notes = []
        if item.get("due"):
            notes.append(f"due {me.get('due') or item['due']}")
            if me:
                notes.append(me["status_text"])
        if item.get("effective_state") in ("draft", "scheduled", "closed", "archived"):
            notes.append(item["effective_state"])
        if me.get("remaining") is not None:
            notes.append(f"{me['remaining']} submissions left")
        if me.get("newer_version"):
            notes.append(f"version {item['version']} released since your submission")
        if me.get("feedback") in ("new", "updated"):
            notes.append(f"{me['feedback']} feedback")
        if me.get("solutions_available"):
            notes.append("solutions available")
        info["_notes"] = notes
        has_policy = (
            item.get("due")
            or item.get("effective_state") not in (None, "released")
            or item.get("max_submissions")
            or item.get("solutions") not in (None, "none")
        )
        if has_policy:
            info["ngshare"] = {
                "state": item.get("effective_state"),
                "due": item.get("due"),
                "due_at": item.get("due_at"),
                "late_window_seconds": item.get("late_window_seconds"),
                "max_submissions": item.get("max_submissions"),
                **({"me": me} if me else {}),
            }

    def outbound_info(self, course: str, assignment: str) -> dict:
        info: dict = {"course_id": course, "assignment_id": assignment}
        local = self.local_dir(course, assignment)
        if os.path.exists(local):
            info["status"] = "fetched"
            info["path"] = os.path.abspath(local)
            notebooks = sorted(glob.glob(os.path.join(glob.escape(info["path"]), "*.ipynb")))
            notebooks = [os.path.abspath(nb) for nb in notebooks]
        else:
            info["status"] = "released"
            info["path"] = self.service_path(course, assignment)
            with self.attempt(f"read {assignment} of course {course}", course):
                files = self.client.assignment(course, assignment)["files"]
            notebooks = [f"{info['path']}/{nb}" for nb in top_notebooks([f["path"] for f in files])]
        if self.remove:
            info["status"] = "removed"
        if not notebooks:
            self.log.warning("No notebooks found in %s", info["path"])
        info["notebooks"] = [
            {"notebook_id": os.path.splitext(nb.rsplit("/", 1)[-1])[0], "path": nb}
            for nb in notebooks
        ]
        return info

    # Submissions

    def list_inbound(self) -> list[dict]:
        allowed = self.allowed_courses()
        student_pattern = self.wanted(self.coursedir.student_id)
        found = []
        if self.coursedir.course_id and not glob.has_magic(self.coursedir.course_id):
            courses = [self.coursedir.course_id]
        else:
            courses = self.courses(instructor=True)
        for course in courses:
            if allowed is not None and course not in allowed:
                continue
            for item in self.assignments_of(course):
                assignment = item["name"]
                action = f"list the submissions of {assignment} in course {course}"
                with self.attempt(action, course):
                    submissions = self.client.submissions(course, assignment, files=True)
                for submission in submissions:
                    if not fnmatch.fnmatchcase(submission["student"], student_pattern):
                        continue
                    found.append(self.inbound_info(course, assignment, submission))
        return found

    def inbound_info(self, course: str, assignment: str, submission: dict) -> dict:
        student = submission["student"]
        path = self.service_path(course, assignment, "submissions", student, str(submission["id"]))
        info = {
            "course_id": course,
            "student_id": student,
            "assignment_id": assignment,
            "timestamp": self.local_timestamp(submission["timestamp"]),
            "random_string": None,
            "status": "removed" if self.remove else "submitted",
            "path": path,
        }
        notebooks = top_notebooks([f["path"] for f in submission.get("files", [])])
        self.add_notebooks(info, [(nb, f"{path}/{nb}") for nb in notebooks], submission)
        return info

    def list_cached(self) -> list[dict]:
        allowed = self.allowed_courses()
        pattern = os.path.join(
            glob.escape(self.cache),
            self.wanted(self.coursedir.course_id),
            f"{self.wanted(self.coursedir.student_id)}+{self.wanted(self.coursedir.assignment_id)}+*",
        )
        entries = []
        for path in sorted(glob.glob(pattern)):
            match = CACHED.match(path)
            if match is None:
                self.log.error("Could not match '%s' with the cache layout", path)
                continue
            info = match.groupdict()
            if allowed is not None and info["course_id"] not in allowed:
                continue
            entries.append((path, info))
        remote = self.remote_submissions(
            {(i["course_id"], i["assignment_id"], i["student_id"]) for _p, i in entries}
        )
        found = []
        for path, info in entries:
            info["status"] = "removed" if self.remove else "submitted"
            info["path"] = path
            key = (info["course_id"], info["assignment_id"], info["student_id"])
            submission = self.match_cached(path, info["timestamp"], remote.get(key, []))
            notebooks = sorted(glob.glob(os.path.join(glob.escape(path), "*.ipynb")))
            self.add_notebooks(
                info, [(os.path.basename(nb), os.path.abspath(nb)) for nb in notebooks], submission
            )
            found.append(info)
        return found

    def remote_submissions(self, keys: set[tuple[str, str, str]]) -> dict:
        """The service's submissions with feedback state: one request per assignment."""
        remote: dict = {}
        if self.remove:
            return remote
        for course, assignment, student in sorted(keys):
            try:
                remote[(course, assignment, student)] = self.client.student_submissions(
                    course, assignment, student, files=True
                )
            except ClientError as exc:
                if exc.status not in (403, 404):
                    raise
                self.log.debug(
                    "No submissions of %s/%s on the service: %s", course, assignment, exc
                )
        return remote

    def match_cached(self, path: str, timestamp: str, submissions: list[dict]) -> dict | None:
        secret = secret_sha256(path)
        if secret is not None:
            for item in submissions:
                if manifest_sha(item.get("files", []), SECRET_FILE) == secret:
                    return item
        for item in submissions:
            if self.same_time(timestamp, item["timestamp"]):
                return item
        return None

    def add_notebooks(self, info: dict, notebooks: list[tuple[str, str]], submission) -> None:
        """The per-notebook and per-submission feedback state, as nbgrader computes it."""
        local_dir = self.local_dir(info["course_id"], info["assignment_id"])
        feedback = (submission or {}).get("feedback") or {}
        exchange_files = {f["path"]: f["sha256"] for f in feedback.get("files", [])}
        info["notebooks"] = []
        if not notebooks:
            self.log.warning("No notebooks found in %s", info["path"])
        for filename, nb_path in notebooks:
            nb_info = {"notebook_id": os.path.splitext(filename)[0], "path": nb_path}
            if info["status"] != "submitted":
                info["notebooks"].append(nb_info)
                continue
            html = f"{nb_info['notebook_id']}.html"
            local_feedback = os.path.join(local_dir, "feedback", info["timestamp"], html)
            has_local = os.path.isfile(local_feedback)
            has_exchange = html in exchange_files
            nb_info["has_local_feedback"] = has_local
            nb_info["has_exchange_feedback"] = has_exchange
            nb_info["local_feedback_path"] = local_feedback if has_local else None
            nb_info["feedback_updated"] = bool(
                has_local and has_exchange and file_sha256(local_feedback) != exchange_files[html]
            )
            info["notebooks"].append(nb_info)
        if info["status"] != "submitted":
            return
        books = info["notebooks"]
        info["has_local_feedback"] = bool(books) and all(nb["has_local_feedback"] for nb in books)
        info["has_exchange_feedback"] = bool(books) and all(
            nb["has_exchange_feedback"] for nb in books
        )
        info["feedback_updated"] = any(nb["feedback_updated"] for nb in books)
        if info["has_local_feedback"]:
            absolute = os.path.abspath(local_dir)
            base = absolute if os.path.exists(absolute) else local_dir
            info["local_feedback_path"] = os.path.join(base, "feedback", info["timestamp"])
        else:
            info["local_feedback_path"] = None

    @staticmethod
    def group(found: list[dict]) -> list[dict]:
        """One entry per (course, student, assignment) with its submissions by time."""
        keys = sorted({(i["course_id"], i["student_id"], i["assignment_id"]) for i in found})
        grouped = []
        for key in keys:
            submissions = sorted(
                (i for i in found if (i["course_id"], i["student_id"], i["assignment_id"]) == key),
                key=lambda i: i["timestamp"],
            )
            grouped.append(
                {
                    "course_id": key[0],
                    "student_id": key[1],
                    "assignment_id": key[2],
                    "status": submissions[0]["status"],
                    "submissions": submissions,
                }
            )
        return grouped

    def parse_assignments(self) -> list[dict]:
        if self.inbound:
            return self.group(self.list_inbound())
        if self.cached:
            return self.group(self.list_cached())
        return self.list_outbound()

    # Output

    @staticmethod
    def format_inbound_assignment(info: dict) -> str:
        msg = "{course_id} {student_id} {assignment_id} {timestamp}".format(**info)
        if info["status"] == "submitted":
            if info["has_local_feedback"] and not info["feedback_updated"]:
                msg += " (feedback already fetched)"
            elif info["has_exchange_feedback"]:
                msg += " (feedback ready to be fetched)"
            else:
                msg += " (no feedback available)"
        return msg

    @staticmethod
    def format_outbound_assignment(info: dict) -> str:
        msg = "{course_id} {assignment_id}".format(**info)
        if os.path.exists(info["assignment_id"]):
            msg += " (already downloaded)"
        if info.get("_notes"):
            msg += " [" + "; ".join(info["_notes"]) + "]"
        return msg

    def log_listing(self, assignments: list[dict], removing: bool) -> None:
        if self.inbound or self.cached:
            self.log.info(
                "Removing submitted assignments:" if removing else "Submitted assignments:"
            )
            for assignment in assignments:
                for info in assignment["submissions"]:
                    self.log.info(self.format_inbound_assignment(info))
        else:
            self.log.info("Removing released assignments:" if removing else "Released assignments:")
            for info in assignments:
                self.log.info(self.format_outbound_assignment(info))

    def list_files(self):
        assignments = self.parse_assignments()
        self.log_listing(assignments, removing=False)
        return self.without_notes(assignments)

    @staticmethod
    def without_notes(assignments: list[dict]) -> list[dict]:
        for info in assignments:
            info.pop("_notes", None)
        return assignments

    def remove_files(self):
        if self.inbound:
            self.fail(
                "ngshare keeps every submission: removing submissions (list --inbound "
                "--remove) is not supported"
            )
        assignments = self.parse_assignments()
        self.log_listing(assignments, removing=True)
        self.without_notes(assignments)
        if self.cached:
            for assignment in assignments:
                for info in assignment["submissions"]:
                    shutil.rmtree(info["path"])
        else:
            for info in assignments:
                course, name = info["course_id"], info["assignment_id"]
                with self.attempt(f"remove {name} from course {course}", course):
                    self.client.withdraw(course, name)
        return assignments
