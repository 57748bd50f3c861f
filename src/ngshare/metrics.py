"""Prometheus metrics: requests, latency, bytes, uploads in flight, storage, DB pool.

Route labels name the handler (`v2.blobs.upload_blob`), never the concrete
path, so the number of series stays bounded. Per-course
storage and the pool figures are computed when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import select

from ngshare.db.models import Course
from ngshare.state import AppState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ngshare_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ngshare_request_seconds",
            "Request duration",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bytes_in = Counter("ngshare_bytes_in", "Request body bytes", registry=self.registry)
        self.bytes_out = Counter("ngshare_bytes_out", "Response body bytes", registry=self.registry)
        self.sendfile_bytes = Counter(
            "ngshare_sendfile_bytes",
            "Response body bytes sent by sendfile(2), also counted in ngshare_bytes_out",
            registry=self.registry,
        )
        self.socket_body_bytes = Counter(
            "ngshare_socket_body_bytes",
            "Bytes of upload bodies taken over from uvicorn and read from the socket, "
            "also counted in ngshare_bytes_in",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ngshare_uploads_in_flight",
            "Requests with a body being received",
            registry=self.registry,
        )

    def attach(self, state: AppState) -> None:
        self.registry.register(_StateCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        storage = GaugeMetricFamily(
            "ngshare_course_storage_bytes",
            "Bytes of releases, submissions and feedback per course",
            labels=["course"],
        )
        for course, used in course_storage(self.state):
            storage.add_metric([course], used)
        yield storage
        yield CounterMetricFamily(
            "ngshare_v1_recognised_bytes",
            "Bytes of v1 uploads found equal to stored files, so not decoded or written",
            value=self.state.v1_encodings.recognised_bytes,
        )
        memory = self.state.memory
        yield GaugeMetricFamily(
            "ngshare_transfer_memory_bytes",
            "Bytes of uploads held in memory now (small files, large files' batches), "
            "under --transfer-memory-mib",
            value=memory.held,
        )
        yield GaugeMetricFamily(
            "ngshare_transfer_memory_waiting",
            "Requests waiting now for room in --transfer-memory-mib",
            value=memory.waiting,
        )
        yield GaugeMetricFamily(
            "ngshare_downloads_in_flight",
            "Streamed responses in flight; they share --transfer-memory-mib by piece size",
            value=memory.downloads,
        )
        yield CounterMetricFamily(
            "ngshare_transfer_memory_waits",
            "Times a request waited for the transfer memory budget",
            value=memory.waits,
        )
        pool = self.state.db.engine.pool
        for name, attribute in (("size", "size"), ("checked_out", "checkedout")):
            reading = getattr(pool, attribute, None)
            if callable(reading):
                yield GaugeMetricFamily(
                    f"ngshare_db_pool_{name}", f"Database pool {name}", value=reading()
                )


def course_storage(state: AppState) -> list[tuple[str, int]]:
    """(course, bytes) for every course: each course's own counter."""
    with state.db.read() as session:
        rows = session.execute(select(Course.name, Course.stored_bytes)).all()
    return sorted((name, int(stored)) for name, stored in rows)
