"""What bench.downloads and bench.uploads share: a class of students acting at once
against one server, the server's peak RSS meanwhile, and a table of runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.metrics import read_status
from bench.servers import start_ours, write_tokens


def enrol(url: str, token: dict, users: list[str]) -> None:
    """Course `bench`, taught by `instructor`, with `users` as its students."""
    with httpx.Client(base_url=url + "/", timeout=60) as http:
        http.post(
            "course/bench",
            data={"instructors": '["instructor"]'},
            headers={"Authorization": f"token {token['admin']}"},
        )
        for user in users:
            http.post(
                f"student/bench/{user}",
                data={"first_name": "S", "last_name": "T", "email": ""},
                headers={"Authorization": f"token {token['instructor']}"},
            )


async def peak_rss_while(pid: int, work) -> tuple[float, int]:
    """Run the awaitable `work`; its wall time and the server's peak RSS (MB) meanwhile."""
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, read_status(pid)["VmRSS"] // 2**20)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    start = time.monotonic()
    try:
        await work
    finally:
        done.set()
        await sampler
    return time.monotonic() - start, peak


def run_rounds(args: argparse.Namespace, run_once: Callable[..., dict], prefix: str) -> None:
    """`run_once` for each budget, `--rounds` times alternating, then a Markdown table."""
    rows = []
    for _round in range(args.rounds):
        for budget in (int(b) for b in args.budgets.split(",")):
            with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
                row = run_once(args.students, budget, args.size_mb, args.pause, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| students | budget MiB | RSS at rest MB | peak MB | growth MB | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['students']} | {r['budget_mib']} | {r['rss_at_rest_mb']} | "
            f"{r['rss_peak_mb']} | {r['growth_mb']} | {r['wall_s']} |"
        )


def crowd_run(students: int, budget: int, workdir: Path, prepare: Callable, act: Callable) -> dict:
    """One run: our server with a `budget` MiB transfer budget and `students` enrolled,
    `prepare(url, token, users)` before measuring, then the coroutine
    `act(server, token, users, prepared)` with the server's peak RSS sampled."""
    users = [f"student{i}" for i in range(1, students + 1)]
    tokens = write_tokens(workdir / "tokens.json", ["admin", "instructor", *users])
    token = {user: token for token, user in json.loads(tokens.read_text()).items()}
    server = start_ours(
        workdir / "server",
        tokens,
        ("--transfer-memory-mib", str(budget), "--max-connections", str(students + 100)),
    )
    try:
        enrol(server.url, token, users)
        prepared = prepare(server.url, token, users)
        at_rest = read_status(server.pid)["VmRSS"] // 2**20
        wall, peak = asyncio.run(peak_rss_while(server.pid, act(server, token, users, prepared)))
        return {
            "students": students,
            "budget_mib": budget,
            "rss_at_rest_mb": at_rest,
            "rss_peak_mb": peak,
            "growth_mb": peak - at_rest,
            "wall_s": round(wall, 2),
        }
    finally:
        server.stop()


def crowd_parser(doc: str, size_mb: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--budgets", default="64,4096", help="--transfer-memory-mib values")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of each budget")
    parser.add_argument("--size-mb", type=int, default=size_mb)
    parser.add_argument("--pause", type=float, default=0.002, help="seconds between pieces")
    return parser
