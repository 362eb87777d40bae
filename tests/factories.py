from datetime import timedelta

from django.utils import timezone

from delivery.models import DeadLetter, Delivery, DeliveryAttempt
from notifications.models import Notification, WorkflowStep
from preferences.models import Device, Recipient
from templates_app.models import Template

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


def make_recipient(user_id: str = "u1", **fields) -> Recipient:
    defaults = {"email": f"{user_id}@example.com", "phone": "+14155550100", "webhook_url": "https://example.com/hook"}
    recipient = Recipient.objects.create(external_id=user_id, **{**defaults, **fields})
    Device.objects.create(recipient=recipient, platform="android", token=f"token-{user_id}")
    return recipient


def make_templates(name: str = "welcome", channels=("email", "sms", "push", "in_app", "webhook"), locale: str = "en") -> None:
    for channel in channels:
        Template.objects.create(
            name=name, channel=channel, locale=locale, subject="Hi {{ name }}" if channel == "email" else "",
            title="Hello" if channel in ("push", "in_app") else "", body=f"Hello {{{{ name }}}} via {channel}",
            html_body="<p>Hello {{ name }}</p>" if channel == "email" else "", variables_schema=SCHEMA,
        )


def notification_body(**overrides) -> dict:
    body = {"user_id": "u1", "type": "transaction", "template": "welcome", "variables": {"name": "Ada"}}
    body.update(overrides)
    return body


def delivery_of(notification_id, channel: str) -> Delivery | None:
    return Delivery.objects.filter(notification_id=notification_id, channel=channel).first()


def status_of(notification_id) -> str:
    return Notification.objects.values_list("status", flat=True).get(pk=notification_id)


def delivery_status(notification_id, channel: str) -> str | None:
    delivery = delivery_of(notification_id, channel)
    return delivery.status if delivery else None


def history(*moves: tuple, start=None) -> list[dict]:
    """A status history: (status, seconds after `start`[, reason]) for each move."""
    start = start or timezone.now() - timedelta(minutes=5)
    return [{"status": status, "at": (start + timedelta(seconds=seconds)).isoformat(), **({"reason": rest[0]} if rest else {})}
            for status, seconds, *rest in moves]


def make_failed_delivery(recipient: Recipient, attempts: int = 4) -> tuple[Notification, Delivery, DeadLetter]:
    """A notification whose push went out and whose email failed `attempts` times and was dead-lettered,
    as routing and the workers leave them (SMS skipped: the person has no phone)."""
    start = timezone.now() - timedelta(minutes=5)
    notification = Notification.objects.create(
        recipient=recipient, type="transaction", priority="high", template_name="welcome", variables={"name": "Ada"},
        requested_channels=["email", "push", "sms"], status="sent", created_at=start, status_changed_at=start + timedelta(seconds=3),
        status_history=history(("pending", 0), ("routing", 1), ("sending", 2), ("sent", 3), start=start),
        skipped_channels=[{"channel": "sms", "reason": "no_phone"}],
    )
    WorkflowStep.objects.create(notification=notification, position=0, kind="send", channels=["email", "push"], state="done",
                                finished_at=start + timedelta(seconds=2))
    WorkflowStep.objects.create(notification=notification, position=1, kind="escalation", channels=["sms"], condition="not_read",
                                wait_seconds=300, state="skipped", finished_at=start + timedelta(seconds=302),
                                reason="no_channel_to_send", detail=[{"channel": "sms", "reason": "no_phone"}])
    Delivery.objects.create(notification=notification, channel="push", status="sent", provider="fcm", attempts=1,
                            created_at=start + timedelta(seconds=2), sent_at=start + timedelta(seconds=3),
                            status_history=history(("queued", 2), ("sending", 2.5), ("sent", 3), start=start))
    email = Delivery.objects.create(
        notification=notification, channel="email", status="failed", provider="sendgrid", attempts=attempts,
        created_at=start + timedelta(seconds=2), failed_at=start + timedelta(seconds=60), error_code="http_503",
        error_message="Service Unavailable", content={"subject": "Hi Ada", "body": "Hello Ada"},
        status_history=history(("queued", 2), *[(status, 3 + n * 10 + offset, *(["http_503"] if status == "failed" else []))
                                                for n in range(attempts) for status, offset in (("sending", 0), ("failed", 1))],
                               start=start),
    )
    for number in range(1, attempts + 1):
        DeliveryAttempt.objects.create(delivery=email, number=number, provider="sendgrid", outcome="retry",
                                       started_at=start + timedelta(seconds=3 + (number - 1) * 10),
                                       finished_at=start + timedelta(seconds=4 + (number - 1) * 10), error_code="http_503",
                                       error_message="Service Unavailable", retry_in_seconds=None if number == attempts else 5.0)
    letter = DeadLetter.objects.create(delivery=email, reason="max_attempts_exceeded", error_code="http_503",
                                       error_message="Service Unavailable", payload={"channel": "email"})
    return notification, email, letter
