"""The server-wide memory budget (ngshare/budget.py): fairness, cancellation, metering.

These run the budget on a real anyio event loop; the server-level behaviour
(many requests at once under a tiny budget) is in test_v2_limits.py.
"""

from __future__ import annotations

import anyio
import pytest

from ngshare.budget import MIN_PIECE, MemoryBudget
from ngshare.storage.pieces import SEND_CHUNK

MiB = 1024 * 1024


def run(coroutine_function):
    return anyio.run(coroutine_function)


def test_grants_in_arrival_order_and_never_over_the_limit():
    budget = MemoryBudget(100)
    order: list[str] = []
    peaks: list[int] = []

    async def user(name: str, size: int, delay: float) -> None:
        await anyio.sleep(delay)
        async with budget.hold(size):
            order.append(name)
            peaks.append(budget.held)
            await anyio.sleep(0.02)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(user, "a", 60, 0)
            group.start_soon(user, "big", 80, 0.005)  # must wait for a
            group.start_soon(user, "small", 10, 0.01)  # fits now, but queues behind big
        assert budget.held == 0 and budget.waiting == 0

    run(main)
    assert order == ["a", "big", "small"]
    assert max(peaks) <= 100
    assert budget.waits == 2


def test_a_request_larger_than_the_budget_runs_alone():
    budget = MemoryBudget(50)
    seen: list[int] = []

    async def huge() -> None:
        async with budget.hold(10_000):
            seen.append(budget.held)

    async def main() -> None:
        small = await budget.acquire(10)
        async with anyio.create_task_group() as group:
            group.start_soon(huge)
            await anyio.sleep(0.01)
            assert seen == []  # waits while 10 bytes are held
            budget.release(small)
        assert seen == [50]
        assert budget.held == 0

    run(main)


def test_a_cancelled_waiter_leaves_the_queue_and_lets_the_next_in():
    budget = MemoryBudget(100)
    got: list[str] = []
    scopes: list[anyio.CancelScope] = []

    async def never() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            async with budget.hold(50):
                got.append("never")

    async def fits() -> None:
        async with budget.hold(10):
            got.append("fits")

    async def main() -> None:
        taken = await budget.acquire(90)
        async with anyio.create_task_group() as group:
            group.start_soon(never)
            await anyio.sleep(0.01)
            group.start_soon(fits)
            await anyio.sleep(0.01)
            assert got == []  # "fits" would fit, but queues behind "never"
            scopes[0].cancel()  # the head of the queue leaves (its client went away)
            await anyio.sleep(0.01)
            assert got == ["fits"]
        assert budget.waiting == 0
        budget.release(taken)
        assert budget.held == 0

    run(main)


def test_cancelled_between_its_grant_and_its_wakeup_gives_the_bytes_back():
    budget = MemoryBudget(100)
    scopes: list[anyio.CancelScope] = []
    woke: list[bool] = []

    async def late() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            async with budget.hold(100):
                woke.append(True)  # not reached: cancelled before it ran again

    async def main() -> None:
        first = await budget.acquire(100)
        async with anyio.create_task_group() as group:
            group.start_soon(late)
            await anyio.sleep(0.01)
            scopes[0].cancel()  # `late` is cancelled, but runs again only later ...
            budget.release(first)  # ... so this grants it its bytes first
        assert woke == []
        assert budget.held == 0 and budget.waiting == 0

    run(main)


def test_downloads_share_the_budget_by_piece_size():
    budget = MemoryBudget(64 * MiB)
    assert budget.piece() == SEND_CHUNK  # alone: the largest piece
    budget.downloads = 100  # 64 MiB / (2 x 100): 327 KiB, more than the largest
    assert budget.piece() == SEND_CHUNK
    budget.downloads = 500  # 64 KiB each, two per download: 64 MiB in all
    assert budget.piece() == 64 * 1024
    assert 2 * budget.downloads * budget.piece() <= budget.limit
    budget.downloads = 100_000  # never below MIN_PIECE
    assert budget.piece() == MIN_PIECE
    budget.downloads, budget.held = 1, 64 * MiB - 100 * 1024  # uploads hold nearly all
    assert budget.piece() == 48 * 1024  # half of the 100 KiB left, rounded down


def test_streamed_counts_a_download_while_it_lasts_however_it_ends():
    budget = MemoryBudget(1000)
    closed: list[bool] = []
    seen: list[int] = []

    async def pieces():
        try:
            for _ in range(10):
                yield b"x" * 100
        finally:
            closed.append(True)

    async def main() -> None:
        async for _item in budget.streamed(pieces()):
            seen.append(budget.downloads)
        assert budget.downloads == 0
        stream = budget.streamed(pieces())
        async for _item in stream:
            break  # the client hung up after one piece
        assert budget.downloads == 1
        await stream.aclose()
        assert budget.downloads == 0

    run(main)
    assert seen == [1] * 10
    assert closed == [True, True]  # the source was closed both times


@pytest.mark.parametrize("size", [-5, 0])
def test_nothing_to_hold(size):
    budget = MemoryBudget(10)

    async def main() -> None:
        assert await budget.acquire(size) == 0
        assert budget.held == 0

    run(main)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"content-length": "1200"}, 1200),  # a small bundle takes its size
        ({"content-length": str(50 * MiB)}, 5 * MiB),  # large files stream: at most 5 MiB
        ({}, 5 * MiB),  # chunked, no length: the most a request holds
        ({"content-length": "12x"}, 5 * MiB),  # a bad length (uvicorn refuses it first)
    ],
)
def test_what_an_upload_takes_from_the_budget(headers, expected):
    from starlette.requests import Request

    from ngshare.api.v2.batches import body_bytes

    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    request = Request({"type": "http", "method": "PUT", "headers": raw})
    assert body_bytes(request) == expected


def test_would_wait_tells_whether_an_acquire_would_queue():
    """What an upload's ring asks before it borrows its next batch: it lets its
    buffers go only if it is about to wait."""
    budget = MemoryBudget(100)

    async def main() -> None:
        assert not budget.would_wait(100)
        first = await budget.acquire(70)
        assert not budget.would_wait(30) and budget.would_wait(31)
        assert budget.would_wait(10**9) is True  # capped at the limit, still too much now
        async with anyio.create_task_group() as group:
            group.start_soon(budget.acquire, 50)  # queues behind what is held
            await anyio.sleep(0.01)
            assert budget.waiting == 1
            assert budget.would_wait(1)  # fits, but others queue first: first come first served
            budget.release(first)
        assert not budget.would_wait(50) and budget.would_wait(51)

    run(main)
