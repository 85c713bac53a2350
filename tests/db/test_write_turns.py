from __future__ import annotations

import asyncio

from reminders.db.engine import WriteTurns


async def _take_turns(turns: WriteTurns, count: int) -> list[tuple[str, int]]:
    log: list[tuple[str, int]] = []

    async def write(n: int) -> None:
        async with turns:
            log.append(("start", n))
            await asyncio.sleep(0)
            log.append(("end", n))

    await asyncio.gather(*(write(n) for n in range(count)))
    return log


def test_writes_take_turns_one_at_a_time_in_arrival_order() -> None:
    log = asyncio.run(_take_turns(WriteTurns(), 5))
    assert log == [(event, n) for n in range(5) for event in ("start", "end")]


def test_turns_work_again_on_another_event_loop() -> None:
    turns = WriteTurns()
    first = asyncio.run(_take_turns(turns, 3))
    second = asyncio.run(_take_turns(turns, 3))
    assert first == second == [(event, n) for n in range(3) for event in ("start", "end")]


def test_a_write_cancelled_before_its_turn_runs_lets_the_next_one_in() -> None:
    async def scenario() -> list[str]:
        turns = WriteTurns()
        log: list[str] = []

        async def write(name: str) -> None:
            async with turns:
                log.append(name)

        cancelled = asyncio.create_task(write("cancelled"))
        await asyncio.sleep(0)  # it holds the lock and is yielding before its turn runs
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        await asyncio.wait_for(write("next"), timeout=1)
        return log

    assert asyncio.run(scenario()) == ["next"]
