"""`SimulatorClient`: drive a simulator, in this process or another, through its control API."""

import json
import urllib.error
import urllib.parse
import urllib.request

CONTROL = "/_simulator"


class SimulatorError(Exception):
    """The control API refused a call; `field` names the argument at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None):
        super().__init__(f"{message} (field: {field})" if field else message)
        self.status, self.code, self.field = status, code, field


class SimulatorClient:
    def __init__(self, http_url: str, timeout: float = 10):
        self.base_url = http_url.rstrip("/") + CONTROL
        self.timeout = timeout

    def requests(self, provider: str | None = None, since: int = 0) -> list[dict]:
        """Every recorded request (optionally one provider's, or only those after request id `since`),
        oldest first: provider, method, path, headers (lower-case names), body (parsed), recipient,
        recipients, status, error, message_id, response_body, fault, rate_limited, timed_out, answer_lost, time."""
        query = {key: value for key, value in (("provider", provider), ("since", since)) if value}
        path = "/requests" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        return self._call("GET", path)["requests"]

    def stats(self) -> dict[str, dict[str, int]]:
        """Per provider: the number of requests and of each response status (kept past the record limit)."""
        return self._call("GET", "/stats")["providers"]

    def add_fault(self, provider: str, *, status: int | None = None, error: str | int | None = None,
                  retry_after: float | None = None, latency_ms: float | None = None, timeout: bool = False,
                  malformed: bool = False, answer_lost: bool = False, count: int | None = None,
                  match: str | None = None) -> str:
        """Make the next `count` requests (all while active if None) to `provider` whose recipient contains
        `match` (all if None) slow, hang, fail in the provider's error shape, return an unparseable 2xx, or
        (`answer_lost`) be handled as usual and then never answered. Returns the fault id."""
        payload = {"provider": provider, "status": status, "error": error, "retry_after": retry_after,
                   "latency_ms": latency_ms, "timeout": timeout, "malformed": malformed, "answer_lost": answer_lost,
                   "count": count, "match": match}
        return self._call("POST", "/faults", payload)["fault"]["id"]

    def faults(self) -> list[dict]:
        return self._call("GET", "/faults")["faults"]

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{urllib.parse.quote(fault_id)}")

    def set_rate_limit(self, provider: str, per_second: float | None) -> None:
        """Enforce a token bucket of `per_second` (one second's worth of capacity); None removes it."""
        self._call("PUT", f"/rate-limits/{urllib.parse.quote(provider)}", {"per_second": per_second})

    def configure_receipts(self, sendgrid_webhook_url: str | None = None, sendgrid_private_key_pem: str | None = None,
                           twilio_auth_token: str | None = None, delay_ms: float = 0) -> None:
        """Post signed SendGrid events and Twilio status callbacks after successful sends."""
        self._call("PUT", "/receipts", {"sendgrid_webhook_url": sendgrid_webhook_url,
                                        "sendgrid_private_key_pem": sendgrid_private_key_pem,
                                        "twilio_auth_token": twilio_auth_token, "delay_ms": delay_ms})

    def receipts(self) -> list[dict]:
        """Every receipt post attempted: provider, url, events, message_id, status, ok, error, body, time."""
        return self._call("GET", "/receipts")["receipts"]

    def reset(self) -> None:
        """Clear faults, recordings, rate limits and receipt settings (issued OAuth tokens stay valid)."""
        self._call("POST", "/reset")

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/health")["ok"]
        except (OSError, SimulatorError):
            return False

    def _call(self, method: str, path: str, payload: dict | None = None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            problem = _problem(error.read())
            raise SimulatorError(error.code, problem.get("code", "error"), problem.get("message", str(error)),
                                 problem.get("field")) from None
        return json.loads(body) if body else None


def _problem(body: bytes) -> dict:
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return {}
