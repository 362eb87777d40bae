"""What delivery tells the apps above it (notifications listens; see NotificationsConfig.ready).

Sent synchronously inside the transaction that made the change, so a receiver's writes commit
or roll back with it: a worker killed in between cannot leave the notification behind.
"""

from django.dispatch import Signal

# A delivery changed state. `status`: where it moved if forward (sent, delivered, read), else None.
delivery_moved = Signal()
# Many deliveries were sent at once (a chunk): `notification_ids` of their notifications.
deliveries_sent = Signal()
# A channel cannot reach the person at all (dead address, every token gone): `delivery`, `reason`.
delivery_cannot_reach = Signal()
