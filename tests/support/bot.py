"""Run `voicio run` as a subprocess against the fakes, and watch its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram


class BotProcess:
    """One `voicio run` process; its stderr is kept line by line."""

    def __init__(
        self,
        *,
        telegram: FakeTelegram,
        gemini: FakeGemini,
        database_url: str,
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self._env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(workdir)),
            "PYTHONUNBUFFERED": "1",
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_BASE_URL": telegram.base_url,
            "TELEGRAM_FILE_BASE_URL": telegram.file_base_url,
            "GEMINI_API_KEY": gemini.api_key,
            "GEMINI_BASE_URL": gemini.base_url,
            "DATABASE_URL": database_url,
            "VOICIO_DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": "INFO",
            "STATS_INTERVAL_SECONDS": "1",
            "GEMINI_CONCURRENCY": "4",
            "TELEGRAM_RATE_LIMIT": "false",
            "PORT": "0",
            **(env or {}),
        }
        self._workdir = workdir
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._reader_done = False
        self.http = ""
        self.log_path = workdir / f"voicio-{id(self):x}.log"

    def start(self, *, ready_timeout: float = 30.0) -> BotProcess:
        """Start the bot and wait until it polls Telegram."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "voicio", "run"],
            cwd=self._workdir,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, name="bot-log", daemon=True).start()
        self.wait_for_log(r"Voicio is running", ready_timeout)
        match = self.wait_for_log(r"on port (\d+)", 1)
        self.http = f"http://127.0.0.1:{match.group(1)}" if match else ""
        return self

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        with self.log_path.open("w") as copy, self._process.stderr as stream:
            for line in stream:
                copy.write(line)
                with self._changed:
                    self._lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._reader_done = True
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait for a log line matching `pattern` and return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines:
                    if match := regex.search(line):
                        return match
                if self._process is not None and self._process.poll() is not None:
                    raise AssertionError(
                        f"bot exited ({self._process.returncode}) before logging "
                        f"{pattern!r}:\n{self.log}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no log line matched {pattern!r}:\n{self.log}"
                    )
                self._changed.wait(remaining)

    def stop(self, timeout: float = 30.0) -> int:
        """Send SIGTERM and wait for a clean exit; return the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def signal_stop(self) -> None:
        """Send SIGTERM without waiting for the exit."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit; return its exit code."""
        return self._signal(0, timeout)

    def kill(self) -> int:
        """Kill the process with SIGKILL, as a crash would."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, signum: int, timeout: float) -> int:
        process = self._process
        assert process is not None
        if signum and process.poll() is None:
            process.send_signal(signum)
        code = process.wait(timeout)
        with self._changed:
            # The log is complete once the reader has seen the pipe close.
            self._changed.wait_for(lambda: self._reader_done, timeout=10)
        return code

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None
