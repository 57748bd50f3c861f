"""Server memory with many downloads at once: the whole class fetching one dataset.

Starts our server once per `--budgets` value (`--transfer-memory-mib`),
releases one file, then has N students download it at the same moment over N
connections, each reading 64 KiB at a time with a pause between reads (clients
slower than the server, as at a deadline on a busy hub). Reports the server's
RSS at rest and at its peak, and the wall time until every download is whole.

    python -m bench.downloads --students 500 --budgets 64,4096 --rounds 2

A budget of 4096 MiB never shrinks the pieces below 256 KiB: the server as it
was before the budget. The clients run in one asyncio process (httpx), so 500
connections cost them little CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.metrics import read_status
from bench.servers import start_ours, write_tokens
from ngshare.client import NgshareClient

READ = 64 * 1024


def run_once(students: int, budget: int, size_mb: int, pause: float, workdir: Path) -> dict:
    users = [f"student{i}" for i in range(1, students + 1)]
    tokens = write_tokens(workdir / "tokens.json", ["admin", "instructor", *users])
    token = {user: token for token, user in json.loads(tokens.read_text()).items()}
    server = start_ours(
        workdir / "server",
        tokens,
        ("--transfer-memory-mib", str(budget), "--max-connections", str(students + 100)),
    )
    try:
        sha, size = _prepare(server.url, token, users, size_mb, workdir)
        at_rest = read_status(server.pid)["VmRSS"] // 2**20
        wall, peak = asyncio.run(_download_all(server, token, users, sha, size, pause))
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


def _prepare(url: str, token: dict, users: list[str], size_mb: int, workdir: Path):
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
    data = os.urandom(size_mb * 1024 * 1024)
    release = workdir / "release"
    release.mkdir(exist_ok=True)
    (release / "data.bin").write_bytes(data)
    with NgshareClient(url, token["instructor"]) as instructor:
        instructor.release("bench", "ps1", release)
    return hashlib.sha256(data).hexdigest(), len(data)


async def _download_all(server, token, users, sha, size, pause) -> tuple[float, int]:
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, read_status(server.pid)["VmRSS"] // 2**20)
            await asyncio.sleep(0.05)

    async def download(client: httpx.AsyncClient, user: str) -> None:
        url = f"{server.url}/v2/courses/bench/blobs/{sha}"
        headers = {"Authorization": f"token {token[user]}"}
        async with client.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            got = 0
            async for chunk in response.aiter_raw(READ):
                got += len(chunk)
                await asyncio.sleep(pause)
        if got != size:
            raise RuntimeError(f"{user} got {got} of {size} bytes")

    limits = httpx.Limits(max_connections=len(users) + 10)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        sampler = asyncio.create_task(sample())
        start = time.monotonic()
        await asyncio.gather(*(download(client, user) for user in users))
        wall = time.monotonic() - start
        done.set()
        await sampler
    return wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--budgets", default="64,4096", help="--transfer-memory-mib values")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of each budget")
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.002, help="seconds between reads")
    args = parser.parse_args()
    rows = []
    for _round in range(args.rounds):
        for budget in (int(b) for b in args.budgets.split(",")):
            with tempfile.TemporaryDirectory(prefix="ngshare-downloads-") as tmp:
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


if __name__ == "__main__":
    main()
