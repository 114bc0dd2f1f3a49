"""Serve a fake of the Gemini ``generativelanguage`` REST API for tests.

The fake runs an aiohttp server on its own asyncio loop in a background thread, so
the real ``google-genai`` client can talk to it over HTTP from tests, from a
benchmark and from a bot running as a subprocess.  It cannot hear audio: answers
come from a registry of known audio (``register_audio``), from the ``TITLE`` and
``LANGUAGE`` comments of an Ogg Opus/Vorbis stream, or, for text-only requests,
from the text following a ``TRANSCRIPT:`` line of the prompt.
"""

import asyncio
import base64
import binascii
import collections
import dataclasses
import functools
import hashlib
import json
import math
import random
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

DEFAULT_API_KEY = "test-gemini-key"
AUDIO_TOKENS_PER_SECOND = 32
THOUGHT_TOKENS = 50
FALLBACK_BYTES_PER_SECOND = 2000
OPUS_SAMPLE_RATE = 48000
PER_MINUTE_QUOTA_ID = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_DAY_QUOTA_ID = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
RATE_LIMIT_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
OVERLOADED_MESSAGE = "The model is overloaded. Please try again later."

_MAX_BODY_BYTES = 128 * 1024 * 1024
_SHUTDOWN_GRACE = 0.25
_GENERATE_PATH = re.compile(r"/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+)")
_MODE_LINE = re.compile(r"^[ \t]*MODE:[ \t]*([\w-]+)", re.MULTILINE)
_SUMMARY_LANGUAGE_LINE = re.compile(
    r"^[ \t]*SUMMARY LANGUAGE:[ \t]*[\"']?([\w-]+)", re.MULTILINE
)
_TRANSCRIPT_LINE = re.compile(r"^[ \t]*TRANSCRIPT:[ \t]*", re.MULTILINE)
_TO_STANDARD_BASE64 = str.maketrans("-_", "+/", " \t\r\n")
_OGG_PAGE = struct.Struct("<4sBBqIIIB")
_U32 = struct.Struct("<I")
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_STATUS_MESSAGES = {
    500: "The fake model server hit an internal error. Please retry.",
    503: OVERLOADED_MESSAGE,
    504: "The fake model server did not finish before the deadline.",
}


# --------------------------------------------------------------------------- API


@dataclasses.dataclass(frozen=True)
class Fault:
    """Describe one misbehaviour applied to a single request.

    Build instances with the class methods; ``kind`` is the name recorded in
    ``GeminiRequest.fault``.
    """

    kind: str
    retry_delay: str = "2s"
    per_day: bool = False
    status: int = 503
    seconds: float = 0.0
    field_name: str = "summary"
    in_candidate: bool = False

    @classmethod
    def rate_limit(cls, retry_delay: str = "2s", *, per_day: bool = False) -> Self:
        """Answer 429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo."""
        _duration_seconds(retry_delay)
        return cls("rate_limit", retry_delay=retry_delay, per_day=per_day)

    @classmethod
    def server_error(cls, status: int = 503) -> Self:
        """Answer an error status (503 UNAVAILABLE by default, any 400-599)."""
        if not 400 <= status <= 599:
            raise ValueError(f"error status must be within 400-599, got {status}")
        return cls("server_error", status=status)

    @classmethod
    def hang(cls, seconds: float) -> Self:
        """Wait this long before answering normally, to provoke client timeouts."""
        if seconds < 0:
            raise ValueError("hang seconds must not be negative")
        return cls("hang", seconds=seconds)

    @classmethod
    def truncated(cls) -> Self:
        """Answer MAX_TOKENS with the output text cut in the middle."""
        return cls("truncated")

    @classmethod
    def blocked(cls, *, in_candidate: bool = False) -> Self:
        """Block for SAFETY: in promptFeedback, or in the candidate if asked."""
        return cls("blocked", in_candidate=in_candidate)

    @classmethod
    def invalid_json(cls) -> Self:
        """Answer STOP with output text that does not parse as JSON."""
        return cls("invalid_json")

    @classmethod
    def missing_field(cls, field: str = "summary") -> Self:
        """Answer STOP with JSON output lacking one property of the schema."""
        return cls("missing_field", field_name=field)


