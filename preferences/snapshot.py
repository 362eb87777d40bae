"""Plain, cacheable views of category settings and a person's choices, and the rules over them."""

from dataclasses import dataclass, field
from datetime import time

from preferences import escalation as escalation_steps


@dataclass(frozen=True)
class CategoryPolicy:
    category: str
    channels: tuple[str, ...] = ()
    required: bool = False
    opt_in: bool = False
    respects_quiet_hours: bool = True
    quiet_hours_held_channels: tuple[str, ...] = ("push", "sms")
    hourly_cap: int | None = None
    daily_cap: int | None = None
    dedup_window_seconds: int = 3600
    list_unsubscribe: bool = False
    batch_window_seconds: int = 0
    batch_max_window_seconds: int | None = None
    batch_max_items: int | None = None
    batch_first_at_once: bool = False
    digest: dict | None = None  # the category's default digest schedule (preferences/digests.py)
    escalation: tuple = ()  # steps after the first send (preferences/escalation.py)
    default_send_hour: int = 10  # send_at "optimal" for a person with no history

    @classmethod
    def from_setting(cls, setting) -> "CategoryPolicy":
        return cls(
            category=setting.category,
            channels=tuple(setting.channels),
            required=setting.required,
            opt_in=setting.opt_in,
            respects_quiet_hours=setting.respects_quiet_hours,
            quiet_hours_held_channels=tuple(setting.quiet_hours_held_channels),
            hourly_cap=setting.hourly_cap,
            daily_cap=setting.daily_cap,
            dedup_window_seconds=setting.dedup_window_seconds,
            list_unsubscribe=setting.list_unsubscribe,
            batch_window_seconds=setting.batch_window_seconds,
            batch_max_window_seconds=setting.batch_max_window_seconds,
            batch_max_items=setting.batch_max_items,
            batch_first_at_once=setting.batch_first_at_once,
            digest=setting.digest or None,
            escalation=escalation_steps.parse(setting.escalation),
            default_send_hour=setting.default_send_hour,
        )

    @property
    def capped(self) -> bool:
        return self.hourly_cap is not None or self.daily_cap is not None


@dataclass(frozen=True)
class CategoryChoice:
    enabled: bool | None = None  # None: the category default (on, or off for opt-in categories)
    channels: tuple[str, ...] | None = None  # None: the category's default channels
    unsubscribed_at: str | None = None  # set by an unsubscribe link; cleared by an explicit opt-in
    digest: dict | None = None  # None: the category default; {"frequency": "off"}: sent at once


@dataclass(frozen=True)
class Choices:
    """Everything a person chose; the defaults describe someone who chose nothing."""

    version: int = 0
    enabled: bool = True
    channels: dict[str, bool] = field(default_factory=dict)
    categories: dict[str, CategoryChoice] = field(default_factory=dict)
    quiet_hours_enabled: bool = False
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None

    @classmethod
    def from_row(cls, row) -> "Choices":
        return cls(
            version=row.version,
            enabled=row.enabled,
            channels=dict(row.channels),
            categories={name: _category_choice(raw) for name, raw in row.categories.items()},
            quiet_hours_enabled=row.quiet_hours_enabled,
            quiet_hours_start=row.quiet_hours_start,
            quiet_hours_end=row.quiet_hours_end,
        )

    def category(self, name: str) -> CategoryChoice:
        return self.categories.get(name, CategoryChoice())

    @property
    def has_quiet_hours(self) -> bool:
        return bool(self.quiet_hours_enabled and self.quiet_hours_start and self.quiet_hours_end)


def _category_choice(raw: dict) -> CategoryChoice:
    channels = raw.get("channels")
    return CategoryChoice(
        enabled=raw.get("enabled"),
        channels=tuple(channels) if channels is not None else None,
        unsubscribed_at=raw.get("unsubscribed_at"),
        digest=raw.get("digest"),
    )


def category_enabled(choices: Choices, policy: CategoryPolicy) -> bool:
    """Whether the person receives this category at all (required categories always)."""
    if policy.required:
        return True
    chosen = choices.category(policy.category).enabled
    return (not policy.opt_in) if chosen is None else chosen


def category_channels(choices: Choices, policy: CategoryPolicy) -> tuple[str, ...]:
    """The person's channel list for the category, else the category default."""
    chosen = choices.category(policy.category).channels
    if policy.required or chosen is None:
        return policy.channels
    return chosen


def opted_out_reason(choices: Choices, policy: CategoryPolicy, channel: str) -> str | None:
    """Why the person's choices block `channel` for this category, or None if they allow it."""
    if policy.required:
        return None
    if not choices.enabled:
        return "opted_out"
    chosen = choices.category(policy.category)
    if chosen.enabled is False:
        return "unsubscribed" if chosen.unsubscribed_at else "opted_out"
    if chosen.enabled is None and policy.opt_in:
        return "not_opted_in"
    if not choices.channels.get(channel, True):
        return "opted_out"
    if chosen.channels is not None and channel not in chosen.channels:
        return "opted_out"
    return None


def digest_schedule(choices: Choices, policy: CategoryPolicy) -> dict | None:
    """The digest this person's notifications of the category go to, or None (sent as they come).
    A required category is never digested."""
    if policy.required:
        return None
    chosen = choices.category(policy.category).digest
    schedule = chosen if chosen is not None else policy.digest
    return None if not schedule or schedule.get("frequency") == "off" else schedule
