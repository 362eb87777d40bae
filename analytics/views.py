"""GET /api/v1/analytics/deliveries: what deliveries did, per hour or day and per group, from the rollups."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import rollups
from core.errors import ApiError

INTERVALS = ("hour", "day")
# A read covers whole hours; hourly points over more than this many days are refused (ask for days).
MAX_HOURLY_DAYS = 31

COUNTS = {event: serializers.IntegerField() for event in rollups.EVENTS}
LATENCY = {
    "latency_p50_seconds": serializers.FloatField(allow_null=True, help_text="Accept → sent, median (null: nothing sent)."),
    "latency_p95_seconds": serializers.FloatField(allow_null=True, help_text="Accept → sent, 95th percentile."),
}
GROUP = serializers.DictField(child=serializers.CharField(allow_blank=True),
                              help_text="The group's value for each `group_by` field (empty object without group_by).")
POINT = inline_serializer("DeliveryAnalyticsPoint", {"at": serializers.DateTimeField(), "group": GROUP, **COUNTS, **LATENCY})
TOTAL = inline_serializer("DeliveryAnalyticsTotal", {"group": GROUP, **COUNTS, **LATENCY})


def parse_time(name: str, raw: str | None, default: datetime) -> datetime:
    if raw is None or raw == "":
        return default
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(400, "invalid", f"{name} must be an ISO 8601 date or date-time, e.g. 2026-05-01T00:00:00Z.", name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse(params) -> tuple[datetime, datetime, str, list[str]]:
    """(from, to, interval, group_by) from the query string; ApiError naming the field at fault."""
    unknown = sorted(set(params) - {"from", "to", "interval", "group_by"})
    if unknown:
        raise ApiError(400, "unknown_parameter", f"Unknown parameter {unknown[0]!r}.", unknown[0])
    interval = params.get("interval") or "hour"
    if interval not in INTERVALS:
        raise ApiError(400, "invalid_choice", "interval must be hour or day.", "interval")
    now = timezone.now()
    end = parse_time("to", params.get("to"), now)
    start = parse_time("from", params.get("from"), end - timedelta(days=1))
    start = rollups.hour_of(start.astimezone(UTC))
    if start >= end:
        raise ApiError(400, "invalid", "from must be before to.", "from")
    days = (end - start).total_seconds() / 86400
    if days > settings.HERALD_ANALYTICS_MAX_DAYS:
        raise ApiError(400, "range_too_long", f"A read covers at most {settings.HERALD_ANALYTICS_MAX_DAYS} days.", "from")
    if interval == "hour" and days > MAX_HOURLY_DAYS:
        raise ApiError(400, "range_too_long", f"Hourly points cover at most {MAX_HOURLY_DAYS} days; ask for interval=day.", "interval")
    group_by = [name.strip() for name in (params.get("group_by") or "").split(",") if name.strip()]
    for name in group_by:
        if name not in rollups.GROUPS:
            raise ApiError(400, "invalid_choice", f"Cannot group by {name!r}: one of {', '.join(rollups.GROUPS)}.", "group_by")
    if len(set(group_by)) != len(group_by):
        raise ApiError(400, "invalid", "group_by names a field twice.", "group_by")
    return start, end, interval, group_by


def with_latency(events: dict, buckets: list[int]) -> dict:
    return {**events, "latency_p50_seconds": rollups.quantile(0.5, buckets), "latency_p95_seconds": rollups.quantile(0.95, buckets)}


class DeliveryAnalytics(APIView):
    required_scopes = {"GET": "analytics:read"}

    @extend_schema(
        parameters=[
            OpenApiParameter("from", str, description="Start (ISO 8601; read from its whole hour). Default: 24 hours before `to`."),
            OpenApiParameter("to", str, description="End, exclusive (ISO 8601). Default: now."),
            OpenApiParameter("interval", str, enum=list(INTERVALS), description="Points per hour (up to 31 days) or per UTC day."),
            OpenApiParameter("group_by", str, description=f"Comma-separated, any of: {', '.join(rollups.GROUPS)}."),
        ],
        responses=inline_serializer("DeliveryAnalytics", {
            "from": serializers.DateTimeField(), "to": serializers.DateTimeField(),
            "interval": serializers.ChoiceField(INTERVALS), "group_by": serializers.ListField(child=serializers.CharField()),
            "points": serializers.ListField(child=POINT), "totals": serializers.ListField(child=TOTAL),
        }),
    )
    def get(self, request):
        """Deliveries sent, delivered, opened, clicked, converted, bounced, failed and unsubscribed, with
        accept → sent p50 and p95, per hour or day and per group, from hourly rollups kept as deliveries
        move (never a scan of the deliveries). At most HERALD_ANALYTICS_MAX_DAYS (92) days per read."""
        start, end, interval, group_by = parse(request.query_params)
        found = rollups.read(start, end, interval, group_by)
        totals: dict[tuple, dict] = defaultdict(lambda: {"events": dict.fromkeys(rollups.EVENTS, 0), "buckets": [0] * rollups.BUCKETS})
        points = []
        for row in found:
            points.append({"at": row["at"].replace(tzinfo=UTC), "group": row["group"],
                           **with_latency(row["events"], row["buckets"])})
            total = totals[tuple(row["group"].items())]
            for event, number in row["events"].items():
                total["events"][event] += number
            total["buckets"] = [a + b for a, b in zip(total["buckets"], row["buckets"], strict=True)]
        return Response({
            "from": start, "to": end, "interval": interval, "group_by": group_by, "points": points,
            "totals": [{"group": dict(key), **with_latency(total["events"], total["buckets"])} for key, total in totals.items()],
        })
