"""The words every Herald app shares: channels, priorities, categories."""

from enum import StrEnum

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    IN_APP = "in_app"
    WEBHOOK = "webhook"


class Priority(models.TextChoices):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class NotificationType(models.TextChoices):
    TRANSACTION = "transaction"
    SECURITY = "security"
    MARKETING = "marketing"
    REMINDER = "reminder"
    SOCIAL = "social"


class ErrorCode(StrEnum):
    """Why an attempt did not end in "sent": the codes Herald's own policy branches on.

    Provider detail with no policy attached (an HTTP status, an SMTP reply, a Twilio error
    number) is kept as `http_503`, `smtp_550`, `twilio_30005` beside these, for people to read.
    """

    # "Not now": nothing is wrong with the message; it waits without using an attempt.
    RATE_LIMITED = "rate_limited"  # the provider answered 429
    ENDPOINT_RATE_LIMITED = "endpoint_rate_limited"  # a webhook endpoint answered 429/503
    RATE_LIMITED_LOCALLY = "rate_limited_locally"  # Herald's own send rate for the provider
    CIRCUIT_OPEN = "circuit_open"
    PROVIDER_BUSY = "provider_busy"  # this worker already has its maximum calls in flight
    # The provider or the network failed us.
    CONNECTION_ERROR = "connection_error"  # never connected: nothing was sent
    TIMEOUT = "timeout"  # sent, no answer: outcome unknown
    CONNECTION_LOST = "connection_lost"  # sent, connection broke: outcome unknown
    WORKER_LOST = "worker_lost"  # our worker died mid-call: outcome unknown
    KILLED_ITS_WORKER = "killed_its_worker"  # workers kept dying while they held it: parked for ops
    OUTCOME_PENDING = "outcome_pending"  # a dead worker's call may still reach the provider: ask it a little later
    UNKNOWN_OUTCOME = "unknown_outcome"  # unknown, and policy is not to risk a duplicate
    AUTH_FAILED = "auth_failed"
    MALFORMED_RESPONSE = "malformed_response"
    PROVIDER_ERROR = "provider_error"  # the provider's code raised
    MALFORMED_PROVIDER_RESULT = "malformed_provider_result"
    # The address.
    UNREGISTERED = "unregistered"  # a push token the platform no longer knows
    INVALID_EMAIL = "invalid_email"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "blocked"  # SendGrid's word: the mailbox exists but refused for now
    DROPPED = "dropped"
    ENDPOINT_GONE = "endpoint_gone"
    FORBIDDEN_DESTINATION = "forbidden_destination"
    UNRESOLVABLE = "unresolvable"
    UNKNOWN_USER = "unknown_user"
    NO_EMAIL = "no_email"
    NO_PHONE = "no_phone"
    NO_DEVICE = "no_device"
    NO_WEBHOOK_URL = "no_webhook_url"
    NO_ADDRESS = "no_address"
    # The message.
    EXPIRED = "expired"  # its time to live ran out
    RENDER_ERROR = "render_error"
    RENDERER_CRASHED = "renderer_crashed"
    INVALID_MESSAGE = "invalid_message"
    INVALID_ARGUMENT = "invalid_argument"
    INTERNAL_ERROR = "internal_error"
    CLAIM_LOST = "claim_lost"  # canceled or taken over before its call: nothing was sent, nothing to record


# Waiting is not failing: these say "not now", use up no attempt, and end only with the time to live.
WAITING_CODES = frozenset({
    ErrorCode.RATE_LIMITED, ErrorCode.ENDPOINT_RATE_LIMITED, ErrorCode.RATE_LIMITED_LOCALLY,
    ErrorCode.CIRCUIT_OPEN, ErrorCode.PROVIDER_BUSY, ErrorCode.OUTCOME_PENDING,
})
