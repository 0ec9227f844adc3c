"""``python -m fleet worker --comfy URL``: one worker process paired with one ComfyUI server.

It checks its ComfyUI on start (reachable, AdReel loaded), then runs a
Dramatiq worker with one thread and a prefetch of one: it holds at most the
job it is running, so every other job stays in Redis for the other workers.
When its ComfyUI stops answering, the worker stops consuming (the Dramatiq
worker is stopped, which puts anything it held back on the queue) and starts
again once the ComfyUI answers. SIGTERM / SIGINT: the running job's prompt is
interrupted and the job given back (not counted as an attempt), then it exits.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time
import uuid

from . import objects, runner
from .broker import make_broker
from .comfy import ComfyClient
from .config import Settings, normalize_comfy_url, require_extra
from .records import Records

dramatiq = require_extra("dramatiq")
log = logging.getLogger("adreel.fleet")

HEALTH_EVERY_S = 3.0
UNHEALTHY_AFTER = 2  # failed probes in a row, while idle


def run_worker(settings: Settings, comfy_url: str, name: str = "", wait_comfy: float = 0) -> int:
    settings.signing_key()  # FleetError (exit 2): a worker without the fleet's secret could verify nothing
    server = ComfyClient(normalize_comfy_url(comfy_url))
    records = Records(settings)
    records.ping()  # Redis answers, and only with its password (or --insecure on loopback)
    server.check(wait_seconds=wait_comfy)  # FleetError (exit 2) with the reason
    worker_id = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    ctx = runner.Context(settings=settings, records=records, server=server, worker_id=worker_id,
                         owner=f"{worker_id}/{uuid.uuid4().hex}", comfy_urls=settings.comfy_urls,
                         store_configured=objects.configured())
    if not ctx.store_configured:
        log.warning("no storage settings in this worker's environment: it cannot remove objects left by an "
                    "earlier attempt or by a deleted job (set the same MINIO_* / AWS_* settings as its ComfyUI)")
    runner.CONTEXT = ctx
    broker, _actor = make_broker(settings)

    def on_signal(signum, _frame):
        log.info("worker %s: %s received, giving back its job and stopping", worker_id, signal.Signals(signum).name)
        ctx.shutting_down.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print(f"worker {worker_id}: ComfyUI {server.url} (AdReel loaded, "
          f"{'jobs API' if server.jobs_api() else '/history and /interrupt'}), Redis {settings.redis_display}, "
          f"heartbeat {settings.heartbeat_seconds:g}s; runs only jobs signed with ADREEL_FLEET_SECRET", flush=True)
    while not ctx.shutting_down.is_set():
        if not server.healthy():
            log.warning("worker %s: waiting for its ComfyUI at %s", worker_id, server.url)
            while not ctx.shutting_down.is_set() and not server.healthy():
                time.sleep(1)
            if ctx.shutting_down.is_set():
                break
            log.info("worker %s: its ComfyUI at %s answers again", worker_id, server.url)
        ctx.unhealthy.clear()
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=1000)
        worker.queue_prefetch = 1   # hold only the job being run: the rest stays in Redis for the other workers
        worker.delay_prefetch = 100
        worker.start()
        log.info("worker %s: consuming", worker_id)
        misses, next_probe = 0, time.monotonic() + HEALTH_EVERY_S
        while not ctx.shutting_down.is_set() and not ctx.unhealthy.is_set():
            time.sleep(0.2)
            if time.monotonic() >= next_probe:
                next_probe = time.monotonic() + HEALTH_EVERY_S
                if not ctx.busy.is_set():
                    misses = 0 if server.healthy() else misses + 1
                    if misses >= UNHEALTHY_AFTER:
                        ctx.unhealthy.set()
        if ctx.unhealthy.is_set() and not ctx.shutting_down.is_set():
            log.warning("worker %s: its ComfyUI at %s stopped answering; no new jobs until it is back",
                        worker_id, server.url)
        worker.stop(timeout=120_000)
    log.info("worker %s: stopped", worker_id)
    return 0
