"""A demo course for trying the server right after installing it (`--demo`)."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from ngshare.db.models import Assignment, Course, Member, Release
from ngshare.domain.filesets import create_fileset, store_files
from ngshare.state import AppState
from ngshare.timestamps import utcnow

log = logging.getLogger("ngshare")

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Problem 1\n", "Add two numbers."]},
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ["def add(a, b):\n", "    return a + b"],
        },
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def create_demo_course(state: AppState) -> None:
    """Course `demo`: instructor `instructor`, students `student1`/`student2`, assignment `ps1`."""
    files = [("problem1.ipynb", json.dumps(NOTEBOOK, indent=1).encode())]
    with state.db.write() as session:
        if session.scalar(select(Course.id).where(Course.name == "demo")) is not None:
            return
        staged = store_files(state.store, files)
        course = Course(name="demo")
        course.members = [
            Member(
                username="instructor", role="instructor", first_name="Ines", last_name="Tructor"
            ),
            Member(username="student1", role="student", first_name="Stu", last_name="Dent"),
            Member(username="student2", role="student", first_name="Ada", last_name="Byron"),
        ]
        session.add(course)
        session.flush()
        assignment = Assignment(course_id=course.id, name="ps1", released_at=utcnow())
        session.add(assignment)
        session.flush()
        fileset = create_fileset(session, course.id, "release", staged)
        release = Release(
            assignment_id=assignment.id, version=1, fileset_id=fileset.id, created_by="instructor"
        )
        session.add(release)
        session.flush()
        assignment.current_release_id = release.id
    log.info("created the demo course `demo` (instructor, student1, student2; assignment ps1)")
