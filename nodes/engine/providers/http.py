"""Shared HTTP plumbing: TLS trust, one request, bounded retries with backoff.

TLS trust: the system's CA store, plus the PEM bundle named by the environment
variable ``ADREEL_CA_BUNDLE`` (or the ``ca_bundle`` argument) when set — for a
corporate TLS proxy, or the local CA the test fakes mint with ``trustme``.
Only https is spoken: a base URL or result URL that is not https is refused.

Retries (``RetryPolicy``): 408 / 429 / 502 / 503 / 504 and connection failures
before the request was sent are retried for every call; 500 and mid-request
connection drops only for idempotent calls (polls, cancels, downloads) — a
create call is never repeated when the provider may already have accepted it.
The wait honours, in order: ``retry-after-ms``, ``Retry-After`` (seconds or an
HTTP date; ``cloud.http.parse_retry_after``), a provider-specific hint (Veo's ``RetryInfo.retryDelay``), else
exponential backoff ``base_delay * 2**attempt`` capped at ``max_delay``.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Optional, Union
from urllib.parse import urlsplit

import aiohttp

from .cancellation import JobStop
from .errors import ProviderConfigError, ProviderConnectionError
from ..cloud.http import parse_retry_after  # noqa: F401 - the pack's one Retry-After parser, used here and by download
from ..cloud.http import require_https as _require_https
from .log import logger
from ..cloud.redaction import redact_url

CA_BUNDLE_ENV = "ADREEL_CA_BUNDLE"

RETRY_ANY = frozenset({408, 429, 502, 503, 504})
RETRY_IDEMPOTENT = RETRY_ANY | {500}


def ssl_context(ca_bundle: Optional[str] = None) -> ssl.SSLContext:
    """System trust plus ``ca_bundle`` / ``$ADREEL_CA_BUNDLE`` when given."""
    ctx = ssl.create_default_context()
    path = ca_bundle or os.environ.get(CA_BUNDLE_ENV)
    if path:
        try:
            ctx.load_verify_locations(cafile=os.path.expanduser(path))
        except (OSError, ssl.SSLError) as exc:
            raise ProviderConfigError(
                f"cannot load the CA bundle {path} (from {CA_BUNDLE_ENV}): {type(exc).__name__}; "
                "it must be a PEM file of certificates"
            ) from None
    return ctx


def open_session(ca_bundle: Optional[str] = None, limit: int = 32) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=ssl_context(ca_bundle), limit=limit)
    return aiohttp.ClientSession(connector=connector, trust_env=False)


def require_https(url: str, what: str) -> str:
    """The pack's https policy (``cloud.http.require_https``) with the providers' error type."""
    return _require_https(url, what, error=ProviderConfigError)


def origin(url: str) -> tuple:
    p = urlsplit(url)
    return (p.scheme, (p.hostname or "").lower(), p.port or (443 if p.scheme == "https" else 80))


@dataclass
class RetryPolicy:
    max_retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0  # a server asking for a longer wait ends the retries
    request_timeout: float = 60.0  # one API request, end to end


@dataclass
class HttpCall:
    method: str
    url: str
    json: Any = None
    params: Optional[Mapping[str, str]] = None
    headers: Optional[Mapping[str, str]] = None
    idempotent: bool = True
    what: str = "request"  # for messages: "create", "status", "cancel", "result"


@dataclass
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON when the body is JSON, else the text (truncated)
    elapsed: float = 0.0
    attempts: int = 1
    waited: float = 0.0
    retry_log: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_proto_duration(value: Any) -> Optional[float]:
    """A google.protobuf.Duration in JSON form ("27s", "0.5s") as seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1))
    return None


async def send_once(session: aiohttp.ClientSession, call: HttpCall, auth: Mapping[str, str], timeout: float) -> HttpReply:
    headers = {"Accept": "application/json", **(call.headers or {}), **auth}
    start = time.monotonic()
    async with session.request(
        call.method,
        call.url,
        json=call.json,
        params=call.params,
        headers=headers,
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as resp:
        raw = await resp.read()
        text = raw[:200_000].decode("utf-8", "replace")
        body: Any = text
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = text[:2000]
        else:
            body = None
        return HttpReply(status=resp.status, headers=resp.headers, body=body, elapsed=time.monotonic() - start)


WaitHook = Callable[[str, float], Union[None, Awaitable[None]]]


async def call_with_retries(
    session: aiohttp.ClientSession,
    call: HttpCall,
    *,
    label: str,
    auth: Mapping[str, str],
    policy: RetryPolicy,
    stop: Optional[JobStop] = None,
    hint: Optional[Callable[[HttpReply], Optional[float]]] = None,
    on_wait: Optional[WaitHook] = None,
) -> HttpReply:
    """Send ``call`` with bounded retries; return the final reply, whatever its status.

    Raises ``ProviderConnectionError`` when the provider cannot be reached after
    the retries, and ``cancellation.Stopped`` when the job is stopped while
    waiting between attempts.
    """
    retryable = RETRY_IDEMPOTENT if call.idempotent else RETRY_ANY
    waited = 0.0
    log: list = []
    attempt = 0
    while True:
        if stop is not None:
            stop.raise_if_stopped()
        reason = None
        delay = None
        try:
            reply = await send_once(session, call, auth, policy.request_timeout)
        except aiohttp.ClientConnectorError as exc:  # never reached the server: safe to retry any call
            reason = f"cannot connect ({type(exc).__name__})"
            reply = None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if not call.idempotent:
                err = ProviderConnectionError(
                    f"{label}: the connection failed during the {call.what} request "
                    f"({type(exc).__name__}); the job may or may not have been created — check the "
                    f"{label} dashboard before queueing again",
                )
                err.maybe_billed = True  # the request may have reached the provider: a job may exist
                raise err from None
            reason = f"connection failed ({type(exc).__name__})"
            reply = None
        if reply is not None:
            reply.attempts = attempt + 1
            reply.waited = waited
            reply.retry_log = log
            if reply.status not in retryable:
                return reply
            reason = f"HTTP {reply.status}"
            delay = parse_retry_after(reply.headers)
            if delay is None and hint is not None:
                delay = hint(reply)
            if delay is not None and delay > policy.max_retry_after:
                logger.info("%s %s: server asks to wait %.0fs (> %.0fs); giving up", label, call.what, delay, policy.max_retry_after)
                return reply
        if attempt >= policy.max_retries:
            if reply is not None:
                return reply
            raise ProviderConnectionError(  # no attempt got through (``maybe_billed`` stays False)
                f"{label}: cannot reach {redact_url(call.url)} ({reason}) after {attempt + 1} attempts; "
                "check the network, a proxy, or the base URL setting",
            )
        if delay is None:
            delay = min(policy.max_delay, policy.base_delay * (2 ** attempt))
        if stop is not None and stop.remaining() is not None and delay > stop.remaining():
            delay = stop.remaining()  # wake at the deadline, where the stop check ends the job
        log.append({"attempt": attempt + 1, "reason": reason, "wait_s": round(delay, 3)})
        logger.info("%s %s: %s; retrying in %.2fs (attempt %d of %d)", label, call.what, reason, delay, attempt + 2, policy.max_retries + 1)
        if on_wait is not None:
            res = on_wait(reason, delay)
            if asyncio.iscoroutine(res):
                await res
        if stop is not None:
            await stop.sleep(delay)
        else:
            await asyncio.sleep(delay)
        waited += delay
        attempt += 1
