"""What the simulated students' own file writes cost on this machine, measured alone.

Every student of the class cycle writes the release it fetches (22 MB each,
4.4 GB for 200 students) into the client directory, whatever the server. On
a machine where memory the kernel has not touched lately is slow to touch
(a VM whose freed pages go back to the host), those writes alone can take
more CPU than our server's whole fetch phase (docs/benchmarks.md, sixteenth
and seventeenth sessions), and they share the machine's CPUs with the
server. `write_floor` writes the same bytes in the same file sizes, spread
over the same number of processes, with nothing else running: a floor under
the fetch phase that no server can go below here, reported beside the
ratios so that a reader can tell the server's share from the machine's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from bench.workers import share

WRITE = 1024 * 1024  # bytes per write, as the client's download sink writes


def write_floor(directory: Path, sizes: list[int], students: int, processes: int) -> dict:
    """Write `students` copies of files of `sizes` bytes below `directory` from
    `processes` processes; their wall time and CPU seconds (all removed after)."""
    root = Path(tempfile.mkdtemp(prefix="floor-", dir=directory))
    shares = share(students, processes)
    before = _cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        context = multiprocessing.get_context("fork")
        workers = [
            context.Process(target=_write_copies, args=(root / f"p{p}", sizes, copies))
            for p, copies in enumerate(shares)
            if copies
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        wall = time.perf_counter() - start
        failed = [w.exitcode for w in workers if w.exitcode != 0]
        if failed:
            raise RuntimeError(f"a floor writer failed (exit codes {failed})")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - before
    return {
        "bytes": students * sum(sizes),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "processes": len(workers),
        "directory": str(directory),
    }


def _write_copies(root: Path, sizes: list[int], copies: int) -> None:
    """One process's share: `copies` trees, each file written WRITE bytes at a time
    from one reused buffer (the cost measured is the kernel's, not Python's)."""
    buffer = memoryview(os.urandom(WRITE))
    for copy in range(copies):
        tree = root / str(copy)
        tree.mkdir(parents=True)
        for index, size in enumerate(sizes):
            with open(tree / f"f{index}", "wb", buffering=0) as handle:
                _write_bytes(handle, buffer, size)


def _write_bytes(handle: BinaryIO, buffer: memoryview, size: int) -> None:
    """`size` bytes into `handle`, WRITE at a time from `buffer`."""
    left = size
    while left:
        left -= handle.write(buffer[: min(left, WRITE)])


def fresh_memory_probe(directory: Path, steps: int, step_bytes: int = 2**30) -> list[dict]:
    """Write `steps` * `step_bytes` into one file below `directory`, keeping it all
    until the end, and time each step: the wall time and this process's CPU.

    On a VM that hands freed memory back to its host, the first steps reuse
    memory the guest still holds and later ones touch memory it must get
    back first; the step where the rate falls tells how much a workload may
    hold before every new page costs that first touch (docs/benchmarks.md,
    eighteenth session). The file is removed after.
    """
    buffer = memoryview(os.urandom(WRITE))
    target = Path(tempfile.mkdtemp(prefix="fresh-", dir=directory)) / "probe"
    rows = []
    try:
        with open(target, "wb", buffering=0) as handle:
            for step in range(steps):
                before, start = _cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
                _write_bytes(handle, buffer, step_bytes)
                wall = time.perf_counter() - start
                cpu = _cpu_seconds(resource.RUSAGE_SELF) - before
                rows.append(
                    {"step": step + 1, "bytes": step_bytes, "wall_s": round(wall, 3),
                     "cpu_s": round(cpu, 3), "mb_s": round(step_bytes / 1e6 / wall, 1),
                     "file_bytes": os.fstat(handle.fileno()).st_size}
                )  # fmt: skip
    finally:
        shutil.rmtree(target.parent, ignore_errors=True)
    return rows


def _cpu_seconds(who: int) -> float:
    """User plus system CPU seconds of this process (RUSAGE_SELF) or its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write GiB after GiB into one kept file and time each (fresh_memory_probe)."
    )
    parser.add_argument("--dir", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--gib", type=int, default=6, help="GiB written in all, one step each")
    args = parser.parse_args()
    print(f"| GiB | MB/s | wall s | CPU s |  (into {args.dir})\n|---|---|---|---|")
    for row in fresh_memory_probe(args.dir, args.gib):
        print(f"| {row['step']} | {row['mb_s']:.0f} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} |")


if __name__ == "__main__":
    main()
