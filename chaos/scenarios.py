"""The scenarios, C1-C8. Each creates its own people (user ids starting with its prefix), injects one kind of
fault, drives traffic through Herald's API, waits for every notification to reach a final state (bounded by
a deadline) and measures the outcome. Expectations are reported; only report.measure's violations fail."""

import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from bench.harness import free_port, percentile
from chaos.report import Scenario, delivery_of, measure, pending, wait_final
from chaos.stack import Herald, Servers, SimulatorProcess, herald_env, open_marketing

TYPES = ("security", "marketing")  # critical → urgent lane, low → bulk lane
RABBITMQ = ("127.0.0.1", 5672)


@dataclass(frozen=True)
class Post:
    at: float  # epoch seconds when sent
    status: int  # 0: no answer (timeout, connection refused)
    seconds: float
    retry_after: str | None


class Api:
    """Herald's REST API as a client sees it; one HTTP session per thread."""

    def __init__(self, base_url: str, key: str):
        self.base_url = base_url
        self.key = key
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["Authorization"] = f"Bearer {self.key}"
        return self._local.session

    def create_templates(self) -> None:
        for template in ({"name": "chaos", "channel": "sms", "body": "{{ text }}"},
                         {"name": "chaos", "channel": "email", "subject": "Chaos {{ text }}", "body": "{{ text }}"}):
            self._session().post(f"{self.base_url}/api/v1/templates", json=template, timeout=10).raise_for_status()

    def put_user(self, user_id: str, phone: str) -> None:
        self._session().put(f"{self.base_url}/api/v1/users/{user_id}", json={"email": f"{user_id}@example.com",
                            "phone": phone}, timeout=10).raise_for_status()

    def notify(self, user_id: str, kind: str, channel: str, text: str, timeout: float = 10) -> Post:
        at, started = time.time(), time.monotonic()
        try:
            response = self._session().post(f"{self.base_url}/api/v1/notifications", timeout=timeout, json={
                "user_id": user_id, "type": kind, "template": "chaos", "variables": {"text": text},
                "channels": [channel], "idempotency_key": str(uuid.uuid4())})
            status, retry_after = response.status_code, response.headers.get("Retry-After")
        except requests.RequestException:
            status, retry_after = 0, None
        return Post(at, status, time.monotonic() - started, retry_after)


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


def send_all(run: Run, scenario: Scenario, messages: list[tuple[str, str, str]]) -> list[Post]:
    """Send (user, type, channel) messages, 8 at a time."""
    def send(n: int) -> Post:
        user, kind, channel = messages[n]
        return run.api.notify(user, kind, channel, f"{scenario.key} message {n} for {user}")

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(send, range(len(messages))))


class Pacer:
    """Sends `per_second` notifications (message n is `make(n)`) from a thread pool until stopped, at most
    `limit`; keeps every answer."""

    def __init__(self, run: Run, scenario: Scenario, make, per_second: float, limit: int, timeout: float = 10):
        self.posts: list[Post] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(8)

        def send(n: int) -> None:
            user, kind, channel = make(n)
            self.posts.append(run.api.notify(user, kind, channel, f"{scenario.key} paced {n} for {user}", timeout))

        def pace() -> None:
            for n in range(limit):
                if self._stop.wait(1 / per_second):
                    return
                self._pool.submit(send, n)

        self._thread = threading.Thread(target=pace, daemon=True)
        self._thread.start()
        self._longest = limit / per_second + 10

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self, drain: bool = False) -> list[Post]:
        """Stop sending (or, with `drain`, let all `limit` go out first); returns the answers in send order."""
        if drain:
            self._thread.join(self._longest)
        self._stop.set()
        self._thread.join(5)
        self._pool.shutdown(wait=True)
        return sorted(self.posts, key=lambda post: post.at)


