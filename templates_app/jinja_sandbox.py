"""The Jinja2 side of rendering, run only inside a bounded process (core/bounded.py, content_jobs.py).

Templates are written by ops staff and filled with caller-supplied variables, so both sides
are untrusted: the sandbox blocks attribute tricks, StrictUndefined turns a missing variable
into an error instead of an empty string, and HTML bodies are autoescaped. The sandbox cannot
bound time or memory (`{{ 3**100000000 }}`, `{{ 'a' * 10**9 }}`, nested loops), which is why
this module never runs in the web server or a worker: the process around it does.

Imports nothing from Django, so a bounded process starts in a fraction of a second.
"""

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError, dates, numbers
from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

HTML_FIELDS = ("html_body",)
SINGLE_LINE_FIELDS = ("subject", "title")


class OutputTooLarge(Exception):
    pass


def _environment(undefined, html: bool) -> ImmutableSandboxedEnvironment:
    # optimized=False: Jinja2's optimizer folds constant expressions while compiling, so a
    # template like `{{ 3**100000000 }}` would cost its whole price at compile time.
    return ImmutableSandboxedEnvironment(undefined=undefined, autoescape=html, optimized=False)


# The recipient's locale and timezone for the formatting filters, set for each render. The
# bounded process renders one template at a time, so a module-level value is enough.
reader = {"locale": Locale("en"), "timezone": ZoneInfo("UTC")}


def for_reader(locale: str, timezone: str) -> None:
    try:
        reader["locale"] = Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        try:
            reader["locale"] = Locale.parse(locale.split("-")[0])
        except (UnknownLocaleError, ValueError):
            reader["locale"] = Locale("en")
    try:
        reader["timezone"] = ZoneInfo(timezone)
    except (ValueError, KeyError, OSError):
        reader["timezone"] = ZoneInfo("UTC")


def _moment(value) -> datetime:
    """A datetime from what JSON variables carry: ISO 8601 text (naive means UTC) or epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ValueError(f"not a date and time: {value!r}")


def _number(value) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def format_datetime(value, format: str = "medium") -> str:
    return dates.format_datetime(_moment(value), format, tzinfo=reader["timezone"], locale=reader["locale"])


def format_date(value, format: str = "medium") -> str:
    if isinstance(value, str) and len(value) == 10:  # a calendar date has no timezone to convert from
        return dates.format_date(date.fromisoformat(value), format, locale=reader["locale"])
    return dates.format_date(_moment(value).astimezone(reader["timezone"]).date(), format, locale=reader["locale"])


def format_time(value, format: str = "short") -> str:
    return dates.format_time(_moment(value), format, tzinfo=reader["timezone"], locale=reader["locale"])


def format_number(value) -> str:
    return numbers.format_decimal(_number(value), locale=reader["locale"])


def format_currency(value, currency: str) -> str:
    return numbers.format_currency(_number(value), str(currency).upper()[:3], locale=reader["locale"])


def format_percent(value) -> str:
    return numbers.format_percent(_number(value), locale=reader["locale"])


FILTERS = {
    "datetime": format_datetime, "date": format_date, "time": format_time,
    "number": format_number, "currency": format_currency, "percent": format_percent,
}


def _with_filters(environment: ImmutableSandboxedEnvironment) -> ImmutableSandboxedEnvironment:
    environment.filters.update(FILTERS)
    return environment


_ENVIRONMENTS = {
    (strict, html): _with_filters(_environment(StrictUndefined if strict else ChainableUndefined, html))
    for strict in (True, False)
    for html in (True, False)
}


@lru_cache(maxsize=512)
def compile_template(source: str, html: bool, strict: bool = True):
    return _ENVIRONMENTS[(strict, html)].from_string(source)


def syntax_error(source: str, html: bool) -> str | None:
    """A readable syntax error for `source`, or None if it compiles."""
    try:
        compile_template(source, html)
    except TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})" if exc.lineno else str(exc.message)
    return None


def render_part(field: str, source: str, variables: dict, max_chars: int, strict: bool = True) -> str:
    """Render one part, stopping as soon as its output passes `max_chars`."""
    template = compile_template(source, field in HTML_FIELDS, strict)
    chunks, size = [], 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > max_chars:
            raise OutputTooLarge(f"output passed the limit of {max_chars} characters")
        chunks.append(chunk)
    text = "".join(chunks)
    # A line break in a subject would be a header injection (and SMTP refuses it outright).
    return " ".join(text.split()) if field in SINGLE_LINE_FIELDS else text
