"""nbgrader submit: upload `[<course>/]<assignment>` as the student's newest submission.

The service records who submitted (from the token) and when; that timestamp,
in Exchange.timezone and Exchange.timestamp_format, names the local cache copy
(`<cache>/<course>/<student>+<assignment>+<timestamp>`) and is the one the
instructor's `collect` writes to timestamp.txt. A fresh submission_secret.txt
is uploaded with the files and kept in the cache: it ties feedback to this
submission. Only files the service does not already hold are uploaded.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

from nbgrader.exchange.abc import ExchangeSubmit as ABCExchangeSubmit
from traitlets import Bool

from ngshare.client import LocalFile
from ngshare.client.trees import hash_file
from ngshare.exchange.base import SECRET_FILE, TIMESTAMP_FILE, Exchange


def notebooks_in(paths: list[str]) -> list[str]:
    return sorted(p for p in paths if os.path.splitext(p)[1] == ".ipynb")


class ExchangeSubmit(Exchange, ABCExchangeSubmit):
    add_random_string = Bool(
        True, help="Accepted for compatibility; the service keeps submissions apart by id."
    ).tag(config=True)

    def init_src(self):
        name = self.local_name(self.coursedir.assignment_id, "assignment")

        def has_local_copy(course: str) -> bool:
            return os.path.isdir(self.assignment_root(course, name))

        # With path_includes_course, an unset course is also looked for on disk.
        local = has_local_copy if self.path_includes_course else None
        self.course = self.resolve_course(name, local)
        self.src_path = self.assignment_root(self.course, name)
        self.coursedir.assignment_id = os.path.split(self.src_path)[-1]
        self.assignment = self.coursedir.assignment_id
        if not os.path.isdir(self.src_path):
            self.fail(f"Assignment not found at: {self.src_path}")

    def init_dest(self):
        student_id = self.coursedir.student_id
        if student_id != "*" and ("*" in student_id or "+" in student_id):
            self.fail(f"The student ID should contain no '*' nor '+'; got {student_id}")
        with self.attempt(f"submit {self.assignment} to course {self.course}", self.course):
            self.release = self.client.assignment(self.course, self.assignment)

    def check_filename_diff(self, files: list[LocalFile]) -> None:
        released = notebooks_in([f["path"] for f in self.release["files"]])
        submitted = notebooks_in(
            [
                os.path.relpath(os.path.join(d, n), self.src_path)
                for d, _dirs, names in os.walk(self.src_path)
                for n in names
            ]
        )
        missing = [n for n in released if n not in submitted]
        extra = [n for n in submitted if n not in released]
        if not missing and not extra:
            return
        expected = "\n\t".join(f"{n}: {'MISSING' if n in missing else 'FOUND'}" for n in released)
        got = "\n\t".join(f"{n}: {'EXTRA' if n in extra else 'OK'}" for n in submitted)
        diff = f"Expected:\n\t{expected}\nSubmitted:\n\t{got}"
        if missing and self.strict:
            self.log.error(
                "Assignment %s not submitted. There are missing notebooks for the submission:\n%s",
                self.assignment,
                diff,
            )
            self.fail(
                f"Assignment {self.assignment} not submitted: missing notebooks "
                f"{', '.join(missing)} (--strict)"
            )
        self.log.warning(
            "Possible missing notebooks and/or extra notebooks submitted for assignment %s:\n%s",
            self.assignment,
            diff,
        )

    def copy_files(self):
        course, assignment = self.course, self.assignment
        # solutions/ is where fetch_feedback puts released solutions: never handed in
        files = self.scan(self.src_path, skip=(TIMESTAMP_FILE, SECRET_FILE, "solutions/"))
        self.check_filename_diff(files)
        self.log.info("Source: %s", self.src_path)
        self.log.info("Destination: %s course %s", self.client.http.base_url, course)
        with tempfile.TemporaryDirectory(prefix="ngshare-submit-") as scratch:
            secret = secrets.token_hex(64)
            secret_path = Path(scratch, SECRET_FILE)
            secret_path.write_text(secret)
            sha256, size = hash_file(secret_path)
            upload = [*files, LocalFile(SECRET_FILE, secret_path, sha256, size, False)]
            with self.attempt(f"submit {assignment} to course {course}", course):
                result = self.client.submit_files(course, assignment, upload)
        self.timestamp = self.local_timestamp(result["timestamp"])
        student = result["student"]
        self.write_cache(files, student, secret)
        self.log.info("Submitted as: %s %s %s", course, assignment, self.timestamp)

    def write_cache(self, files: list[LocalFile], student: str, secret: str) -> None:
        """Copy what was submitted to the local cache (nbgrader list --cached, fetch_feedback)."""
        cache_course = os.path.join(self.cache, self.local_name(self.course, "course"))
        name = f"{self.local_name(student, 'student')}+{self.assignment}+{self.timestamp}"
        cache_path = os.path.join(cache_course, name)
        os.makedirs(cache_course, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{self.assignment}.", dir=cache_course)
        try:
            for item in files:
                target = os.path.join(staging, *item.path.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(item.source, target)
            Path(staging, TIMESTAMP_FILE).write_text(self.timestamp)
            Path(staging, SECRET_FILE).write_text(secret)
            if os.path.isdir(cache_path):
                shutil.rmtree(cache_path)
            os.replace(staging, cache_path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
