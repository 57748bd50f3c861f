"""What every page needs: the logged-in viewer, CSRF-checked forms, templates, flash messages.

Pages use the session cookie only (never an Authorization header or a `user`
field): a visitor without a valid session is sent to `<prefix>login` and
comes back afterwards. Every POST carries the session's CSRF token in the
`csrf` field and is refused with 403 before anything else happens when it
does not match. A POST answers with a redirect (303) to a page, carrying a
flash message in a short-lived signed cookie (POST-redirect-GET).

Errors become HTML pages with the status the API would give (404 for a
course that does not exist, 403 for one the viewer has no part in), and
every response of the pages carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ngshare.api.permissions import CourseContext, load_course_context
from ngshare.auth import User
from ngshare.auth.session import check_csrf, csrf_token, session_credential
from ngshare.bodies import declared_length
from ngshare.errors import NgshareError, NotFound, PermissionDenied, Unauthenticated
from ngshare.state import AppState, get_state, state_dependency
from ngshare.timestamps import format_v1

log = logging.getLogger("ngshare.web")

HERE = Path(__file__).parent
FLASH_COOKIE = "ngshare-flash"
FLASH_MAX_AGE = 300
FLASH_MAX_BYTES = 3500  # a browser keeps cookies up to about 4 KB
MAX_FORM_BYTES = 8 * 2**20
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class LoginRequired(Exception):
    """No valid session: send the browser to the login page."""


def prefix_of(state: AppState) -> str:
    return state.settings.prefix or "/api/"


# Static files, read once: a stylesheet and a small script.

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
STATIC: dict[str, tuple[bytes, str, str]] = {}
for _path in sorted((HERE / "static").iterdir()):
    if _path.suffix in STATIC_TYPES:
        _data = _path.read_bytes()
        STATIC[_path.name] = (_data, STATIC_TYPES[_path.suffix], hashlib.sha256(_data).hexdigest())


def static_response(request: Request, name: str) -> Response:
    if name not in STATIC:
        raise NotFound("Not found")
    data, media_type, digest = STATIC[name]
    headers = {"ETag": f'"{digest[:16]}"', "Cache-Control": "public, max-age=86400"}
    if headers["ETag"] in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


# Templates


def _when(moment: datetime | None) -> str:
    """`2024-05-01 10:30:47 UTC` (seconds are enough to tell submissions apart on a page)."""
    if moment is None:
        return ""
    return format_v1(moment)[:19] + " UTC"


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["when"] = _when
TEMPLATES.filters["size"] = _size
TEMPLATES.filters["iso"] = lambda moment: moment.isoformat() if moment else ""


def page_url(state: AppState, *parts: object, **query: object) -> str:
    """`<prefix>ui/<part>/<part>?<query>`, each part percent-encoded whole."""
    path = prefix_of(state) + "ui/" + "/".join(quote(str(p), safe="") for p in parts)
    pairs = {k: v for k, v in query.items() if v is not None}
    return path + ("?" + urlencode(pairs) if pairs else "")


@dataclass(frozen=True)
class Viewer:
    """The logged-in person looking at a page."""

    user: User
    credential: str

    @property
    def name(self) -> str:
        return self.user.name


def render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    title: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    state = get_state(request)
    flash = take_flash(request, state)
    context.setdefault("nav", "")
    context.setdefault("tab", "")
    body = TEMPLATES.get_template(template).render(
        title=title,
        viewer=viewer,
        csrf=csrf_token(state.signer, viewer.credential) if viewer else "",
        prefix=prefix_of(state),
        url=lambda *parts, **query: page_url(state, *parts, **query),
        static=lambda name: f"{prefix_of(state)}static/{name}?v={STATIC[name][2][:10]}",
        flash=flash,
        **context,
    )
    response = HTMLResponse(body, status_code=status)
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path=prefix_of(state) + "ui/")
    return response


# Flash messages: one signed cookie, read and cleared by the next page.


def take_flash(request: Request, state: AppState) -> dict | None:
    saved = state.signer.load(
        request.cookies.get(FLASH_COOKIE), purpose="flash", max_age=FLASH_MAX_AGE
    )
    if not isinstance(saved, dict):
        return None
    kind = saved.get("kind")
    return {
        "kind": kind if kind in ("ok", "warning", "error") else "ok",
        "text": str(saved.get("text", "")),
        "report": saved.get("report") or [],
        "omitted": saved.get("omitted") or 0,
    }


def redirect(
    request: Request,
    target: str,
    message: str,
    *,
    kind: str = "ok",
    report: list[list] | None = None,
) -> RedirectResponse:
    """303 to `target`, and the message (with an optional per-row report) shown there."""
    state = get_state(request)
    response = RedirectResponse(target, status_code=303)
    flash: dict[str, Any] = {"kind": kind, "text": message}
    if report:
        flash["report"] = report
        value = state.signer.dump(flash, purpose="flash")
        if len(value) > FLASH_MAX_BYTES:
            # too long for a cookie: keep the rows that need attention, count the rest
            shown = [r for r in report if r[2] != "added" and r[2] != "updated"]
            flash["report"] = shown
            flash["omitted"] = len(report) - len(shown)
            value = state.signer.dump(flash, purpose="flash")
            while len(value) > FLASH_MAX_BYTES and flash["report"]:
                flash["report"] = flash["report"][: len(flash["report"]) // 2]
                flash["omitted"] = len(report) - len(flash["report"])
                value = state.signer.dump(flash, purpose="flash")
    else:
        value = state.signer.dump(flash, purpose="flash")
    response.set_cookie(
        FLASH_COOKIE,
        value,
        max_age=FLASH_MAX_AGE,
        path=prefix_of(state) + "ui/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto", "").startswith("https"),
    )
    return response


# Dependencies


async def current_viewer(request: Request, state: AppState = Depends(state_dependency)) -> Viewer:
    credential = session_credential(request, state.signer)
    if not credential:
        raise LoginRequired()
    try:
        user = await state.authenticator.user_for_credential(credential)
    except Unauthenticated:
        raise LoginRequired() from None
    request.state.user = user.name  # for the access log
    return Viewer(user=user, credential=credential)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
State = Annotated[AppState, Depends(state_dependency)]


async def checked_form(request: Request, viewer: ViewerDep, state: State) -> FormData:
    """The submitted form, once its CSRF token matches the session's (else 403)."""
    declared = declared_length(request)
    if declared is not None and declared > MAX_FORM_BYTES:
        raise NgshareError(
            f"The form is larger than {MAX_FORM_BYTES // 2**20} MB", status=413, reason="too_large"
        )
    form = await request.form(max_files=1, max_fields=64)
    token = form.get("csrf")
    check_csrf(state.signer, viewer.credential, token if isinstance(token, str) else None)
    return form


