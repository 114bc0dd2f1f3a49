"""What every benchmark starts with: a database server, the fakes, a folder."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram
from tests.support.database import ADMIN_URL_VARIABLE, database_server

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def admin_url() -> Iterator[str]:
    """VOICIO_TEST_DATABASE_URL, else the local server if it answers, else
    an embedded one for this run."""
    if os.environ.get(ADMIN_URL_VARIABLE):
        yield os.environ[ADMIN_URL_VARIABLE]
        return
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        with database_server() as url:
            yield url
        return
    yield LOCAL_SERVER


def start_fakes(stack: ExitStack) -> tuple[FakeTelegram, FakeGemini, Path]:
    """Start both fakes and make a working folder, all undone by `stack`."""
    telegram, gemini = FakeTelegram(), FakeGemini()
    telegram.start()
    stack.callback(telegram.stop)
    gemini.start()
    stack.callback(gemini.stop)
    folder = Path(
        stack.enter_context(tempfile.TemporaryDirectory(prefix="voicio-bench-"))
    )
    return telegram, gemini, folder
