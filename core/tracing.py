"""Traces with OpenTelemetry: off unless the standard OTEL_* variables turn them on.

    OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318   (OTLP over HTTP)
    OTEL_TRACES_EXPORTER=console [HERALD_TRACES_FILE=/path]                        (JSON, one span a line)

Django, Celery, psycopg, Redis and the HTTP clients the provider SDKs use (requests, urllib,
urllib3) are instrumented by their maintained instrumentations. Queue messages carry no rows, so
a notification's trace travels on its row: accept stores the W3C `traceparent` of the request's
span on the notification, and the work of a chunk (many notifications routed or sent at once)
is recorded under each notification's own trace — a span per notification routed, and each
provider call inside a span of its notification's trace (a batch call: a span linked to each).
"""

import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext

ENABLED = False
_tracer = None
_lock = threading.Lock()
_propagator = None


def wanted() -> bool:
    """Whether the environment asks for traces (the standard variables; OTEL_SDK_DISABLED wins)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup(service: str = "herald") -> bool:
    """Set up the SDK and the instrumentations once per process, if the environment asks; whether on."""
    global ENABLED, _tracer, _propagator
    if ENABLED or not wanted():
        return ENABLED
    with _lock:
        if ENABLED:
            return True
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service}))
        provider.add_span_processor(BatchSpanProcessor(_exporter()))
        trace.set_tracer_provider(provider)
        _instrument()
        _tracer = trace.get_tracer("herald")
        _propagator = TraceContextTextMapPropagator()
        ENABLED = True
    return True


def _exporter():
    kind = (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")[0].strip().lower()
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        path = os.environ.get("HERALD_TRACES_FILE")
        out = open(path, "a", buffering=1) if path else None  # noqa: SIM115 - open for the process's life
        return ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n") if out else ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _instrument() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib import URLLibInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    for instrumentor in (DjangoInstrumentor(), CeleryInstrumentor(), RedisInstrumentor(), RequestsInstrumentor(),
                         URLLibInstrumentor(), URLLib3Instrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    psycopg = PsycopgInstrumentor()
    if not psycopg.is_instrumented_by_opentelemetry:
        psycopg.instrument(enable_commenter=False)  # no SQL comments: they would defeat prepared statements


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" with tracing off, or outside any span)."""
    if not ENABLED:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def current_ids() -> tuple[str, str]:
    """(trace id, span id) of the current span, as hex; empty strings with tracing off or outside a span."""
    if not ENABLED:
        return "", ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _context(traceparent: str):
    return _propagator.extract({"traceparent": traceparent}) if traceparent else None


def _link(traceparent: str):
    from opentelemetry import trace

    context = trace.get_current_span(_context(traceparent)).get_span_context()
    return trace.Link(context) if context.is_valid else None


def in_trace(name: str, traceparent: str, **attributes):
    """A span under the notification's trace (the one its accept started), current while it lasts,
    linked to the span that is current now (the chunk's task); a no-op with tracing off."""
    if not ENABLED or not traceparent:
        return nullcontext()
    from opentelemetry import trace

    here = trace.get_current_span().get_span_context()
    return _tracer.start_as_current_span(name, context=_context(traceparent), attributes=_clean(attributes),
                                         links=[trace.Link(here)] if here.is_valid else None)


def in_traces(traceparents: list[str], fn: Callable, name: str = "herald.provider_call", **attributes) -> Callable:
    """`fn`, run inside a span of the notifications' trace: the notification's own trace for one,
    else a span linked to each (a batch request sends many notifications at once)."""
    if not ENABLED:
        return fn
    traceparents = [t for t in traceparents if t]
    from opentelemetry import context as otel_context

    here = otel_context.get_current()

    def traced(*args, **kwargs):
        token = otel_context.attach(here)  # fn runs on another thread: keep the chunk's span as the link's source
        try:
            if len(traceparents) == 1:
                with in_trace(name, traceparents[0], **attributes):
                    return fn(*args, **kwargs)
            links = [link for link in map(_link, traceparents[:128]) if link is not None]
            with _tracer.start_as_current_span(name, links=links, attributes=_clean({**attributes, "herald.messages": len(traceparents)})):
                return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return traced


def record_each(name: str, items: list[tuple[str, dict]], started_ns: int) -> None:
    """One span per notification of a chunk, under its own trace (traceparent, attributes), from
    `started_ns` to now, linked to the current span: what the chunk did for each of them."""
    if not ENABLED:
        return
    from opentelemetry import trace

    here = trace.get_current_span().get_span_context()
    links = [trace.Link(here)] if here.is_valid else None
    for traceparent, attributes in items:
        if traceparent:
            span = _tracer.start_span(name, context=_context(traceparent), attributes=_clean(attributes), links=links,
                                      start_time=started_ns)
            span.end()


def now_ns() -> int:
    return time.time_ns()


def annotate(**attributes) -> None:
    """Attributes on the current span (the accept request's: the notification's id)."""
    if ENABLED:
        from opentelemetry import trace

        trace.get_current_span().set_attributes(_clean(attributes))


@contextmanager
def span(name: str, **attributes):
    """A child span of the current one (nothing with tracing off)."""
    if not ENABLED:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


def _clean(attributes: dict) -> dict:
    return {f"herald.{k}" if "." not in k else k: (v if isinstance(v, (str, bool, int, float)) else str(v))
            for k, v in attributes.items() if v is not None}


def flush() -> None:
    if ENABLED:
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()
