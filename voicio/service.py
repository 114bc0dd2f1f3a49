"""Voicio's composition root: database, actors and the Telegram edge."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from psycopg_pool import ConnectionPool

from voicio.actors.chat import BotInfo
from voicio.actors.stats import Stats
from voicio.actors.system import ActorSystem, SystemConfig
from voicio.bot.app import ALLOWED_UPDATES, Edge, build_application, register_commands
from voicio.bot.inbound import UpdateReader
from voicio.bot.port import PtbPort
from voicio.bot.updates import PersistingUpdateQueue
from voicio.bot.web import HttpServer, Webhook, create_app
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
    # The migration lock is a session advisory lock: it needs a direct
    # connection, not a transaction-mode pooler's.
    direct = settings.database_direct_url or url
    try:
        wait_until_reachable(direct, timeout=30)
        return apply_migrations(direct)
    finally:
        if embedded is not None:
            embedded.stop()


def run(settings: Settings) -> None:
    """Run the bot until SIGTERM or SIGINT."""
    if settings.sentry_dsn:
        start_sentry(settings.sentry_dsn)
    # Actors hand messages between threads many times per voice note; with
    # the default 5 ms switch interval each hand-off can wait that long for
    # the GIL while the event loop thread is busy.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    url, embedded = database_url(settings)
    direct = settings.database_direct_url or url
    try:
        wait_until_reachable(direct, timeout=60)
        applied = apply_migrations(direct)
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
    db_pool = open_pool(url, max_size=4)
    runtime = Runtime(settings, db_pool, settings.database_direct_url or url)
    try:
        await runtime.start()
        await stop.wait()
        await runtime.stop()
    finally:
        db_pool.close()


class Runtime:
    """Voicio running: PTB, the actors and the HTTP side, in order."""

    def __init__(
        self, settings: Settings, db_pool: ConnectionPool, ownership_url: str
    ) -> None:
        self.settings = settings
        self.db_pool = db_pool
        # Chat locks and LISTEN need a direct connection, not a pooler's.
        self.ownership_url = ownership_url
        self.stats = Stats()
        self.draining = False
        self.queue = PersistingUpdateQueue(self.stats)
        self.application = build_application(
            token=settings.telegram_bot_token,
            base_url=settings.telegram_api_base_url,
            base_file_url=settings.telegram_file_base_url,
            update_queue=self.queue,
            rate_limit=settings.telegram_rate_limit,
            max_rate=settings.telegram_max_rate,
        )
        self.model = GeminiClient(
            api_key=settings.gemini_api_key,
            model=settings.gemini_model,
            base_url=settings.gemini_base_url,
            timeout_seconds=settings.gemini_timeout_seconds,
        )
        self.system: ActorSystem | None = None
        self.http: HttpServer | None = None

    async def start(self) -> None:
        """Start everything; updates flow once this returns."""
        application, settings = self.application, self.settings
        await application.initialize()
        bot = application.bot
        reader = UpdateReader(bot.username)
        self.system = system = ActorSystem(
            config=_system_config(settings),
            db_pool=self.db_pool,
            model=self.model,
            port=PtbPort(bot, self.stats),
            loop=asyncio.get_running_loop(),
            parse_update=reader.from_payload,
            bot=BotInfo(
                id=bot.id,
                username=bot.username,
                can_read_all_group_messages=bool(bot.can_read_all_group_messages),
            ),
            ownership_url=self.ownership_url,
            stats=self.stats,
        )
        self.queue.attach(system.storage)
        Edge(reader, system.route, system.storage, self.queue).install(application)
        await register_commands(bot)
        await application.start()
        await self._start_http()
        system.listen()
        system.replay_pending()
        if settings.webhook:
            await self._set_webhook()
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False
            )
        mode = "webhook" if settings.webhook else "polling"
        logger.info("Voicio is running as @%s (%s)", bot.username, mode)

    async def _start_http(self) -> None:
        settings = self.settings
        webhook = None
        if settings.webhook:
            assert settings.webhook_secret is not None
            webhook = Webhook(
                bot=self.application.bot,
                queue=self.queue,
                secret=settings.webhook_secret,
                draining=lambda: self.draining,
            )
        app = create_app(
            registry=self.stats.registry,
            readiness=self.readiness,
            webhook=webhook,
            webhook_path=settings.webhook_path,
        )
        self.http = HttpServer(app, settings.port)
        await self.http.start()
        logger.info(
            "Serving health, metrics%s on port %d",
            " and webhook" if webhook else "",
            self.http.port,
        )

    async def _set_webhook(self) -> None:
        settings = self.settings
        assert settings.webhook_url is not None
        # Pending updates are never dropped: they are what a deploy must not lose.
        await self.application.bot.set_webhook(
            url=settings.webhook_url.rstrip("/") + settings.webhook_path,
            secret_token=settings.webhook_secret,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=False,
            max_connections=settings.webhook_connections,
        )

    async def readiness(self) -> dict[str, bool]:
        """What /readyz reports: each check must hold."""
        return {
            "database": await asyncio.to_thread(database_answers, self.db_pool),
            "actors": self.system is not None and self.system.running,
            "accepting": not self.draining,
        }

    async def stop(self) -> None:
        """Drain: take no new updates, let in-flight notes finish, then stop."""
        settings, application = self.settings, self.application
        self.draining = True
        logger.info(
            "Stopping: taking no new updates; in-flight notes get %.0fs",
            settings.shutdown_grace_seconds,
        )
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        await application.stop()
        drained = True
        if self.system is not None:
            drained = await asyncio.to_thread(
                self.system.drain, settings.shutdown_grace_seconds
            )
            await asyncio.to_thread(self.system.stop, 10.0)
        if self.http is not None:
            await self.http.stop()
        await application.shutdown()
        logger.info(
            "Stopped%s",
            "" if drained else "; unfinished notes will be replayed on the next start",
        )


def start_sentry(dsn: str) -> None:
    """Report errors (and ERROR log lines) to Sentry."""
    import sentry_sdk

    sentry_sdk.init(dsn=dsn, traces_sample_rate=0.0, send_default_pii=False)
    logger.info("Reporting errors to Sentry")


def database_answers(pool: ConnectionPool) -> bool:
    """Whether a trivial query succeeds within two seconds."""
    try:
        with pool.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    return True


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
        # Several instances can only share a bot in webhook mode.
        shared_inbox=settings.webhook,
    )
