"""Work the server does on a schedule: garbage collection, JupyterHub group sync.

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
    settings = state.settings
    if settings.gc_interval_minutes > 0:
        tasks.append(lambda: _every(settings.gc_interval_minutes * 60, _gc, state))
    groups = settings.hub_student_groups or settings.hub_instructor_groups
    if groups and settings.auth == "hub" and settings.group_sync_minutes > 0:
        tasks.append(lambda: _every(settings.group_sync_minutes * 60, _sync_groups, state))
    return tasks


async def _every(seconds: float, job: Callable[[AppState], None], state: AppState) -> None:
    """Run `job` now and then every `seconds`, surviving its failures."""
    while True:
        try:
            await anyio.to_thread.run_sync(job, state)
        except Exception:
            log.exception("%s failed; will try again", job.__name__)
        await anyio.sleep(seconds)


def _sync_groups(state: AppState) -> None:
    from ngshare.domain.groups import sync_from_hub

    sync_from_hub(state.db, state.settings)


def _gc(state: AppState) -> None:
    from ngshare.domain.gc import collect_exclusively, gc_options

    collect_exclusively(state.db, state.store, **gc_options(state.settings))
