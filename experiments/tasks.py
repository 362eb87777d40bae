import logging

from celery import shared_task

from experiments import results
from experiments.models import Experiment

log = logging.getLogger(__name__)


@shared_task
def review_experiments() -> int:
    """Snapshot every running experiment; auto-promote winners and move bandit weights where asked."""
    running = list(Experiment.objects.filter(status=Experiment.Status.RUNNING).select_related("template"))
    for experiment in running:
        try:
            results.review(experiment)
        except Exception:  # one experiment's trouble must not stop the others' reviews
            log.exception("experiment %s: review failed", experiment.pk)
    return len(running)
