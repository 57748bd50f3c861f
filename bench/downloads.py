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

import asyncio
import hashlib
import os
from pathlib import Path

import httpx

from bench.crowd import crowd_parser, crowd_run, run_rounds
from ngshare.client import NgshareClient

READ = 64 * 1024


def run_once(students: int, budget: int, size_mb: int, pause: float, workdir: Path) -> dict:
    def prepare(url: str, token: dict, users: list[str]) -> tuple[str, int]:
        return _release(url, token, size_mb, workdir)

    def act(server, token, users, prepared):
        sha, size = prepared
        return _download_all(server, token, users, sha, size, pause)

    return crowd_run(students, budget, workdir, prepare, act)


def _release(url: str, token: dict, size_mb: int, workdir: Path) -> tuple[str, int]:
    data = os.urandom(size_mb * 1024 * 1024)
    release = workdir / "release"
    release.mkdir(exist_ok=True)
    (release / "data.bin").write_bytes(data)
    with NgshareClient(url, token["instructor"]) as instructor:
        instructor.release("bench", "ps1", release)
    return hashlib.sha256(data).hexdigest(), len(data)


async def _download_all(server, token, users, sha, size, pause) -> None:
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
        await asyncio.gather(*(download(client, user) for user in users))


def main() -> None:
    parser = crowd_parser(__doc__, size_mb=20)
    run_rounds(parser.parse_args(), run_once, "ngshare-downloads-")


if __name__ == "__main__":
    main()
