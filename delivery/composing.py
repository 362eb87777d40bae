"""What a delivery sends, and to whom: rendered content, headers, addresses, device tokens."""

import json
from html import escape

from django.conf import settings

from core.vocabulary import Channel, ErrorCode
from delivery.models import Delivery
from delivery.providers import OutgoingMessage
from preferences import unsubscribe
from templates_app.models import Template
from templates_app.rendering import RenderError, render, select_variant


def render_content(delivery: Delivery, templates: dict | None = None) -> dict:
    """The delivery's content, rendered from its template in the recipient's locale.

    `templates` keeps each (name, channel)'s variants and each render for a chunk of deliveries,
    so a campaign reads and renders its template once per chunk, not once per person.
    """
    notification = delivery.notification
    templates = {} if templates is None else templates
    key = (notification.template_name, delivery.channel)
    if key not in templates:
        templates[key] = list(Template.objects.filter(name=notification.template_name, channel=delivery.channel))
    variants = templates[key]
    template = select_variant(variants, delivery.channel, notification.recipient.locale)
    if template is None:
        raise RenderError(f"template {notification.template_name!r} has no {delivery.channel} variant")
    # A template sees only the variables, so a campaign's people (same variables) share one render.
    rendered = ("rendered", template.pk, json.dumps(notification.variables, sort_keys=True))
    if rendered not in templates:
        templates[rendered] = render(template, notification.variables)
    content = dict(templates[rendered])
    if unsubscribe.list_unsubscribe_headers(notification.recipient, notification.type) and delivery.channel == Channel.EMAIL:
        content = with_unsubscribe_footer(content, unsubscribe.unsubscribe_url(notification.recipient, notification.type), notification.type)
    return content


def email_headers(delivery: Delivery) -> dict[str, str]:
    """Email headers: a stable Message-ID, and RFC 8058 one-click unsubscribe for the categories that carry them."""
    if delivery.channel != Channel.EMAIL:
        return {}
    # One Message-ID per delivery, the same on every try: mail systems show a resend after a
    # lost answer as the message they already have (see delivery/unknown_outcomes.py).
    return {
        "Message-ID": f"<herald-{delivery.pk}@{settings.HERALD_EMAIL_DOMAIN}>",
        **unsubscribe.list_unsubscribe_headers(delivery.notification.recipient, delivery.notification.type),
    }


def with_unsubscribe_footer(content: dict, url: str, category: str) -> dict:
    content = dict(content)
    content["body"] = f"{content.get('body', '')}\n\n--\nTo stop receiving {category} emails: {url}"
    if content.get("html_body"):
        link = f'<a href="{escape(url)}">unsubscribe</a>'
        content["html_body"] += f'<p style="font-size:12px;color:#666">You can {link} from {escape(category)} emails.</p>'
    return content


def build_message(delivery: Delivery, to: list[str]) -> OutgoingMessage:
    notification = delivery.notification
    return OutgoingMessage(
        delivery_id=str(delivery.pk),
        channel=delivery.channel,
        to=to,
        content=delivery.content,
        priority=notification.priority,
        attempt=delivery.attempts,
        notification_id=str(notification.pk),
        notification_type=notification.type,
        metadata=notification.metadata,
        headers=email_headers(delivery),
    )


def addresses(delivery: Delivery) -> list[str]:
    """Where the delivery goes: the contact address for its channel, or the person's id (in-app)."""
    recipient = delivery.notification.recipient
    contact = recipient.contact_addresses()
    if delivery.channel in contact:
        return [contact[delivery.channel]] if contact[delivery.channel] else []
    return [recipient.external_id]


def push_targets(delivery: Delivery) -> dict[str, list[str]]:
    """The recipient's active device tokens, by platform."""
    targets: dict[str, list[str]] = {}
    for platform, token in delivery.notification.recipient.devices.filter(is_active=True).values_list("platform", "token"):
        targets.setdefault(platform, []).append(token)
    return targets


def missing_address(channel: str) -> tuple[str, str]:
    reason = {
        Channel.EMAIL: ErrorCode.NO_EMAIL, Channel.SMS: ErrorCode.NO_PHONE,
        Channel.PUSH: ErrorCode.NO_DEVICE, Channel.WEBHOOK: ErrorCode.NO_WEBHOOK_URL,
    }.get(channel, ErrorCode.NO_ADDRESS)
    return reason, f"The recipient has no {channel} address any more."