@dataclasses.dataclass
class GeminiRequest:
    """Record one generateContent call as the fake received and answered it.

    ``status`` stays 0 and ``finished`` None while the request is in flight.
    """

    started: float
    finished: float | None = None
    model: str = ""
    api_version: str = ""
    has_audio: bool = False
    audio_mime: str | None = None
    audio_size: int = 0
    texts: list[str] = dataclasses.field(default_factory=list)
    system_instruction: str | None = None
    generation_config: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: int = 0
    fault: str | None = None
    mode: str | None = None
    summary_language: str | None = None
    transcript: str | None = None
    language: str | None = None
    audio_sha256: str | None = None


# ------------------------------------------------------------ internal records


@dataclasses.dataclass(frozen=True)
class _Registered:
    """Hold what register_audio was told about some audio bytes."""

    transcript: str
    language: str
    duration: float | None


@dataclasses.dataclass(frozen=True)
class _Listened:
    """Hold what the fake heard in one audio part."""

    transcript: str
    language: str
    duration: float


@dataclasses.dataclass(frozen=True)
class _Heard:
    """Hold what the fake understood of a whole request."""

    transcript: str
    language: str
    audio_tokens: int


@dataclasses.dataclass(frozen=True)
class _AudioPart:
    """Carry one audio part: MIME type, bytes (or URI bytes) and decoded size."""

    mime: str
    data: bytes
    size: int
    digest: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        """Hash the audio bytes once, for the registry and the record."""
        object.__setattr__(self, "digest", hashlib.sha256(self.data).hexdigest())


@dataclasses.dataclass
class _Parsed:
    """Carry the parts of a generateContent body the fake cares about."""

    texts: list[str]
    system_instruction: str | None
    audio: list[_AudioPart]
    generation_config: dict[str, Any]
    text_chars: int
    schema: dict[str, Any] | None
    thinking: bool


@dataclasses.dataclass
class _FaultRates:
    """Draw seeded random faults at the configured rates."""

    rate_limit: float = 0.0
    server_error: float = 0.0
    retry_delay: str = "1s"
    rng: random.Random = dataclasses.field(default_factory=random.Random)

    def draw(self) -> tuple[str, Fault] | None:
        """Pick a random fault, or None, according to the configured rates."""
        if self.rate_limit <= 0 and self.server_error <= 0:
            return None
        roll = self.rng.random()
        if roll < self.rate_limit:
            return "rate_limit", Fault.rate_limit(self.retry_delay)
        if roll < self.rate_limit + self.server_error:
            return "server_error", Fault.server_error(503)
        return None


@dataclasses.dataclass(frozen=True)
class _UsageCounter:
    """Count tokens for usageMetadata the way the fake promises."""

    audio_tokens: int
    text_chars: int
    thinking: bool

    def metadata(self, output: str | None) -> dict[str, Any]:
        """Build usageMetadata; ``output`` None means no candidate was produced."""
        text_tokens = math.ceil(self.text_chars / 4)
        details = [{"modality": "TEXT", "tokenCount": text_tokens}]
        if self.audio_tokens:
            details.insert(0, {"modality": "AUDIO", "tokenCount": self.audio_tokens})
        prompt = self.audio_tokens + text_tokens
        answer = 0 if output is None else math.ceil(len(output) / 4)
        thoughts = THOUGHT_TOKENS if self.thinking and output is not None else 0
        usage: dict[str, Any] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": answer,
            "thoughtsTokenCount": thoughts,
            "totalTokenCount": prompt + answer + thoughts,
            "promptTokensDetails": details,
        }
        if output is None:
            del usage["candidatesTokenCount"]
        return usage


class _BadRequestError(Exception):
    """Signal a request the real API would reject with INVALID_ARGUMENT."""


