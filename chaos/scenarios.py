"""The scenarios, C1-C8. Each creates its own people (user ids starting with its prefix), injects one kind of
fault, drives traffic through Herald's API, waits for every notification to reach a final state (bounded by a
deadline), and records a violation for every promise of the README that the fault broke."""

import socket
import statistics
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import psycopg
import redis
import requests

from bench.harness import free_port, percentile
from chaos.promises import check_answers, check_outage, describe
from chaos.report import Scenario, deliveries_of, measure, wait_final
from chaos.stack import Herald, KilledWorker, Servers, SimulatorProcess, herald_env, open_marketing
from chaos.traffic import Api, BreakerWatch, Pacer, ReadyPoller, send_all

TYPES = ("security", "marketing")  # critical → urgent lane, low → bulk lane
RABBITMQ = ("127.0.0.1", 5672)
SETTLE_SECONDS = 90  # after its fault, a scenario's notifications are final by then, or counted lost
CLAIM_MOVE_SECONDS = 10  # a killed worker's claims move again within this long of its restart
CLAIM_WATCH_SECONDS = 30  # how long after the restart the harness watches for them
UNMOVED = float("inf")


@dataclass
class Run:
    """What every scenario works with."""
    servers: Servers
    simulator: SimulatorProcess
    herald: Herald
    api: Api

    @property
    def control(self):
        return self.simulator.control


def start_api(herald: Herald) -> Api:
    open_marketing(herald)
    api = Api(herald.base_url, herald.manage("create_api_key", "--name", "chaos").strip().splitlines()[-1])
    api.create_templates()
    return api


def begin(run: Run, key: str, title: str, people: int) -> tuple[Scenario, list[str]]:
    """A scenario with `people` users of its own (phone +1415555<digit><nnn>)."""
    scenario = Scenario(key, title, f"{key.lower()}-")
    users = [f"{scenario.prefix}{n}" for n in range(people)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: run.api.put_user(users[n], phone_of(key, n)), range(people)))
    # Request ids count up from 1 across providers, and nothing here resets the simulator.
    scenario.since = sum(tally.get("requests", 0) for tally in run.control.stats().values())
    scenario.started = time.time()
    return scenario, users


def phone_of(key: str, n: int) -> str:
    return f"+1415555{key[1]}{n:03d}"


