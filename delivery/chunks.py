"""A lane's deliveries, claimed a chunk at a time: one statement claims many rows; their first
attempts are made together (delivery/bulk_sending.py), everything else goes through the
one-row attempt (delivery/sending.py); all of it fenced by the chunk's claim time.

A lane is a channel and an urgency (`sms.urgent`, `email.bulk`): each has its own queue and
workers, so a campaign's backlog never delays a password reset. A full chunk wakes the lane
again before it is worked, so the next chunk goes to another of the worker's threads while
this one waits on its provider.
"""

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from core import claimers, metrics, wake
from core.states import Status, move_all
from delivery import bulk_sending
from delivery.models import Delivery
from delivery.publishing import lane_priorities, wake_deliveries
from delivery.sending import attempt_claimed, finish_attempt
from delivery.states import DELIVERY_TRANSITIONS

log = logging.getLogger(__name__)

# Due rows, soonest first: status sending, the claim's time set (it fences every later write of
# the attempt) with this process's name (core/claimers.py), one attempt counted, the move
# appended to the row's history.
CLAIM_DUE_SQL = """
WITH due AS (
    SELECT id FROM delivery_delivery
    WHERE status = 'queued' AND held_until IS NULL AND available_at <= %(now)s
      AND channel = %(channel)s AND priority = ANY(%(priorities)s)
    ORDER BY available_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE delivery_delivery AS d
SET status = 'sending', status_changed_at = %(now)s, claimed_at = %(now)s, claimed_by = %(claimer)s, takeovers = 0,
    published_at = %(now)s, attempts = d.attempts + 1, status_history = d.status_history || %(history)s::jsonb
WHERE d.id IN (SELECT id FROM due)
RETURNING d.id
"""

# Rows whose worker died holding them: its claimer key expired (core/claimers.py), or (Redis unreadable) the
# lease ran out. Taken over with the count of takeovers in a row, oldest claim first.
CLAIM_ABANDONED_SQL = """
WITH abandoned AS (
    SELECT id FROM delivery_delivery
    WHERE status = 'sending' AND (claimed_at < %(lease_over)s OR claimed_by = ANY(%(dead)s))
      AND channel = %(channel)s AND priority = ANY(%(priorities)s) AND takeovers BETWEEN %(least)s AND %(most)s
    ORDER BY claimed_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE delivery_delivery AS d
SET status_changed_at = %(now)s, claimed_at = %(now)s, claimed_by = %(claimer)s, takeovers = d.takeovers + 1,
    published_at = %(now)s, attempts = d.attempts + 1, status_history = d.status_history || %(history)s::jsonb
WHERE d.id IN (SELECT id FROM abandoned)
RETURNING d.id
"""

IN_FLIGHT_CLAIMERS_SQL = "SELECT DISTINCT claimed_by FROM delivery_delivery WHERE status = 'sending'"
dead_claimers = claimers.DeadClaimers(IN_FLIGHT_CLAIMERS_SQL)


def claim_chunk(channel: str, priorities: list[str], limit: int) -> tuple[list, object]:
    """Claim up to `limit` of the lane's due deliveries: (ids, the claim's time)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_DUE_SQL, {
            "now": now, "channel": channel, "priorities": priorities, "limit": limit, "claimer": claimers.this_process(),
            "history": json.dumps([{"status": Status.SENDING.value, "at": now.isoformat()}]),
        })
        return [row[0] for row in cursor.fetchall()], now


def claim_abandoned(channel: str, priorities: list[str], *, least: int, most: int, limit: int) -> tuple[list, object]:
    """Take over up to `limit` of the lane's rows whose worker died, among those already taken over
    `least` to `most` times in a row: (ids, the claim's time)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_ABANDONED_SQL, {
            "now": now, "channel": channel, "priorities": priorities, "limit": limit, "least": least, "most": most,
            "claimer": claimers.this_process(), "dead": dead_claimers(cursor),
            # A little past the lease, so that the dispatch sweep has usually applied what the dead
            # worker journaled; attempt_claimed applies the row's journal itself in any case.
            "lease_over": now - timedelta(seconds=settings.HERALD_DELIVERY_LEASE_SECONDS + TAKEOVER_MARGIN_SECONDS),
            "history": json.dumps([{"status": Status.SENDING.value, "at": now.isoformat(), "reason": "taken_over"}]),
        })
        return [row[0] for row in cursor.fetchall()], now


TAKEOVER_MARGIN_SECONDS = 3
# Rows taken over from a dead worker go on as a whole chunk the first time (a kill or a crash
# elsewhere took them down), in groups of SUSPECT_GROUP the second time, and one at a time after
# that (one per process at a time): whatever kills its workers is soon alone, and takes no other
# row with it into HERALD_POISON_TAKEOVERS.
SUSPECT_GROUP = 10
_alone = threading.Lock()


