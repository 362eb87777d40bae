"""Escalation steps: after the first send, more channels, each after a wait and only while a
condition on what the person did still holds (e.g. SMS 5 minutes later if the push was not read).

A category's steps are edited by ops (CategorySetting.escalation); a request may replace them.
The steps themselves are run by notifications/escalation.py.
"""

from dataclasses import dataclass

from core.vocabulary import Channel

MAX_WAIT_SECONDS = 7 * 24 * 3600
MAX_STEPS = 10
# What the step waits for not to have happened, on any of the notification's deliveries.
# Herald has one "read" state: an email open, a push open and an inbox read all reach it, so
# "not_opened" and "not_read" are one condition under the two names senders use.
CONDITIONS = {
    "not_delivered": "delivered",
    "not_opened": "read",
    "not_read": "read",
}


@dataclass(frozen=True)
class Step:
    channels: tuple[str, ...]
    wait_seconds: int
    condition: str

    @classmethod
    def from_dict(cls, raw: dict) -> "Step":
        return cls(tuple(raw["channels"]), int(raw["wait_seconds"]), raw.get("if", "not_read"))

    def as_dict(self) -> dict:
        return {"channels": list(self.channels), "wait_seconds": self.wait_seconds, "if": self.condition}


def problems(raw, template_channels: set[str] | None = None) -> list[tuple[str, str]]:
    """(field, message) for each thing wrong with a list of steps; [] if they can run.

    Fields are `<index>.<name>`. With `template_channels`, a channel the template lacks is wrong too.
    """
    if not isinstance(raw, list):
        return [("", "Expected a list of steps: {channels, wait_seconds, if}.")]
    if len(raw) > MAX_STEPS:
        return [("", f"At most {MAX_STEPS} steps.")]
    found = []
    for index, step in enumerate(raw):
        if not isinstance(step, dict):
            found.append((f"{index}", "Expected an object: channels, wait_seconds, if."))
            continue
        channels = step.get("channels")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            found.append((f"{index}.channels", "Expected a non-empty list of channels."))
        else:
            unknown = [c for c in channels if c not in Channel.values]
            missing = [c for c in channels if template_channels is not None and c in Channel.values and c not in template_channels]
            if unknown:
                found.append((f"{index}.channels", f"Unknown channel {unknown[0]!r}; expected one of: {', '.join(Channel.values)}."))
            elif len(set(channels)) != len(channels):
                found.append((f"{index}.channels", "Each channel may appear only once."))
            elif missing:
                found.append((f"{index}.channels", f"The template has no {missing[0]} variant."))
        wait = step.get("wait_seconds")
        if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait <= MAX_WAIT_SECONDS:
            found.append((f"{index}.wait_seconds", f"Expected whole seconds from 0 to {MAX_WAIT_SECONDS} (7 days)."))
        condition = step.get("if", "not_read")
        if not isinstance(condition, str) or condition not in CONDITIONS:
            found.append((f"{index}.if", f"Expected one of: {', '.join(CONDITIONS)}."))
        unknown_fields = sorted(set(step) - {"channels", "wait_seconds", "if"})
        if unknown_fields:
            found.append((f"{index}.{unknown_fields[0]}", "Unknown field."))
    return found


def parse(raw) -> tuple[Step, ...]:
    """Steps from their JSON form (checked with `problems` first)."""
    return tuple(Step.from_dict(step) for step in raw or ())
