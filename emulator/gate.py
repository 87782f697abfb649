"""The path every provider call takes, whatever the provider and action.

Order: latency, authentication, rate limit, injected fault, then the action itself. The
caller is identified before it is throttled (both providers throttle per account / user,
providers.md §2.4, §3.5); a fault stands for the backend failing, so it comes after the
gateway let the call through and the action does not run. Every call is counted once, by
(provider, location, action, outcome) — see :mod:`emulator.stats`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from emulator.config import EmulatorConfig, RateLimit
from emulator.errors import ApiError
from emulator.faults import Chaos, reset_connection
from emulator.stats import FAULT_PREFIX, OK, THROTTLED, Stats
from emulator.throttle import Throttle

log = logging.getLogger("emulator")

# Stats keys come from the request; cap them so junk cannot grow the table without bound.
_MAX_LABEL = 64


@dataclass(slots=True)
class Call:
    """One provider call as the gate and the stats see it."""

    provider: str
    location: str
    action: str
    request_id: str

    def __post_init__(self) -> None:
        self.location = self.location[:_MAX_LABEL]
        self.action = self.action[:_MAX_LABEL]


class Dialect(Protocol):
    """How one provider words what the gate decides."""

    def render_error(self, call: Call, error: ApiError) -> web.Response: ...

    def throttled(self, call: Call, limit: RateLimit) -> ApiError: ...

    def server_error(self, call: Call, status: int) -> ApiError:
        """The provider's answer for an HTTP 500/502/503/504."""
        ...

    def finish(self, call: Call, response: web.StreamResponse) -> None:
        """Headers every answer carries (Huawei: ``X-Request-Id``)."""
        ...


Authenticate = Callable[[], Awaitable[None]]
Handler = Callable[[], Awaitable[web.StreamResponse]]


class Gate:
    def __init__(
        self, config: EmulatorConfig, stats: Stats, throttle: Throttle, chaos: Chaos
    ) -> None:
        self.config = config
        self.stats = stats
        self.throttle = throttle
        self.chaos = chaos

    async def run(
        self,
        request: web.BaseRequest,
        dialect: Dialect,
        call: Call,
        authenticate: Authenticate,
        handler: Handler,
    ) -> web.StreamResponse:
        outcome = OK
        self.stats.enter()
        try:
            delay = self.chaos.delay()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await authenticate()
                limit = self.throttle.admit(call.provider, call.location)
                if limit is not None:
                    outcome = THROTTLED
                    raise dialect.throttled(call, limit)
                fault = self.chaos.pick_fault()
                if fault is not None:
                    outcome = FAULT_PREFIX + fault
                    if fault == "reset":
                        reset_connection(request)
                        return web.Response(status=500)  # never reaches the client
                    if fault == "timeout":
                        # Hang like an overloaded backend, then answer as its gateway would.
                        await asyncio.sleep(self.config.timeout_delay)
                        raise dialect.server_error(call, 504)
                    raise dialect.server_error(call, int(fault))
                response = await handler()
            except ApiError as error:
                if outcome == OK:
                    outcome = error.code
                response = dialect.render_error(call, error)
            except Exception:
                log.exception(
                    "emulator bug while handling a call",
                    extra={"provider": call.provider, "action": call.action},
                )
                failure = dialect.server_error(call, 500)
                outcome = failure.code
                response = dialect.render_error(call, failure)
            dialect.finish(call, response)
            return response
        finally:
            self.stats.leave(call.provider, call.location, call.action, outcome)