Form = Annotated[FormData, Depends(checked_form)]


def text_field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def file_field(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    return value if isinstance(value, UploadFile) and value.filename else None


@dataclass(frozen=True)
class CoursePage:
    """The viewer and their standing in the course named in the path."""

    viewer: Viewer
    ctx: CourseContext

    @property
    def course(self) -> str:
        return self.ctx.course

    @property
    def course_id(self) -> int:
        return self.ctx.course_id

    @property
    def is_instructor(self) -> bool:
        return self.ctx.is_instructor

    @property
    def role(self) -> str:
        """What the pages show: admin, instructor or student."""
        if self.viewer.user.admin and self.ctx.role != "instructor":
            return "admin"
        return self.ctx.role or ""


def course_page(course: str, viewer: ViewerDep, state: State) -> CoursePage:
    """404 when there is no such course (whoever asks), like the API."""
    return CoursePage(viewer, load_course_context(state, course, viewer.user))


CourseDep = Annotated[CoursePage, Depends(course_page)]


def member_page(page: CourseDep) -> CoursePage:
    if not page.ctx.is_member:
        raise PermissionDenied()
    return page


def instructor_page(page: CourseDep) -> CoursePage:
    if not page.ctx.is_instructor:
        raise PermissionDenied()
    return page


def admin_page(page: CourseDep) -> CoursePage:
    if not page.viewer.user.admin:
        raise PermissionDenied()
    return page


def admin_viewer(viewer: ViewerDep) -> Viewer:
    if not viewer.user.admin:
        raise PermissionDenied()
    return viewer


CourseMember = Annotated[CoursePage, Depends(member_page)]
CourseInstructor = Annotated[CoursePage, Depends(instructor_page)]
CourseAdmin = Annotated[CoursePage, Depends(admin_page)]
AdminDep = Annotated[Viewer, Depends(admin_viewer)]


# The route class: HTML errors, login redirects, security headers.


async def _viewer_or_none(request: Request, state: AppState) -> Viewer | None:
    try:
        return await current_viewer(request, state)
    except (LoginRequired, NgshareError):
        return None


def _login_redirect(request: Request, state: AppState) -> RedirectResponse:
    prefix = prefix_of(state)
    if request.method in ("GET", "HEAD"):
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        back = prefix + "ui/"
    return RedirectResponse(f"{prefix}login?{urlencode({'next': back})}", status_code=303)


async def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    state = get_state(request)
    viewer = await _viewer_or_none(request, state)
    titles = {400: "Bad request", 403: "Permission denied", 404: "Not found", 413: "Too large"}
    return render(
        request,
        "error.html",
        viewer,
        title=titles.get(status, "Error"),
        status=status,
        code=status,
        message=message,
    )


class PageRoute(APIRoute):
    """An APIRoute whose errors are pages and whose responses carry the security headers."""

    def get_route_handler(self):  # type: ignore[no-untyped-def]
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            state = get_state(request)
            try:
                response = await handler(request)
            except LoginRequired:
                response = _login_redirect(request, state)
            except NgshareError as exc:
                response = await error_page(request, exc.status, exc.message)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(part) for part in first.get("loc", ())[1:])
                message = f"Invalid request: {where} {first.get('msg', '')}".strip()
                response = await error_page(request, 400, message)
            except StarletteHTTPException as exc:
                response = await error_page(request, exc.status_code, str(exc.detail))
            except Exception:
                log.exception("Unhandled error on %s %s", request.method, request.url.path)
                response = await error_page(request, 500, "Something went wrong on the server.")
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return page_handler
