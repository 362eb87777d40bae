"""The topics a person follows, for erasure and export (registered in CampaignsConfig.ready)."""

from campaigns.models import TopicSubscription


def export(recipient) -> list[dict]:
    rows = TopicSubscription.objects.filter(recipient=recipient).select_related("topic").order_by("topic__key")
    return [{"topic": row.topic.key, "subscribed_at": row.created_at.isoformat()} for row in rows]


def erase(recipient) -> None:
    TopicSubscription.objects.filter(recipient=recipient).delete()
