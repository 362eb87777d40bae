"""Email through any SMTP server, via Django's email framework (SendGrid's failover)."""

import re
import smtplib
from email.utils import make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend

from core.vocabulary import ErrorCode
from delivery.providers.base import OutgoingMessage, SendResult


def backend_from_url(url: str) -> EmailBackend:
    """smtp://user:pass@host:587?starttls=1 or smtps://user:pass@host:465."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return EmailBackend(
        host=parts.hostname or "localhost",
        port=parts.port or (465 if parts.scheme == "smtps" else 25),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        use_ssl=parts.scheme == "smtps",
        use_tls=query.get("starttls", ["0"])[0] in ("1", "true"),
        timeout=settings.HERALD_PROVIDER_TIMEOUT,
        fail_silently=False,
    )


class SmtpProvider:
    name = "smtp"
    watch_stalls = True

    def __init__(self):
        self.url = settings.SMTP_URL

    def send(self, message: OutgoingMessage) -> SendResult:
        message_id = message.headers.get("Message-ID") or make_msgid(domain=settings.HERALD_EMAIL_DOMAIN)
        email = EmailMultiAlternatives(
            subject=message.content.get("subject", ""),
            body=message.content.get("body", ""),
            from_email=settings.HERALD_EMAIL_FROM,
            to=message.to,
            headers={**message.headers, "Message-ID": message_id, "X-Herald-Delivery-Id": message.delivery_id},
            connection=backend_from_url(self.url),
        )
        if message.content.get("html_body"):
            email.attach_alternative(message.content["html_body"], "text/html")
        try:
            email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            if 400 <= code < 500:
                return SendResult.retry(f"smtp_{code}", _reply(reply))
            if MAILBOX_PROBLEM.search(_reply(reply)) or code in (550, 551, 553) and not RELAY_PROBLEM.search(_reply(reply)):
                return SendResult.invalid_recipient(f"smtp_{code}", _reply(reply))
            # e.g. "554 5.7.1 Relaying denied": our server's configuration, not the person's address.
            return SendResult.failed(f"smtp_{code}", _reply(reply), provider_fault=True)
        except smtplib.SMTPAuthenticationError as exc:
            return SendResult.failed(ErrorCode.AUTH_FAILED, f"SMTP login refused: {_reply(exc.smtp_error)}", provider_fault=True)
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                return SendResult.retry(f"smtp_{exc.smtp_code}", _reply(exc.smtp_error))
            return SendResult.failed(f"smtp_{exc.smtp_code}", _reply(exc.smtp_error), provider_fault=True)
        except (smtplib.SMTPException, TimeoutError, OSError) as exc:
            return SendResult.retry(ErrorCode.CONNECTION_ERROR, f"SMTP server unreachable: {exc}", provider_fault=True)
        return SendResult.sent(message_id.strip("<>"))


MAILBOX_PROBLEM = re.compile(r"\b5\.1\.[0-9]+\b")  # enhanced status 5.1.x: bad destination mailbox/address
RELAY_PROBLEM = re.compile(r"\b5\.7\.[0-9]+\b|relay", re.IGNORECASE)


def _reply(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