class FakeGemini:
    """Run a fake Gemini API server on 127.0.0.1 in a background thread."""

    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        """Prepare a stopped fake that accepts ``api_key``."""
        self.api_key = api_key
        self._changed = threading.Condition(threading.RLock())
        self._registry: dict[str, _Registered] = {}
        self._requests: list[GeminiRequest] = []
        self._script: collections.deque[Fault] = collections.deque()
        self._rates = _FaultRates()
        self._concurrency_limit: int | None = None
        self._concurrency_retry_delay = "1s"
        self._daily_exhausted = False
        self._daily_retry_delay = "30s"
        self._latency: float | Callable[[], float] = 0.0
        self._in_flight = 0
        self._admitted = 0
        self._max_in_flight = 0
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._startup_error: BaseException | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Bind a free port on 127.0.0.1 and serve until ``stop``."""
        if self._thread is not None:
            raise RuntimeError("FakeGemini is already running")
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="fake-gemini", daemon=True
        )
        self._thread.start()
        if not ready.wait(10.0):
            raise RuntimeError("FakeGemini did not start within 10 s")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("FakeGemini failed to start") from self._startup_error

    def stop(self) -> None:
        """Stop serving and wait for the server thread to finish."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10.0)
        self._thread = None
        self._loop = None
        self._port = None

    def __enter__(self) -> Self:
        """Start the server and return the fake."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def base_url(self) -> str:
        """Return the server root, without an API version suffix."""
        if self._port is None:
            raise RuntimeError("FakeGemini is not running")
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------- configuration

    def register_audio(
        self,
        data: bytes,
        transcript: str,
        *,
        language: str = "en",
        duration: float | None = None,
    ) -> None:
        """Make audio with exactly these bytes be heard as ``transcript``."""
        digest = hashlib.sha256(data).hexdigest()
        with self._changed:
            self._registry[digest] = _Registered(transcript, language, duration)

    @property
    def latency(self) -> float:
        """Return the delay added to successful answers (sampled if callable)."""
        latency = self._latency
        return latency() if callable(latency) else latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        """Set a fixed delay added to every successful answer."""
        self._latency = float(seconds)

    def set_latency(self, seconds: float | Callable[[], float]) -> None:
        """Delay successful answers by a fixed time or by a per-request sample."""
        self._latency = seconds if callable(seconds) else float(seconds)

    def script(self, *faults: Fault) -> None:
        """Queue faults, consumed one per incoming request in order."""
        with self._changed:
            self._script.extend(faults)

    def set_fault_rates(
        self,
        *,
        rate_limit: float = 0.0,
        server_error: float = 0.0,
        retry_delay: str = "1s",
        seed: int = 0,
    ) -> None:
        """Fail a seeded random share of requests when no scripted fault is queued."""
        if min(rate_limit, server_error) < 0 or rate_limit + server_error > 1:
            raise ValueError("fault rates must be non-negative and sum to at most 1")
        _duration_seconds(retry_delay)
        with self._changed:
            self._rates = _FaultRates(
                rate_limit, server_error, retry_delay, random.Random(seed)
            )

    def set_concurrency_limit(
        self, limit: int | None, *, retry_delay: str = "1s"
    ) -> None:
        """Answer a per-minute 429 to requests beyond ``limit`` in flight."""
        if limit is not None and limit < 0:
            raise ValueError("concurrency limit must not be negative")
        _duration_seconds(retry_delay)
        self._concurrency_retry_delay = retry_delay
        self._concurrency_limit = limit

    def set_daily_quota_exhausted(
        self, exhausted: bool, *, retry_delay: str = "30s"
    ) -> None:
        """Answer a per-day 429 to every request while ``exhausted`` is True."""
        _duration_seconds(retry_delay)
        self._daily_retry_delay = retry_delay
        self._daily_exhausted = exhausted

    def reset(self) -> None:
        """Forget requests, faults, scripts, limits and latency; keep the registry."""
        with self._changed:
            self._requests.clear()
            self._script.clear()
            self._rates = _FaultRates()
            self._concurrency_limit = None
            self._daily_exhausted = False
            self._latency = 0.0
            self._max_in_flight = self._in_flight
            self._changed.notify_all()

    # ------------------------------------------------------------- observation

    @property
    def requests(self) -> list[GeminiRequest]:
        """Return a copy of the generateContent request list, in arrival order."""
        with self._changed:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Return how many generateContent requests arrived since the last reset."""
        return len(self._requests)

    @property
    def in_flight(self) -> int:
        """Return how many generateContent requests are being answered now."""
        return self._in_flight

    @property
    def max_concurrency_seen(self) -> int:
        """Return the most generateContent requests ever in flight at once."""
        return self._max_in_flight

    def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        what: str = "condition",
    ) -> None:
        """Block until ``predicate`` holds, re-checking whenever a request changes.

        Raise AssertionError when ``timeout`` seconds pass first.
        """
        with self._changed:
            if self._changed.wait_for(predicate, timeout):
                return
            seen = len(self._requests)
        raise AssertionError(
            f"timed out after {timeout:g}s waiting for {what} ({seen} requests seen)"
        )

    # ------------------------------------------------------------------ server

    def _serve(self, ready: threading.Event) -> None:
        """Run the event loop of the server thread until stopped."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._open())
        except Exception as exc:
            self._startup_error = exc
            self._loop = None
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            _cancel_leftovers(loop)
            loop.close()

    async def _open(self) -> web.AppRunner:
        """Bind the aiohttp application to a free local port."""
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = runner.addresses[0][1]
        return runner

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Route a request by method and path."""
        target, _, action = request.path.partition(":")
        match = _GENERATE_PATH.fullmatch(target)
        if match and request.method == "POST" and action == "generateContent":
            return await self._generate(request, match["version"], match["model"])
        if match and request.method == "GET" and not action:
            return self._model_info(request, match["model"])
        message = f"No route for {request.method} {request.path} in the fake API."
        return _error_response(404, message)

    def _model_info(self, request: web.Request, model: str) -> web.Response:
        """Describe a model minimally, as GET models/{model} does."""
        if not self._authorized(request):
            return _invalid_key_response()
        info = {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model,
            "description": "Fake model served by tests.fakes.gemini_api.",
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent"],
            "temperature": 1.0,
            "maxTemperature": 2.0,
            "topP": 0.95,
            "topK": 64,
            "thinking": True,
        }
        return _json_response(200, info)

    async def _generate(
        self, request: web.Request, version: str, model: str
    ) -> web.Response:
        """Record and answer one generateContent call."""
        record = GeminiRequest(
            started=time.monotonic(), model=model, api_version=version
        )
        self._arrive(record)
        status = 499
        try:
            response = await self._answer(request, record)
            status = response.status
            return response
        finally:
            self._depart(record, status)

    def _arrive(self, record: GeminiRequest) -> None:
        """Count a request in flight and publish its record."""
        with self._changed:
            self._requests.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._changed.notify_all()

    def _depart(self, record: GeminiRequest, status: int) -> None:
        """Mark a request answered and wake waiters."""
        with self._changed:
            record.status = status
            record.finished = time.monotonic()
            self._in_flight -= 1
            self._changed.notify_all()

    async def _answer(
        self, request: web.Request, record: GeminiRequest
    ) -> web.Response:
        """Validate a call, apply any fault and build its response."""
        if not self._authorized(request):
            return _invalid_key_response()
        try:
            parsed = _parse_request(await request.read())
        except _BadRequestError as exc:
            return _error_response(400, str(exc))
        _describe(record, parsed)
        picked = self._pick_fault()
        record.fault = picked[0] if picked else None
        fault = picked[1] if picked else None
        if fault is not None and fault.kind in ("rate_limit", "server_error"):
            return _fault_response(fault, record.model)
        self._admitted += 1
        try:
            if fault is not None and fault.kind == "hang":
                await asyncio.sleep(fault.seconds)
            await self._pause()
            return self._success(parsed, record, fault)
        finally:
            self._admitted -= 1

    def _authorized(self, request: web.Request) -> bool:
        """Tell whether the request carries the expected API key."""
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        return key == self.api_key

    def _pick_fault(self) -> tuple[str, Fault] | None:
        """Choose the fault for a request: quota, script, concurrency, random."""
        if self._daily_exhausted:
            return "daily_quota", Fault.rate_limit(
                self._daily_retry_delay, per_day=True
            )
        with self._changed:
            if self._script:
                fault = self._script.popleft()
                return fault.kind, fault
            rates = self._rates
        limit = self._concurrency_limit
        if limit is not None and self._admitted >= limit:
            return "concurrency_limit", Fault.rate_limit(self._concurrency_retry_delay)
        return rates.draw()

    async def _pause(self) -> None:
        """Sleep for the configured latency of a successful answer."""
        delay = self.latency
        if delay > 0:
            await asyncio.sleep(delay)

    def _success(
        self, parsed: _Parsed, record: GeminiRequest, fault: Fault | None
    ) -> web.Response:
        """Build a 200 answer: normal output or a content-level fault."""
        heard = self._understand(parsed)
        record.transcript, record.language = heard.transcript, heard.language
        mode = record.mode or "brief"
        values = {
            "transcript": heard.transcript,
            "summary": f"[{mode}] {heard.transcript}",
            "language": heard.language,
        }
        missing = fault.field_name if fault and fault.kind == "missing_field" else None
        text = _output_text(parsed.schema, values, missing)
        usage = _UsageCounter(heard.audio_tokens, parsed.text_chars, parsed.thinking)
        body = _content_body(text, fault, usage)
        body["modelVersion"] = record.model
        body["responseId"] = secrets.token_urlsafe(16)
        return _json_response(200, body)

    def _understand(self, parsed: _Parsed) -> _Heard:
        """Work out transcript, language and audio tokens for a request."""
        if not parsed.audio:
            return _Heard(_text_transcript(parsed), "en", 0)
        first, *_ = heard = [self._listen(part) for part in parsed.audio]
        seconds = sum(item.duration for item in heard)
        tokens = math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)
        return _Heard(first.transcript, first.language, tokens)

    def _listen(self, part: _AudioPart) -> _Listened:
        """Look audio up in the registry, then in its Ogg tags."""
        data, digest = part.data, part.digest
        with self._changed:
            known = self._registry.get(digest)
        if known is not None and known.duration is not None:
            return _Listened(known.transcript, known.language, known.duration)
        ogg = _probe_ogg(data)
        duration = ogg.duration
        if duration is None:
            duration = len(data) / FALLBACK_BYTES_PER_SECOND
        if known is not None:
            return _Listened(known.transcript, known.language, duration)
        transcript = ogg.title or f"unrecognized audio {digest[:8]}"
        return _Listened(transcript, ogg.language or "en", duration)


