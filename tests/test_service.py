"""Webhook mode, health and readiness, Prometheus metrics."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import psycopg
import pytest

from tests.conftest import BotFactory
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.telegram_api import FakeTelegram, FakeUser
from tests.support.chat import private
from tests.support.database import PrivatePostgres
from tests.support.voices import recording

pytestmark = pytest.mark.slow

ERIN = FakeUser(601, "Erin")
SECRET = "s3cret-token-for-tests_0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def post(url: str, body: dict[str, object], headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def webhook_env(port: int) -> dict[str, str]:
    return {
        "WEBHOOK_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
        "PORT": str(port),
    }


def metric(text: str, series: str) -> float:
    """The value of one series (name with labels) in Prometheus text."""
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert series in values, f"{series} not in metrics"
    return values[series]


def test_health_readiness_and_metrics_in_polling_mode(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    bot = start_bot()
    telegram.fail("setMessageReaction", status=400, description="Bad Request: boom")
    gemini.set_latency(1.0)

    telegram.send_voice(
        private(ERIN), ERIN, recording("voice/en_01.ogg").data, duration=3
    )
    telegram.wait_for_messages(ERIN.id, 1, timeout=15)

    assert get(f"{bot.http}/healthz") == (200, '{"status":"ok"}')
    status, body = get(f"{bot.http}/readyz")
    assert status == 200
    assert json.loads(body)["checks"] == {
        "database": True,
        "actors": True,
        "accepting": True,
    }
    status, text = get(f"{bot.http}/metrics")
    assert status == 200
    assert metric(text, "voicio_updates_received_total") == 1
    assert metric(text, 'voicio_notes_total{outcome="done"}') == 1
    assert metric(text, "voicio_note_seconds_count") == 1
    assert metric(text, "voicio_gemini_requests_total") == 1
    assert metric(text, 'voicio_gemini_tokens_total{modality="audio"}') > 0
    assert metric(text, "voicio_gemini_cost_usd_total") > 0
    assert metric(text, 'voicio_telegram_errors_total{type="BadRequest"}') == 1
    for gauge in (
        "voicio_chat_actors",
        "voicio_mailbox_depth_max",
        "voicio_mailbox_depth_total",
        "voicio_pool_in_flight",
        "voicio_pool_limit",
        "voicio_pool_queued",
        "voicio_gemini_retries_total",
        "voicio_gemini_rate_limited_total",
    ):
        assert metric(text, gauge) >= 0
    assert metric(text, "voicio_pool_limit") == 4


def test_webhook_mode_answers_notes_delivered_by_telegram(
    start_bot: BotFactory, telegram: FakeTelegram
) -> None:
    port = free_port()
    start_bot(env=webhook_env(port))

    telegram.send_voice(
        private(ERIN), ERIN, recording("voice/en_02.ogg").data, duration=3
    )

    reply = telegram.wait_for_messages(ERIN.id, 1, timeout=15)[0]
    assert recording("voice/en_02.ogg").text in reply.text
    assert telegram.webhook_url() == f"http://127.0.0.1:{port}/telegram/webhook"
    (set_webhook,) = telegram.requests("setWebhook")
    assert set_webhook.params["secret_token"] == SECRET
    assert set_webhook.params.get("drop_pending_updates") in (None, False)
    assert set(set_webhook.params["allowed_updates"]) == {"message", "callback_query"}
    assert telegram.requests("getUpdates") == []


def test_a_webhook_request_without_the_secret_is_refused_and_not_stored(
    start_bot: BotFactory, database_url: str
) -> None:
    port = free_port()
    bot = start_bot(env=webhook_env(port))
    update = {
        "update_id": 424242,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 7, "type": "private"},
            "text": "/help",
        },
    }
    url = f"{bot.http}/telegram/webhook"

    missing = post(url, update, {})
    wrong = post(url, update, {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1] + "X"})
    garbage = post(url, {"nonsense": True}, {"X-Telegram-Bot-Api-Secret-Token": SECRET})

    assert (missing, wrong) == (403, 403)
    assert garbage == 400
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM updates").fetchone() == (0,)
    bot.wait_for_log(r"WARNING .*Rejected a webhook request from 127\.0\.0\.1: wrong")
    assert SECRET not in bot.log


def test_readiness_fails_while_the_database_is_down_and_webhooks_wait(
    start_bot: BotFactory,
    telegram: FakeTelegram,
    private_postgres: tuple[PrivatePostgres, str],
) -> None:
    server, url = private_postgres
    port = free_port()
    bot = start_bot(env=webhook_env(port), database_url=url)

    server.take_down()
    status, body = get(f"{bot.http}/readyz")
    telegram.send_voice(
        private(ERIN), ERIN, recording("voice/en_03.ogg").data, duration=3
    )
    bot.wait_for_log(r"not stored in time; answering 503", timeout=30)
    server.bring_up()

    assert status == 503
    assert json.loads(body)["checks"]["database"] is False
    reply = telegram.wait_for_messages(ERIN.id, 1, timeout=60)[0]
    assert recording("voice/en_03.ogg").text in reply.text
    assert get(f"{bot.http}/readyz")[0] == 200


def test_readiness_fails_during_the_drain(
    start_bot: BotFactory, telegram: FakeTelegram, gemini: FakeGemini
) -> None:
    gemini.set_latency(3.0)
    bot = start_bot(env={"SHUTDOWN_GRACE_SECONDS": "20"})
    telegram.send_voice(
        private(ERIN), ERIN, recording("voice/en_04.ogg").data, duration=3
    )
    gemini.wait_until(lambda: len(gemini.requests) == 1, what="a note at Gemini")

    bot.signal_stop()
    bot.wait_for_log(r"Stopping: taking no new updates")
    status, body = get(f"{bot.http}/readyz")

    assert status == 503
    assert json.loads(body)["checks"]["accepting"] is False
    assert bot.wait() == 0
    assert len(telegram.bot_messages(ERIN.id)) == 1
