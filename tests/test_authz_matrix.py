"""Every route of the OpenAPI document, as every role, against its declared rule.

Roles: an admin, the course's instructor, an instructor of another course,
the student named in the path (own), another student of the course, and an
outsider. A route missing from RULES fails the test, so a new route cannot
ship without its permission rule. "Allowed" means anything but 401/403
(the call may still be a 4xx about its arguments); "denied" means 403.
"""

import hashlib
import itertools
import json
import re

import httpx
import pytest

from tests.servers import token_for
from tests.v1util import encode_files, ok

ROLES = {
    "admin": "admin",
    "instructor": "inst1",
    "other_instructor": "inst2",
    "own_student": "stu1",
    "other_student": "stu2",
    "outsider": "outsider",
}
ANYONE = set(ROLES)
ADMIN = {"admin"}
MEMBERS = {"admin", "instructor", "own_student", "other_student"}
INSTRUCTORS = {"admin", "instructor"}
INSTRUCTORS_OR_SELF = {"admin", "instructor", "own_student"}
PUBLIC = {"healthz", "readyz"}

V2 = "/api/v2/courses/{course}"
SUB = V2 + "/assignments/{assignment}/submissions/{student}/{submission_id}"
RULES = {
    ("get", "/api/courses"): ANYONE,
    ("get", "/api/me"): ANYONE,
    ("post", "/api/course/{course}"): ADMIN,
    ("delete", "/api/course/{course}"): ADMIN,
    ("post", "/api/instructor/{course}/{instructor}"): {"admin", "instructor"},  # himself
    ("get", "/api/instructor/{course}/{instructor}"): MEMBERS,
    ("delete", "/api/instructor/{course}/{instructor}"): ADMIN,
    ("get", "/api/instructors/{course}"): MEMBERS,
    ("post", "/api/student/{course}/{student}"): INSTRUCTORS,
    ("get", "/api/student/{course}/{student}"): INSTRUCTORS_OR_SELF,
    ("delete", "/api/student/{course}/{student}"): INSTRUCTORS,
    ("get", "/api/students/{course}"): INSTRUCTORS,
    ("post", "/api/students/{course}"): INSTRUCTORS,
    ("get", "/api/assignments/{course}"): MEMBERS,
    ("get", "/api/assignment/{course}/{assignment}"): MEMBERS,
    ("post", "/api/assignment/{course}/{assignment}"): INSTRUCTORS,
    ("delete", "/api/assignment/{course}/{assignment}"): INSTRUCTORS,
    ("get", "/api/submissions/{course}/{assignment}"): INSTRUCTORS,
    ("get", "/api/submissions/{course}/{assignment}/{student}"): INSTRUCTORS_OR_SELF,
    ("post", "/api/submission/{course}/{assignment}"): MEMBERS,
    ("get", "/api/submission/{course}/{assignment}/{student}"): INSTRUCTORS_OR_SELF,
    ("post", "/api/feedback/{course}/{assignment}/{student}"): INSTRUCTORS,
    ("get", "/api/feedback/{course}/{assignment}/{student}"): INSTRUCTORS_OR_SELF,
    ("get", "/api/v2/courses"): ANYONE,
    ("get", V2 + "/assignments"): MEMBERS,
    ("get", V2 + "/assignments/{assignment}"): MEMBERS,
    ("put", V2 + "/assignments/{assignment}"): INSTRUCTORS,
    ("delete", V2 + "/assignments/{assignment}"): INSTRUCTORS,
    ("get", V2 + "/assignments/{assignment}/archive"): MEMBERS,
    ("get", V2 + "/assignments/{assignment}/collect"): INSTRUCTORS,
    ("get", V2 + "/assignments/{assignment}/submissions"): INSTRUCTORS,
    ("post", V2 + "/assignments/{assignment}/submissions"): MEMBERS,
    ("post", V2 + "/assignments/{assignment}/feedback"): INSTRUCTORS,
    ("get", V2 + "/assignments/{assignment}/submissions/{student}"): INSTRUCTORS_OR_SELF,
    ("get", SUB): INSTRUCTORS_OR_SELF,
    ("get", SUB + "/archive"): INSTRUCTORS_OR_SELF,
    ("put", SUB + "/feedback"): INSTRUCTORS,
    ("get", SUB + "/feedback"): INSTRUCTORS_OR_SELF,
    ("delete", SUB + "/feedback"): INSTRUCTORS,
    ("get", V2 + "/assignments/{assignment}/settings"): MEMBERS,
    ("put", V2 + "/assignments/{assignment}/settings"): INSTRUCTORS,
    ("patch", V2 + "/assignments/{assignment}/settings"): INSTRUCTORS,
    ("get", V2 + "/assignments/{assignment}/extensions"): INSTRUCTORS,
    ("put", V2 + "/assignments/{assignment}/extensions/{student}"): INSTRUCTORS,
    ("delete", V2 + "/assignments/{assignment}/extensions/{student}"): INSTRUCTORS,
    ("get", V2 + "/assignments/{assignment}/solutions"): MEMBERS,
    ("put", V2 + "/assignments/{assignment}/solutions"): INSTRUCTORS,
    ("delete", V2 + "/assignments/{assignment}/solutions"): INSTRUCTORS,
    ("post", V2 + "/blobs/missing"): MEMBERS,
    ("post", V2 + "/blobs"): MEMBERS,
    ("post", V2 + "/blobs/batch"): MEMBERS,
    ("get", V2 + "/blobs/{sha256}"): MEMBERS,
    ("head", V2 + "/blobs/{sha256}"): MEMBERS,
    ("put", V2 + "/blobs/{sha256}"): MEMBERS,
    ("get", V2 + "/blobs/{sha256}/upload"): MEMBERS,
    ("get", V2 + "/events"): INSTRUCTORS,
    ("post", V2 + "/events"): MEMBERS,
}
_numbers = itertools.count(1)


