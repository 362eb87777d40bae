"""Build the hourly delivery rollups (analytics/) from the deliveries already stored: once, for an
installation that had deliveries before the rollups existed. Counting goes on as deliveries move."""

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from analytics import rollups
from core.metrics import LATENCY_BUCKETS

# Each delivery in the hour of its sent_at (sent, latency), delivered_at, read_at, clicked_at and failed_at.
BACKFILL_SQL = """
INSERT INTO analytics_deliveryrollup AS r (hour, channel, provider, template, category, priority, experiment_arm,
    sent, delivered, opened, clicked, converted, bounced, failed, unsubscribed, latency_buckets, latency_count, latency_sum)
SELECT hour, channel, provider, template, category, priority, arm, sum(sent), sum(delivered), sum(opened), sum(clicked), 0,
       sum(bounced), sum(failed), 0, ARRAY[{buckets}]::bigint[], sum(sent), coalesce(sum(latency), 0)
FROM (
    SELECT date_trunc('hour', e.at) AS hour, d.channel, left(d.provider, 50) AS provider, n.template_name AS template,
           n.type AS category, d.priority, d.experiment_arm AS arm, (e.kind = 'sent')::int AS sent,
           (e.kind = 'delivered')::int AS delivered, (e.kind = 'opened')::int AS opened, (e.kind = 'clicked')::int AS clicked,
           (e.kind = 'bounced')::int AS bounced, (e.kind = 'failed')::int AS failed,
           CASE WHEN e.kind = 'sent' THEN extract(epoch FROM d.sent_at - coalesce(n.scheduled_at, n.created_at)) END AS latency
    FROM delivery_delivery AS d JOIN notifications_notification AS n ON n.id = d.notification_id
    CROSS JOIN LATERAL (VALUES ('sent', d.sent_at), ('delivered', d.delivered_at), ('opened', d.read_at),
                               ('clicked', d.clicked_at),
                               ('failed', CASE WHEN d.status = 'failed' THEN d.failed_at END),
                               ('bounced', CASE WHEN d.status = 'bounced' THEN d.status_changed_at END)) AS e(kind, at)
    WHERE e.at IS NOT NULL
) AS facts
GROUP BY hour, channel, provider, template, category, priority, arm
ON CONFLICT (hour, channel, provider, template, category, priority, experiment_arm) DO NOTHING
"""


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        bounds = [0.0, *LATENCY_BUCKETS]
        buckets = ", ".join(
            f"sum(CASE WHEN latency > {low} AND latency <= {high} THEN 1 ELSE 0 END)" if i else
            f"sum(CASE WHEN latency <= {high} THEN 1 ELSE 0 END)"
            for i, (low, high) in enumerate(zip(bounds, LATENCY_BUCKETS, strict=False)))
        buckets += f", sum(CASE WHEN latency > {LATENCY_BUCKETS[-1]} THEN 1 ELSE 0 END)"
        assert buckets.count("sum(") == rollups.BUCKETS
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(BACKFILL_SQL.format(buckets=buckets))
            self.stdout.write(f"{cursor.rowcount} rollup rows written")
