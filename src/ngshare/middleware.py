"""One ASGI middleware for what every request needs: request id, metrics, access log,
and a limit on how long a request body may stall (slow-body attacks).

It counts body bytes both ways as they pass (streamed bodies included),
labels metrics by route template, and writes one access-log line per request
with the user when one was authenticated. It never reads headers into logs.
"""

from __future__ import annotations

import logging
import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ngshare import logs, socketbody, zerocopy
from ngshare.errors import BodyStalled
from ngshare.metrics import Metrics

access = logging.getLogger("ngshare.access")


def route_label(scope: Scope) -> str:
    """`v1.assignments.release_assignment`: the handler, named by API version and module."""
    endpoint = getattr(scope.get("route"), "endpoint", None)
    if endpoint is None:
        return "unmatched"
    module = endpoint.__module__.removeprefix("ngshare.").removeprefix("api.")
    return f"{module}.{endpoint.__name__}"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, body_timeout: float = 60) -> None:
        self.app = app
        self.metrics = metrics
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        token = logs.request_id.set(logs.new_request_id(incoming))
        started = time.perf_counter()
        seen = {"in": 0, "out": 0, "status": 500}
        uploading = scope["method"] in ("POST", "PUT")
        if uploading:
            self.metrics.in_flight.inc()

        body_done = {"done": False}

        async def counting_receive() -> Message:
            if body_done["done"]:  # afterwards only a disconnect can come, whenever it does
                return await receive()
            try:
                with anyio.fail_after(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                raise BodyStalled(self.body_timeout) from None
            seen["in"] += len(message.get("body", b""))
            body_done["done"] = not message.get("more_body", False)
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                extra = [(b"x-request-id", logs.request_id.get().encode())]
                if not body_done["done"] and scope["method"] in ("POST", "PUT", "DELETE"):
                    extra.append((b"connection", b"close"))  # the rest of the body is unwanted
                message["headers"] = [*message.get("headers", []), *extra]
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            if uploading:
                self.metrics.in_flight.dec()
            self._record(scope, seen, time.perf_counter() - started)
            logs.request_id.reset(token)

    def _record(self, scope: Scope, seen: dict, seconds: float) -> None:
        zero_copy = scope.get("state", {}).get(zerocopy.SENT, 0)  # not in body messages
        seen["out"] += zero_copy
        self.metrics.sendfile_bytes.inc(zero_copy)
        from_socket = scope.get("state", {}).get(socketbody.RECEIVED, 0)  # nor these
        seen["in"] += from_socket
        self.metrics.socket_body_bytes.inc(from_socket)
        route = route_label(scope)
        method = scope["method"]
        self.metrics.requests.labels(method, route, str(seen["status"])).inc()
        self.metrics.latency.labels(method, route).observe(seconds)
        self.metrics.bytes_in.inc(seen["in"])
        self.metrics.bytes_out.inc(seen["out"])
        user = scope.get("state", {}).get("user", "-")
        access.info(
            "%s %s %s %.1fms in=%d out=%d user=%s",
            method,
            scope["path"],
            seen["status"],
            seconds * 1000,
            seen["in"],
            seen["out"],
            user,
            extra={
                "method": method,
                "path": scope["path"],
                "status": seen["status"],
                "duration_ms": round(seconds * 1000, 1),
                "bytes_in": seen["in"],
                "bytes_out": seen["out"],
                "user": user,
            },
        )
