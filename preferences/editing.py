"""The preferences document the API shows, and how a PUT or PATCH of it changes the stored row."""

from datetime import time

from core.errors import ApiError
from core.vocabulary import Channel, NotificationType
from preferences.models import Preferences, Recipient
from preferences.quiet_hours import InvalidQuietHours, check_window
from preferences.snapshot import CategoryPolicy, Choices, category_channels, category_enabled, digest_schedule
from preferences.store import policy_for


def effective_document(recipient: Recipient, choices: Choices, policies: dict[str, CategoryPolicy]) -> dict:
    """What will actually apply to the person: their choices filled in with the category defaults."""
    categories = {}
    for name in NotificationType.values:
        policy = policy_for(name, policies)
        chosen = choices.category(name)
        categories[name] = {
            "enabled": category_enabled(choices, policy),
            "channels": list(category_channels(choices, policy)),
            "required": policy.required,
            "opt_in": policy.opt_in,
            "unsubscribed_at": chosen.unsubscribed_at,
            "digest": digest_schedule(choices, policy),
            "respects_quiet_hours": policy.respects_quiet_hours,
            "frequency_caps": {"hourly": policy.hourly_cap, "daily": policy.daily_cap},
        }
    return {
        "user_id": recipient.external_id,
        "version": choices.version,
        "enabled": choices.enabled,
        "channels": {channel: choices.channels.get(channel, True) for channel in Channel.values},
        "categories": categories,
        "quiet_hours": {
            "enabled": choices.quiet_hours_enabled,
            "start": _hhmm(choices.quiet_hours_start),
            "end": _hhmm(choices.quiet_hours_end),
            "timezone": recipient.timezone,
        },
    }


def _hhmm(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value else None


def check_required_categories(data: dict, policies: dict[str, CategoryPolicy]) -> None:
    """Reject turning off or narrowing a required category: such choices could never take effect."""
    for name, chosen in data.get("categories", {}).items():
        if not policy_for(name, policies).required:
            continue
        if chosen.get("enabled") is False:
            raise ApiError(400, "required_category", f"{name} notifications are required and cannot be turned off.",
                           f"categories.{name}.enabled")
        if chosen.get("channels") is not None:
            raise ApiError(400, "required_category", f"{name} notifications always use their default channels.",
                           f"categories.{name}.channels")
        if chosen.get("digest") is not None:
            raise ApiError(400, "required_category", f"{name} notifications are sent at once, never in a digest.",
                           f"categories.{name}.digest")


def apply(row: Preferences, recipient: Recipient, data: dict, *, replace: bool) -> bool:
    """Write validated request `data` into `row` (PUT replaces, PATCH merges); whether anything changed.

    An unsubscribe made through an email link survives a PUT that leaves the category out:
    only an explicit `"enabled": true` opts the person back in.
    """
    before = Choices.from_row(row)
    if replace:
        row.enabled = data.get("enabled", True)
        row.channels = {}
        row.categories = _kept_unsubscribes(row.categories)
        row.quiet_hours_enabled, row.quiet_hours_start, row.quiet_hours_end = False, None, None
    elif "enabled" in data:
        row.enabled = data["enabled"]
    # Only the channels turned off are stored: absent means on.
    row.channels = {c: False for c, on in {**row.channels, **data.get("channels", {})}.items() if not on}
    categories = dict(row.categories)
    for name, chosen in data.get("categories", {}).items():
        merged = _merged_category(categories.pop(name, {}), chosen)
        if merged:
            categories[name] = merged
    row.categories = categories
    quiet = data.get("quiet_hours", {})
    for field in ("enabled", "start", "end"):
        if field in quiet:
            setattr(row, f"quiet_hours_{field}", quiet[field])
    _check_quiet_hours(row)
    moved = "timezone" in quiet and quiet["timezone"] != recipient.timezone
    if moved:
        recipient.timezone = quiet["timezone"]
        recipient.save(update_fields=["timezone", "updated_at"])
    return moved or Choices.from_row(row) != before


def _kept_unsubscribes(categories: dict) -> dict:
    return {
        name: {"enabled": False, "unsubscribed_at": stored["unsubscribed_at"]}
        for name, stored in categories.items()
        if stored.get("unsubscribed_at") and stored.get("enabled") is False
    }


def _merged_category(stored: dict, chosen: dict) -> dict:
    if stored.get("unsubscribed_at") and chosen.get("enabled") is not True:
        # Someone who used an unsubscribe link is opted back in only by an explicit "enabled": true.
        chosen = {key: value for key, value in chosen.items() if key != "enabled"}
    merged = {**stored, **chosen}
    if merged.get("enabled") is not False:
        merged.pop("unsubscribed_at", None)
    return {key: value for key, value in merged.items() if value is not None}


def _check_quiet_hours(row: Preferences) -> None:
    start, end = row.quiet_hours_start, row.quiet_hours_end
    if row.quiet_hours_enabled:
        for field, value in (("start", start), ("end", end)):
            if value is None:
                raise ApiError(400, "required", "Quiet hours need a start and an end time (HH:MM).", f"quiet_hours.{field}")
    if start is not None and end is not None:
        try:
            check_window(start, end)
        except InvalidQuietHours as exc:
            raise ApiError(400, "invalid", str(exc), f"quiet_hours.{exc.field}") from exc
