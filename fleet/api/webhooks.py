"""Signed webhooks: a job is announced when it ends (succeeded, failed, canceled) and when it waits for its
approval (``job.awaiting_approval``) at the job's own ``webhook_url`` (given with the job) and at its API key's
webhook (``KEY webhook=URL`` in the keys file), each endpoint once.

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
never wait for a receiver, and a slow receiver holds up only its own
delivery (each runs as its own task). A receiver on a loopback, private or
link-local address is refused unless the operator allows private addresses
(``ADREEL_API_WEBHOOK_ALLOW_PRIVATE=1``; cloud metadata addresses never).

The host is resolved once per delivery, every address is checked, and the
connection goes to the checked address with the name kept for the Host header
and TLS (SNI and certificate), as ``nodes/engine/cloud/page_fetch.py`` reads a
product page: a name cannot resolve to a public address for the check and a
private one for the request (DNS rebinding). No redirect is followed.
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

import httpx

from nodes.engine.cloud.http import address_kind, host_port, resolve

from .views import ApiError, Views, iso

log = logging.getLogger("adreel.fleet.api")

#: the job's status (as the API shows it) → the event announced; a job is watched until a terminal one
EVENTS = {"succeeded": "job.succeeded", "failed": "job.failed", "canceled": "job.canceled",
          "awaiting_approval": "job.awaiting_approval"}
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.canceled"})
MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 3600.0
LEASE_S = 60.0
TIMEOUT_S = 10.0
TICK_S = 1.0
MAX_IN_FLIGHT = 64
USER_AGENT = "AdReel-Webhooks/1"
MAX_URL = 2048

_CLAIM = """
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('zadd', KEYS[1], ARGV[2], id) end
return ids
"""


# KEYS: filed marker, due, watch · ARGV: event id, body, owner, job id, now, ttl, terminal, (delivery id, url)…
_FILE = """
if not redis.call('set', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[6])) then
  if ARGV[7] == '1' then redis.call('srem', KEYS[3], ARGV[4]) end
  return 0
end
if ARGV[7] == '1' then redis.call('srem', KEYS[3], ARGV[4]) end
for i = 8, #ARGV, 2 do
  local key = '<NS>:msg:' .. ARGV[i]
  redis.call('hset', key, 'event', ARGV[1], 'owner', ARGV[3], 'url', ARGV[i + 1], 'body', ARGV[2], 'attempts', 0,
             'job_id', ARGV[4])
  redis.call('expire', key, tonumber(ARGV[6]))
  redis.call('zadd', KEYS[2], ARGV[5], ARGV[i])
end
return 1
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


def check_shape(url) -> str:
    """``url`` when it is an http(s) URL with a host and no credentials (its addresses are checked apart)."""
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
    return url


def checked_address(url, allow_private: bool, resolver=resolve) -> tuple[str, int, str]:
    """(host, port, the address to connect to) of a webhook URL: resolved once, and every address it resolves
    to public (loopback and private too when ``allow_private``; link-local / metadata never)."""
    check_shape(url)
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
    return host, port, str(addresses[0])


def check_url(url, allow_private: bool, resolver=resolve) -> str:
    """``url`` when a webhook may go there (``checked_address``), else ``Refused``."""
    checked_address(url, allow_private, resolver)
    return url


def pinned_request(client: httpx.AsyncClient, url: str, address: str, host: str, body: bytes,
                   headers: dict) -> httpx.Request:
    """A POST to ``url`` that connects to ``address`` (the one checked), with the name in the Host header and
    in TLS (SNI, certificate): page_fetch's way of pinning a fetch, for the webhooks' client."""
    target = httpx.URL(url)
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    return client.build_request("POST", target.copy_with(host=address), content=body, extensions=extensions,
                                headers={**headers, "Host": target.netloc.decode("ascii")})


