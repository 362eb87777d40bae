"""A person's schedules, for erasure and export (registered in SchedulesConfig.ready)."""

from django.utils import timezone

from schedules.models import Schedule


def of(recipient):
    return Schedule.objects.filter(kind="notification", payload__user_id=recipient.external_id)


def export(recipient) -> list[dict]:
    return [{"id": str(s.pk), "name": s.name, "state": s.state, "rrule": s.rrule, "cron": s.cron, "timezone": s.timezone,
             "notification": s.payload, "created_at": s.created_at.isoformat()} for s in of(recipient).order_by("created_at")]


def erase(recipient) -> None:
    """Their schedules never fire again, and keep nothing of what they would have said."""
    of(recipient).update(state=Schedule.State.CANCELED, next_run_at=None, next_occurrence="",
                         payload={"user_id": "", "erased": True}, updated_at=timezone.now())
