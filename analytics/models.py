from django.contrib.postgres.fields import ArrayField
from django.db import models

from core.metrics import LATENCY_BUCKETS


class DeliveryRollup(models.Model):
    """What happened to deliveries in one hour, per group: counts kept up to date as deliveries move
    (analytics/rollups.py), so a read never scans deliveries, and kept when old deliveries are deleted.

    `latency_buckets[i]` counts sends whose accept → sent took at most LATENCY_BUCKETS[i] seconds
    (and more than the bucket before); the last one counts the rest.
    """

    hour = models.DateTimeField()
    channel = models.CharField(max_length=20)
    provider = models.CharField(max_length=50, blank=True)
    template = models.CharField(max_length=100, blank=True)
    category = models.CharField(max_length=20, blank=True)
    priority = models.CharField(max_length=10, blank=True)
    experiment_arm = models.CharField(max_length=50, blank=True)
    sent = models.BigIntegerField(default=0)
    delivered = models.BigIntegerField(default=0)
    opened = models.BigIntegerField(default=0)
    clicked = models.BigIntegerField(default=0)
    converted = models.BigIntegerField(default=0)
    bounced = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    unsubscribed = models.BigIntegerField(default=0)
    latency_buckets = ArrayField(models.BigIntegerField(), size=len(LATENCY_BUCKETS) + 1)
    latency_count = models.BigIntegerField(default=0)
    latency_sum = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "channel", "provider", "template", "category", "priority", "experiment_arm"],
                                    name="delivery_rollup_one_row_per_group"),
        ]
        indexes = [models.Index(fields=["hour"], name="delivery_rollup_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.channel} {self.template}"
