"""The start page (my courses), logout, static files and the redirect from the prefix."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ngshare.auth.session import end_session
from ngshare.domain.courses import course_names
from ngshare.web.pages import (
    Form,
    PageRoute,
    State,
    ViewerDep,
    page_url,
    prefix_of,
    render,
    static_response,
)
from ngshare.web.queries import courses_overview

router = APIRouter(route_class=PageRoute)


@router.get("/")
def prefix_root(state: State) -> RedirectResponse:
    """`<prefix>` itself opens the pages; the API lives below it."""
    return RedirectResponse(page_url(state), status_code=302)


@router.get("/ui")
def ui_without_slash(state: State) -> RedirectResponse:
    return RedirectResponse(page_url(state), status_code=302)


@router.get("/static/{name}")
def static_file(name: str, request: Request) -> Response:
    return static_response(request, name)


@router.get("/ui/")
def my_courses(request: Request, viewer: ViewerDep, state: State) -> HTMLResponse:
    with state.db.read() as session:
        names = None if viewer.user.admin else course_names(session, viewer.user)
        courses = courses_overview(session, names, viewer.name)
    return render(request, "home.html", viewer, title="My courses", courses=courses)


@router.post("/ui/logout")
def logout(request: Request, form: Form, state: State) -> RedirectResponse:
    response = RedirectResponse(page_url(state, "logged-out"), status_code=303)
    end_session(response, prefix_of(state))
    return response


@router.get("/ui/logged-out")
def logged_out(request: Request, state: State) -> HTMLResponse:
    login = f"{prefix_of(state)}login?{urlencode({'next': page_url(state)})}"
    return render(request, "logged_out.html", None, title="Logged out", login=login)
