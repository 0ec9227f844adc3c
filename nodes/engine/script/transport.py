"""One bounded HTTP exchange for the LLM backends (Ollama and OpenAI-compatible).

No redirect is followed (a 3xx is reported, so a key never travels on to
another host), the body is read with a byte counter (``ADREEL_MAX_LLM_ANSWER_BYTES``
for answers, ``ADREEL_MAX_RESPONSE_BYTES`` for everything else) and the whole
exchange, connect to last byte, is bounded in wall time — a slowly dripped
answer cannot hold the worker past it. A non-2xx body reaches no message
(the backends report its status code only).
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Optional

import httpx

from .. import limits
from ..cloud.http import ResponseTooLarge, aread_capped
from ..cloud.redaction import clip
from .backends import LLMUnavailable


@dataclass
class Exchange:
    status: int
    headers: httpx.Headers
    raw: bytes

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not; never a RecursionError)."""
        try:
            return json.loads(self.raw)
        except RecursionError:
            raise ValueError("the answer is nested too deeply") from None

    def error_text(self, limit: int = 200) -> str:
        return clip(self.raw.decode("utf-8", "replace"), limit)


class Unreachable(Exception):
    """Connection refused / DNS failure (nothing was sent)."""


class TimedOut(Exception):
    pass


class BrokeOff(Exception):
    def __init__(self, kind: str):
        self.kind = kind
        super().__init__(kind)


def total_seconds(widget_seconds: float) -> float:
    """The widget's timeout, never above ``ADREEL_HTTP_TOTAL_SECONDS``."""
    ceiling = limits.HTTP_TOTAL_SECONDS.read()
    try:
        w = float(widget_seconds)
    except (TypeError, ValueError):
        w = ceiling
    if not (w > 0) or w != w:
        w = ceiling
    return min(w, ceiling)


async def exchange(method: str, url: str, *, json_body: Any = None, headers: Optional[dict] = None,
                   seconds: float, max_bytes: Optional[int] = None, answer: bool = False) -> Exchange:
    """One request → (status, headers, body), bounded in bytes and in total time; no redirects."""
    if max_bytes is None:
        max_bytes = (limits.MAX_LLM_ANSWER_BYTES if answer else limits.MAX_RESPONSE_BYTES).read()
    timeout = httpx.Timeout(seconds, connect=min(10.0, seconds))

    async def run() -> Exchange:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            async with client.stream(method, url, json=json_body, headers=headers) as resp:
                cap = max_bytes if 200 <= resp.status_code < 300 else min(max_bytes, 64 * 1024)
                try:
                    raw = await aread_capped(resp, cap)
                except ResponseTooLarge:
                    if 200 <= resp.status_code < 300:
                        raise
                    raw = b"(error body too large)"
                return Exchange(resp.status_code, resp.headers, raw)

    try:
        return await asyncio.wait_for(run(), timeout=seconds)
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as e:
        raise Unreachable(type(e).__name__) from None
    except (httpx.TimeoutException, asyncio.TimeoutError):
        raise TimedOut() from None
    except httpx.HTTPError as e:
        raise BrokeOff(type(e).__name__) from None


async def exchange_answer(method: str, url: str, *, where: str, refused_hint: str = "",
                          clean=lambda text: text, **kw) -> Exchange:
    """``exchange`` for a model's answer, its transport failures as the LLMUnavailable the user reads
    (``where``: the endpoint as shown; ``clean``: the backend's redaction of its own key)."""
    seconds = kw["seconds"]
    try:
        return await exchange(method, url, answer=True, **kw)
    except Unreachable:
        raise LLMUnavailable(f"{where} is not reachable (connection refused){refused_hint}") from None
    except TimedOut:
        raise LLMUnavailable(f"{where} gave no answer within {seconds:g} s") from None
    except ResponseTooLarge as e:
        raise LLMUnavailable(f"{where} sent an answer larger than {e.limit} bytes "
                             "(ADREEL_MAX_LLM_ANSWER_BYTES); not read further") from None
    except BrokeOff as e:
        raise LLMUnavailable(clean(f"{where} broke off the answer ({e.kind})"), transient=True) from None
