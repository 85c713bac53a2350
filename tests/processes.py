"""Running the real `reminders` command in child processes for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, func, select

from reminders.models import Delivery
from reminders.settings import PROJECT_ROOT
from reminders.states import DeliveryState


def env_for(var_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMINDERS_")}
    env["REMINDERS_VAR_DIR"] = str(var_dir)
    env.update({f"REMINDERS_{k.upper()}": v for k, v in settings.items()})
    return env


def unshifted(env: dict[str, str]) -> dict[str, str]:
    """`env` without the shifted clock of the run (tests/shifted_clock/), if it has one."""
    shifted = str(PROJECT_ROOT / "tests" / "shifted_clock")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != shifted]
    kept = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "SHIFTED_CLOCK_OFFSET_S")}
    return {**kept, "PYTHONPATH": os.pathsep.join(paths)} if paths else kept


def start(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "reminders", *args],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reminders", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def zone_near_noon(now: datetime | None = None) -> str:
    """An Etc/GMT zone where it is now about midday, so a test's 'today' has hours of
    room on both sides whatever time CI runs it."""
    hour = (now or datetime.now(UTC)).hour
    offset = 12 - hour
    if offset == 0:
        return "Etc/GMT"
    # Etc/GMT signs are inverted: Etc/GMT-3 is three hours ahead of UTC.
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def count_deliveries(db: Session, state: DeliveryState | None = None) -> int:
    """How many deliveries there are (in one state), read afresh."""
    db.expire_all()
    query = select(func.count()).select_from(Delivery)
    if state is not None:
        query = query.where(Delivery.state == state)
    return db.exec(query).one()