class Hooks:
    """The Redis side of webhooks (synchronous, run in threads) and the delivery loop (async)."""

    def __init__(self, views: Views):
        self.views = views
        self.r = views.r
        self.ns = f"{views.ns}:hooks"
        self._claim = self.r.register_script(_CLAIM)
        self._file = self.r.register_script(_FILE.replace("<NS>", self.ns))

    @property
    def watch_key(self) -> str:
        return f"{self.ns}:watch"

    @property
    def due_key(self) -> str:
        return f"{self.ns}:due"

    def msg_key(self, delivery: str) -> str:
        return f"{self.ns}:msg:{delivery}"

    # ---- file deliveries for jobs that ended
    def endpoints(self, owner: str, job_url: Optional[str]) -> list[tuple[str, str]]:
        """(delivery kind, URL) of a job's event: the job's own webhook and its key's, each URL once."""
        out = [("job", job_url)] if job_url else []
        key_url = self.views.settings.key_webhooks.get(owner)
        if key_url and key_url != job_url:
            out.append(("key", key_url))
        return out

    def scan(self) -> int:
        ids = list(self.r.smembers(self.watch_key))
        if not ids:
            return 0
        pipe = self.r.pipeline()
        for i in ids:
            pipe.hmget(self.views.meta_key(i), "owner", "webhook_url", "base")
        got = pipe.execute()
        return sum(self._file_job(job_id, owner, url, base) for job_id, (owner, url, base) in zip(ids, got))

    def file_before_decision(self, job_id: str) -> bool:
        """File the event of a job that waits for its approval, before an approve, discard or cancel ends the
        wait: a client that decides between two ticks of the loop still gets ``job.awaiting_approval``, with
        the job as it was while it waited. Nothing for a job that is not watched."""
        if not self.r.sismember(self.watch_key, job_id):
            return False
        owner, url, base = self.r.hmget(self.views.meta_key(job_id), "owner", "webhook_url", "base")
        return self._file_job(job_id, owner, url, base)

    def _file_job(self, job_id: str, owner: Optional[str], url: Optional[str], base: Optional[str]) -> bool:
        """File the event of the job's status now, if it is one (each event once, by whichever API process gets
        here first, every endpoint in one step); a deleted job, or one nobody listens to, is no longer watched."""
        targets = self.endpoints(owner, url) if owner else []
        if not targets:  # deleted, or its key no longer has a webhook
            self.r.srem(self.watch_key, job_id)
            return False
        try:
            job = self.views.job(owner, job_id, base or "", position=False)
        except ApiError:  # deleted meanwhile
            self.r.srem(self.watch_key, job_id)
            return False
        event = EVENTS.get(job["status"])
        if not event:
            return False  # still active
        event_id = f"evt_{job_id}_{event.split('.')[1]}"
        body = json.dumps({"id": event_id, "type": event, "created_at": iso(time.time()), "data": job},
                          ensure_ascii=False, separators=(",", ":"))
        args = [event_id, body, owner, job_id, f"{time.time():.3f}", 7 * 86400, int(event in TERMINAL_EVENTS)]
        for kind, target in targets:
            args += [f"{event_id}/{kind}", target]
        return bool(self._file(keys=[f"{self.ns}:filed:{event_id}", self.due_key, self.watch_key], args=args))

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
        """File and send deliveries until cancelled. Each delivery is its own task: a slow receiver holds up
        nothing but its own delivery (at most ``MAX_IN_FLIGHT`` at once per process)."""
        inflight: set[asyncio.Task] = set()
        async with httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_S), follow_redirects=False, trust_env=False,
                                     headers={"User-Agent": USER_AGENT}) as client:
            try:
                while True:
                    try:
                        await asyncio.to_thread(self.scan)
                        room = MAX_IN_FLIGHT - len(inflight)
                        due = await asyncio.to_thread(self.claim, room) if room > 0 else []
                        for delivery, msg in due:
                            task = asyncio.create_task(self._guarded(client, delivery, msg, secrets_by_owner,
                                                                     allow_private, retry_s))
                            inflight.add(task)
                            task.add_done_callback(inflight.discard)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # noqa: BLE001 — Redis away: the next tick tries again
                        log.warning("webhooks: %s", type(exc).__name__)
                    await asyncio.sleep(TICK_S)
            finally:
                for task in inflight:
                    task.cancel()

    @staticmethod
    async def _post(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        resp = await client.send(request, stream=True)
        try:
            async for _ in resp.aiter_bytes():  # the answer is not used: read a little, then let go
                break
        finally:
            await resp.aclose()
        return resp

    async def _guarded(self, *args) -> None:
        try:
            await self._deliver(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — Redis away: the delivery's lease lapses and it is sent again
            log.warning("webhook %s: %s; it is tried again when its lease lapses", args[1], type(exc).__name__)

    async def _deliver(self, client: httpx.AsyncClient, delivery: str, msg: dict, secrets_by_owner: dict,
                       allow_private: bool, retry_s: float) -> None:
        attempts = int(msg.get("attempts") or 0) + 1
        event_id = msg.get("event") or delivery
        secret = secrets_by_owner.get(msg.get("owner"))
        if secret is None:  # the key was removed from the configuration: nobody to sign for
            await asyncio.to_thread(self.done, delivery)
            log.warning("webhook %s dropped: its API key is no longer configured", delivery)
            return
        outcome = ""
        try:
            try:
                # resolved once and checked again (DNS may have changed); the connection goes to that address
                host, _port, address = await asyncio.to_thread(checked_address, msg["url"], allow_private)
            except Refused as exc:
                await asyncio.to_thread(self.done, delivery)
                log.warning("webhook %s dropped: %s", delivery, exc.message)
                return
            stamp = int(time.time())
            headers = {"Content-Type": "application/json", "webhook-id": event_id,
                       "webhook-timestamp": str(stamp), "webhook-signature": sign(secret, event_id, stamp, msg["body"])}
            request = pinned_request(client, msg["url"], address, host, msg["body"].encode("utf-8"), headers)
            resp = await asyncio.wait_for(self._post(client, request), TIMEOUT_S)  # 10 s in all, however slow
            if 200 <= resp.status_code < 300:
                await asyncio.to_thread(self.done, delivery)
                log.info("webhook %s delivered (attempt %d)", delivery, attempts)
                return
            outcome = f"HTTP {resp.status_code}"
        except (httpx.HTTPError, OSError, asyncio.TimeoutError) as exc:
            outcome = type(exc).__name__
        delay = await asyncio.to_thread(self.again, delivery, attempts, retry_s)
        if delay is None:
            log.warning("webhook %s: gave up after %d attempts (%s)", delivery, attempts, outcome)
        else:
            log.info("webhook %s: attempt %d failed (%s); again in %gs", delivery, attempts, outcome, delay)
