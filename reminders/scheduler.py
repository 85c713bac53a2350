"""APScheduler wiring: three ticking jobs, no job per reminder (due work lives in our
tables). The dispatch job also wakes early when the next delivery is due before its
next tick, so a reminder leaves within about a second of its due instant."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from reminders.db.engine import forget_overwritten, session_scope
from reminders.dispatcher import Dispatcher
from reminders.runtime import Runtime, wall_clock
from reminders.services.retention import purge_old
from reminders.services.sweep import sweep

log = logging.getLogger(__name__)
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
HOUSEKEEPING_EVERY = timedelta(hours=1)
# A wake-up set for a moment that has already passed would find this very job still
# running and be skipped; a few milliseconds ahead it lands after the job returns.
_WAKE_MARGIN = timedelta(milliseconds=20)
# Wake-ups closer together than this share one dispatcher run: under a burst of writes,
# a run per request would only contend for the database.
_WAKE_COALESCE = timedelta(milliseconds=200)


class Heartbeats:
    """When each job last showed life, to tell a stuck scheduler from a quiet one."""

    def __init__(
        self, limits: dict[str, float], monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._last = dict.fromkeys(limits, monotonic())

    def beat(self, job: str) -> None:
        self._last[job] = self._monotonic()

    def stuck(self) -> list[str]:
        """Jobs silent for longer than their limit."""
        now = self._monotonic()
        return [job for job, limit in self.limits.items() if now - self._last[job] > limit]


class DispatchJob:
    """The dispatch job: drains what is due, then aims the next run at the next due
    delivery. `wake()` asks for a run now (a new delivery was written in-process)."""

    def __init__(
        self, dispatcher: Dispatcher, scheduler: BackgroundScheduler, clock: Callable[[], datetime]
    ) -> None:
        self.dispatcher = dispatcher
        self.scheduler = scheduler
        self.clock = clock
        self._lock = threading.Lock()
        self._running = False
        self._again = False
        self._aiming = threading.Lock()
        self._closed = False

    def __call__(self) -> None:
        with self._lock:
            self._running = True
        try:
            while True:
                self.dispatcher.dispatch()
                with self._lock:
                    if not self._again:
                        break
                    self._again = False
            self._aim(self.dispatcher.next_due())
        except Exception:
            log.exception("dispatch failed; the next tick tries again")
        finally:
            with self._lock:
                self._running = False

    def wake(self, at: datetime | None = None) -> None:
        """Run the dispatcher at `at` (default: now, or within the coalescing window of
        now) if that is sooner than planned."""
        with self._lock:
            if self._running:
                self._again = True
                return
        self._aim(at or self.clock() + _WAKE_COALESCE)

    def close(self) -> None:
        """Stop the dispatcher claiming more and stop asking the scheduler anything;
        return once no such request is under way.

        APScheduler 3's `shutdown(wait=True)` holds the job store lock while it waits for
        running jobs, so a run that aimed its successor then would wait for that lock
        forever, and so would the shutdown (seen as `serve` ignoring Ctrl-C under load).
        """
        self.dispatcher.stop()
        with self._aiming:
            self._closed = True

    def _aim(self, due: datetime | None) -> None:
        if due is None:
            return
        with self._aiming:
            if self._closed:
                return
            job = self.scheduler.get_job("dispatch")
            if job is None or job.next_run_time is None:
                return
            soonest = self.clock() + _WAKE_MARGIN
            when = max(due, soonest)
            if when < job.next_run_time:
                self.scheduler.modify_job("dispatch", next_run_time=when)


def build_scheduler(
    rt: Runtime, dispatcher: Dispatcher
) -> tuple[BackgroundScheduler, DispatchJob, Heartbeats]:
    """Return an unstarted scheduler with the dispatch, sweep and housekeeping jobs, and
    the heartbeats that tell whether its jobs still run."""
    settings = rt.settings
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
    dispatch = DispatchJob(dispatcher, scheduler, wall_clock)
    # A dispatch run shows life at every round it records; a sweep only when done.
    beats = Heartbeats(
        {
            "dispatch": max(10 * settings.dispatch_interval_s, 2 * settings.lease_s),
            "sweep": max(5 * settings.sweep_interval_s, 600.0),
        }
    )
    dispatcher.on_progress = lambda: beats.beat("dispatch")
    # APScheduler fires by the wall clock, so its times are the wall clock's; each job
    # reads the runtime's clock for the work it does.
    now = wall_clock()
    clock = rt.clock

    def run_sweep() -> None:
        try:
            report = sweep(rt, clock())
            if report.missed or report.replanned:
                log.info("sweep: %d missed, %d re-planned", report.missed, report.replanned)
            dispatch.wake()
        except Exception:
            log.exception("sweep failed; the next tick tries again")
        finally:
            beats.beat("sweep")

    def housekeeping() -> None:
        try:
            with session_scope(rt.engine) as db:
                purged = purge_old(db, clock(), timedelta(days=settings.retention_days))
            if any(purged.values()):
                log.info("retention: deleted %s", ", ".join(f"{n} {w}" for w, n in purged.items()))
            if rt.engine.dialect.name == "sqlite":
                forget_overwritten(rt.engine)
                with rt.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA optimize")
        except Exception:
            log.exception("housekeeping failed")

    scheduler.add_job(
        dispatch,
        "interval",
        seconds=settings.dispatch_interval_s,
        id="dispatch",
        next_run_time=now,
    )
    scheduler.add_job(
        run_sweep, "interval", seconds=settings.sweep_interval_s, id="sweep", next_run_time=now
    )
    scheduler.add_job(
        housekeeping, "interval", seconds=HOUSEKEEPING_EVERY.total_seconds(), id="housekeeping"
    )
    return scheduler, dispatch, beats


def stop_scheduler(scheduler: BackgroundScheduler, dispatch: DispatchJob) -> None:
    """Stop the scheduler after the jobs under way finish (they are not cut off)."""
    dispatch.close()
    scheduler.shutdown(wait=True)
