"""Browser login without a Hub: the token form, the session cookie, logout."""

import httpx

from tests.servers import token_for
from tests.v1util import fails, ok


def test_token_form_starts_a_session_usable_for_reads_only(server, course):
    with httpx.Client(base_url=server.root) as browser:
        form = browser.get("/api/login", params={"next": "/api/courses"})
        assert form.status_code == 200 and 'name="credential"' in form.text
        assert 'type="password"' in form.text
        bad = browser.post("/api/login", data={"credential": "wrong", "next": "/api/courses"})
        assert bad.status_code == 401 and "Not accepted: Invalid token" in bad.text
        assert "ngshare-login" not in browser.cookies
        good = browser.post(
            "/api/login", data={"credential": token_for("stu1"), "next": "/api/courses"}
        )
        assert good.status_code == 303 and good.headers["location"] == "/api/courses"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "Path=/api/" in cookie and "SameSite=lax" in cookie
        assert course in ok(browser.get("/api/courses"))["courses"]
        assert browser.get("/api/v2/courses").status_code == 200
        # a change needs the Authorization header, never the cookie alone
        fails(
            browser.post(f"/api/submission/{course}/x", data={"files": "[]"}),
            401,
            "Login required (send Authorization: token ...)",
        )
        assert ok(browser.get("/api/logout")) == {"success": True}
        browser.cookies.clear()
        fails(browser.get("/api/courses"), 401, "Login required (send Authorization: token ...)")


def test_login_never_redirects_off_site(server):
    with httpx.Client(base_url=server.root) as browser:
        for target in ("https://evil.example/", "//evil.example/", "/elsewhere", "/api\\..\\x"):
            response = browser.post(
                "/api/login", data={"credential": token_for("stu1"), "next": target}
            )
            assert response.headers["location"] == "/api/"


def test_forged_cookie_is_ignored(server):
    with httpx.Client(base_url=server.root, cookies={"ngshare-login": "forged.value"}) as browser:
        assert browser.get("/api/courses").status_code == 401
