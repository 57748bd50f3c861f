"""The benchmark's class cycle, end to end with a tiny workload, over v1 and v2."""

from __future__ import annotations

import itertools
import os

import pytest

from bench import classcycle
from bench.metrics import OpResult
from bench.workers import Clients, run_processes, share
from tests.servers import write_token_file

_runs = itertools.count(1)

# Requests per phase for 3 students and a release of 5 notebooks plus one data file.
EXPECTED_REQUESTS = {
    "v1": {
        "setup": 2,  # create course, add students
        "release": 2,  # list assignments, post the release
        "fetch": 3,  # one GET each
        "submit": 6,  # list_only GET and POST each
        "collect": 4,  # list, then one GET per student
        "feedback": 3,
        "fetch_feedback": 3,
    },
    "v2": {
        "setup": 2,
        "release": 2,  # missing?, the manifest bundled with all 6 small blobs
        "fetch": 6,  # the manifest carrying the 6 small blobs, the audit report each
        "submit": 3,  # the manifest bundled with the 5 changed notebooks each; the
        # data file, known fetched from the course, named by hash only
        "collect": 2,  # one listing with files, one batch of every distinct blob
        "feedback": 1,  # the class's sets bundled with every html (too small to ask first)
        "fetch_feedback": 3,  # the manifest carrying the html each
    },
}


@pytest.mark.parametrize(
    ("api", "processes"),
    [("v1", 2), ("v2", 2), ("v2", 1)],  # users in forked workers, or in the benchmark itself
)
def test_class_cycle(server, tmp_path, api, processes):
    tokens = write_token_file(tmp_path / "tokens.json")
    run = next(_runs)
    args = classcycle.build_parser().parse_args(
        [
            "--url", server.url, "--api", api,
            "--auth", "token-file", "--tokens", str(tokens),
            "--server-pid", str(server.process.pid),
            "--students", "3", "--student-prefix", "stu", "--instructor", "inst1",
            "--notebook-kb", "2", "--data-mb", "0.1", "--feedback-kb", "1",
            "--concurrency", "2", "--processes", str(processes),
            "--course", f"bench{run}", "--seed", str(4000 + run),
            "--workdir", str(tmp_path),
        ]
    )  # fmt: skip
    result = classcycle.run(args)

    assert result["errors"] == 0, classcycle.report(result)
    phases = {p["phase"]: p for p in result["phases"]}
    assert {name: p["requests"] for name, p in phases.items()} == EXPECTED_REQUESTS[api]
    for phase in phases.values():
        assert phase["p95_s"] is not None and phase["wall_s"] > 0
        assert phase["server_peak_rss_bytes"] > 0
    release_bytes = result["workload"]["release_bytes"]
    assert phases["fetch"]["bytes_down"] >= 3 * release_bytes
    if api == "v2":
        data_bytes = int(0.1 * 2**20)
        assert phases["submit"]["bytes_up"] < data_bytes  # only the changed notebooks travel
    assert result["cycle_wall_s"] == pytest.approx(
        sum(p["wall_s"] for name, p in phases.items() if name != "setup"), abs=0.01
    )
    assert "whole cycle" in classcycle.report(result)


def test_v1_users_count_what_they_read_and_report_refusals(server, tmp_path):
    """bench.v1.V1Client reads GET answers past httpx: a refusal still names the
    server's status and message, and the request and its bytes are counted."""
    from bench.users import Auth
    from bench.v1 import BenchError, V1Client

    auth = Auth.load("token-file", write_token_file(tmp_path / "tokens.json"))
    with V1Client(server.url, auth, "inst1", 30) as client:
        with pytest.raises(BenchError, match=r"^HTTP 404: .+"):
            client.get("assignments/no-such-course")
        assert client.counter.requests == 1 and client.counter.down > 0


def test_workers_keep_order_and_report_a_dead_worker():
    """Results come back in task order; a worker process that dies yields errors, not a hang."""

    def ok(n: int):
        return lambda: (OpResult("ok", 0.0), (n, os.getpid()))

    def die():
        os._exit(3)

    tasks = [ok(0), ok(1), ok(2), die, ok(4), ok(5)]
    clients = Clients(lambda user: None, "inst")
    results = run_processes(tasks, threads=2, processes=2, clients=clients)
    # worker 0 had tasks 0, 2, 4; worker 1 had 1, 3 (dies), 5
    assert [value[0] for _, value in results[0::2]] == [0, 2, 4]
    assert {value[1] for _, value in results[0::2]} != {os.getpid()}
    assert [op.error for op, _ in results[1::2]] == ["worker process died"] * 3
    assert share(5, 2) == [3, 2] and share(32, 4) == [8, 8, 8, 8]


def test_downloads_benchmark_runs_whole_downloads(tmp_path):
    """bench.downloads against a real server: every student's download whole (it
    raises otherwise), and a report with the server's memory at rest and peak."""
    from bench.downloads import run_once

    row = run_once(students=4, budget=1, size_mb=2, pause=0, workdir=tmp_path)
    assert row["students"] == 4 and row["budget_mib"] == 1
    assert row["rss_peak_mb"] >= row["rss_at_rest_mb"] > 20
    assert row["wall_s"] > 0


