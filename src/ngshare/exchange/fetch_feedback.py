"""nbgrader fetch_feedback: download the feedback of each of your submissions into
`[<course>/]<assignment>/feedback/<timestamp>/`.

One request lists your submissions of the assignment with their feedback, and
carries the feedback's small files (ngshare.client.inline).
The timestamp directory is the one your local cache copy of that submission
carries (matched by submission_secret.txt, else by time), or the service's
timestamp in Exchange.timezone / timestamp_format for a submission made from
another machine.

Released solutions (docs/policies.md) come along, into
`[<course>/]<assignment>/solutions/`, replacing an earlier copy.
"""

from __future__ import annotations

import glob
import os

from nbgrader.exchange.abc import ExchangeFetchFeedback as ABCExchangeFetchFeedback

from ngshare.client import ClientError
from ngshare.exchange.base import SECRET_FILE, Exchange, manifest_sha, secret_sha256


class ExchangeFetchFeedback(Exchange, ABCExchangeFetchFeedback):
    def init_src(self):
        assignment = self.local_name(self.coursedir.assignment_id, "assignment")
        student_id = self.coursedir.student_id
        if student_id != "*" and ("*" in student_id or "+" in student_id):
            self.fail(f"The student ID should contain no '*' nor '+'; got {student_id}")
        self.course = self.resolve_course(assignment)
        self.assignment = assignment
        action = f"fetch feedback for {assignment} from course {self.course}"
        with self.attempt(action, self.course):
            student = student_id if student_id != "*" else self.client.whoami()["username"]
            self.submissions = self.client.student_submissions(
                self.course, assignment, student, files=True, inline=True
            )
        self.student = student

    def init_dest(self):
        self.dest_path = os.path.join(
            self.assignment_root(self.course, self.assignment), "feedback"
        )

    def cached_timestamps(self) -> list[tuple[str, str | None]]:
        """(timestamp, secret sha256) of each local cache copy of this assignment."""
        cache_course = os.path.join(self.cache, self.local_name(self.course, "course"))
        found = []
        for path in glob.glob(os.path.join(glob.escape(cache_course), f"*+{self.assignment}+*")):
            parts = os.path.basename(path).split("+")
            if len(parts) == 3:
                found.append((parts[2], secret_sha256(path)))
        return found

    def local_timestamp_of(self, submission: dict, cached: list[tuple[str, str | None]]) -> str:
        secret = manifest_sha(submission.get("files", []), SECRET_FILE)
        for timestamp, cached_secret in cached:
            if secret is not None and cached_secret == secret:
                return timestamp
        for timestamp, _secret in cached:
            if self.same_time(timestamp, submission["timestamp"]):
                return timestamp
        return self.local_timestamp(submission["timestamp"])

    def copy_files(self):
        course, assignment = self.course, self.assignment
        self.log.info("Source: %s course %s", self.client.http.base_url, course)
        self.log.info("Destination: %s", self.dest_path)
        cached = self.cached_timestamps()
        try:
            self.prefetch()
            self.write_feedback(cached)
        finally:
            self.client.forget_prefetched()
        if not self.submissions:
            self.log.warning("You have no submission of '%s/%s'", course, assignment)
        self.fetch_solutions()

    def prefetch(self) -> None:
        """Every submission's feedback files in one request (a few, for many or large ones);
        each is then written from that copy, not downloaded again."""
        sets = [s["feedback"]["files"] for s in self.submissions if _feedback_files(s)]
        if sets:
            with self.attempt(f"fetch feedback for {self.assignment}", self.course):
                self.client.download_trees(
                    self.course, sets, self.dest_path, label=f"feedback {self.assignment}"
                )

    def write_feedback(self, cached: list[tuple[str, str | None]]) -> None:
        """Write each submission's feedback below its local timestamp."""
        course, assignment = self.course, self.assignment
        for submission in self.submissions:
            timestamp = self.local_timestamp_of(submission, cached)
            files = _feedback_files(submission)
            if not files:
                self.log.warning(
                    "Could not find feedback for '%s/%s' submitted at %s",
                    course,
                    assignment,
                    timestamp,
                )
                continue
            self.log.info(
                "Found feedback for '%s/%s' submitted at %s", course, assignment, timestamp
            )
            target = os.path.join(self.dest_path, self.local_name(timestamp, "timestamp"))
            os.makedirs(target, exist_ok=True)
            progress = self.client.progress
            progress.start(sum(f["size"] for f in files), len(files), f"feedback {assignment}")
            try:
                with self.attempt(f"fetch feedback for {assignment}", course):
                    for entry in files:
                        written = self.client.download_file(course, entry, target)
                        self.log.info("Fetched feedback: %s", written)
            finally:
                progress.finish()
            self.record(course, "feedback_fetch", assignment, submission_id=submission.get("id"))

    def fetch_solutions(self) -> None:
        course, assignment = self.course, self.assignment
        try:
            manifest = self.client.solutions(course, assignment, inline=True)
        except ClientError as exc:
            if exc.status not in (404, 409):
                self.fail(
                    f"Cannot fetch the solutions of {assignment}: {self.explain(exc, course)}"
                )
            self.log.info("No solutions to fetch for '%s/%s': %s", course, assignment, exc.message)
            return
        target = os.path.join(self.assignment_root(course, assignment), "solutions")
        with self.attempt(f"fetch the solutions of {assignment}", course):
            written = self.client.download_tree(
                course, manifest["files"], target, replace=True, label=f"solutions {assignment}"
            )
        for path in written:
            self.log.info("Fetched solution: %s", path)


def _feedback_files(submission: dict) -> list[dict]:
    return (submission.get("feedback") or {}).get("files") or []
