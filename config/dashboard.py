"""The ops dashboard in admin (/admin/ops/): what Herald is doing now and did in the last day.

Per-hour sent and failed by channel and accept → sent p95 by priority come from the rollups
(analytics/rollups.py); lane depths and ages, breaker states and the dead-letter count from the
installation's gauges (config/gauges.py, measured now if beat has not measured them yet); the
newest dead letters link to their admin list, whose action requeues them. Charts are SVG drawn
here: no script, nothing fetched from elsewhere.
"""

from datetime import UTC, timedelta

from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import escape

from analytics import rollups
from config import gauges
from delivery.models import DeadLetter

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
HOURS = 24
BREAKERS = {0: "closed", 1: "half-open", 2: "open"}


def line_chart(title: str, hours: list, series: dict[str, list[float | None]], unit: str = "") -> str:
    """An SVG chart of one line per series over `hours` (a point per hour; None: no value that hour)."""
    width, height, pad, legend = 720, 220, 44, 120
    values = [v for points in series.values() for v in points if v is not None]
    top = (max(values) if values else 0) * 1.1 or 1
    step = (width - legend - 2 * pad) / max(1, len(hours) - 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return pad + i * step, height - pad - value / top * (height - 2 * pad)

    parts = [f'<line x1="{pad}" y1="{height - pad}" x2="{width - legend - pad}" y2="{height - pad}" stroke="#999"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
             f'<text x="2" y="{pad}" font-size="11">{top:.3g}{unit}</text><text x="2" y="{height - pad}" font-size="11">0</text>',
             f'<text x="{pad}" y="{height - 20}" font-size="11">{hours[0]:%m-%d %H:%M}</text>',
             f'<text x="{width - legend - pad - 70}" y="{height - 20}" font-size="11">{hours[-1]:%m-%d %H:%M} UTC</text>',
             f'<text x="{pad}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    for n, (name, points) in enumerate(sorted(series.items())):
        colour = COLOURS[n % len(COLOURS)]
        coords = [xy(i, v) for i, v in enumerate(points) if v is not None]
        if len(coords) == 1:
            parts.append(f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="3" fill="{colour}"/>')
        elif coords:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in coords)}"><title>{escape(name)}</title></polyline>')
        y = pad + 16 * n
        parts.append(f'<rect x="{width - legend}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{width - legend + 14}" y="{y}" font-size="11">{escape(name)}</text>')
    if not values:
        parts.append(f'<text x="{width / 3:.0f}" y="{height / 2:.0f}" font-size="12" fill="#777">nothing in the last {HOURS} hours</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(title)}">{"".join(parts)}</svg>')


def hourly(hours: list, rows: list[dict], field: str, value) -> dict[str, list]:
    """{group value: a point per hour} from rollup rows grouped by `field`."""
    index = {hour: i for i, hour in enumerate(hours)}
    series: dict[str, list] = {}
    for row in rows:
        name = row["group"][field] or "—"
        points = series.setdefault(name, [None] * len(hours))
        at = row["at"].replace(tzinfo=UTC) if row["at"].tzinfo is None else row["at"]
        if at in index:
            points[index[at]] = value(row)
    return series


def ops(request):
    now = timezone.now()
    end = rollups.hour_of(now) + timedelta(hours=1)
    hours = [end - timedelta(hours=HOURS - i) for i in range(HOURS)]
    by_channel = rollups.read(hours[0], end, "hour", ["channel"])
    by_priority = rollups.read(hours[0], end, "hour", ["priority"])
    sent = hourly(hours, by_channel, "channel", lambda row: row["events"]["sent"])
    failed = hourly(hours, by_channel, "channel", lambda row: row["events"]["failed"] + row["events"]["bounced"])
    p95 = hourly(hours, [r for r in by_priority if sum(r["buckets"])], "priority", lambda row: rollups.quantile(0.95, row["buckets"]))
    snapshot = gauges.read_snapshot()
    if snapshot is None or now.timestamp() - snapshot["at"] > 120:
        snapshot = gauges.measure()  # beat has not measured (lately): one measure, under its statement timeout
    lanes = [{"lane": lane, "depth": depth, "age": age} for lane, (depth, age) in snapshot["lanes"].items()]
    letters = list(DeadLetter.objects.filter(requeued_at__isnull=True).select_related("delivery").order_by("-created_at")[:20])
    return TemplateResponse(request, "admin/ops_dashboard.html", {
        "title": "Operations", "site_header": "Herald",
        "sent_chart": line_chart("Sent per hour, by channel", hours, sent),
        "failed_chart": line_chart("Failed or bounced per hour, by channel", hours, failed),
        "latency_chart": line_chart("Accept → sent p95 per hour, by priority", hours, p95, " s"),
        "lanes": lanes, "measured_at": snapshot["at"], "measured_ago": max(0, now.timestamp() - snapshot["at"]),
        "breakers": [{"provider": p, "state": BREAKERS.get(s, s)} for p, s in sorted(snapshot["breakers"].items())],
        "dead_letters": snapshot["dead_letters"], "letters": letters,
    })
