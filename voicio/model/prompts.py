"""The instructions Voicio gives the model, one mode at a time.

The lines `MODE:`, `SUMMARY LANGUAGE:` and `TRANSCRIPT:` are structure the
model reads easily and the test fake of the Gemini API reads too.
"""

from __future__ import annotations

from voicio.domain import Mode

SYSTEM = (
    "You turn voice messages from a Telegram chat into useful text. "
    "Transcribe faithfully: keep the speaker's words and language, drop filler "
    "sounds, fix obvious recognition slips, add punctuation and paragraphs. "
    "Never invent content that was not said. If nothing intelligible was said, "
    "return an empty transcript and an empty summary. Write plain text without "
    "Markdown or HTML."
)

MODE_INSTRUCTIONS = {
    Mode.BRIEF: "Summary: one to three sentences with the main point and any "
    "request, date or decision.",
    Mode.DETAILED: "Summary: a thorough summary in short paragraphs that keeps "
    "every fact, name, number and request.",
    Mode.BULLETS: "Summary: 3-10 bullet points, one line each, starting with "
    "'• '; put action items first.",
    Mode.COMBINED: "Summary: one or two sentences with the main point (the full "
    "transcript is shown beneath it).",
    Mode.CLEAN: "Summary: the transcript itself, cleaned of repetitions, false "
    "starts and filler, in readable paragraphs.",
}


def _language_line(summary_language: str) -> str:
    if summary_language == "same":
        return "SUMMARY LANGUAGE: same (the language that was spoken)"
    return f"SUMMARY LANGUAGE: {summary_language}"


def audio_prompt(mode: Mode, summary_language: str) -> str:
    """Build the request text that goes beside the audio."""
    return "\n".join(
        (
            "Transcribe this voice message and summarize it.",
            f"MODE: {mode.value}",
            MODE_INSTRUCTIONS[mode],
            _language_line(summary_language),
            "language: the ISO 639-1 code of the spoken language.",
        )
    )


def part_prompt() -> str:
    """Build the request that transcribes one part of a long voice message."""
    return "\n".join(
        (
            "Transcribe this part of a longer voice message. It may start or end",
            "mid-sentence: keep those words, do not complete them.",
            "MODE: transcript",
            "language: the ISO 639-1 code of the spoken language.",
        )
    )


def text_prompt(mode: Mode, summary_language: str, transcript: str) -> str:
    """Build the request that summarizes a stored transcript."""
    return "\n".join(
        (
            "Summarize this transcript of a voice message.",
            f"MODE: {mode.value}",
            MODE_INSTRUCTIONS[mode],
            _language_line(summary_language),
            "TRANSCRIPT:",
            transcript,
        )
    )
