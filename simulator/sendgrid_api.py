"""SendGrid v3 Mail Send: POST /v3/mail/send; and GET /v3/scopes, which sends nothing (a health probe)."""

import base64
import math
import re
import secrets
import time
from dataclasses import dataclass

from simulator.exchange import Incoming, Parsed, Reply, garbage_reply, json_reply, parse_json

BOUNCE_DOMAIN = "@bounce.test"
API_KEY_PREFIX = "SG."
MAX_RECIPIENTS = 1000
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message."

DEFAULT_MESSAGES = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    404: "not found",
    413: "request entity too large",
    429: "too many requests",
    500: "internal error",
}


@dataclass(frozen=True)
class SendGridReceipts:
    """What the event webhook will report for one accepted send."""
    message_id: str
    recipients: list[tuple[str, dict]]  # (email, custom_args merged as SendGrid does)
    categories: list[str]


class SendGridApi:
    name = "sendgrid"

    def parse(self, incoming: Incoming) -> Parsed:
        if incoming.method == "GET":
            return Parsed({}, [])
        mail = parse_json(incoming.body)
        return Parsed(mail, [email for email, _ in _recipients(mail)])

    def handle(self, incoming: Incoming, parsed: Parsed) -> Reply:
        authorization = incoming.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return _errors(401, [_error("authorization required")])
        if not authorization[7:].startswith(API_KEY_PREFIX):  # every SendGrid API key starts with "SG."
            return _errors(401, [_error(DEFAULT_MESSAGES[401])])
        if incoming.method == "GET":
            return json_reply(200, {"scopes": ["mail.send"]})
        mail = parsed.body
        if not isinstance(mail, dict):
            return _errors(400, [_error("Bad Request")])
        problems = _validate(mail)
        if problems:
            return _errors(400, problems)
        message_id = _message_id()
        categories = mail.get("categories") or []
        receipts = SendGridReceipts(message_id, _recipients(mail), list(categories))
        return Reply(202, {"X-Message-Id": message_id}, b"",
                     message_id=message_id, receipts=receipts)

    def resolve_fault(self, status, error, retry_after):
        if status is None:
            raise ValueError("a SendGrid fault needs a status; its error is the message text")
        return status, error

    def fault_reply(self, incoming, status, error, retry_after):
        if status == 429:
            reset = math.ceil(time.time() + (retry_after if retry_after is not None else 1))
            return _errors(429, [_error(error or DEFAULT_MESSAGES[429])], _rate_headers(600, reset))
        headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
        if status in (502, 503, 504):
            # What SendGrid's edge sends when the backend is away: HTML, which `.to_dict` cannot read.
            page = f"<html><body><h1>{status}</h1><p>{error or 'Service Unavailable'}</p></body></html>"
            return Reply(status, {"Content-Type": "text/html", **headers}, page.encode(), error=str(status))
        message = error or DEFAULT_MESSAGES.get(status, "error")
        return _errors(status, [_error(message)], headers)

    def rate_limited_reply(self, incoming, per_second, wait):
        reset = math.ceil(time.time() + wait)
        return _errors(429, [_error(DEFAULT_MESSAGES[429])], _rate_headers(per_second, reset))

    def malformed_reply(self, incoming, status):
        return garbage_reply(status or 202)


def _validate(mail: dict) -> list[dict]:
    problems = []
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problems.append(_error(
            "The personalizations field is required and must have at least one personalization.",
            "personalizations", "personalizations"))
        personalizations = []
    for i, personalization in enumerate(personalizations):
        if not isinstance(personalization, dict):
            problems.append(_error("The personalization must be an object.",
                                   f"personalizations.{i}", "personalizations"))
            continue
        to = personalization.get("to")
        if not isinstance(to, list) or not to:
            problems.append(_error(
                "The to array is required for all personalization objects, and must have at least one "
                "email object with a valid email address.", f"personalizations.{i}.to", "personalizations.to"))
        for kind in ("to", "cc", "bcc"):
            addresses = personalization.get(kind) or []
            for j, address in enumerate(addresses if isinstance(addresses, list) else [addresses]):
                if not _valid_address(address):
                    problems.append(_error("Does not contain a valid address.",
                                           f"personalizations.{i}.{kind}.{j}.email", f"personalizations.{kind}"))
    if len(_recipients(mail)) > MAX_RECIPIENTS:
        problems.append(_error(f"The total number of recipients must be no more than {MAX_RECIPIENTS}.",
                               "personalizations", "personalizations"))
    sender = mail.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        problems.append(_error(
            "The from object must be provided for every email send. It is an object that requires the email "
            'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
            '{"email" : "example@example.com", "name" : "Example Recipient"}', "from.email", "from"))
    elif not _valid_address(sender):
        problems.append(_error("The from email does not contain a valid address.", "from.email", "from"))
    if not mail.get("template_id"):
        every_personalization_has_subject = bool(personalizations) and all(
            isinstance(p, dict) and p.get("subject") for p in personalizations)
        if not mail.get("subject") and not every_personalization_has_subject:
            problems.append(_error(
                "The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined.", "subject", "subject"))
        problems.extend(_content_problems(mail.get("content")))
    return problems


def _content_problems(content) -> list[dict]:
    if not isinstance(content, list) or not content:
        return [_error(
            "Unless a valid template_id is provided, the content parameter is required. There must be at least "
            "one defined content block. We typically suggest both text/plain and text/html blocks are included, "
            "but only one block is required.", "content", "content")]
    problems = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not block.get("type"):
            problems.append(_error("The content type must be provided.", f"content.{i}.type", "content.type"))
        if not isinstance(block, dict) or not isinstance(block.get("value"), str) or not block["value"]:
            problems.append(_error("The content value must be a string at least one character in length.",
                                   f"content.{i}.value", "content.value"))
    return problems


def _recipients(mail) -> list[tuple[str, dict]]:
    """Every to/cc/bcc address with the custom args its events carry (personalization wins)."""
    if not isinstance(mail, dict) or not isinstance(mail.get("personalizations"), list):
        return []
    message_args = mail.get("custom_args") if isinstance(mail.get("custom_args"), dict) else {}
    found = []
    for personalization in mail["personalizations"]:
        if not isinstance(personalization, dict):
            continue
        own_args = personalization.get("custom_args")
        custom_args = {**message_args, **(own_args if isinstance(own_args, dict) else {})}
        for kind in ("to", "cc", "bcc"):
            addresses = personalization.get(kind)
            for address in addresses if isinstance(addresses, list) else []:
                if isinstance(address, dict) and isinstance(address.get("email"), str):
                    found.append((address["email"], custom_args))
    return found


def _valid_address(address) -> bool:
    return isinstance(address, dict) and isinstance(address.get("email"), str) and bool(EMAIL.match(address["email"]))


def _error(message: str, field: str | None = None, help_anchor: str | None = None) -> dict:
    return {"message": message, "field": field, "help": HELP + help_anchor if help_anchor else None}


def _errors(status: int, errors: list[dict], headers: dict | None = None) -> Reply:
    return json_reply(status, {"errors": errors}, headers, error=errors[0]["message"])


def _rate_headers(per_second: float, reset_epoch: int) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(max(1, int(per_second))), "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_epoch)}


def _message_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


def is_bounce_address(email: str) -> bool:
    return email.lower().endswith(BOUNCE_DOMAIN)
