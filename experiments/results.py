"""An experiment's results, counted from the exposure, delivery and event rows, and what follows
from them: a snapshot for the chart and the sequential test, the bandit's new weights, and
auto-promotion of a winner (each with an audit row).

The unit is the person: an arm's "sent" counts the people in it with at least one sent delivery
on the experiment's channel, "opened" those with at least one open (or read), and so on.
"""

from datetime import timedelta

from django.db import OperationalError, connection, transaction
from django.db.models import Count
from django.utils import timezone
from psycopg.errors import QueryCanceled

from core.errors import ApiError
from core.queries import statement_timeout
from experiments import statistics
from experiments.models import HOLDOUT, Assignment, Decision, Experiment, Snapshot
from preferences import store as preference_store
from templates_app import versions

COUNTS_SQL = """
SELECT e.arm,
       count(DISTINCT e.recipient_id),
       count(DISTINCT e.recipient_id) FILTER (WHERE d.sent_at IS NOT NULL),
       count(DISTINCT e.recipient_id) FILTER (WHERE d.delivered_at IS NOT NULL OR d.read_at IS NOT NULL),
       count(DISTINCT e.recipient_id) FILTER (WHERE d.read_at IS NOT NULL),
       count(DISTINCT e.recipient_id) FILTER (WHERE d.clicked_at IS NOT NULL),
       count(DISTINCT e.recipient_id) FILTER (WHERE e.converted_at IS NOT NULL)
FROM experiments_exposure AS e
LEFT JOIN delivery_delivery AS d ON d.notification_id = e.notification_id AND d.channel = %(channel)s
WHERE e.experiment_id = %(experiment)s
GROUP BY e.arm
"""
COLUMNS = ("assigned", "sent", "delivered", "opened", "clicked", "converted")


