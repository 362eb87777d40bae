"""APNs provider API: POST /3/device/{token} over HTTP/2 with a provider token (ES256 JWT)."""

import json
import re
import time

import jwt

from simulator.exchange import Incoming, Parsed, Reply, garbage_reply, parse_json

DEVICE_PATH = re.compile(r"^/3/device/(?P<token>[^/]*)$")
APNS_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PUSH_TYPES = {"alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity",
              "pushtotalk", "widgets", "controls"}
PRIORITIES = {"1", "5", "10"}
MAX_PAYLOAD = 4096
MAX_COLLAPSE_ID = 64
PROVIDER_TOKEN_LIFETIME = 3600

BAD_TOKEN_PREFIX = "bad"
GONE_TOKEN_PREFIX = "gone"

STATUS_BY_REASON = {
    "BadCollapseId": 400, "BadDeviceToken": 400, "BadExpirationDate": 400, "BadMessageId": 400,
    "BadPriority": 400, "BadTopic": 400, "DeviceTokenNotForTopic": 400, "DuplicateHeaders": 400,
    "IdleTimeout": 400, "InvalidPushType": 400, "MissingDeviceToken": 400, "MissingTopic": 400,
    "PayloadEmpty": 400, "TopicDisallowed": 400,
    "BadCertificate": 403, "BadCertificateEnvironment": 403, "ExpiredProviderToken": 403, "Forbidden": 403,
    "InvalidProviderToken": 403, "MissingProviderToken": 403, "UnrelatedKeyIdInToken": 403,
    "BadEnvironmentKeyIdInToken": 403,
    "BadPath": 404, "MethodNotAllowed": 405, "ExpiredToken": 410, "Unregistered": 410,
    "PayloadTooLarge": 413, "TooManyProviderTokenUpdates": 429, "TooManyRequests": 429,
    "InternalServerError": 500, "ServiceUnavailable": 503, "Shutdown": 503,
}
REASON_BY_STATUS = {400: "BadDeviceToken", 403: "ExpiredProviderToken", 404: "BadPath", 405: "MethodNotAllowed",
                    410: "Unregistered", 413: "PayloadTooLarge", 429: "TooManyRequests",
                    500: "InternalServerError", 503: "ServiceUnavailable"}


class ApnsApi:
    name = "apns"

    def parse(self, incoming: Incoming) -> Parsed:
        match = DEVICE_PATH.match(incoming.path)
        token = match["token"] if match else ""
        authorization = incoming.headers.get("authorization", "")
        decoded = _decode_provider_token(authorization[7:]) if authorization.lower().startswith("bearer ") else None
        return Parsed(parse_json(incoming.body), [token] if token else [], {"jwt": decoded})

    def handle(self, incoming: Incoming, parsed: Parsed) -> Reply:
        headers = incoming.headers
        apns_id = headers.get("apns-id", "")
        if apns_id and not APNS_ID.match(apns_id):
            return self._reason(incoming, "BadMessageId")
        if incoming.method != "POST":
            return self._reason(incoming, "MethodNotAllowed")
        match = DEVICE_PATH.match(incoming.path)
        if not match:
            return self._reason(incoming, "BadPath")
        token = match["token"]
        if not token:
            return self._reason(incoming, "MissingDeviceToken")
        authorization = headers.get("authorization", "")
        if not authorization:
            return self._reason(incoming, "MissingProviderToken")
        decoded = parsed.extra["jwt"]
        if decoded is None or decoded["header"].get("alg") != "ES256" or not decoded["header"].get("kid") \
                or not decoded["claims"].get("iss") or not isinstance(decoded["claims"].get("iat"), int):
            return self._reason(incoming, "InvalidProviderToken")
        if decoded["claims"]["iat"] < time.time() - PROVIDER_TOKEN_LIFETIME:
            return self._reason(incoming, "ExpiredProviderToken")
        if not headers.get("apns-topic"):
            return self._reason(incoming, "MissingTopic")
        if headers.get("apns-push-type", "alert") not in PUSH_TYPES:
            return self._reason(incoming, "InvalidPushType")
        if headers.get("apns-priority", "10") not in PRIORITIES:
            return self._reason(incoming, "BadPriority")
        if not headers.get("apns-expiration", "0").isdigit():
            return self._reason(incoming, "BadExpirationDate")
        if len(headers.get("apns-collapse-id", "").encode()) > MAX_COLLAPSE_ID:
            return self._reason(incoming, "BadCollapseId")
        if not incoming.body:
            return self._reason(incoming, "PayloadEmpty")
        if len(incoming.body) > MAX_PAYLOAD:
            return self._reason(incoming, "PayloadTooLarge")
        if token.startswith(BAD_TOKEN_PREFIX):
            return self._reason(incoming, "BadDeviceToken")
        if token.startswith(GONE_TOKEN_PREFIX):
            return self._reason(incoming, "Unregistered")
        return Reply(200, {"apns-id": _apns_id(incoming)}, b"", message_id=_apns_id(incoming))

    def resolve_fault(self, status, error, retry_after):
        if retry_after is not None:
            raise ValueError("APNs never sends Retry-After")
        if error is not None and error not in STATUS_BY_REASON:
            raise ValueError(f"an APNs error is a reason such as Unregistered or BadDeviceToken, not {error!r}")
        if status is None and error is None:
            raise ValueError("an APNs fault needs a status or a reason")
        if status is None:
            status = STATUS_BY_REASON[error]
        return status, error or REASON_BY_STATUS.get(status, "InternalServerError")

    def fault_reply(self, incoming, status, error, retry_after):
        return self._reason(incoming, error, status)

    def rate_limited_reply(self, incoming, per_second, wait):
        return self._reason(incoming, "TooManyRequests")

    def malformed_reply(self, incoming, status):
        return garbage_reply(status or 200, {"apns-id": _apns_id(incoming)})

    def _reason(self, incoming: Incoming, reason: str, status: int | None = None) -> Reply:
        payload: dict = {"reason": reason}
        if reason in ("Unregistered", "ExpiredToken"):
            payload["timestamp"] = int(time.time() * 1000)  # when APNs learnt the token is no longer valid
        apns_id = _apns_id(incoming)
        return Reply(status or STATUS_BY_REASON[reason], {"apns-id": apns_id, "content-type": "application/json"},
                     json.dumps(payload).encode(), error=reason, message_id=apns_id)


def _apns_id(incoming: Incoming) -> str:
    """The request's apns-id (clients match responses by it), or the one the transport made up for it."""
    return incoming.route["apns_id"]


def _decode_provider_token(token: str) -> dict | None:
    try:
        return {"header": jwt.get_unverified_header(token),
                "claims": jwt.decode(token, options={"verify_signature": False})}
    except jwt.PyJWTError:
        return None
