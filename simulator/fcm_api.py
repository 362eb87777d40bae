"""FCM HTTP v1 (POST /v1/projects/{project}/messages:send) and the OAuth2 token endpoint it needs."""

import math
import re
import secrets
import time

import jwt

from simulator.exchange import Incoming, Parsed, Reply, garbage_reply, json_reply, parse_form, parse_json

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
TOPIC = re.compile(r"^(/topics/)?[a-zA-Z0-9-_.~%]+$")
TARGETS = ("token", "fid", "topic", "condition")
INVALID_TOKEN_PREFIX = "invalid-"

# FCM error code -> (HTTP status, google.rpc status, message)
FCM_ERRORS = {
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
}
ERROR_BY_STATUS = {status: code for code, (status, _, _) in FCM_ERRORS.items()}
RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
              504: "DEADLINE_EXCEEDED"}


class AccessTokens:
    """Bearer tokens the token endpoint issued; they outlive `reset()` like real ones would."""

    def __init__(self):
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        now = time.monotonic()
        if len(self._expiry) > 10_000:
            self._expiry = {token: expiry for token, expiry in self._expiry.items() if expiry > now}
        token = "ya29.sim-" + secrets.token_urlsafe(32)
        self._expiry[token] = now + TOKEN_LIFETIME
        return token

    def valid(self, token: str) -> bool:
        return self._expiry.get(token, 0) > time.monotonic()


class FcmOAuthApi:
    """POST /token: the OAuth2 JWT-bearer grant google-auth uses for a service account."""
    name = "fcm_oauth"

    def __init__(self, tokens: AccessTokens):
        self.tokens = tokens

    def parse(self, incoming: Incoming) -> Parsed:
        form = parse_form(incoming.body)
        decoded = _decode_assertion(form.get("assertion", ""))
        issuer = decoded["claims"].get("iss") if decoded else None
        return Parsed(form, [issuer] if isinstance(issuer, str) else [], {"jwt": decoded})

    def handle(self, incoming: Incoming, parsed: Parsed) -> Reply:
        form = parsed.body
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        if not form.get("assertion"):
            return _oauth_error(400, "invalid_request", "Missing required parameter: assertion")
        decoded = parsed.extra["jwt"]
        if decoded is None or decoded["header"].get("alg") != "RS256":
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        claims = decoded["claims"]
        if not claims.get("iss") or not claims.get("aud"):
            return _oauth_error(400, "invalid_grant", "Invalid JWT: iss and aud are required.")
        if not _short_lived(claims):
            return _oauth_error(400, "invalid_grant",
                                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                                "timeframe. Check your iat and exp values in the JWT claim.")
        if not claims.get("scope"):
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return json_reply(200, {"access_token": self.tokens.issue(), "expires_in": TOKEN_LIFETIME,
                                "token_type": "Bearer"}, {"Cache-Control": "no-cache, no-store, max-age=0"})

    def resolve_fault(self, status, error, retry_after):
        if status is None:
            raise ValueError("an FCM OAuth fault needs a status")
        return status, error

    def fault_reply(self, incoming, status, error, retry_after):
        headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
        default = "invalid_grant" if status < 500 else "internal_failure"
        return _oauth_error(status, error or default, "Simulated failure.", headers)

    def rate_limited_reply(self, incoming, per_second, wait):
        return _oauth_error(429, "rate_limit_exceeded", "Rate limit exceeded.",
                            {"Retry-After": str(math.ceil(wait))})

    def malformed_reply(self, incoming, status):
        return garbage_reply(status or 200)