def test_uploads_benchmark_stores_every_students_file(tmp_path):
    """bench.uploads against a real server: every student's distinct file stored (a
    status other than 201 raises), and a report with the server's memory."""
    from bench.uploads import _file_of, run_once

    assert _file_of(b"x" * 32, 1) != _file_of(b"x" * 32, 2)
    row = run_once(students=4, budget=1, size_mb=9, pause=0, workdir=tmp_path)
    assert row["students"] == 4 and row["budget_mib"] == 1
    assert row["rss_peak_mb"] >= row["rss_at_rest_mb"] > 20
    assert row["wall_s"] > 0
    stored = list((tmp_path / "server").rglob("*"))
    assert sum(p.stat().st_size for p in stored if p.is_file()) >= 4 * 9 * 2**20


def test_floor_writes_every_copy_and_reports_it(tmp_path):
    """bench.floor: the students' writes alone, from several processes, with their
    CPU counted (the children's) and nothing left behind; the compare report lists it."""
    from bench.compare import ratios
    from bench.floor import write_floor

    sizes = [3 * 2**20, 100_000]
    floor = write_floor(tmp_path, sizes, students=5, processes=2)
    assert floor["bytes"] == 5 * sum(sizes) and floor["processes"] == 2
    assert floor["wall_s"] > 0 and floor["cpu_s"] > 0
    assert list(tmp_path.iterdir()) == []
    (row,) = ratios({}, floor)
    assert row["target"].startswith("(info) students' fetch writes alone, 16 MB into ")
    assert row["measured"] == f"{floor['wall_s']:.2f} s wall, {floor['cpu_s']:.1f} s CPU"
    assert row["met"] is None


def test_cold_read_probe_reads_the_whole_file_twice(tmp_path):
    """bench.largefile.cold_read_probe: both reads timed over the whole file, with the
    system CPU they took, and the probe's file removed."""
    from bench.largefile import MIB, cold_read_probe

    probe = cold_read_probe(tmp_path, pause=0.1, total=8 * MIB)
    assert probe["pause_s"] == 0.1
    for read in (probe["after_pause"], probe["at_once"]):
        assert read["bytes"] == 8 * MIB
        assert read["bytes_per_s"] > 0 and read["system_cpu_s"] >= 0
    assert list(tmp_path.iterdir()) == []


def test_fresh_memory_probe_times_every_step_and_removes_its_file(tmp_path):
    """bench.floor.fresh_memory_probe: one row per step, each with the step's bytes
    written (the file grows by each), and nothing left behind."""
    from bench.floor import fresh_memory_probe

    rows = fresh_memory_probe(tmp_path, steps=3, step_bytes=3 * 2**20 + 5)
    assert [row["step"] for row in rows] == [1, 2, 3]
    for row in rows:
        assert row["bytes"] == 3 * 2**20 + 5
        assert row["file_bytes"] == row["step"] * row["bytes"]  # kept, not rewritten
        assert row["wall_s"] > 0 and row["cpu_s"] >= 0 and row["mb_s"] > 0
    assert list(tmp_path.iterdir()) == []


def test_largefile_report_names_each_sizes_write_floor():
    """The floor line: the copy's speed written alone, as a share of loopback."""
    from bench.largefile import GIB, _floor_lines

    floor = {"bytes": 2 * GIB, "wall_s": 2.0, "cpu_s": 1.9, "directory": "/dev/shm/x"}
    lines = _floor_lines([{"size_bytes": 2 * GIB, "client_write_floor": floor}], 4 * GIB)
    assert lines[0] == ""
    assert "2 GiB written alone into /dev/shm/x" in lines[1]
    assert "1074 MB/s, 0.25 of loopback, 1.9 s CPU" in lines[1]
    assert _floor_lines([{"size_bytes": GIB}], 4 * GIB) == []  # runs without the floor


def test_largefile_round_trip_keeps_the_clients_files_in_client_dir(tmp_path):
    """bench.largefile with `--client-dir`: the released file and the fetched copy live
    there, not in the work directory (where a file named like their folders would make
    any use of it fail), both fetches verify, and nothing is left behind."""
    from bench.largefile import MIB, Probe
    from bench.metrics import ServerMonitor
    from bench.users import Auth
    from tests.servers import ServerProcess

    tokens = write_token_file(tmp_path / "tokens.json", ["admin", "instructor", "student1"])
    (tmp_path / "data").mkdir()
    server = ServerProcess(tmp_path / "data", ["--token-file", str(tokens), "--admins", "admin"])
    try:
        server.wait_ready()
        workdir, client_dir = tmp_path / "work", tmp_path / "client"
        workdir.mkdir()
        client_dir.mkdir()
        for name in ("release", "fetched"):
            (workdir / name).write_text("not a directory")
        auth = Auth.load("token-file", tokens)
        probe = Probe(server.url, auth, server.process.pid, workdir, "bigfiles", 0, client_dir)
        probe.create_course()
        with ServerMonitor(server.process.pid) as monitor:
            result = probe.v2_round_trip(3 * MIB + 7, monitor)
        assert result["verified"] and result["verified_again"]
        assert result["download"]["bytes_on_wire"] >= 3 * MIB + 7
        floor = result["client_write_floor"]  # the fetch's floor, written where it wrote
        assert floor["bytes"] == 3 * MIB + 7 and floor["directory"] == str(client_dir)
        assert list(client_dir.iterdir()) == []
    finally:
        server.stop()
