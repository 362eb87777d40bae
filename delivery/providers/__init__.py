"""Which providers serve each channel, in failover order.

A provider is used when its credentials are configured; a channel with none configured
falls back to the sandbox, so Herald runs (and records what it would send) with no setup.
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from delivery.providers.base import Outcome, OutgoingMessage, Provider, ReportsReceipts, SendResult

__all__ = ["OutgoingMessage", "Outcome", "Provider", "SendResult", "provider_names", "get_provider", "receipts_reader"]

PROVIDER_CLASSES = {
    "sandbox": "delivery.providers.sandbox.SandboxProvider",
    "sendgrid": "delivery.providers.sendgrid.SendGridProvider",
    "smtp": "delivery.providers.smtp.SmtpProvider",
    "twilio": "delivery.providers.twilio.TwilioProvider",
    "fcm": "delivery.providers.fcm.FcmProvider",
    "apns": "delivery.providers.apns.ApnsProvider",
    "webhook": "delivery.providers.webhook.WebhookProvider",
    "inbox": "inbox.provider.InboxProvider",
}


def configured_providers() -> dict[str, bool]:
    return {
        "sendgrid": bool(settings.SENDGRID_API_KEY),
        "smtp": bool(settings.SMTP_URL),
        "twilio": bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN),
        "fcm": bool(settings.FCM_CREDENTIALS_FILE),
        "apns": bool(settings.APNS_KEY_FILE),
        "webhook": bool(settings.HERALD_WEBHOOK_SECRET),
    }


def provider_names(channel: str, platform: str | None = None) -> list[str]:
    """Provider names for `channel` (and, for push, the device platform), in failover order."""
    configured = configured_providers()
    candidates = {
        "email": ["sendgrid", "smtp"],
        "sms": ["twilio"],
        "push": ["apns"] if platform == "ios" else ["fcm"],
        "webhook": ["webhook"],
        "in_app": ["inbox"],
    }[channel]
    if channel == "in_app":
        return candidates
    return [name for name in candidates if configured[name]] or ["sandbox"]


@cache
def get_provider(name: str) -> Provider:
    # Built once per process: SDK clients keep connections, OAuth tokens and signed JWTs.
    return import_string(PROVIDER_CLASSES[name])()


def receipts_reader(name: str) -> ReportsReceipts | None:
    """The class that verifies and reads `name`'s receipt webhooks, if it sends any (no SDK client is built)."""
    if name not in PROVIDER_CLASSES:
        return None
    provider_class = import_string(PROVIDER_CLASSES[name])
    return provider_class if hasattr(provider_class, "read_receipts") else None
