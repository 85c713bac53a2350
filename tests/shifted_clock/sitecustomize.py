"""Runs the wall clock ahead in every Python process of a test run.

`scripts/test` puts this folder on PYTHONPATH when REMINDERS_TEST_SHIFT_DAYS (days ahead)
or REMINDERS_TEST_TRAVEL_TO (an ISO instant, such as a DST change) is set. The first
process turns either into one offset in seconds, which every process it starts inherits
(the pytest workers, `reminders serve`, the README's walk-through), so they all share one
shifted clock. `datetime` and `time.time` move; `time.monotonic`, sleeps, waits and
asyncio keep real time, which is what time-machine changes and what libfaketime could not
(its faked monotonic clock stalled `threading.Event.wait` here).
"""

import os

_OFFSET = "SHIFTED_CLOCK_OFFSET_S"  # no REMINDERS_ prefix: tests strip those from children


def _offset_s() -> float | None:
    if os.environ.get(_OFFSET):
        return float(os.environ[_OFFSET])
    days = os.environ.get("REMINDERS_TEST_SHIFT_DAYS")
    target = os.environ.get("REMINDERS_TEST_TRAVEL_TO")
    if target:
        from datetime import datetime

        offset = datetime.fromisoformat(target).timestamp() - datetime.now().timestamp()
    elif days:
        offset = float(days) * 86400
    else:
        return None
    os.environ[_OFFSET] = repr(offset)
    return offset


def _start() -> None:
    offset = _offset_s()
    if offset is None:
        return
    import time

    import time_machine

    time_machine.travel(time.time() + offset, tick=True).start()
    # A ticking travel starts moving at its first reading: read it now, or this process's
    # clock would lag the others' by however long it takes to read the time first.
    time.time()


_start()
