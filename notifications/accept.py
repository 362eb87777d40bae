"""Accepting a notification: validate, store it with its outbox row, hand it to routing.

The whole path costs four SQL statements: the API key, the recipient with the template's
variants (one query), the notification and outbox insert (one statement, so one
transaction), and the status update after the routing message is published.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db import IntegrityError, connection
from django.db.models.functions import JSONObject
from django.db.models.sql import InsertQuery
from django.utils import timezone

from core.errors import ApiError
from core.publishing import publish
from core.queues import routing_queue
from core.states import Status, initial_history, transition
from notifications.models import ApiKey, Notification, Outbox
from notifications.policy import default_priority
from notifications.states import NOTIFICATION_TRANSITIONS
from preferences.models import Recipient
from templates_app.models import Template
from templates_app.variables import variable_errors

ROUTE_TASK = "notifications.tasks.route_notification"


@dataclass
class Accepted:
    notification: Notification
    replayed: bool = False


def request_hash(payload: dict) -> str:
    canonical = {k: v for k, v in payload.items() if k != "idempotency_key"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def accept_notification(data: dict, *, raw_payload: dict, api_key: ApiKey | None, idempotency_key: str | None) -> Accepted:
    """Validate `data` against the recipient and template, store it, and publish it for routing."""
    recipient = (
        Recipient.objects.filter(external_id=data["user_id"])
        .annotate(
            template_variants=ArraySubquery(
                Template.objects.filter(name=data["template"]).values(
                    json=JSONObject(channel="channel", locale="locale", schema="variables_schema")
                )
            )
        )
        .first()
    )
    if recipient is None:
        raise ApiError(404, "unknown_user", f"No user {data['user_id']!r}; create it with PUT /api/v1/users/{{user_id}}.", "user_id")
    if not recipient.is_active:
        raise ApiError(422, "user_inactive", f"User {data['user_id']!r} is deactivated.", "user_id")
    variants = recipient.template_variants
    if not variants:
        raise ApiError(400, "unknown_template", f"No template named {data['template']!r}.", "template")
    requested = data.get("channels") or []
    template_channels = {v["channel"] for v in variants}
    for channel in requested:
        if channel not in template_channels:
            raise ApiError(
                400, "no_template_for_channel",
                f"Template {data['template']!r} has no {channel} variant.", "channels",
            )
    relevant = [v for v in variants if not requested or v["channel"] in requested]
    for variant in relevant:
        errors = variable_errors(variant["schema"], data.get("variables", {}))
        if errors:
            field, message = errors[0]
            raise ApiError(400, "invalid_variables", message, field)

    now = timezone.now()
    scheduled_at = data.get("scheduled_at")
    status = Status.SCHEDULED if scheduled_at else Status.PENDING
    notification = Notification(
        recipient=recipient,
        type=data["type"],
        priority=data.get("priority") or default_priority(data["type"]),
        template_name=data["template"],
        variables=data.get("variables", {}),
        requested_channels=requested,
        idempotency_key=idempotency_key,
        request_hash=request_hash(raw_payload) if idempotency_key else "",
        scheduled_at=scheduled_at,
        metadata=data.get("metadata", {}),
        api_key=api_key,
        created_at=now,
        status=status,
        status_changed_at=now,
        status_history=initial_history(status, now),
    )
    # An immediate notification is published right after commit; the relay steps in only
    # if that has not happened within the grace period. A scheduled one waits for its time.
    available_at = scheduled_at or now + timedelta(seconds=settings.HERALD_OUTBOX_GRACE_SECONDS)
    try:
        insert_with_outbox(notification, available_at)
    except IntegrityError:
        if idempotency_key is None:
            raise
        return replay(idempotency_key, notification.request_hash)
    if status == Status.PENDING:
        publish_for_routing(notification)
    return Accepted(notification)


def insert_with_outbox(notification: Notification, available_at) -> None:
    """Insert the notification and its outbox row in one statement, hence one transaction.

    A data-modifying CTE saves the BEGIN/COMMIT round trips an explicit transaction costs.
    """
    fields = Notification._meta.concrete_fields
    query = InsertQuery(Notification)
    query.insert_values(fields, [notification])
    [(insert_sql, params)] = query.get_compiler(using="default").as_sql()
    outbox = Outbox._meta.db_table
    sql = (
        f'WITH inserted AS ({insert_sql} RETURNING "id") '
        f'INSERT INTO "{outbox}" ("notification_id", "available_at", "relay_count") SELECT "id", %s, 0 FROM inserted'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, available_at])


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


def publish_for_routing(notification: Notification) -> bool:
    """Publish the routing message and record the notification as queued."""
    if not publish(ROUTE_TASK, [str(notification.pk)], routing_queue(notification.priority)):
        return False
    if transition(Notification, NOTIFICATION_TRANSITIONS, notification.pk, Status.QUEUED, sources={Status.PENDING, Status.SCHEDULED}):
        notification.status = Status.QUEUED
    return True
