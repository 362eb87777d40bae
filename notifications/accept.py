"""Accepting a notification: validate, store it with its outbox row, hand it to routing.

The whole path costs two SQL statements (the API key is cached, notifications/auth.py):
the recipient with the template's variants, and the notification and its outbox row in one
insert, hence one transaction. Both are plain SQL written once, so no request pays for the
ORM compiling a query. The notification stays `pending` until routing claims it; its outbox
row is what says it may still need publishing.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from psycopg.errors import ForeignKeyViolation

from core import bulk, metrics, tracing
from core.errors import ApiError
from core.logs import fields
from core.states import Status, initial_history
from notifications import send_time
from notifications.auth import forget_api_key
from notifications.models import ApiKey, Notification, Outbox
from notifications.policy import default_priority
from notifications.routing import wake_routing
from preferences import escalation as escalation_steps
from preferences import store as preference_store
from preferences.models import Recipient
from templates_app.models import Template
from templates_app.variables import variable_errors

log = logging.getLogger("herald.notifications")


@dataclass
class Accepted:
    notification: Notification
    replayed: bool = False


def request_hash(payload: dict) -> str:
    canonical = {k: v for k, v in payload.items() if k != "idempotency_key"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def accept_notification(data: dict, *, raw_payload: dict, api_key: ApiKey | None, idempotency_key: str | None) -> Accepted:
    """Validate `data` against the recipient and template, store it, and wake routing."""
    found = find_recipient_and_variants(data["user_id"], data["template"])
    try:
        notification = prepare(data, found, raw_payload=raw_payload, api_key=api_key, idempotency_key=idempotency_key)
    except ApiError:
        metrics.notification_offered(data.get("priority") or default_priority(data["type"]), "refused")
        raise
    try:
        inserted = insert_many_with_outbox([notification])
    except IntegrityError as exc:
        if isinstance(exc.__cause__, ForeignKeyViolation):
            raise vanished(data["user_id"], api_key) from None
        raise
    if not inserted:  # only an idempotency key can collide
        metrics.notification_offered(notification.priority, "idempotent_replay")
        return replay(idempotency_key, notification.request_hash)
    if notification.status == Status.PENDING:
        wake_routing(notification.priority)
    return Accepted(notification)


def accept_many(items: list[tuple[dict, dict, str | None]], *, api_key: ApiKey | None) -> list[Accepted | ApiError]:
    """Accept each (data, raw payload, idempotency key) on its own: its Accepted, or the ApiError refusing it.

    Two lookups for the whole list, and one insert for every valid item.
    """
    recipients, variants = find_recipients_and_variants({d["user_id"] for d, _, _ in items}, {d["template"] for d, _, _ in items})
    results: list[Accepted | ApiError] = []
    for data, raw, key in items:
        recipient = recipients.get(data["user_id"])
        found = (*recipient[:2], variants.get(data["template"], []), recipient[2]) if recipient else None
        try:
            notification = prepare(data, found, raw_payload=raw, api_key=api_key, idempotency_key=key)
        except ApiError as exc:
            metrics.notification_offered(data.get("priority") or default_priority(data["type"]), "refused")
            results.append(exc)
        else:
            results.append(Accepted(notification))
    prepared = [r.notification for r in results if isinstance(r, Accepted)]
    try:
        inserted = insert_many_with_outbox(prepared)
    except IntegrityError as exc:
        if isinstance(exc.__cause__, ForeignKeyViolation):
            raise vanished("", api_key) from None
        raise
    for index, result in enumerate(results):
        if isinstance(result, Accepted) and result.notification.pk not in inserted:
            # Only an idempotency key can collide: answer as a repeated single request would.
            metrics.notification_offered(result.notification.priority, "idempotent_replay")
            try:
                results[index] = replay(result.notification.idempotency_key, result.notification.request_hash)
            except ApiError as exc:
                results[index] = exc
    for priority in {n.priority for n in prepared if n.pk in inserted and n.status == Status.PENDING}:
        wake_routing(priority)
    return results


def prepare(data: dict, found: tuple | None, *, raw_payload: dict, api_key: ApiKey | None,
            idempotency_key: str | None) -> Notification:
    """The notification to store for `data`; ApiError if it cannot be accepted."""
    if found is None:
        raise ApiError(404, "unknown_user", f"No user {data['user_id']!r}; create it with PUT /api/v1/users/{{user_id}}.", "user_id")
    recipient_id, is_active, variants, zone_name = found
    if not is_active:
        raise ApiError(422, "user_inactive", f"User {data['user_id']!r} is deactivated.", "user_id")
    check_template(data["template"], variants, data.get("channels") or [], data.get("variables", {}))
    check_escalation(data.get("escalation"), variants)
    now = timezone.now()
    scheduled_at, send_time = data.get("scheduled_at"), None
    if data.get("send_at"):
        scheduled_at, send_time = resolve_send_at(data, recipient_id, zone_name, now)
    status = Status.SCHEDULED if scheduled_at else Status.PENDING
    notification = Notification(
        recipient_id=recipient_id,
        type=data["type"],
        priority=data.get("priority") or default_priority(data["type"]),
        template_name=data["template"],
        variables=data.get("variables", {}),
        requested_channels=data.get("channels") or [],
        idempotency_key=idempotency_key,
        request_hash=request_hash(raw_payload) if idempotency_key else "",
        scheduled_at=scheduled_at,
        metadata=data.get("metadata", {}),
        batch_key=data.get("batch_key", ""),
        batch_policy=dict(data["batch"]) if data.get("batch") else None,
        send_time=send_time,
        escalation=data.get("escalation"),
        schedule_id=data.get("schedule_id"),
        api_key=api_key,
        created_at=now,
        status=status,
        status_changed_at=now,
        status_history=initial_history(status, now),
    )
    return notification


def resolve_send_at(data: dict, recipient_id: int, zone_name: str, now) -> tuple:
    """(scheduled_at, send_time reason) for a request's `send_at`: a local time, or "optimal"."""
    if data["send_at"] != send_time.OPTIMAL:
        return send_time.at_local_time(data["send_at"], zone_name, now)
    hours = send_time.engagement_hours([recipient_id], now).get(recipient_id, {})
    default_hour = preference_store.category_policy(data["type"]).default_send_hour
    at, reason = send_time.optimal(hours, zone_name, data.get("send_window_hours") or 24, default_hour, now)
    return (at if at > now else None), reason