# ------------------------------------------------------------ request parsing


@functools.cache
def _camel(name: str) -> str:
    """Convert a snake_case key to camelCase."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _field(obj: object, snake: str) -> Any:
    """Read a key given in snake_case, accepting its camelCase spelling too."""
    if not isinstance(obj, dict):
        return None
    if snake in obj:
        return obj[snake]
    return obj.get(_camel(snake))


def _parse_request(raw: bytes) -> _Parsed:
    """Parse a generateContent body, accepting either key casing."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _BadRequestError(f"Invalid JSON payload received: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequestError("Invalid JSON payload received: expected an object.")
    contents = _field(body, "contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise _BadRequestError("GenerateContentRequest.contents must not be empty.")
    texts, audio = _read_contents(contents)
    system_texts = _part_texts(_field(body, "system_instruction"))
    config = _field(body, "generation_config")
    config = config if isinstance(config, dict) else {}
    return _Parsed(
        texts=texts,
        system_instruction="\n".join(system_texts) if system_texts else None,
        audio=audio,
        generation_config=config,
        text_chars=sum(map(len, texts)) + sum(map(len, system_texts)),
        schema=_response_schema(config),
        thinking=_wants_thinking(config),
    )


def _read_contents(contents: list[Any]) -> tuple[list[str], list[_AudioPart]]:
    """Collect text parts and audio parts from every content turn."""
    texts: list[str] = []
    audio: list[_AudioPart] = []
    for turn, content in enumerate(contents):
        parts = content if isinstance(content, str) else _field(content, "parts")
        if isinstance(parts, str):
            texts.append(parts)
            continue
        for index, part in enumerate(parts if isinstance(parts, list) else []):
            text = _field(part, "text")
            if isinstance(text, str):
                texts.append(text)
            found = _audio_part(part, f"contents[{turn}].parts[{index}]")
            if found is not None:
                audio.append(found)
    return texts, audio


def _audio_part(part: object, where: str) -> _AudioPart | None:
    """Return the audio carried inline or by URI in a part, if any."""
    inline = _field(part, "inline_data")
    if isinstance(inline, dict):
        mime = str(_field(inline, "mime_type") or "")
        if not _is_audio(mime):
            return None
        data = _decode_base64(str(_field(inline, "data") or ""), where)
        return _AudioPart(mime, data, len(data))
    linked = _field(part, "file_data")
    if isinstance(linked, dict):
        mime = str(_field(linked, "mime_type") or "")
        if _is_audio(mime):
            return _AudioPart(mime, str(_field(linked, "file_uri") or "").encode(), 0)
    return None


def _is_audio(mime: str) -> bool:
    """Tell whether a MIME type carries sound (audio, video or raw Ogg)."""
    kind = mime.split(";", 1)[0].strip().lower()
    return kind.startswith(("audio/", "video/")) or kind == "application/ogg"


def _decode_base64(text: str, where: str) -> bytes:
    """Decode base64 in either alphabet, with or without padding."""
    cleaned = text.translate(_TO_STANDARD_BASE64).rstrip("=")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error as exc:
        message = f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES): {exc}"
        raise _BadRequestError(message) from exc


