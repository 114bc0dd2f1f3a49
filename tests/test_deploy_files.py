"""The deployment files agree with each other and with how Voicio runs."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
SECRETS = {
    "TELEGRAM_BOT_TOKEN",
    "GEMINI_API_KEY",
    "WEBHOOK_SECRET",
    "DATABASE_URL",
    "DATABASE_DIRECT_URL",
    "SENTRY_DSN",
}

Instruction = tuple[str, str]


@pytest.fixture(scope="module")
def fly() -> dict[str, Any]:
    return tomllib.loads((ROOT / "fly.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final_stage() -> list[Instruction]:
    return docker_stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]


def docker_stages(text: str) -> list[list[Instruction]]:
    """Split a Dockerfile into stages of (KEYWORD, arguments), continuations joined."""
    stages: list[list[Instruction]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), args.strip()))
    return stages


def seconds(value: int | str) -> int:
    """Fly durations: an int of seconds, or a string such as "30s" or "1m"."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)([sm]?)", value)
    assert match, f"not a Fly duration: {value!r}"
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_fly_stops_machines_with_sigterm(fly: dict[str, Any]) -> None:
    assert fly["kill_signal"] == "SIGTERM"


def test_fly_drains_longer_than_the_grace_period(fly: dict[str, Any]) -> None:
    grace = int(fly["env"]["SHUTDOWN_GRACE_SECONDS"])
    assert seconds(fly["kill_timeout"]) > grace


def test_each_deploy_migrates_before_replacing_machines(fly: dict[str, Any]) -> None:
    assert fly["deploy"]["release_command"] == "voicio migrate"


def test_fly_never_stops_machines_for_being_idle(fly: dict[str, Any]) -> None:
    assert fly["http_service"]["auto_stop_machines"] == "off"


def test_fly_routes_on_the_liveness_check(fly: dict[str, Any]) -> None:
    paths = [check.get("path") for check in fly["http_service"]["checks"]]
    assert "/healthz" in paths


def test_fly_watches_readiness(fly: dict[str, Any]) -> None:
    top_level = list(fly.get("checks", {}).values())
    services = [c for s in fly.get("services", []) for c in s.get("http_checks", [])]
    assert "/readyz" in [check.get("path") for check in top_level + services]


def test_metrics_are_scraped_from_the_port_voicio_serves(fly: dict[str, Any]) -> None:
    assert fly["metrics"]["path"] == "/metrics"
    port = fly["metrics"]["port"]
    assert port == fly["http_service"]["internal_port"] == int(fly["env"]["PORT"])


def test_no_secret_is_committed_in_fly_env(fly: dict[str, Any]) -> None:
    assert not SECRETS & set(fly["env"])


def test_image_is_built_in_separate_stages() -> None:
    assert len(docker_stages(DOCKERFILE.read_text(encoding="utf-8"))) >= 2


def test_image_starts_the_documented_command(final_stage: list[Instruction]) -> None:
    commands = [args for keyword, args in final_stage if keyword == "CMD"]
    assert commands, "the final stage has no CMD"
    assert json.loads(commands[-1]) == ["voicio", "run"]
    assert "voicio run" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_image_runs_as_a_non_root_user(final_stage: list[Instruction]) -> None:
    users = [args for keyword, args in final_stage if keyword == "USER"]
    assert users, "the final stage has no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_ships_the_system_ffmpeg(final_stage: list[Instruction]) -> None:
    installs = [args for kw, args in final_stage if kw == "RUN" and "apt-get" in args]
    assert any(re.search(r"install .*\bffmpeg\b", run) for run in installs)


def test_docker_context_holds_only_what_the_build_needs() -> None:
    patterns = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [p.rstrip("/") for p in patterns if p.strip() and not p.startswith("#")]

    def ignored(name: str) -> bool:
        verdict = False
        for rule in rules:  # the last matching rule wins, as in Docker
            negated = rule.startswith("!")
            if fnmatch.fnmatch(name, rule.removeprefix("!")):
                verdict = not negated
        return verdict

    for needed in ("pyproject.toml", "README.md", "voicio", "migrations"):
        assert not ignored(needed), needed
    for clutter in (".venv", ".git", ".env", "tests", "bench", "docs"):
        assert ignored(clutter), clutter


def test_dockerfile_passes_hadolint() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = shutil.which("hadolint") or (
        str(beside_python) if beside_python.exists() else None
    )
    if hadolint is None:
        pytest.skip("hadolint not installed")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
