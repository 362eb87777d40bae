"""The outcome journal: what a provider answered, written to Redis before PostgreSQL hears of it.

Between a provider accepting a message and the database recording it lie several statements;
a worker killed there, or a database that is away, used to leave the delivery in `sending`
until its lease ran out, and the takeover sent it again. One Redis write right after the
answer narrows that window to a single round trip, and survives the database being away: the
dispatch sweep (or the task's own retry) applies journaled outcomes once PostgreSQL answers.

Entries are keyed by delivery and fenced by the claim they were made under; they are removed
once the database holds the same facts.
"""

import json
import logging
from datetime import datetime

from redis.exceptions import RedisError

from core import redis_client
from delivery.providers.base import Outcome, SendResult

log = logging.getLogger(__name__)

INDEX = "herald:outcomes"
KEEP_SECONDS = 7 * 24 * 3600


def _key(delivery_id) -> str:
    return f"herald:outcome:{delivery_id}"


def _encode(result: SendResult) -> dict:
    return {
        "outcome": str(result.outcome), "provider_message_id": result.provider_message_id,
        "retry_after": result.retry_after, "error_code": result.error_code,
        "error_message": result.error_message[:2000], "provider_fault": result.provider_fault,
        "invalid_addresses": list(result.invalid_addresses),
    }


def decode_result(data: dict) -> SendResult:
    return SendResult(
        Outcome(data["outcome"]), provider_message_id=data["provider_message_id"],
        retry_after=data["retry_after"], error_code=data["error_code"], error_message=data["error_message"],
        provider_fault=data["provider_fault"], invalid_addresses=tuple(data["invalid_addresses"]),
    )


def _write(delivery_id, field: str, value: dict) -> bool:
    try:
        pipe = redis_client.shared().pipeline(transaction=True)
        pipe.hset(_key(delivery_id), field, json.dumps(value))
        pipe.expire(_key(delivery_id), KEEP_SECONDS)
        pipe.sadd(INDEX, str(delivery_id))
        pipe.execute()
    except RedisError as exc:
        log.warning("delivery %s: outcome journal unavailable (%s); recording straight to the database", delivery_id, exc)
        return False
    return True


def record_attempt(delivery_id, claim: datetime, attempt_id: int, result: SendResult) -> bool:
    """Journal one provider call's answer; False if Redis could not take it."""
    return record_attempts([(delivery_id, claim, attempt_id, result)])


def record_attempts(answers: list[tuple]) -> bool:
    """Journal many calls' answers, (delivery_id, claim, attempt_id, result) each, in one round trip."""
    if not answers:
        return True
    try:
        pipe = redis_client.shared().pipeline(transaction=True)
        for delivery_id, claim, attempt_id, result in answers:
            pipe.hset(_key(delivery_id), f"attempt:{attempt_id}", json.dumps({"claim": claim.isoformat(), **_encode(result)}))
            pipe.expire(_key(delivery_id), KEEP_SECONDS)
        pipe.sadd(INDEX, *[str(delivery_id) for delivery_id, *_ in answers])
        pipe.execute()
    except RedisError as exc:
        log.warning("outcome journal unavailable (%s); recording %d answers straight to the database", exc, len(answers))
        return False
    return True


def record_final(delivery_id, claim: datetime, result: SendResult, provider_name: str) -> bool:
    """Journal the attempt's merged result, as record_result will apply it."""
    return _write(delivery_id, "final", {"claim": claim.isoformat(), "provider": provider_name, **_encode(result)})


def entries(delivery_id) -> dict | None:
    """{"attempts": {attempt_id: data}, "final": data | None}, or None when nothing is journaled."""
    try:
        raw = redis_client.shared().hgetall(_key(delivery_id))
    except RedisError:
        return None
    if not raw:
        return None
    found: dict = {"attempts": {}, "final": None}
    for field, value in raw.items():
        field, data = field.decode(), json.loads(value)
        if field == "final":
            found["final"] = data
        else:
            found["attempts"][int(field.split(":", 1)[1])] = data
    return found


def forget(delivery_id) -> None:
    forget_all([delivery_id])


def forget_all(delivery_ids: list) -> None:
    if not delivery_ids:
        return
    try:
        pipe = redis_client.shared().pipeline(transaction=True)
        pipe.delete(*[_key(delivery_id) for delivery_id in delivery_ids])
        pipe.srem(INDEX, *[str(delivery_id) for delivery_id in delivery_ids])
        pipe.execute()
    except RedisError:
        pass  # applying an entry twice is harmless: every write it makes is fenced


def pending(limit: int = 500) -> list[str]:
    """Deliveries with journaled outcomes the database may not hold yet."""
    try:
        return [member.decode() for member in redis_client.shared().srandmember(INDEX, limit) or []]
    except RedisError:
        return []
