"""The streaming v1 body decoder agrees with the plain one, however the body is split."""

import base64
import hashlib
import json
import os
import random
import re
from urllib.parse import unquote_to_bytes, urlencode

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from ngshare.api.v1.form import FormDecoder
from ngshare.api.v1.wire import PercentDecoder, _unescape, unquote_plus_bytes
from ngshare.config import Limits
from ngshare.domain.filesets import ListedFile, v1_tree_json
from ngshare.storage import LocalBlobStore, hash_bytes
from ngshare.storage.base import Hashes


class MemoryStaging:
    def __init__(self) -> None:
        self.data = bytearray()
        self.hashes = Hashes()
        self.state = "open"

    def write(self, data: bytes) -> None:
        self.data += data
        self.hashes.update(data)

    def finish(self):
        return self.hashes.digest()

    def commit(self) -> None:
        self.state = "committed"

    def discard(self) -> None:
        self.state = "discarded"


LIMITS = Limits(2**30, 2**30, 2**30, 1000)
paths = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda p: p not in (".", ".."))
trees = st.dictionaries(paths, st.binary(max_size=3000), max_size=5)


def decode(body: bytes, cuts: list[int]):
    made: list[MemoryStaging] = []

    def stage():
        made.append(MemoryStaging())
        return made[-1]

    decoder = FormDecoder(stage, LIMITS)
    previous = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        decoder.feed(body[previous:cut])
        previous = cut
    decoder.close()
    return decoder


@settings(max_examples=150, deadline=None)
@given(
    tree=trees,
    escape_slashes=st.booleans(),
    lines=st.booleans(),
    extra=st.text(max_size=20),
    seed=st.integers(0, 2**32),
)
def test_streamed_decoding_matches_the_plain_decoding(tree, escape_slashes, lines, extra, seed):
    entries = []
    for path, data in tree.items():
        content = (base64.encodebytes if lines else base64.b64encode)(data).decode()
        entries.append({"checksum": "ignored", "path": path, "content": content})
    text = json.dumps(entries)
    if escape_slashes:
        text = text.replace("/", "\\/")
    body = urlencode({"timestamp": extra, "files": text, "user": "u s+er"}).encode()
    rng = random.Random(seed)
    cuts = [rng.randrange(len(body) + 1) for _ in range(rng.randrange(8))]
    decoder = decode(body, cuts)
    assert decoder.fields == {"timestamp": extra, "user": "u s+er"}
    assert decoder.files is not None and decoder.files.error is None
    got = {e.path: bytes(e.staging.data) for e in decoder.files.entries}
    assert got == tree
    for entry in decoder.files.entries:
        assert entry.digest.sha256 == hashlib.sha256(tree[entry.path]).hexdigest()
        assert entry.digest.md5 == hashlib.md5(tree[entry.path]).hexdigest()


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=1500),
    line=st.integers(1, 90),
    trailing=st.booleans(),
    odd=st.sampled_from(["", "\\\\", "\\/", "\\t", "\\r", "\\u0041", "\\\\n", "\\n"]),
    seed=st.integers(0, 2**32),
)
def test_unescaping_a_piece_of_base64_matches_json(data, line, trailing, odd, seed):
    """Line breaks on a grid (the fast path), off it, and other escapes anywhere."""
    text = base64.b64encode(data).decode()
    lines = [text[i : i + line] for i in range(0, len(text), line)]
    escaped = "\\n".join(lines) + ("\\n" if trailing else "")
    rng = random.Random(seed)
    if odd:
        at = rng.randrange(len(escaped) + 1)
        while escaped[:at].endswith("\\"):
            at -= 1
        escaped = escaped[:at] + odd + escaped[at:]
    start = rng.randrange(len(escaped) + 1)
    while escaped[:start].endswith("\\"):  # pieces never split an escape
        start -= 1
    piece = escaped[start:].encode()
    expected = json.loads('"' + piece.decode() + '"').encode()
    assert bytes(_unescape(piece)).translate(None, b" \t\r\n") == expected.translate(
        None, b" \t\r\n"
    )


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200), seed=st.integers(0, 2**32))
def test_percent_decoding_matches_urllib(raw, seed):
    encoded = urlencode({"x": raw})[2:].encode()
    rng = random.Random(seed)
    if rng.random() < 0.5:  # escapes may come in lower case too
        encoded = re.sub(rb"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)
    decoder = PercentDecoder()
    out = bytearray()
    position = 0
    while position < len(encoded):
        step = rng.randrange(1, 8)
        out += decoder.feed(encoded[position : position + step])
        position += step
    out += decoder.close()
    assert bytes(out) == raw


@settings(max_examples=500)
@given(st.lists(st.sampled_from([b"%", b"%3D", b"%3d", b"%zz", b"%4", b"=", b"+", b"a", b"\n"])))
def test_any_mix_of_escapes_decodes_as_urllib_does(parts):
    text = b"".join(parts)
    assert unquote_plus_bytes(text) == unquote_to_bytes(text.replace(b"+", b" "))


@given(st.binary(max_size=100))
def test_unusual_escapes_fall_back_to_urllib(raw):
    text = raw.replace(b"%", b"%25") + b"%zz%4"
    assert unquote_plus_bytes(text) == unquote_to_bytes(text.replace(b"+", b" "))


def test_errors_are_kept_for_later_and_stagings_dropped():
    good = base64.b64encode(b"x" * 100).decode()
    for files, message in [
        ([{"path": "a", "content": good}, {"path": "../b", "content": good}], "Illegal path"),
        (
            [{"path": "a", "content": good}, {"path": "b", "content": "*"}],
            "Content cannot be base64 decoded",
        ),
        ([{"path": "a", "content": good}, {"path": "a", "content": good}], "Illegal path"),
    ]:
        decoder = decode(urlencode({"files": json.dumps(files)}).encode(), [7, 30])
        assert decoder.files.error.message == message
    truncated = urlencode({"files": json.dumps([{"path": "a", "content": good}])[:-5]}).encode()
    assert decode(truncated, []).files.error.message == "Files cannot be JSON decoded"


def test_answer_encodes_right_when_reads_end_mid_group(tmp_path):
    """Only part of a blob is in the page cache: the short read ends inside a 3-byte
    base64 group, which must carry over to the next piece."""
    store = LocalBlobStore(tmp_path)
    data = os.urandom(3 * 2**20 + 5)
    digest = hash_bytes(data)
    store.put_bytes(data, digest)
    fd = os.open(store.local_file(digest.sha256), os.O_RDONLY)
    os.posix_fadvise(fd, 5 * 4096, 0, os.POSIX_FADV_DONTNEED)  # 20480 bytes stay cached
    os.close(fd)
    files = [ListedFile("data.bin", digest.sha256, digest.md5, len(data))]

    async def answer() -> bytes:
        return b"".join([piece async for piece in v1_tree_json(store, files, False, {})])

    body = json.loads(anyio.run(answer))
    assert body["files"][0]["checksum"] == digest.md5
    assert base64.b64decode(body["files"][0]["content"]) == data
