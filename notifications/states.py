"""The notification's state table (the engine is core.states.transition)."""

from core.states import Status

S = Status

NOTIFICATION_TRANSITIONS: dict[str, set[str]] = {
    # Accepted rows wait as pending (or scheduled) until routing claims them: the outbox row,
    # not a status, says whether they still need publishing. Failed: routing never took them.
    S.SCHEDULED: {S.QUEUED, S.ROUTING, S.CANCELED, S.FAILED},
    S.PENDING: {S.QUEUED, S.ROUTING, S.CANCELED, S.FAILED},
    S.QUEUED: {S.ROUTING, S.CANCELED, S.FAILED},
    # routing → routing: a stale claim taken over after its worker died;
    # routing → queued: routing hit an error and gives its claim back for the retry.
    # routing → canceled: a campaign canceled mid-routing; the router then loses its claim.
    # routing → batched: an item held for its batch; the batch's own notification is what is sent.
    # routing → deduplicated: a repeat within the dedup window, sent nothing (final).
    S.ROUTING: {S.ROUTING, S.QUEUED, S.SENDING, S.FAILED, S.CANCELED, S.BATCHED, S.DEDUPLICATED},
    # sending → canceled: every delivery was canceled before it went out.
    S.SENDING: {S.SENT, S.DELIVERED, S.READ, S.FAILED, S.CANCELED},
    S.SENT: {S.DELIVERED, S.READ, S.FAILED},
    S.DELIVERED: {S.READ},
    # A dead-lettered delivery requeued by ops brings its notification back to sending.
    S.FAILED: {S.SENDING},
}
