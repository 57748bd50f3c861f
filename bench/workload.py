"""The deterministic content of one class cycle: notebooks, a data file, answers, feedback.

Everything is derived from a seed, so two runs (and two servers) move exactly
the same bytes. Notebooks are nbformat-4 JSON with a large embedded image
output (base64, like a plot), which keeps them realistic and incompressible;
each student's copy differs from the release in an answer cell. The data file
is pseudo-random bytes, so hashing and copying it costs what real data costs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from dataclasses import dataclass, field
from functools import cached_property

DATA_PATH = "data/dataset.bin"


@dataclass(frozen=True)
class FileInfo:
    sha256: str
    md5: str
    size: int


def file_info(data: bytes) -> FileInfo:
    return FileInfo(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data))


@dataclass(frozen=True)
class Workload:
    students: int = 200
    notebooks: int = 5
    notebook_kb: float = 200
    data_mb: float = 20
    feedback_kb: float = 50
    seed: int = 1
    student_prefix: str = "student"
    _images: dict = field(default_factory=dict, compare=False, repr=False)
    _changed: dict = field(default_factory=dict, compare=False, repr=False)
    _submission_info: dict = field(default_factory=dict, compare=False, repr=False)

    # Names

    def student_names(self) -> list[str]:
        return [f"{self.student_prefix}{i}" for i in range(1, self.students + 1)]

    def notebook_paths(self) -> list[str]:
        return [f"problem{k}.ipynb" for k in range(1, self.notebooks + 1)]

    # Content

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def _image(self, k: int) -> str:
        """The base64 "plot" of notebook k, sized so the notebook is about notebook_kb."""
        if k not in self._images:
            raw = max(0, int(self.notebook_kb * 1024) - 1500) * 3 // 4
            self._images[k] = base64.b64encode(self._rng("image", k).randbytes(raw)).decode()
        return self._images[k]

    def notebook(self, k: int, student: str | None = None) -> bytes:
        """Notebook k as released (student None) or as `student` submits it."""
        if student is None:
            answer = ["# YOUR CODE HERE\n", "raise NotImplementedError()\n"]
        else:
            rng = self._rng("answer", student, k)
            answer = [f"x{i} = {rng.random()!r}  # {rng.getrandbits(64):x}\n" for i in range(12)]
        cells = [
            _cell("markdown", [f"# Problem {k}\n", "Compute the statistics of the dataset.\n"]),
            _cell("code", answer),
            _cell(
                "code",
                ["plot(dataset)\n"],
                outputs=[
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": self._image(k), "text/plain": ["<Figure>"]},
                    }
                ],
            ),
        ]
        notebook = {
            "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        return json.dumps(notebook, indent=1).encode()

    @cached_property
    def data(self) -> bytes:
        return self._rng("data").randbytes(int(self.data_mb * 2**20))

    def release_files(self) -> dict[str, bytes]:
        files = {p: self.notebook(k) for k, p in enumerate(self.notebook_paths(), 1)}
        files[DATA_PATH] = self.data
        return files

    def changed_notebooks(self, student: str) -> dict[str, bytes]:
        """What a student changes before submitting: every notebook; the data file stays.

        Kept once made (see `prepare`), so that making them is not timed as
        part of a client's or the checker's work."""
        made = self._changed.get(student)
        if made is None:
            paths = enumerate(self.notebook_paths(), 1)
            made = self._changed[student] = {p: self.notebook(k, student) for k, p in paths}
        return made

    def prepare(self) -> None:
        """Make every student's notebooks and expected hashes up front (not timed)."""
        for student in self.student_names():
            self.submission_info(student)

    def submission_files(self, student: str) -> dict[str, bytes]:
        return {**self.changed_notebooks(student), DATA_PATH: self.data}

    def feedback_name(self) -> str:
        return "problem1.html"

    def feedback_html(self, student: str) -> bytes:
        rng = self._rng("feedback", student)
        size = int(self.feedback_kb * 1024)
        head = f"<html><body><h1>Feedback for {student}</h1><pre>\n".encode()
        body = base64.b64encode(rng.randbytes(max(0, size - len(head) - 30) * 3 // 4))
        return head + body + b"\n</pre></body></html>\n"

    # Expected results, to check what servers send back

    @cached_property
    def release_info(self) -> dict[str, FileInfo]:
        return {p: file_info(d) for p, d in self.release_files().items()}

    def submission_info(self, student: str) -> dict[str, FileInfo]:
        info = self._submission_info.get(student)
        if info is None:
            info = {p: file_info(d) for p, d in self.changed_notebooks(student).items()}
            info[DATA_PATH] = self.release_info[DATA_PATH]
            self._submission_info[student] = info
        return info

    def total_release_bytes(self) -> int:
        return sum(i.size for i in self.release_info.values())


def _cell(kind: str, source: list[str], outputs: list | None = None) -> dict:
    cell: dict = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=outputs or [])
    return cell
