"""Inline keyboards and the callback data behind their buttons.

Callback data is short ASCII, well under Telegram's 64-byte limit:
`<verb>[:<note>[:<arg>]][@<position>]`. A note is named by the message id of
the voice message *in the chat where the button was pressed*, so a button can
never reach another chat's notes; `@<position>` marks buttons shown in the
history view, so "back" returns there. Anything else is rejected by `parse`.

| verb | meaning |
|---|---|
| `m:N` / `m:N:MODE` | mode picker / show note N in MODE |
| `r:N` / `r:N:s` / `r:N:a` | redo picker / fresh summary / re-transcribe the audio |
| `t:N` | send the full transcript |
| `b:N` | back to the note's buttons |
| `d:N` | done: remove the buttons |
| `H` / `h:P` | open the history (new message) / show entry P (0 = newest) |
| `x:N@P` / `X:N@P` | ask to delete note N / delete it |
| `s` / `s:FIELD` / `s:FIELD:VALUE` | settings menu / a setting's choices / set it |
| `f:y` / `f:n` | forget this chat's notes / keep them |
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voicio.actors.ports import Button, Keyboard
from voicio.domain import ChatSettings, GroupPolicy, Mode
from voicio.i18n import Translator, available_languages

MAX_CALLBACK_BYTES = 64

TIME_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Kyiv",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Almaty",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
)
SUMMARY_LANGUAGES = ("same", "en", "ru", "uk", "de", "es", "fr")
SETTING_FIELDS = ("lang", "sum", "mode", "tz", "pause", "grp")

_DATA = re.compile(
    r"(?P<verb>[a-zA-Z])(?::(?P<note>\d{1,15}))?(?::(?P<arg>[a-z_]{1,16}))?"
    r"(?:@(?P<pos>\d{1,6}))?"
)
_SETTING = re.compile(
    r"s(?::(?P<field>[a-z]{2,5})(?::(?P<value>[A-Za-z_/+-]{1,32}))?)?"
)


@dataclass(frozen=True)
class Action:
    """A parsed button press."""

    verb: str
    note: int | None = None
    arg: str | None = None
    position: int | None = None


def parse(data: str) -> Action | None:
    """Read callback data; None for anything Voicio never sends."""
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    setting = _SETTING.fullmatch(data)
    if setting is not None:
        return _setting_action(setting.group("field"), setting.group("value"))
    match = _DATA.fullmatch(data)
    if match is None:
        return None
    note = int(match["note"]) if match["note"] else None
    position = int(match["pos"]) if match["pos"] else None
    action = Action(match["verb"], note, match["arg"], position)
    if not _valid(action):
        return None
    if action.verb == "h":
        return Action("h", position=note)  # `h:P` carries a position, not a note
    return action


def _setting_action(field: str | None, value: str | None) -> Action | None:
    if field is None:
        return Action("s")
    if field not in SETTING_FIELDS:
        return None
    if value is not None and value not in setting_values(field):
        return None
    return Action("s", arg=field if value is None else f"{field}={value}")


def _valid(action: Action) -> bool:
    verb, note, arg = action.verb, action.note, action.arg
    if verb == "m":
        return note is not None and (arg is None or arg in Mode._value2member_map_)
    if verb == "r":
        return note is not None and arg in (None, "s", "a")
    if verb in ("t", "b", "d", "x", "X"):
        return note is not None and arg is None
    if verb == "h":
        return note is not None and arg is None and action.position is None
    if verb == "f":
        return note is None and arg in ("y", "n")
    if verb == "H":
        return note is None and arg is None and action.position is None
    return False


def setting_values(field: str) -> tuple[str, ...]:
    """The values a setting can take, as they appear in callback data."""
    match field:
        case "lang":
            return available_languages()
        case "sum":
            return SUMMARY_LANGUAGES
        case "mode":
            return tuple(mode.value for mode in Mode)
        case "tz":
            return tuple(zone.replace("/", "+") for zone in TIME_ZONES)
        case "pause":
            return ("on", "off")
        case "grp":
            return tuple(policy.value for policy in GroupPolicy)
    return ()


def _at(position: int | None) -> str:
    return "" if position is None else f"@{position}"


# -- a note's buttons --------------------------------------------------------------


def note_keyboard(t: Translator, note: int, position: int | None = None) -> Keyboard:
    """The buttons under a note's summary (or its history entry)."""
    at = _at(position)
    first: list[Button] = [
        (t("button.change_mode"), f"m:{note}{at}"),
        (t("button.transcript"), f"t:{note}{at}"),
    ]
    if position is None:
        return [
            first,
            [
                (t("button.redo"), f"r:{note}"),
                (t("button.history"), "H"),
                (t("button.done"), f"d:{note}"),
            ],
        ]
    return [first]


