"""Exercise the fake Gemini API with the real google-genai client and raw HTTP."""

import asyncio
import base64
import dataclasses
import hashlib
import json
import math
import os
import subprocess
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pydantic
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_api import FakeGemini, Fault

pytestmark = [
    pytest.mark.timeout(30),
    # google-genai 3.6.1 subclasses aiohttp.ClientSession, which aiohttp 3.14 warns
    # about on every async call; the project turns warnings into errors.
    pytest.mark.filterwarnings(
        "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
    ),
]

MODEL = "gemini-2.5-flash"
PROMPT = "Summarize the voice note.\nMODE: detailed\nSUMMARY LANGUAGE: same"
SYSTEM = "You are Voicio. Answer with JSON only."
T = TypeVar("T")


class Summary(pydantic.BaseModel):
    """Mirror the structured answer Voicio asks for."""

    transcript: str
    summary: str
    language: str


@dataclasses.dataclass
class Harness:
    """Bundle the fake with one event loop and one SDK client for the module."""

    fake: FakeGemini
    runner: asyncio.Runner
    client: genai.Client

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the shared loop."""
        return self.runner.run(coroutine)

    def generate(
        self, contents: Any, config: types.GenerateContentConfig | None = None
    ) -> types.GenerateContentResponse:
        """Call generate_content through the real async client."""
        models = self.client.aio.models
        return self.run(
            models.generate_content(model=MODEL, contents=contents, config=config)
        )

    def summarize(self, audio: bytes, **extra: Any) -> types.GenerateContentResponse:
        """Send one audio summarization request, as Voicio does."""
        part = types.Part.from_bytes(data=audio, mime_type="audio/ogg")
        return self.generate([part, PROMPT], json_config(**extra))


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    """Run one fake, one loop and one client for the whole module."""
    with FakeGemini() as fake, asyncio.Runner() as runner:
        client = make_client(fake)
        yield Harness(fake, runner, client)
        runner.run(client.aio.aclose())


@pytest.fixture
def gem(harness: Harness) -> Harness:
    """Hand each test the harness with no leftover requests or faults."""
    harness.fake.reset()
    return harness


def make_client(fake: FakeGemini, api_key: str | None = None) -> genai.Client:
    """Build a real google-genai client talking to the fake."""
    options = types.HttpOptions(base_url=fake.base_url, api_version="v1beta")
    return genai.Client(api_key=api_key or fake.api_key, http_options=options)


def json_config(**extra: Any) -> types.GenerateContentConfig:
    """Ask for JSON shaped like ``Summary``, as Voicio does."""
    return types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema=Summary,
        system_instruction=SYSTEM,
        **extra,
    )


def modalities(response: types.GenerateContentResponse) -> dict[str, int]:
    """Map prompt token modalities to counts."""
    usage = response.usage_metadata
    assert usage is not None
    details = usage.prompt_tokens_details or []
    return {
        item.modality.value if item.modality else "?": item.token_count or 0
        for item in details
    }


def text_tokens(*texts: str) -> int:
    """Count text tokens the way the fake does."""
    return math.ceil(sum(map(len, texts)) / 4)


def test_audio_request_answers_registered_transcript(gem: Harness) -> None:
    audio = os.urandom(3000)
    gem.fake.register_audio(audio, "купить молоко", language="ru", duration=2.5)
    response = gem.summarize(audio)
    parsed = response.parsed
    assert isinstance(parsed, Summary)
    assert parsed.transcript == "купить молоко"
    assert parsed.summary == "[detailed] купить молоко"
    assert parsed.language == "ru"
    assert modalities(response) == {"AUDIO": 80, "TEXT": text_tokens(PROMPT, SYSTEM)}
    usage = response.usage_metadata
    assert usage is not None
    answer_tokens = text_tokens(response.text or "")
    assert usage.candidates_token_count == answer_tokens
    assert usage.thoughts_token_count == 0
    assert usage.total_token_count == 80 + text_tokens(PROMPT, SYSTEM) + answer_tokens
    assert response.model_version == MODEL
    [record] = gem.fake.requests
    assert (record.status, record.model, record.api_version) == (200, MODEL, "v1beta")
    assert (record.has_audio, record.audio_mime, record.audio_size) == (
        True,
        "audio/ogg",
        3000,
    )
    assert (record.mode, record.summary_language) == ("detailed", "same")
    assert (record.texts, record.system_instruction) == ([PROMPT], SYSTEM)
    assert record.generation_config["responseMimeType"] == "application/json"
    assert record.fault is None
    assert record.finished is not None
    assert record.finished >= record.started


def test_awkward_long_transcript_survives_json(gem: Harness) -> None:
    transcript = ("<b>a & b</b> *bold* _it_ `code` Привет, мир! " * 400)[:10_000]
    audio = os.urandom(500)
    gem.fake.register_audio(audio, transcript)
    parsed = gem.summarize(audio).parsed
    assert isinstance(parsed, Summary)
    assert parsed.transcript == transcript
    assert parsed.summary == f"[detailed] {transcript}"


def test_text_only_request_reads_transcript_section(gem: Harness) -> None:
    prompt = "MODE: bullets\nTRANSCRIPT:\nMODE: not-a-mode\nbuy milk & eggs\n"
    response = gem.generate(prompt, json_config())
    parsed = response.parsed
    assert isinstance(parsed, Summary)
    assert parsed.transcript == "MODE: not-a-mode\nbuy milk & eggs"
    assert parsed.summary.startswith("[bullets] MODE: not-a-mode")
    assert "AUDIO" not in modalities(response)
    [record] = gem.fake.requests
    assert (record.has_audio, record.audio_mime, record.mode) == (
        False,
        None,
        "bullets",
    )


def test_plain_text_without_schema_and_thinking_tokens(gem: Harness) -> None:
    thinking = types.ThinkingConfig(thinking_budget=256)
    config = types.GenerateContentConfig(thinking_config=thinking)
    response = gem.generate("TRANSCRIPT: hello", config)
    assert response.text == "[brief] hello"
    usage = response.usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count == 50
    assert usage.total_token_count == (
        (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0) + 50
    )
    assert gem.fake.requests[0].mode is None


def test_scripted_rate_limits_raise_client_error(gem: Harness) -> None:
    gem.fake.script(Fault.rate_limit("37s"), Fault.rate_limit("5s", per_day=True))
    for quota_id, delay in [
        ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "37s"),
        ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "5s"),
    ]:
        with pytest.raises(errors.ClientError) as caught:
            gem.summarize(b"audio")
        error = caught.value
        assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
        assert "Please retry in" in (error.message or "")
        details = error.details["error"]["details"]
        by_type = {item["@type"].rsplit(".", 1)[1]: item for item in details}
        assert by_type["RetryInfo"]["retryDelay"] == delay
        [violation] = by_type["QuotaFailure"]["violations"]
        assert violation["quotaId"] == quota_id
        assert violation["quotaDimensions"]["model"] == MODEL
        assert by_type["Help"]["links"]
    assert gem.summarize(b"audio").parsed is not None
    records = gem.fake.requests
    assert [r.fault for r in records] == ["rate_limit", "rate_limit", None]
    assert [r.status for r in records] == [429, 429, 200]


@pytest.mark.parametrize(("status", "name"), [(503, "UNAVAILABLE"), (500, "INTERNAL")])
def test_server_errors_raise_server_error(gem: Harness, status: int, name: str) -> None:
    gem.fake.script(Fault.server_error(status))
    with pytest.raises(errors.ServerError) as caught:
        gem.summarize(b"audio")
    assert (caught.value.code, caught.value.status) == (status, name)
    if status == 503:
        assert (
            caught.value.message == "The model is overloaded. Please try again later."
        )


def test_truncated_output_is_unparseable(gem: Harness) -> None:
    gem.fake.script(Fault.truncated())
    response = gem.summarize(b"audio")
    assert response.parsed is None
    assert response.candidates
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert (response.text or "").startswith('{"transcript": ')


def test_blocked_prompt_and_blocked_candidate(gem: Harness) -> None:
    gem.fake.script(Fault.blocked(), Fault.blocked(in_candidate=True))
    response = gem.summarize(b"audio")
    assert not response.candidates
    assert response.prompt_feedback is not None
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert response.parsed is None
    response = gem.summarize(b"audio")
    assert response.candidates
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert response.text is None
    assert response.parsed is None


def test_invalid_json_and_missing_field(gem: Harness) -> None:
    gem.fake.script(Fault.invalid_json(), Fault.missing_field("language"))
    response = gem.summarize(b"audio")
    assert response.parsed is None
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text or "")
    response = gem.summarize(b"audio")
    assert response.parsed is None
    assert set(json.loads(response.text or "")) == {"transcript", "summary"}
    assert [r.fault for r in gem.fake.requests] == ["invalid_json", "missing_field"]


def test_wrong_api_key_is_invalid_argument(gem: Harness) -> None:
    client = make_client(gem.fake, api_key="wrong-key")
    call = client.aio.models.generate_content(model=MODEL, contents="hi")
    try:
        with pytest.raises(errors.ClientError) as caught:
            gem.run(call)
    finally:
        gem.run(client.aio.aclose())
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert gem.fake.requests[0].status == 400


def test_model_info_and_unknown_path(gem: Harness) -> None:
    model = gem.run(gem.client.aio.models.get(model=MODEL))
    assert model.name == f"models/{MODEL}"
    status, body = gem.run(request_raw(gem.fake, "GET", "/v1beta/nothing/here"))
    assert status == 404
    assert (body["error"]["code"], body["error"]["status"]) == (404, "NOT_FOUND")
    assert gem.fake.requests == []


async def request_raw(
    fake: FakeGemini, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Send a hand-written request with the fake's API key."""
    headers = {"x-goog-api-key": fake.api_key}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, fake.base_url + path, json=body, headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def generate_raw(
    fake: FakeGemini, body: dict[str, Any], version: str = "v1beta"
) -> tuple[int, dict[str, Any]]:
    """POST a hand-written generateContent body."""
    path = f"/{version}/models/{MODEL}:generateContent"
    return await request_raw(fake, "POST", path, body)


