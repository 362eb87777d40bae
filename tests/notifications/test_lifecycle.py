"""A notification's status rolled up from its deliveries."""

import pytest

from notifications.lifecycle import overall_status


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["sent", "failed"], "sent"),
        (["queued", "sending"], "sending"),
        (["delivered", "sent"], "delivered"),
        (["read", "failed"], "read"),
        (["failed", "bounced"], "failed"),
        (["failed", "queued"], "sending"),
        ([], None),
    ],
)
def test_overall_status_is_the_furthest_delivery_or_failed_when_all_failed(statuses, expected):
    assert overall_status(statuses) == expected
