"""The largest-file probe: 1, 2, 4 GiB over v2, v1 limits, and raw loopback TCP speed.

    python -m bench.largefile --sizes 1,2,4 --v1-sizes 70,100,200

Without `--url` it starts our server (fresh data dir, token-file auth) and, for
the v1 probe, ngshare 0.6.0 as `bench.compare` does. For each size it writes a
file (a pseudo-random 1 MiB block, each copy stamped with its index, so
nothing repeats and hashing is real; never held in memory), releases it over
v2 with NgshareClient and fetches it back, timing each way and sampling the
server's RSS every 100 ms (growth = peak during the transfer minus the RSS
just before). The same run measures plain TCP over 127.0.0.1 (1 MiB sends),
and each transfer is shown as a fraction of it. The v1 probe releases one
file of each `--v1-sizes` MB (10^6 bytes) to each server and fetches it back.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.floor import write_floor
from bench.metrics import (
    ServerMonitor,
    client_cpu_seconds,
    fmt,
    machine_busy_seconds,
    markdown_table,
    mb,
    wait_for_quiet,
)
from bench.servers import (
    REPO,
    bench_users,
    ensure_old_venv,
    start_fakehub,
    start_old,
    start_ours,
    write_tokens,
)
from bench.users import Auth, check_loopback
from bench.v1 import V1Client, encoded_entry, files_field, form
from bench.v2 import make_client
from ngshare.client import scan_tree

MIB = 2**20
GIB = 2**30


# Raw loopback TCP


def _receive(listener: socket.socket, block: int, results) -> None:
    conn, _ = listener.accept()
    buffer = bytearray(block)
    received = 0
    with conn:
        while (n := conn.recv_into(buffer)) > 0:
            received += n
    results.put((received, time.perf_counter()))


def loopback_throughput(total: int = 2 * GIB, block: int = MIB) -> float:
    """Bytes per second from one process to another over 127.0.0.1, 1 MiB per send."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        receiver = context.Process(target=_receive, args=(listener, block, results))
        receiver.start()
        payload = os.urandom(block)
        with socket.create_connection(("127.0.0.1", listener.getsockname()[1])) as sender:
            start = time.perf_counter()
            for _ in range(total // block):
                sender.sendall(payload)
        received, end = results.get(timeout=600)
        receiver.join(10)
    if received != total // block * block:
        raise RuntimeError(f"loopback test lost bytes: {received}")
    return received / (end - start)


def iperf3_throughput(seconds: int = 5) -> float | None:
    """Bytes per second of one TCP stream over 127.0.0.1 as iperf3 measures it (if installed)."""
    if shutil.which("iperf3") is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listen = ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(listen, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            time.sleep(0.1)
            run = subprocess.run(
                ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                capture_output=True,
                text=True,
                timeout=seconds + 30,
            )
            if run.returncode == 0:
                return json.loads(run.stdout)["end"]["sum_received"]["bits_per_second"] / 8
        return None
    finally:
        server.kill()
        server.wait()


def disk_throughput(directory: Path, total: int = GIB) -> float:
    """Bytes per second written durably (1 MiB writes, then fdatasync) where the server stores."""
    path = directory / "disk-probe.bin"
    start = time.perf_counter()
    _write_synced(path, total)
    seconds = time.perf_counter() - start
    path.unlink()
    return total / seconds


def _write_synced(path: Path, total: int) -> None:
    """`total` bytes of one random MiB repeated, written 1 MiB at a time, then fdatasync'ed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        for _ in range(total // MIB):
            handle.write(block)
        handle.flush()
        os.fdatasync(handle.fileno())


def cold_read_probe(directory: Path, pause: float, total: int = GIB) -> dict:
    """Buffered reads of a file out of the page cache, as a first fetch reads a blob.

    Read twice, dropping the file's cached pages each time: first after
    `pause` seconds, then at once. On a VM whose idle memory goes back to the
    host, the first read's page cache lands in memory the guest must fault in
    again, and the CPU's first touch of it is what bounds a first fetch (the
    copy into the client's buffer); the second reuses pages just freed. Each
    read's MB/s and the system CPU seconds it took.
    """
    path = directory / "cold-probe.bin"
    _write_synced(path, total)
    buffer = memoryview(bytearray(MIB))
    result = {"pause_s": pause}
    try:
        for name, wait in (("after_pause", pause), ("at_once", 0)):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                time.sleep(wait)
                cpu, start, read = os.times().system, time.perf_counter(), 0
                while got := os.readv(fd, [buffer]):
                    read += got
                seconds = time.perf_counter() - start
                result[name] = {
                    "bytes": read,
                    "bytes_per_s": read / seconds,
                    "system_cpu_s": round(os.times().system - cpu, 2),
                }
            finally:
                os.close(fd)
    finally:
        path.unlink()
    return result


# Test files


def write_file(path: Path, size: int, seed: int = 1) -> str:
    """A deterministic file of `size` bytes, written 1 MiB at a time; returns its sha256."""
    block = bytearray(random.Random(seed).randbytes(MIB))
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        written, index = 0, 0
        while written < size:
            block[:8] = index.to_bytes(8, "big")
            piece = memoryview(block)[: min(MIB, size - written)]
            handle.write(piece)
            digest.update(piece)
            written += len(piece)
            index += 1
    return digest.hexdigest()


class Probe:
    def __init__(
        self,
        url: str,
        auth: Auth,
        pid: int | None,
        workdir: Path,
        course: str,
        quiet_wait: float = 0,
        client_dir: Path | None = None,
    ) -> None:
        self.quiet_wait = quiet_wait
        self.client_dir = client_dir or workdir  # the instructor's and student's files
        self.url = url
        self.auth = auth
        self.pid = pid
        self.workdir = workdir
        self.course = course

    def create_course(self) -> None:
        admin = V1Client(self.url, self.auth, "admin", 600)
        instructor = V1Client(self.url, self.auth, "instructor", 600)
        with admin, instructor:
            admin.post(f"course/{self.course}", form(user="admin", instructors='["instructor"]'))
            student = {"first_name": "S", "last_name": "One", "email": "s@x.org"}
            instructor.post(f"student/{self.course}/student1", form(**student))

    def v2_round_trip(self, size: int, monitor: ServerMonitor) -> dict:
        name = f"big{size // MIB}m"
        source = self.client_dir / "release" / name
        sha = write_file(source / "dataset.bin", size)
        instructor = make_client(self.url, self.auth, "instructor", 600)
        student = make_client(self.url, self.auth, "student1", 600)
        result: dict = {"size_bytes": size, "sha256": sha}
        try:
            start = time.perf_counter()
            files = scan_tree(source)
            result["client_hash_s"] = time.perf_counter() - start

            def upload() -> None:
                instructor.upload_files(self.course, files)
                manifest = {"files": [f.manifest_entry() for f in files]}
                instructor.request(
                    "PUT", f"courses/{self.course}/assignments/{name}", json=manifest
                )

            self.settle()
            result["upload"] = _transfer(upload, size, monitor)
            result["upload"]["bytes_on_wire"] = instructor.counter.snapshot()[1]  # type: ignore[attr-defined]
            shutil.rmtree(source)
            dest = self.client_dir / "fetched" / name
            self.settle()
            result["download"] = _transfer(
                lambda: student.fetch_assignment(self.course, name, dest), size, monitor
            )
            result["download"]["bytes_on_wire"] = student.counter.snapshot()[2]  # type: ignore[attr-defined]
            result["verified"] = _sha256(dest / "dataset.bin") == sha
            shutil.rmtree(dest)
            # the next student's fetch: a new client, the blob now in the server's page cache
            # (the upload went past it, so the first fetch read the disk)
            again = make_client(self.url, self.auth, "student1", 600)
            with again:
                self.settle()
                result["download_again"] = _transfer(
                    lambda: again.fetch_assignment(self.course, name, dest), size, monitor
                )
            result["verified_again"] = _sha256(dest / "dataset.bin") == sha
            shutil.rmtree(dest)
            # the same bytes written alone where the student wrote them: a fetch's floor
            self.settle()
            result["client_write_floor"] = write_floor(self.client_dir, [size], 1, 1)
            if shutil.which("curl"):
                result["curl"] = self.curl_probe(sha, size, monitor)
        finally:
            instructor.close()
            student.close()
            shutil.rmtree(self.client_dir / "release", ignore_errors=True)
            shutil.rmtree(self.client_dir / "fetched", ignore_errors=True)
        return result

    def settle(self) -> None:
        """Flush dirty pages and wait for other work to pause, so transfers start alike."""
        os.sync()
        if self.quiet_wait > 0:
            wait_for_quiet(self.quiet_wait)

    def _curl_auth(self, user: str) -> tuple[list[str], str]:
        if self.auth.kind == "dev":
            return [], f"user={user}"
        return ["-H", f"Authorization: token {self.auth.token(user)}"], ""

    def curl_probe(self, sha: str, size: int, monitor: ServerMonitor) -> dict:
        """The same sizes moved by curl: the server's own speed, without a Python client."""
        base = f"{self.url}/v2/courses/{self.course}/blobs"
        headers, query = self._curl_auth("student1")
        result = {}
        self.settle()
        result["download"] = _transfer(
            lambda: _curl([*headers, f"{base}/{sha}?{query}"]), size, monitor
        )
        other = self.workdir / "curl-upload.bin"
        other_sha = write_file(other, size, seed=2)
        headers, query = self._curl_auth("instructor")
        self.settle()
        upload = [*headers, "-H", "Content-Type: application/octet-stream", "-T", str(other)]
        upload.append(f"{base}/{other_sha}?size={size}&{query}")
        result["upload"] = _transfer(lambda: _curl(upload), size, monitor)
        other.unlink()
        return result

    def v1_round_trip(self, size: int, monitor: ServerMonitor) -> dict:
        """Release one file of `size` bytes over v1 and, if accepted, fetch it back."""
        name = f"v1big{size // 10**6}"
        data = random.Random(size).randbytes(size)
        md5 = hashlib.md5(data).hexdigest()
        entry = encoded_entry("dataset.bin", base64.b64encode(data).decode()).encode("ascii")
        body = [b"user=instructor&files=", *files_field([entry])]
        data, entry = b"", b""  # free them (the body's pieces keep the one copy)
        result: dict = {"size_bytes": size, "body_bytes": sum(map(len, body))}
        instructor = V1Client(self.url, self.auth, "instructor", 900)
        student = V1Client(self.url, self.auth, "student1", 900)
        with instructor, student:

            def release() -> None:
                instructor.post(f"assignment/{self.course}/{name}", body)

            self.settle()
            result["upload"] = _transfer(release, size, monitor)
            body = []
            if result["upload"]["ok"]:

                def fetch() -> None:
                    files = student.get(f"assignment/{self.course}/{name}")["files"]
                    if files[0]["checksum"] != md5:
                        raise RuntimeError("checksum differs")

                result["download"] = _transfer(fetch, size, monitor)
        return result


def _transfer(action, size: int, monitor: ServerMonitor) -> dict:
    monitor.window()
    before = monitor.rss()
    cpu = (monitor.cpu(), client_cpu_seconds(), machine_busy_seconds())
    start = time.perf_counter()
    error = None
    try:
        action()
    except Exception as exc:  # a refused upload is a result, not a crash
        error = f"{type(exc).__name__}: {exc}"[:300]
    seconds = time.perf_counter() - start
    peak = monitor.window()
    server_cpu = (monitor.cpu() or 0) - (cpu[0] or 0)
    client_cpu = client_cpu_seconds() - cpu[1]
    return {
        "ok": error is None,
        "error": error,
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / seconds / 1e6, 1),
        "rss_before_bytes": before,
        "rss_peak_bytes": peak,
        "rss_growth_bytes": None if peak is None or before is None else peak - before,
        "server_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "other_cpu_s": round(machine_busy_seconds() - cpu[2] - server_cpu - client_cpu, 2),
    }


def _curl(args: list[str]) -> None:
    """Run curl (C, no hashing, output to /dev/null); raise unless it got a 2xx."""
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if not done.stdout.strip().startswith("2"):
        raise RuntimeError(f"curl: HTTP {done.stdout.strip()} {done.stderr.strip()[:200]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _sizes(text: str, unit: int) -> list[int]:
    return [int(float(part) * unit) for part in text.split(",") if part.strip()]


def run(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="ngshare-largefile-", dir=args.workdir))
    client_dir = workdir  # replaced below with a folder of --client-dir's, removed alike
    servers = []
    result: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "client_dir": args.client_dir or "the work directory (the server's disk)",
    }
    try:
        if args.client_dir:
            client_dir = Path(tempfile.mkdtemp(prefix="ngshare-largefile-", dir=args.client_dir))
        tokens = (
            Path(args.tokens)
            if args.tokens
            else write_tokens(workdir / "tokens.json", bench_users(1))
        )
        auth = Auth.load(args.auth, tokens)
        if args.url:
            targets = [("server", check_loopback(args.url), args.server_pid)]
        else:
            ours = start_ours(workdir / "ours", tokens)
            servers.append(ours)
            targets = [("ours", ours.url, ours.pid)]
        loopback_bytes = int(args.loopback_gb * GIB)
        os.sync()
        if args.quiet_wait > 0:
            wait_for_quiet(args.quiet_wait)
        result["loopback_runs_bytes_per_s"] = [
            loopback_throughput(loopback_bytes) for _ in range(3)
        ]
        print(f"raw loopback TCP: {_loopback(result) / 1e6:.0f} MB/s", file=sys.stderr, flush=True)
        result["iperf3_bytes_per_s"] = iperf3_throughput()
        result["disk_bytes_per_s"] = disk_throughput(workdir / "disk")
        if args.cold_read_pause > 0:
            result["cold_read"] = cold_read_probe(workdir / "disk", args.cold_read_pause)
        name, url, pid = targets[0]
        probe = Probe(url, auth, pid, workdir, "largefile", args.quiet_wait, client_dir)
        probe.create_course()
        result["v2"] = []
        with ServerMonitor(pid) as monitor:
            for size in _sizes(args.sizes, GIB):
                print(f"v2 {size / GIB:g} GiB ...", file=sys.stderr, flush=True)
                result["v2"].append(probe.v2_round_trip(size, monitor))
            result["v1"] = {name: _v1_probe(probe, args, monitor)}
        result["loopback_runs_bytes_per_s"] += [loopback_throughput(loopback_bytes) for _ in (1, 2)]
        result["loopback_bytes_per_s"] = _loopback(result)
        if not args.url and not args.no_old and args.v1_sizes:
            for server in servers:
                server.stop()
            servers.clear()
            ensure_old_venv()
            hub = start_fakehub(tokens, workdir / "hub.log")
            servers.append(hub)
            old = start_old(workdir / "old", hub.url)
            servers.append(old)
            probe = Probe(
                old.url, Auth.load("hub", tokens), old.pid, workdir, "largefile", args.quiet_wait
            )
            probe.create_course()
            with ServerMonitor(old.pid) as monitor:
                result["v1"]["ngshare 0.6.0"] = _v1_probe(probe, args, monitor)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(client_dir, ignore_errors=True)
    return result


