"""One log format for the whole process (ours, uvicorn's, the libraries'): text lines by
default, or JSON lines (`log_format = "json"`) for a log collector.

What goes into a message is kept free of patient data where it is written: ids and times
only; link tokens and query strings are cut from access lines (`api.app.RedactLinkTokens`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """A record as one JSON object: time (UTC), level, logger, message, and the
    traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(log_format: Literal["text", "json"]) -> dict[str, Any]:
    """The `logging.config.dictConfig` for the process, also given to uvicorn so that
    its lines look like the rest."""
    formatter: dict[str, Any] = (
        {"()": "reminders.logs.JsonLines"} if log_format == "json" else {"format": TEXT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"redact": {"()": "reminders.api.app.RedactLinkTokens"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            # uvicorn's own loggers: through the same handler, not their own formats.
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            # APScheduler logs every job run at INFO: several lines a second once the
            # API wakes the dispatcher. Failures still show (WARNING and up).
            "apscheduler.executors.default": {"level": "WARNING"},
        },
    }
