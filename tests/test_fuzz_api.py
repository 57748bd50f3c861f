"""Fuzzing the whole HTTP API from its own OpenAPI document with Schemathesis.

Every operation gets generated requests (valid and invalid by the schema)
as an admin, an instructor and a student, against a server holding a course
with a release, a submission and feedback, so that generated names sometimes
hit real objects. Checked: no 5xx ever, JSON (or the declared type) always,
and every response matches its declared schema.
"""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from tests.servers import token_for, token_server
from tests.v1util import encode_files, ok

CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


@schemathesis.serializer("application/vnd.ngshare.blob-batch", "application/vnd.ngshare.bundle")
def blob_batch(ctx, value) -> bytes:
    """The generated body of a blob batch or bundle (declared as binary) sent as its bytes."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


COUNTER = {"requests": 0}
EXAMPLES = 10


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    import httpx

    data_dir = tmp_path_factory.mktemp("fuzz")
    proc = token_server(data_dir, "--max-request-mib", "4")

    def as_(user):
        return {"Authorization": f"token {token_for(user)}"}

    for course in ("c", "string"):
        ok(
            httpx.post(
                f"{proc.url}/course/{course}",
                data={"instructors": '["inst1"]'},
                headers=as_("admin"),
            )
        )
        people = [{"username": "stu1", "first_name": "", "last_name": "", "email": ""}]
        ok(
            httpx.post(
                f"{proc.url}/students/{course}",
                data={"students": json.dumps(people)},
                headers=as_("inst1"),
            )
        )
        for name in ("ps1", "string"):
            ok(
                httpx.post(
                    f"{proc.url}/assignment/{course}/{name}",
                    data={"files": encode_files({"q": b"?"})},
                    headers=as_("inst1"),
                )
            )
            stamp = ok(
                httpx.post(
                    f"{proc.url}/submission/{course}/{name}",
                    data={"files": encode_files({"a": b"1"})},
                    headers=as_("stu1"),
                )
            )["timestamp"]
            ok(
                httpx.post(
                    f"{proc.url}/feedback/{course}/{name}/stu1",
                    data={"timestamp": stamp, "files": encode_files({"f": b"x"})},
                    headers=as_("inst1"),
                )
            )
    yield proc
    proc.stop()


def fuzz_operation(operation, mode, fuzz_server) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case) -> None:
        for user in ("admin", "inst1", "stu1"):
            headers = {"Authorization": f"token {token_for(user)}"}
            response = case.call(base_url=fuzz_server.root, headers=headers, timeout=30)
            COUNTER["requests"] += 1
            case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # nothing in the operation can be made invalid (e.g. no parameters at all)
        assert mode is GenerationMode.NEGATIVE


def test_api_never_fails_on_generated_requests(fuzz_server):
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, mode, fuzz_server)


def test_fuzzing_left_the_server_healthy(fuzz_server):
    import httpx

    assert httpx.get(fuzz_server.root + "/readyz").status_code == 200
    log = fuzz_server.log()
    assert "Traceback" not in log and "Internal server error" not in log
    print(f"\nfuzzed requests: {COUNTER['requests']}")
