"""A/B tests of a template's versions on one channel, and who was assigned to which arm."""

from django.db import models
from django.db.models import Q

from core.vocabulary import Channel
from templates_app.models import MessageTemplate

HOLDOUT = "holdout"


class Experiment(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        PAUSED = "paused"
        COMPLETED = "completed"

    class Metric(models.TextChoices):
        OPENED = "opened"
        CLICKED = "clicked"
        CONVERTED = "converted"

    class Mode(models.TextChoices):
        FIXED = "fixed"  # weights as set; significance decides
        BANDIT = "bandit"  # Thompson sampling moves the weights toward the better arms

    name = models.CharField(max_length=200)
    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="experiments")
    channel = models.CharField(max_length=20, choices=Channel.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    metric = models.CharField(max_length=20, choices=Metric.choices, default=Metric.CLICKED)
    # [{"key": "A", "version": 3, "weight": 50}, …]; a holdout arm has key "holdout" and no version.
    # The first arm is the control every other arm is compared with.
    arms = models.JSONField()
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.FIXED)
    confidence = models.FloatField(default=0.95)
    min_sample = models.PositiveIntegerField(default=1000, help_text="People per arm before a winner may be declared.")
    auto_promote = models.BooleanField(default=False, help_text="Publish the winner once it is significant.")
    bandit_floor = models.FloatField(default=0.05, help_text="The smallest share an arm keeps under the bandit.")
    bandit_interval_seconds = models.PositiveIntegerField(default=3600)
    weights_updated_at = models.DateTimeField(null=True, blank=True)
    winner = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["template", "channel"], condition=Q(status="running"),
                                    name="one_running_experiment_per_template_channel"),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.template.name}, {self.channel})"

    def arm(self, key: str) -> dict | None:
        return next((arm for arm in self.arms if arm["key"] == key), None)


ExperimentStatus = Experiment.Status  # named for the OpenAPI schema (SPECTACULAR_SETTINGS)


class Assignment(models.Model):
    """A person's arm in an experiment: decided once (by hash, at the weights of that moment) and kept."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    recipient_id = models.BigIntegerField()
    arm = models.CharField(max_length=50)
    assigned_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "recipient_id"], name="one_arm_per_person")]
        indexes = [models.Index(fields=["experiment", "arm"])]


class Exposure(models.Model):
    """A notification routed under an experiment, as the arm its person is in (holdouts included:
    they are sent nothing, and their conversions are the baseline)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    notification_id = models.UUIDField()
    recipient_id = models.BigIntegerField()
    arm = models.CharField(max_length=50)
    exposed_at = models.DateTimeField()
    converted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "notification_id"], name="one_exposure_per_notification")]
        indexes = [models.Index(fields=["notification_id"]), models.Index(fields=["experiment", "arm"])]


class Snapshot(models.Model):
    """The experiment's counts and always-valid p-values at one moment: the chart, and the running
    minimum the sequential test needs."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField()
    results = models.JSONField()

    class Meta:
        ordering = ["taken_at"]


class Decision(models.Model):
    """An audit row: a winner declared or promoted, weights moved by the bandit, a warning raised."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="decisions")
    at = models.DateTimeField()
    kind = models.CharField(max_length=30)  # promoted, declared, reweighted, sample_ratio_mismatch
    detail = models.JSONField(default=dict)
    actor = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-at"]