def check_escalation(steps: list | None, variants: list[dict]) -> None:
    """ApiError naming the field unless the request's escalation steps can run with this template."""
    if not steps:
        return
    problems = escalation_steps.problems(steps, {v["channel"] for v in variants})
    if problems:
        field, message = problems[0]
        raise ApiError(400, "invalid_escalation", message, f"escalation.{field}" if field else "escalation")


def check_template(name: str, variants: list[dict], requested: list[str], variables: dict) -> None:
    """ApiError unless template `name` exists, has every requested channel, and accepts `variables`."""
    if not variants:
        raise ApiError(400, "unknown_template", f"No template named {name!r}.", "template")
    template_channels = {v["channel"] for v in variants}
    for channel in requested:
        if channel not in template_channels:
            raise ApiError(400, "no_template_for_channel", f"Template {name!r} has no {channel} variant.", "channels")
    for variant in variants:
        if requested and variant["channel"] not in requested:
            continue
        errors = variable_errors(variant["schema"], variables)
        if errors:
            field, message = errors[0]
            raise ApiError(400, "invalid_variables", message, field)


@cache
def lookup_sql() -> str:
    recipients, templates = Recipient._meta.db_table, Template._meta.db_table
    return (
        f'SELECT r."id", r."is_active", (SELECT coalesce(json_agg(json_build_object('
        f"'channel', t.\"channel\", 'schema', t.\"variables_schema\")), '[]'::json) "
        f'FROM "{templates}" AS t WHERE t."name" = %s), r."timezone" FROM "{recipients}" AS r WHERE r."external_id" = %s'
    )


def find_recipient_and_variants(user_id: str, template_name: str) -> tuple[int, bool, list[dict], str] | None:
    """(recipient id, active, the template's variants with their schemas, timezone), or None for an unknown user."""
    with connection.cursor() as cursor:
        cursor.execute(lookup_sql(), [template_name, user_id])
        return cursor.fetchone()


