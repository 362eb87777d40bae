"""Outbound destinations: only public addresses, only http(s)."""

import pytest


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8000/hook", "non-public"),
    ("http://169.254.169.254/latest/meta-data", "non-public"),
    ("http://10.1.2.3/x", "non-public"),
    ("http://[::1]/x", "non-public"),
    ("http://[::ffff:127.0.0.1]/x", "non-public"),
    ("http://0.0.0.0/x", "non-public"),
    ("file:///etc/passwd", r"http\(s\)"),
])
def test_webhooks_to_this_network_are_refused_unless_allowed(url, reason):
    from core.network import UnsafeDestination, resolve

    with pytest.raises(UnsafeDestination, match=reason):
        resolve(url)
    if reason == "non-public":
        assert resolve(url, allow_private=True).addresses
