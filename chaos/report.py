"""What a scenario did to its notifications, read from Herald's database and the simulator's recordings,
and the violations that fail the run."""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import psycopg

FINAL_NOTIFICATION = ["sent", "delivered", "read", "failed", "canceled"]
FINAL_DELIVERY = ["sent", "delivered", "read", "failed", "bounced", "canceled"]
SENT = {"sent", "delivered", "read"}
# Failures an outage or a rate limit caused: never allowed while the message is within its time to live.
OUTAGE_CODES = {"max_attempts_exceeded", "circuit_open", "rate_limited", "http_503", "http_429", "connection_error",
                "timeout", "expired"}
PROVIDERS = ("twilio", "sendgrid")


class Row(NamedTuple):
    """One notification and (if routing made one) its delivery."""
    user: str
    notification_id: str
    notification_status: str
    delivery_id: str | None
    channel: str | None
    status: str | None
    error_code: str | None
    action: str | None  # unknown_outcome_action


@dataclass
class Scenario:
    key: str  # C1 … C8
    title: str
    prefix: str  # every user of the scenario has an id starting with this
    since: int = 0  # the simulator's last request id before the scenario
    started: float = field(default_factory=time.time)
    fault_ended: float | None = None
    outage_started: float | None = None
    recovered: float | None = None
    skipped: str = ""
    notes: list[str] = field(default_factory=list)
    expectations: list[tuple[bool, str]] = field(default_factory=list)  # reported, do not fail the run
    violations: list[str] = field(default_factory=list)  # fail the run
    figures: dict = field(default_factory=dict)

    def expect(self, ok: bool, text: str) -> None:
        self.expectations.append((ok, text))


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


def delivery_of(record: dict) -> str | None:
    """The Herald delivery a provider request was for (SendGrid custom_args, Twilio's StatusCallback)."""
    body = record.get("body")
    if record["method"] != "POST" or not isinstance(body, dict):
        return None
    if record["provider"] == "sendgrid":
        args = dict(body.get("custom_args") or {})
        for personalization in body.get("personalizations") or []:
            args.update(personalization.get("custom_args") or {})
        return args.get("herald_delivery_id")
    callback = body.get("StatusCallback") or ""
    return (parse_qs(urlsplit(callback).query).get("delivery") or [None])[0]


