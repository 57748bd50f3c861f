"""Work the server does on a schedule: garbage collection (and more to come).

Each task is an endless async loop; `background_tasks` returns those the
settings switch on. They run in the server's task group and stop with it.
Each takes a database lock where needed, so several replicas can all run them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from ngshare.state import AppState

log = logging.getLogger("ngshare")

Task = Callable[[], Awaitable[None]]


def background_tasks(state: AppState) -> list[Task]:
    tasks: list[Task] = []
    if state.settings.gc_interval_minutes > 0:
        tasks.append(lambda: _every(state.settings.gc_interval_minutes * 60, _gc, state))
    return tasks


async def _every(seconds: float, job: Callable[[AppState], None], state: AppState) -> None:
    while True:
        await anyio.sleep(seconds)
        try:
            await anyio.to_thread.run_sync(job, state)
        except Exception:
            log.exception("%s failed; will try again", job.__name__)


def _gc(state: AppState) -> None:
    from ngshare.domain.gc import collect_exclusively, gc_options

    collect_exclusively(state.db, state.store, **gc_options(state.settings))
