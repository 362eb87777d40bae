from delivery.models import Delivery
from notifications.models import Notification
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