class ReadyPoller:
    """GET /health/ready twice a second until stopped (at most `limit` seconds)."""

    def __init__(self, herald: Herald, limit: float = 180):
        self.answers: list[tuple[float, int, float]] = []  # (epoch, status, seconds)
        self._stop = threading.Event()

        def poll() -> None:
            deadline = time.monotonic() + limit
            while not self._stop.wait(0.5) and time.monotonic() < deadline:
                at = time.time()
                self.answers.append((at, *herald.health(timeout=5)))

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()

    def stop(self) -> list[tuple[float, int, float]]:
        self._stop.set()
        self._thread.join(15)
        return self.answers


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def finish(run: Run, scenario: Scenario, deadline: float, connect=None) -> None:
    connect = connect or run.herald.database
    wait_final(connect, scenario, deadline)
    measure(connect, run.control, scenario)


def describe_posts(posts: list[Post]) -> str:
    if not posts:
        return "no requests"
    statuses = Counter(post.status for post in posts)
    times = [post.seconds for post in posts]
    codes = " ".join(f"{status or 'no answer'}:{n}" for status, n in sorted(statuses.items()))
    with_retry_after = sum(1 for post in posts if post.status == 503 and post.retry_after)
    return (f"{codes}; latency p50 {statistics.median(times):.2f}s max {max(times):.2f}s; "
            f"503s with Retry-After {with_retry_after}/{statuses[503]}")


def during(items, start: float, end: float) -> list:
    return [item for item in items if start <= item[0] <= end]


# ---------------------------------------------------------------------------------------------------- C1


def worker_kills(run: Run) -> Scenario:
    scenario, users = begin(run, "C1", "worker kills", 60)
    faults = [run.control.add_fault(provider, latency_ms=200) for provider in ("twilio", "sendgrid")]
    channels = ("sms", "sms", "email", "email")
    # Sent over ~25 s so that every kill lands while deliveries are in flight.
    sender = Pacer(run, scenario, lambda n: (users[n % len(users)], TYPES[n % 2], channels[n % 4]), per_second=12, limit=300)
    try:
        restored_by = []
        for round_number, offset in enumerate((3, 9, 15, 21), 1):
            sleep_until(scenario.started + offset)
            with run.herald.database() as db:
                if sender.done() and pending(db, scenario.prefix) == 0:
                    scenario.notes.append(f"kill {round_number}: skipped, everything was final already")
                    break
            killed = run.herald.kill_workers()
            started = time.monotonic()
            how = run.herald.restore_workers(killed)
            scenario.fault_ended = time.time()
            scenario.notes.append(f"kill {round_number}: SIGKILL {', '.join(f'{n} {p}' for n, (p, *_) in killed.items())}"
                                  f"; back in {time.monotonic() - started:.1f}s by {how}")
            restored_by.append(how)
        scenario.notes.insert(0, f"API: {describe_posts(sender.stop(drain=True))}")
        scenario.expect(set(restored_by) <= {"supervisor"}, f"run.py restarts killed workers by itself: "
                                                            f"{restored_by.count('supervisor')} of {len(restored_by)} kills "
                                                            f"(otherwise the harness restarted them, see above)")
    finally:
        sender.stop()
        for fault in faults:
            run.control.remove_fault(fault)
    finish(run, scenario, (scenario.fault_ended or time.time()) + 60)
    return scenario


# ---------------------------------------------------------------------------------------------------- C2


