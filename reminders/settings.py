"""Typed settings: defaults in config/reminders.toml, overridden by REMINDERS_* variables.

One `Settings` object is built at start-up and passed in explicitly; nothing reads a
module-level singleton.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from reminders.timing import QuietHours

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "REMINDERS_"


class SettingsError(Exception):
    """A setting has a bad value; the message names the setting and where it came from."""


def _default_config_dir() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}CONFIG_DIR", PROJECT_ROOT / "config"))


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads `<config_dir>/reminders.toml`, below environment variables in priority."""

    def __init__(self, settings_cls: type[BaseSettings], config_dir: Path) -> None:
        super().__init__(settings_cls)
        path = config_dir / "reminders.toml"
        self.data: dict[str, Any] = {}
        if path.exists():
            try:
                self.data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
            unknown = set(self.data) - set(settings_cls.model_fields)
            if unknown:
                raise SettingsError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}")

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://")


class Settings(BaseSettings):
    """Everything an operator can configure. Build with `load_settings`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    config_dir: Path = Field(default_factory=_default_config_dir)
    var_dir: Path = PROJECT_ROOT / "var"
    database_url: str = ""
    horizon_days: int = Field(default=14, ge=1, le=90)
    default_reminder_time: time = time(18, 0)
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    protocols_dir: Path | None = None

    # Where patient links point; left empty, the address `serve` listens on.
    base_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    # A separate `worker` serves /healthz, /readyz and /metrics here.
    worker_port: int = Field(default=8001, ge=1, le=65535)
    # When set, /metrics asks for `Authorization: Bearer <metrics_token>`.
    metrics_token: str | None = Field(default=None, min_length=16)

    email_backend: Literal["maildir", "smtp"] = "maildir"
    maildir_path: Path | None = None
    email_from: str = "Reminders <reminders@localhost>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    # Kept-alive SMTP connections a worker sends over side by side, and how long one may
    # wait unused before it is closed.
    smtp_connections: int = Field(default=4, ge=1, le=32)
    smtp_idle_s: float = Field(default=60.0, gt=0)

    webhook_allow_http: bool = False
    # Host names or networks (CIDR), comma-separated in the environment.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    webhook_concurrency: int = Field(default=128, ge=1, le=512)
    endpoint_disable_after_h: float = Field(default=72.0, gt=0)

    log_format: Literal["text", "json"] = "text"
    # Sent and ended deliveries, expired link tokens and kept idempotent answers older
    # than this are deleted (sessions, and so adherence, are kept).
    retention_days: int = Field(default=90, ge=1, le=3650)

    dispatch_interval_s: float = Field(default=5.0, gt=0)
    dispatch_batch_size: int = Field(default=200, ge=1, le=10_000)
    lease_s: float = Field(default=60.0, gt=0)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    follow_up_after_min: int = Field(default=120, ge=0, le=1439)
    missed_grace_h: int = Field(default=12, ge=0, le=168)
    day_before_reminder: bool = False
    snooze_minutes: int = Field(default=60, ge=5, le=720)
    escalate_after_misses: int = Field(default=2, ge=1, le=20)
    overdue_nudge_days: int = Field(default=3, ge=1, le=90)
    lapse_escalation_days: int = Field(default=7, ge=1, le=180)
    max_body_bytes: int = Field(default=65_536, ge=1024, le=10_000_000)
    session_link_days: int = Field(default=7, ge=1, le=365)
    unsubscribe_ttl_days: int = Field(default=365, ge=1, le=3650)
    secret_key: str | None = Field(default=None, min_length=32)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        config_dir = Path(init_kwargs.get("config_dir") or _default_config_dir())
        return (init_settings, env_settings, _ConfigFileSource(settings_cls, config_dir))

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(DATABASE_SCHEMES):
            raise ValueError(f"must start with one of {', '.join(DATABASE_SCHEMES)}")
        return value

    @model_validator(mode="after")
    def _reminders_can_be_sent(self) -> Settings:
        # A patient given the default time would never be reminded (`safety`).
        quiet = QuietHours(self.quiet_hours_start, self.quiet_hours_end)
        if quiet.covers(self.default_reminder_time):
            raise ValueError(
                f"setting default_reminder_time ({ENV_PREFIX}DEFAULT_REMINDER_TIME): "
                f"{self.default_reminder_time:%H:%M} falls inside the default quiet hours "
                f"{quiet.start:%H:%M}-{quiet.end:%H:%M} (quiet_hours_start, quiet_hours_end), so "
                "no reminder at that time could be sent"
            )
        return self

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'reminders.sqlite3'}"
        if not self.base_url:
            self.base_url = f"http://{self.http_host}:{self.http_port}"
        if self.maildir_path is None:
            self.maildir_path = self.var_dir / "maildir"
        if self.protocols_dir is None:
            self.protocols_dir = self.config_dir / "protocols"
        return self

    @property
    def protocols_path(self) -> Path:
        """The folder of protocol TOML files."""
        assert self.protocols_dir is not None  # filled by _fill_paths
        return self.protocols_dir

    @property
    def maildir(self) -> Path:
        """The Maildir folder used by the embedded email backend."""
        assert self.maildir_path is not None  # filled by _fill_paths
        return self.maildir_path


NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})
NOT_PLACE_PREFIXES = ("posix/", "right/", "/", ".")


def validate_timezone(name: str) -> str:
    """Return `name` if it is a known IANA time zone; raise ValueError otherwise."""
    # Names that depend on the server (localtime), are not places (Factory), or count
    # leap seconds (right/) would put sessions at the wrong local time.
    if (
        not name
        or name != name.strip()
        or name in NOT_PLACES
        or name.startswith(NOT_PLACE_PREFIXES)
    ):
        raise ValueError(f"unknown time zone {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


def load_settings(**overrides: Any) -> Settings:
    """Return settings from overrides, then REMINDERS_* variables, then the config file.

    Raises SettingsError naming the offending setting(s).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a rule across settings: its message names them
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            name = ".".join(str(p) for p in err["loc"])
            problems.append(f"setting {name} ({ENV_PREFIX}{name.upper()}): {err['msg']}")
        raise SettingsError("; ".join(problems)) from exc
