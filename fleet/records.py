"""Job records in Redis: what ``status``, ``history``, ``cancel`` and ``delete`` read and change.

Dramatiq carries the work (a message per job, acknowledged only when the job
ends); these records carry what a user asks about: state, progress, attempts,
worker, outputs, error. Every change of state is one Lua script, so two
workers, a ``cancel`` and a ``submit`` never interleave inside one change.

Keys (``<ns>`` is the namespace, ``adreel-fleet`` by default)::

    <ns>:job:<id>       hash: the job (spec, sig, state, progress, attempts, worker, comfy, prompt_id, outputs, error, …)
    <ns>:batch:<batch>  list: the batch's job ids, in the order of the briefs file
    <ns>:batches        sorted set: batch ids by submit time
    <ns>:jobs           sorted set: job ids by submit time (history)
    <ns>:queued         set: the ids of jobs waiting for a worker (the queue cap counts these)
    <ns>:deleted:<id>   a deleted job's tombstone (a worker still running it removes what it stored)

Only ``spec`` tells a worker what to run, and it is signed: ``sig`` is
HMAC-SHA256 under the fleet secret (``ADREEL_FLEET_SECRET``) over the
namespace, the job id and the spec's exact text (``sign_spec``). A worker
runs a spec only when ``verified_spec`` checks the signature (constant-time);
everything else in a record is shown to users but never obeyed: no URL, key
or prompt is taken from it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Iterable, Optional

from .config import STATES, TERMINAL, FleetError, Settings, insecure_redis_error, redis_is_loopback, require_extra

redis = require_extra("redis")

__all__ = ["STATES", "TERMINAL", "Records", "QueueFull", "SpecRefused", "sign_spec", "connect", "public_record"]

_ADMIT = """
local cap = tonumber(ARGV[1]); local now = ARGV[2]; local bid = ARGV[3]; local ns = ARGV[4]; local n = tonumber(ARGV[5])
local fresh = {}
for i = 0, n - 1 do
  local id = ARGV[6 + i * 6]
  local st = redis.call('hget', ns .. ':job:' .. id, 'state')
  if (not st) or st == 'failed' or st == 'cancelled' then table.insert(fresh, i) end
end
local waiting = redis.call('scard', KEYS[1])
if waiting + #fresh > cap then return {-1, waiting, #fresh} end
for _, i in ipairs(fresh) do
  local b = 6 + i * 6
  local id = ARGV[b]
  local key = ns .. ':job:' .. id
  redis.call('del', key)
  redis.call('hset', key, 'id', id, 'spec', ARGV[b + 1], 'brand', ARGV[b + 2], 'row', ARGV[b + 3],
             'variant', ARGV[b + 4], 'sig', ARGV[b + 5], 'deliveries', '0', 'state', 'queued', 'progress', '0', 'attempts', '0', 'worker', '',
             'owner', '', 'comfy', '', 'prompt_id', '', 'outputs', '', 'error', '', 'batch', bid, 'created', now, 'updated', now)
  redis.call('sadd', KEYS[1], id)
  redis.call('zadd', KEYS[2], now, id)
  redis.call('del', ns .. ':deleted:' .. id)
