"""Signed webhooks: a job submitted with ``webhook_url`` is announced there when it ends.

The scheme is Standard Webhooks (standardwebhooks.com), which libraries in many
languages verify: headers ``webhook-id`` (the event id, the same on every
retry: deduplicate on it), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``.
Each API key has its own secret, derived from the key, so nothing more is
configured: ``whsec_`` + base64(sha256(``"adreel-webhook:" + key``)).

Delivery is at least once, by whichever API process gets to it first, with
nothing but Redis between them: a job with a webhook is watched
(``<ns>:api:hooks:watch``); when it ends, one process takes it out of the
set and files the delivery (``<ns>:api:hooks:msg:<id>``, due in
``<ns>:api:hooks:due``). A process claims due deliveries with a lease, so a
process that dies mid-delivery leaves them to another one after the lease.
A failed delivery (no 2xx within 10 s) is retried with backoff; the workers
never wait for a receiver. A receiver on a loopback, private or link-local
address is refused unless the operator allows private addresses
(``ADREEL_API_WEBHOOK_ALLOW_PRIVATE=1``; cloud metadata addresses never).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Optional
from urllib.parse import urlsplit

import aiohttp

from nodes.engine.cloud.http import address_kind, host_port, resolve

from .views import ApiError, Views, iso

log = logging.getLogger("adreel.fleet.api")

EVENTS = {"completed": "job.succeeded", "failed": "job.failed", "cancelled": "job.canceled"}
MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 3600.0
LEASE_S = 60.0
TIMEOUT_S = 10.0
TICK_S = 1.0
MAX_URL = 2048

_CLAIM = """
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('zadd', KEYS[1], ARGV[2], id) end
return ids
"""


def secret_for(api_key: str) -> bytes:
    """The key's webhook secret (what ``whsec_…`` encodes)."""
    return hashlib.sha256(("adreel-webhook:" + api_key).encode("utf-8")).digest()


def whsec(api_key: str) -> str:
    return "whsec_" + base64.b64encode(secret_for(api_key)).decode()


