"""Hypothesis: path validation never lets a path out of its directory, and archives
round-trip any tree through the standard tar and zip readers."""

import io
import os
import tarfile
import zipfile
from pathlib import PurePosixPath

from hypothesis import given, settings
from hypothesis import strategies as st

from ngshare.domain.archives import ArchiveEntry, InlineEntry, stream_archive
from ngshare.paths import is_safe_path

ROOT = PurePosixPath("/srv/target")
pieces = st.sampled_from(["a", "b", ".", "..", "", "...", "x y", "\\", "\x00", "\n", "é", "/"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(pieces, min_size=1, max_size=6).map("".join) | st.text(max_size=30))
def test_a_safe_path_stays_below_its_root(path):
    if not is_safe_path(path):
        return
    parts = path.split("/")
    assert ".." not in parts and "." not in parts and "" not in parts
    assert not path.startswith("/") and "\\" not in path
    assert all(ord(ch) >= 32 and ord(ch) != 127 for ch in path)
    joined = PurePosixPath(os.path.normpath(ROOT / path))
    assert joined.is_relative_to(ROOT) and joined != ROOT


class MemoryStore:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def iter_chunks(self, sha256: str, chunk_size: int = 1024):
        data = self.blobs[sha256]
        for start in range(0, len(data), 7):  # odd chunk sizes on purpose
            yield data[start : start + 7]


names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=40,
).filter(lambda n: n not in (".", ".."))
trees = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map("/".join),
    st.binary(max_size=2000),
    min_size=1,
    max_size=6,
)


def entries_for(tree: dict[str, bytes]):
    blobs = {}
    entries = [InlineEntry("index.json", b"{}")]
    for number, (path, data) in enumerate(sorted(tree.items())):
        key = f"{number:064x}"
        blobs[key] = data
        entries.append(ArchiveEntry(f"top/{path}", key, len(data), executable=number % 2 == 1))
    return entries, MemoryStore(blobs)


@settings(max_examples=150, deadline=None)
@given(trees)
def test_tar_archives_round_trip(tree):
    entries, store = entries_for(tree)
    data = b"".join(stream_archive("tar", entries, store))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        got = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
        modes = {m.name: m.mode for m in archive.getmembers()}
    assert got.pop("index.json") == b"{}"
    assert got == {f"top/{path}": content for path, content in tree.items()}
    executable = {e.name for e in entries if isinstance(e, ArchiveEntry) and e.executable}
    assert {name for name, mode in modes.items() if mode & 0o111} == executable


@settings(max_examples=150, deadline=None)
@given(trees)
def test_zip_archives_round_trip(tree):
    entries, store = entries_for(tree)
    data = b"".join(stream_archive("zip", entries, store))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        got = {name: archive.read(name) for name in archive.namelist()}
    assert got.pop("index.json") == b"{}"
    assert got == {f"top/{path}": content for path, content in tree.items()}
