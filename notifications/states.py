"""The notification's state table (the engine is core.states.transition)."""

from core.states import Status

S = Status

NOTIFICATION_TRANSITIONS: dict[str, set[str]] = {
    S.SCHEDULED: {S.QUEUED, S.CANCELED},
    S.PENDING: {S.QUEUED, S.CANCELED},
    S.QUEUED: {S.ROUTING, S.CANCELED, S.FAILED},
    # routing → routing: a stale claim taken over after its worker died;
    # routing → queued: routing hit an error and gives its claim back for the retry.
    S.ROUTING: {S.ROUTING, S.QUEUED, S.SENDING, S.FAILED},
    S.SENDING: {S.SENT, S.DELIVERED, S.READ, S.FAILED},
    S.SENT: {S.DELIVERED, S.READ, S.FAILED},
    S.DELIVERED: {S.READ},
    # A dead-lettered delivery requeued by ops brings its notification back to sending.
    S.FAILED: {S.SENDING},
}
