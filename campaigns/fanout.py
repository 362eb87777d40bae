"""Fanning a campaign out into one notification per person, a chunk at a time, exactly once.

Each chunk is one transaction: lock the campaign row, read the next slice of its audience
after the cursor, insert the notifications (with their outbox rows), advance the cursor and
the counts. A worker killed mid-chunk commits nothing, and the retried chunk starts from the
same cursor; a fan-out running twice at once waits on the row lock and then starts after the
other's cursor. The unique (campaign, person) constraint stands behind both: a person never
gets a second notification from one campaign.
"""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign, Topic, TopicSubscription
from core.errors import ApiError
from core.publishing import publish
from core.states import Status, initial_history
from core.vocabulary import Priority
from notifications import send_time
from notifications.accept import check_template, find_recipients_and_variants, insert_many_with_outbox
from notifications.models import Notification
from notifications.routing import cancel_campaign, wake_routing
from preferences import store as preference_store
from preferences.models import Recipient

log = logging.getLogger(__name__)

FAN_OUT_TASK = "campaigns.tasks.fan_out"
FAN_OUT_QUEUE = "low"  # fan-out is bulk work: it never takes a worker from the urgent lanes
# The attribute filters an audience may use, and the value each takes.
AUDIENCE_FILTERS = {"locale": str, "timezone": str, "has_email": bool, "has_phone": bool, "has_webhook_url": bool}

USER_IDS_SLICE_SQL = """
SELECT t.value, t.ord FROM campaigns_campaign AS c,
     jsonb_array_elements_text(c.audience -> 'user_ids') WITH ORDINALITY AS t(value, ord)
WHERE c.id = %s AND t.ord > %s ORDER BY t.ord LIMIT %s
"""


def start(campaign_id) -> bool:
    """Publish the fan-out; if the broker does not take it, the resume sweep will."""
    return publish(FAN_OUT_TASK, [str(campaign_id)], FAN_OUT_QUEUE)


def fan_out(campaign_id) -> None:
    """Fan out chunks for up to HERALD_CHUNK_BUDGET_SECONDS, then hand the rest to a new message."""
    deadline = time.monotonic() + settings.HERALD_CHUNK_BUDGET_SECONDS
    while fan_out_chunk(campaign_id):
        if time.monotonic() > deadline:
            start(campaign_id)
            return


def fan_out_chunk(campaign_id) -> bool:
    """Create the next chunk's notifications; False once the campaign is fanned out (or canceled)."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().defer("audience").filter(pk=campaign_id).first()
        if campaign is None or campaign.status != Campaign.Status.FANNING_OUT:
            return False
        people, skipped, cursor = next_slice(campaign)
        if cursor == campaign.cursor:
            Campaign.objects.filter(pk=campaign.pk).update(
                status=Campaign.Status.FANNED_OUT, fanned_out_at=timezone.now(), progressed_at=timezone.now(),
                targeted=campaign.targeted if campaign.targeted is not None else audience_size(campaign))
            log.info("campaign %s fanned out: %d notifications", campaign.pk, campaign.accepted)
            return False
        now = timezone.now()
        times = send_times(campaign, people, now) if campaign.send_at else {}
        notifications = []
        for recipient_id in people:
            scheduled_at, reason = times.get(recipient_id, (None, None))
            status = Status.SCHEDULED if scheduled_at else Status.PENDING
            notifications.append(Notification(
                recipient_id=recipient_id, type=campaign.type, priority=campaign.priority,
                template_name=campaign.template_name, variables=campaign.variables, requested_channels=campaign.channels,
                metadata=campaign.metadata, api_key_id=campaign.api_key_id, campaign_id=campaign.pk, created_at=now,
                status=status, status_changed_at=now, status_history=initial_history(status, now),
                scheduled_at=scheduled_at, send_time=reason, schedule_id=campaign.schedule_id,
            ))
        inserted = insert_many_with_outbox(notifications)
        for reason, count in skipped.items():
            campaign.skipped[reason] = campaign.skipped.get(reason, 0) + count
        Campaign.objects.filter(pk=campaign.pk).update(
            cursor=cursor, accepted=campaign.accepted + len(inserted), skipped=campaign.skipped, progressed_at=now,
            targeted=campaign.targeted if campaign.targeted is not None else audience_size(campaign),
        )
        if inserted:
            transaction.on_commit(lambda: wake_routing(campaign.priority))
    return True


def send_times(campaign: Campaign, people: list[int], now) -> dict[int, tuple]:
    """{person: (scheduled_at or None for at once, the reason)} for a campaign sent at each person's own time."""
    zones = dict(Recipient.objects.filter(pk__in=people).values_list("pk", "timezone"))
    spec = campaign.send_at
    if "local_time" in spec:
        return {pk: send_time.at_local_time(spec["local_time"], zones[pk], now) for pk in people}
    if "local_datetime" in spec:
        local = datetime.fromisoformat(spec["local_datetime"])
        return {pk: send_time.at_local_datetime(local, zones[pk], now) for pk in people}
    hours = send_time.engagement_hours(people, now)
    default_hour = preference_store.category_policy(campaign.type).default_send_hour
    times = {}
    for pk in people:
        at, reason = send_time.optimal(hours.get(pk, {}), zones[pk], spec.get("window_hours", 24), default_hour, now)
        times[pk] = (at if at > now else None, reason)
    return times


