"""What to do when a provider call's outcome is unknown: the only place a message may go out twice.

An outcome is unknown when the request left and no answer came back: a read timeout, a
connection that broke mid-answer, or a worker that died between sending and journaling
(delivery/journal.py). Herald never resends blindly. In order:

1. Ask the provider, where it can say (Twilio's message list): found means sent; not found
   means nothing went out, so sending again is no duplicate.
2. Where the receiving side collapses a resend into the first message, send again: email
   carries a Message-ID per delivery, push an apns-id / collapse id / notification tag per
   delivery, webhooks a `webhook-id` per delivery, and the inbox keeps one item per delivery.
3. Otherwise (SMS that could not be looked up) follow the category's policy: where a missed
   message costs more than a duplicate (security, and anything critical) send again; else
   fail with `unknown_outcome`, dead-lettered so ops can decide.

The action taken is recorded on the delivery (`unknown_outcome_action`).
"""

import logging
from datetime import datetime

from django.conf import settings

from core.vocabulary import Channel, ErrorCode
from delivery.providers import PROVIDER_CLASSES, OutgoingMessage, SendResult, get_provider
from delivery.providers.base import LookupUnavailable

log = logging.getLogger(__name__)

RECEIVER_COLLAPSES_RESENDS = {Channel.EMAIL, Channel.PUSH, Channel.WEBHOOK, Channel.IN_APP}

FOUND_AT_PROVIDER = "found_at_provider"
NOT_FOUND_AT_PROVIDER = "not_found_at_provider"
RESENT_RECEIVER_DEDUPES = "resent_receiver_dedupes"
RESENT_BY_POLICY = "resent_by_policy"
NOT_RESENT_BY_POLICY = "not_resent_by_policy"


def resend_is_policy(category: str, priority: str) -> bool:
    return category in settings.HERALD_RESEND_UNKNOWN_CATEGORIES or priority == "critical"


def can_ask(provider_name: str) -> bool:
    """Whether `provider_name` can say whether it took a message (Twilio's message list)."""
    return provider_name in PROVIDER_CLASSES and hasattr(get_provider(provider_name), "find_sent")


def decide(message: OutgoingMessage, provider_name: str, started_at: datetime, category: str) -> tuple[SendResult | None, str]:
    """(the result to record, the action) for an attempt at `message` whose outcome is unknown.

    A None result means: send again.
    """
    # Several providers (a push to iOS and Android devices) or none: nobody single to ask.
    provider = get_provider(provider_name) if provider_name in PROVIDER_CLASSES else None
    find_sent = getattr(provider, "find_sent", None)
    if find_sent is not None and message.to:
        try:
            found = find_sent(message, started_at)
        except LookupUnavailable as exc:
            log.warning("delivery %s: could not look the message up at %s: %s", message.delivery_id, provider_name, exc)
        else:
            if found:
                return SendResult.sent(found), FOUND_AT_PROVIDER
            return None, NOT_FOUND_AT_PROVIDER
    if message.channel in RECEIVER_COLLAPSES_RESENDS:
        return None, RESENT_RECEIVER_DEDUPES
    if resend_is_policy(category, message.priority):
        return None, RESENT_BY_POLICY
    return SendResult.failed(
        ErrorCode.UNKNOWN_OUTCOME,
        f"{provider_name or 'The provider'} may or may not have sent this message and cannot be asked; "
        f"the {category} policy is not to risk a duplicate. Requeue it to send anyway.",
    ), NOT_RESENT_BY_POLICY
