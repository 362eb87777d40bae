"""What a scenario did to its notifications, read from Herald's database and the simulator's recordings: the
figures of its table line, and the violations of the README's promises that fail the run."""

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import psycopg

from chaos.traffic import Post

FINAL_NOTIFICATION = ["sent", "delivered", "read", "failed", "canceled", "deduplicated"]
FINAL_DELIVERY = ["sent", "delivered", "read", "failed", "bounced", "canceled"]
SENT = {"sent", "delivered", "read"}
# The one documented way for a valid message to fail in these scenarios: an unknown outcome the category's
# policy will not risk resending (README, Delivery guarantee, case 3). Every other failure, and every
# expiry, is a fault's doing: no scenario comes near a time to live (an hour at least).
WINDOW_POLICY_FAILURES = {"unknown_outcome"}
PROVIDERS = ("twilio", "sendgrid")


class Row(NamedTuple):
    """One notification and (if routing made one) its delivery."""
    user: str
    notification_id: str
    notification_status: str
    notification_reason: str | None  # the reason of its last status change
    delivery_id: str | None
    channel: str | None
    status: str | None
    error_code: str | None
    action: str | None  # unknown_outcome_action


@dataclass(frozen=True)
class Violation:
    promise: str  # the README's promise, as one short sentence
    detail: str


@dataclass
class Figures:
    accepted: int = 0  # notifications Herald holds for the scenario (each 202 and anything else it stored)
    lost: int = 0
    duplicated_inside: int = 0  # messages a provider took twice, each extra take after an unknown outcome
    duplicated_outside: int = 0
    failed: Counter = field(default_factory=Counter)  # by error code
    sent: int = 0
    unknown_attempts: int = 0
    actions: Counter = field(default_factory=Counter)  # unknown_outcome_action
    deliveries: dict[str, Row] = field(default_factory=dict)
    takes: Counter = field(default_factory=Counter)  # delivery id -> requests the provider took (or hung on)
    calls: Counter = field(default_factory=Counter)  # delivery id -> requests the provider received
    unknown: Counter = field(default_factory=Counter)  # delivery id -> attempts recorded `unknown`
    records: list[dict] = field(default_factory=list)  # the simulator's recordings of the scenario


@dataclass
class Scenario:
    key: str  # C1 … C8
    title: str
    prefix: str  # every user of the scenario has an id starting with this
    since: int = 0  # the simulator's last request id before the scenario
    started: float = field(default_factory=time.time)
    fault_started: float | None = None
    fault_ended: float | None = None
    recovered: float | None = None  # every notification final
    posts: list[Post] = field(default_factory=list)
    skipped: str = ""
    notes: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    figures: Figures = field(default_factory=Figures)
    seconds: float = 0.0  # how long the scenario ran, set by the runner

    def violate(self, promise: str, detail: str) -> None:
        self.violations.append(Violation(promise, detail))

    def fault_window(self) -> tuple[float, float]:
        return (self.fault_started or self.started, self.fault_ended or time.time())


def pending(db: psycopg.Connection, prefix: str) -> int:
    """Notifications and deliveries of the scenario not yet in a final state."""
    return db.execute(
        """SELECT (SELECT count(*) FROM notifications_notification n JOIN preferences_recipient r ON r.id = n.recipient_id
                   WHERE r.external_id LIKE %(p)s AND NOT n.status = ANY(%(fn)s))
                + (SELECT count(*) FROM delivery_delivery d JOIN notifications_notification n ON n.id = d.notification_id
                   JOIN preferences_recipient r ON r.id = n.recipient_id
                   WHERE r.external_id LIKE %(p)s AND NOT d.status = ANY(%(fd)s))""",
        {"p": prefix + "%", "fn": FINAL_NOTIFICATION, "fd": FINAL_DELIVERY}).fetchone()[0]


