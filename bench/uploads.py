"""Server memory with many large uploads at once: the whole class sending a 10 MB file.

Starts our server once per `--budgets` value (`--transfer-memory-mib`), then
has N students each upload a distinct file over v2 at the same moment, each in
a PUT of its own (as the client sends files over 8 MiB), in 64 KiB pieces with
a pause between them (clients slower than the server). Reports the server's
RSS at rest and at its peak, and the wall time until every upload is stored.

    python -m bench.uploads --students 500 --budgets 64,4096 --rounds 2

A budget of 4096 MiB never makes an upload wait for its batches: the server as
it was before uploads borrowed from the budget. Run it with PYTHONPATH set to
an older checkout's `src` to measure that checkout.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import httpx

from bench.crowd import crowd_parser, crowd_run, run_rounds

PIECE = 64 * 1024


def run_once(students: int, budget: int, size_mb: int, pause: float, workdir: Path) -> dict:
    def prepare(url: str, token: dict, users: list[str]) -> bytes:
        return os.urandom(size_mb * 1024 * 1024)

    def act(server, token, users, base):
        return _upload_all(server, token, users, base, pause)

    return crowd_run(students, budget, workdir, prepare, act)


def _file_of(base: bytes, index: int) -> bytes:
    """A distinct file per student (its first bytes differ), so nothing is deduplicated."""
    stamp = index.to_bytes(8, "big")
    return stamp + base[len(stamp) :]


async def _upload_all(server, token, users, base: bytes, pause: float) -> None:
    async def upload(client: httpx.AsyncClient, index: int, user: str) -> None:
        data = _file_of(base, index)
        sha = hashlib.sha256(data).hexdigest()

        async def pieces():
            view = memoryview(data)
            for start in range(0, len(data), PIECE):
                yield bytes(view[start : start + PIECE])
                await asyncio.sleep(pause)

        response = await client.put(
            f"{server.url}/v2/courses/bench/blobs/{sha}",
            params={"size": len(data)},
            content=pieces(),
            headers={
                "Authorization": f"token {token[user]}",
                "Content-Length": str(len(data)),
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"{user}: HTTP {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=len(users) + 10)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        await asyncio.gather(*(upload(client, i, user) for i, user in enumerate(users)))


def main() -> None:
    parser = crowd_parser(__doc__, size_mb=10)
    run_rounds(parser.parse_args(), run_once, "ngshare-uploads-")


if __name__ == "__main__":
    main()
