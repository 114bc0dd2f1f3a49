"""Apply the SQL files in `migrations/`, once each, whoever starts first."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

# Any constant shared by every Voicio process; "voic" in ASCII.
MIGRATION_LOCK_KEY = 0x766F6963


def migrations_dir() -> Path:
    """Find the migrations: inside an installed wheel, else beside the package."""
    packaged = Path(str(resources.files("voicio"))) / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def apply_migrations(url: str, directory: Path | None = None) -> list[str]:
    """Apply pending migrations and return the versions applied now.

    A session advisory lock serializes concurrent runners (two machines
    starting at once); it is released when the connection ends, even if this
    process is killed, so a crash never leaves a stale lock behind.
    """
    folder = directory or migrations_dir()
    files = sorted(folder.glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no migrations found in {folder}")

    applied_now: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                row[0] for row in conn.execute("SELECT version FROM schema_migrations")
            }
            for path in files:
                if path.stem in done:
                    continue
                _apply_one(conn, path)
                applied_now.append(path.stem)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def _apply_one(conn: psycopg.Connection[tuple[object, ...]], path: Path) -> None:
    logger.info("Applying migration %s", path.name)
    with conn.transaction():
        # Several statements and no parameters: psycopg runs them in one go.
        # (Bytes, because a file's text is not a literal string to the types.)
        conn.execute(path.read_text(encoding="utf-8").encode())
        conn.execute(
            "INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,)
        )
