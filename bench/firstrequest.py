"""How long the first requests to a freshly started server take, against later ones.

    python -m bench.firstrequest [--repeat 5]

Starts our server (token-file auth, a new data dir) several times; each time
it sends a few requests to different routers once, then again, over one
keep-alive connection, and reports the first and the later latencies per
route (median over the starts). A first request that pays for work the
server could have done at startup shows up as first >> later.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.servers import bench_users, start_ours, write_tokens

ROUTES = [
    "/v2/courses",  # v2
    "/courses",  # v1
    "/v2/courses/nosuch/assignments",  # v2, another router (404)
    "/me",
]


def one_start(workdir: Path) -> dict[str, tuple[float, float]]:
    """Per route: the first request's latency and the median of five later ones (seconds)."""
    tokens = write_tokens(workdir / "tokens.json", bench_users(0))
    token = next(t for t, user in _load(tokens).items() if user == "admin")
    server = start_ours(workdir / "data", tokens)
    try:
        with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as client:
            client.get(server.url.removesuffix("/api") + "/healthz")  # the connection is open
            first = {route: _timed(client, server.url + route) for route in ROUTES}
            later = {
                route: statistics.median(_timed(client, server.url + route) for _ in range(5))
                for route in ROUTES
            }
    finally:
        server.stop()
    return {route: (first[route], later[route]) for route in ROUTES}


def _timed(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    client.get(url)
    return time.perf_counter() - start


def _load(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="server starts (default 5)")
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="ngshare-first-") as workdir:
            runs.append(one_start(Path(workdir)))
    print(f"{args.repeat} starts; median latency in ms")
    print("| route | first request | later requests |")
    print("|---|---|---|")
    for route in ROUTES:
        first = statistics.median(run[route][0] for run in runs) * 1000
        later = statistics.median(run[route][1] for run in runs) * 1000
        print(f"| `{route}` | {first:.1f} | {later:.1f} |")


if __name__ == "__main__":
    main()
