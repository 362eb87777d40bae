from functools import cache
from zoneinfo import available_timezones

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from core.vocabulary import Channel, NotificationType
from preferences import digests
from preferences import escalation as escalation_steps

E164 = RegexValidator(r"\A\+[1-9]\d{1,14}\Z", "Phone numbers must be in E.164 form, e.g. +14155550123.")
USER_ID = RegexValidator(r"\A[A-Za-z0-9_.@:+-]{1,255}\Z", "Use 1-255 letters, digits or _ . @ : + -")
LOCALE = RegexValidator(r"\A[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z", "Use a BCP 47 tag such as en or pt-BR.")


# In the tz database's list, but not places: the server's own zone and tzdata's internals.
NOT_PLACES = {"localtime", "posixrules", "Factory"}


@cache
def iana_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_PLACES


def validate_timezone(value: str) -> None:
    if value not in iana_zones():
        raise ValidationError(f"{value!r} is not an IANA timezone.")


class Recipient(models.Model):
    """A person Herald can reach, known to callers by their own user id."""

    external_id = models.CharField("user id", max_length=255, unique=True, validators=[USER_ID])
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=16, blank=True, validators=[E164])
    webhook_url = models.URLField(max_length=2000, blank=True)
    locale = models.CharField(max_length=35, default="en", validators=[LOCALE])
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.external_id

    def contact_addresses(self) -> dict[str, str]:
        """The person's address on each channel that has one: email, phone, webhook URL ("" when unset)."""
        return {Channel.EMAIL: self.email, Channel.SMS: self.phone, Channel.WEBHOOK: self.webhook_url}


class Device(models.Model):
    class Platform(models.TextChoices):
        IOS = "ios"
        ANDROID = "android"
        WEB = "web"

    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="devices")
    platform = models.CharField(max_length=10, choices=Platform.choices)
    token = models.CharField(max_length=1024, unique=True)
    is_active = models.BooleanField(default=True)
    invalidated_reason = models.CharField(max_length=100, blank=True)
    invalidated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    registered_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.platform}:{self.token[:12]}…"


def validate_channel_list(value) -> None:
    from core.vocabulary import Channel

    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValidationError("Give a list of channel names.")
    unknown = [c for c in value if c not in Channel.values]
    if unknown:
        raise ValidationError(f"Unknown channel {unknown[0]!r}; expected one of: {', '.join(Channel.values)}.")
    if len(set(value)) != len(value):
        raise ValidationError("Each channel may appear only once.")


def default_held_channels() -> list[str]:
    return ["push", "sms"]


