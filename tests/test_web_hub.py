"""The web pages behind a real JupyterHub: log in through the Hub's OAuth flow in chromium.

ngshare runs as a managed service of a hub with the dummy authenticator;
the browser opens the service's prefix, is sent through the hub's login and
OAuth authorization, lands on the pages, and uses a form (whose CSRF token
is derived from the Hub token in the session).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hub import HubProcess, ensure_proxy
from tests.webutil import VIEWPORT, chromium_browser

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral]

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = HubProcess(
        tmp_path_factory.mktemp("hub-web"),
        services={"ngshare": ["--admins", "alice"]},
        admin_users=[],
        proxy=ensure_proxy(),
    )
    try:
        process.wait_ready()
        for user in ("alice", "bob"):
            process.create_user(user)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def chromium():
    yield from chromium_browser()


def hub_login(chromium, hub: HubProcess, user: str):
    """Open the service in a fresh window; log in at the hub when it asks."""
    prefix = hub.services["ngshare"].prefix
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(hub.url + prefix)
    page.wait_for_url("**/hub/login**")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill("any password")
    with page.expect_navigation(url=f"**{prefix}ui/"):
        page.locator("#login_submit").click()
    return context, page


def test_pages_after_hub_oauth_login(chromium, hub):
    prefix = hub.services["ngshare"].prefix
    context, page = hub_login(chromium, hub, "alice")
    try:
        assert page.locator(".who strong").inner_text() == "alice"
        page.get_by_role("link", name="All courses (admin)").click()
        page.get_by_label("Course name").fill("hub101")
        page.get_by_label("Instructors", exact=True).fill("bob")
        with page.expect_navigation():
            page.get_by_role("button", name="Create course").click()
        assert page.locator(".flash p").inner_text() == "Course hub101 created."
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["ngshare-login"]["path"] == prefix
        assert cookies["ngshare-login"]["httpOnly"]
        with page.expect_navigation():
            page.get_by_role("button", name="Log out").click()
        assert "You are logged out" in page.locator("main").inner_text()
        page.goto(hub.url + prefix + "ui/admin")  # the hub still knows alice: back in at once
        page.wait_for_url(f"**{prefix}ui/admin")
        assert "hub101" in page.locator("main").inner_text()
    finally:
        context.close()

    context, page = hub_login(chromium, hub, "bob")
    try:
        assert page.get_by_role("link", name="All courses (admin)").count() == 0
        page.get_by_role("link", name="hub101").click()
        page.get_by_role("link", name="Roster").click()
        assert page.get_by_role("heading", level=1).inner_text() == "Roster of hub101"
        page.goto(hub.url + prefix + "ui/admin")
        assert page.get_by_role("heading", level=1).inner_text() == "Permission denied"
    finally:
        context.close()