def counts(experiment: Experiment) -> dict[str, dict[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(COUNTS_SQL, {"channel": experiment.channel, "experiment": experiment.pk})
        found = {row[0]: dict(zip(COLUMNS, row[1:], strict=True)) for row in cursor.fetchall()}
    return {arm["key"]: found.get(arm["key"], dict.fromkeys(COLUMNS, 0)) for arm in experiment.arms}


def compute(experiment: Experiment, previous: dict | None = None) -> dict:
    """Rates, intervals and tests for every arm against the control (the first arm).

    A holdout is compared on conversions only, over everyone assigned (it is sent nothing); the
    other arms on the experiment's metric over the people they were sent to.
    """
    table = counts(experiment)
    control = experiment.arms[0]["key"]
    previous = previous or {}
    arms, comparisons = [], []
    for arm in experiment.arms:
        key, row = arm["key"], table[arm["key"]]
        metric, base = metric_of(experiment, key)
        successes, trials = row[metric], row[base]
        low, high = statistics.wilson_interval(successes, trials, experiment.confidence)
        arms.append({"key": key, "version": arm.get("version"), "weight": arm["weight"], **row,
                     "metric": metric, "base": base, "rate": successes / trials if trials else None, "interval": [low, high]})
    rows = {a["key"]: a for a in arms}
    for a in arms[1:]:
        c = rows[control]
        metric, base = a["metric"], a["base"]
        c_s, c_n = c[metric], c[base]
        z, p = statistics.two_proportion_z(c_s, c_n, a[metric], a[base])
        sequential = statistics.always_valid_p(previous.get(a["key"]), c_s, c_n, a[metric], a[base])
        control_rate, rate = (c_s / c_n if c_n else None), (a[metric] / a[base] if a[base] else None)
        comparisons.append({"arm": a["key"], "against": control, "metric": metric, "z": z, "p": p,
                            "always_valid_p": sequential,
                            "lift": (rate - control_rate) / control_rate if rate is not None and control_rate else None})
    for comparison, adjusted in zip(comparisons, statistics.holm([c["p"] for c in comparisons]), strict=True):
        comparison["p_holm"] = adjusted
    for comparison, adjusted in zip(comparisons, statistics.holm([c["always_valid_p"] for c in comparisons]), strict=True):
        comparison["always_valid_p_holm"] = adjusted
    sendable = [a for a in arms if a["key"] != HOLDOUT]
    chi2, chi2_p = statistics.chi_square([a[a["metric"]] for a in sendable], [a[a["base"]] for a in sendable])
    since = assigned_since_weights(experiment)
    srm_p = statistics.sample_ratio_mismatch([since.get(a["key"], 0) for a in arms], [a["weight"] for a in arms])
    return {
        "arms": arms, "comparisons": comparisons, "chi_square": {"statistic": chi2, "p": chi2_p},
        "sample_ratio": {"p": srm_p, "mismatch": srm_p < statistics.SRM_ALPHA},
        "winner": winner(experiment, arms, comparisons, srm_p),
    }


def compute_within(experiment: Experiment, previous: dict | None, seconds: float) -> dict:
    """`compute`, given at most `seconds` of database time; past that, the latest snapshot (taken by
    the hourly review) marked with when it was taken, so a page or request never hangs on a big one."""
    try:
        with statement_timeout(seconds):
            return {**compute(experiment, previous), "as_of": None}
    except OperationalError as exc:
        if not isinstance(exc.__cause__, QueryCanceled):
            raise
    last = experiment.snapshots.order_by("-taken_at").first()
    if last is None:
        raise ApiError(503, "results_too_slow", f"Counting this experiment's results takes longer than {seconds:g} s; "
                       "they are computed in the background hourly — retry after the next snapshot.")
    return {**last.results, "as_of": last.taken_at.isoformat()}


def assigned_since_weights(experiment: Experiment) -> dict[str, int]:
    """People assigned per arm since the weights last changed: the only ones the current weights
    decided (earlier people keep the arm the earlier weights gave them)."""
    since = experiment.weights_updated_at or experiment.started_at
    rows = Assignment.objects.filter(experiment=experiment)
    if since is not None:
        rows = rows.filter(assigned_at__gte=since)
    return dict(rows.values("arm").annotate(n=Count("id")).values_list("arm", "n"))


def metric_of(experiment: Experiment, arm_key: str) -> tuple[str, str]:
    if arm_key == HOLDOUT or experiment.metric == Experiment.Metric.CONVERTED:
        return "converted", "assigned"
    return experiment.metric, "sent"


def winner(experiment: Experiment, arms: list[dict], comparisons: list[dict], srm_p: float) -> str | None:
    """The arm that beats the control significantly by the always-valid test (Holm-corrected), with
    every arm at the minimum sample and no sample-ratio mismatch; the control when it beats them all."""
    if srm_p < statistics.SRM_ALPHA or any(a[a["base"]] < experiment.min_sample for a in arms if a["key"] != HOLDOUT):
        return None
    alpha = 1 - experiment.confidence
    better = [c for c in comparisons if c["arm"] != HOLDOUT and c["always_valid_p_holm"] < alpha and (c["lift"] or 0) > 0]
    if better:
        return max(better, key=lambda c: c["lift"])["arm"]
    rivals = [c for c in comparisons if c["arm"] != HOLDOUT]
    if rivals and all(c["always_valid_p_holm"] < alpha and (c["lift"] or 0) < 0 for c in rivals):
        return arms[0]["key"]
    return None


def take_snapshot(experiment: Experiment) -> Snapshot:
    """Compute the results now, carrying each arm's running always-valid p forward."""
    last = experiment.snapshots.order_by("-taken_at").first()
    previous = {c["arm"]: c["always_valid_p"] for c in (last.results["comparisons"] if last else [])}
    return Snapshot.objects.create(experiment=experiment, taken_at=timezone.now(), results=compute(experiment, previous))


def review(experiment: Experiment) -> Snapshot:
    """The periodic look (celery beat): snapshot, auto-promote a winner, move the bandit's weights."""
    snapshot = take_snapshot(experiment)
    results = snapshot.results
    if results["sample_ratio"]["mismatch"]:
        record(experiment, "sample_ratio_mismatch", {"p": results["sample_ratio"]["p"]})
    if experiment.auto_promote and results["winner"] and not results["sample_ratio"]["mismatch"]:
        promote(experiment, results["winner"], actor="auto-promotion", detail={"snapshot": snapshot.pk})
    elif experiment.mode == Experiment.Mode.BANDIT and due_for_reweighting(experiment):
        reweight(experiment, results)
    return snapshot


def due_for_reweighting(experiment: Experiment) -> bool:
    last = experiment.weights_updated_at or experiment.started_at
    return last is None or timezone.now() - last >= timedelta(seconds=experiment.bandit_interval_seconds)


def reweight(experiment: Experiment, results: dict) -> None:
    """Thompson sampling over the sendable arms; a holdout keeps its weight (it is a control, not a bet)."""
    sendable = [a for a in results["arms"] if a["key"] != HOLDOUT]
    holdout = next((a["weight"] for a in results["arms"] if a["key"] == HOLDOUT), 0)
    shares = statistics.bandit_weights([a[a["metric"]] for a in sendable], [a[a["base"]] for a in sendable],
                                       experiment.bandit_floor)
    new = dict(zip([a["key"] for a in sendable], [share * (100 - holdout) / 100 for share in shares], strict=True))
    experiment.arms = [{**arm, "weight": round(new.get(arm["key"], arm["weight"]), 2)} for arm in experiment.arms]
    experiment.weights_updated_at = timezone.now()
    experiment.save(update_fields=["arms", "weights_updated_at"])
    record(experiment, "reweighted", {"weights": {arm["key"]: arm["weight"] for arm in experiment.arms}})


def promote(experiment: Experiment, arm_key: str, actor: str, detail: dict | None = None) -> None:
    """Publish the winning arm's version, complete the experiment, and say so in an audit row."""
    arm = experiment.arm(arm_key)
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.status == Experiment.Status.COMPLETED:
            return
        if arm and arm.get("version"):
            versions.publish(experiment.template.name, arm["version"])
        locked.status, locked.winner, locked.ended_at = Experiment.Status.COMPLETED, arm_key, timezone.now()
        locked.save(update_fields=["status", "winner", "ended_at"])
        record(locked, "promoted", {"arm": arm_key, "version": arm.get("version") if arm else None, **(detail or {})}, actor)
    experiment.refresh_from_db()


def record(experiment: Experiment, kind: str, detail: dict, actor: str = "") -> Decision:
    return Decision.objects.create(experiment=experiment, at=timezone.now(), kind=kind, detail=detail, actor=actor)


def holdout_allowed(experiment: Experiment) -> bool:
    category = experiment.template.category
    return bool(category) and preference_store.allows_holdout(category)