def raw_audio_body(encoded: str, *, snake: bool) -> dict[str, Any]:
    """Build a request with one audio part, in snake_case or camelCase keys."""
    schema = Summary.model_json_schema()
    if snake:
        part = {"inline_data": {"mime_type": "audio/ogg", "data": encoded}}
        config = {"response_json_schema": schema}
    else:
        part = {"inlineData": {"mimeType": "audio/ogg", "data": encoded}}
        config = {"responseJsonSchema": schema}
    contents = [{"role": "user", "parts": [part, {"text": "MODE: clean"}]}]
    config_key = "generation_config" if snake else "generationConfig"
    return {"contents": contents, config_key: config}


def test_both_base64_alphabets_and_key_casings(gem: Harness) -> None:
    audio = b"\xfb\xff\xfe\x3e\x3f" * 41
    gem.fake.register_audio(audio, "same bytes")
    standard = base64.b64encode(audio).decode()
    urlsafe = base64.urlsafe_b64encode(audio).decode()
    assert "+" in standard
    assert "/" in standard
    variants = [
        (standard, True),
        (standard.rstrip("="), False),
        (urlsafe, False),
        (urlsafe.rstrip("="), True),
    ]
    for encoded, snake in variants:
        body = raw_audio_body(encoded, snake=snake)
        status, answer = gem.run(generate_raw(gem.fake, body, version="v1"))
        assert status == 200, answer
        text = answer["candidates"][0]["content"]["parts"][0]["text"]
        assert json.loads(text)["summary"] == "[clean] same bytes"
    digest = hashlib.sha256(audio).hexdigest()
    assert {r.audio_sha256 for r in gem.fake.requests} == {digest}
    assert {r.api_version for r in gem.fake.requests} == {"v1"}


