"""What a delivery sends, and to whom: rendered content, headers, addresses, device tokens."""

import json
from html import escape

from django.conf import settings

from core.vocabulary import Channel, ErrorCode
from delivery import tracking
from delivery.models import Delivery
from delivery.providers import OutgoingMessage
from preferences import unsubscribe
from templates_app.models import Template, TemplateVersion
from templates_app.rendering import RenderError, render, select_variant, variant_field


def render_content(delivery: Delivery, templates: dict | None = None) -> dict:
    """The delivery's content, rendered from its template version in the recipient's locale.

    Sets `template_locale` and `locale_fallback` on the delivery (stored with its outcome).
    `templates` keeps each template's variants and each render for a chunk of deliveries, so a
    campaign reads and renders its template once per chunk, not once per person.
    """
    notification = delivery.notification
    templates = {} if templates is None else templates
    key = (notification.template_name, delivery.template_version)
    if key not in templates:
        templates[key] = template_variants(notification.template_name, delivery.template_version)
    variants, default_locale = templates[key]
    template, how = select_variant(variants, delivery.channel, notification.recipient.locale, default_locale)
    if template is None:
        raise RenderError(f"template {notification.template_name!r} has no {delivery.channel} variant")
    delivery.template_locale, delivery.locale_fallback = variant_field(template, "locale"), how
    # A render depends only on these, so a campaign's people (same variables, locale, zone) share one.
    recipient = notification.recipient
    rendered = ("rendered", key, delivery.channel, delivery.template_locale, recipient.locale, recipient.timezone,
                json.dumps(notification.variables, sort_keys=True))
    if rendered not in templates:
        try:
            content = render(template, notification.variables, recipient.locale, recipient.timezone)
        except RenderError as exc:
            templates[rendered] = exc  # the next person of the chunk with the same render fails the same way, at once
            raise
        templates[rendered] = tracking.tracked(content) if delivery.channel == Channel.EMAIL and tracking.enabled() else content
    if isinstance(templates[rendered], RenderError):
        raise templates[rendered]
    content = tracking.for_delivery(templates[rendered], delivery.pk)
    if unsubscribe.list_unsubscribe_headers(notification.recipient, notification.type) and delivery.channel == Channel.EMAIL:
        content = with_unsubscribe_footer(content, unsubscribe.unsubscribe_url(notification.recipient, notification.type), notification.type)
    return content


def template_variants(name: str, version: int | None) -> tuple[list, str]:
    """The contents of `name` at `version` (the live variants when it has none), and its default locale."""
    if version is not None:
        found = TemplateVersion.objects.filter(template__name=name, number=version).values_list("contents", "default_locale").first()
        if found is None:  # never the live rows instead: they may say something else
            raise RenderError(f"template {name!r} has no version {version} any more")
        return found[0], found[1]
    return list(Template.objects.filter(name=name)), "en"


def rendered_fields(delivery: Delivery) -> dict:
    """What rendering decided, stored with the attempt's outcome so that retries send the same."""
    return {"content": delivery.content, "template_locale": delivery.template_locale, "locale_fallback": delivery.locale_fallback}


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


UNSUBSCRIBE_TAG = "-herald_unsubscribe_url-"


def with_unsubscribe_footer(content: dict, url: str, category: str) -> dict:
    content = dict(content)
    content["body"] = f"{content.get('body', '')}\n\n--\nTo stop receiving {category} emails: {url}"
    if content.get("html_body"):
        link = f'<a href="{escape(url)}">unsubscribe</a>'
        content["html_body"] += f'<p style="font-size:12px;color:#666">You can {link} from {escape(category)} emails.</p>'
    return content


def build_message(delivery: Delivery, to: list[str]) -> OutgoingMessage:
    notification = delivery.notification
    headers = email_headers(delivery)
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
        headers=headers,
        personal=personal_values(delivery, headers),
    )


def personal_values(delivery: Delivery, headers: dict[str, str]) -> dict[str, str]:
    """What differs from person to person in an email's body (their tracking token, and the
    unsubscribe link its List-Unsubscribe header carries), by the tag a shared body uses instead."""
    if delivery.channel != Channel.EMAIL:
        return {}
    values = {tracking.DELIVERY_TAG: tracking.delivery_token(delivery.pk)}
    link = headers.get("List-Unsubscribe", "")
    if link.startswith("<") and link.endswith(">"):
        values[UNSUBSCRIBE_TAG] = link[1:-1]
    return values


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
