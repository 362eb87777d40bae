"""The simulated providers' shared state and the path every request takes through it.

A request meets, in order: an injected fault for its provider and recipient, the provider's rate
limit, then the provider API itself (auth, validation, magic recipients, success). An `answer_lost`
fault lets the request through all of that and then drops the answer. Lookups (Twilio's message
list) meet no faults or rate limits. All of it runs on the simulator's one event loop, so no locks
are needed.
"""

import asyncio
import logging

from simulator.apns_api import ApnsApi
from simulator.exchange import Incoming, Parsed, ProviderApi, Reply
from simulator.faults import FaultBook, RateLimits
from simulator.fcm_api import AccessTokens, FcmApi, FcmOAuthApi
from simulator.receipts import ReceiptPoster
from simulator.recording import DEFAULT_RECORD_LIMIT, Recorder
from simulator.sendgrid_api import SendGridApi
from simulator.twilio_api import TwilioApi

logger = logging.getLogger("simulator")

HANG_SECONDS = 600  # a `timeout` fault outlasts any sane client timeout, or the simulator


class Simulation:
    def __init__(self, record_limit: int = DEFAULT_RECORD_LIMIT):
        tokens = AccessTokens()
        self.twilio = TwilioApi()
        self.apis: dict[str, ProviderApi] = {api.name: api for api in (
            SendGridApi(), self.twilio, FcmApi(tokens), FcmOAuthApi(tokens), ApnsApi())}
        self.recorder = Recorder(record_limit)
        self.faults = FaultBook()
        self.rate_limits = RateLimits()
        self.receipts = ReceiptPoster()
        self.stopping = asyncio.Event()

    async def exchange(self, provider: str, incoming: Incoming) -> Reply | None:
        """The reply to one provider request, or None when a fault says never to answer."""
        api = self.apis[provider]
        parsed = api.parse(incoming)
        record = self.recorder.open(provider, incoming, parsed)
        reply = None
        fault = self.faults.take(provider, parsed.recipients)
        if fault is not None:
            record["fault"] = fault.id
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
                fault = self.faults.hang_begun(provider, parsed.recipients, fault) or fault
                record["fault"] = fault.id
            if fault.timeout:
                self.recorder.hung(record)
                await self._hang()
                return None
            if fault.malformed:
                reply = api.malformed_reply(incoming, fault.status)
            elif fault.status is not None:
                reply = api.fault_reply(incoming, fault.status, fault.error, fault.retry_after)
        if reply is None:
            limited = self.rate_limits.take(provider)
            if limited is not None:
                record["rate_limited"] = True
                reply = api.rate_limited_reply(incoming, *limited)
        if reply is None:
            reply = api.handle(incoming, parsed)
            if reply.receipts is not None:
                self.receipts.schedule(reply.receipts)
        self.recorder.close(record, reply)
        logger.debug("%s %s %s -> %s %s", provider, incoming.method, incoming.path, reply.status, reply.error or "")
        if fault is not None and fault.answer_lost:
            # The provider did its part (a success is kept and its receipts go out); only the answer is lost.
            self.recorder.answer_lost(record)
            await self._hang()
            return None
        return reply

    def list_twilio_messages(self, incoming: Incoming) -> Reply:
        """Twilio's message list: recorded like a send, but no fault or rate limit applies to it."""
        to = incoming.query.get("To")
        record = self.recorder.open("twilio", incoming, Parsed(dict(incoming.query), [to] if to else []))
        reply = self.twilio.list_messages(incoming)
        self.recorder.close(record, reply)
        return reply

    def add_fault(self, provider: str, *, status=None, error=None, retry_after=None, latency_ms=None,
                  timeout=False, malformed=False, answer_lost=False, count=None, match=None) -> dict:
        """Validate and register a fault; ValueError names what is wrong."""
        if provider not in self.apis:
            raise ValueError(f"provider must be one of {', '.join(self.apis)}")
        if not (status is not None or error is not None or latency_ms or timeout or malformed or answer_lost):
            raise ValueError("a fault needs a status, error, latency_ms, timeout, malformed or answer_lost")
        if timeout and (status is not None or error is not None or malformed):
            raise ValueError("a timeout fault never answers, so it takes no status, error or malformed")
        if answer_lost and (status is not None or error is not None or malformed or timeout or retry_after is not None):
            raise ValueError("an answer_lost fault lets the provider answer as usual (then drops the answer), "
                             "so it takes no status, error, retry_after, malformed or timeout")
        if status is not None or error is not None:
            if not malformed:
                status, error = self.apis[provider].resolve_fault(status, error, retry_after)
            elif error is not None:
                raise ValueError("a malformed fault takes a status but no error")
        elif retry_after is not None:
            raise ValueError("retry_after goes with an error status")
        fault = self.faults.add(provider=provider, status=status, error=error, retry_after=retry_after,
                                latency_ms=latency_ms, timeout=timeout, malformed=malformed, answer_lost=answer_lost,
                                count=count, match=match)
        return fault.as_dict()

    async def reset(self) -> None:
        """Back to a fresh simulator, except that issued OAuth tokens stay valid."""
        self.faults.clear()
        self.rate_limits.clear()
        self.recorder.clear()
        self.twilio.forget_messages()
        await self.receipts.reset()

    async def _hang(self) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), HANG_SECONDS)
        except TimeoutError:
            pass
