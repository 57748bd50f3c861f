"""The class cycle on 1 and on N replicas sharing one PostgreSQL database and one S3 bucket.

    python -m bench.replicas --replicas 1,3 --students 200 --concurrency 32

Each run gets a fresh PostgreSQL database (127.0.0.1:5432, trust auth, like
CI) and a fresh moto S3 server on loopback; the replicas are started together
(migrations take turns), and the benchmark's students are spread over them
(each student sticks to one replica, as with a Kubernetes Service). Results go
to `bench/results/replicas-<name>.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench import classcycle
from bench.servers import REPO, bench_users, free_port, start_ours, write_tokens

PG_ADMIN = os.environ.get("NGSHARE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _admin_sql(statement: str) -> None:
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def start_s3(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **S3_ENV},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    import boto3

    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        **{
            "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        },
    ).create_bucket(Bucket="bench")
    return process, url


def one_run(replicas: int, args: argparse.Namespace, work: Path) -> dict:
    database = "ngshare_bench_" + secrets.token_hex(4)
    _admin_sql(f'CREATE DATABASE "{database}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
    s3, s3_url = start_s3(work / f"moto-{replicas}.log")
    os.environ.update(S3_ENV)
    tokens = write_tokens(
        work / "tokens.json", ["admin", "instructor", *bench_users(args.students)]
    )
    servers = []
    try:
        extra = (
            "--database-url",
            url,
            "--storage",
            "s3",
            "--s3-bucket",
            "bench",
            "--s3-endpoint-url",
            s3_url,
        )
        servers = [start_ours(work / f"r{replicas}-{i}", tokens, extra) for i in range(replicas)]
        cycle = classcycle.build_parser().parse_args(
            [
                "--url",
                ",".join(s.url for s in servers),
                "--api",
                "v2",
                "--auth",
                "token-file",
                "--tokens",
                str(tokens),
                "--server-pid",
                str(servers[0].process.pid),
                "--students",
                str(args.students),
                "--concurrency",
                str(args.concurrency),
                "--notebooks",
                str(args.notebooks),
                "--notebook-kb",
                str(args.notebook_kb),
                "--data-mb",
                str(args.data_mb),
                "--label",
                f"{replicas} replica(s)",
            ]
        )
        result = classcycle.run(cycle)
        result["replicas"] = replicas
        return result
    finally:
        for server in servers:
            server.stop()
        s3.terminate()
        s3.wait()
        _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def table(results: list[dict]) -> str:
    lines = [
        "| replicas | whole cycle (s) | fetch (s) | submit (s) | collect (s) | submit p95 (s) "
        "| requests/s | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        phases = {p["phase"]: p for p in result["phases"]}
        total = sum(p["wall_s"] for p in phases.values())
        requests = sum(p["requests"] for p in phases.values())
        errors = sum(p["errors"] for p in phases.values())
        lines.append(
            f"| {result['replicas']} | {total:.1f} | {phases['fetch']['wall_s']:.1f} | "
            f"{phases['submit']['wall_s']:.1f} | {phases['collect']['wall_s']:.1f} | "
            f"{phases['submit']['p95_s']:.2f} | {requests / total:.0f} | {errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    parser.add_argument("--replicas", default="1,3", help="Comma-separated counts")
    parser.add_argument("--name", default="run")
    classcycle.add_workload_options(parser)
    args = parser.parse_args(argv)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"ngshare-replicas-{secrets.token_hex(3)}"
    work.mkdir(parents=True)
    results = [one_run(int(n), args, work) for n in args.replicas.split(",")]
    out = REPO / "bench" / "results" / f"replicas-{args.name}"
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    text_table = table(results)
    out.with_suffix(".md").write_text(
        f"# Class cycle over v2 on PostgreSQL + S3 (moto), {args.students} students, "
        f"concurrency {args.concurrency}\n\nCommand: `python -m bench.replicas "
        f"{' '.join(argv or sys.argv[1:])}`\n\n{text_table}\n"
    )
    print(text_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
