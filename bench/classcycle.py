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
import secrets
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
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
from bench.workers import Clients, Task, run_processes
from bench.workload import Workload
from ngshare.client.known import KnownBlobs, beside
from ngshare.client.local import HashCache

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


class Phase:
    def __init__(self, result: PhaseResult, concurrency: int, processes: int, clients: Clients):
        self.result = result
        self.concurrency = concurrency
        self.processes = processes
        self.clients = clients

    def add(self, op: OpResult) -> None:
        self.result.ops.append(op)

    def run(self, tasks: list[Task]) -> list[Any]:
        """Run the tasks, `concurrency` at a time over the worker processes; their values."""
        done = run_processes(tasks, self.concurrency, self.processes, self.clients)
        self.result.ops.extend(op for op, _ in done)
        return [value for _, value in done]


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
        self.clients = Clients(self.v1_client, args.instructor)

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        result = PhaseResult(name)
        self.monitor.window()
        server_cpu, client_cpu = self.monitor.cpu(), client_cpu_seconds()
        machine_cpu = machine_busy_seconds()
        start = time.perf_counter()
        try:
            yield Phase(result, self.args.concurrency, self.args.processes, self.clients)
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
        return V1Client(self.url_for(user), self.auth, user, self.args.timeout)

    def v2_client(self, user: str, cycle: V2Cycle) -> Any:
        """As the nbgrader plugin: the user's hash cache and known blobs live in their files."""
        client = make_client(self.url_for(user), self.auth, user, self.args.timeout)
        if user != self.args.instructor:  # the instructor's many clients keep theirs in memory
            client.hashes = HashCache(cycle.hash_cache_path(user))
            client.known = KnownBlobs(beside(cycle.hash_cache_path(user)))
        return client

    def setup(self, v1: V1Cycle) -> None:
        admin, instructor = self.v1_client(self.args.admin), self.v1_client(self.args.instructor)
        with self.phase("setup") as phase:
            phase.add(
                timed("create course", admin, v1.create_course, admin, self.args.instructor)[0]
            )
            phase.add(timed("add students", instructor, v1.add_students, instructor)[0])
        admin.close()
        instructor.close()

    def as_instructor(self, kind: str, action: Callable[..., Any], *args: Any):
        with self.clients.instructor() as client:
            return timed(kind, client, action, client, *args)

    def as_student(self, kind: str, name: str, action: Callable[..., Any], *args: Any):
        client = self.clients.student(name)
        return timed(kind, client, action, client, *args)

    def run_v1(self) -> None:
        a = self.args
        cycle = V1Cycle(self.workload, a.course, a.assignment)
        self.setup(cycle)
        student, instructor = self.as_student, self.as_instructor
        with self.phase("release") as phase:
            phase.add(instructor("release", cycle.release)[0])
        with self.phase("fetch") as phase:
            phase.run([_bind(student, "fetch", name, cycle.fetch) for name in self.students])
        with self.phase("submit") as phase:
            values = phase.run(
                [_bind(student, "submit", name, cycle.submit) for name in self.students]
            )
        stamps = _known(self.students, values)
        with self.phase("collect") as phase:
            op, latest = instructor("list", cycle.list_submissions)
            phase.add(op)
            names = sorted(latest or {})
            values = phase.run([_bind(instructor, "collect", cycle.collect, n) for n in names])
        collected = _known(names, values)
        with self.phase("feedback") as phase:
            phase.run(
                [
                    _bind(instructor, "feedback", cycle.feedback, name, collected[name])
                    for name in self.students
                    if name in collected
                ]
            )
            phase.result.ops += _missing("feedback", self.students, collected)
        with self.phase("fetch_feedback") as phase:
            phase.run(
                [
                    _bind(student, "fetch feedback", name, cycle.fetch_feedback, stamps[name])
                    for name in self.students
                    if name in stamps
                ]
            )
            phase.result.ops += _missing("fetch feedback", self.students, stamps)

    def run_v2(self, workdir: Path) -> None:
        a = self.args
        self.setup(V1Cycle(self.workload, a.course, a.assignment))
        cycle = V2Cycle(self.workload, a.course, a.assignment, workdir)
        self.clients = Clients(lambda user: self.v2_client(user, cycle), a.instructor)
        student, instructor = self.as_student, self.as_instructor
        cycle.prepare_release()
        with self.phase("release") as phase:
            phase.add(instructor("release", cycle.release)[0])
        with self.phase("fetch") as phase:
            phase.run([_bind(student, "fetch", name, cycle.fetch, name) for name in self.students])

        def submit(name: str) -> tuple[OpResult, Any]:
            cycle.prepare_submit(name)
            op, answer = student("submit", name, cycle.submit, name)
            return op, (answer or {}).get("id")

        with self.phase("submit") as phase:
            ids = _known(self.students, phase.run([_bind(submit, name) for name in self.students]))

        dest = workdir / "collected"
        latest: dict[str, int] = {}
        with self.phase("collect") as phase:
            if a.v2_collect == "archive":
                op, listed = instructor("list", cycle.list_submissions)
                phase.add(op)
                latest.update(listed or {})
                names = sorted(latest)
                size = a.collect_batch
                batches = [names[i : i + size] for i in range(0, len(names), size)]
                phase.run(
                    [_bind(instructor, "collect archive", cycle.collect_archive, b, dest)
                     for b in batches]
                )  # fmt: skip
            else:
                op, listed = instructor("collect all", cycle.collect_trees, dest)
                phase.add(op)
                latest.update(listed or {})
        shutil.rmtree(dest, ignore_errors=True)

        for name in latest:
            cycle.prepare_feedback(name)
        with self.phase("feedback") as phase:
            if a.v2_feedback == "bulk":
                phase.add(instructor("feedback all", cycle.feedback_all, latest)[0])
            else:
                phase.run(
                    [
                        _bind(instructor, "feedback", cycle.feedback, name, latest[name])
                        for name in self.students
                        if name in latest
                    ]
                )
            phase.result.ops += _missing("feedback", self.students, latest)
        with self.phase("fetch_feedback") as phase:
            phase.run(
                [
                    _bind(student, "fetch feedback", name, cycle.fetch_feedback, name, ids[name])
                    for name in self.students
                    if name in ids
                ]
            )
            phase.result.ops += _missing("fetch feedback", self.students, ids)

    def close(self) -> None:
        self.clients.close()


def _bind(function: Callable[..., Any], *args: Any) -> Task:
    return lambda: function(*args)


def _known(names: list[str], values: list[Any]) -> dict[str, Any]:
    """Each name's value from its task, for the names whose task gave one."""
    return {name: value for name, value in zip(names, values, strict=True) if value}


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
    parser.add_argument(
        "--concurrency", type=int, default=32, help="users acting at once (threads in all)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=4,
        help="processes the simulated users are spread over (1: all in the benchmark's own)",
    )
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
    parser.add_argument(
        "--v2-feedback",
        choices=["bulk", "each"],
        default="bulk",
        help="v2 feedback: as the nbgrader plugin (the whole class in one request), "
        "or one request per student",
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
