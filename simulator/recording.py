"""Every request the simulated providers receive, and tallies that survive the record limit."""

import itertools
import json
import time
from collections import Counter, deque

from simulator.exchange import Incoming, Parsed, Reply

DEFAULT_RECORD_LIMIT = 100_000


class Recorder:
    def __init__(self, limit: int = DEFAULT_RECORD_LIMIT):
        # The oldest records go first once a long benchmark passes the limit; the tallies keep counting.
        self._records: deque[dict] = deque(maxlen=limit)
        self._ids = itertools.count(1)
        self._tallies: dict[str, Counter] = {}

    def open(self, provider: str, incoming: Incoming, parsed: Parsed) -> dict:
        """Record a request as it arrives; `close` fills in the response."""
        record = {
            "id": next(self._ids),
            "provider": provider,
            "method": incoming.method,
            "path": incoming.path,
            "headers": incoming.headers,
            "body": parsed.body,
            "recipient": parsed.recipients[0] if parsed.recipients else None,
            "recipients": parsed.recipients,
            "time": time.time(),
            "status": None,
            "error": None,
            "message_id": None,
            "response_body": None,
            "fault": None,
            "rate_limited": False,
            "timed_out": False,
            "answer_lost": False,
            **parsed.extra,
        }
        self._records.append(record)
        self._tallies.setdefault(provider, Counter())["requests"] += 1
        return record

    def close(self, record: dict, reply: Reply) -> None:
        # Kept raw and decoded on the way out: parsed JSON costs several times the memory.
        record.update(status=reply.status, error=reply.error, message_id=reply.message_id,
                      response_body=reply.body or None)
        self._tallies[record["provider"]][str(reply.status)] += 1

    def hung(self, record: dict) -> None:
        record["timed_out"] = True
        self._tallies[record["provider"]]["timed_out"] += 1

    def answer_lost(self, record: dict) -> None:
        """The provider answered (see `status`), but the answer is never sent: the client times out."""
        record["answer_lost"] = True
        self.hung(record)

    def select(self, provider: str | None = None, since: int = 0) -> list[dict]:
        return [{**record, "response_body": _readable(record["response_body"])} for record in self._records
                if record["id"] > since and (provider is None or record["provider"] == provider)]

    def tallies(self) -> dict[str, dict[str, int]]:
        return {provider: dict(counter) for provider, counter in self._tallies.items()}

    def clear(self) -> None:
        self._records.clear()
        self._tallies.clear()


def _readable(body: bytes):
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
