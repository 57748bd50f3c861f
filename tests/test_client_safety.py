"""Nothing the server sends can write outside the target directory (client side).

The exchange plugin writes every downloaded file through these checks; no
server is needed because the client refuses before it asks for any bytes.
"""

from __future__ import annotations

import pytest

from ngshare.client import ClientError, NgshareClient
from ngshare.client.trees import safe_target

SHA = "0" * 64


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "", "a//b", "a/./b"])
def test_unsafe_server_paths_are_refused(tmp_path, path):
    with pytest.raises(ClientError, match="unsafe path"):
        safe_target(tmp_path, path)


def test_no_writing_through_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "sub").symlink_to(outside)
    (root / "file.txt").symlink_to(outside / "file.txt")
    with pytest.raises(ClientError, match="not a plain directory"):
        safe_target(root, "sub/evil.txt")
    with pytest.raises(ClientError, match="symlink"):
        safe_target(root, "file.txt")
    assert safe_target(root, "new/ok.txt") == root / "new" / "ok.txt"


def test_a_bad_manifest_leaves_nothing_behind(tmp_path):
    files = [{"path": "../escape.txt", "sha256": SHA, "size": 1, "executable": False}]
    with NgshareClient("http://127.0.0.1:9", "token", retries=0) as client:
        with pytest.raises(ClientError, match="unsafe path"):
            client.download_tree("c", files, tmp_path / "dest")
        with pytest.raises(ClientError, match="unsafe path"):
            client.download_file("c", files[0], tmp_path)
        link = tmp_path / "link"
        link.symlink_to(tmp_path / "elsewhere")
        with pytest.raises(ClientError, match="already exists"):
            client.download_tree("c", [], link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]
    assert not (tmp_path.parent / "escape.txt").exists()