def routes(server) -> list[tuple[str, str]]:
    document = httpx.get(server.url + "/openapi.json").json()
    found = [(method, path) for path, ops in document["paths"].items() for method in ops]
    return [r for r in found if r[1].rsplit("/", 1)[-1] not in PUBLIC]


def test_every_schema_reference_in_the_document_resolves(server):
    """Routes that read their bodies themselves name their schemas by $ref; each one
    must be among the document's components (the fuzzer and readers follow them)."""
    document = httpx.get(server.url + "/openapi.json").json()
    named = set(document["components"]["schemas"])
    used = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert "Manifest" in used and "BulkFeedback" in used
    assert sorted(used - named) == []


def test_every_operation_has_an_id_of_its_own(server):
    """Client generators key their methods by operationId and refuse duplicates (a
    route serving GET and HEAD once gave both the same id, with a warning at start)."""
    document = httpx.get(server.url + "/openapi.json").json()
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) > 50
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []


def test_every_route_has_a_rule(server):
    assert sorted(set(routes(server)) - set(RULES)) == []
    assert sorted(set(RULES) - set(routes(server))) == []


def make_course(api) -> dict[str, object]:
    """A course with an instructor, two students, a release, a submission with feedback."""
    name = f"matrix{next(_numbers)}"
    ok(api("admin").post(f"course/{name}", data={"instructors": '["inst1"]'}))
    ok(api("admin").post(f"course/{name}-other", data={"instructors": '["inst2"]'}))
    people = [
        {"username": s, "first_name": "", "last_name": "", "email": ""} for s in ("stu1", "stu2")
    ]
    ok(api("inst1").post(f"students/{name}", data={"students": json.dumps(people)}))
    ok(api("inst1").post(f"assignment/{name}/ps1", data={"files": encode_files({"q": b"?"})}))
    stamp = ok(
        api("stu1").post(f"submission/{name}/ps1", data={"files": encode_files({"a": b"mine"})})
    )["timestamp"]
    ok(
        api("inst1").post(
            f"feedback/{name}/ps1/stu1",
            data={"timestamp": stamp, "files": encode_files({"f": b"fb"})},
        )
    )
    listed = api("inst1").get(f"v2/courses/{name}/assignments/ps1/submissions").json()
    return {
        "course": name,
        "assignment": "ps1",
        "student": "stu1",
        "instructor": "inst1",
        "submission_id": listed["submissions"][0]["id"],
        "sha256": hashlib.sha256(b"mine").hexdigest(),
    }


def call(server, method: str, path: str, user: str, values: dict) -> httpx.Response:
    url = server.root + path.format(**values)
    headers = {"Authorization": f"token {token_for(user)}"}
    kwargs: dict = {}
    if method in ("put", "post") and "/v2/" in path:
        kwargs["json"] = {"files": [], "sha256": [], "action": "fetch", "assignment": "ps1"}
    if path.endswith("/blobs/{sha256}") and method == "put":
        kwargs = {"content": b"mine", "params": {"size": 4}}
    return httpx.request(method.upper(), url, headers=headers, timeout=30, **kwargs)


@pytest.mark.parametrize("route", sorted(RULES), ids=lambda r: f"{r[0].upper()} {r[1]}")
def test_route_permissions(server, api, route):
    method, path = route
    mutating = method != "get"
    shared = None if mutating else make_course(api)
    for role, user in ROLES.items():
        values = make_course(api) if mutating else shared
        response = call(server, method, path, user, values)
        if role in RULES[route]:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)
        assert response.status_code < 500, response.text
