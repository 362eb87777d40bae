"""Herald's Prometheus metrics: every metric is defined here, and recorded by one call at the place
its decision is made (docs/architecture.md, "Where each metric is recorded").

Names are `herald_`, base units last, counters end in `_total`. Labels take only small closed
sets (channel, provider, priority, lane, status, error code, outcome): never an id, an address or
content. A value outside its set is recorded as `other`, so a bug cannot grow the series.

HERALD_METRICS=0 turns every recording into a no-op (the bench compares both). The web server's
gunicorn workers share their values through prometheus-client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set up in config/gunicorn.py); a Celery worker, beat and the socket
server are one process each and serve their own registry (config/metrics_http.py).
"""

import os
import re

from prometheus_client import Counter, Gauge, Histogram

from core.queues import CHANNELS, PRIORITIES
from core.vocabulary import ErrorCode

ENABLED = os.environ.get("HERALD_METRICS", "1").strip().lower() not in ("0", "false", "no", "off")

LANES = tuple(PRIORITIES) + tuple(f"{c}.{lane}" for c in CHANNELS for lane in ("urgent", "bulk"))
PROVIDERS = ("sendgrid", "smtp", "twilio", "fcm", "apns", "webhook", "inbox", "sandbox", "")
ERROR_CODES = frozenset(code.value for code in ErrorCode) | {""}
_PROVIDER_DETAIL = re.compile(r"^(http|smtp)_(\d)\d\d$")

# The objectives: a critical notification goes out in under a second, the bulk lanes within minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RENDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
LATENESS_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def closed(value: str, allowed) -> str:
    """`value` if it is one of `allowed`, else "other": a label never takes a value from outside its set."""
    return value if value in allowed else "other"


def error_label(code: str) -> str:
    """An error code as a label: Herald's own codes as they are, provider detail by class (`http_5xx`)."""
    if code in ERROR_CODES:
        return code
    detail = _PROVIDER_DETAIL.match(code)
    return f"{detail.group(1)}_{detail.group(2)}xx" if detail else "other"


def provider_label(name: str) -> str:
    """A provider as a label (push names several, `apns,fcm`: each is known, the pair is too)."""
    return name if name in PROVIDERS or all(part in PROVIDERS for part in name.split(",")) else "other"


def lane_of(channel: str, priority: str) -> str:
    return f"{channel}.{'urgent' if priority in ('critical', 'high') else 'bulk'}"


accepted = Counter("herald_notifications_accepted_total",
                   "Notifications offered to accept, by what became of them: accepted, idempotent_replay, refused; "
                   "deduplicated is counted when routing finds an accepted one repeats a recent message",
                   ["priority", "outcome"])
deliveries_finished = Counter("herald_deliveries_finished_total", "Deliveries that reached an outcome: sent or failed",
                              ["channel", "provider", "status", "error_code"])
retries = Counter("herald_delivery_retries_total",
                  "Attempts that did not send and were put back: kind retry (a failed attempt, backing off) or wait "
                  "(rate limit, open breaker, busy: no attempt used)", ["channel", "provider", "kind", "error_code"])
unknown_outcomes = Counter("herald_delivery_unknown_outcomes_total", "Attempts whose provider answer never came, by what was done",
                           ["channel", "provider", "action"])
dead_letters = Counter("herald_dead_letters_total", "Deliveries given up and dead-lettered", ["channel", "reason"])
provider_call = Histogram("herald_provider_call_duration_seconds", "One provider call (a message, or a batch its API takes)",
                          ["provider", "outcome"], buckets=CALL_BUCKETS)
accept_to_sent = Histogram("herald_accept_to_sent_seconds",
                           "From a notification's accept (or its scheduled time) to its delivery's provider taking it: the SLO",
                           ["priority", "channel"], buckets=LATENCY_BUCKETS)
breaker_refusals = Counter("herald_breaker_refusals_total", "Calls not made because the provider's breaker was open or a call hung",
                           ["provider", "reason"])
rate_limit_waits = Counter("herald_rate_limit_waits_total", "Calls that waited for the provider's shared send rate", ["provider"])
rate_limit_wait_seconds = Counter("herald_rate_limit_wait_seconds_total", "Seconds calls waited for the provider's send rate", ["provider"])
rate_limit_refusals = Counter("herald_rate_limit_refusals_total", "Calls put back because the send rate would have made them wait too long",
                              ["provider"])
render_duration = Histogram("herald_render_duration_seconds", "One render in a bounded process", ["outcome"], buckets=RENDER_BUCKETS)
render_errors = Counter("herald_render_errors_total", "Renders that failed, by the bound broken (template: the template's own error)",
                        ["bound"])