def _part_texts(content: object) -> list[str]:
    """Return the text parts of a Content object (or a bare string)."""
    if isinstance(content, str):
        return [content]
    parts = _field(content, "parts") or []
    return [text for part in parts if isinstance(text := _field(part, "text"), str)]


def _response_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    """Return the JSON or OpenAPI response schema of a generation config."""
    for key in ("response_json_schema", "response_schema"):
        schema = _field(config, key)
        if isinstance(schema, dict):
            return schema
    return None


def _wants_thinking(config: dict[str, Any]) -> bool:
    """Tell whether thinkingConfig asks for a positive thinking budget."""
    budget = _field(_field(config, "thinking_config"), "thinking_budget")
    return (
        isinstance(budget, int | float) and not isinstance(budget, bool) and budget > 0
    )


def _describe(record: GeminiRequest, parsed: _Parsed) -> None:
    """Copy what the fake understood of a request into its record."""
    record.texts = parsed.texts
    record.system_instruction = parsed.system_instruction
    record.generation_config = parsed.generation_config
    record.has_audio = bool(parsed.audio)
    record.audio_mime = parsed.audio[0].mime if parsed.audio else None
    record.audio_size = sum(part.size for part in parsed.audio)
    if parsed.audio:
        record.audio_sha256 = parsed.audio[0].digest
    sections = _instructions(parsed)
    record.mode = _first_match(_MODE_LINE, sections)
    record.summary_language = _first_match(_SUMMARY_LANGUAGE_LINE, sections)


