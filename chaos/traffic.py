"""What a client of Herald sees during a scenario: its API answers, /health/ready, and the providers'
breakers as Redis holds them. Each observer runs in threads of its own and only records."""

import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
import requests

if TYPE_CHECKING:
    from chaos.stack import Herald

ANSWER_TIMEOUT_SECONDS = 15  # a request unanswered this long counts as never answered
BREAKER_KEYS = "herald:breaker:*"  # delivery/breaker.py: one hash per provider, `opened_at` while open


@dataclass(frozen=True)
class Post:
    """One POST /api/v1/notifications as the client saw it."""
    at: float  # epoch seconds when the request was sent
    status: int  # 0: no answer (timeout, connection refused or reset)
    seconds: float  # end to end at the client, so queueing at the web port is included
    retry_after: str | None
    notification_id: str | None  # from a 202's body

    @property
    def answered_at(self) -> float:
        return self.at + self.seconds


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

    def notify(self, user_id: str, kind: str, channel: str, text: str) -> Post:
        at, started = time.time(), time.monotonic()
        notification_id = None
        try:
            response = self._session().post(f"{self.base_url}/api/v1/notifications", timeout=ANSWER_TIMEOUT_SECONDS, json={
                "user_id": user_id, "type": kind, "template": "chaos", "variables": {"text": text},
                "channels": [channel], "idempotency_key": str(uuid.uuid4())})
            status, retry_after = response.status_code, response.headers.get("Retry-After")
            if status == 202:
                notification_id = _id_in(response)
        except requests.RequestException:
            status, retry_after = 0, None
        return Post(at, status, time.monotonic() - started, retry_after, notification_id)


def _id_in(response: requests.Response) -> str | None:
    try:
        return str(response.json()["id"])
    except (ValueError, KeyError, TypeError):
        return None


Message = tuple[str, str, str]  # (user, type, channel)


def forget_breakers(redis_url: str) -> int:
    """Close every provider's breaker: one a previous scenario opened, rightly, would otherwise skip the next
    scenario's first calls. How many there were."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(BREAKER_KEYS, count=100))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


def send_all(api: Api, key: str, messages: list[Message]) -> list[Post]:
    """Send every message at once, 8 at a time."""
    def send(n: int) -> Post:
        user, kind, channel = messages[n]
        return api.notify(user, kind, channel, f"{key} message {n} for {user}")

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(send, range(len(messages))))


class Pacer:
    """Sends message `make(n)` at start + n / per_second until stopped, at most `limit` of them. The pool is
    large enough that a slow answer never holds back the next request: each one's time is Herald's alone."""

    def __init__(self, api: Api, key: str, make, per_second: float, limit: int):
        self.posts: list[Post] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(min(64, math.ceil(per_second * ANSWER_TIMEOUT_SECONDS) + 2))
        self._longest = limit / per_second + ANSWER_TIMEOUT_SECONDS

        def send(n: int) -> None:
            user, kind, channel = make(n)
            self.posts.append(api.notify(user, kind, channel, f"{key} paced {n} for {user}"))

        def pace() -> None:
            start = time.monotonic()
            for n in range(limit):
                if self._stop.wait(max(0.0, start + n / per_second - time.monotonic())):
                    return
                self._pool.submit(send, n)

        self._thread = threading.Thread(target=pace, daemon=True)
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self, drain: bool = False) -> list[Post]:
        """Stop sending (or, with `drain`, send all `limit` first); wait for the answers, in send order."""
        if drain:
            self._thread.join(self._longest)
        self._stop.set()
        self._thread.join(5)
        self._pool.shutdown(wait=True)
        return sorted(self.posts, key=lambda post: post.at)


@dataclass(frozen=True)
class ReadyAnswer:
    at: float
    status: int  # 0: no answer
    seconds: float


class ReadyPoller:
    """GET /health/ready twice a second until stopped (at most `limit` seconds)."""

    def __init__(self, herald: "Herald", limit: float = 240):
        self.answers: list[ReadyAnswer] = []
        self._stop = threading.Event()

        def poll() -> None:
            deadline = time.monotonic() + limit
            while not self._stop.wait(0.5) and time.monotonic() < deadline:
                at = time.time()
                self.answers.append(ReadyAnswer(at, *herald.health(timeout=5)))

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()

    def stop(self) -> list[ReadyAnswer]:
        self._stop.set()
        self._thread.join(15)
        return self.answers


class BreakerWatch:
    """Every breaker opening Redis shows (a new `opened_at` on a provider's breaker), polled four times a
    second; an opening lasts a whole reset period, so none is missed. Blind while Redis is stalled, when
    nothing can open one either."""

    def __init__(self, redis_url: str):
        self.openings: dict[tuple[str, str], float] = {}  # (provider, opened_at) -> when first seen
        self.most_failures: dict[str, int] = {}
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.2, socket_connect_timeout=0.2)
        self._before = set(self._look())  # openings from before the watch are not its scenario's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            try:
                for opening in self._look():
                    if opening not in self._before:
                        self.openings.setdefault(opening, time.time())
            except (redis.RedisError, ValueError):
                pass  # Redis stalled or away: seen again once it answers

    def _look(self) -> list[tuple[str, str]]:
        """(provider, opened_at) of every open breaker; notes the failures in a row of each."""
        open_now = []
        for key in self._redis.scan_iter(BREAKER_KEYS, count=100):
            provider = key.decode().rsplit(":", 1)[1]
            state = {name.decode(): value.decode() for name, value in self._redis.hgetall(key).items()}
            if "opened_at" in state:
                open_now.append((provider, state["opened_at"]))
            failures = int(state.get("failures", 0) or 0)
            self.most_failures[provider] = max(failures, self.most_failures.get(provider, 0))
        return open_now

    def stop(self) -> list[tuple[str, float]]:
        """(provider, when first seen) of each opening, oldest first."""
        self._stop.set()
        self._thread.join(5)
        self._redis.close()
        return sorted(((provider, seen) for (provider, _), seen in self.openings.items()), key=lambda item: item[1])