def sign(secret: bytes, event_id: str, timestamp: int, body: str) -> str:
    mac = hmac.new(secret, f"{event_id}.{timestamp}.{body}".encode("utf-8"), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Refused(ApiError):
    def __init__(self, message: str):
        super().__init__(422, "webhook_url_refused", message)


def check_url(url, allow_private: bool, resolver=resolve) -> str:
    """``url`` when a webhook may go there: http(s), no credentials in it, and every address its host
    resolves to public (loopback and private too when ``allow_private``; link-local / metadata never)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise Refused(f"'webhook_url' must be an http(s) URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a bad port
    except ValueError:
        raise Refused("'webhook_url' is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused("'webhook_url' must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise Refused("'webhook_url' must not carry a user name or password")
    host, port = host_port(url)
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError):
        raise Refused("'webhook_url': its host does not resolve") from None
    if not addresses:
        raise Refused("'webhook_url': its host does not resolve")
    for ip in addresses:
        kind = address_kind(ip)
        if kind == "metadata" or (kind != "public" and not allow_private):
            what = "link-local / cloud-metadata" if kind == "metadata" else kind
            unless = "" if kind == "metadata" else " unless the operator sets ADREEL_API_WEBHOOK_ALLOW_PRIVATE=1"
            raise Refused(f"'webhook_url' resolves to a {what} address; webhooks go only to public addresses{unless}")
    return url


class Hooks:
    """The Redis side of webhooks (synchronous, run in threads) and the delivery loop (async)."""

    def __init__(self, views: Views):
        self.views = views
        self.r = views.r
        self.ns = f"{views.ns}:hooks"
        self._claim = self.r.register_script(_CLAIM)

    @property
    def watch_key(self) -> str:
        return f"{self.ns}:watch"

    @property
    def due_key(self) -> str:
        return f"{self.ns}:due"

    def msg_key(self, event_id: str) -> str:
        return f"{self.ns}:msg:{event_id}"

    # ---- file deliveries for jobs that ended
    def scan(self) -> int:
        ids = list(self.r.smembers(self.watch_key))
        if not ids:
            return 0
        pipe = self.r.pipeline()
        for i in ids:
            pipe.hget(self.views.records.job_key(i), "state")
            pipe.hmget(self.views.meta_key(i), "owner", "webhook_url", "base")
        got = pipe.execute()
        filed = 0
        for n, job_id in enumerate(ids):
            state, (owner, url, base) = got[2 * n], got[2 * n + 1]
            if state is None or not owner or not url:  # deleted
                self.r.srem(self.watch_key, job_id)
                continue
            event = EVENTS.get(state)
            if not event or not self.r.srem(self.watch_key, job_id):
                continue  # still active, or another process took it
            try:
                job = self.views.job(owner, job_id, base or "")
            except ApiError:
                continue
            event_id = f"evt_{job_id}_{event.split('.')[1]}"
            body = json.dumps({"id": event_id, "type": event, "created_at": iso(time.time()), "data": job},
                              ensure_ascii=False, separators=(",", ":"))
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(self.msg_key(event_id), mapping={"owner": owner, "url": url, "body": body, "attempts": 0,
                                                       "job_id": job_id})
            pipe.expire(self.msg_key(event_id), 7 * 86400)
            pipe.zadd(self.due_key, {event_id: time.time()})
            pipe.execute()
            filed += 1
        return filed

    def claim(self, n: int = 16) -> list[tuple[str, dict]]:
        now = time.time()
        ids = self._claim(keys=[self.due_key], args=[f"{now:.3f}", f"{now + LEASE_S:.3f}", n])
        out = []
        for event_id in ids:
            msg = self.r.hgetall(self.msg_key(event_id))
            if msg:
                out.append((event_id, msg))
            else:
                self.r.zrem(self.due_key, event_id)
        return out

    def done(self, event_id: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.zrem(self.due_key, event_id)
        pipe.delete(self.msg_key(event_id))
        pipe.execute()

    def again(self, event_id: str, attempts: int, retry_s: float) -> Optional[float]:
        """Schedule the next attempt (None: given up)."""
        if attempts >= MAX_ATTEMPTS:
            self.done(event_id)
            return None
        delay = min(MAX_BACKOFF_S, retry_s * 2 ** (attempts - 1))
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.msg_key(event_id), "attempts", attempts)
        pipe.zadd(self.due_key, {event_id: time.time() + delay})
        pipe.execute()
        return delay

    # ---- the loop, one per API process
    async def run(self, secrets_by_owner: dict, allow_private: bool, retry_s: float) -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await asyncio.to_thread(self.scan)
                    due = await asyncio.to_thread(self.claim)
                    await asyncio.gather(*(self._deliver(session, e, m, secrets_by_owner, allow_private, retry_s)
                                           for e, m in due))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — Redis away: the next tick tries again
                    log.warning("webhooks: %s", type(exc).__name__)
                await asyncio.sleep(TICK_S)

    async def _deliver(self, session, event_id: str, msg: dict, secrets_by_owner: dict, allow_private: bool,
                       retry_s: float) -> None:
        attempts = int(msg.get("attempts") or 0) + 1
        secret = secrets_by_owner.get(msg.get("owner"))
        if secret is None:  # the key was removed from the configuration: nobody to sign for
            await asyncio.to_thread(self.done, event_id)
            log.warning("webhook %s dropped: its API key is no longer configured", event_id)
            return
        outcome = ""
        try:
            await asyncio.to_thread(check_url, msg["url"], allow_private)  # again: DNS may have changed
            stamp = int(time.time())
            headers = {"Content-Type": "application/json", "User-Agent": "AdReel-Webhooks/1",
                       "webhook-id": event_id, "webhook-timestamp": str(stamp),
                       "webhook-signature": sign(secret, event_id, stamp, msg["body"])}
            async with session.post(msg["url"], data=msg["body"].encode("utf-8"), headers=headers,
                                    allow_redirects=False) as resp:
                await resp.content.read(4096)
                if 200 <= resp.status < 300:
                    await asyncio.to_thread(self.done, event_id)
                    log.info("webhook %s delivered (attempt %d)", event_id, attempts)
                    return
                outcome = f"HTTP {resp.status}"
        except Refused as exc:
            await asyncio.to_thread(self.done, event_id)
            log.warning("webhook %s dropped: %s", event_id, exc.message)
            return
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            outcome = type(exc).__name__
        delay = await asyncio.to_thread(self.again, event_id, attempts, retry_s)
        if delay is None:
            log.warning("webhook %s: gave up after %d attempts (%s)", event_id, attempts, outcome)
        else:
            log.info("webhook %s: attempt %d failed (%s); again in %gs", event_id, attempts, outcome, delay)