def _prompt_sources(parsed: _Parsed) -> list[str]:
    """Return the request texts, then the system instruction."""
    if parsed.system_instruction is None:
        return parsed.texts
    return [*parsed.texts, parsed.system_instruction]


def _instructions(parsed: _Parsed) -> list[str]:
    """Return each prompt text with any transcript section cut off."""
    return [_TRANSCRIPT_LINE.split(text, 1)[0] for text in _prompt_sources(parsed)]


def _first_match(pattern: re.Pattern[str], texts: Iterable[str]) -> str | None:
    """Return the first group of the first text matching ``pattern``."""
    for text in texts:
        match = pattern.search(text)
        if match:
            return match[1]
    return None


def _text_transcript(parsed: _Parsed) -> str:
    """Return the text after a TRANSCRIPT: line, else the last text part."""
    for text in _prompt_sources(parsed):
        match = _TRANSCRIPT_LINE.search(text)
        if match:
            return text[match.end() :].strip()
    return parsed.texts[-1].strip() if parsed.texts else ""


# ------------------------------------------------------------- output building


def _output_text(
    schema: dict[str, Any] | None, values: dict[str, str], missing: str | None
) -> str:
    """Render the model output: JSON following the schema, else the summary."""
    if schema is None:
        return values["summary"]
    output = _fill(schema, "summary", values, schema, 0)
    if isinstance(output, dict) and missing is not None:
        output.pop(missing, None)
    return json.dumps(output, ensure_ascii=False)


def _fill(
    schema: object, name: str, values: dict[str, str], root: object, depth: int
) -> Any:
    """Build a value of ``schema``, using ``values`` for well-known names."""
    node = _resolve(schema, root, depth)
    kind = _schema_type(node)
    properties = _field(node, "properties")
    if isinstance(properties, dict):
        return {
            key: _fill(properties[key], key, values, root, depth + 1)
            for key in _property_order(node, properties)
        }
    if kind in ("string", ""):
        return _pick_string(node, values.get(name, ""))
    return {"array": [], "integer": 0, "number": 0, "boolean": False}.get(kind)


def _resolve(schema: object, root: object, depth: int) -> dict[str, Any]:
    """Follow local $ref links and take the first non-null union member."""
    for _ in range(16 - min(depth, 16)):
        if not isinstance(schema, dict):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            schema = _lookup_pointer(root, ref[2:])
            continue
        options = _field(schema, "any_of") or _field(schema, "one_of")
        if isinstance(options, list) and options:
            non_null = [opt for opt in options if _schema_type(opt) != "null"]
            schema = (non_null or options)[0]
            continue
        return schema
    return {}


def _lookup_pointer(root: object, pointer: str) -> object:
    """Resolve a JSON pointer (without its leading '#/') inside ``root``."""
    node = root
    for token in pointer.split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _schema_type(schema: object) -> str:
    """Return the lower-cased type of a schema, ignoring a 'null' alternative."""
    kind = _field(schema, "type")
    if isinstance(kind, list):
        kind = next((item for item in kind if str(item).lower() != "null"), "null")
    return str(kind or "").lower()


def _property_order(node: dict[str, Any], properties: dict[str, Any]) -> list[str]:
    """List property names honouring propertyOrdering when present."""
    ordering = _field(node, "property_ordering")
    first = [key for key in ordering or [] if key in properties]
    return first + [key for key in properties if key not in first]