def mixed(users: list[str], channels: tuple[str, ...]):
    """Message n of a steady mix: both lanes (security, marketing) on every channel."""
    return lambda n: (users[n % len(users)], TYPES[n % 2], channels[n // 2 % len(channels)])


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def finish(run: Run, scenario: Scenario, deadline: float, connect=None) -> None:
    """Wait for every notification to be final (or the deadline), then measure and check what any scenario can
    break: lost or failed messages, duplicates outside the window, and the API's answers."""
    connect = connect or run.herald.database
    wait_final(connect, scenario, deadline)
    measure(connect, run.control, scenario)
    check_answers(scenario, scenario.posts)


def attempt_codes(run: Run, scenario: Scenario, since: float) -> Counter:
    """"outcome:error_code" (or the outcome alone) of the scenario's attempts started after `since`."""
    with run.herald.database() as db:
        rows = db.execute("""SELECT a.outcome, a.error_code FROM delivery_deliveryattempt a
            WHERE a.delivery_id = ANY(%s::uuid[]) AND a.started_at >= to_timestamp(%s)""",
                          (list(scenario.figures.deliveries), since)).fetchall()
    return Counter(f"{outcome or 'running'}:{code}" if code else outcome or "running" for outcome, code in rows)


# ---------------------------------------------------------------------------------------------------- C1


class Claim(NamedTuple):
    kind: str  # delivery or notification
    id: str
    claimed_by: str
    pid: str


CLAIMS_SQL = """
SELECT 'delivery', id::text, claimed_by, split_part(claimed_by, ':', 2) FROM delivery_delivery
 WHERE status = 'sending' AND split_part(claimed_by, ':', 2) = ANY(%(pids)s)
UNION ALL
SELECT 'notification', id::text, claimed_by, split_part(claimed_by, ':', 2) FROM notifications_notification
 WHERE status = 'routing' AND split_part(claimed_by, ':', 2) = ANY(%(pids)s)
"""  # core/liveness.claimer_id: "host:pid:started_ms"
STILL_HELD_SQL = """
SELECT id::text FROM delivery_delivery WHERE id = ANY(%(deliveries)s::uuid[]) AND status = 'sending'
   AND claimed_by = ANY(%(claimers)s)
UNION ALL
SELECT id::text FROM notifications_notification WHERE id = ANY(%(notifications)s::uuid[]) AND status = 'routing'
   AND claimed_by = ANY(%(claimers)s)
"""


def claims_of(run: Run, pids: list[int]) -> list[Claim]:
    with run.herald.database() as db:
        return [Claim(*row) for row in db.execute(CLAIMS_SQL, {"pids": [str(pid) for pid in pids]})]


def watch_claims(run: Run, claims: list[Claim], until: float) -> dict[str, float]:
    """When each claim moved (its row left the killed claimer's hands), polled four times a second until all
    moved or `until`; UNMOVED for the rest."""
    moved: dict[str, float] = {}
    query = {"deliveries": [c.id for c in claims if c.kind == "delivery"],
             "notifications": [c.id for c in claims if c.kind == "notification"],
             "claimers": sorted({c.claimed_by for c in claims})}
    while len(moved) < len(claims) and time.time() < until:
        with run.herald.database() as db:
            held = {row[0] for row in db.execute(STILL_HELD_SQL, query)}
        now = time.time()
        for claim in claims:
            if claim.id not in held:
                moved.setdefault(claim.id, now)
        time.sleep(0.25)
    return {claim.id: moved.get(claim.id, UNMOVED) for claim in claims}


def wait_for_claims(run: Run, deadline: float) -> list[Claim]:
    """The delivery workers' claims, once each holds some (or at the deadline): a kill must catch work in hand."""
    while True:
        pids = {str(pid) for pid in run.herald.worker_pids().values()}
        claims = claims_of(run, [int(pid) for pid in pids])
        if {claim.pid for claim in claims} >= pids or time.time() >= deadline:
            return claims
        time.sleep(0.1)


def worker_kills(run: Run, rounds: int = 2) -> Scenario:
    """SIGKILL both lane workers while they hold claims, under the production lease (120 s): each claim must
    move again within 10 s of its worker's restart, by liveness. Two rounds, fewer than the takeovers
    (HERALD_POISON_TAKEOVERS, 3) that would park a message as one that kills its workers."""
    scenario, users = begin(run, "C1", "worker kills (lease 120s)", 60)
    # Providers answering in 1 s keep about ten deliveries in flight at 10 a second.
    faults = [run.control.add_fault(provider, latency_ms=1000) for provider in ("twilio", "sendgrid")]
    sender = Pacer(run.api, scenario.key, mixed(users, ("sms", "email")), per_second=10, limit=600)
    try:
        next_kill = scenario.started + 5
        for round_number in range(1, rounds + 1):
            sleep_until(next_kill)
            wait_for_claims(run, time.time() + 10)
            killed = run.herald.kill_workers()
            scenario.fault_started = scenario.fault_started or time.time()
            claims = claims_of(run, [pid for worker in killed for pid in worker.group])
            how = run.herald.restore_workers(killed)
            restarted = max(worker.restarted_at or time.time() for worker in killed)
            moved = watch_claims(run, claims, restarted + CLAIM_WATCH_SECONDS)
            check_claims_moved(scenario, round_number, killed, claims, moved, how)
            scenario.fault_ended = restarted
            next_kill = time.time() + 4
    finally:
        scenario.posts = sender.stop()
        for fault in faults:
            run.control.remove_fault(fault)
    scenario.notes.insert(0, f"API: {describe(scenario.posts)}")
    finish(run, scenario, scenario.fault_ended + 120 + 30)  # the lease and a margin: late is not lost
    return scenario


def check_claims_moved(scenario: Scenario, round_number: int, killed: list[KilledWorker], claims: list[Claim],
                       moved: dict[str, float], how: str) -> None:
    restarted = {str(pid): worker for worker in killed for pid in worker.group}
    delays = []
    for claim in claims:
        worker = restarted[claim.pid]
        delay = moved[claim.id] - (worker.restarted_at or worker.killed_at)
        delays.append(delay)
        if delay > CLAIM_MOVE_SECONDS:
            scenario.violate(f"a killed worker's claims move within {CLAIM_MOVE_SECONDS} s of its restart",
                             f"kill {round_number}: {claim.kind} {claim.id} of {worker.name} "
                             + ("still held" if delay == UNMOVED else f"moved {delay:.1f}s")
                             + " after the restart")
    if how != "supervisor":
        scenario.violate("make run restarts a worker that dies", f"kill {round_number}: the harness had to ({how})")
    counts = Counter(claim.kind for claim in claims)
    back = ", ".join(f"{w.name} {w.pid} back in {(w.restarted_at or w.killed_at) - w.killed_at:.1f}s" for w in killed)
    finite = [delay for delay in delays if delay != UNMOVED]
    moved_text = (f"moved p50 {statistics.median(finite):.1f}s max {max(finite):.1f}s after the restart"
                  if finite else "none moved")
    unmoved = len(delays) - len(finite)
    scenario.notes.append(f"kill {round_number}: SIGKILL holding {counts['delivery']} deliveries and "
                          f"{counts['notification']} notifications ({back}, by the {how}); {moved_text}"
                          + (f"; {unmoved} still held {CLAIM_WATCH_SECONDS}s after it" if unmoved else ""))
    if not claims:
        scenario.notes.append(f"kill {round_number}: the workers held no claims, so it proves nothing")


# ---------------------------------------------------------------------------------------------------- C2


def answer_lost(run: Run) -> Scenario:
    """The provider takes 10 messages and its answers never come: each is an unknown outcome; an SMS is found
    through Twilio's message list and not sent again, an email is sent again (the receiver collapses it)."""
    scenario, users = begin(run, "C2", "answer lost", 20)
    lost = [(users[n], TYPES[n >= 3], "sms") for n in range(6)] + [(users[6 + n], TYPES[n >= 2], "email") for n in range(4)]
    normal = [(users[10 + n], TYPES[n % 2], ("sms", "email")[n // 5]) for n in range(10)]
    faults = [run.control.add_fault("twilio", answer_lost=True, count=1, match=phone_of("C2", users.index(user)))
              if channel == "sms" else run.control.add_fault("sendgrid", answer_lost=True, count=1, match=f"{user}@")
              for user, _, channel in lost]
    try:
        scenario.fault_started = time.time()
        scenario.posts = send_all(run.api, scenario.key, lost + normal)
        scenario.fault_ended = time.time()
        finish(run, scenario, scenario.fault_ended + SETTLE_SECONDS)
    finally:
        for fault in faults:
            run.control.remove_fault(fault)

    figures = scenario.figures
    lost_answers = {delivery_id: record["provider"] for record in figures.records if record["answer_lost"]
                    for delivery_id in deliveries_of(record)}
    lookups = sum(1 for record in figures.records if record["provider"] == "twilio" and record["method"] == "GET")
    scenario.notes.append(f"answers lost: {len(lost_answers)} of {len(lost)} planned; Twilio list API calls: {lookups}")
    for delivery_id, provider in sorted(lost_answers.items(), key=lambda item: item[1]):
        row = figures.deliveries.get(delivery_id)
        if row is None:
            continue
        taken = figures.takes[delivery_id]
        scenario.notes.append(f"{provider:<8} {row.status:<9} action={row.action or '-':<22} taken {taken}x "
                              f"({figures.calls[delivery_id]} calls) error={row.error_code or '-'}")
        if not figures.unknown[delivery_id]:
            scenario.violate("a lost answer is recorded as an unknown outcome", f"{provider} delivery {delivery_id}")
        if provider == "twilio" and (row.action != "found_at_provider" or taken != 1):
            scenario.violate("an SMS whose answer was lost is found through Twilio's message list, not sent again",
                             f"delivery {delivery_id}: action {row.action or '-'}, taken {taken}x, {row.status}")
    return scenario


# ---------------------------------------------------------------------------------------------------- C3


def sendgrid_outage(run: Run, outage: float = 45) -> Scenario:
    """SendGrid answers 503 to everything for 45 s: the emails wait, and all go out once it is back."""
    scenario, users = begin(run, "C3", f"SendGrid 503 for {outage:.0f}s", 50)
    fault = run.control.add_fault("sendgrid", status=503)
    scenario.fault_started = time.time()
    try:
        scenario.posts = send_all(run.api, scenario.key, [(user, TYPES[n % 2], "email") for n, user in enumerate(users)])
        sleep_until(scenario.fault_started + outage)
    finally:
        run.control.remove_fault(fault)
    scenario.fault_ended = time.time()
    finish(run, scenario, scenario.fault_ended + SETTLE_SECONDS)
    answered_503 = sum(1 for record in scenario.figures.records if record["status"] == 503)
    scenario.notes.append(f"API: {describe(scenario.posts)}; SendGrid answered 503 {answered_503} times")
    return scenario


# ---------------------------------------------------------------------------------------------------- C4


def twilio_rate_limit(run: Run, per_second: float = 5, count: int = 800, offered: float = 10) -> Scenario:
    """Twilio allows 5 SMS a second and answers 429 above it; 800 SMS are offered at 10 a second, so most of
    them must wait (about 160 s in all) and none may fail."""
    scenario, users = begin(run, "C4", f"{count} SMS, Twilio {per_second:.0f}/s", 50)
    run.control.set_rate_limit("twilio", per_second)
    try:
        scenario.fault_started = scenario.started
        sender = Pacer(run.api, scenario.key, mixed(users, ("sms",)), per_second=offered, limit=count)
        scenario.posts = sender.stop(drain=True)
        # The limit stays; what is left to recover from is the backlog the last message joined.
        scenario.fault_ended = scenario.posts[-1].answered_at if scenario.posts else time.time()
        finish(run, scenario, scenario.started + count / per_second + SETTLE_SECONDS)
    finally:
        run.control.set_rate_limit("twilio", None)
    records = [r for r in scenario.figures.records if r["provider"] == "twilio" and r["method"] == "POST"]
    taken = sorted(r["time"] for r in records if r["status"] == 201)
    refused = sum(1 for r in records if r["status"] == 429)
    elapsed = (taken[-1] - scenario.started) if taken else float("nan")
    scenario.notes.append(f"API: {describe(scenario.posts)}")
    scenario.notes.append(f"Twilio answered 429 {refused} times; {len(taken)} SMS taken; first send to last SMS taken "
                          f"{elapsed:.0f}s (the limit allows {count / per_second:.0f}s at best); recovery counts from "
                          f"the last SMS offered")
    return scenario


# ---------------------------------------------------------------------------------------------------- C5, C6


def postgres_outage(run: Run, outage: float = 20) -> Scenario:
    """PostgreSQL stopped for 20 s (a fast shutdown: every connection cut), then started on the same data."""
    def mend() -> float:
        run.servers.start_postgres()
        return wait_answering(lambda: run.herald.database().close(), psycopg.Error)

    return outage_under_load(run, "C5", f"PostgreSQL stopped {outage:.0f}s", "PostgreSQL",
                             run.servers.stop_postgres, mend, outage)


def redis_stall(run: Run, stall: float = 40) -> Scenario:
    """Redis frozen (SIGSTOP) for 40 s. Also: the breakers live in Redis, and the connection errors that
    follow its return are not the providers' failures, so no breaker may open."""
    client = redis.Redis.from_url(run.herald.env["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1)

    def mend() -> float:
        run.servers.thaw_redis()
        return wait_answering(client.ping, redis.RedisError)

    try:
        return outage_under_load(run, "C6", f"Redis SIGSTOP {stall:.0f}s", "Redis", run.servers.freeze_redis, mend, stall)
    finally:
        client.close()


def wait_answering(probe, errors, timeout: float = 60) -> float:
    """When `probe` first succeeds: the moment the dependency is back."""
    deadline = time.time() + timeout
    while True:
        try:
            probe()
            return time.time()
        except errors:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def outage_under_load(run: Run, key: str, title: str, what: str, break_it, mend_it, seconds: float) -> Scenario:
    """Send 4 a second (SMS and email, both lanes) while `what` is away for `seconds`: the API and readiness
    must answer quickly and honestly throughout, requests succeed again 1 s after it is back, and nothing is
    lost or failed. Every provider is healthy, so no breaker may open either."""
    scenario, users = begin(run, key, title, 20)
    breakers = BreakerWatch(run.herald.env["REDIS_URL"])
    poller = ReadyPoller(run.herald)
    sender = Pacer(run.api, scenario.key, mixed(users, ("sms", "email")), per_second=4, limit=400)
    try:
        sleep_until(scenario.started + 5)  # some ordinary traffic first
        scenario.fault_started = time.time()
        break_it()
        sleep_until(scenario.fault_started + seconds)
    finally:
        mending = time.time()  # from here it may answer again at any moment, before mend_it() returns
        scenario.fault_ended = mend_it()
    sleep_until(scenario.fault_ended + 10)  # and some after
    scenario.posts, answers = sender.stop(), poller.stop()
    try:
        finish(run, scenario, scenario.fault_ended + SETTLE_SECONDS)
    finally:
        openings = breakers.stop()
    check_outage(scenario, what, scenario.fault_started, scenario.fault_ended, answers, mending)
    check_no_breaker_opened(run, scenario, what, openings, breakers.most_failures)
    return scenario


def check_no_breaker_opened(run: Run, scenario: Scenario, what: str, openings: list[tuple[str, float]],
                            most_failures: dict[str, int]) -> None:
    promise = f"no provider's breaker opens while only {what} failed"
    for provider, seen in openings:
        scenario.violate(promise, f"{provider}'s breaker open, seen {seen - scenario.fault_ended:+.1f}s from {what}'s return")
    codes = attempt_codes(run, scenario, scenario.fault_started)
    skipped = sum(n for code, n in codes.items() if code.endswith(":circuit_open"))
    if skipped and not openings:
        scenario.violate(promise, f"{skipped} attempts skipped as circuit_open")
    errors = {code: n for code, n in codes.items() if code != "sent"}
    scenario.notes.append(f"breakers: {len(openings)} openings, {skipped} attempts skipped as circuit_open; most failures "
                          f"in a row {most_failures or '-'}; attempts not sent since the outage began: "
                          f"{' '.join(f'{k} {n}' for k, n in sorted(errors.items())) or '-'}")


# ---------------------------------------------------------------------------------------------------- C7


# What the issue's own probe used: a provider answering in 200 ms, so about one email is in flight at 5 a second.
HANG_LATENCY_MS = 200
# The target: at most the calls in flight when the hang began are resent, and no more than this.
HANG_RESENDS_ALLOWED = 5


def sendgrid_hang(run: Run, before: float = 15, hang: float = 50) -> Scenario:
    """SendGrid (answering in 200 ms) hangs for 50 s under 5 emails a second while SMS go out at 3 a
    second. At most the emails in flight when the hang began (and no more than 5) may be sent twice, and
    SMS keep their pace."""
    scenario, users = begin(run, "C7", f"SendGrid hang {hang:.0f}s vs SMS", 40)
    latency = run.control.add_fault("sendgrid", latency_ms=HANG_LATENCY_MS)
    sms = Pacer(run.api, scenario.key, lambda n: (users[n % 30], TYPES[n % 2], "sms"), per_second=3, limit=1000)
    emails = Pacer(run.api, scenario.key, lambda n: (users[30 + n % 10], TYPES[n % 2], "email"), per_second=5, limit=1000)
    breakers = BreakerWatch(run.herald.env["REDIS_URL"])
    hung = None
    try:
        sleep_until(scenario.started + before)
        scenario.fault_started = time.time()  # a request that arrived before this was in flight when the hang began
        hung = run.control.add_fault("sendgrid", timeout=True)
        sleep_until(scenario.fault_started + hang)
    finally:
        if hung:
            run.control.remove_fault(hung)
        scenario.fault_ended = time.time()
        scenario.posts = sorted(sms.stop() + emails.stop(), key=lambda post: post.at)
    try:
        finish(run, scenario, scenario.fault_ended + SETTLE_SECONDS)
    finally:
        run.control.remove_fault(latency)
        openings = breakers.stop()
    check_hang_resends(scenario)
    check_sms_pace(run, scenario)
    codes = attempt_codes(run, scenario, scenario.fault_started)
    scenario.notes.append(f"SendGrid's breaker opened {len(openings)} times (allowed: SendGrid did fail); attempts "
                          f"since the hang began: {' '.join(f'{code} {n}' for code, n in sorted(codes.items()))}")
    return scenario


def check_hang_resends(scenario: Scenario) -> None:
    """Each email taken twice or more counts as resent; at most as many as SendGrid had in hand (in flight)
    when the hang began may be."""
    figures, start = scenario.figures, scenario.fault_started
    emails = {d for d, row in figures.deliveries.items() if row.channel == "email"}
    hung = [r for r in figures.records if r["provider"] == "sendgrid" and r["timed_out"] and r["status"] is None]
    in_flight = {d for r in hung if r["time"] < start for d in deliveries_of(r)} & emails
    sent_into_hang = {d for r in hung if r["time"] >= start for d in deliveries_of(r)} & emails
    resent = {d for d in emails if figures.takes[d] >= 2}
    scenario.notes.append(f"emails in flight when the hang began: {len(in_flight)}; sent into the hang: "
                          f"{len(sent_into_hang)} (in {len(hung)} hung requests); resent: {len(resent)}, of which "
                          f"{len(resent & in_flight)} were in flight at its start")
    allowed = max(len(in_flight), HANG_RESENDS_ALLOWED)
    beyond = sorted(resent - in_flight, key=lambda d: -figures.takes[d])
    for delivery_id in beyond[:max(0, len(resent) - allowed)]:
        scenario.violate(f"during a provider hang, at most the emails in flight when it began (and no more than "
                         f"{HANG_RESENDS_ALLOWED}) are sent again",
                         f"email {delivery_id} taken {figures.takes[delivery_id]} times "
                         f"({len(resent)} resent, {len(in_flight)} in flight at the start)")


def check_sms_pace(run: Run, scenario: Scenario) -> None:
    """README: a slow or hanging provider cannot stop another channel. SMS must go out during the hang at
    80 % or more of their pace before it."""
    start, end = scenario.fault_started, scenario.fault_ended
    taken = [r["time"] for r in scenario.figures.records if r["provider"] == "twilio" and r["status"] == 201]
    before = sum(1 for t in taken if scenario.started + 2 <= t < start) / max(1.0, start - scenario.started - 2)
    during = sum(1 for t in taken if start <= t < end) / max(1.0, end - start)
    with run.herald.database() as db:
        rows = db.execute("""SELECT extract(epoch FROM n.created_at), extract(epoch FROM d.sent_at - n.created_at)
            FROM delivery_delivery d JOIN notifications_notification n ON n.id = d.notification_id
            JOIN preferences_recipient r ON r.id = n.recipient_id
            WHERE r.external_id LIKE %s AND d.channel = 'sms' AND d.sent_at IS NOT NULL""", (scenario.prefix + "%",)).fetchall()
    latency_before = [float(s) for t, s in rows if float(t) < start]
    latency_during = [float(s) for t, s in rows if start <= float(t) < end]
    scenario.notes.append(f"SMS taken by Twilio: {before:.2f}/s before, {during:.2f}/s during the hang (offered 3/s); "
                          f"accept→sent p50/p95 {percentile(latency_before, 50):.1f}/{percentile(latency_before, 95):.1f}s "
                          f"before, {percentile(latency_during, 50):.1f}/{percentile(latency_during, 95):.1f}s during")
    if during < 0.8 * before:
        scenario.violate("a hanging provider cannot stop another channel",
                         f"SMS went out at {during:.2f}/s during the SendGrid hang, {before:.2f}/s before")


# ---------------------------------------------------------------------------------------------------- C8


def rabbitmq_readiness(run: Run) -> Scenario:
    """A stack on RabbitMQ instead of Redis as its broker: ready, and delivering. Stops the main stack (two do not
    fit on two cores), so it runs last."""
    scenario = Scenario("C8", "RabbitMQ broker", "c8-")
    try:
        socket.create_connection(RABBITMQ, timeout=2).close()
    except OSError as error:
        scenario.skipped = f"RabbitMQ is not reachable on {RABBITMQ[0]}:{RABBITMQ[1]} ({error})"
        return scenario
    run.herald.stop()
    vhost = own_vhost()
    scenario.notes.append(f"broker amqp://guest@127.0.0.1:5672/{vhost} "
                          f"({'a vhost of its own' if vhost != '/' else 'the default vhost: rabbitmqctl unavailable'})")
    port = free_port()
    broker = f"amqp://guest:guest@127.0.0.1:5672/{'' if vhost == '/' else vhost}"
    herald = Herald("amqp", herald_env("amqp", run.servers, run.simulator, port, 1, CELERY_BROKER_URL=broker))
    try:
        herald.start()
        status, seconds = herald.health()
        if status != 200:
            body = requests.get(herald.base_url + "/health/ready", timeout=10).text
            scenario.violate("/health/ready checks the broker actually configured", f"{status} in {seconds:.2f}s: {body[:300]}")
        stack = Run(run.servers, run.simulator, herald, start_api(herald))
        stack.api.put_user("c8-0", phone_of("C8", 0))
        scenario.since = sum(tally.get("requests", 0) for tally in run.control.stats().values())
        scenario.started = time.time()
        scenario.posts = [stack.api.notify("c8-0", "security", "sms", "C8 over RabbitMQ")]
        scenario.notes.append(f"/health/ready {status} in {seconds:.2f}s; API: {describe(scenario.posts)}")
        finish(stack, scenario, time.time() + 40)
        if scenario.figures.sent != 1:
            scenario.violate("Herald delivers through a RabbitMQ broker", f"{scenario.figures.sent} of 1 SMS sent")
    finally:
        herald.stop()
        if vhost != "/":
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)
    return scenario


def own_vhost() -> str:
    """A RabbitMQ vhost for this run, so that its queues never meet anyone else's; "/" without rabbitmqctl."""
    vhost = "herald-chaos"
    try:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                       capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "/"
    return vhost


SCENARIOS = {"C1": worker_kills, "C2": answer_lost, "C3": sendgrid_outage, "C4": twilio_rate_limit,
             "C5": postgres_outage, "C6": redis_stall, "C7": sendgrid_hang, "C8": rabbitmq_readiness}