def check(data: dict, prefix: str = "") -> None:
    """ApiError (its field under `prefix`) for an unknown topic or template, or variables the template does not accept."""
    audience = data["audience"]
    if "topic" in audience and not topic_exists(audience["topic"]):
        raise ApiError(400, "unknown_topic", f"No topic {audience['topic']!r}.", f"{prefix}audience.topic")
    _, variants = find_recipients_and_variants(set(), {data["template"]})
    try:
        check_template(data["template"], variants.get(data["template"], []), data.get("channels") or [], data.get("variables", {}))
    except ApiError as exc:
        exc.field = f"{prefix}{exc.field}" if exc.field else exc.field
        raise


def create(data: dict, api_key, schedule_id=None) -> Campaign:
    """Check and store a campaign request (as CampaignRequest validated it); its fan-out starts after commit.

    ApiError for an unknown topic or template, or variables the template does not accept.
    """
    check(data)
    audience = data["audience"]
    send_at = data.get("send_at")
    if send_at == send_time.OPTIMAL:
        send_at = {"optimal": True, "window_hours": data.get("send_window_hours") or 24}
    elif send_at:
        send_at = {"local_time": send_at}
    else:
        send_at = data.get("send_at_local") and {"local_datetime": data["send_at_local"]}
    campaign = Campaign.objects.create(
        # Bulk lanes unless the caller says otherwise: a campaign must not queue in front of a password reset.
        name=data.get("name", ""), type=data["type"], priority=data.get("priority") or Priority.LOW,
        template_name=data["template"], variables=data.get("variables", {}), channels=data.get("channels") or [],
        metadata=data.get("metadata", {}), audience=audience, api_key=api_key, send_at=send_at or None,
        schedule_id=schedule_id, targeted=len(audience["user_ids"]) if "user_ids" in audience else None,
    )
    transaction.on_commit(lambda: start(campaign.pk))
    return campaign


def next_slice(campaign: Campaign) -> tuple[list[int], dict[str, int], int]:
    """(recipient ids to notify, people skipped by reason, the cursor after them) for the next chunk."""
    size = settings.HERALD_FAN_OUT_CHUNK
    kind, value = audience_of(campaign)
    skipped: dict[str, int] = {}
    if kind == "user_ids":
        with connection.cursor() as cursor:
            cursor.execute(USER_IDS_SLICE_SQL, [campaign.pk, campaign.cursor, size])
            rows = cursor.fetchall()
        if not rows:
            return [], skipped, campaign.cursor
        known = {user_id: (pk, active) for user_id, pk, active in Recipient.objects.filter(
            external_id__in=[user_id for user_id, _ in rows]).values_list("external_id", "id", "is_active")}
        unknown = sum(1 for user_id, _ in rows if user_id not in known)
        inactive = sum(1 for pk, active in known.values() if not active)
        skipped = {reason: n for reason, n in (("unknown_user", unknown), ("user_inactive", inactive)) if n}
        return [pk for pk, active in known.values() if active], skipped, rows[-1][1]
    if kind == "topic":
        rows = list(TopicSubscription.objects.filter(topic__key=value, recipient_id__gt=campaign.cursor)
                    .order_by("recipient_id").values_list("recipient_id", "recipient__is_active")[:size])
    else:
        rows = list(Recipient.objects.filter(audience_filter(value), id__gt=campaign.cursor)
                    .order_by("id").values_list("id", "is_active")[:size])
    if not rows:
        return [], skipped, campaign.cursor
    inactive = sum(1 for _, active in rows if not active)
    return [pk for pk, active in rows if active], ({"user_inactive": inactive} if inactive else {}), rows[-1][0]


def audience_of(campaign: Campaign) -> tuple[str, object]:
    """The audience's kind and its topic key or filter (the user ids stay in the database)."""
    row = Campaign.objects.filter(pk=campaign.pk).values_list("audience__topic", "audience__filter", "audience__everyone").get()
    if row[0] is not None:
        return "topic", row[0]
    if row[1] is not None:
        return "filter", row[1]
    if row[2] is True:
        return "everyone", True
    return "user_ids", None


def audience_filter(spec: dict | bool) -> Q:
    """The recipients an attribute filter (or `everyone`: True) selects (its keys were checked against AUDIENCE_FILTERS)."""
    q = Q()
    if spec is True:
        return q
    for key, value in spec.items():
        if key in ("locale", "timezone"):
            q &= Q(**{key: value})
        else:
            field = key.removeprefix("has_")
            q &= ~Q(**{field: ""}) if value else Q(**{field: ""})
    return q


def audience_size(campaign: Campaign) -> int:
    kind, value = audience_of(campaign)
    if kind == "topic":
        return TopicSubscription.objects.filter(topic__key=value).count()
    if kind in ("filter", "everyone"):
        return Recipient.objects.filter(audience_filter(value)).count()
    return Campaign.objects.filter(pk=campaign.pk).values_list("targeted", flat=True).get() or 0


def resume_stalled(stalled_after: float) -> int:
    """Restart fan-outs that made no progress for `stalled_after` seconds (their worker died, or their message was lost)."""
    since = timezone.now() - timedelta(seconds=stalled_after)
    stalled = list(Campaign.objects.filter(status=Campaign.Status.FANNING_OUT, progressed_at__lt=since).values_list("pk", flat=True))
    for campaign_id in stalled:
        start(campaign_id)
    return len(stalled)


def cancel(campaign_id) -> bool:
    """Cancel the campaign and everything it has not sent; False if it was canceled already."""
    with transaction.atomic():
        moved = Campaign.objects.filter(pk=campaign_id).exclude(status=Campaign.Status.CANCELED).update(
            status=Campaign.Status.CANCELED, canceled_at=timezone.now())
        if moved:
            cancel_campaign(campaign_id)
    return bool(moved)


def topic_exists(key: str) -> bool:
    return Topic.objects.filter(key=key).exists()
