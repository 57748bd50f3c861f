"""One nbgrader class cycle against an ngshare server, measured phase by phase.

    python -m bench.classcycle --url http://127.0.0.1:10101/api --api v1 \
        --auth token-file --tokens tokens.json --server-pid PID --json out.json

Phases: setup (course and roster over v1, which every server has), release,
fetch (every student), submit (every student: notebooks changed, data file
not), collect (instructor: every submission), feedback (instructor: one html
per submission), fetch_feedback (every student). Per phase: wall time,
requests/s, p50/p95 latency of the users' operations, bytes up and down on
the wire (HTTP bodies), errors, the server's peak RSS (sampled every 100 ms
from /proc/PID/status) and CPU seconds of server and benchmark client.
The whole cycle is the sum of the six phases after setup.
"""

from __future__ import annotations

import argparse
import json
import queue
import secrets
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.metrics import (
    OpResult,
    PhaseResult,
    ServerMonitor,
    client_cpu_seconds,
    fmt,
    machine_busy_seconds,
    mb,
    text_table,
)
from bench.users import Auth, check_loopback
from bench.v1 import V1Client, V1Cycle
from bench.v2 import V2Cycle, make_client
from bench.workload import Workload

CYCLE = ["release", "fetch", "submit", "collect", "feedback", "fetch_feedback"]


def timed(kind: str, client: Any, action: Callable[..., Any], *args: Any) -> tuple[OpResult, Any]:
    """Run one user operation; its latency, requests and bytes, or its error."""
    before = client.counter.snapshot()
    start = time.perf_counter()
    value, error = None, None
    try:
        value = action(*args)
    except Exception as exc:  # every failure is a measured error, not a crash
        error = f"{type(exc).__name__}: {exc}"[:300]
    seconds = time.perf_counter() - start
    after = client.counter.snapshot()
    requests, up, down = (a - b for a, b in zip(after, before, strict=True))
    return OpResult(kind, seconds, requests, up, down, error), value


class ClientPool:
    """Clients of one user (the instructor), lent to one thread at a time."""

    def __init__(self, factory: Callable[[], Any], size: int) -> None:
        self.clients = [factory() for _ in range(size)]
        self._free: queue.Queue = queue.Queue()
        for client in self.clients:
            self._free.put(client)

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        client = self._free.get()
        try:
            yield client
        finally:
            self._free.put(client)

    def close(self) -> None:
        for client in self.clients:
            client.close()