end
redis.call('del', KEYS[3])
for i = 0, n - 1 do redis.call('rpush', KEYS[3], ARGV[6 + i * 6]) end
redis.call('zadd', KEYS[4], now, bid)
local res = {1, waiting, #fresh}
for _, i in ipairs(fresh) do table.insert(res, ARGV[6 + i * 6]) end
return res
"""

# KEYS: job, queued · ARGV: id, worker name, owner (unique per worker process and delivery), comfy, now.
# A claim repeated by its owner (its first reply lost with a Redis connection) answers as the first one did.
_CLAIM = """
local st = redis.call('hget', KEYS[1], 'state')
if not st then return {'missing'} end
local cur = redis.call('hmget', KEYS[1], 'owner', 'attempts', 'deliveries', 'created', 'claimed_from')
if st == 'running' and cur[1] == ARGV[3] then
  local prev = redis.call('hmget', KEYS[1], 'prev_worker', 'prev_comfy')
  return {cur[5] or 'queued', cur[2] or '1', prev[1] or '', prev[2] or '', cur[3] or '1', cur[4] or ''}
end
if st == 'queued' or st == 'running' then
  local prev = redis.call('hmget', KEYS[1], 'worker', 'comfy')
  local att = redis.call('hincrby', KEYS[1], 'attempts', 1)
  local dlv = redis.call('hincrby', KEYS[1], 'deliveries', 1)
  redis.call('hset', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'owner', ARGV[3], 'comfy', ARGV[4],
             'prompt_id', '', 'progress', '0', 'updated', ARGV[5], 'started', ARGV[5], 'claimed_from', st,
             'prev_worker', prev[1] or '', 'prev_comfy', prev[2] or '')
  redis.call('srem', KEYS[2], ARGV[1])
  return {st, tostring(att), prev[1] or '', prev[2] or '', tostring(dlv), cur[4] or ''}
end
return {st}
"""

# KEYS: job · ARGV: owner, field, value, … — only while this worker process runs the job
_UPDATE = """
local cur = redis.call('hmget', KEYS[1], 'state', 'owner')
if cur[1] ~= 'running' or cur[2] ~= ARGV[1] then return cur[1] or 'missing' end
for i = 2, #ARGV, 2 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 'ok'
"""

# KEYS: job, queued · ARGV: id, owner, new state, attempts delta, now, field, value, …
# A finish repeated by its owner (its first reply lost with a Redis connection) is 'ok' and changes nothing.
_FINISH = """
local cur = redis.call('hmget', KEYS[1], 'state', 'owner', 'finished_by')
if cur[1] == ARGV[3] and cur[3] == ARGV[2] then return 'ok' end
if cur[1] ~= 'running' or cur[2] ~= ARGV[2] then return cur[1] or 'missing' end
redis.call('hset', KEYS[1], 'finished_by', ARGV[2])
redis.call('hset', KEYS[1], 'state', ARGV[3], 'updated', ARGV[5])
local d = tonumber(ARGV[4])
if d ~= 0 then redis.call('hincrby', KEYS[1], 'attempts', d) end
for i = 6, #ARGV, 2 do redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] == 'queued' then redis.call('sadd', KEYS[2], ARGV[1]) end
return 'ok'
"""

# KEYS: job, queued · ARGV: id, now, error — a record whose spec is not signed by this fleet
_REFUSE = """
local st = redis.call('hget', KEYS[1], 'state')
if st == 'queued' or st == 'running' then
  redis.call('hset', KEYS[1], 'state', 'failed', 'updated', ARGV[2], 'error', ARGV[3], 'owner', '')
  redis.call('srem', KEYS[2], ARGV[1])
end
return st or 'missing'
"""

# KEYS: job, queued · ARGV: id, now
_CANCEL = """
local st = redis.call('hget', KEYS[1], 'state')
if st == 'queued' or st == 'running' then
  redis.call('hset', KEYS[1], 'state', 'cancelled', 'updated', ARGV[2], 'error', 'cancelled')
  redis.call('srem', KEYS[2], ARGV[1])
end
return st or 'missing'
"""


SPEC_SIGNATURE_VERSION = "adreel-fleet-spec-v1"


def sign_spec(key: bytes, namespace: str, job_id: str, spec_text: str) -> str:
    """HMAC-SHA256 (hex) of one job's spec, bound to its namespace and id (a signed spec copied to another job
    or another fleet does not verify)."""
    msg = "\n".join((SPEC_SIGNATURE_VERSION, namespace, job_id, spec_text)).encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


class SpecRefused(Exception):
    """A job record whose spec is missing or not signed with this fleet's secret (forged or altered in Redis).
    The message says which, never what the record holds."""


def connect(settings: Settings):
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=30,
                                health_check_interval=15, decode_responses=True)


class Records:
    def __init__(self, settings: Settings, client=None):
        self.settings = settings
        self.ns = settings.namespace
        self.r = client or connect(settings)
        self._admit = self.r.register_script(_ADMIT)
        self._claim = self.r.register_script(_CLAIM)
        self._update = self.r.register_script(_UPDATE)
        self._finish = self.r.register_script(_FINISH)
        self._cancel = self.r.register_script(_CANCEL)
        self._refuse = self.r.register_script(_REFUSE)

    # keys ---------------------------------------------------------------------------
    def job_key(self, job_id: str) -> str:
        return f"{self.ns}:job:{job_id}"

    def batch_key(self, batch: str) -> str:
        return f"{self.ns}:batch:{batch}"

    @property
    def queued_key(self) -> str:
        return f"{self.ns}:queued"

    def ping(self) -> None:
        """Redis answers, and answers only with its password (else a FleetError: see ``config.check_redis_url``)."""
        try:
            self.r.ping()
        except redis.AuthenticationError:
            raise FleetError(f"Redis at {self.settings.redis_display} refused the password in the URL "
                             "(or needs one: put it in --redis / ADREEL_REDIS_URL as redis://:PASSWORD@host:6379/0)") from None
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "AUTH" in str(exc).upper():
                raise FleetError(f"Redis at {self.settings.redis_display} needs a password: put it in --redis / "
                                 "ADREEL_REDIS_URL (redis://:PASSWORD@host:6379/0)") from None
            raise FleetError(f"Redis at {self.settings.redis_display} answered with an error "
                             f"({type(exc).__name__})") from None
        except redis.RedisError as exc:
            raise FleetError(f"Redis at {self.settings.redis_display} does not answer ({type(exc).__name__}): "
                             "start redis-server or pass --redis / ADREEL_REDIS_URL") from None
        if self._answers_without_password() and not (self.settings.insecure
                                                     and redis_is_loopback(self.settings.redis_url)):
            raise insecure_redis_error(self.settings, "answers without a password")

    def _answers_without_password(self) -> bool:
        """Whether the server runs commands for a connection that gives no credentials."""
        kwargs = dict(self.r.connection_pool.connection_kwargs)
        kwargs.pop("username", None)
        kwargs.pop("password", None)
        kwargs.pop("credential_provider", None)
        pool = self.r.connection_pool.connection_class
        probe = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool, **kwargs))
        try:
            return bool(probe.ping())
        except redis.RedisError:
            return False
        finally:
            probe.close()

    # submit -------------------------------------------------------------------------
    def admit(self, batch: str, jobs: list, cap: int) -> tuple[int, list[str]]:
        """Create the batch and (re)queue its new, failed or cancelled jobs, if the queue has room.

        Returns (jobs waiting before, ids queued now); raises ``QueueFull`` past ``cap``."""
        key = self.settings.signing_key()
        argv: list[Any] = [cap, _now(), batch, self.ns, len(jobs)]
        for j in jobs:
            spec = {"row": j.row, "variant": j.variant, "seed": j.seed, "brief": j.brief, "prompt": j.prompt,
                    "workflow": j.workflow}
            text = json.dumps(spec, ensure_ascii=False, allow_nan=False)
            argv += [j.id, text, j.brand, j.row, j.variant, sign_spec(key, self.ns, j.id, text)]
        res = self._admit(keys=[self.queued_key, f"{self.ns}:jobs", self.batch_key(batch), f"{self.ns}:batches"],
                          args=argv)
        if int(res[0]) < 0:
            raise QueueFull(int(res[1]), int(res[2]), cap)
        return int(res[1]), [str(x) for x in res[3:]]

    def waiting(self) -> int:
        return int(self.r.scard(self.queued_key))

    # worker side -------------------------------------------------------------------
    def claim(self, job_id: str, worker: str, owner: str, comfy: str) -> dict:
        """Take the job: ``previous_state`` (queued / running: a take-over; else it is not to be run), and for a
        job taken: ``attempts``, ``previous_worker``, ``previous_comfy``, ``delivery`` (claims of this job since
        it was submitted, 1 for the first) and ``created`` (its submit time)."""
        res = self._claim(keys=[self.job_key(job_id), self.queued_key], args=[job_id, worker, owner, comfy, _now()])
        out = {"previous_state": res[0]}
        if len(res) > 1:
            out.update(attempts=int(res[1]), previous_worker=res[2], previous_comfy=res[3],
                       delivery=int(res[4] or 1), created=res[5])
        return out

    def update(self, job_id: str, owner: str, **fields) -> str:
        args: list[Any] = [owner]
        for k, v in fields.items():
            args += [k, _enc(v)]
        args += ["updated", _now()]
        return self._update(keys=[self.job_key(job_id)], args=args)

    def finish(self, job_id: str, owner: str, state: str, attempts_delta: int = 0, **fields) -> str:
        args: list[Any] = [job_id, owner, state, attempts_delta, _now()]
        for k, v in fields.items():
            args += [k, _enc(v)]
        return self._finish(keys=[self.job_key(job_id), self.queued_key], args=args)

    def state_of(self, job_id: str) -> Optional[str]:
        return self.r.hget(self.job_key(job_id), "state")

    def spec(self, job_id: str) -> Optional[dict]:
        """The job's spec (its prompt, brief, row, variant, seed, workflow name) after its signature checks
        out; None when there is no such job; ``SpecRefused`` when its record was forged or altered."""
        if not self.r.hexists(self.job_key(job_id), "spec"):
            return None
        return self.verified_spec(job_id)

    def verified_spec(self, job_id: str) -> dict:
        """The job's spec, after its signature checks out under this fleet's secret; else ``SpecRefused``."""
        text, sig = self.r.hmget(self.job_key(job_id), "spec", "sig")
        if not text:
            raise SpecRefused("its record has no spec")
        if not sig:
            raise SpecRefused("its spec is not signed")
        want = sign_spec(self.settings.signing_key(), self.ns, job_id, text)
        if not hmac.compare_digest(want.encode("ascii"), str(sig).encode("utf-8", "replace")):
            raise SpecRefused("its spec's signature does not check out with this fleet's secret "
                              "(forged or altered in Redis, or submitted with another ADREEL_FLEET_SECRET)")
        try:
            spec = json.loads(text)
        except ValueError:
            raise SpecRefused("its signed spec is not JSON") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("prompt"), dict):
            raise SpecRefused("its signed spec has no prompt")
        return spec

    def refuse(self, job_id: str, reason: str) -> str:
        """Mark a queued or running job whose spec was refused as failed (its previous state)."""
        return self._refuse(keys=[self.job_key(job_id), self.queued_key],
                            args=[job_id, _now(), f"refused by the worker: {reason}"])

    def tombstone(self, job_id: str) -> Optional[dict]:
        raw = self.r.get(f"{self.ns}:deleted:{job_id}")
        return json.loads(raw) if raw else None

    # reading -----------------------------------------------------------------------
    def job(self, job_id: str) -> Optional[dict]:
        raw = self.r.hgetall(self.job_key(job_id))
        return public_record(raw) if raw else None

    def batch_jobs(self, batch: str) -> list[dict]:
        ids = self.r.lrange(self.batch_key(batch), 0, -1)
        if not ids and not self.r.exists(self.batch_key(batch)):
            raise FleetError(f"no batch {batch!r} in Redis at {self.settings.redis_display} "
                             "(`python -m fleet history` lists the jobs it knows)")
        return self._many(ids)

    def _many(self, ids: Iterable[str]) -> list[dict]:
        pipe = self.r.pipeline()
        ids = list(ids)
        for i in ids:
            pipe.hgetall(self.job_key(i))
        return [public_record(raw) for raw in pipe.execute() if raw]

    def history(self, brand: Optional[str] = None, state: Optional[str] = None, limit: int = 200) -> list[dict]:
        if state and state not in STATES:
            raise FleetError(f"--state: {state!r} is not one of {', '.join(STATES)}")
        out = []
        ids = self.r.zrevrange(f"{self.ns}:jobs", 0, -1)
        for start in range(0, len(ids), 500):
            for rec in self._many(ids[start:start + 500]):
                if brand and rec["brand"].casefold() != brand.casefold():
                    continue
                if state and rec["state"] != state:
                    continue
                out.append(rec)
                if len(out) >= limit:
                    return out
        return out

    # user actions ------------------------------------------------------------------
    def cancel(self, job_id: str) -> str:
        return self._cancel(keys=[self.job_key(job_id), self.queued_key], args=[job_id, _now()])

    def delete(self, job_id: str, keys: list[str]) -> None:
        """Drop the job's record (its objects are removed first, by the caller); leave a tombstone."""
        batch = self.r.hget(self.job_key(job_id), "batch")
        pipe = self.r.pipeline(transaction=True)
        pipe.set(f"{self.ns}:deleted:{job_id}", json.dumps({"keys": keys, "at": _now()}), ex=7 * 86400)
        pipe.delete(self.job_key(job_id))
        pipe.srem(self.queued_key, job_id)
        pipe.zrem(f"{self.ns}:jobs", job_id)
        if batch:
            pipe.lrem(self.batch_key(batch), 0, job_id)
        pipe.execute()


