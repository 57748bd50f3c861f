"""Pure functions: timestamps and path validation."""

from datetime import UTC, datetime

import pytest

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
