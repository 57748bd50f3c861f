"""Bad requests of every kind: clear 4xx JSON, never a 500, and nothing left behind."""

import json
import socket
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, token_for, write_token_file
from tests.v1util import encode_files, fails, ok


def test_missing_token_is_401_json(server):
    fails(httpx.get(server.url + "/courses"), 401, "Login required (send Authorization: token ...)")


def test_unknown_token_is_401_json(server):
    response = httpx.get(server.url + "/courses", headers={"Authorization": "token nope"})
    fails(response, 401, "Invalid token")
    response = httpx.get(server.url + "/courses", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401


def test_unknown_route_and_method_are_json(api):
    fails(api("admin").get("no/such/route"), 404, "Not found")
    fails(api("admin").put("courses"), 405, "Method not allowed")


def test_form_body_must_be_form_encoded(api, course):
    response = api("inst1").post(
        f"assignment/{course}/ps1",
        content=b'{"files": []}',
        headers={"Content-Type": "application/json"},
    )
    fails(response, 400, "Request body must be application/x-www-form-urlencoded")
    response = api("inst1").post(
        f"assignment/{course}/ps1",
        content=b"files=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    fails(response, 400, "Request body is not valid form data")


def test_openapi_document_lists_every_v1_route(server):
    document = httpx.get(server.url + "/openapi.json").json()
    paths = set(document["paths"])
    for route in (
        "/api/courses", "/api/course/{course}", "/api/instructor/{course}/{instructor}",
        "/api/instructors/{course}", "/api/student/{course}/{student}", "/api/students/{course}",
        "/api/assignments/{course}", "/api/assignment/{course}/{assignment}",
        "/api/submissions/{course}/{assignment}",
        "/api/submissions/{course}/{assignment}/{student}",
        "/api/submission/{course}/{assignment}",
        "/api/submission/{course}/{assignment}/{student}",
        "/api/feedback/{course}/{assignment}/{student}", "/healthz",
    ):  # fmt: skip
        assert route in paths


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A server with tiny limits: 1 MiB requests and files, 3 files per upload."""
    data_dir: Path = tmp_path_factory.mktemp("small")
    tokens = write_token_file(data_dir / "tokens.json")
    proc = ServerProcess(
        data_dir,
        ["--token-file", str(tokens), "--admins", "admin", "--max-request-mib", "1",
         "--max-file-mib", "1", "--max-upload-mib", "1", "--max-files-per-upload", "3"],
    )  # fmt: skip
    try:
        proc.wait_ready()
        client = httpx.Client(base_url=proc.url + "/", timeout=30)
        headers = {"Authorization": f"token {token_for('admin')}"}
        ok(client.post("course/c", data={"instructors": '["admin"]'}, headers=headers))
        ok(client.post("assignment/c/a", data={"files": "[]"}, headers=headers))
        yield proc, client, headers
        client.close()
    finally:
        proc.stop()


def blob_files(proc: ServerProcess) -> set[Path]:
    return {p for p in (proc.data_dir / "blobs").rglob("*") if p.is_file()}


def submissions(client, headers) -> list:
    return ok(client.get("submissions/c/a", headers=headers))["submissions"]


def test_body_over_the_limit_is_413(small):
    proc, client, headers = small
    before = blob_files(proc)
    big = encode_files({"big": b"x" * (1024 * 1024)})
    response = client.post("submission/c/a", data={"files": big}, headers=headers)
    fails(response, 413, "Request body exceeds the server limit of 1 MiB")
    assert blob_files(proc) == before and submissions(client, headers) == []


def test_too_many_files_is_413(small):
    _proc, client, headers = small
    files = encode_files({f"f{i}": b"" for i in range(4)})
    response = client.post("submission/c/a", data={"files": files}, headers=headers)
    fails(response, 413, "Too many files: the limit is 3 per upload")


def test_bad_file_after_good_ones_stores_nothing(small):
    proc, client, headers = small
    before = blob_files(proc)
    entries = json.loads(encode_files({"good1": b"new content 1", "good2": b"new content 2"}))
    entries.append({"path": "bad", "content": "***"})
    response = client.post("submission/c/a", data={"files": json.dumps(entries)}, headers=headers)
    fails(response, 400, "Content cannot be base64 decoded")
    entries[-1] = {"path": "../bad", "content": ""}
    response = client.post("submission/c/a", data={"files": json.dumps(entries)}, headers=headers)
    fails(response, 400, "Illegal path")
    assert blob_files(proc) == before and submissions(client, headers) == []


def test_connection_dropped_mid_upload_leaves_nothing(small):
    proc, client, headers = small
    before = blob_files(proc)
    body = ("files=" + encode_files({"partial": b"y" * 200_000})).encode()
    with socket.create_connection(("127.0.0.1", proc.port)) as sock:
        sock.sendall(
            b"POST /api/submission/c/a HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: token {token_for('admin')}\r\n".encode()
            + b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
    assert httpx.get(proc.root + "/healthz").status_code == 200
    assert blob_files(proc) == before and submissions(client, headers) == []
    assert "Traceback" not in proc.log()


def test_token_file_is_reread_when_it_changes(small):
    proc, client, _headers = small
    response = client.get("courses", headers={"Authorization": "token fresh-token"})
    fails(response, 401, "Invalid token")
    tokens = json.loads((proc.data_dir / "tokens.json").read_text())
    tokens["fresh-token"] = "newcomer"
    (proc.data_dir / "tokens.json").write_text(json.dumps(tokens))
    response = client.get("courses", headers={"Authorization": "token fresh-token"})
    assert ok(response)["courses"] == []


def test_no_server_error_in_log(server, small):
    for proc in (server, small[0]):
        assert "Internal server error" not in proc.log()
        assert "Traceback" not in proc.log()