def _v1_probe(probe: Probe, args: argparse.Namespace, monitor: ServerMonitor) -> list[dict]:
    results = []
    for size in _sizes(args.v1_sizes, 10**6):
        print(f"v1 {size / 1e6:g} MB ...", file=sys.stderr, flush=True)
        results.append(probe.v1_round_trip(size, monitor))
    return results


def _loopback(result: dict) -> float:
    """The reference speed: the best loopback run (two before the transfers, one after)."""
    return max(result["loopback_runs_bytes_per_s"])


V1_HEADERS = [
    "server", "file", "request body", "release", "s", "RSS growth MB", "fetch", "s",
    "RSS growth MB",
]  # fmt: skip


V2_HEADERS = [
    "file", "way", "client", "result", "s", "MB/s", "of loopback", "RSS before MB",
    "RSS growth MB", "server CPU s", "client CPU s", "other CPU s",
]  # fmt: skip


WAYS = {
    "upload": "release (upload)",
    "download": "fetch (download)",
    "download_again": "fetch again (download)",
}


def _v2_row(size: int, way: str, client: str, t: dict, loopback: float) -> list[str]:
    return [
        f"{size / GIB:g} GiB",
        WAYS[way],
        client,
        "ok" if t["ok"] else f"failed: {t['error']}",
        fmt(t["seconds"], 1),
        fmt(t["mb_per_s"], 0),
        f"{t['mb_per_s'] * 1e6 / loopback:.2f}",
        mb(t["rss_before_bytes"]),
        mb(t["rss_growth_bytes"]),
        fmt(t.get("server_cpu_s"), 1),
        fmt(t.get("client_cpu_s"), 1),
        fmt(t.get("other_cpu_s"), 1),
    ]


