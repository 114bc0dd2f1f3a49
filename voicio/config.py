"""Read Voicio's configuration once, from the environment and an optional `.env`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from dotenv import dotenv_values

DEFAULT_TELEGRAM_API_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_TELEGRAM_FILE_BASE_URL = "https://api.telegram.org/file/bot"
# The cheapest current Flash-Lite model for audio in and short text out
# (../docs/architecture.md compares the candidates).
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash-lite"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """A setting is missing or has a value Voicio cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Everything Voicio reads from its environment, validated."""

    telegram_bot_token: str
    telegram_api_base_url: str
    telegram_file_base_url: str
    gemini_api_key: str
    gemini_base_url: str | None
    gemini_model: str
    database_url: str | None
    data_dir: Path
    gemini_concurrency: int
    gemini_timeout_seconds: float
    gemini_max_attempts: int
    log_level: str
    stats_interval_seconds: float
    chat_idle_seconds: float
    chat_threads: int
    telegram_rate_limit: bool
    telegram_max_rate: float
    max_file_bytes: int
    shutdown_grace_seconds: float
    ack_delay_seconds: float
    retention_days: int
    long_audio_seconds: float
    webhook_url: str | None
    webhook_secret: str | None
    webhook_path: str
    webhook_connections: int
    port: int
    database_direct_url: str | None
    sentry_dsn: str | None

    @property
    def webhook(self) -> bool:
        return self.webhook_url is not None

    def __repr__(self) -> str:
        # Secrets never reach a log line through a stray repr().
        return (
            f"Settings(model={self.gemini_model!r}, "
            f"database={'external' if self.database_url else 'embedded'}, "
            f"concurrency={self.gemini_concurrency})"
        )


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    *,
    need_secrets: bool = True,
) -> Settings:
    """Build Settings from `environ` (default: the process environment) and `.env`.

    Values already in the environment win over the `.env` file. With
    `need_secrets=False` (for `voicio migrate`) the API credentials may be absent.

    Raises:
        ConfigError: naming the first variable that is missing or invalid.
    """
    env = _merged_environment(environ, env_file)
    reader = _Reader(env)
    return Settings(
        telegram_bot_token=reader.secret("TELEGRAM_BOT_TOKEN", need_secrets),
        telegram_api_base_url=reader.url(
            "TELEGRAM_API_BASE_URL", DEFAULT_TELEGRAM_API_BASE_URL
        ),
        telegram_file_base_url=reader.url(
            "TELEGRAM_FILE_BASE_URL", DEFAULT_TELEGRAM_FILE_BASE_URL
        ),
        gemini_api_key=reader.secret("GEMINI_API_KEY", need_secrets),
        gemini_base_url=reader.optional_url("GEMINI_BASE_URL"),
        gemini_model=reader.text("GEMINI_MODEL", DEFAULT_GEMINI_MODEL),
        database_url=reader.optional("DATABASE_URL"),
        data_dir=Path(
            reader.text("VOICIO_DATA_DIR", platformdirs.user_data_dir("voicio"))
        ).expanduser(),
        gemini_concurrency=reader.integer("GEMINI_CONCURRENCY", 8, 1, 1024),
        gemini_timeout_seconds=reader.seconds(
            "GEMINI_TIMEOUT_SECONDS", 120.0, 1.0, 3600.0
        ),
        gemini_max_attempts=reader.integer("GEMINI_MAX_ATTEMPTS", 6, 1, 50),
        log_level=reader.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        stats_interval_seconds=reader.seconds(
            "STATS_INTERVAL_SECONDS", 60.0, 0.1, 86400.0
        ),
        chat_idle_seconds=reader.seconds("CHAT_IDLE_SECONDS", 120.0, 0.1, 86400.0),
        chat_threads=reader.integer("CHAT_THREADS", 8, 1, 256),
        telegram_rate_limit=reader.flag("TELEGRAM_RATE_LIMIT", default=True),
        telegram_max_rate=reader.seconds("TELEGRAM_MAX_RATE", 30.0, 1.0, 1000.0),
        max_file_bytes=reader.integer("MAX_FILE_BYTES", 20 * 1024 * 1024, 1024, 2**31),
        ack_delay_seconds=reader.seconds("ACK_DELAY_SECONDS", 0.5, 0.0, 60.0),
        retention_days=reader.integer("RETENTION_DAYS", 90, 1, 36500),
        long_audio_seconds=reader.seconds("LONG_AUDIO_SECONDS", 900.0, 60.0, 86400.0),
        webhook_url=reader.optional_url("WEBHOOK_URL"),
        webhook_secret=_webhook_secret(reader),
        webhook_path=reader.path("WEBHOOK_PATH", "/telegram/webhook"),
        webhook_connections=reader.integer("WEBHOOK_MAX_CONNECTIONS", 1, 1, 100),
        port=reader.integer("PORT", 8080, 0, 65535),
        database_direct_url=reader.optional("DATABASE_DIRECT_URL"),
        sentry_dsn=reader.optional("SENTRY_DSN"),
        shutdown_grace_seconds=reader.seconds(
            "SHUTDOWN_GRACE_SECONDS", 20.0, 0.0, 3600.0
        ),
    )


_SECRET_CHARACTERS = re.compile(r"[A-Za-z0-9_-]{16,256}")


def _webhook_secret(reader: _Reader) -> str | None:
    """WEBHOOK_SECRET is required with WEBHOOK_URL, in Telegram's alphabet."""
    secret = reader.optional("WEBHOOK_SECRET")
    if reader.optional("WEBHOOK_URL") is None:
        return secret
    if secret is None:
        raise ConfigError("WEBHOOK_SECRET", "is required when WEBHOOK_URL is set")
    if not _SECRET_CHARACTERS.fullmatch(secret):
        raise ConfigError(
            "WEBHOOK_SECRET", "must be 16-256 characters of A-Z, a-z, 0-9, _ and -"
        )
    return secret


def _merged_environment(
    environ: Mapping[str, str] | None, env_file: Path | None
) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    path = env_file if env_file is not None else Path(".env")
    if path.is_file():
        for key, value in dotenv_values(path).items():
            if value is not None:
                env.setdefault(key, value)
    return env


class _Reader:
    """Typed accessors over a plain mapping; each error names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigError(name, "is required but not set")
        return value

    def secret(self, name: str, needed: bool) -> str:
        return self.required(name) if needed else self.optional(name) or ""

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def url(self, name: str, default: str) -> str:
        return self.optional_url(name) or default

    def optional_url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None and not value.startswith(("http://", "https://")):
            raise ConfigError(
                name, f"must start with http:// or https://, got {value!r}"
            )
        return value

    def path(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not value.startswith("/"):
            raise ConfigError(name, f"must start with /, got {value!r}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default).upper()
        if value not in allowed:
            raise ConfigError(
                name, f"must be one of {', '.join(allowed)}, got {value!r}"
            )
        return value

    def flag(self, name: str, *, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, got {value!r}")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return int(self._number(name, default, int, low, high))

    def seconds(self, name: str, default: float, low: float, high: float) -> float:
        return self._number(name, default, float, low, high)

    def _number(
        self,
        name: str,
        default: float,
        kind: Callable[[str], float],
        low: float,
        high: float,
    ) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(name, f"must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(name, f"must be between {low:g} and {high:g}, got {raw}")
        return value
