"""nbgrader collect: download each student's chosen submission into `submitted/`.

One request lists every submission of the assignment with its files. For each
student the newest submission is chosen (with `--before-duedate`, the newest
one at or before the student's deadline: the service's, with the student's
extension, when the service has one, else the gradebook's due date). Each copy is written to a
temporary directory with its timestamp.txt, verified, and only then swapped
in, so with `--update` the old local copy survives a failed download.
"""

from __future__ import annotations

import fnmatch
import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.abc import ExchangeCollect as ABCExchangeCollect

from ngshare.exchange.base import TIMESTAMP_FILE, Exchange


class ExchangeCollect(Exchange, ABCExchangeCollect):
    def init_src(self):
        self.course = self.require_course()
        self.assignment = self.local_name(self.coursedir.assignment_id, "assignment")
        action = f"collect {self.assignment} of course {self.course}"
        with self.attempt(action, self.course):
            submissions = self.client.submissions(self.course, self.assignment, files=True)
        pattern = self.coursedir.student_id or "*"
        by_student: dict[str, list[dict]] = defaultdict(list)
        for item in submissions:
            if fnmatch.fnmatchcase(item["student"], pattern):
                item["when"] = self.server_time(item["timestamp"]).replace(tzinfo=None)
                by_student[item["student"]].append(item)

        with Gradebook(self.coursedir.db_url, self.course) as gb:
            try:
                self.duedate = gb.find_assignment(self.assignment).duedate
            except MissingEntry:
                self.duedate = None
        deadlines = self.server_deadlines(action) if self.before_duedate else {}

        self.src_records = []
        for student in sorted(by_student):
            newest_first = sorted(by_student[student], key=lambda s: s["when"], reverse=True)
            chosen = newest_first[0]
            due = deadlines.get(student, deadlines.get("", self.duedate))
            if self.before_duedate and due is not None:
                in_time = [s for s in newest_first if s["when"] <= due]
                chosen = in_time[0] if in_time else chosen
            self.src_records.append(chosen)

    def server_deadlines(self, action: str) -> dict[str, datetime]:
        """The service's deadline (key "") and each extended student's, as naive UTC."""
        with self.attempt(action, self.course):
            settings = self.client.settings(self.course, self.assignment)

        def naive(text: str) -> datetime:
            return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)

        found = {e["student"]: naive(e["due_at"]) for e in settings.get("extensions", [])}
        if settings.get("due_at"):
            found[""] = naive(settings["due_at"])
            self.log.info("Using the deadline of the ngshare service: %s", settings["due"])
        return found

    def init_dest(self):
        pass

    def copy_files(self):
        course, assignment = self.course, self.assignment
        if not self.src_records:
            self.log.warning(f"No submissions of '{assignment}' for course '{course}' to collect")
        else:
            self.log.info(
                f"Processing {len(self.src_records)} submissions of '{assignment}' "
                f"for course '{course}'"
            )
        self.prefetch()
        try:
            for record in self.src_records:
                self.collect_one(record)
        finally:
            self.client.forget_prefetched()

    def prefetch(self) -> None:
        """Fetch every distinct file of the chosen submissions once, small ones in batches.

        The class's submissions share the released data files; each tree is
        then written from these local copies, so the dataset crosses the
        network once instead of once per student.
        """
        if not self.src_records:
            return
        submitted = self.coursedir.format_path(self.coursedir.submitted_directory, ".", ".")
        manifests = [record["files"] for record in self.src_records]
        with self.attempt(f"collect {self.assignment}", self.course):
            self.client.download_trees(
                self.course, manifests, Path(submitted), label=f"collect {self.assignment}"
            )

    def collect_one(self, record: dict) -> None:
        student = self.local_name(record["student"], "student")
        assignment = self.assignment
        dest = self.coursedir.format_path(self.coursedir.submitted_directory, student, assignment)
        os.makedirs(os.path.dirname(dest), exist_ok=True)

        updating = False
        if os.path.isdir(dest):
            existing = self.coursedir.get_existing_timestamp(dest)
            new = record["when"]
            if (self.update and (existing is None or new > existing)) or (
                self.before_duedate and existing != new
            ):
                updating = True
            else:
                if self.update:
                    self.log.info(f"No newer submission to collect: {student} {assignment}")
                else:
                    self.log.info(
                        f"Submission already exists, use --update to update: {student} {assignment}"
                    )
                return
        if updating:
            self.log.info(f"Updating submission: {student} {assignment}")
        else:
            self.log.info(f"Collecting submission: {student} {assignment}")

        timestamp = self.local_timestamp(record["timestamp"])
        files = [f for f in record["files"] if f["path"] != TIMESTAMP_FILE]
        with self.attempt(f"collect the submission of {student} for {assignment}", self.course):
            self.client.download_tree(
                self.course,
                files,
                dest,
                replace=updating,
                label=f"collect {student}",
                extra={TIMESTAMP_FILE: timestamp.encode()},
            )
        self.record(self.course, "collect", assignment, submission_id=record.get("id"))
