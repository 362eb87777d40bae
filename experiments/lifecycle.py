"""Creating, starting, pausing and ending experiments, with the checks each step needs."""

import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ApiError
from experiments import results
from experiments.models import HOLDOUT, Experiment
from templates_app.models import MessageTemplate

ARM_KEY = re.compile(r"\A[-a-zA-Z0-9_]{1,50}\Z")
# Results compare every arm with the control: more arms than this is a survey, not an A/B test.
MAX_ARMS = 20


def checked_arms(template: MessageTemplate, channel: str, arms: list[dict], field: str = "arms") -> list[dict]:
    """The arms, keyed and checked: published versions of this template that have the channel, a
    holdout only where the category may go unsent, and weights that sum to 100."""
    published = {v.number: v for v in template.versions.filter(published_at__isnull=False)}
    checked, keys = [], set()
    if not isinstance(arms, list):
        raise ApiError(400, "invalid", "Arms are a list.", field)
    if len(arms) > MAX_ARMS:
        raise ApiError(400, "invalid", f"An experiment has at most {MAX_ARMS} arms.", field)
    for index, arm in enumerate(arms):
        if not isinstance(arm, dict):
            raise ApiError(400, "invalid", "Each arm is an object with a weight and a version.", f"{field}.{index}")
        version = arm.get("version")
        key = arm.get("key") or (HOLDOUT if version is None else f"v{version}")
        weight = arm.get("weight")
        if not isinstance(key, str) or not ARM_KEY.match(key):
            raise ApiError(400, "invalid", "An arm's key is 1–50 letters, digits, hyphens or underscores.", f"{field}.{index}.key")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 100:
            raise ApiError(400, "invalid", "A weight is a number above 0 and at most 100.", f"{field}.{index}.weight")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ApiError(400, "invalid", "A version is a version number (null for the holdout).", f"{field}.{index}.version")
        if key in keys:
            raise ApiError(400, "invalid", f"Two arms are called {key!r}.", f"{field}.{index}.key")
        keys.add(key)
        if version is None or key == HOLDOUT:
            if version is not None or key != HOLDOUT:
                raise ApiError(400, "invalid", "The holdout arm is key 'holdout' with no version.", f"{field}.{index}.version")
            checked.append({"key": HOLDOUT, "version": None, "weight": arm["weight"]})
            continue
        if version not in published:
            raise ApiError(400, "invalid", f"Version {version} is not a published version of {template.name!r}.",
                           f"{field}.{index}.version")
        if not any(content["channel"] == channel for content in published[version].contents):
            raise ApiError(400, "invalid", f"Version {version} of {template.name!r} has no {channel} content.",
                           f"{field}.{index}.version")
        checked.append({"key": key, "version": version, "weight": arm["weight"]})
    if len([a for a in checked if a["key"] != HOLDOUT]) < 1 or len(checked) < 2:
        raise ApiError(400, "invalid", "An experiment needs at least two arms, one of them a version.", field)
    if checked[0]["key"] == HOLDOUT:
        raise ApiError(400, "invalid", "The first arm is the control and must be a version.", f"{field}.0.version")
    if abs(sum(a["weight"] for a in checked) - 100) > 1e-6:
        raise ApiError(400, "invalid", f"Weights must sum to 100 (they sum to {sum(a['weight'] for a in checked):g}).", field)
    return checked


def create(data: dict) -> Experiment:
    template = MessageTemplate.objects.filter(name=data["template"]).first()
    if template is None:
        raise ApiError(400, "invalid", f"No versioned template named {data['template']!r}.", "template")
    experiment = Experiment(
        name=data["name"], template=template, channel=data["channel"], metric=data["metric"], mode=data["mode"],
        confidence=data["confidence"], min_sample=data["min_sample"], auto_promote=data["auto_promote"],
        bandit_floor=data["bandit_floor"], bandit_interval_seconds=data["bandit_interval_seconds"],
    )
    experiment.arms = checked_arms(template, data["channel"], data["arms"])
    refuse_holdout_if_required(experiment)
    experiment.save()
    return experiment


# A holdout is a control group, not a way to stop sending: at most this share of people.
MAX_HOLDOUT_WEIGHT = 50


def refuse_holdout_if_required(experiment: Experiment) -> None:
    """A holdout only on a template whose category people may unsubscribe from (marketing, social), at most 50 %."""
    template = experiment.template
    holdout = next((arm for arm in experiment.arms if arm["key"] == HOLDOUT), None)
    if holdout is None:
        return
    if not results.holdout_allowed(experiment):
        raise ApiError(400, "invalid", f"{template.name!r} is for the category {template.category or '(none)'!r}: a holdout "
                       "is allowed only on categories people may unsubscribe from (marketing, social), since it sends "
                       "its people nothing.", "arms")
    if holdout["weight"] > MAX_HOLDOUT_WEIGHT:
        raise ApiError(400, "invalid", f"A holdout may hold back at most {MAX_HOLDOUT_WEIGHT} % of people.", "arms")


def change_weights(experiment: Experiment, arms: list[dict]) -> Experiment:
    """New weights for the same arms: people already assigned keep their arm."""
    if experiment.status == Experiment.Status.COMPLETED:
        raise ApiError(409, "experiment_completed", "A completed experiment does not change.", "status")
    if sorted(a.get("key") or "" for a in arms) != sorted(a["key"] for a in experiment.arms):
        raise ApiError(400, "invalid", "Weights can change, arms cannot: give every arm by its key.", "arms")
    versions = {a["key"]: a["version"] for a in experiment.arms}
    experiment.arms = checked_arms(experiment.template, experiment.channel,
                                   [{"key": a["key"], "version": versions[a["key"]], "weight": a["weight"]} for a in arms])
    refuse_holdout_if_required(experiment)
    experiment.weights_updated_at = timezone.now()  # the sample-ratio check compares only later assignments
    experiment.save(update_fields=["arms", "weights_updated_at"])
    return experiment


def start(experiment: Experiment) -> Experiment:
    if experiment.status not in (Experiment.Status.DRAFT, Experiment.Status.PAUSED):
        raise ApiError(409, "invalid_state", f"A {experiment.status} experiment cannot start.", "status")
    try:
        with transaction.atomic():
            experiment.status = Experiment.Status.RUNNING
            experiment.started_at = experiment.started_at or timezone.now()
            experiment.save(update_fields=["status", "started_at"])
    except IntegrityError:
        raise ApiError(409, "experiment_running", f"Another experiment is running on {experiment.template.name!r} "
                       f"({experiment.channel}).", "template") from None
    return experiment


def pause(experiment: Experiment) -> Experiment:
    if experiment.status != Experiment.Status.RUNNING:
        raise ApiError(409, "invalid_state", f"A {experiment.status} experiment cannot pause.", "status")
    experiment.status = Experiment.Status.PAUSED
    experiment.save(update_fields=["status"])
    return experiment


def declare_winner(experiment: Experiment, arm_key: str, actor: str) -> Experiment:
    """Ops' decision: publish the arm's version (nothing for the holdout) and complete the experiment."""
    if experiment.status == Experiment.Status.COMPLETED:
        raise ApiError(409, "experiment_completed", "This experiment already has its winner.", "status")
    if experiment.arm(arm_key) is None:
        raise ApiError(400, "invalid", f"No arm {arm_key!r}.", "arm")
    results.promote(experiment, arm_key, actor=actor, detail={"declared": True})
    return experiment
