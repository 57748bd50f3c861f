"""What a request says of its body before any of it is read.

Four places size a body from its headers: the web forms' and v1's early 413,
the v2 memory budget's loan, and the socket body's choice of path. One
reading serves them all, so they cannot disagree on a request that names
both a Transfer-Encoding and a Content-Length (RFC 9112, section 6.3: the
Transfer-Encoding wins, and the Content-Length says nothing). uvicorn's
httptools parser refuses such a request before the application sees it; the
rule is kept here for any other server the application runs under.
"""

from __future__ import annotations

from starlette.requests import Request


def declared_length(request: Request) -> int | None:
    """The body's length as its Content-Length states it; None for a chunked body,
    none stated, or a value that is not plain ASCII digits."""
    headers = request.headers
    declared = headers.get("content-length", "")
    if "transfer-encoding" in headers or not (declared.isascii() and declared.isdigit()):
        return None
    return int(declared)