def take_over_abandoned(channel: str, priorities: list[str], pool: ThreadPoolExecutor) -> int:
    """Attempt the lane's rows whose worker died; a row at HERALD_POISON_TAKEOVERS is parked (sending.attempt_claimed)."""
    taken = 0
    for least, most, limit in ((0, 0, settings.HERALD_DELIVERY_CHUNK), (1, 1, SUSPECT_GROUP)):
        ids, claimed_at = claim_abandoned(channel, priorities, least=least, most=most, limit=limit)
        if ids:
            attempt_chunk(ids, claimed_at, time.monotonic(), pool)
        taken += len(ids)
    if _alone.acquire(blocking=False):
        try:
            ids, claimed_at = claim_abandoned(channel, priorities, least=2, most=32767, limit=1)
            for delivery_id in ids:
                attempt_in_time(delivery_id, claimed_at, time.monotonic())
            taken += len(ids)
        finally:
            _alone.release()
    metrics.taken_over("delivery", metrics.lane_of(channel, priorities[0]), taken)
    return taken


def give_back(delivery_ids: list, claimed_at) -> None:
    """Return claimed rows not yet attempted to `queued`, as if never claimed (no attempt used)."""
    move_all(Delivery.objects.filter(pk__in=delivery_ids, claimed_at=claimed_at), DELIVERY_TRANSITIONS, Status.QUEUED,
             sources={Status.SENDING}, reason="chunk_given_back", attempts=F("attempts") - 1)


_senders: dict[tuple[int, bool], ThreadPoolExecutor] = {}


def senders(urgent: bool) -> ThreadPoolExecutor:
    """This process's sender threads for urgent or for bulk lanes (HERALD_SENDS_IN_FLIGHT each).

    Two pools, so that a campaign's queued sends never stand in front of a password reset's
    when one worker process serves both kinds of lane.
    """
    key = (os.getpid(), urgent)
    if key not in _senders:
        _senders[key] = ThreadPoolExecutor(settings.HERALD_SENDS_IN_FLIGHT, thread_name_prefix="urgent" if urgent else "bulk")
    return _senders[key]


def attempt_chunk(delivery_ids: list, claimed_at, claimed: float, pool: ThreadPoolExecutor) -> None:
    """Attempt a claimed chunk: first attempts together (delivery/bulk_sending.py), the rest one by one."""
    if late(claimed):
        give_back(delivery_ids, claimed_at)
        return
    deadline = claimed + settings.HERALD_ATTEMPT_BUDGET_SECONDS
    together, one_by_one = bulk_sending.prepare(bulk_sending.load(delivery_ids, claimed_at))
    futures = [pool.submit(attempt_in_time, delivery.pk, claimed_at, claimed) for delivery in one_by_one]
    try:
        unsent = bulk_sending.send_together(together, claimed_at, pool, deadline)
    finally:
        for future in futures:
            future.result()  # a database error ends the task (and retries it); claimed rows wait for their lease
    for future in [pool.submit(finish_in_thread, a.delivery, claimed_at, a.result, a.provider, deadline) for a in unsent]:
        future.result()


def late(claimed: float) -> bool:
    """Whether an attempt starting now could outlast the claim's lease (see attempt_in_time)."""
    return time.monotonic() - claimed > settings.HERALD_DELIVERY_LEASE_SECONDS - settings.HERALD_ATTEMPT_BUDGET_SECONDS


def finish_in_thread(delivery, claimed_at, result, provider: str, deadline: float) -> None:
    try:
        finish_attempt(delivery, claimed_at, result, provider, deadline)
    finally:
        connection.close()


def attempt_in_time(delivery_id, claimed_at, claimed: float) -> None:
    """Attempt one claimed delivery, unless it waited so long that the attempt could outlast its lease.

    An attempt ends within HERALD_ATTEMPT_BUDGET_SECONDS; one started later than the lease minus
    that budget could still be calling its provider when another worker takes the row over as
    abandoned, and both would send.
    """
    try:
        if late(claimed):
            give_back([delivery_id], claimed_at)  # the next claim (ours or another worker's) takes it in time
            return
        attempt_claimed(delivery_id, claimed_at)
    finally:
        connection.close()  # hand this thread's connection back to the pool between attempts


def deliver_lane(queue: str) -> int:
    """Attempt the lane's due deliveries, a chunk at a time, for up to HERALD_CHUNK_BUDGET_SECONDS."""
    channel, priorities = lane_priorities(queue)
    deadline = time.monotonic() + settings.HERALD_CHUNK_BUDGET_SECONDS
    attempted = 0
    pool = senders(urgent=queue.endswith(".urgent"))
    while True:
        wake.woken(f"deliver:{queue}")
        taken_over = take_over_abandoned(channel, priorities, pool)
        ids, claimed_at = claim_chunk(channel, priorities, settings.HERALD_DELIVERY_CHUNK)
        claimed = time.monotonic()
        if len(ids) == settings.HERALD_DELIVERY_CHUNK:
            wake_deliveries(channel, priorities[0])  # more may wait: another thread takes the next chunk
        if ids:
            attempt_chunk(ids, claimed_at, claimed, pool)
        attempted += len(ids) + taken_over
        if (len(ids) < settings.HERALD_DELIVERY_CHUNK and not taken_over) or time.monotonic() > deadline:
            return attempted