def report(result: dict) -> str:
    loopback = _loopback(result)
    runs = ", ".join(f"{r / 1e6:.0f}" for r in result["loopback_runs_bytes_per_s"])
    lines = [
        f"Raw loopback TCP, 1 MiB sends, best run: {loopback / 1e6:.0f} MB/s (runs: {runs} MB/s)",
        "",
    ]
    if result.get("iperf3_bytes_per_s"):
        iperf = result["iperf3_bytes_per_s"] / 1e6
        lines += [f"iperf3 over 127.0.0.1, one stream: {iperf:.0f} MB/s"]
    if result.get("disk_bytes_per_s"):
        disk = result["disk_bytes_per_s"] / 1e6
        lines += [f"Disk, 1 GiB written then fdatasync'ed in the data dir: {disk:.0f} MB/s", ""]
    if result.get("client_dir"):
        lines += [
            f"The clients' files (the released file, the fetched copy): {result['client_dir']}",
            "",
        ]
    cold = result.get("cold_read")
    if cold:
        late, soon = cold["after_pause"], cold["at_once"]
        lines += [
            f"Page cache, 1 GiB read after dropping it: {late['bytes_per_s'] / 1e6:.0f} MB/s "
            f"({late['system_cpu_s']} s system CPU) after a {cold['pause_s']:g} s pause, "
            f"{soon['bytes_per_s'] / 1e6:.0f} MB/s ({soon['system_cpu_s']} s) at once "
            "(bench.largefile.cold_read_probe: what a first fetch's reader pays here)",
            "",
        ]
    rows = []
    for item in result["v2"]:
        for way in ("upload", "download", "download_again"):
            if way in item:
                rows.append(_v2_row(item["size_bytes"], way, "NgshareClient", item[way], loopback))
        for way, t in item.get("curl", {}).items():
            rows.append(_v2_row(item["size_bytes"], way, "curl", t, loopback))
    lines.append(markdown_table(V2_HEADERS, rows))
    lines += _floor_lines(result["v2"], loopback)
    lines += ["", "v1 (one file per release, base64 in a form field):", ""]
    rows = []
    for server, items in result["v1"].items():
        for item in items:
            up = item["upload"]
            down = item.get("download")
            rows.append(
                [
                    server,
                    f"{item['size_bytes'] / 1e6:g} MB",
                    f"{item['body_bytes'] / 1e6:.0f} MB",
                    "accepted" if up["ok"] else f"refused: {up['error']}",
                    fmt(up["seconds"], 1),
                    mb(up["rss_growth_bytes"]),
                    "-" if not down else ("ok" if down["ok"] else down["error"]),
                    "-" if not down else fmt(down["seconds"], 1),
                    "-" if not down else mb(down["rss_growth_bytes"]),
                ]
            )
    lines.append(markdown_table(V1_HEADERS, rows))
    return "\n".join(lines)


