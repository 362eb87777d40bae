"""SendGrid's errors and receipt events, read without a network."""

from python_http_client import exceptions as http_errors

from delivery.providers import sendgrid
from delivery.providers.base import Outcome
from delivery.providers.sendgrid import SendGridProvider


def sendgrid_error(cls, status, body=b"", headers=None):
    return cls(status, "reason", body, headers or {})


def test_sendgrid_errors_are_classified():
    assert sendgrid.classify_error(sendgrid_error(http_errors.TooManyRequestsError, 429, headers={"Retry-After": "3"})).retry_after == 3
    down = sendgrid.classify_error(sendgrid_error(http_errors.ServiceUnavailableError, 503, b"<html>"))
    assert (down.outcome, down.provider_fault) == (Outcome.RETRY, True)
    auth = sendgrid.classify_error(sendgrid_error(http_errors.UnauthorizedError, 401))
    assert (auth.outcome, auth.error_code, auth.provider_fault) == (Outcome.FAILED, "auth_failed", True)
    bad_address = sendgrid.classify_error(sendgrid_error(
        http_errors.BadRequestsError, 400,
        b'{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email"}]}',
    ))
    assert bad_address.outcome == Outcome.INVALID_RECIPIENT
    bad_message = sendgrid.classify_error(sendgrid_error(http_errors.PayloadTooLargeError, 413))
    assert (bad_message.outcome, bad_message.provider_fault) == (Outcome.FAILED, False)


def test_sendgrid_events_say_what_they_do_to_the_delivery():
    effect = SendGridProvider.receipt_effect
    assert effect({"event": "delivered"}).status == "delivered"
    assert effect({"event": "open"}).status == "read"
    assert effect({"event": "click"}).timestamps == ("read_at", "clicked_at")
    hard = effect({"event": "bounce", "type": "bounce", "reason": "550 no such user"})
    assert (hard.status, hard.suppress, hard.error_code) == ("bounced", True, "hard_bounce")
    assert effect({"event": "bounce", "type": "blocked"}).status is None
    assert effect({"event": "dropped", "reason": "Bounced Address"}).suppress is True
    assert effect({"event": "deferred"}).status is None


def test_emails_share_a_batch_when_only_their_personal_links_differ():
    from delivery.providers.base import OutgoingMessage

    def email(person: str, body: str = "Hello", category: str = "social") -> OutgoingMessage:
        link, token = f"https://herald.example/unsubscribe/{person}-token", f"{person}.signed"
        return OutgoingMessage(
            delivery_id=person, channel="email", to=[f"{person}@example.com"], priority="low", attempt=1,
            content={"subject": f"Hi {person}", "body": f"{body} https://herald.example/l/{token}/x\n\nTo stop: {link}",
                     "html_body": f'<a href="{link}">stop</a>'},
            notification_type=category, headers={"List-Unsubscribe": f"<{link}>"},
            personal={"-unsubscribe-": link, "-delivery-": token},
        )

    key = SendGridProvider.batch_key
    assert key(None, email("ada")) == key(None, email("grace"))  # subjects and links are per person
    assert key(None, email("ada")) != key(None, email("grace", body="Goodbye"))
    assert key(None, email("ada")) != key(None, email("grace", category="marketing"))
    assert sendgrid.shared_body(email("ada"))["body"] == "Hello https://herald.example/l/-delivery-/x\n\nTo stop: -unsubscribe-"
