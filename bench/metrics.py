"""Measuring: HTTP bytes and requests per client, latencies, and the server's memory and CPU."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from ngshare.client.http import tls_context

# The simulated users stand for 200 machines, so their CPU should not be what the
# benchmark measures. httpcore reads responses 64 KiB at a time, with h11 and httpcore
# work per read; 1 MiB reads cut a 200 MB download's client CPU by about 30% here.
# A benchmark-only setting of httpcore's (the library and the plugin keep the default).
httpcore._sync.http11.HTTP11Connection.READ_NUM_BYTES = 2**20

MB = 1e6
MIB = 2**20


class CountingTransport(httpx.BaseTransport):
    """Counts requests and body bytes in each direction, as they cross the wire.

    One instance belongs to one client, which one thread uses at a time, so the
    counters need no lock; read them before and after an operation.
    """

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport(retries=2, verify=tls_context())
        self.requests = 0
        self.up = 0
        self.down = 0
        self.client: Any = None  # an NgshareClient: its large downloads bypass httpx

    def snapshot(self) -> tuple[int, int, int]:
        """Requests, bytes up, bytes down, the client's fast transfers included."""
        client = self.client
        if client is None:
            return self.requests, self.up, self.down
        fast = (client.fast_requests, client.fast_sent, client.fast_received)
        return self.requests + fast[0], self.up + fast[1], self.down + fast[2]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        request.stream = _CountedStream(request.stream, self, "up")  # type: ignore[arg-type]
        response = self.inner.handle_request(request)
        response.stream = _CountedStream(response.stream, self, "down")  # type: ignore[arg-type]
        return response

    def close(self) -> None:
        self.inner.close()


class _CountedStream(httpx.SyncByteStream):
    def __init__(self, stream, counter: CountingTransport, direction: str) -> None:
        self.stream = stream
        self.counter = counter
        self.direction = direction

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.stream:
            if self.direction == "up":
                self.counter.up += len(chunk)
            else:
                self.counter.down += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class OpResult:
    """One operation of one simulated user (e.g. a student's whole submit)."""

    kind: str
    seconds: float
    requests: int = 0
    up: int = 0
    down: int = 0
    error: str | None = None


@dataclass
class PhaseResult:
    name: str
    wall_s: float = 0.0
    ops: list[OpResult] = field(default_factory=list)
    server_peak_rss: int | None = None
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    machine_cpu_s: float = 0.0

    def summary(self) -> dict:
        latencies = [op.seconds for op in self.ops if op.error is None]
        requests = sum(op.requests for op in self.ops)
        errors = [op for op in self.ops if op.error is not None]
        kinds: dict[str, list[float]] = {}
        for op in self.ops:
            if op.error is None:
                kinds.setdefault(op.kind, []).append(op.seconds)
        return {
            "phase": self.name,
            "wall_s": round(self.wall_s, 3),
            "ops": len(self.ops),
            "requests": requests,
            "requests_per_s": round(requests / self.wall_s, 2) if self.wall_s else None,
            "p50_s": _round(percentile(latencies, 50)),
            "p95_s": _round(percentile(latencies, 95)),
            "max_s": _round(max(latencies, default=None)),
            "by_kind": {
                kind: {
                    "count": len(values),
                    "p50_s": _round(percentile(values, 50)),
                    "p95_s": _round(percentile(values, 95)),
                }
                for kind, values in kinds.items()
            },
            "bytes_up": sum(op.up for op in self.ops),
            "bytes_down": sum(op.down for op in self.ops),
            "errors": len(errors),
            "error_samples": sorted({op.error or "" for op in errors})[:5],
            "server_peak_rss_bytes": self.server_peak_rss,
            "server_cpu_s": _round(self.server_cpu_s),
            "client_cpu_s": _round(self.client_cpu_s),
            "machine_cpu_s": _round(self.machine_cpu_s),
            # CPU used by processes other than the server and this client (other work)
            "other_cpu_s": _round(
                self.machine_cpu_s - self.client_cpu_s - (self.server_cpu_s or 0.0)
            ),
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# The server process, from /proc


def read_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM etc. of a process in bytes."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key.startswith("Vm") and rest.strip().endswith("kB"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def read_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def client_cpu_seconds() -> float:
    """This process's CPU and that of its ended children (the forked simulated users)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (all CPUs, /proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float = 120, window: float = 5, limit: float = 0.25) -> float:
    """Wait (at most `max_wait` s) for a `window` in which the machine used < `limit` CPUs.

    Other work on the machine (test suites of other sessions) competes with the
    server and the clients; returns the CPUs in use in the last window.
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(window)
        used = (machine_busy_seconds() - before) / window
        if used < limit or time.monotonic() >= deadline:
            return used


class ServerMonitor:
    """Samples a server's VmRSS every `interval` seconds in a thread; peak per window.

    `window()` starts a new window and returns the peak RSS of the one that ended.
    Without a pid every reading is None.
    """

    def __init__(self, pid: int | None, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ServerMonitor:
        if self.pid is not None:
            self._peak = self.rss() or 0
            self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> int | None:
        rss = self.rss()
        if rss is not None:
            with self._lock:
                self._peak = max(self._peak, rss)
        return rss

    def rss(self) -> int | None:
        if self.pid is None:
            return None
        try:
            return read_status(self.pid).get("VmRSS")
        except OSError:
            return None

    def hwm(self) -> int | None:
        if self.pid is None:
            return None
        try:
            return read_status(self.pid).get("VmHWM")
        except OSError:
            return None

    def cpu(self) -> float | None:
        if self.pid is None:
            return None
        try:
            return read_cpu_seconds(self.pid)
        except OSError:
            return None

    def window(self) -> int | None:
        """End the current window: its peak RSS (sampled now too), and start the next."""
        if self.pid is None:
            return None
        now = self._sample() or 0
        with self._lock:
            peak, self._peak = self._peak, now
        return peak


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value / MB:.1f}"


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain aligned table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