def measure(connect, control, scenario: Scenario) -> None:
    """Fill in the scenario's figures and violations from the database and the simulator."""
    with connect() as db:
        has_action = db.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'delivery_delivery' "
                                "AND column_name = 'unknown_outcome_action'").fetchone() is not None
        rows = [Row(*row) for row in db.execute(
            f"""SELECT r.external_id, n.id::text, n.status, d.id::text, d.channel, d.status, d.error_code,
                       {"d.unknown_outcome_action" if has_action else "NULL"}
                FROM notifications_notification n JOIN preferences_recipient r ON r.id = n.recipient_id
                LEFT JOIN delivery_delivery d ON d.notification_id = n.id WHERE r.external_id LIKE %s""",
            (scenario.prefix + "%",))]
        delivery_ids = [row.delivery_id for row in rows if row.delivery_id]
        attempts = db.execute("SELECT delivery_id::text, outcome FROM delivery_deliveryattempt "
                              "WHERE delivery_id = ANY(%s::uuid[])", (delivery_ids,)).fetchall()
        dead = dict(db.execute("SELECT delivery_id::text, reason FROM delivery_deadletter "
                               "WHERE delivery_id = ANY(%s::uuid[])", (delivery_ids,)).fetchall())

    deliveries = {row.delivery_id: row for row in rows if row.delivery_id}
    unknown = Counter(delivery_id for delivery_id, outcome in attempts if outcome == "unknown")
    calls, accepted_calls = Counter(), Counter()
    records = [r for provider in PROVIDERS for r in control.requests(provider, since=scenario.since)]
    for record in records:
        delivery_id = delivery_of(record)
        if delivery_id in deliveries:
            calls[delivery_id] += 1
            if record["status"] is not None and 200 <= record["status"] < 300:
                accepted_calls[delivery_id] += 1

    failed = Counter()
    for delivery_id, row in deliveries.items():
        if row.status in ("failed", "bounced"):
            failed[row.error_code or row.status] += 1
            if row.error_code in OUTAGE_CODES or dead.get(delivery_id) in OUTAGE_CODES:
                scenario.violations.append(f"delivery {delivery_id} ({row.channel}) failed by an outage or rate limit: "
                                           f"{row.error_code or '-'} {dead.get(delivery_id, '')}".rstrip())
        if accepted_calls[delivery_id] > 1 and not unknown[delivery_id]:
            scenario.violations.append(f"delivery {delivery_id} ({row.channel}) was accepted by the provider "
                                       f"{accepted_calls[delivery_id]} times with no unknown-outcome attempt")
        if row.status not in FINAL_DELIVERY and row.notification_status in FINAL_NOTIFICATION:
            scenario.violations.append(f"delivery {delivery_id} ({row.channel}) lost: still {row.status} at the deadline")
    for row in {row.notification_id: row for row in rows}.values():
        if row.notification_status not in FINAL_NOTIFICATION:
            scenario.violations.append(f"notification {row.notification_id} lost: still {row.notification_status} "
                                       f"at the deadline")
        elif row.notification_status == "failed" and not row.delivery_id:
            failed["notification:failed"] += 1

    provider_deliveries = [d for d, row in deliveries.items() if row.channel in ("sms", "email")]
    scenario.figures = {
        "accepted": len({row.notification_id for row in rows}),
        "sent": sum(1 for row in deliveries.values() if row.status in SENT),
        "failed": failed,
        "histogram": Counter(calls[d] for d in provider_deliveries),
        "max_calls": max((calls[d] for d in provider_deliveries), default=0),
        "unknown": sum(unknown.values()),
        "actions": Counter(row.action for row in deliveries.values() if row.action) if has_action else None,
        "calls": calls,
        "accepted_calls": accepted_calls,
        "deliveries": deliveries,
        "records": records,
    }


def table_line(scenario: Scenario) -> str:
    if scenario.skipped:
        return f"{scenario.key:<3} {scenario.title:<24} skipped: {scenario.skipped}"
    f = scenario.figures
    failed = " ".join(f"{reason}:{n}" for reason, n in sorted(f["failed"].items())) or "-"
    histogram = " ".join(f"{calls}:{n}" for calls, n in sorted(f["histogram"].items())) or "-"
    if scenario.recovered is None:
        recover = "never"
    else:
        recover = f"{max(0.0, scenario.recovered - (scenario.fault_ended or scenario.started)):.1f}s"
    return (f"{scenario.key:<3} {scenario.title:<24} {f['accepted']:>8} {f['sent']:>5}  {failed:<28} "
            f"{f['max_calls']:>3}  {histogram:<18} {f['unknown']:>7}  {recover:>8}  {len(scenario.violations):>4}")


TABLE_HEADER = (f"{'':<3} {'scenario':<24} {'accepted':>8} {'sent':>5}  {'failed (by reason)':<28} {'max':>3}  "
                f"{'calls/delivery':<18} {'unknown':>7}  {'recover':>8}  {'viol':>4}")


def details(scenario: Scenario) -> list[str]:
    lines = [f"    {note}" for note in scenario.notes]
    actions = scenario.figures.get("actions")
    if actions:
        lines.append("    unknown outcomes handled: " + ", ".join(f"{a} {n}" for a, n in sorted(actions.items())))
    lines += [f"    expect {'ok  ' if ok else 'FAIL'} {text}" for ok, text in scenario.expectations]
    shown = scenario.violations[:5]
    lines += [f"    VIOLATION {text}" for text in shown]
    if len(scenario.violations) > len(shown):
        lines.append(f"    … and {len(scenario.violations) - len(shown)} more violations")
    return lines
