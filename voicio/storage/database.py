"""Open PostgreSQL connection pools the way Voicio needs them."""

from __future__ import annotations

import logging
import time

import psycopg
from psycopg_pool import ConnectionPool

logger = logging.getLogger(__name__)


def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, name: str = "voicio"
) -> ConnectionPool:
    """Open a pool that survives a database restart.

    `check` tests an idle connection before lending it, so a restart costs no
    failed query; connections are recycled so a pooler in front of PostgreSQL
    can rebalance. `prepare_threshold=None` keeps the pool usable behind a
    transaction-mode PgBouncer.
    """
    pool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        check=ConnectionPool.check_connection,
        max_lifetime=600.0,
        max_idle=300.0,
        reconnect_timeout=0,  # keep trying while the database is away
        kwargs={"prepare_threshold": None},
    )
    pool.open(wait=False)
    return pool


def wait_until_reachable(url: str, timeout: float) -> None:
    """Block until a connection to `url` succeeds.

    Raises:
        psycopg.OperationalError: the last connection error, once `timeout`
            seconds have passed.
    """
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.OperationalError:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("Database not reachable yet; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            return