class FcmApi:
    name = "fcm"

    def __init__(self, tokens: AccessTokens):
        self.tokens = tokens

    def parse(self, incoming: Incoming) -> Parsed:
        request = parse_json(incoming.body)
        message = request.get("message") if isinstance(request, dict) else None
        targets = [message[key] for key in TARGETS if isinstance(message, dict) and isinstance(message.get(key), str)]
        return Parsed(request, targets)

    def handle(self, incoming: Incoming, parsed: Parsed) -> Reply:
        authorization = incoming.headers.get("authorization", "")
        if not authorization.startswith("Bearer ") or not self.tokens.valid(authorization[7:]):
            return json_reply(401, {"error": {
                "code": 401, "status": "UNAUTHENTICATED",
                "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                           "cookie or other valid authentication credential. See https://developers.google.com/"
                           "identity/sign-in/web/devconsole-project."}},
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}, error="UNAUTHENTICATED")
        request = parsed.body
        message = request.get("message") if isinstance(request, dict) else None
        if not isinstance(message, dict):
            return _invalid_argument("Invalid JSON payload received. 'message' is required.", "message")
        targets = [key for key in TARGETS if key in message]
        if len(targets) != 1:
            return _invalid_argument("Recipient of the message is not set." if not targets else
                                     "Exactly one of token, fid, topic or condition must be set.", "message")
        target, address = targets[0], message[targets[0]]
        if not isinstance(address, str) or not address:
            return _invalid_argument("The registration token is not a valid FCM registration token",
                                     f"message.{target}")
        if target == "topic" and not TOPIC.match(address):
            return _invalid_argument("Invalid topic name.", "message.topic")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
            return _invalid_argument("Invalid value at 'message.data' (Map), values must be strings.",
                                     "message.data")
        if target in ("token", "fid") and address.startswith(INVALID_TOKEN_PREFIX):
            return fcm_error("UNREGISTERED")
        project = incoming.route["project"]
        if request.get("validate_only"):
            name = f"projects/{project}/messages/fake_message_id"
        else:
            name = f"projects/{project}/messages/0:{time.time_ns() // 1000}%{secrets.token_hex(8)}"
        return json_reply(200, {"name": name}, message_id=name)

    def resolve_fault(self, status, error, retry_after):
        if error is not None and error not in FCM_ERRORS:
            raise ValueError(f"an FCM error is one of {', '.join(FCM_ERRORS)}, not {error!r}")
        if status is None and error is None:
            raise ValueError("an FCM fault needs a status or an error code")
        if status is None:
            status = FCM_ERRORS[error][0]
        return status, error or ERROR_BY_STATUS.get(status, "UNSPECIFIED_ERROR")

    def fault_reply(self, incoming, status, error, retry_after):
        headers = {} if retry_after is None else {"Retry-After": str(math.ceil(retry_after))}
        return fcm_error(error, status, headers)

    def rate_limited_reply(self, incoming, per_second, wait):
        return fcm_error("QUOTA_EXCEEDED", headers={"Retry-After": str(math.ceil(wait))})

    def malformed_reply(self, incoming, status):
        return garbage_reply(status or 200)


def fcm_error(code: str, status: int | None = None, headers: dict | None = None, message: str | None = None,
              field: str | None = None) -> Reply:
    """An error in the FCM v1 shape, with the FcmError detail firebase-admin maps to its exceptions."""
    default_status, rpc_status, default_message = FCM_ERRORS.get(code, (500, "UNKNOWN", "Unknown error."))
    status = status or default_status
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": code}]
    if field:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": field, "description": message or default_message}]})
    payload = {"error": {"code": status, "message": message or default_message,
                         "status": rpc_status if status == default_status else RPC_STATUS.get(status, "UNKNOWN"),
                         "details": details}}
    return json_reply(status, payload, headers, error=code)


def _invalid_argument(message: str, field: str) -> Reply:
    return fcm_error("INVALID_ARGUMENT", message=message, field=field)


def _oauth_error(status: int, error: str, description: str, headers: dict | None = None) -> Reply:
    return json_reply(status, {"error": error, "error_description": description}, headers, error=error)


def _decode_assertion(assertion: str) -> dict | None:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    signature = assertion.rsplit(".", 1)[-1]
    return {"header": header, "claims": claims} if signature else None


def _short_lived(claims: dict) -> bool:
    iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
    if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
        return False
    return iat <= now + 300 and exp > now - 300 and exp - iat <= TOKEN_LIFETIME + 300
