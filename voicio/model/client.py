"""Ask Gemini (through google-genai) to transcribe and summarize."""

from __future__ import annotations

import logging
import re
from typing import Any, TypeVar

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, ValidationError

from voicio.domain import Mode, Summary, Transcription, Usage
from voicio.model import prompts
from voicio.model.errors import (
    BadOutput,
    ModelError,
    ModelUnavailable,
    OutputBlocked,
    OutputTruncated,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
)

logger = logging.getLogger(__name__)

try:  # google-genai 3.x sends through httpx2 when it is installed
    import httpx2

    _TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
        httpx.TransportError,
        httpx2.TransportError,
        TimeoutError,
        ConnectionError,
    )
except ImportError:  # pragma: no cover - depends on the SDK's optional stack
    _TRANSPORT_ERRORS = (httpx.TransportError, TimeoutError, ConnectionError)

OutputT = TypeVar("OutputT", bound=BaseModel)

_BLOCKING_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"}


class _NoteOutput(BaseModel):
    transcript: str
    summary: str
    language: str


class _SummaryOutput(BaseModel):
    summary: str


class _PartOutput(BaseModel):
    transcript: str
    language: str


# Sent as a plain JSON schema, computed once: handing the SDK the Pydantic
# class makes it regenerate and convert the schema on every request.
_SCHEMAS: dict[type[BaseModel], dict[str, Any]] = {
    model: model.model_json_schema()
    for model in (_NoteOutput, _SummaryOutput, _PartOutput)
}


class GeminiClient:
    """One model, one API key; each call is exactly one HTTP request."""

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_seconds: float = 120.0,
        max_output_tokens: int = 8192,
    ) -> None:
        options = types.HttpOptions(
            api_version="v1beta",
            base_url=base_url,
            timeout=int(timeout_seconds * 1000),
        )
        self._client = genai.Client(api_key=api_key, http_options=options)
        self.model = model
        # Built once: constructing and validating the config costs more CPU
        # than sending the request.
        self._configs = {
            schema: self._config(schema, max_output_tokens) for schema in _SCHEMAS
        }

    async def transcribe(
        self, audio: bytes, mime_type: str, mode: Mode, summary_language: str
    ) -> Transcription:
        """Transcribe `audio` and summarize it in `mode`, in one request."""
        contents: list[Any] = [
            types.Part.from_bytes(data=audio, mime_type=mime_type),
            prompts.audio_prompt(mode, summary_language),
        ]
        output, usage = await self._generate(contents, _NoteOutput)
        return Transcription(
            transcript=output.transcript.strip(),
            summary=output.summary.strip(),
            language=output.language.strip().lower()[:8] or "und",
            usage=usage,
            model=self.model,
        )

    async def transcribe_part(self, audio: bytes, mime_type: str) -> Transcription:
        """Transcribe one part of a long note (no summary: that comes later)."""
        contents: list[Any] = [
            types.Part.from_bytes(data=audio, mime_type=mime_type),
            prompts.part_prompt(),
        ]
        output, usage = await self._generate(contents, _PartOutput)
        return Transcription(
            transcript=output.transcript.strip(),
            summary="",
            language=output.language.strip().lower()[:8] or "und",
            usage=usage,
            model=self.model,
        )

    async def summarize(
        self, transcript: str, mode: Mode, summary_language: str
    ) -> Summary:
        """Summarize a stored transcript in `mode`; no audio is sent."""
        prompt = prompts.text_prompt(mode, summary_language, transcript)
        output, usage = await self._generate([prompt], _SummaryOutput)
        return Summary(text=output.summary.strip(), usage=usage, model=self.model)

    async def aclose(self) -> None:
        """Release the HTTP connections."""
        await self._client.aio.aclose()

    def _config(
        self, schema: type[BaseModel], max_output_tokens: int
    ) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(
            system_instruction=prompts.SYSTEM,
            response_mime_type="application/json",
            response_json_schema=_SCHEMAS[schema],
            thinking_config=self._thinking_config(),
            max_output_tokens=max_output_tokens,
            temperature=0.2,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(
                disable=True
            ),
        )

    async def _generate(
        self, contents: list[Any], schema: type[OutputT]
    ) -> tuple[OutputT, Usage]:
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=contents, config=self._configs[schema]
            )
        except genai_errors.APIError as exc:
            raise classify_api_error(exc) from exc
        except _TRANSPORT_ERRORS as exc:
            raise ModelUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return _read_output(response, schema), _read_usage(response)

    def _thinking_config(self) -> types.ThinkingConfig:
        # Thinking tokens bill as output and add nothing to a transcript.
        if self.model.startswith("gemini-2."):
            return types.ThinkingConfig(thinking_budget=0)
        return types.ThinkingConfig(thinking_level=types.ThinkingLevel.MINIMAL)


def classify_api_error(exc: genai_errors.APIError) -> ModelError:
    """Turn an SDK error into one of Voicio's model errors."""
    text = f"{exc.code} {exc.status}: {exc.message}"
    if exc.code == 429:
        quota_id = _quota_id(exc.details)
        if "perday" in quota_id.lower():
            return QuotaExhausted(text, quota_id)
        return RateLimited(text, _retry_delay(exc.details, exc.message), quota_id)
    if exc.code in (408, 499) or exc.code >= 500:
        return ModelUnavailable(text)
    return RequestRejected(text)


def _error_details(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details or [] if isinstance(d, dict)]


def _quota_id(body: Any) -> str:
    for detail in _error_details(body):
        for violation in detail.get("violations") or []:
            if isinstance(violation, dict) and violation.get("quotaId"):
                return str(violation["quotaId"])
    return ""


_SECONDS = re.compile(r"(\d+(?:\.\d+)?)s")


def _retry_delay(body: Any, message: str | None) -> float | None:
    for detail in _error_details(body):
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and (match := _SECONDS.fullmatch(delay.strip())):
            return float(match.group(1))
    # Older answers only say "Please retry in 37.1s." in the message.
    match = re.search(r"retry in (\d+(?:\.\d+)?)s", message or "")
    return float(match.group(1)) if match else None


def _read_output(
    response: types.GenerateContentResponse, schema: type[OutputT]
) -> OutputT:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise OutputBlocked(f"prompt blocked: {feedback.block_reason}")
    candidates = response.candidates or []
    if not candidates:
        raise OutputBlocked("no candidates in the answer")
    finish = candidates[0].finish_reason
    finish_name = finish.value if finish is not None else "STOP"
    if finish_name == "MAX_TOKENS":
        raise OutputTruncated("the answer hit the output-token limit")
    if finish_name in _BLOCKING_FINISH:
        raise OutputBlocked(f"answer stopped: {finish_name}")
    try:
        return schema.model_validate_json(response.text or "")
    except ValidationError as exc:
        raise BadOutput(
            f"answer is not the expected JSON: {exc.error_count()} errors"
        ) from exc


def _read_usage(response: types.GenerateContentResponse) -> Usage:
    meta = response.usage_metadata
    if meta is None:
        return Usage()
    audio = text = 0
    for detail in meta.prompt_tokens_details or []:
        count = detail.token_count or 0
        if detail.modality == types.MediaModality.AUDIO:
            audio += count
        else:
            text += count
    if not meta.prompt_tokens_details:
        text = meta.prompt_token_count or 0
    return Usage(
        audio_tokens=audio,
        text_tokens=text,
        output_tokens=meta.candidates_token_count or 0,
        thought_tokens=meta.thoughts_token_count or 0,
    )
