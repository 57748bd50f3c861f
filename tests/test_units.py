"""Pure functions: timestamps, path validation, a body's declared length."""

from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from ngshare.bodies import declared_length
from ngshare.errors import BadRequest
from ngshare.paths import check_tree, is_safe_path
from ngshare.timestamps import format_v1, next_after, parse_v1


def test_timestamp_round_trip_keeps_microseconds():
    moment = datetime(2020, 1, 30, 10, 30, 47, 524219, tzinfo=UTC)
    assert format_v1(moment) == "2020-01-30 10:30:47.524219"
    assert parse_v1("2020-01-30 10:30:47.524219") == moment
    assert parse_v1("2020-01-30 10:30:47.524219 UTC \n") == moment


@pytest.mark.parametrize(
    "text", ["", "2020-01-30", "2020-01-30 10:30:47", "UTC", "2020-13-01 00:00:00.0"]
)
def test_bad_timestamps(text):
    with pytest.raises(BadRequest, match="Time format incorrect"):
        parse_v1(text)


def test_next_after_is_strictly_later():
    t = datetime(2020, 1, 1, tzinfo=UTC)
    assert next_after(t, None) == t
    assert next_after(t, t) > t
    assert (next_after(t, t) - t).microseconds == 1


@pytest.mark.parametrize(
    "path", ["a", "a/b/c.ipynb", "with space/x", "\u00e9t\u00e9/f", ".hidden", "a..b"]
)
def test_safe_paths(path):
    assert is_safe_path(path)


@pytest.mark.parametrize(
    "path", ["", "/a", "a/", "a//b", "./a", "a/..", "a\\b", "a\x00", "\x7f", 3, None]
)
def test_unsafe_paths(path):
    assert not is_safe_path(path)


def test_tree_conflicts():
    assert check_tree(["a/b", "a/c", "d"]) == ["a/b", "a/c", "d"]
    for tree in (["a", "a"], ["a", "a/b"], ["a/b/c", "a/b"]):
        with pytest.raises(BadRequest, match="Illegal path"):
            check_tree(tree)


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    "headers, expected",
    [
        ([(b"content-length", b"4096")], 4096),
        ([(b"content-length", b"0")], 0),
        ([], None),
        ([(b"content-length", b"")], None),
        ([(b"content-length", b"-1")], None),
        ([(b"content-length", b"+12")], None),
        ([(b"content-length", b" 12")], None),
        ([(b"content-length", b"1_000")], None),
        ([(b"content-length", "\u00b2".encode("latin-1"))], None),  # isdigit, not int
        ([(b"content-length", b"99"), (b"transfer-encoding", b"chunked")], None),
    ],
)
def test_declared_length(headers, expected):
    """A body's size from its headers: plain digits only, and never beside a
    Transfer-Encoding (which wins over the Content-Length)."""
    assert declared_length(_request(headers)) == expected
