"""Submission timestamps: UTC, microsecond precision, and the v1 text form.

v1 prints `2020-01-30 10:30:47.524219` and accepts that form optionally
followed by ` UTC`; clients store the string and send it back verbatim, so the
round trip must be exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ngshare.errors import BadRequest

V1_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
ONE_MICROSECOND = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
