"""Configuration is read once and every error names its variable."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voicio.config import DEFAULT_GEMINI_MODEL, ConfigError, load_settings
from voicio.logs import RedactSecrets

BASE = {"TELEGRAM_BOT_TOKEN": "123:abc", "GEMINI_API_KEY": "key-123456"}


def test_defaults_apply_when_only_secrets_are_given(tmp_path: Path) -> None:
    settings = load_settings(BASE, env_file=tmp_path / "none")

    assert settings.telegram_api_base_url == "https://api.telegram.org/bot"
    assert settings.telegram_file_base_url == "https://api.telegram.org/file/bot"
    assert settings.gemini_model == DEFAULT_GEMINI_MODEL
    assert settings.database_url is None
    assert settings.gemini_concurrency == 8


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("TELEGRAM_BOT_TOKEN", "", "is required"),
        ("GEMINI_API_KEY", "  ", "is required"),
        ("GEMINI_CONCURRENCY", "many", "must be a number"),
        ("GEMINI_CONCURRENCY", "0", "between 1 and 1024"),
        ("LOG_LEVEL", "loud", "must be one of"),
        ("GEMINI_BASE_URL", "localhost:9", "must start with http"),
        ("STATS_INTERVAL_SECONDS", "-1", "between"),
    ],
)
def test_a_bad_value_is_reported_with_its_name(
    variable: str, value: str, complaint: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, variable: value}, env_file=tmp_path / "none")

    assert raised.value.variable == variable
    assert complaint in str(raised.value)


def test_env_file_fills_gaps_but_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GEMINI_MODEL=from-file\nGEMINI_CONCURRENCY=3\n")

    settings = load_settings({**BASE, "GEMINI_CONCURRENCY": "5"}, env_file=env_file)

    assert settings.gemini_model == "from-file"
    assert settings.gemini_concurrency == 5


def test_secrets_do_not_appear_in_repr(tmp_path: Path) -> None:
    settings = load_settings(BASE, env_file=tmp_path / "none")

    assert "123:abc" not in repr(settings)
    assert "key-123456" not in repr(settings)


def test_voicio_run_without_a_token_stops_and_names_the_variable(
    tmp_path: Path,
) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GEMINI_API_KEY": "k"}

    result = subprocess.run(
        [sys.executable, "-m", "voicio", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN: is required but not set" in result.stderr


def test_secrets_are_redacted_from_log_lines_and_tracebacks() -> None:
    redact = RedactSecrets(["123:secret-token", "short"])
    try:
        raise RuntimeError("POST https://api.telegram.org/bot123:secret-token/getMe")
    except RuntimeError:
        record = logging.LogRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "calling %s",
            ("bot123:secret-token",),
            sys.exc_info(),
        )

    assert redact.filter(record)

    assert record.getMessage() == "calling bot[redacted]"
    assert record.exc_text is not None
    assert "secret-token" not in record.exc_text
    assert "[redacted]" in record.exc_text