def test_bad_base64_is_invalid_argument(gem: Harness) -> None:
    body = raw_audio_body("@@not base64@@", snake=True)
    status, answer = gem.run(generate_raw(gem.fake, body))
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"


def ffmpeg_exe() -> str:
    """Find ffmpeg: the system one, else the binary bundled with imageio-ffmpeg."""
    if Path("/usr/bin/ffmpeg").exists():
        return "/usr/bin/ffmpeg"
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def make_ogg(tmp_path: Path, codec: str, *tags: str) -> bytes:
    """Encode one second of sine tone to Ogg with the given metadata tags."""
    target = tmp_path / f"tone-{codec}.ogg"
    metadata = [arg for tag in tags for arg in ("-metadata", tag)]
    command = [
        ffmpeg_exe(),
        *("-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
        *("-i", "sine=frequency=440:duration=1", "-c:a", codec, *metadata),
        str(target),
    ]
    subprocess.run(command, check=True, timeout=20)
    return target.read_bytes()


@pytest.mark.parametrize("codec", ["libopus", "libvorbis"])
def test_ogg_title_tag_is_the_transcript(
    gem: Harness, tmp_path: Path, codec: str
) -> None:
    audio = make_ogg(tmp_path, codec, "title=hello world", "LANGUAGE=de")
    response = gem.summarize(audio)
    parsed = response.parsed
    assert isinstance(parsed, Summary)
    assert (parsed.transcript, parsed.language) == ("hello world", "de")
    assert modalities(response)["AUDIO"] in (32, 33)


def test_unrecognized_and_truncated_ogg_fall_back(gem: Harness, tmp_path: Path) -> None:
    audio = make_ogg(tmp_path, "libopus", "title=cut off")
    for sample in (audio[:60], os.urandom(4000)):
        response = gem.summarize(sample)
        parsed = response.parsed
        assert isinstance(parsed, Summary)
        digest = hashlib.sha256(sample).hexdigest()[:8]
        assert parsed.transcript == f"unrecognized audio {digest}"
        assert parsed.language == "en"
    assert modalities(response)["AUDIO"] == math.ceil(4000 / 2000 * 32)


def test_latency_and_concurrency_limit(gem: Harness) -> None:
    fake = gem.fake
    fake.latency = 0.25
    fake.set_concurrency_limit(2, retry_delay="3s")

    def two_in_flight() -> bool:
        return fake.in_flight == 2

    async def burst() -> list[Any]:
        first = [asyncio.create_task(summarize_async(gem, b"slow")) for _ in range(2)]
        await asyncio.to_thread(fake.wait_until, two_in_flight, 5.0, "two admitted")
        extra = [summarize_async(gem, b"slow") for _ in range(2)]
        return await asyncio.gather(*first, *extra, return_exceptions=True)

    results = gem.run(burst())
    rejected = [r for r in results if isinstance(r, errors.ClientError)]
    assert [r.code for r in rejected] == [429, 429]
    faults = sorted(str(r.fault) for r in fake.requests)
    assert faults == ["None", "None", "concurrency_limit", "concurrency_limit"]
    assert fake.max_concurrency_seen >= 3
    for record in fake.requests:
        assert record.finished is not None
        if record.status == 200:
            assert record.finished - record.started >= 0.25


async def summarize_async(gem: Harness, audio: bytes) -> Any:
    """Send one audio request on the shared client from inside the loop."""
    part = types.Part.from_bytes(data=audio, mime_type="audio/ogg")
    return await gem.client.aio.models.generate_content(
        model=MODEL, contents=[part, PROMPT], config=json_config()
    )


def test_hang_trips_client_timeout(gem: Harness) -> None:
    gem.fake.script(Fault.hang(0.3))
    with pytest.raises(TimeoutError):
        gem.summarize(b"audio", http_options=types.HttpOptions(timeout=100))
    [record] = gem.fake.requests
    gem.fake.wait_until(lambda: record.finished is not None, 5.0, "hang to end")
    assert record.fault == "hang"


def test_random_faults_are_reproducible(gem: Harness) -> None:
    body = {"contents": [{"parts": [{"text": "TRANSCRIPT: x"}]}]}

    async def statuses() -> list[int]:
        return [(await generate_raw(gem.fake, body))[0] for _ in range(30)]

    gem.fake.set_fault_rates(rate_limit=0.3, server_error=0.2, seed=7)
    first = gem.run(statuses())
    gem.fake.set_fault_rates(rate_limit=0.3, server_error=0.2, seed=7)
    assert gem.run(statuses()) == first
    assert {200, 429, 503} <= set(first)


def test_daily_quota_wins_and_reset_keeps_registry(gem: Harness) -> None:
    audio = os.urandom(100)
    gem.fake.register_audio(audio, "kept")
    gem.fake.set_daily_quota_exhausted(True)
    gem.fake.script(Fault.server_error())
    with pytest.raises(errors.ClientError) as caught:
        gem.summarize(audio)
    violations = caught.value.details["error"]["details"][0]["violations"]
    assert violations[0]["quotaId"].startswith("GenerateRequestsPerDay")
    assert gem.fake.requests[0].fault == "daily_quota"
    gem.fake.reset()
    assert gem.fake.requests == []
    parsed = gem.summarize(audio).parsed
    assert isinstance(parsed, Summary)
    assert parsed.transcript == "kept"


def test_wait_until_times_out_with_description(gem: Harness) -> None:
    with pytest.raises(AssertionError, match="the impossible"):
        gem.fake.wait_until(lambda: False, timeout=0.05, what="the impossible")