def wait_final(connect, scenario: Scenario, deadline: float) -> bool:
    """Poll until every notification of the scenario is final (recording when), or the deadline passes."""
    while time.time() < deadline:
        try:
            with connect() as db:
                if pending(db, scenario.prefix) == 0:
                    scenario.recovered = time.time()
                    return True
        except psycopg.Error:
            pass  # the database may be down or restarting in this very scenario
        time.sleep(0.5)
    return False


def deliveries_of(record: dict) -> list[str]:
    """The Herald deliveries a provider request was for: SendGrid's custom_args (one per personalization in a
    batch send), Twilio's StatusCallback."""
    body = record.get("body")
    if record["method"] != "POST" or not isinstance(body, dict):
        return []
    if record["provider"] == "sendgrid":
        found = [(body.get("custom_args") or {}).get("herald_delivery_id")]
        found += [(p.get("custom_args") or {}).get("herald_delivery_id") for p in body.get("personalizations") or []]
        return list(dict.fromkeys(d for d in found if d))
    callback = body.get("StatusCallback") or ""
    return (parse_qs(urlsplit(callback).query).get("delivery") or [])[:1]


def taken(record: dict) -> bool:
    """Whether the provider took the request: it said so, or it hung on it, when the sender cannot tell and the
    provider may well have sent it."""
    status = record["status"]
    return (status is not None and 200 <= status < 300) or (status is None and record["timed_out"])


def measure(connect, control, scenario: Scenario) -> None:
    """Fill in the scenario's figures, and the violations any scenario can show: a message lost, failed by the
    fault, or taken twice by its provider outside the unknown-outcome window."""
    with connect() as db:
        rows = [Row(*row) for row in db.execute(
            """SELECT r.external_id, n.id::text, n.status, n.status_history->-1->>'reason', d.id::text, d.channel,
                      d.status, d.error_code, d.unknown_outcome_action
               FROM notifications_notification n JOIN preferences_recipient r ON r.id = n.recipient_id
               LEFT JOIN delivery_delivery d ON d.notification_id = n.id WHERE r.external_id LIKE %s""",
            (scenario.prefix + "%",))]
        delivery_ids = [row.delivery_id for row in rows if row.delivery_id]
        attempts = db.execute("SELECT delivery_id::text, outcome FROM delivery_deliveryattempt "
                              "WHERE delivery_id = ANY(%s::uuid[])", (delivery_ids,)).fetchall()
        dead = dict(db.execute("SELECT delivery_id::text, reason FROM delivery_deadletter "
                               "WHERE delivery_id = ANY(%s::uuid[])", (delivery_ids,)).fetchall())

    figures = scenario.figures
    figures.deliveries = {row.delivery_id: row for row in rows if row.delivery_id}
    notifications = {row.notification_id: row for row in rows}
    figures.unknown = Counter(delivery_id for delivery_id, outcome in attempts if outcome == "unknown")
    figures.records = [r for provider in PROVIDERS for r in control.requests(provider, since=scenario.since)]
    for record in figures.records:
        for delivery_id in deliveries_of(record):
            figures.calls[delivery_id] += 1
            figures.takes[delivery_id] += taken(record)

    answered = {post.notification_id for post in scenario.posts if post.status == 202 and post.notification_id}
    for notification_id in sorted(answered - set(notifications)):
        scenario.violate("nothing accepted is lost", f"notification {notification_id} was answered 202 but is not stored")
    lost = len(answered - set(notifications))
    for row in notifications.values():
        if row.notification_status not in FINAL_NOTIFICATION:
            lost += 1
            scenario.violate("nothing accepted is lost", f"notification {row.notification_id} still "
                                                         f"{row.notification_status} at the deadline")
        elif row.notification_status in ("failed", "canceled") and not row.delivery_id:
            reason = row.notification_reason or row.notification_status
            figures.failed[f"notification:{reason}"] += 1
            scenario.violate("outages and rate limits make messages wait, not fail",
                             f"notification {row.notification_id} {row.notification_status} before any delivery: {reason}")
    for delivery_id, row in figures.deliveries.items():
        if row.status not in FINAL_DELIVERY:
            if row.notification_status in FINAL_NOTIFICATION:
                lost += 1
                scenario.violate("nothing accepted is lost", f"delivery {delivery_id} ({row.channel}) still {row.status} "
                                                             f"at the deadline, its notification {row.notification_status}")
        elif row.status not in SENT:
            code = row.error_code or dead.get(delivery_id) or row.status
            figures.failed[code] += 1
            if code not in WINDOW_POLICY_FAILURES:
                scenario.violate("outages and rate limits make messages wait, not fail",
                                 f"delivery {delivery_id} ({row.channel}) {row.status}: {code}")
        extra = figures.takes[delivery_id] - 1
        if extra > 0 and extra <= figures.unknown[delivery_id]:
            figures.duplicated_inside += 1
        elif extra > 0:
            figures.duplicated_outside += 1
            scenario.violate("sent once, outside the unknown-outcome window",
                             f"delivery {delivery_id} ({row.channel}) taken by its provider {figures.takes[delivery_id]} "
                             f"times after {figures.unknown[delivery_id]} unknown outcomes")

    figures.accepted = len(set(notifications) | answered)
    figures.lost = lost
    figures.sent = sum(1 for row in figures.deliveries.values() if row.status in SENT)
    figures.unknown_attempts = sum(figures.unknown.values())
    figures.actions = Counter(row.action for row in figures.deliveries.values() if row.action)


