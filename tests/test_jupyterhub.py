"""ngshare as a service of a real JupyterHub, behind the real configurable-http-proxy.

One hub runs for the whole module with two managed services:

- `ngshare`, started with `--admins alice`;
- `ngshare-hubadmins`, started with `--hub-admins`.

`hubadmin` is a JupyterHub admin (`admin_users`); `bob` is a plain user.
Tokens are minted through the Hub API by a test service holding
`admin:users` and `tokens`.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ngshare.client import ClientError, NgshareClient
from tests.exchange_util import build_venv, fails
from tests.hub import HubProcess, ensure_proxy
from tests.nbgrader_env import Person, plugin_config

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral]

USERS = ["alice", "bob", "hubadmin"]
MAIN = "ngshare"
HUBADMINS = "ngshare-hubadmins"
DENIED = {
    "success": False,
    "message": "Permission denied (token does not grant access to this service)",
}

_course_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def chp() -> Path:
    """configurable-http-proxy from npm; an install failure fails the tests."""
    return ensure_proxy()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, chp: Path) -> Iterator[HubProcess]:
    process = HubProcess(
        tmp_path_factory.mktemp("hub"),
        services={MAIN: ["--admins", "alice"], HUBADMINS: ["--hub-admins"]},
        admin_users=["hubadmin"],
        proxy=chp,
    )
    try:
        process.wait_ready()
        for user in USERS:
            process.create_user(user)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def tokens(hub: HubProcess) -> dict[str, str]:
    """A token with the user's default permissions, per user."""
    return {user: hub.new_token(user) for user in USERS}


