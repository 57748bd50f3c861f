"""Simulated users spread over several processes, each with its own HTTP clients.

200 students in one Python process share one GIL: their hashing, JSON parsing
and file writing made the benchmark client, not the server, the bound of
several phases. Real students run on their own machines, so a phase's tasks
are split over forked worker processes (threads inside each). A forked worker
must not reuse its parent's keep-alive connections, so clients are made on
first use in each process (`Clients`).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

from bench.metrics import OpResult

# A task returns its measured operation and a value for the parent (or None).
Task = Callable[[], tuple[OpResult, Any]]


class ClientPool:
    """Clients of one user (the instructor), lent to one thread at a time.

    A client is made only when every existing one is lent out, so a worker
    process makes as many as it has threads acting as that user, not more.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self._free: queue.SimpleQueue = queue.SimpleQueue()

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        try:
            client = self._free.get_nowait()
        except queue.Empty:
            client = self.factory()
        try:
            yield client
        finally:
            self._free.put(client)


class Clients:
    """Each user's clients in the current process, made on first use.

    `factory(user)` makes one client. Students get one client each; the
    instructor a pool, since many threads act as the instructor.
    After a fork the registry starts empty: the child makes its own clients.
    """

    def __init__(self, factory: Callable[[str], Any], instructor: str) -> None:
        self.factory = factory
        self.instructor_name = instructor
        self._lock = threading.Lock()
        self._pid = -1
        self._students: dict[str, Any] = {}
        self._pool: ClientPool | None = None
        self._made: list[Any] = []

    def _here(self) -> None:
        if self._pid != os.getpid():  # new process: forget the parent's clients unclosed
            self._pid = os.getpid()
            self._students, self._pool, self._made = {}, None, []

    def _make(self, user: str) -> Any:
        client = self.factory(user)
        self._made.append(client)
        return client

    def _make_instructor(self) -> Any:
        with self._lock:
            return self._make(self.instructor_name)

    def student(self, name: str) -> Any:
        with self._lock:
            self._here()
            if name not in self._students:
                self._students[name] = self._make(name)
            return self._students[name]

    @contextmanager
    def instructor(self) -> Iterator[Any]:
        with self._lock:
            self._here()
            if self._pool is None:
                self._pool = ClientPool(self._make_instructor)
            pool = self._pool
        with pool.borrow() as client:
            yield client

    def close(self) -> None:
        with self._lock:
            self._here()
            for client in self._made:
                client.close()
            self._students, self._pool, self._made = {}, None, []


def run_threads(tasks: list[Task], threads: int) -> list[tuple[OpResult, Any]]:
    """Run the tasks on `threads` threads, results in task order."""
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="bench") as pool:
        return list(pool.map(lambda task: task(), tasks))


def share(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal whole shares (the larger ones first)."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def run_processes(
    tasks: list[Task], threads: int, processes: int, clients: Clients
) -> list[tuple[OpResult, Any]]:
    """Run the tasks on `threads` threads in all, spread over `processes` forked workers.

    Worker i takes tasks i, i+P, i+2P... so each student's tasks stay in one
    process. A worker that dies reports its tasks as errors, not a hang.
    """
    processes = max(1, min(processes, threads, len(tasks)))
    if processes == 1:
        return run_threads(tasks, threads)
    context = multiprocessing.get_context("fork")
    workers = []
    for index, share_of_threads in enumerate(share(threads, processes)):
        receive, send = context.Pipe(duplex=False)
        mine = tasks[index::processes]
        worker = context.Process(
            target=_worker, args=(mine, share_of_threads, clients, send), daemon=True
        )
        worker.start()
        send.close()
        workers.append((worker, receive, len(mine)))
    results: list[tuple[OpResult, Any]] = [None] * len(tasks)  # type: ignore[list-item]
    for index, (worker, receive, count) in enumerate(workers):
        try:
            part = receive.recv()
        except EOFError:
            part = [(OpResult("worker", 0.0, error="worker process died"), None)] * count
        receive.close()
        worker.join()
        results[index::processes] = part
    return results


def _worker(tasks: list[Task], threads: int, clients: Clients, send: Any) -> None:
    try:
        results = run_threads(tasks, threads)
    except BaseException:  # report, never hang the parent
        error = traceback.format_exc(limit=3)[-300:]
        results = [(OpResult("worker", 0.0, error=error), None)] * len(tasks)
    finally:
        with suppress(Exception):
            clients.close()
    send.send(results)
    send.close()