def find_recipients_and_variants(user_ids: set[str], template_names: set[str]) -> tuple[dict, dict]:
    """({user id: (recipient id, active, timezone)}, {template name: its variants with their schemas})."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "external_id", "id", "is_active", "timezone" FROM "{Recipient._meta.db_table}" WHERE "external_id" = ANY(%s)',
            [list(user_ids)],
        )
        recipients = {user_id: (pk, active, zone) for user_id, pk, active, zone in cursor.fetchall()}
        cursor.execute(
            f'SELECT "name", json_agg(json_build_object(\'channel\', "channel", \'schema\', "variables_schema")) '
            f'FROM "{Template._meta.db_table}" WHERE "name" = ANY(%s) GROUP BY "name"',
            [list(template_names)],
        )
        return recipients, dict(cursor.fetchall())


def insert_many_with_outbox(notifications: list[Notification]) -> set:
    """Insert notifications and their outbox rows in one statement; the ids inserted.

    A notification whose idempotency key (or, for a campaign, whose person) is taken already
    is skipped, not an error: the caller decides what a repeat means. An immediate notification
    wakes routing right after commit; the relay steps in only if it has not been routed within
    the grace period. A scheduled one's outbox row waits for its time. One statement, hence one
    transaction: a data-modifying CTE saves the BEGIN/COMMIT round trips.
    """
    if not notifications:
        return set()
    traceparent = tracing.current_traceparent()  # the request's (or task's) trace goes on with each row
    for notification in notifications:
        notification.traceparent = notification.traceparent or traceparent
    columns, select, params = bulk.unnest(Notification, notifications)
    grace = timezone.now() + timedelta(seconds=settings.HERALD_OUTBOX_GRACE_SECONDS)
    sql = (
        f'WITH inserted AS (INSERT INTO "{Notification._meta.db_table}" ({columns}) {select} '
        f'ON CONFLICT DO NOTHING RETURNING "id", "scheduled_at") '
        f'INSERT INTO "{Outbox._meta.db_table}" ("notification_id", "available_at", "relay_count") '
        f'SELECT "id", coalesce("scheduled_at", %s), 0 FROM inserted RETURNING "notification_id"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, grace])
        inserted = {row[0] for row in cursor.fetchall()}
    transaction.on_commit(lambda: counted_accepted([n for n in notifications if n.pk in inserted]))
    return inserted


def counted_accepted(notifications: list[Notification]) -> None:
    """herald_notifications_accepted_total and a log line per notification accepted (after commit)."""
    by_priority: dict[str, int] = {}
    for n in notifications:
        by_priority[n.priority] = by_priority.get(n.priority, 0) + 1
        log.info("notification accepted", extra=fields(event="notification_accepted", notification_id=n.pk, priority=n.priority,
                                                        category=n.type, template=n.template_name, status=n.status))
    for priority, count in by_priority.items():
        metrics.notification_offered(priority, "accepted", count)
    if len(notifications) == 1:
        tracing.annotate(notification_id=notifications[0].pk)


def vanished(user_id: str, api_key: ApiKey | None) -> ApiError:
    """The error for a recipient or API key deleted between the checks and the insert."""
    if api_key is not None and not ApiKey.objects.filter(pk=api_key.pk).exists():
        forget_api_key(api_key)
        return ApiError(401, "unauthorized", "This API key has been deleted.")
    return ApiError(404, "unknown_user", f"No user {user_id!r}; it was deleted.", "user_id")


def replay(idempotency_key: str, body_hash: str) -> Accepted:
    original = Notification.objects.filter(idempotency_key=idempotency_key).first()
    if original is None:  # the conflicting row was rolled back meanwhile; rare, and safe to retry
        raise ApiError(409, "idempotency_conflict", "A request with this key is in flight; retry.", "idempotency_key")
    if original.request_hash != body_hash:
        raise ApiError(
            422, "idempotency_key_reused",
            "This idempotency key was already used with a different request body.", "idempotency_key",
        )
    return Accepted(original, replayed=True)