def _pick_string(node: dict[str, Any], value: str) -> str:
    """Return ``value``, or the first enum member when ``value`` is not allowed."""
    allowed = _field(node, "enum")
    if isinstance(allowed, list) and allowed and value not in allowed:
        return str(allowed[0])
    return value


def _cut(text: str) -> str:
    """Cut text roughly in half so that JSON output no longer parses."""
    return text[: max(1, len(text) // 2)]


def _content_body(
    text: str, fault: Fault | None, usage: _UsageCounter
) -> dict[str, Any]:
    """Build a 200 body for normal output or a content-level fault."""
    kind = fault.kind if fault is not None else None
    if fault is not None and kind == "blocked":
        return _blocked_body(usage, in_candidate=fault.in_candidate)
    if kind == "truncated":
        return _candidate_body(_cut(text), "MAX_TOKENS", usage)
    if kind == "invalid_json":
        return _candidate_body(f"Sure! Here is the result: {text}", "STOP", usage)
    return _candidate_body(text, "STOP", usage)


def _candidate_body(text: str, finish: str, usage: _UsageCounter) -> dict[str, Any]:
    """Build a response with one candidate holding ``text``."""
    candidate = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "finishReason": finish,
        "index": 0,
    }
    return {"candidates": [candidate], "usageMetadata": usage.metadata(text)}


def _blocked_body(usage: _UsageCounter, *, in_candidate: bool) -> dict[str, Any]:
    """Build a SAFETY block, in promptFeedback or as an empty candidate."""
    ratings = [
        {
            "category": "HARM_CATEGORY_HARASSMENT",
            "probability": "HIGH",
            "blocked": True,
        }
    ]
    if in_candidate:
        candidate = {"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}
        return {"candidates": [candidate], "usageMetadata": usage.metadata("")}
    feedback = {"blockReason": "SAFETY", "safetyRatings": ratings}
    return {"promptFeedback": feedback, "usageMetadata": usage.metadata(None)}


# ------------------------------------------------------------ error responses


def _duration_seconds(duration: str) -> float:
    """Parse a protobuf JSON duration such as '37s' or '1.5s'."""
    if not duration.endswith("s"):
        raise ValueError(f"retry delay must look like '2s', got {duration!r}")
    try:
        seconds = float(duration[:-1])
    except ValueError:
        raise ValueError(f"retry delay must look like '2s', got {duration!r}") from None
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"retry delay must be a finite non-negative, got {duration!r}")
    return seconds


def _json_response(status: int, body: dict[str, Any]) -> web.Response:
    """Serialize a JSON body the way Google does (UTF-8, no ASCII escaping)."""
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        charset="UTF-8",
    )


