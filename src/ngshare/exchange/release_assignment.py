"""nbgrader release_assignment: upload `release/<assignment>` as the course's next version.

Only files the service lacks are uploaded. Releasing again needs `--force`,
like the filesystem exchange; unlike it, a forced re-release keeps every
submission and the earlier versions (readable with `?version=N`).
"""

from __future__ import annotations

import os

from nbgrader.exchange.abc import ExchangeReleaseAssignment as ABCExchangeReleaseAssignment

from ngshare.exchange.base import Exchange


class ExchangeReleaseAssignment(Exchange, ABCExchangeReleaseAssignment):
    def init_src(self):
        coursedir = self.coursedir
        self.src_path = coursedir.format_path(
            coursedir.release_directory, ".", coursedir.assignment_id
        )
        if os.path.isdir(self.src_path):
            return
        source = coursedir.format_path(coursedir.source_directory, ".", coursedir.assignment_id)
        if os.path.isdir(source):
            self.fail(
                f"Assignment found in '{source}' but not '{self.src_path}', "
                "run `nbgrader generate_assignment` first."
            )
        self.fail(f"Assignment not found at: {self.src_path}")

    def init_dest(self):
        self.course = self.require_course()
        self.assignment = self.local_name(self.coursedir.assignment_id, "assignment")

    def copy_files(self):
        course, assignment = self.course, self.assignment
        files = self.scan(self.src_path)
        with self.attempt(f"release {assignment} in course {course}", course):
            released = assignment in self.released_names(course)
            if released and not self.force:
                self.fail(
                    f"Destination already exists, add --force to overwrite: {course} {assignment}"
                )
            if released:
                self.log.info("Overwriting files: %s %s", course, assignment)
            self.log.info("Source: %s", self.src_path)
            self.log.info("Destination: %s course %s", self.client.http.base_url, course)
            result = self.client.release_files(course, assignment, files)
        version = result.get("version")
        self.log.info("Released as: %s %s", course, assignment)
        self.log.info(
            "%s %s is version %s (%d files); earlier versions and submissions are kept",
            course,
            assignment,
            version,
            len(files),
        )