def answer_lost(run: Run) -> Scenario:
    scenario, users = begin(run, "C2", "answer lost", 20)
    lost = [(users[n], TYPES[n >= 3], "sms") for n in range(6)] + [(users[6 + n], TYPES[n >= 2], "email") for n in range(4)]
    normal = [(users[10 + n], TYPES[n % 2], ("sms", "email")[n // 5]) for n in range(10)]
    faults = [run.control.add_fault("twilio", answer_lost=True, count=1, match=phone_of("C2", users.index(user)))
              if channel == "sms" else run.control.add_fault("sendgrid", answer_lost=True, count=1, match=f"{user}@")
              for user, _, channel in lost]
    try:
        send_all(run, scenario, lost + normal)
        scenario.fault_ended = time.time()
        finish(run, scenario, scenario.fault_ended + 60)
    finally:
        for fault in faults:
            run.control.remove_fault(fault)

    figures = scenario.figures
    lost_deliveries = {}
    for record in figures["records"]:
        if record["answer_lost"]:
            lost_deliveries[delivery_of(record)] = record["provider"]
    lookups = sum(1 for r in figures["records"] if r["provider"] == "twilio" and r["method"] == "GET")
    scenario.notes.append(f"answers lost: {len(lost_deliveries)} of {len(lost)} planned; Twilio list API calls: {lookups}")
    kinds = {user: kind for user, kind, _ in lost}
    for delivery_id, provider in sorted(lost_deliveries.items(), key=lambda item: item[1]):
        row = figures["deliveries"].get(delivery_id)
        if row is not None:
            scenario.notes.append(f"{provider:<8} {kinds.get(row.user, '?'):<9} {row.status:<9} action={row.action or '-':<22} "
                                  f"provider accepted it {figures['accepted_calls'][delivery_id]}x "
                                  f"({figures['calls'][delivery_id]} calls) error={row.error_code or '-'}")
    twilio_lost = [d for d, provider in lost_deliveries.items() if provider == "twilio"]
    found = [d for d in twilio_lost if figures["deliveries"][d].action == "found_at_provider"
             and figures["accepted_calls"][d] == 1 and figures["deliveries"][d].status in ("sent", "delivered", "read")]
    scenario.expect(len(found) == len(twilio_lost), f"Twilio lost answers found via the list API and not resent: "
                                                    f"{len(found)}/{len(twilio_lost)}")
    scenario.expect(figures["unknown"] >= len(lost_deliveries),
                    f"an unknown-outcome attempt recorded for each lost answer: {figures['unknown']} for {len(lost_deliveries)}")
    return scenario


# ---------------------------------------------------------------------------------------------------- C3


def sendgrid_outage(run: Run, outage: float = 60) -> Scenario:
    scenario, users = begin(run, "C3", "SendGrid 503 outage", 50)
    fault = run.control.add_fault("sendgrid", status=503)
    try:
        posts = send_all(run, scenario, [(user, TYPES[n % 2], "email") for n, user in enumerate(users)])
        scenario.notes.append(f"API: {describe_posts(posts)}")
        sleep_until(scenario.started + outage)
    finally:
        run.control.remove_fault(fault)
    scenario.fault_ended = time.time()
    finish(run, scenario, scenario.fault_ended + 45)
    answered_503 = sum(1 for r in scenario.figures["records"] if r["status"] == 503)
    scenario.notes.append(f"SendGrid answered 503 {answered_503} times during the {outage:.0f}s outage")
    scenario.expect(scenario.figures["sent"] == scenario.figures["accepted"],
                    f"every email sent after the outage: {scenario.figures['sent']}/{scenario.figures['accepted']}")
    return scenario


# ---------------------------------------------------------------------------------------------------- C4


def twilio_rate_limit(run: Run, per_second: float = 5, count: int = 150) -> Scenario:
    scenario, users = begin(run, "C4", "Twilio rate limit 5/s", 50)
    run.control.set_rate_limit("twilio", per_second)
    try:
        send_all(run, scenario, [(users[n % len(users)], TYPES[n % 2], "sms") for n in range(count)])
        scenario.fault_ended = scenario.started  # the limit lasts the whole scenario: recovery counts from the start
        finish(run, scenario, scenario.started + count / per_second + 60)
    finally:
        run.control.set_rate_limit("twilio", None)
    records = scenario.figures["records"]
    taken = sorted(r["time"] for r in records if r["provider"] == "twilio" and r["status"] == 201)
    refused = sum(1 for r in records if r["provider"] == "twilio" and r["status"] == 429)
    elapsed = (taken[-1] - scenario.started) if taken else float("nan")
    scenario.notes.append(f"Twilio answered 429 {refused} times; {len(taken)} SMS taken; first send to last SMS "
                          f"taken {elapsed:.1f}s (the limit allows {count / per_second:.0f}s at best); Herald's own "
                          f"HERALD_RATE_LIMITS is not set, so it learns the limit from the 429s")
    scenario.expect(scenario.figures["sent"] == scenario.figures["accepted"],
                    f"every SMS sent: {scenario.figures['sent']}/{scenario.figures['accepted']}")
    return scenario


# ---------------------------------------------------------------------------------------------------- C5


def postgres_outage(run: Run, outage: float = 10) -> Scenario:
    scenario, _ = outage_under_load(run, "C5", "PostgreSQL outage 10s", "PostgreSQL",
                                    run.servers.stop_postgres, run.servers.start_postgres, outage)
    return scenario


def outage_under_load(run: Run, code: str, title: str, what: str, break_it, mend_it, seconds: float) -> tuple[Scenario, list[Post]]:
    """Send steadily, break something for `seconds`, mend it, then report how the API and readiness behaved."""
    scenario, users = begin(run, code, title, 20)
    poller = ReadyPoller(run.herald)
    pacer = Pacer(run, scenario, lambda n: (users[n % len(users)], TYPES[n % 2], ("sms", "email")[n // 2 % 2]),
                  per_second=4, limit=200)
    try:
        time.sleep(5)
        down = time.time()
        break_it()
        sleep_until(down + seconds)
    finally:
        mend_it()
    scenario.fault_ended = time.time()
    time.sleep(8)
    posts, answers = pacer.stop(), poller.stop()
    finish(run, scenario, scenario.fault_ended + 60)
    report_outage(scenario, posts, answers, down, what)
    scenario.outage_started = down
    return scenario, posts


def report_outage(scenario: Scenario, posts: list[Post], answers: list, down: float, what: str) -> None:
    up = scenario.fault_ended
    in_outage = [post for post in posts if down <= post.at <= up]
    after = [post for post in posts if post.at > up]
    refused_after = [post.at - up for post in after if post.status != 202]
    scenario.notes.append(f"API during the outage: {describe_posts(in_outage)}")
    scenario.notes.append(f"API after it: {describe_posts(after)}; last refusal "
                          f"{f'{max(refused_after):.1f}s' if refused_after else '-'} after {what} was back")
    ready = during(answers, down, up)
    ready_codes = " ".join(f"{status or 'no answer'}:{n}" for status, n in sorted(Counter(a[1] for a in ready).items()))
    slowest = max((a[2] for a in ready), default=float("nan"))
    scenario.notes.append(f"/health/ready during the outage: {ready_codes or '-'}; slowest {slowest:.2f}s")
    scenario.expect(bool(ready) and slowest < 2, f"/health/ready answers within 2 s while {what} is away")
    scenario.expect(all(post.status != 500 and post.status != 0 for post in in_outage),
                    f"no 500 and no hung request from the API while {what} is away")
    scenario.expect(bool(after) and all(at < 5 for at in refused_after), f"the API accepts again within 5 s of {what}'s return")


# ---------------------------------------------------------------------------------------------------- C6


def redis_stall(run: Run, stall: float = 15) -> Scenario:
    scenario, posts = outage_under_load(run, "C6", "Redis SIGSTOP 15s", "Redis",
                                        run.servers.freeze_redis, run.servers.thaw_redis, stall)
    down = scenario.outage_started
    accepted = [post.seconds for post in posts if down <= post.at <= scenario.fault_ended and post.status == 202]
    scenario.expect(bool(accepted) and max(accepted) < 1.5,
                    f"accepts within ~1 s while Redis is stalled (slowest {max(accepted, default=float('nan')):.2f}s)")
    return scenario


# ---------------------------------------------------------------------------------------------------- C7


def email_timeouts(run: Run, before: float = 12, window: float = 30) -> Scenario:
    scenario, users = begin(run, "C7", "SendGrid timeouts vs SMS", 40)
    sms = Pacer(run, scenario, lambda n: (users[n % 30], TYPES[n % 2], "sms"), per_second=3, limit=200)
    emails = Pacer(run, scenario, lambda n: (users[30 + n % 10], TYPES[n % 2], "email"), per_second=1.5, limit=100)
    fault = None
    try:
        sleep_until(scenario.started + before)
        fault = run.control.add_fault("sendgrid", timeout=True)
        start = time.time()
        sleep_until(start + window)
    finally:
        if fault:
            run.control.remove_fault(fault)
    scenario.fault_ended = time.time()
    sms.stop(), emails.stop()
    finish(run, scenario, scenario.fault_ended + 60)

    taken = [r["time"] for r in scenario.figures["records"] if r["provider"] == "twilio" and r["status"] == 201]
    rate_before = sum(1 for t in taken if scenario.started + 2 <= t < start) / (start - scenario.started - 2)
    rate_during = sum(1 for t in taken if start <= t < scenario.fault_ended) / (scenario.fault_ended - start)
    with run.herald.database() as db:
        rows = db.execute("""SELECT extract(epoch FROM n.created_at), extract(epoch FROM d.sent_at - n.created_at)
            FROM delivery_delivery d JOIN notifications_notification n ON n.id = d.notification_id
            JOIN preferences_recipient r ON r.id = n.recipient_id
            WHERE r.external_id LIKE %s AND d.channel = 'sms' AND d.sent_at IS NOT NULL""", (scenario.prefix + "%",)).fetchall()
    latency_before = [float(s) for t, s in rows if float(t) < start]
    latency_during = [float(s) for t, s in rows if start <= float(t) < scenario.fault_ended]
    scenario.notes.append(f"SMS taken by Twilio: {rate_before:.2f}/s before, {rate_during:.2f}/s while SendGrid timed "
                          f"out (offered 3/s); accept→sent p50/p95 {percentile(latency_before, 50):.1f}/"
                          f"{percentile(latency_before, 95):.1f}s before, {percentile(latency_during, 50):.1f}/"
                          f"{percentile(latency_during, 95):.1f}s during")
    timed_out = sum(1 for r in scenario.figures["records"] if r["provider"] == "sendgrid" and r["timed_out"])
    scenario.notes.append(f"SendGrid requests that hung: {timed_out}")
    scenario.expect(rate_during >= 0.8 * rate_before,
                    f"SMS throughput holds while email times out ({rate_during:.2f}/s vs {rate_before:.2f}/s)")
    return scenario


# ---------------------------------------------------------------------------------------------------- C8


def rabbitmq_readiness(run: Run) -> Scenario:
    scenario = Scenario("C8", "RabbitMQ broker", "c8-")
    try:
        socket.create_connection(RABBITMQ, timeout=2).close()
    except OSError as error:
        scenario.skipped = f"RabbitMQ is not reachable on {RABBITMQ[0]}:{RABBITMQ[1]} ({error})"
        return scenario
    run.herald.stop()  # two stacks do not fit on two cores; this is the last scenario
    vhost = own_vhost()
    scenario.notes.append(f"broker amqp://guest@127.0.0.1:5672/{vhost} "
                          f"({'a vhost of its own' if vhost != '/' else 'the default vhost: rabbitmqctl unavailable'})")
    port = free_port()
    broker = f"amqp://guest:guest@127.0.0.1:5672/{'' if vhost == '/' else vhost}"
    herald = Herald("amqp", herald_env("amqp", run.servers, run.simulator, port, 1, CELERY_BROKER_URL=broker))
    try:
        herald.start()
        status, seconds = herald.health()
        scenario.expect(status == 200, f"/health/ready is 200 on RabbitMQ (got {status} in {seconds:.2f}s)")
        if status != 200:
            body = requests.get(herald.base_url + "/health/ready", timeout=10).text
            scenario.notes.append(f"/health/ready said: {body[:300]}")
        stack = Run(run.servers, run.simulator, herald, start_api(herald))
        stack.api.put_user("c8-0", phone_of("C8", 0))
        scenario.since = sum(tally.get("requests", 0) for tally in run.control.stats().values())
        scenario.started = time.time()
        post = stack.api.notify("c8-0", "security", "sms", "C8 over RabbitMQ")
        scenario.notes.append(f"API answered {post.status} in {post.seconds:.2f}s")
        finish(stack, scenario, time.time() + 40)
        scenario.expect(scenario.figures["sent"] == 1, "one SMS delivered through the RabbitMQ broker")
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
             "C5": postgres_outage, "C6": redis_stall, "C7": email_timeouts, "C8": rabbitmq_readiness}