def _error_response(
    code: int, message: str, details: list[dict[str, Any]] | None = None
) -> web.Response:
    """Build an error in Google's ``{"error": {...}}`` shape."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": _STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return _json_response(code, {"error": error})


def _invalid_key_response() -> web.Response:
    """Answer the 400 Google returns for a missing or wrong API key."""
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return _error_response(400, INVALID_KEY_MESSAGE, [info])


def _fault_response(fault: Fault, model: str) -> web.Response:
    """Answer a rate-limit or error-status fault."""
    if fault.kind == "rate_limit":
        return _rate_limit_response(model, fault.retry_delay, per_day=fault.per_day)
    message = _STATUS_MESSAGES.get(
        fault.status, f"Injected HTTP {fault.status} from the fake Gemini API."
    )
    return _error_response(fault.status, message)


def _rate_limit_response(
    model: str, retry_delay: str, *, per_day: bool
) -> web.Response:
    """Answer 429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo."""
    seconds = _duration_seconds(retry_delay)
    quota_id = PER_DAY_QUOTA_ID if per_day else PER_MINUTE_QUOTA_ID
    limit = "250" if per_day else "15"
    violation = {
        "quotaMetric": QUOTA_METRIC,
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": limit,
    }
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [violation],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {"description": "Gemini API rate limits", "url": RATE_LIMIT_DOCS}
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": retry_delay,
        },
    ]
    message = (
        f"You exceeded your current quota ({quota_id}, limit {limit}, model "
        f"{model}); see {RATE_LIMIT_DOCS}. Please retry in {seconds:.1f}s."
    )
    return _error_response(429, message, details)


# ------------------------------------------------------------------ Ogg probing


@dataclasses.dataclass(frozen=True)
class _OggPage:
    """Hold the fields of one Ogg page that the probe needs."""

    serial: int
    granule: int
    lacing: bytes
    body: bytes
    end: int


@dataclasses.dataclass(frozen=True)
class _OggInfo:
    """Hold what the Ogg probe found: title, language and duration."""

    title: str | None = None
    language: str | None = None
    duration: float | None = None


def _probe_ogg(data: bytes) -> _OggInfo:
    """Read TITLE, LANGUAGE and duration from an Ogg Opus or Vorbis stream."""
    first = _read_page(data, 0)
    if first is None:
        return _OggInfo()
    packets = _first_packets(data, first.serial, wanted=2)
    if not packets:
        return _OggInfo()
    tags = _comments(packets[1]) if len(packets) > 1 else {}
    return _OggInfo(
        title=tags.get("title") or None,
        language=tags.get("language") or None,
        duration=_ogg_duration(data, first.serial, packets[0]),
    )


def _read_page(data: bytes, offset: int) -> _OggPage | None:
    """Parse the Ogg page starting at ``offset``, or return None."""
    if offset < 0 or offset + _OGG_PAGE.size > len(data):
        return None
    magic, version, _flags, granule, serial, _seq, _crc, count = _OGG_PAGE.unpack_from(
        data, offset
    )
    lacing_end = offset + _OGG_PAGE.size + count
    lacing = data[offset + _OGG_PAGE.size : lacing_end]
    body_end = lacing_end + sum(lacing)
    if magic != b"OggS" or version != 0 or body_end > len(data):
        return None
    return _OggPage(serial, granule, lacing, data[lacing_end:body_end], body_end)


def _first_packets(
    data: bytes, serial: int, *, wanted: int, max_pages: int = 512
) -> list[bytes]:
    """Reassemble the first ``wanted`` packets of one logical stream."""
    packets: list[bytes] = []
    pending = bytearray()
    offset = 0
    for _ in range(max_pages):
        page = _read_page(data, offset)
        if page is None:
            break
        offset = page.end
        if page.serial != serial:
            continue
        position = 0
        for size in page.lacing:
            pending += page.body[position : position + size]
            position += size
            if size < 255:
                packets.append(bytes(pending))
                pending.clear()
                if len(packets) == wanted:
                    return packets
    return packets


def _comments(packet: bytes) -> dict[str, str]:
    """Read a Vorbis comment list (OpusTags or Vorbis) into lower-case keys."""
    for magic in (b"OpusTags", b"\x03vorbis"):
        if packet.startswith(magic):
            return _comment_list(packet, len(magic))
    return {}


def _comment_list(packet: bytes, position: int) -> dict[str, str]:
    """Parse vendor string and comments, stopping quietly at truncation."""
    found: dict[str, str] = {}
    if position + 4 > len(packet):
        return found
    position += 4 + _U32.unpack_from(packet, position)[0]
    if position + 4 > len(packet):
        return found
    count = _U32.unpack_from(packet, position)[0]
    position += 4
    for _ in range(count):
        if position + 4 > len(packet):
            break
        size = _U32.unpack_from(packet, position)[0]
        entry = packet[position + 4 : position + 4 + size].decode("utf-8", "replace")
        position += 4 + size
        key, sep, value = entry.partition("=")
        if sep:
            found.setdefault(key.strip().lower(), value)
    return found


def _ogg_duration(data: bytes, serial: int, head: bytes) -> float | None:
    """Compute duration from the last granule position and the stream header."""
    granule = _last_granule(data, serial)
    if granule is None:
        return None
    if head.startswith(b"OpusHead") and len(head) >= 19:
        pre_skip: int = struct.unpack_from("<H", head, 10)[0]
        return max(granule - pre_skip, 0) / OPUS_SAMPLE_RATE
    if head.startswith(b"\x01vorbis") and len(head) >= 16:
        rate: int = _U32.unpack_from(head, 12)[0]
        return granule / rate if rate else None
    return None


def _last_granule(data: bytes, serial: int, max_steps: int = 4096) -> int | None:
    """Return the granule position of the stream's last complete page."""
    end = len(data)
    for _ in range(max_steps):
        start = data.rfind(b"OggS", 0, end)
        if start < 0:
            return None
        page = _read_page(data, start)
        if page is not None and page.serial == serial and page.granule >= 0:
            return page.granule
        end = start
    return None


# ---------------------------------------------------------------------- helpers


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel tasks still pending on a stopping loop and let them finish."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