class Phase:
    def __init__(self, result: PhaseResult, concurrency: int) -> None:
        self.result = result
        self.concurrency = concurrency

    def add(self, op: OpResult) -> None:
        self.result.ops.append(op)

    def run(self, tasks: list[Callable[[], OpResult]]) -> None:
        """Run the tasks on `concurrency` threads, in order of submission."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="bench") as pool:
            self.result.ops.extend(pool.map(lambda task: task(), tasks))


class Runner:
    def __init__(self, args: argparse.Namespace, monitor: ServerMonitor) -> None:
        self.args = args
        self.monitor = monitor
        self.phases: list[PhaseResult] = []
        self.workload = Workload(
            students=args.students,
            notebooks=args.notebooks,
            notebook_kb=args.notebook_kb,
            data_mb=args.data_mb,
            feedback_kb=args.feedback_kb,
            seed=args.seed,
            student_prefix=args.student_prefix,
        )
        self.auth = Auth.load(args.auth, args.tokens)
        self.students = self.workload.student_names()
        self.closers: list[Any] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        result = PhaseResult(name)
        self.monitor.window()
        server_cpu, client_cpu = self.monitor.cpu(), client_cpu_seconds()
        machine_cpu = machine_busy_seconds()
        start = time.perf_counter()
        try:
            yield Phase(result, self.args.concurrency)
        finally:
            result.wall_s = time.perf_counter() - start
            result.server_peak_rss = self.monitor.window()
            end_cpu = self.monitor.cpu()
            if server_cpu is not None and end_cpu is not None:
                result.server_cpu_s = end_cpu - server_cpu
            result.client_cpu_s = client_cpu_seconds() - client_cpu
            result.machine_cpu_s = machine_busy_seconds() - machine_cpu
            self.phases.append(result)
            if self.args.verbose:
                summary = result.summary()
                print(
                    f"  {name}: {summary['wall_s']:.1f}s, {summary['errors']} errors",
                    file=sys.stderr,
                    flush=True,
                )

    def url_for(self, user: str) -> str:
        """With several URLs (replicas), each user sticks to one of them, spread evenly."""
        urls = self.args.url.split(",")
        return urls[zlib.crc32(user.encode()) % len(urls)]

    def v1_client(self, user: str) -> V1Client:
        client = V1Client(self.url_for(user), self.auth, user, self.args.timeout)
        self.closers.append(client)
        return client

    def v2_client(self, user: str):
        client = make_client(self.url_for(user), self.auth, user, self.args.timeout)
        self.closers.append(client)
        return client

    def setup(self, v1: V1Cycle) -> None:
        admin, instructor = self.v1_client(self.args.admin), self.v1_client(self.args.instructor)
        with self.phase("setup") as phase:
            phase.add(
                timed("create course", admin, v1.create_course, admin, self.args.instructor)[0]
            )
            phase.add(timed("add students", instructor, v1.add_students, instructor)[0])

    def run_v1(self) -> None:
        a = self.args
        cycle = V1Cycle(self.workload, a.course, a.assignment)
        self.setup(cycle)
        instructors = ClientPool(lambda: self.v1_client(a.instructor), a.concurrency)
        students = {name: self.v1_client(name) for name in self.students}
        stamps: dict[str, str] = {}
        with self.phase("release") as phase, instructors.borrow() as client:
            phase.add(timed("release", client, cycle.release, client)[0])
        with self.phase("fetch") as phase:
            phase.run([_bind(timed, "fetch", c, cycle.fetch, c) for c in students.values()])

        def submit(name: str) -> OpResult:
            client = students[name]
            op, stamp = timed("submit", client, cycle.submit, client)
            if stamp:
                stamps[name] = stamp
            return op

        with self.phase("submit") as phase:
            phase.run([_bind(submit, name) for name in self.students])

        collected: dict[str, str] = {}

        def collect(name: str) -> OpResult:
            with instructors.borrow() as client:
                op, stamp = timed("collect", client, cycle.collect, client, name)
            if stamp:
                collected[name] = stamp
            return op

        with self.phase("collect") as phase:
            with instructors.borrow() as client:
                op, latest = timed("list", client, cycle.list_submissions, client)
            phase.add(op)
            phase.run([_bind(collect, name) for name in sorted(latest or {})])

        def feedback(name: str) -> OpResult:
            with instructors.borrow() as client:
                return timed("feedback", client, cycle.feedback, client, name, collected[name])[0]

        with self.phase("feedback") as phase:
            phase.run([_bind(feedback, name) for name in self.students if name in collected])
            phase.result.ops += _missing("feedback", self.students, collected)

        def fetch_feedback(name: str) -> OpResult:
            client = students[name]
            return timed("fetch feedback", client, cycle.fetch_feedback, client, stamps[name])[0]

        with self.phase("fetch_feedback") as phase:
            phase.run([_bind(fetch_feedback, name) for name in self.students if name in stamps])
            phase.result.ops += _missing("fetch feedback", self.students, stamps)

    def run_v2(self, workdir: Path) -> None:
        a = self.args
        self.setup(V1Cycle(self.workload, a.course, a.assignment))
        cycle = V2Cycle(self.workload, a.course, a.assignment, workdir)
        instructors = ClientPool(lambda: self.v2_client(a.instructor), a.concurrency)
        students = {name: self.v2_client(name) for name in self.students}
        cycle.prepare_release()
        with self.phase("release") as phase, instructors.borrow() as client:
            phase.add(timed("release", client, cycle.release, client)[0])
        with self.phase("fetch") as phase:
            phase.run(
                [_bind(timed, "fetch", c, cycle.fetch, c, name) for name, c in students.items()]
            )
        ids: dict[str, int] = {}

        def submit(name: str) -> OpResult:
            cycle.prepare_submit(name)
            client = students[name]
            op, answer = timed("submit", client, cycle.submit, client, name)
            if answer:
                ids[name] = answer["id"]
            return op

        with self.phase("submit") as phase:
            phase.run([_bind(submit, name) for name in self.students])

        dest = workdir / "collected"
        latest: dict[str, int] = {}

        def collect_archive(batch: list[str]) -> OpResult:
            with instructors.borrow() as client:
                op, _ = timed("collect archive", client, cycle.collect_archive, client, batch, dest)
            return op

        with self.phase("collect") as phase:
            if a.v2_collect == "archive":
                with instructors.borrow() as client:
                    op, listed = timed("list", client, cycle.list_submissions, client)
                phase.add(op)
                latest.update(listed or {})
                names = sorted(latest)
                size = a.collect_batch
                batches = [names[i : i + size] for i in range(0, len(names), size)]
                phase.run([_bind(collect_archive, batch) for batch in batches])
            else:
                with instructors.borrow() as client:
                    op, listed = timed("collect all", client, cycle.collect_trees, client, dest)
                phase.add(op)
                latest.update(listed or {})
        shutil.rmtree(dest, ignore_errors=True)

        for name in latest:
            cycle.prepare_feedback(name)

        def feedback(name: str) -> OpResult:
            with instructors.borrow() as client:
                return timed("feedback", client, cycle.feedback, client, name, latest[name])[0]

        with self.phase("feedback") as phase:
            phase.run([_bind(feedback, name) for name in self.students if name in latest])
            phase.result.ops += _missing("feedback", self.students, latest)

        def fetch_feedback(name: str) -> OpResult:
            client = students[name]
            return timed("fetch feedback", client, cycle.fetch_feedback, client, name, ids[name])[0]

        with self.phase("fetch_feedback") as phase:
            phase.run([_bind(fetch_feedback, name) for name in self.students if name in ids])
            phase.result.ops += _missing("fetch feedback", self.students, ids)

    def close(self) -> None:
        for client in self.closers:
            client.close()


def _bind(function: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    def task() -> Any:
        value = function(*args)
        return value[0] if isinstance(value, tuple) else value

    return task


def _missing(kind: str, students: list[str], known: dict) -> list[OpResult]:
    """Operations that could not even start because an earlier step of that student failed."""
    return [
        OpResult(kind, 0.0, error="skipped: an earlier step failed")
        for s in students
        if s not in known
    ]


def run(args: argparse.Namespace) -> dict:
    """Run one cycle; the results as a JSON-ready dict."""
    args.url = ",".join(check_loopback(url) for url in args.url.split(","))
    if not args.course:
        args.course = "bench-" + secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="ngshare-bench-", dir=args.workdir))
    started = datetime.now(UTC)
    with ServerMonitor(args.server_pid) as monitor:
        rss_start = monitor.rss()
        runner = Runner(args, monitor)
        runner.workload.prepare()  # generate and hash every file up front, untimed
        try:
            if args.api == "v1":
                runner.run_v1()
            else:
                runner.run_v2(workdir)
        finally:
            runner.close()
            if not args.keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        hwm = monitor.hwm()
    phases = [p.summary() for p in runner.phases]
    cycle = [p for p in phases if p["phase"] in CYCLE]
    peaks = [p["server_peak_rss_bytes"] for p in phases if p["server_peak_rss_bytes"]]
    return {
        "label": args.label or f"{args.api} {args.url}",
        "api": args.api,
        "url": args.url,
        "started_at": started.isoformat(timespec="seconds"),
        "options": {k: v for k, v in vars(args).items() if k not in ("json", "verbose", "tokens")},
        "workload": {
            "students": args.students,
            "release_bytes": runner.workload.total_release_bytes(),
            "files": len(runner.workload.release_info),
        },
        "phases": phases,
        "cycle_wall_s": round(sum(p["wall_s"] for p in cycle), 3),
        "cycle_requests": sum(p["requests"] for p in cycle),
        "errors": sum(p["errors"] for p in phases),
        "cycle_server_cpu_s": round(sum(p["server_cpu_s"] or 0 for p in cycle), 2),
        "cycle_client_cpu_s": round(sum(p["client_cpu_s"] or 0 for p in cycle), 2),
        "cycle_other_cpu_s": round(sum(p["other_cpu_s"] or 0 for p in cycle), 2),
        "server": {
            "pid": args.server_pid,
            "rss_start_bytes": rss_start,
            "peak_rss_bytes": max(peaks, default=None),
            "vmhwm_bytes": hwm,
        },
    }


PHASE_HEADERS = [
    "phase", "wall s", "ops", "req", "req/s", "p50 s", "p95 s", "up MB", "down MB",
    "errors", "srv peak RSS MB", "srv CPU s", "client CPU s", "other CPU s",
]  # fmt: skip


def phase_row(p: dict) -> list[str]:
    return [
        p["phase"],
        fmt(p["wall_s"]),
        str(p["ops"]),
        str(p["requests"]),
        fmt(p["requests_per_s"], 1),
        fmt(p["p50_s"], 3),
        fmt(p["p95_s"], 3),
        mb(p["bytes_up"]),
        mb(p["bytes_down"]),
        str(p["errors"]),
        mb(p["server_peak_rss_bytes"]),
        fmt(p["server_cpu_s"], 1),
        fmt(p["client_cpu_s"], 1),
        fmt(p["other_cpu_s"], 1),
    ]


def report(result: dict) -> str:
    rows = [phase_row(p) for p in result["phases"]]
    server = result["server"]
    lines = [
        f"{result['label']}: {result['workload']['students']} students, "
        f"release {result['workload']['release_bytes'] / 1e6:.1f} MB, "
        f"concurrency {result['options']['concurrency']}",
        text_table(PHASE_HEADERS, rows),
        f"whole cycle (release..fetch_feedback): {result['cycle_wall_s']:.2f} s, "
        f"{result['cycle_requests']} requests, {result['errors']} errors; CPU s: "
        f"server {result['cycle_server_cpu_s']}, client {result['cycle_client_cpu_s']}, "
        f"other processes {result['cycle_other_cpu_s']}",
    ]
    if server["pid"]:
        lines.append(
            f"server pid {server['pid']}: RSS at start {mb(server['rss_start_bytes'])} MB, "
            f"peak sampled {mb(server['peak_rss_bytes'])} MB, VmHWM {mb(server['vmhwm_bytes'])} MB"
        )
    for p in result["phases"]:
        for sample in p["error_samples"]:
            lines.append(f"error in {p['phase']}: {sample}")
    return "\n".join(lines)


def add_workload_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32, help="worker threads")
    parser.add_argument("--notebooks", type=int, default=5)
    parser.add_argument("--notebook-kb", type=float, default=200)
    parser.add_argument("--data-mb", type=float, default=20, help="size of the data file (MiB)")
    parser.add_argument("--feedback-kb", type=float, default=50, help="feedback html size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--v2-collect",
        choices=["trees", "archive"],
        default="trees",
        help="v2 collect: as the nbgrader plugin (listing with files, each distinct blob "
        "once, trees written from local copies), or as `collect` tar archives",
    )
    parser.add_argument(
        "--collect-batch", type=int, default=50, help="students per v2 collect archive"
    )
    parser.add_argument("--timeout", type=float, default=900, help="HTTP read timeout (s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.classcycle",
        description="Run one nbgrader class cycle against an ngshare server and measure it.",
    )
    parser.add_argument(
        "--url",
        required=True,
        help="API base incl. prefix, e.g. .../api; comma-separated for replicas (each "
        "user sticks to one)",
    )
    parser.add_argument("--api", choices=["v1", "v2"], required=True)
    parser.add_argument("--auth", choices=["token-file", "hub", "dev"], default="token-file")
    parser.add_argument("--tokens", help="JSON {token: user} for token-file/hub auth")
    parser.add_argument("--server-pid", type=int, help="server process to watch (memory, CPU)")
    add_workload_options(parser)
    parser.add_argument("--admin", default="admin")
    parser.add_argument("--instructor", default="instructor")
    parser.add_argument("--student-prefix", default="student", help="students are PREFIX1..N")
    parser.add_argument("--course", help="course to create (default: bench-<random>)")
    parser.add_argument("--assignment", default="ps1")
    parser.add_argument("--workdir", help="where temporary files go (default: system temp)")
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument("--label", help="name of this run in reports")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each phase as it ends")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
