from celery import shared_task

from experiments import results
from experiments.models import Experiment


@shared_task
def review_experiments() -> int:
    """Snapshot every running experiment; auto-promote winners and move bandit weights where asked."""
    running = list(Experiment.objects.filter(status=Experiment.Status.RUNNING).select_related("template"))
    for experiment in running:
        results.review(experiment)
    return len(running)
