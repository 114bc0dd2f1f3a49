"""Voicio's composition root: database, actors and the Telegram edge."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from voicio.actors.chat import BotInfo
from voicio.actors.system import ActorSystem, SystemConfig
from voicio.bot.app import ALLOWED_UPDATES, Edge, build_application, register_commands
from voicio.bot.inbound import UpdateReader
from voicio.bot.port import PtbPort
from voicio.bot.updates import PersistingUpdateQueue
from voicio.config import Settings
from voicio.model.client import GeminiClient
from voicio.storage.database import open_pool, wait_until_reachable
from voicio.storage.embedded import EmbeddedPostgres
from voicio.storage.migrate import apply_migrations

logger = logging.getLogger(__name__)

SWITCH_INTERVAL_SECONDS = 0.0005


def database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """Return the database to use, starting the embedded one if none is set."""
    if settings.database_url:
        return settings.database_url, None
    embedded = EmbeddedPostgres(settings.data_dir / "postgres")
    return embedded.start(), embedded


def migrate(settings: Settings) -> list[str]:
    """Apply pending migrations to the configured database."""
    url, embedded = database_url(settings)
    try:
        wait_until_reachable(url, timeout=30)
        return apply_migrations(url)
    finally:
        if embedded is not None:
            embedded.stop()


def run(settings: Settings) -> None:
    """Run the bot until SIGTERM or SIGINT."""
    # Actors hand messages between threads many times per voice note; with
    # the default 5 ms switch interval each hand-off can wait that long for
    # the GIL while the event loop thread is busy.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    url, embedded = database_url(settings)
    try:
        wait_until_reachable(url, timeout=60)
        applied = apply_migrations(url)
        if applied:
            logger.info("Applied migrations: %s", ", ".join(applied))
        asyncio.run(_serve(settings, url))
    finally:
        if embedded is not None:
            embedded.stop()


async def _serve(settings: Settings, url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    queue = PersistingUpdateQueue()
    application = build_application(
        token=settings.telegram_bot_token,
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
        update_queue=queue,
        rate_limit=settings.telegram_rate_limit,
    )
    model = GeminiClient(
        api_key=settings.gemini_api_key,
        model=settings.gemini_model,
        base_url=settings.gemini_base_url,
        timeout_seconds=settings.gemini_timeout_seconds,
    )
    db_pool = open_pool(url, max_size=4)
    try:
        async with application:
            username = application.bot.username
            reader = UpdateReader(username)
            system = ActorSystem(
                config=_system_config(settings),
                db_pool=db_pool,
                model=model,
                port=PtbPort(application.bot),
                loop=loop,
                parse_update=reader.from_payload,
                bot=BotInfo(
                    id=application.bot.id,
                    username=username,
                    can_read_all_group_messages=bool(
                        application.bot.can_read_all_group_messages
                    ),
                ),
            )
            queue.attach(system.storage)
            Edge(reader, system.route, system.storage, queue).install(application)
            await register_commands(application.bot)
            await application.start()
            system.replay_pending()
            assert application.updater is not None
            await application.updater.start_polling(
                allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False
            )
            logger.info("Voicio is running as @%s (polling)", username)
            await stop.wait()

            logger.info(
                "Stopping: taking no new updates; in-flight notes get %.0fs",
                settings.shutdown_grace_seconds,
            )
            await application.updater.stop()
            await application.stop()
            drained = await asyncio.to_thread(
                system.drain, settings.shutdown_grace_seconds
            )
            await asyncio.to_thread(system.stop, 10.0)
            logger.info(
                "Stopped%s",
                ""
                if drained
                else "; unfinished notes will be replayed on the next start",
            )
    finally:
        db_pool.close()


def _system_config(settings: Settings) -> SystemConfig:
    return SystemConfig(
        gemini_concurrency=settings.gemini_concurrency,
        gemini_max_attempts=settings.gemini_max_attempts,
        chat_threads=settings.chat_threads,
        chat_idle_seconds=settings.chat_idle_seconds,
        stats_interval_seconds=settings.stats_interval_seconds,
        max_file_bytes=settings.max_file_bytes,
        ack_delay_seconds=settings.ack_delay_seconds,
        retention_days=settings.retention_days,
        long_audio_seconds=settings.long_audio_seconds,
    )
