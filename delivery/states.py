"""The delivery's state table (the engine is core.states.transition)."""

from core.states import Status

S = Status

DELIVERY_TRANSITIONS: dict[str, set[str]] = {
    S.QUEUED: {S.SENDING, S.CANCELED},
    # sending → sending: a lease taken over after the worker holding it died.
    # sending → queued: waiting (rate limit, open breaker), which is not a failed attempt.
    # sending → canceled: claimed in a chunk, canceled before its provider call started.
    S.SENDING: {S.SENDING, S.SENT, S.FAILED, S.QUEUED, S.CANCELED},
    S.SENT: {S.DELIVERED, S.READ, S.BOUNCED, S.FAILED},
    S.DELIVERED: {S.READ, S.BOUNCED},
    S.FAILED: {S.QUEUED},
}
