"""nbgrader fetch_assignment: download the current release into `[<course>/]<assignment>`.

A new copy is written to a temporary directory, verified, and moved into
place whole. With `--replace` (replace_missing_files), only files missing
from an existing copy are downloaded; nothing the student changed is touched.
"""

from __future__ import annotations

import os

from nbgrader.exchange.abc import ExchangeFetchAssignment as ABCExchangeFetchAssignment

from ngshare.exchange.base import Exchange


class ExchangeFetchAssignment(Exchange, ABCExchangeFetchAssignment):
    def init_src(self):
        assignment = self.local_name(self.coursedir.assignment_id, "assignment")
        self.course = self.resolve_course(assignment)
        self.assignment = assignment
        with self.attempt(f"fetch {assignment} from course {self.course}", self.course):
            self.manifest = self.client.assignment(self.course, assignment, inline=True)

    def init_dest(self):
        self.dest_path = self.assignment_root(self.course, self.assignment)
        if self.path_includes_course:
            root = os.path.join(self.course, self.assignment)
        else:
            root = self.assignment
        if os.path.isdir(self.dest_path) and not self.replace_missing_files:
            self.fail(f"You already have a copy of the assignment in this directory: {root}")

    def copy_files(self):
        course, assignment = self.course, self.assignment
        files = [f for f in self.manifest["files"] if not self.ignored(f["path"])]
        self.log.info(
            "Source: %s/v2/courses/%s/assignments/%s", self.service_url(), course, assignment
        )
        self.log.info("Destination: %s", self.dest_path)
        with self.attempt(f"fetch {assignment} from course {course}", course):
            if os.path.isdir(self.dest_path):
                self.replace_missing(files)
            else:
                self.client.download_tree(
                    course, files, self.dest_path, label=f"fetch {assignment}"
                )
        self.record(course, "fetch", assignment, version=self.manifest.get("version"))
        self.log.info("Fetched as: %s %s", course, assignment)

    def replace_missing(self, files: list[dict]) -> None:
        missing = []
        for entry in files:
            target = os.path.join(self.dest_path, *entry["path"].split("/"))
            if os.path.lexists(target):
                continue
            parent = os.path.dirname(target)
            if not os.path.isdir(parent):
                self.log.warning(
                    "Creating missing directory '%s'", os.path.relpath(parent, os.getcwd())
                )
            self.log.warning("Replacing missing file '%s'", os.path.relpath(target, os.getcwd()))
            missing.append(entry)
        progress = self.client.progress
        progress.start(sum(f["size"] for f in missing), len(missing), f"fetch {self.assignment}")
        try:
            for entry in missing:
                self.client.download_file(self.course, entry, self.dest_path)
        finally:
            progress.finish()