class CategorySetting(models.Model):
    """Ops-edited defaults and limits for one notification category (the notification's `type`)."""

    category = models.CharField(max_length=20, unique=True, choices=NotificationType.choices)
    channels = models.JSONField(
        default=list, validators=[validate_channel_list],
        help_text="Channels tried when the sender names none and the person has not chosen their own.",
    )
    required = models.BooleanField(
        default=False, help_text="Opt-outs never block it (security alerts, password resets)."
    )
    opt_in = models.BooleanField(default=False, help_text="Off until the person turns it on (e.g. marketing).")
    respects_quiet_hours = models.BooleanField(
        default=True, help_text="Hold intrusive channels during the person's quiet hours (critical priority never waits)."
    )
    quiet_hours_held_channels = models.JSONField(
        default=default_held_channels, blank=True, validators=[validate_channel_list],
        help_text="Channels held until quiet hours end; the others are sent at once.",
    )
    hourly_cap = models.PositiveIntegerField(null=True, blank=True, help_text="Notifications per person per hour; empty = no cap.")
    daily_cap = models.PositiveIntegerField(null=True, blank=True, help_text="Notifications per person per 24 hours; empty = no cap.")
    dedup_window_seconds = models.PositiveIntegerField(
        default=3600, help_text="The same person, template and variables within this window is sent once; 0 = off."
    )
    list_unsubscribe = models.BooleanField(
        default=False, help_text="Emails carry one-click List-Unsubscribe headers and a footer link."
    )
    batch_window_seconds = models.PositiveIntegerField(
        default=0, help_text="Notifications to one person with the same batch key (the template, unless the sender "
                             "gives one) within this window go out as one message; 0 = no batching. At most 7 days.")
    batch_max_window_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Sliding window: each item extends the window, but never past this after the first.")
    batch_max_items = models.PositiveIntegerField(null=True, blank=True, help_text="Close the batch at once at this many items.")
    batch_first_at_once = models.BooleanField(default=False, help_text="Send the first item at once; batch what follows.")
    digest = models.JSONField(
        null=True, blank=True, help_text='Default digest for people who chose none, e.g. {"frequency": "daily", '
                                         '"time": "09:00"}, {"frequency": "weekly", "weekday": "monday", "time": "08:00"}, '
                                         '{"frequency": "monthly", "day": 1, "time": "09:00"}; empty = sent as they come.')
    escalation = models.JSONField(
        null=True, blank=True, help_text='Steps after the first send, each after a wait and while a condition holds, e.g. '
                                         '[{"channels": ["sms"], "wait_seconds": 300, "if": "not_read"}, {"channels": ["email"], '
                                         '"wait_seconds": 1800, "if": "not_read"}]; "if" is not_read, not_opened or not_delivered. '
                                         'Empty = none (a channel that cannot reach the person still falls back).')
    default_send_hour = models.PositiveSmallIntegerField(
        default=10, help_text='The local hour (0–23) a send_at "optimal" notification goes out at when the person has no '
                              'opens or clicks to learn from.')
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category"]
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(required=True) & (models.Q(opt_in=True) | models.Q(list_unsubscribe=True))),
                name="required_category_cannot_be_opted_out",
            )
        ]

    def __str__(self) -> str:
        return self.category

    def clean(self) -> None:
        if self.required and (self.opt_in or self.list_unsubscribe):
            raise ValidationError("A required category cannot be opt-in or carry an unsubscribe link.")
        if self.batch_window_seconds and self.required:
            raise ValidationError({"batch_window_seconds": "A required category is sent at once, never batched."})
        if self.batch_window_seconds > 7 * 24 * 3600:
            raise ValidationError({"batch_window_seconds": "At most 7 days (604800 seconds)."})
        if self.digest:
            if self.required:
                raise ValidationError({"digest": "A required category is sent at once, never digested."})
            problem = next(iter(digests.problems(self.digest)), None)
            if problem:
                raise ValidationError({"digest": f"{problem[0] or 'digest'}: {problem[1]}"})
        if self.batch_max_window_seconds is not None and self.batch_max_window_seconds < self.batch_window_seconds:
            raise ValidationError({"batch_max_window_seconds": "At least the batch window."})
        if self.escalation is not None:
            problem = next(iter(escalation_steps.problems(self.escalation)), None)
            if problem:
                raise ValidationError({"escalation": f"{problem[0] or 'steps'}: {problem[1]}"})
        if self.default_send_hour is not None and self.default_send_hour > 23:
            raise ValidationError({"default_send_hour": "An hour of the day, 0–23."})


class Preferences(models.Model):
    """What one person chose: global switch, per-channel switches, per-category choices, quiet hours.

    One row per person so that a single `version` guards every edit (optimistic locking).
    `channels` maps a channel to on/off (absent = on). `categories` maps a category to
    {"enabled": bool | None, "channels": [..] | None, "unsubscribed_at": iso8601 | None};
    None means "use the category default".
    """

    recipient = models.OneToOneField(Recipient, on_delete=models.CASCADE, primary_key=True, related_name="preferences")
    enabled = models.BooleanField(default=True)
    channels = models.JSONField(default=dict, blank=True)
    categories = models.JSONField(default=dict, blank=True)
    quiet_hours_enabled = models.BooleanField(default=False)
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "preferences"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quiet_hours_enabled=False)
                | (
                    models.Q(quiet_hours_start__isnull=False, quiet_hours_end__isnull=False)
                    & ~models.Q(quiet_hours_start=models.F("quiet_hours_end"))
                ),
                name="quiet_hours_need_distinct_start_and_end",
            )
        ]

    def __str__(self) -> str:
        return f"preferences of {self.recipient_id} (v{self.version})"
