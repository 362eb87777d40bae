"""Which network addresses Herald may call on a caller's behalf (outgoing webhooks).

Recipients' webhook URLs come from API callers; without these checks Herald could be used to
reach its own network: loopback, private ranges, link-local cloud metadata (169.254.169.254).
The addresses checked are the addresses connected to (see `delivery/providers/webhook.py`), so a
name that answers differently the second time (DNS rebinding) gains nothing.
"""

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

# Names that never resolve to anything public, refused without asking DNS.
LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".home.arpa")
# getaddrinfo cannot be cancelled or given a timeout: it runs here, and callers stop waiting for it.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


class UnsafeDestination(ValueError):
    pass


class UnresolvableDestination(Exception):
    """The name did not resolve (now): a reason to try later, not to give up on the address."""


RESOLVE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def non_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _split(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination("Webhook URLs must be http(s) with a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeDestination("The URL's port is not a number between 0 and 65535.") from None
    return parts.scheme, parts.hostname, port


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve(url: str, allow_private: bool = False, timeout: float = RESOLVE_TIMEOUT_SECONDS) -> Destination:
    """The URL's host resolved once; UnsafeDestination if any address is not public."""
    scheme, host, port = _split(url)
    literal = _literal(host)
    if literal:
        addresses = [literal]
    else:
        lookup = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            addresses = list(dict.fromkeys(info[4][0] for info in lookup.result(timeout=timeout)))
        except FutureTimeout:
            raise UnresolvableDestination(f"{host} did not resolve within {timeout:g} s") from None
        except (OSError, UnicodeError) as exc:
            raise UnresolvableDestination(f"Cannot resolve {host}: {exc}") from None
    if not allow_private:
        for address in addresses:
            if non_public(address):
                raise UnsafeDestination(f"{host} resolves to a non-public address ({address}).")
    return Destination(scheme, host, port, tuple(addresses))


def refuse_private_url(url: str, resolve_timeout: float = 1.0) -> None:
    """Raise UnsafeDestination for a URL that plainly points into a private network.

    For saving a URL: a literal non-public address or a local name is refused at once; a name
    is resolved for at most `resolve_timeout` seconds, and one that cannot be resolved now is
    accepted, since it is resolved and checked again before every send.
    """
    scheme, host, port = _split(url)
    literal = _literal(host)
    if literal:
        if non_public(literal):
            raise UnsafeDestination(f"{host} is not a public address.")
        return
    lowered = host.lower().rstrip(".")
    if lowered == LOCAL_NAMES[0] or lowered.endswith(LOCAL_NAMES[1:]):
        raise UnsafeDestination(f"{host} is a local name.")
    try:
        resolve(url, timeout=resolve_timeout)
    except UnresolvableDestination:
        return
