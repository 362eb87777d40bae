import json
import logging

from core.logs import Json, Redact, fields, redact


def record(message: str, *args, **extra) -> logging.LogRecord:
    made = logging.LogRecord("herald.test", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_addresses_and_phone_numbers_are_redacted_from_a_lines_text():
    assert redact("to ada@example.org and +14155550199") == "to [redacted] and [redacted]"
    assert redact("To=%2B14155550199&From=x") == "To=[redacted]&From=x"


def test_the_redaction_keeps_times_and_ids_readable():
    text = "claim 2026-10-05T12:00:01+00:00 of delivery 3f2a9c1e-1b2c-4d5e-8f90-123456789abc"
    assert redact(text) == text


def test_a_line_is_json_with_its_event_fields_and_no_personal_data():
    line = record("provider refused %s", "ada@example.org", **fields(event="delivery_failed", delivery_id=7, channel="email"))
    Redact().filter(line)

    written = json.loads(Json().format(line))

    assert written["message"] == "provider refused [redacted]"
    assert written["event"] == "delivery_failed"
    assert written["delivery_id"] == 7
    assert written["level"] == "INFO" and written["logger"] == "herald.test" and "timestamp" in written
