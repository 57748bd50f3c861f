"""Old ngshare 0.6.0 over v1 against ours over v1 and v2, same workload, one run.

    python -m bench.compare --students 200 --concurrency 32 \
        --notebooks 5 --notebook-kb 200 --data-mb 20

Starts each server fresh (own data dir, own process, one at a time so they
do not compete for the CPU), runs `bench.classcycle` against it, stops it,
and writes `bench/results/<name>.json` and `.md` with per-phase figures and
the ratios ours-vs-old measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import ngshare
from bench import classcycle
from bench.classcycle import PHASE_HEADERS, phase_row
from bench.floor import write_floor
from bench.metrics import fmt, markdown_table, mb, wait_for_quiet
from bench.servers import (
    REPO,
    bench_users,
    ensure_old_venv,
    start_fakehub,
    start_old,
    start_ours,
    write_tokens,
)
from bench.workload import Workload

RUNS = {
    "old-v1": "ngshare 0.6.0, v1",
    "ours-v1": "ours, v1",
    "ours-v2": "ours, v2",
    "ours-v2-archive": "ours, v2 (collect as tar archives)",
}
DEFAULT_RUNS = "old-v1,ours-v1,ours-v2"
WORKLOAD_FLAGS = [
    "students", "concurrency", "processes", "notebooks", "notebook_kb", "data_mb",
    "feedback_kb", "seed", "v2_collect", "collect_batch", "v2_feedback", "timeout",
]  # fmt: skip


def cycle_args(args: argparse.Namespace, run: str, url: str, tokens: Path, pid: int):
    """The classcycle options of one run: old v1 authenticates through the stand-in hub."""
    api = run.split("-")[1]
    auth = "hub" if run.startswith("old") else "token-file"
    argv = ["--url", url, "--api", api, "--auth", auth, "--tokens", str(tokens)]
    argv += ["--server-pid", str(pid), "--label", RUNS[run], "--course", "bench"]
    argv += ["--workdir", str(args.client_dir or args.workdir_path)]
    for name in WORKLOAD_FLAGS:
        argv += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    if run.endswith("-archive"):
        argv += ["--v2-collect", "archive"]
    if args.verbose:
        argv.append("--verbose")
    return classcycle.build_parser().parse_args(argv)


def run_one(run: str, args: argparse.Namespace, tokens: Path) -> dict:
    """One server's class cycle. Its data dir stays until every run is done (`main`
    removes them together): on an ext4 without a journal, as on the benchmark's
    machine, each new file's inode is chosen past every inode deleted in the last
    one to six minutes, so deleting a run's thousands of files made the next run's
    file creations scan them (a tenth of our server's CPU in the submit phase)."""
    data_dir = args.workdir_path / f"server-{run}"
    busy = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else None
    print(f"== {RUNS[run]}: starting the server", file=sys.stderr, flush=True)
    if run == "old-v1":
        ensure_old_venv()
        with (
            start_fakehub(tokens, args.workdir_path / "hub.log") as hub,
            start_old(data_dir, hub.url) as server,
        ):
            result = classcycle.run(cycle_args(args, run, server.url, tokens, server.pid))
    else:
        with start_ours(data_dir, tokens) as server:
            result = classcycle.run(cycle_args(args, run, server.url, tokens, server.pid))
    result["cpus_busy_before"] = busy
    print(classcycle.report(result), file=sys.stderr, flush=True)
    return result


def ratios(results: dict[str, dict], floor: dict | None = None) -> list[dict]:
    """The issue's targets, each with the figure measured in this run (and, with
    `floor`, the students' file writes alone beside the v2 fetch phase)."""
    old, v1, v2, archive = (
        results.get(k) for k in ("old-v1", "ours-v1", "ours-v2", "ours-v2-archive")
    )
    rows: list[dict] = []

    def add(target: str, value: float | None, text: str, met: bool | None) -> None:
        rows.append({"target": target, "value": value, "measured": text, "met": met})

    def hwm(result: dict) -> int:
        return result["server"]["vmhwm_bytes"] or 0

    def submit_p95(result: dict) -> float | None:
        return next(p["p95_s"] for p in result["phases"] if p["phase"] == "submit")

    if old and v1:
        speed = old["cycle_wall_s"] / v1["cycle_wall_s"]
        add("v1: whole cycle >= 5x faster than old", speed, f"{speed:.1f}x", speed >= 5)
        memory = hwm(v1) / hwm(old) if hwm(old) else None
        add(
            "v1: server peak memory <= 1/4 of old",
            memory,
            f"{memory:.2f} ({mb(hwm(v1))} / {mb(hwm(old))} MB)" if memory else "-",
            memory is not None and memory <= 0.25,
        )
    if old and v1:
        cpu = old["cycle_server_cpu_s"] / v1["cycle_server_cpu_s"]
        add("(info) v1: server CPU seconds, old / ours", cpu, f"{cpu:.1f}x", None)
    if old and v2:
        cpu = old["cycle_server_cpu_s"] / v2["cycle_server_cpu_s"]
        add("(info) v2: server CPU seconds, old v1 / ours v2", cpu, f"{cpu:.1f}x", None)
        speed = old["cycle_wall_s"] / v2["cycle_wall_s"]
        add("v2: whole cycle >= 30x faster than old v1", speed, f"{speed:.1f}x", speed >= 30)
    if old and archive:
        speed = old["cycle_wall_s"] / archive["cycle_wall_s"]
        add(
            "v2 (collect as archives): >= 30x faster than old v1",
            speed,
            f"{speed:.1f}x",
            speed >= 30,
        )
    if v2:
        p95 = submit_p95(v2)
        add(
            f"v2: submit p95 < 1 s at {v2['options']['concurrency']} concurrent",
            p95,
            f"{p95:.3f} s" if p95 is not None else "-",
            p95 is not None and p95 < 1,
        )
        add(
            "v2: server peak memory < 200 MB",
            hwm(v2),
            f"{mb(hwm(v2))} MB",
            0 < hwm(v2) < 200e6,
        )
    if floor:
        add(
            f"(info) students' fetch writes alone, {floor['bytes'] / 1e6:.0f} MB into "
            f"{floor['directory']}",
            floor["wall_s"],
            f"{floor['wall_s']:.2f} s wall, {floor['cpu_s']:.1f} s CPU"
            + (f" (v2 fetch phase: {_fetch(v2)})" if v2 else ""),
            None,
        )
    for result in (old, v1, v2, archive):
        if result and result["errors"]:
            add(f"{result['label']}: no errors", result["errors"], str(result["errors"]), False)
    return rows


def _fetch(result: dict) -> str:
    fetch = next(p for p in result["phases"] if p["phase"] == "fetch")
    return f"{fetch['wall_s']:.2f} s wall, {fetch['client_cpu_s']:.1f} s students' CPU"


def measure_floor(args: argparse.Namespace) -> dict:
    """`bench.floor.write_floor` for this run's workload, in the students' directory."""
    workload = Workload(
        students=args.students,
        notebooks=args.notebooks,
        notebook_kb=args.notebook_kb,
        data_mb=args.data_mb,
        seed=args.seed,
    )
    sizes = [info.size for info in workload.release_info.values()]
    if args.quiet_wait > 0:
        wait_for_quiet(args.quiet_wait)
    directory = Path(args.client_dir or args.workdir_path)
    return write_floor(directory, sizes, args.students, max(1, args.processes))


def markdown(results: dict[str, dict], checks: list[dict], meta: dict) -> str:
    runs = [results[k] for k in RUNS if k in results]
    phases = [p["phase"] for p in runs[0]["phases"]]
    by_phase = {r["label"]: {p["phase"]: p for p in r["phases"]} for r in runs}
    first = runs[0]
    w = first["workload"]
    lines = [
        f"# Class cycle: {w['students']} students, concurrency "
        f"{first['options']['concurrency']}, release {w['release_bytes'] / 1e6:.1f} MB "
        f"({w['files']} files)",
        "",
        f"Run {meta['date']} on {meta['machine']}; repository at {meta['commit'][:10]}, "
        f"`ngshare` imported from `{meta.get('ngshare_source', '?')}`. "
        f"Command: `{meta['command']}`",
        "",
        "## Summary",
        "",
    ]
    head = ["", *[r["label"] for r in runs]]
    rows = [
        ["whole cycle wall (s)", *[fmt(r["cycle_wall_s"], 1) for r in runs]],
        *[
            [f"{phase} wall (s)", *[fmt(by_phase[r["label"]][phase]["wall_s"], 2) for r in runs]]
            for phase in phases
        ],
        ["submit p50 (s)", *[fmt(by_phase[r["label"]]["submit"]["p50_s"], 3) for r in runs]],
        ["submit p95 (s)", *[fmt(by_phase[r["label"]]["submit"]["p95_s"], 3) for r in runs]],
        ["server peak RSS, VmHWM (MB)", *[mb(r["server"]["vmhwm_bytes"]) for r in runs]],
        ["server RSS at start (MB)", *[mb(r["server"]["rss_start_bytes"]) for r in runs]],
        ["requests in the cycle", *[str(r["cycle_requests"]) for r in runs]],
        ["server CPU in the cycle (s)", *[fmt(r["cycle_server_cpu_s"], 1) for r in runs]],
        ["client CPU in the cycle (s)", *[fmt(r["cycle_client_cpu_s"], 1) for r in runs]],
        ["other processes' CPU (s)", *[fmt(r["cycle_other_cpu_s"], 1) for r in runs]],
        ["errors", *[str(r["errors"]) for r in runs]],
    ]
    lines += [markdown_table(head, rows), "", "## Targets (ratios from this run)", ""]
    lines.append(
        markdown_table(
            ["target", "measured", "met"],
            [
                [c["target"], c["measured"], {True: "yes", False: "no", None: ""}[c["met"]]]
                for c in checks
            ],
        )
    )
    for r in runs:
        lines += ["", f"## {r['label']}: per phase", ""]
        lines.append(markdown_table(PHASE_HEADERS, [phase_row(p) for p in r["phases"]]))
        for p in r["phases"]:
            for sample in p["error_samples"]:
                lines.append(f"\n- error in {p['phase']}: `{sample}`")
    return "\n".join(lines) + "\n"


def environment(argv: list[str]) -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {memory / 2**30:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        "commit": commit,
        "ngshare_source": str(Path(ngshare.__file__).parent),
        "command": "python -m bench.compare " + " ".join(argv),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description="Run the class cycle against ngshare 0.6.0 (v1) and ours (v1, v2).",
    )
    classcycle.add_workload_options(parser)
    parser.add_argument(
        "--runs", default=DEFAULT_RUNS, help=f"comma-separated, of {','.join(RUNS)}"
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--name", help="results file stem (default: compare-<date>)")
    parser.add_argument("--workdir", help="where data dirs and temp files go (default: temp)")
    parser.add_argument(
        "--client-dir",
        help="where the simulated users' files go (default: --workdir); e.g. /dev/shm, so "
        "200 students' and the instructor's writes do not share the server's disk",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=180,
        help="before each run, wait up to this many seconds for other work on the machine "
        "to pause (0: do not wait)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip measuring the students' fetch writes alone (bench.floor) before the runs",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--render", metavar="JSON", help="only rewrite the Markdown of an earlier results file"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        checks = ratios(saved["runs"], saved.get("floor"))
        text = markdown(saved["runs"], checks, saved["meta"])
        Path(args.render).with_suffix(".md").write_text(text)
        print(text)
        return 0
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = set(runs) - set(RUNS)
    if unknown:
        raise SystemExit(f"unknown runs: {sorted(unknown)}")
    meta = environment(argv)
    args.workdir_path = Path(tempfile.mkdtemp(prefix="ngshare-compare-", dir=args.workdir))
    results: dict[str, dict] = {}
    floor = None
    try:
        tokens = write_tokens(args.workdir_path / "tokens.json", bench_users(args.students))
        if not args.no_floor:
            floor = measure_floor(args)
            print(f"students' fetch writes alone: {floor}", file=sys.stderr, flush=True)
        for run in runs:
            results[run] = run_one(run, args, tokens)
            time.sleep(2)
    finally:
        shutil.rmtree(args.workdir_path, ignore_errors=True)
    checks = ratios(results, floor)
    text = markdown(results, checks, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or "compare-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (out / f"{name}.json").write_text(
        json.dumps({"meta": meta, "targets": checks, "floor": floor, "runs": results}, indent=1)
        + "\n"
    )
    (out / f"{name}.md").write_text(text)
    print(text)
    print(f"written: {out / name}.json and .md", file=sys.stderr)
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