def mode_keyboard(
    t: Translator, note: int, current: Mode, position: int | None = None
) -> Keyboard:
    """One button per mode (the current one marked) and back."""
    at = _at(position)
    buttons = [
        (_mark(t(f"mode.{mode.value}"), mode is current), f"m:{note}:{mode.value}{at}")
        for mode in Mode
    ]
    back = f"h:{position}" if position is not None else f"b:{note}"
    return [buttons[:2], buttons[2:4], buttons[4:], [(t("button.back"), back)]]


def redo_keyboard(t: Translator, note: int) -> Keyboard:
    return [
        [(t("button.redo_summary"), f"r:{note}:s")],
        [(t("button.redo_audio"), f"r:{note}:a")],
        [(t("button.back"), f"b:{note}")],
    ]


def history_keyboard(t: Translator, note: int, position: int, total: int) -> Keyboard:
    """Paging (newest first) and what can be done with the entry shown."""
    paging: list[Button] = []
    if position + 1 < total:
        paging.append((t("button.older"), f"h:{position + 1}"))
    paging.append((f"{position + 1} / {total}", f"h:{position}"))
    if position > 0:
        paging.append((t("button.newer"), f"h:{position - 1}"))
    actions = [
        *note_keyboard(t, note, position)[0],
        (t("button.delete"), f"x:{note}@{position}"),
    ]
    return [paging, actions, [(t("button.done"), f"d:{note}")]]


def delete_keyboard(t: Translator, note: int, position: int) -> Keyboard:
    return [
        [
            (t("button.delete_yes"), f"X:{note}@{position}"),
            (t("button.cancel"), f"h:{position}"),
        ]
    ]


def forget_keyboard(t: Translator) -> Keyboard:
    return [[(t("button.forget_yes"), "f:y"), (t("button.cancel"), "f:n")]]


# -- settings ----------------------------------------------------------------------


def settings_keyboard(
    t: Translator, settings: ChatSettings, *, group: bool
) -> Keyboard:
    """The settings menu: one button per setting, and done."""
    pause = "button.resume" if settings.paused else "button.pause"
    rows: Keyboard = [
        [(t("settings.language"), "s:lang"), (t("settings.summary_language"), "s:sum")],
        [(t("settings.mode"), "s:mode"), (t("settings.timezone"), "s:tz")],
        [(t(pause), "s:pause:off" if settings.paused else "s:pause:on")],
    ]
    if group:
        rows.append([(t("settings.group_policy"), "s:grp")])
    rows.append([(t("button.done"), "d:0")])
    return rows


def setting_choices(t: Translator, field: str, settings: ChatSettings) -> Keyboard:
    """The choices for one setting, the current one marked, and back."""
    current = _current(field, settings)
    buttons = [
        (_mark(choice_label(t, field, value), value == current), f"s:{field}:{value}")
        for value in setting_values(field)
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return [*rows, [(t("button.back"), "s")]]


def choice_label(t: Translator, field: str, value: str) -> str:
    """How a setting's value reads in the user's language."""
    match field:
        case "lang":
            return t(f"language.{value}")
        case "sum":
            return t(f"language.{value}")
        case "mode":
            return t(f"mode.{value}")
        case "tz":
            return value.replace("+", "/").replace("_", " ")
        case "grp":
            return t(f"group_policy.{value}")
    return value


def _current(field: str, settings: ChatSettings) -> str | None:
    match field:
        case "lang":
            return settings.language
        case "sum":
            return settings.summary_language
        case "mode":
            return settings.default_mode.value
        case "tz":
            return settings.timezone.replace("/", "+")
        case "grp":
            return settings.group_policy.value
    return None


def _mark(label: str, selected: bool) -> str:
    return f"• {label}" if selected else label