def api_times_in_fault(scenario: Scenario) -> list[float]:
    """The end-to-end times of the API requests that were open at some moment of the fault."""
    start, end = scenario.fault_window()
    return [post.seconds for post in scenario.posts if post.at <= end and post.answered_at >= start]


TABLE_HEADER = (f"{'':<3} {'scenario':<25} {'accepted':>8} {'lost':>4} {'dup in/out':>10}  {'failed (by reason)':<24} "
                f"{'API p50/max in fault':>20} {'recover':>8} {'viol':>5} {'took':>5}")


def table_line(scenario: Scenario) -> str:
    if scenario.skipped:
        return f"{scenario.key:<3} {scenario.title:<25} skipped: {scenario.skipped}"
    f = scenario.figures
    failed = " ".join(f"{reason}:{n}" for reason, n in sorted(f.failed.items())) or "-"
    times = api_times_in_fault(scenario)
    api = f"{statistics.median(times):.2f}/{max(times):.2f}s" if times else "-"
    recover = "never" if scenario.recovered is None else \
        f"{max(0.0, scenario.recovered - (scenario.fault_ended or scenario.started)):.1f}s"
    duplicated = f"{f.duplicated_inside}/{f.duplicated_outside}"
    return (f"{scenario.key:<3} {scenario.title:<25} {f.accepted:>8} {f.lost:>4} {duplicated:>10}  {failed:<24} "
            f"{api:>20} {recover:>8} {len(scenario.violations):>5} {scenario.seconds:>4.0f}s")


def details(scenario: Scenario, examples: int = 3) -> list[str]:
    """The scenario's notes, then its violations grouped by promise, with a few examples of each."""
    lines = [f"    {note}" for note in scenario.notes]
    actions = scenario.figures.actions
    if actions:
        lines.append("    unknown outcomes handled: " + ", ".join(f"{a} {n}" for a, n in sorted(actions.items())))
    by_promise: dict[str, list[str]] = {}
    for violation in scenario.violations:
        by_promise.setdefault(violation.promise, []).append(violation.detail)
    for promise, found in by_promise.items():
        lines.append(f"    VIOLATION {promise}: {len(found)}")
        lines += [f"        {detail}" for detail in found[:examples]]
        if len(found) > examples:
            lines.append(f"        … and {len(found) - examples} more")
    return lines