batches_closed = Counter("herald_batches_closed_total", "Batches and digests closed", ["kind", "outcome"])
schedule_firings = Counter("herald_schedule_firings_total", "Schedule occurrences handled", ["outcome"])
schedule_lateness = Histogram("herald_schedule_lateness_seconds", "How late an occurrence was fired after it was due",
                              buckets=LATENESS_BUCKETS)
escalation_steps = Counter("herald_escalation_steps_total", "Escalation steps fired", ["outcome"])
inbox_connections = Gauge("herald_inbox_connections", "Open inbox WebSocket connections in this socket server",
                          multiprocess_mode="livesum")
experiment_exposures = Counter("herald_experiment_exposures_total", "Notifications routed under an experiment", ["holdout"])
takeovers = Counter("herald_claim_takeovers_total", "Rows taken over from a worker that died holding them", ["kind", "lane"])
parked = Counter("herald_rows_parked_total", "Rows parked as killed_its_worker after dying with their workers again and again",
                 ["kind"])
beat_ticks = Gauge("herald_beat_last_tick_timestamp_seconds", "When beat last looked at its schedule (unix time)")


# --- recording, one call per decision ------------------------------------------------------------

def notification_offered(priority: str, outcome: str, count: int = 1) -> None:
    if ENABLED and count:
        accepted.labels(closed(priority, PRIORITIES), outcome).inc(count)


def delivery_finished(channel: str, provider: str, status: str, error_code: str = "") -> None:
    if ENABLED:
        deliveries_finished.labels(closed(channel, CHANNELS), provider_label(provider), status, error_label(error_code)).inc()


def delivery_sent(channel: str, provider: str, priority: str, latency: float | None) -> None:
    """A delivery went out; `latency` from accept (None for one that waited by the person's choice)."""
    if ENABLED:
        channel = closed(channel, CHANNELS)
        deliveries_finished.labels(channel, provider_label(provider), "sent", "").inc()
        if latency is not None:
            accept_to_sent.labels(closed(priority, PRIORITIES), channel).observe(max(0.0, latency))


def delivery_put_back(channel: str, provider: str, waiting: bool, error_code: str) -> None:
    if ENABLED:
        retries.labels(closed(channel, CHANNELS), provider_label(provider), "wait" if waiting else "retry", error_label(error_code)).inc()


def unknown_outcome(channel: str, provider: str, action: str) -> None:
    if ENABLED:
        unknown_outcomes.labels(closed(channel, CHANNELS), provider_label(provider), action).inc()


def dead_lettered(channel: str, reason: str) -> None:
    if ENABLED:
        dead_letters.labels(closed(channel, CHANNELS), reason).inc()


def provider_called(provider: str, outcome: str, seconds: float) -> None:
    if ENABLED:
        provider_call.labels(provider_label(provider), outcome).observe(seconds)


def breaker_refused(provider: str, reason: str) -> None:
    if ENABLED:
        breaker_refusals.labels(provider_label(provider), reason).inc()


def rate_limit_waited(provider: str, seconds: float) -> None:
    if ENABLED and seconds > 0:
        rate_limit_waits.labels(provider_label(provider)).inc()
        rate_limit_wait_seconds.labels(provider_label(provider)).inc(seconds)


def rate_limit_refused(provider: str) -> None:
    if ENABLED:
        rate_limit_refusals.labels(provider_label(provider)).inc()


def rendered(seconds: float, bound: str | None = None) -> None:
    """A render finished in `seconds`; `bound` names what failed it ("" for the template's own error)."""
    if ENABLED:
        render_duration.labels("ok" if bound is None else "error").observe(seconds)
        if bound is not None:
            render_errors.labels(closed(bound or "template", RENDER_BOUNDS)).inc()


RENDER_BOUNDS = ("template", "time", "memory", "output", "size", "recursion", "budget", "crash", "start", "input")


def batch_closed(kind: str, outcome: str, count: int = 1) -> None:
    if ENABLED and count:
        batches_closed.labels(kind, outcome).inc(count)


def schedule_fired(outcome: str, lateness: float | None = None) -> None:
    if ENABLED:
        schedule_firings.labels(outcome).inc()
        if lateness is not None:
            schedule_lateness.observe(max(0.0, lateness))


def escalation_step(outcome: str) -> None:
    if ENABLED:
        escalation_steps.labels(str(outcome)).inc()


def inbox_connected(delta: int) -> None:
    if ENABLED:
        inbox_connections.inc(delta)


def exposed(holdout: bool, count: int = 1) -> None:
    if ENABLED and count:
        experiment_exposures.labels("true" if holdout else "false").inc(count)


def taken_over(kind: str, lane: str, count: int) -> None:
    if ENABLED and count:
        takeovers.labels(kind, closed(lane, LANES)).inc(count)


def parked_rows(kind: str, count: int = 1) -> None:
    if ENABLED and count:
        parked.labels(kind).inc(count)


def beat_ticked(at: float) -> None:
    if ENABLED:
        beat_ticks.set(at)