class QueueFull(FleetError):
    def __init__(self, waiting: int, new: int, cap: int):
        self.waiting, self.new, self.cap = waiting, new, cap
        super().__init__(f"the queue is full: {waiting} job(s) are waiting and this batch would add {new}, "
                         f"more than the {cap} allowed (ADREEL_FLEET_MAX_QUEUED); nothing was submitted. "
                         "Wait for jobs to finish, or submit fewer briefs or variants.")


def _now() -> str:
    return f"{time.time():.3f}"


def _enc(v) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, allow_nan=False)
    return "" if v is None else str(v)


def public_record(raw: dict) -> dict:
    outputs = json.loads(raw["outputs"]) if raw.get("outputs") else {}
    return {
        "id": raw.get("id", ""),
        "batch": raw.get("batch", ""),
        "row": int(raw.get("row") or 0),
        "variant": int(raw.get("variant") or 0),
        "brand": raw.get("brand", ""),
        "state": raw.get("state", ""),
        "progress": round(float(raw.get("progress") or 0), 3),
        "attempts": int(raw.get("attempts") or 0),
        "worker": raw.get("worker", ""),
        "url": outputs.get("url"),
        "outputs": outputs,
        "error": raw.get("error", ""),
        "created": float(raw.get("created") or 0),
        "updated": float(raw.get("updated") or 0),
    }
