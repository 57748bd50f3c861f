"""nbgrader release_feedback: attach `feedback/<student>/<assignment>/*.html` to the
submission it grades, the whole class's in one request (`put_feedback_many`: all
or none, a few hundred students per request).

The submission is found in one listing of the assignment's submissions: the
one whose submission_secret.txt is the feedback directory's (nbgrader copies
it along from the collected submission), else the one whose timestamp is the
directory's timestamp.txt. Feedback released again replaces the earlier
feedback of that submission only; other submissions keep theirs.
"""

from __future__ import annotations

import glob
import os
import re
from collections import defaultdict
from pathlib import Path

from nbgrader.exchange.abc import ExchangeReleaseFeedback as ABCExchangeReleaseFeedback

from ngshare.client import FeedbackFiles, LocalFile
from ngshare.client.trees import hash_file
from ngshare.exchange.base import (
    SECRET_FILE,
    TIMESTAMP_FILE,
    Exchange,
    manifest_sha,
    secret_sha256,
)


class ExchangeReleaseFeedback(Exchange, ABCExchangeReleaseFeedback):
    def init_src(self):
        student_id = self.coursedir.student_id if self.coursedir.student_id else "*"
        self.src_path = self.coursedir.format_path(
            self.coursedir.feedback_directory, student_id, self.coursedir.assignment_id
        )

    def init_dest(self):
        self.course = self.require_course()
        self.assignment = self.local_name(self.coursedir.assignment_id, "assignment")

    def feedback_dirs(self) -> dict[str, tuple[str, list[str]]]:
        """student -> (feedback directory, its notebook ids), as nbgrader names them."""
        regexp = re.escape(os.path.sep).join(
            [
                self.coursedir.format_path(
                    self.coursedir.feedback_directory,
                    "(?P<student_id>.*)",
                    self.coursedir.assignment_id,
                    escape=True,
                ),
                "(?P<notebook_id>.*).html",
            ]
        )
        excluded = set(filter(None, (self.coursedir.student_id_exclude or "").split(",")))
        found: dict[str, list[str]] = defaultdict(list)
        where: dict[str, str] = {}
        for html in sorted(glob.glob(os.path.join(self.src_path, "*.html"))):
            match = re.match(regexp, html)
            if match is None:
                self.log.error("Could not match '%s' with regexp '%s'", html, regexp)
                continue
            student = match.group("student_id")
            if student in excluded:
                self.log.debug("Skipping student '%s'", student)
                continue
            found[student].append(match.group("notebook_id"))
            where[student] = os.path.dirname(html)
        return {student: (where[student], found[student]) for student in found}

    def copy_files(self):
        course, assignment = self.course, self.assignment
        todo = self.feedback_dirs()
        if not todo:
            self.log.warning(
                "No feedback to release for '%s' in course '%s' (run nbgrader generate_feedback)",
                assignment,
                course,
            )
            return
        with self.attempt(f"release feedback for {assignment} in course {course}", course):
            submissions = self.client.submissions(course, assignment, files=True)
        unmatched, sets = [], []
        for student, (directory, notebooks) in sorted(todo.items()):
            submission = self.find_submission(submissions, student, directory)
            if submission is None:
                unmatched.append(student)
                continue
            sets.append(self.feedback_set(student, submission["id"], directory, notebooks))
        if sets:
            with self.attempt(f"release feedback for {assignment}", course):
                released = self.client.put_feedback_many(course, assignment, sets)
            for item in released:
                self.log.info(
                    "Feedback released to: %s %s %s (submission %s)%s",
                    course,
                    assignment,
                    item["student"],
                    item["submission_id"],
                    ", unchanged" if item["changed"] is False else "",
                )
        if unmatched:
            self.fail(
                f"No submission on the service matches the feedback of {', '.join(unmatched)} "
                f"for {assignment} (collect again, autograde and generate_feedback)"
            )

    def feedback_set(
        self, student: str, submission_id: int, directory: str, notebooks: list[str]
    ) -> FeedbackFiles:
        """The html files of one student's feedback, logged as nbgrader logs them."""
        timestamp = Path(directory, TIMESTAMP_FILE).read_text().strip()
        files = []
        for notebook in notebooks:
            self.log.info(
                "Releasing feedback for student '%s' on assignment '%s/%s/%s' (%s)",
                student,
                self.course,
                self.assignment,
                notebook,
                timestamp,
            )
            source = Path(directory, f"{notebook}.html")
            sha256, size = hash_file(source)
            files.append(LocalFile(source.name, source, sha256, size, False))
        return FeedbackFiles(student, submission_id, files)

    def find_submission(self, submissions: list[dict], student: str, directory: str):
        stamp_path = os.path.join(directory, TIMESTAMP_FILE)
        if not os.path.isfile(stamp_path):
            self.fail(f"Missing {stamp_path}: run nbgrader collect and generate_feedback again")
        timestamp = Path(stamp_path).read_text().strip()
        mine = [s for s in submissions if s["student"] == student]
        secret = secret_sha256(directory)
        if secret is not None:
            for item in mine:
                if manifest_sha(item.get("files", []), SECRET_FILE) == secret:
                    return item
        for item in mine:
            if self.same_time(timestamp, item["timestamp"]):
                return item
        self.log.error(
            "No submission of %s for %s at %s on the service", student, self.assignment, timestamp
        )
        return None
