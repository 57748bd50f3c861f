"""The server-wide memory budget (ngshare/budget.py): fairness, cancellation, metering.

These run the budget on a real anyio event loop; the server-level behaviour
(many requests at once under a tiny budget) is in test_v2_limits.py.
"""

from __future__ import annotations

import anyio
import pytest

from ngshare.budget import MemoryBudget


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


def test_metered_holds_two_pieces_for_the_whole_response():
    budget = MemoryBudget(1000)
    held_while_consuming: list[int] = []

    async def pieces():
        for size in (300, 50, 400):
            yield b"x" * size

    async def main() -> None:
        async for item in budget.metered(pieces(), piece=400):
            held_while_consuming.append(budget.held)
            assert len(item) in (300, 50, 400)
        assert budget.held == 0

    run(main)
    assert held_while_consuming == [800, 800, 800]


def test_metered_responses_wait_for_room_and_all_finish():
    """Three responses of 100-byte pieces under a budget of 400: each takes 2 x 100,
    so two run at once and the third waits for one of them to end."""
    budget = MemoryBudget(400)
    most = 0

    async def pieces():
        for _ in range(3):
            await anyio.sleep(0.005)
            yield b"x" * 100

    async def response(done: list[int]) -> None:
        nonlocal most
        async for _item in budget.metered(pieces(), piece=100):
            most = max(most, budget.held)
        done.append(1)

    async def main() -> None:
        done: list[int] = []
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(response, done)
        assert len(done) == 3 and budget.held == 0

    run(main)
    assert most == 400  # two responses at once, never three
    assert budget.waits == 1


def test_metered_gives_back_when_the_consumer_stops_early():
    budget = MemoryBudget(1000)
    closed: list[bool] = []

    async def pieces():
        try:
            for _ in range(10):
                yield b"x" * 100
        finally:
            closed.append(True)

    async def main() -> None:
        stream = budget.metered(pieces(), piece=100)
        async for _item in stream:
            break
        assert budget.held == 200  # the response holds its two pieces until it ends
        await stream.aclose()
        assert budget.held == 0
        assert closed == [True]  # and the source was closed too

    run(main)


@pytest.mark.parametrize("size", [-5, 0])
def test_nothing_to_hold(size):
    budget = MemoryBudget(10)

    async def main() -> None:
        assert await budget.acquire(size) == 0
        assert budget.held == 0

    run(main)
