"""Structured logs: one JSON object per line, events with fields, no personal data.

A log call names its event and passes ids as fields, never pasted into the text:

    log.info("delivery sent", extra=fields(delivery_id=d.pk, notification_id=d.notification_id, channel="sms"))

Every line carries the current trace and span ids when tracing is on (core/tracing.py), so a line
leads to its trace. Addresses, phone numbers, bodies and variables are never logged by Herald;
`Redact` is the net under that rule for text Herald does not write itself (an SDK's exception):
email addresses and phone numbers in a line's text are replaced before it is written, and the
SDK loggers that print requests (Twilio's prints query strings holding numbers) are kept at WARNING.
"""

import logging
import re

from pythonjsonlogger.json import JsonFormatter

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Herald keeps numbers in E.164 (+14155550101); %2B is the plus in a query string.
PHONE = re.compile(r"(\+|%2B)\d{7,15}\b")
REDACTED = "[redacted]"


def fields(**values) -> dict:
    """`extra=` for a log call: ids as strings, so every line's fields have one type each."""
    return {name: (value if value is None or isinstance(value, (int, float, bool)) else str(value)) for name, value in values.items()}


def redact(text: str) -> str:
    return PHONE.sub(REDACTED, EMAIL.sub(REDACTED, text))


class Redact(logging.Filter):
    """Replace email addresses and phone numbers in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                record.msg, record.args = record.getMessage(), None
            except (TypeError, ValueError):
                pass
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class TraceIds(logging.Filter):
    """The current span's trace and span ids on every record (empty strings with tracing off)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from core import tracing

        record.trace_id, record.span_id = tracing.current_ids()
        return True


class Json(JsonFormatter):
    """timestamp, level, logger, message, the event's fields, trace ids; an exception as `exc_info`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "asctime": "timestamp"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        for name in ("trace_id", "span_id"):
            if not log_data.get(name):
                log_data.pop(name, None)
        log_data.pop("color_message", None)  # uvicorn's copy of the message with terminal colours


def config(level: str, json: bool = True) -> dict:
    """The LOGGING setting: JSON lines (or plain text, HERALD_LOG_FORMAT=plain) on stderr, redacted."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "core.logs.Redact"}, "trace": {"()": "core.logs.TraceIds"}},
        "formatters": {
            "json": {"()": "core.logs.Json"},
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json" if json else "plain",
                                 "filters": ["redact", "trace"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # They log requests (query strings with phone numbers, headers) at INFO and DEBUG.
            "twilio.http_client": {"level": "WARNING"},
            "python_http_client": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
            "aioapns": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def use_for_celery(logger: logging.Logger, **kwargs) -> None:
    """Celery sets its own handlers up (`after_setup_logger`): give them Herald's format and filters."""
    from django.conf import settings

    if settings.HERALD_LOG_FORMAT != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(Json())
        handler.addFilter(Redact())
        handler.addFilter(TraceIds())
