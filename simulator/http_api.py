"""The HTTP/1.1 listener: SendGrid, Twilio, FCM and its token endpoint, plus the control API."""

import json
import re
from urllib.parse import urlsplit

from aiohttp import web

from simulator.exchange import Incoming
from simulator.faults import PROVIDERS
from simulator.receipts import ReceiptSettings, load_event_signing_key
from simulator.simulation import Simulation

CONTROL = "/_simulator"
MAX_BODY = 32 * 1024 * 1024  # SendGrid accepts mail up to 30 MB

PROVIDER_ROUTES = [
    ("POST", re.compile(r"^/v3/mail/send$"), "sendgrid"),
    ("GET", re.compile(r"^/v3/scopes$"), "sendgrid"),  # Herald's health probe: sends nothing
    ("POST", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$"), "twilio"),
    ("POST", re.compile(r"^/token$"), "fcm_oauth"),
    ("POST", re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$"), "fcm"),
]

simulation_key = web.AppKey("simulation", Simulation)


def build_app(simulation: Simulation) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[simulation_key] = simulation
    app.router.add_get(f"{CONTROL}/health", health)
    app.router.add_get(f"{CONTROL}/requests", list_requests)
    app.router.add_get(f"{CONTROL}/stats", stats)
    app.router.add_get(f"{CONTROL}/faults", list_faults)
    app.router.add_post(f"{CONTROL}/faults", add_fault)
    app.router.add_delete(f"{CONTROL}/faults/{{fault_id}}", remove_fault)
    app.router.add_get(f"{CONTROL}/rate-limits", list_rate_limits)
    app.router.add_put(f"{CONTROL}/rate-limits/{{provider}}", set_rate_limit)
    app.router.add_get(f"{CONTROL}/receipts", list_receipts)
    app.router.add_put(f"{CONTROL}/receipts", configure_receipts)
    app.router.add_post(f"{CONTROL}/reset", reset)
    app.router.add_get("/2010-04-01/Accounts/{account}/Messages.json", twilio_message_list)
    app.router.add_route("*", "/{tail:.*}", provider_request)
    return app


async def provider_request(request: web.Request) -> web.StreamResponse:
    routed = _route(request.method, request.path)
    if routed is None:
        return _problem(404, "not_found", f"no simulated provider serves {request.method} {request.path}")
    provider, route = routed
    incoming = Incoming(
        method=request.method,
        path=request.path,
        headers=_joined_headers(request),
        body=await request.read(),
        route=route,
        query=dict(request.query),
    )
    reply = await request.app[simulation_key].exchange(provider, incoming)
    if reply is None:  # a `timeout` fault: drop the connection without a response
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPGatewayTimeout()
    return web.Response(status=reply.status, headers=reply.headers, body=reply.body)


async def twilio_message_list(request: web.Request) -> web.Response:
    incoming = Incoming(method=request.method, path=request.path, headers=_joined_headers(request), body=b"",
                        route={"account": request.match_info["account"]}, query=dict(request.query))
    reply = request.app[simulation_key].list_twilio_messages(incoming)
    return web.Response(status=reply.status, headers=reply.headers, body=reply.body)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def list_requests(request: web.Request) -> web.Response:
    provider = request.query.get("provider") or None
    if provider is not None and provider not in PROVIDERS:
        return _invalid("provider", f"provider must be one of {', '.join(PROVIDERS)}")
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        return _invalid("since", "since must be a request id")
    return _json({"requests": request.app[simulation_key].recorder.select(provider, since)})


async def stats(request: web.Request) -> web.Response:
    return _json({"providers": request.app[simulation_key].recorder.tallies()})


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": request.app[simulation_key].faults.all()})


async def add_fault(request: web.Request) -> web.Response:
    payload = await _payload(request)
    try:
        settings = {
            "status": _optional(payload, "status", int, lambda value: 100 <= value <= 599, "an HTTP status"),
            "error": _optional(payload, "error", (str, int), None, "a string or an error code"),
            "retry_after": _optional(payload, "retry_after", (int, float), lambda value: value >= 0,
                                     "a number of seconds, at least 0"),
            "latency_ms": _optional(payload, "latency_ms", (int, float), lambda value: value >= 0,
                                    "milliseconds, at least 0"),
            "timeout": _optional(payload, "timeout", bool, None, "true or false") or False,
            "malformed": _optional(payload, "malformed", bool, None, "true or false") or False,
            "answer_lost": _optional(payload, "answer_lost", bool, None, "true or false") or False,
            "count": _optional(payload, "count", int, lambda value: value >= 1, "a whole number, at least 1"),
            "match": _optional(payload, "match", str, bool, "a non-empty recipient substring"),
        }
    except _FieldError as error:
        return _invalid(error.field, error.message)
    if settings["error"] is not None:
        settings["error"] = str(settings["error"])
    unknown = set(payload) - set(settings) - {"provider"}
    if unknown:
        return _invalid(sorted(unknown)[0], f"unknown field {sorted(unknown)[0]!r}")
    try:
        fault = request.app[simulation_key].add_fault(payload.get("provider"), **settings)
    except ValueError as error:
        field = "provider" if payload.get("provider") not in PROVIDERS else "fault"
        return _invalid(field, str(error))
    return _json({"fault": fault}, status=201)


async def remove_fault(request: web.Request) -> web.Response:
    if not request.app[simulation_key].faults.remove(request.match_info["fault_id"]):
        return _problem(404, "not_found", f"no fault {request.match_info['fault_id']}", "id")
    return web.Response(status=204)


async def list_rate_limits(request: web.Request) -> web.Response:
    return _json({"rate_limits": request.app[simulation_key].rate_limits.all()})


async def set_rate_limit(request: web.Request) -> web.Response:
    provider = request.match_info["provider"]
    if provider not in PROVIDERS:
        return _invalid("provider", f"provider must be one of {', '.join(PROVIDERS)}")
    payload = await _payload(request)
    try:
        per_second = _optional(payload, "per_second", (int, float), lambda value: value > 0,
                               "a number of requests per second above 0, or null")
    except _FieldError as error:
        return _invalid(error.field, error.message)
    limits = request.app[simulation_key].rate_limits
    limits.set(provider, per_second)
    return _json({"rate_limits": limits.all()})


async def list_receipts(request: web.Request) -> web.Response:
    poster = request.app[simulation_key].receipts
    return _json({"receipts": poster.log})


async def configure_receipts(request: web.Request) -> web.Response:
    payload = await _payload(request)
    try:
        url = _optional(payload, "sendgrid_webhook_url", str, _is_http_url, "an http(s) URL")
        pem = _optional(payload, "sendgrid_private_key_pem", str, None, "PEM text")
        token = _optional(payload, "twilio_auth_token", str, bool, "a non-empty auth token")
        delay_ms = _optional(payload, "delay_ms", (int, float), lambda value: value >= 0, "milliseconds, at least 0")
        key = None
        if pem is not None:
            try:
                key = load_event_signing_key(pem)
            except ValueError as error:
                raise _FieldError("sendgrid_private_key_pem", str(error)) from None
    except _FieldError as error:
        return _invalid(error.field, error.message)
    poster = request.app[simulation_key].receipts
    poster.settings = ReceiptSettings(url, key, token, delay_ms or 0)
    return _json({"receipts": {"sendgrid_webhook_url": url, "sendgrid_signed": key is not None,
                               "twilio": token is not None, "delay_ms": delay_ms or 0}})


async def reset(request: web.Request) -> web.Response:
    await request.app[simulation_key].reset()
    return web.Response(status=204)


class _FieldError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def _optional(payload: dict, name: str, types, check, expected: str):
    value = payload.get(name)
    if value is None:
        return None
    # bool is an int in Python; only accept it where a bool is wanted.
    wrong_type = not isinstance(value, types) or (isinstance(value, bool) and types is not bool)
    if wrong_type or (check is not None and not check(value)):
        raise _FieldError(name, f"{name} must be {expected}")
    return value


async def _payload(request: web.Request) -> dict:
    try:
        payload = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": {"code": "invalid_json", "message":
                                 "the body is not JSON", "field": None}}), content_type="application/json") from None
    if not isinstance(payload, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": {"code": "invalid", "message":
                                 "the body must be a JSON object", "field": None}}), content_type="application/json")
    return payload


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The provider serving this request and the parameters in its path."""
    for route_method, pattern, provider in PROVIDER_ROUTES:
        match = pattern.match(path)
        if match and method == route_method:
            return provider, match.groupdict()
    return None


def _joined_headers(request: web.Request) -> dict[str, str]:
    """Headers with lower-case names; a repeated header's values joined as HTTP allows."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _json(payload, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


def _invalid(field: str, message: str) -> web.Response:
    return _problem(400, "invalid", message, field)


def _problem(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return _json({"error": {"code": code, "message": message, "field": field}}, status)
