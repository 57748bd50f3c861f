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

import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from bench.workers import share

WRITE = 1024 * 1024  # bytes per write, as the client's download sink writes


def write_floor(directory: Path, sizes: list[int], students: int, processes: int) -> dict:
    """Write `students` copies of files of `sizes` bytes below `directory` from
    `processes` processes; their wall time and CPU seconds (all removed after)."""
    root = Path(tempfile.mkdtemp(prefix="floor-", dir=directory))
    shares = share(students, processes)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
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
                left = size
                while left:
                    left -= handle.write(buffer[: min(left, WRITE)])
