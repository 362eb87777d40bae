from django.db import models
from django.db.models import Q
from django.utils import timezone


class InboxItem(models.Model):
    """One in-app notification in a recipient's inbox: unread until read, optionally seen and archived."""

    recipient = models.ForeignKey("preferences.Recipient", on_delete=models.CASCADE, related_name="inbox_items")
    # One item per in-app delivery, however often the delivery task runs.
    delivery = models.OneToOneField(
        "delivery.Delivery", on_delete=models.SET_NULL, null=True, blank=True, related_name="inbox_item"
    )
    notification = models.ForeignKey(
        "notifications.Notification", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    title = models.TextField(blank=True)
    body = models.TextField(blank=True)
    icon = models.URLField(max_length=2000, blank=True)
    image = models.URLField(max_length=2000, blank=True)
    action_url = models.CharField(max_length=2000, blank=True)
    category = models.CharField(max_length=50, blank=True)
    group_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    # The recipient's inbox version when this item last changed; clients drop older news.
    version = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["recipient", "-id"], name="inbox_item_recipient_newest"),
            models.Index(
                fields=["recipient"], name="inbox_item_unread",
                condition=Q(read_at__isnull=True, archived_at__isnull=True),
            ),
            models.Index(fields=["created_at"], name="inbox_item_age"),
        ]

    def __str__(self) -> str:
        return self.title or self.body[:40]


class InboxState(models.Model):
    """A recipient's inbox version, bumped by every change.

    Bumping it locks the row, so changes to one inbox are serialised: item ids are handed
    out in commit order (a client resuming after id N cannot miss a later-committed item
    with a smaller id), and every broadcast carries a version a client can order by.
    """

    recipient = models.OneToOneField("preferences.Recipient", on_delete=models.CASCADE, primary_key=True)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"inbox of {self.recipient_id} at version {self.version}"
