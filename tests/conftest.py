"""Shared fixtures: a database per test, the fakes, and the bot process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.support.bot import BotProcess
from tests.support.database import DatabaseFactory, PrivatePostgres, database_server
from tests.support.voices import recordings
from voicio.storage.migrate import apply_migrations


@pytest.fixture(scope="session")
def databases() -> Iterator[DatabaseFactory]:
    with database_server() as admin_url:
        factory = DatabaseFactory(admin_url)
        factory.create_template()
        try:
            yield factory
        finally:
            factory.drop_all()


@pytest.fixture
def database_url(databases: DatabaseFactory) -> str:
    """A fresh, migrated database for this test alone."""
    return databases.fresh()


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini()
    fake.start()
    for item in recordings().values():
        if item.text or item.name == "voice/silence.ogg":
            fake.register_audio(
                item.data,
                item.text,
                language=item.language or "en",
                duration=item.duration,
            )
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[tuple[PrivatePostgres, str]]:
    """A PostgreSQL server this test alone uses, and may take down."""
    server = PrivatePostgres(tmp_path / "pg")
    url = server.start()
    apply_migrations(url)
    try:
        yield server, url
    finally:
        server.stop()


BotFactory = Callable[..., BotProcess]


@pytest.fixture
def start_bot(
    telegram: FakeTelegram,
    gemini: FakeGemini,
    database_url: str,
    tmp_path: Path,
) -> Iterator[BotFactory]:
    """Start `voicio run` processes against the fakes; all are stopped afterwards."""
    started: list[BotProcess] = []

    def start(env: dict[str, str] | None = None, **kwargs: str) -> BotProcess:
        bot = BotProcess(
            telegram=telegram,
            gemini=gemini,
            database_url=kwargs.get("database_url", database_url),
            workdir=tmp_path,
            env=env,
        )
        started.append(bot)
        return bot.start()

    yield start
    for bot in started:
        if bot.running:
            bot.kill()
