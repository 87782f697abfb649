"""The HTTP plumbing both provider clients share: one session per event loop, one send().

A ``ClientSession`` is created once per event loop and reused for every call: a session
(and TLS handshake) per request costs about ten times the CPU of a keep-alive request
(performance.md §3.5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from providers.results import CallResult, transport_failure

DEFAULT_TIMEOUT = 10.0
# Little's law: 30 QPS x 0.2 s = 6 calls in flight per quota key (performance.md §3.5); 100
# connections leave room for many regions in one process.
DEFAULT_CONNECTIONS = 100


def new_session(connections: int = DEFAULT_CONNECTIONS) -> aiohttp.ClientSession:
    """The one session a worker's event loop uses for every provider call."""
    connector = aiohttp.TCPConnector(limit=connections, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        raise_for_status=False,
        headers={"User-Agent": "bulktag/0.1"},
    )


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None if it is empty or not a JSON object."""
        if not self.body:
            return None
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None


def base_url(endpoint: str) -> URL:
    """``host[:port]`` means HTTPS, as the real endpoints; a full URL is taken as given."""
    if "://" in endpoint:
        return URL(endpoint)
    return URL(f"https://{endpoint}")


def host_header(url: URL) -> str:
    """The Host header exactly as sent, port included when not the default (both providers
    sign it; sdk-wire.md §3.6)."""
    host = url.raw_host or ""
    if url.explicit_port is not None and not url.is_default_port():
        return f"{host}:{url.port}"
    return host


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    headers: dict[str, str],
    body: bytes = b"",
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - a per-request deadline for aiohttp
) -> Response | CallResult:
    """Send one request; an answer of any status is a Response, no answer a CallResult."""
    try:
        async with session.request(
            method,
            url,
            headers=headers,
            data=body,
            # A redirect would resend signed headers to another host: never follow one.
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            payload = await resp.read()
            return Response(resp.status, resp.headers, payload)
    except TimeoutError:
        return transport_failure("Timeout", f"no answer within {timeout:g} s")
    except aiohttp.ClientConnectionError as exc:
        return transport_failure("ConnectionError", f"{type(exc).__name__}: {exc}")
    except aiohttp.ClientPayloadError as exc:
        return transport_failure("PayloadError", f"{type(exc).__name__}: {exc}")
