"""Operations: readiness, Prometheus metrics, request ids and structured logs."""

import base64
import json
import os
import shutil
import time

import httpx
import pytest

from tests.servers import token_for, token_server
from tests.v1util import encode_files, ok


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ops")
    proc = token_server(data_dir, "--metrics-token", "prom-secret", "--log-format", "json")
    yield proc
    proc.stop()


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"token {token_for(user)}"}


def test_readyz_checks_database_and_storage(ops_server):
    for url in (ops_server.root + "/readyz", ops_server.url + "/readyz"):
        assert httpx.get(url).json() == {"success": True, "database": "ok", "storage": "ok"}
    tmp = ops_server.data_dir / "blobs" / "tmp"
    shutil.rmtree(tmp)
    tmp.write_text("not a directory any more")  # the store can no longer take uploads
    try:
        response = httpx.get(ops_server.root + "/readyz")
        assert response.status_code == 503
        assert response.json()["storage"].startswith("failed")
        assert response.json()["database"] == "ok"
        assert httpx.get(ops_server.root + "/healthz").status_code == 200  # alive all the same
    finally:
        tmp.unlink()
        tmp.mkdir()
    assert httpx.get(ops_server.root + "/readyz").status_code == 200


def test_metrics_need_the_token_or_an_admin(ops_server):
    url = ops_server.url + "/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=auth("stu1")).status_code == 403
    assert httpx.get(url, headers=auth("admin")).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert (
        httpx.get(
            ops_server.root + "/metrics", headers={"Authorization": "Bearer prom-secret"}
        ).status_code
        == 200
    )


def test_metrics_count_requests_bytes_and_storage(ops_server):
    api = httpx.Client(base_url=ops_server.url + "/", headers=auth("admin"))
    ok(api.post("course/metered", data={"instructors": '["admin"]'}))
    payload = b"x" * 50_000
    ok(api.post("assignment/metered/a", data={"files": encode_files({"f": payload})}))
    ok(api.get("assignment/metered/a"))
    # a path with letters, so that it cannot turn up inside a number of the exposition
    # (a `_created` timestamp once held the digits 12345)
    assert api.get("no/such/route/unrouted-qzx").status_code == 404
    text = httpx.get(
        ops_server.url + "/metrics", headers={"Authorization": "Bearer prom-secret"}
    ).text
    lines = text.splitlines()
    # a path no route matches is counted under one label, whatever the path was
    assert any('route="unmatched"' in x and 'status="404"' in x for x in lines)
    assert "unrouted-qzx" not in text
    route_line = [
        line
        for line in lines
        if line.startswith("ngshare_requests_total")
        and 'route="v1.assignments.release_assignment"' in line
        and 'method="POST"' in line
        and 'status="200"' in line
    ]
    assert route_line and float(route_line[0].split()[-1]) >= 1
    assert 'ngshare_course_storage_bytes{course="metered"} 50000.0' in lines
    bytes_in = [line for line in lines if line.startswith("ngshare_bytes_in_total")]
    assert float(bytes_in[0].split()[-1]) > 50_000
    assert any(line.startswith("ngshare_request_seconds_bucket") for line in lines)
    assert any(line.startswith("ngshare_uploads_in_flight") for line in lines)
    assert "ngshare_v1_recognised_bytes_total 0.0" in lines
    # a submission repeating the release's dataset, as ngshare_exchange sends it
    # (b64encode): recognised as the stored file once its first piece is decoded
    dataset = [{"path": "d.bin", "content": base64.b64encode(os.urandom(3 << 20)).decode()}]
    ok(api.post("assignment/metered/b", data={"files": json.dumps(dataset)}))
    student = {"first_name": "S", "last_name": "One", "email": "s@example.org"}
    ok(api.post("student/metered/stu1", data=student))
    ok(
        httpx.post(
            ops_server.url + "/submission/metered/b",
            data={"files": json.dumps(dataset)},
            headers=auth("stu1"),
        )
    )
    text = httpx.get(ops_server.url + "/metrics", headers=auth("admin")).text
    recognised = [x for x in text.splitlines() if x.startswith("ngshare_v1_recognised_bytes_total")]
    assert float(recognised[0].split()[-1]) == 3 << 20
    api.close()


def test_request_ids_and_json_logs_without_tokens(ops_server):
    response = httpx.get(
        ops_server.url + "/courses", headers={**auth("stu1"), "X-Request-Id": "trace-123"}
    )
    assert response.headers["x-request-id"] == "trace-123"
    made_up = httpx.get(ops_server.url + "/courses", headers=auth("stu1"))
    assert len(made_up.headers["x-request-id"]) == 16
    bad = httpx.get(ops_server.url + "/courses", headers={"X-Request-Id": "a b\tc"})
    assert bad.headers["x-request-id"] != "a b\tc"
    deadline = time.monotonic() + 5  # the access line is written once the response is sent
    while True:
        log = ops_server.log()
        # whole lines only: a line the server is writing may be read half-written (a
        # write that crosses a page of the file shows one page at a time)
        whole = log[: log.rfind("\n") + 1]
        entries = [json.loads(line) for line in whole.splitlines() if line.startswith("{")]
        ours = [e for e in entries if e.get("request_id") == "trace-123"]
        if ours or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ours and ours[-1]["path"] == "/api/courses" and ours[-1]["user"] == "stu1"
    assert ours[-1]["status"] == 200
    assert token_for("stu1") not in log and token_for("admin") not in log
    assert "prom-secret" not in log
