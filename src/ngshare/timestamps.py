"""Submission timestamps: UTC, microsecond precision, and the v1 text form.

v1 prints `2020-01-30 10:30:47.524219` and accepts that form optionally
followed by ` UTC`; clients store the string and send it back verbatim, so the
round trip must be exact.

`now()` is the clock of every course policy (release schedules, deadlines,
late windows, solutions) and of submission stamps. Tests may point it at a
file (`--clock-file`, refused under JupyterHub auth) that holds an ISO 8601
time; without that file it is the system clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ngshare.errors import BadRequest

V1_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
ONE_MICROSECOND = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


_clock_file: Path | None = None


def use_clock_file(path: Path | None) -> None:
    """Make `now()` read the time from `path` (tests only; None: the system clock)."""
    global _clock_file
    _clock_file = path


def now() -> datetime:
    """The policy clock: the system's UTC time, or the test clock file's when one is set.

    The file holds one ISO 8601 time with an offset (`2026-12-01T16:00:00.000000+00:00`);
    a missing or empty file means the system clock.
    """
    if _clock_file is None:
        return utcnow()
    try:
        text = _clock_file.read_text().strip()
    except FileNotFoundError:
        return utcnow()
    if not text:
        return utcnow()
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"the clock file {_clock_file} must give a UTC offset: {text!r}")
    return moment.astimezone(UTC)


def format_v1(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(V1_FORMAT)


def parse_v1(text: str) -> datetime:
    """Parse a v1 timestamp; 400 `Time format incorrect` otherwise."""
    cleaned = text.strip()
    if cleaned.endswith(" UTC"):
        cleaned = cleaned[: -len(" UTC")].rstrip()
    try:
        return datetime.strptime(cleaned, V1_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest("Time format incorrect") from None


def next_after(now: datetime, latest: datetime | None) -> datetime:
    """A stamp that is `now` unless that would not be strictly after `latest`."""
    if latest is not None and now <= latest:
        return latest + ONE_MICROSECOND
    return now