def _floor_lines(items: list[dict], loopback: float) -> list[str]:
    """Each size's copy written alone into the clients' folder: no fetch beats it."""
    lines = []
    for item in items:
        floor = item.get("client_write_floor")
        if floor:
            speed = floor["bytes"] / floor["wall_s"]
            lines.append(
                f"{item['size_bytes'] / GIB:g} GiB written alone into {floor['directory']}"
                f" (bench.floor.write_floor, after the fetches and a pause): {speed / 1e6:.0f}"
                f" MB/s, {speed / loopback:.2f} of loopback, {floor['cpu_s']:.1f} s CPU: the"
                " fastest a fetch into that folder can run here"
            )
    return ["", *lines] if lines else []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.largefile",
        description="Largest-file probe over v2, v1 size limits, raw loopback throughput.",
    )
    parser.add_argument("--sizes", default="1,2,4", help="v2 file sizes in GiB")
    parser.add_argument("--v1-sizes", default="70,100,200", help="v1 file sizes in MB (10^6)")
    parser.add_argument("--loopback-gb", type=float, default=2, help="GiB for the TCP test")
    parser.add_argument("--url", help="an existing server (default: start ours)")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--auth", choices=["token-file", "hub", "dev"], default="token-file")
    parser.add_argument("--tokens", help="JSON {token: user} with admin, instructor, student1")
    parser.add_argument("--no-old", action="store_true", help="skip ngshare 0.6.0's v1 probe")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="before each transfer, wait up to this many seconds for other work to pause",
    )
    parser.add_argument(
        "--cold-read-pause",
        type=float,
        default=10,
        help="seconds idle before the page-cache probe's first read (0: skip the probe)",
    )
    parser.add_argument("--workdir", help="where the big files go (default: system temp)")
    parser.add_argument(
        "--client-dir",
        help="where the instructor's file and the student's copy go (default: --workdir); "
        "e.g. /dev/shm, so the student's writes do not share the server's disk, as on "
        "a real student's machine",
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--name", help="results file stem (default: largefile-<date>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    text = report(result)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or "largefile-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{name}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