def client(base: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def service_api(hub: HubProcess, service: str, token: str | None = None) -> httpx.Client:
    """A client of `service` through the proxy, e.g. `.get("me")`."""
    return client(hub.url + hub.services[service].prefix, token)


def new_course() -> str:
    return f"hubcourse{next(_course_numbers)}"


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Set-Cookie headers of a response: name -> attributes (lower-case), plus `value`."""
    cookies: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        parsed = {"value": value}
        for attribute in attributes:
            key, _, attr_value = attribute.partition("=")
            parsed[key.lower()] = attr_value
        cookies[name] = parsed
    return cookies


# --- API tokens ---


def test_hub_token_through_proxy_and_direct(hub: HubProcess, tokens: dict[str, str]) -> None:
    with service_api(hub, MAIN, tokens["bob"]) as bob:
        response = bob.get("me")
    assert response.status_code == 200
    assert response.json() == {"success": True, "username": "bob", "admin": False}

    direct = hub.services[MAIN].url + hub.services[MAIN].prefix
    with client(direct, tokens["alice"]) as alice:
        response = alice.get("me")
    assert response.json() == {"success": True, "username": "alice", "admin": True}


def test_v1_calls_with_hub_tokens(hub: HubProcess, tokens: dict[str, str]) -> None:
    course = new_course()
    with (
        service_api(hub, MAIN, tokens["alice"]) as alice,
        service_api(hub, MAIN, tokens["bob"]) as bob,
    ):
        created = alice.post(f"course/{course}", data={"instructors": '["bob"]'})
        assert created.json() == {"success": True}
        listed = bob.get("courses")
        assert listed.status_code == 200
        assert course in listed.json()["courses"]
        students = bob.get(f"students/{course}")
        assert students.json() == {"success": True, "students": []}


def test_token_scoped_to_service_only(hub: HubProcess) -> None:
    token = hub.new_token("bob", [f"access:services!service={MAIN}"])
    with service_api(hub, MAIN, token) as main:
        assert main.get("me").json()["username"] == "bob"
    with service_api(hub, HUBADMINS, token) as other:
        response = other.get("me")
    assert response.status_code == 403
    assert response.json() == DENIED


def test_token_without_service_access_is_refused(hub: HubProcess) -> None:
    token = hub.new_token("bob", ["read:users:name!user=bob"])
    with service_api(hub, MAIN, token) as bob:
        me = bob.get("me")
        courses = bob.get("courses")
    assert me.status_code == 403
    assert me.json() == DENIED
    assert courses.status_code == 403
    assert courses.json() == DENIED


def test_a_token_without_service_access_is_named_so_by_v2_and_the_plugin(
    hub: HubProcess, tmp_path: Path
) -> None:
    """Not a course permission: v2's reason is `token_scope`, and nbgrader's one line
    says what to ask the hub's administrator for, not to enrol."""
    token = hub.new_token("bob", ["read:users:name!user=bob"])
    with service_api(hub, MAIN, token) as bob:
        refused = bob.get("v2/courses")
    assert refused.status_code == 403
    assert refused.json()["error"]["reason"] == "token_scope"
    url = hub.url + hub.services[MAIN].prefix
    bob_nbgrader = Person("bob", token, build_venv(), tmp_path / "bob", plugin_config("c1", url))
    assert fails(bob_nbgrader, "list") == (
        "Cannot list the assignments of course c1: your JupyterHub token does not give"
        " access to the ngshare service (it needs the access:services scope); ask your hub"
        " administrator to grant it to users"
    )


def test_a_stopped_service_is_named_so_through_the_real_proxy(tmp_path: Path, chp: Path) -> None:
    """The service killed (before the Hub notices and starts it again), the proxy
    answers its 503 page: the client says the service is not answering."""
    hub = HubProcess(tmp_path, services={"down": []}, admin_users=[], proxy=chp)
    try:
        hub.wait_ready()
        hub.create_user("carol")
        url = hub.url + hub.services["down"].prefix
        with NgshareClient(url, hub.new_token("carol"), retries=0) as client:
            assert client.courses() == []
            pids = hub.service_pids("down")
            assert pids
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while hub.service_pids("down") & pids and time.monotonic() < deadline:
                time.sleep(0.05)
            with pytest.raises(ClientError) as caught:
                client.courses()
    finally:
        hub.stop()
    assert (caught.value.status, caught.value.reason) == (503, "unavailable")
    assert str(caught.value).endswith(
        "answered HTTP 503: the ngshare service is not answering (stopped or restarting);"
        " try again in a minute"
    )


def test_garbage_and_missing_tokens_are_401(hub: HubProcess) -> None:
    with service_api(hub, MAIN, "not-a-real-token-" + "0" * 20) as garbage:
        response = garbage.get("courses")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False and body["message"]

    with service_api(hub, MAIN) as anonymous:
        response = anonymous.get("me")
    assert response.status_code == 401
    assert response.json()["success"] is False


@pytest.mark.parametrize("path", ["/hub/", "/services/no-such-service/", "/user/alice/"])
def test_the_client_at_a_url_of_the_hub_that_is_not_the_service(
    hub: HubProcess, tokens: dict[str, str], path: str
) -> None:
    """A wrong service URL reaches the hub's own pages: the client's error says to
    check the URL (not a decoding error's traceback, nor a bare status)."""
    with (
        NgshareClient(hub.url + path, tokens["alice"], retries=0) as wrong,
        pytest.raises(ClientError) as caught,
    ):
        wrong.courses()
    assert "check the ngshare service's URL" in str(caught.value), str(caught.value)
    assert str(caught.value).startswith(f"GET {hub.url}{path}v2/courses answered HTTP ")


# --- Admins ---


def test_admins_flag(hub: HubProcess, tokens: dict[str, str]) -> None:
    with service_api(hub, HUBADMINS, tokens["alice"]) as alice_elsewhere:
        # --admins is per server: alice is a plain user of the other service.
        assert alice_elsewhere.get("me").json()["admin"] is False
        response = alice_elsewhere.post(f"course/{new_course()}")
        assert response.status_code == 403
        assert response.json()["success"] is False


def test_hub_admin_is_not_admin_by_default(hub: HubProcess, tokens: dict[str, str]) -> None:
    course = new_course()
    with service_api(hub, MAIN, tokens["hubadmin"]) as admin:
        assert admin.get("me").json() == {"success": True, "username": "hubadmin", "admin": False}
        response = admin.post(f"course/{course}")
        assert response.status_code == 403
        assert response.json()["success"] is False
        assert course not in admin.get("courses").json()["courses"]


def test_hub_admin_is_admin_with_hub_admins(hub: HubProcess, tokens: dict[str, str]) -> None:
    course = new_course()
    with service_api(hub, HUBADMINS, tokens["hubadmin"]) as admin:
        assert admin.get("me").json() == {"success": True, "username": "hubadmin", "admin": True}
        assert admin.post(f"course/{course}").json() == {"success": True}
    with service_api(hub, HUBADMINS, tokens["bob"]) as bob:
        assert bob.get("me").json()["admin"] is False
        assert bob.post(f"course/{new_course()}").status_code == 403

    # A minimal token (like the one a browser login gets) still carries the admin flag.
    minimal = hub.new_token("hubadmin", [f"access:services!service={HUBADMINS}"])
    with service_api(hub, HUBADMINS, minimal) as admin:
        assert admin.get("me").json() == {"success": True, "username": "hubadmin", "admin": True}


# --- Browser login (OAuth) ---


def browser_client(hub: HubProcess) -> httpx.Client:
    """A cookie-keeping client of the proxy that does not follow redirects by itself."""
    return httpx.Client(base_url=hub.url, timeout=30, follow_redirects=False)


def hub_login(browser: httpx.Client, user: str) -> None:
    """Log in to the hub with the dummy authenticator (any password)."""
    page = browser.get("/hub/login")
    assert page.status_code == 200
    found = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
    xsrf = found.group(1) if found else browser.cookies.get("_xsrf", "")
    response = browser.post(
        "/hub/login", data={"username": user, "password": "anything", "_xsrf": xsrf}
    )
    assert response.status_code == 302, response.text
    assert "jupyterhub-hub-login" in browser.cookies


def start_service_login(browser: httpx.Client, prefix: str, next_page: str) -> httpx.Response:
    """GET <prefix>login and follow the hub's authorize redirect up to our callback."""
    start = browser.get(prefix + "login", params={"next": next_page})
    assert start.status_code == 302
    state_cookie = set_cookies(start)["ngshare-oauth-state"]
    assert "httponly" in state_cookie
    assert state_cookie["path"] == prefix
    authorize = start.headers["location"]
    assert urlsplit(authorize).path == "/hub/api/oauth2/authorize"
    granted = browser.get(authorize)
    assert granted.status_code == 302, granted.text
    return granted


def test_browser_oauth_login(hub: HubProcess, tokens: dict[str, str]) -> None:
    prefix = hub.services[MAIN].prefix
    with browser_client(hub) as browser:
        hub_login(browser, "alice")
        granted = start_service_login(browser, prefix, prefix + "me")
        callback = urlsplit(granted.headers["location"])
        assert callback.path == prefix + "oauth_callback"
        assert set(parse_qs(callback.query)) >= {"code", "state"}

        finished = browser.get(granted.headers["location"])
        assert finished.status_code == 302
        assert finished.headers["location"] == prefix + "me"
        login_cookie = set_cookies(finished)["ngshare-login"]
        assert "httponly" in login_cookie
        assert login_cookie["path"] == prefix
        assert login_cookie["samesite"].lower() == "lax"
        assert "ngshare-oauth-state" not in browser.cookies  # used once, then deleted

        # Only the cookie identifies the browser: no Authorization header is sent.
        assert "authorization" not in browser.headers
        me = browser.get(prefix + "me")
        assert me.status_code == 200
        assert me.json() == {"success": True, "username": "alice", "admin": True}
        assert browser.get(prefix + "courses").status_code == 200

        # The cookie is scoped to this service's prefix, not its sibling's.
        other = browser.get(hub.services[HUBADMINS].prefix + "me")
        assert other.status_code == 401

        # Mutations need the Authorization header, even for an admin's cookie.
        course = new_course()
        refused = browser.post(prefix + f"course/{course}")
        assert refused.status_code == 401
        assert refused.json()["success"] is False

        # Logging out of ngshare drops the cookie.
        assert browser.get(prefix + "logout").json() == {"success": True}
        assert "ngshare-login" not in browser.cookies
        assert browser.get(prefix + "me").status_code == 401
    with service_api(hub, MAIN, tokens["alice"]) as alice:
        assert course not in alice.get("courses").json()["courses"]


def test_oauth_callback_with_wrong_state_is_refused(hub: HubProcess) -> None:
    prefix = hub.services[MAIN].prefix
    with browser_client(hub) as browser:
        hub_login(browser, "bob")
        granted = start_service_login(browser, prefix, prefix + "me")
        callback = urlsplit(granted.headers["location"])
        code = parse_qs(callback.query)["code"][0]
        # A genuine code from the hub, but not the state this browser was given.
        response = browser.get(
            prefix + "oauth_callback", params={"code": code, "state": "forged-state"}
        )
        assert response.status_code == 400
        assert response.json() == {
            "success": False,
            "message": "OAuth state does not match; open the page again",
        }
        assert "ngshare-login" not in set_cookies(response)
        assert browser.get(prefix + "me").status_code == 401


def test_oauth_callback_without_started_login_is_refused(hub: HubProcess) -> None:
    prefix = hub.services[MAIN].prefix
    with browser_client(hub) as stranger:
        response = stranger.get(prefix + "oauth_callback", params={"code": "x", "state": "y"})
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "ngshare-login" not in set_cookies(response)
