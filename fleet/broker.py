"""The Dramatiq broker (Redis) and the fleet's one actor.

A message per job carries only the job's id. Dramatiq's RedisBroker moves a
fetched message into the worker's acknowledgement set and removes it only on
``ack``, after the actor returns; a worker that stops sending heartbeats for
``heartbeat_timeout`` is dead, and the next queue maintenance (run by any
live worker's broker calls, with ``maintenance_chance`` per call) puts its
unacknowledged messages back on the queue, however long the job had run (a
live worker's heartbeat is its consumers' polling, at least once a second,
even while its one thread renders).
Retries (transient failures, a job given back) go through Dramatiq's
``Retries`` middleware with the delay the runner asks for (``dramatiq.Retry``).
"""
from __future__ import annotations

from .config import MAX_ATTEMPTS, QUEUE_NAME, Settings, require_extra

dramatiq = require_extra("dramatiq")
redis = require_extra("redis")
RedisBroker = require_extra("dramatiq.brokers.redis").RedisBroker
Retries = require_extra("dramatiq.middleware").Retries

ACTOR_NAME = "adreel_fleet_job"
#: share of broker calls that run queue maintenance, out of a million (Dramatiq's default is 1000, i.e.
#: one call in a thousand: minutes before a dead worker's job comes back). Every call here: each idle
#: worker polls its queue at least once a second (``worker_timeout``), so a dead worker's job is back in
#: the queue at most about a second after its heartbeat timeout — or, when every worker is busy, at the
#: next fetch of the first one to finish (maintenance runs before the fetch, in the same script). The
#: cost is one ZRANGEBYSCORE per call while no worker is dead.
MAINTENANCE_CHANCE = 1_000_000


def _retry_when(retries: int, exc: BaseException) -> bool:
    # The runner counts attempts in the job's record (a redelivery after a worker died counts too) and
    # asks for a retry with dramatiq.Retry only while attempts remain. Anything else (a bug, Redis going
    # away mid-job) gets at most MAX_ATTEMPTS deliveries here; the record then says failed.
    return isinstance(exc, dramatiq.Retry) or retries < MAX_ATTEMPTS - 1


def make_broker(settings: Settings):
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=30,
                                  health_check_interval=15)
    broker = RedisBroker(client=client, namespace=f"{settings.namespace}:dramatiq",
                         heartbeat_timeout=int(settings.heartbeat_seconds * 1000),
                         maintenance_chance=MAINTENANCE_CHANCE,
                         middleware=[Retries(retry_when=_retry_when, min_backoff=1000, max_backoff=60_000)])
    dramatiq.set_broker(broker)
    actor = dramatiq.actor(_run_job, actor_name=ACTOR_NAME, queue_name=QUEUE_NAME, broker=broker)
    return broker, actor


def _run_job(job_id: str) -> None:
    from . import runner

    runner.handle(job_id)
