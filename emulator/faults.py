"""Injected misbehaviour: latency with jitter, 5xx answers, hangs and connection resets.

Rates come from :class:`~emulator.config.EmulatorConfig` on every call (so they can change at
run time); randomness from one ``random.Random`` seeded with ``config.seed``, so a seeded run
injects the same faults in the same order.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct

from aiohttp import web

from emulator.config import FAULT_KINDS, EmulatorConfig


class Chaos:
    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)

    def delay(self) -> float:
        """Seconds to wait before answering: fixed latency plus uniform jitter."""
        config = self._config
        seconds = config.latency_ms / 1000.0
        if config.jitter_ms > 0:
            seconds += self._rng.uniform(0.0, config.jitter_ms / 1000.0)
        return seconds

    def pick_fault(self) -> str | None:
        """One of FAULT_KINDS with its configured probability, or None (no fault)."""
        faults = self._config.faults
        if not faults:
            return None
        draw = self._rng.random()
        threshold = 0.0
        for kind in FAULT_KINDS:
            threshold += faults.get(kind, 0.0)
            if draw < threshold:
                return kind
        return None


def reset_connection(request: web.BaseRequest) -> None:
    """Drop the client's connection with a TCP RST (SO_LINGER 0 then abort), as a crashed
    backend or a load balancer would; the client sees "connection reset by peer"."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Already closed: abort() below is all that is left to do.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
