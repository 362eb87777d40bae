"""Which arm each person is in: a hash of (experiment, person) onto 0–9,999 against the weights,
decided the first time they meet the experiment and kept (a later weight change, or the bandit,
moves only people not assigned yet).

Routing asks once per chunk (`arms_for`): the running experiments of the chunk's templates, the
people already assigned, and one insert for the rest.
"""

import hashlib
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from core import metrics
from experiments.models import HOLDOUT, Assignment, Experiment, Exposure

BUCKETS = 10_000


def bucket(experiment_id: int, person: str) -> int:
    """A stable, uniform position in 0–9,999 for the person in this experiment (any process, any day)."""
    digest = hashlib.sha256(f"herald-experiment:{experiment_id}:{person}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm_at(arms: list[dict], position: int) -> str:
    """The arm whose share of 0–9,999 (in the order of `arms`, by weight) holds `position`."""
    total = sum(arm["weight"] for arm in arms)
    edge = 0.0
    for arm in arms:
        edge += arm["weight"] / total * BUCKETS
        if position < edge:
            return arm["key"]
    return arms[-1]["key"]


@dataclass(frozen=True)
class ArmChoice:
    experiment: Experiment
    arm: str
    version: int | None  # None: the holdout, sent nothing

    @property
    def holdout(self) -> bool:
        return self.arm == HOLDOUT


def arms_for(people: list[tuple[str, int, str]]) -> dict[tuple[int, str, str], ArmChoice]:
    """The arm of each (recipient id, person's id, template name) under the running experiments.

    Returns {(recipient_id, template, channel): choice} for every pair that has a running
    experiment on that template and channel.
    """
    names = {name for _, _, name in people}
    running = list(Experiment.objects.filter(status=Experiment.Status.RUNNING, template__name__in=names).select_related("template"))
    if not running:
        return {}
    by_template: dict[str, list[Experiment]] = {}
    for experiment in running:
        by_template.setdefault(experiment.template.name, []).append(experiment)
    wanted = {(experiment.pk, recipient_id): (experiment, external_id)
              for recipient_id, external_id, name in people for experiment in by_template.get(name, [])}
    known = known_assignments(wanted)
    new = {key: arm_at(experiment.arms, bucket(experiment.pk, external_id))
           for key, (experiment, external_id) in wanted.items() if key not in known}
    if new:
        known.update(assign(new))
    choices = {}
    for (experiment_id, recipient_id), (experiment, _) in wanted.items():
        arm = known[(experiment_id, recipient_id)]
        spec = experiment.arm(arm) or experiment.arms[0]  # an arm removed since: the control
        choices[(recipient_id, experiment.template.name, experiment.channel)] = ArmChoice(experiment, spec["key"], spec.get("version"))
    return choices


def known_assignments(wanted: dict) -> dict[tuple[int, int], str]:
    if not wanted:
        return {}
    experiments = {experiment_id for experiment_id, _ in wanted}
    recipients = {recipient_id for _, recipient_id in wanted}
    return {(e, r): arm for e, r, arm in Assignment.objects.filter(
        experiment_id__in=experiments, recipient_id__in=recipients).values_list("experiment_id", "recipient_id", "arm")
        if (e, r) in wanted}


def assign(new: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
    """Record new assignments; a concurrent router that assigned the same person first wins (same hash,
    but perhaps other weights), and its arm is the one returned."""
    keys = list(new)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO experiments_assignment (experiment_id, recipient_id, arm, assigned_at) "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[]) "
            "ON CONFLICT (experiment_id, recipient_id) DO NOTHING",
            [[e for e, _ in keys], [r for _, r in keys], [new[k] for k in keys], [timezone.now()] * len(keys)],
        )
    return {**new, **known_assignments(dict.fromkeys(keys))}


def record_exposures(exposures: list[tuple[ArmChoice, object, int]]) -> None:
    """(choice, notification id, recipient id) for each notification routed under an experiment."""
    if not exposures:
        return
    now = timezone.now()
    Exposure.objects.bulk_create([
        Exposure(experiment=choice.experiment, notification_id=notification_id, recipient_id=recipient_id,
                 arm=choice.arm, exposed_at=now)
        for choice, notification_id, recipient_id in exposures
    ], ignore_conflicts=True)
    held_out = sum(1 for choice, _, _ in exposures if choice.holdout)
    metrics.exposed(True, held_out)
    metrics.exposed(False, len(exposures) - held_out)


def record_conversion(notification_id, at) -> None:
    Exposure.objects.filter(notification_id=notification_id, converted_at__isnull=True).update(converted_at=at)
