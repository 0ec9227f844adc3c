"""One delivery of one job on this worker's ComfyUI: claim → queue → follow → outputs stored → record.

What ends how (the message is acknowledged in every case but a retry):

* completed — ComfyUI ran the prompt and every AssetUpload reports its files
  uploaded; objects an earlier attempt left under the job's prefix (a render
  whose bytes differed) are removed, so the job's outputs are in the store
  exactly once;
* failed at once — ComfyUI rejected the prompt (HTTP 400) or a node failed on
  its input: the node's message is the job's error, no retry;
* retried with backoff — ComfyUI unreachable, killed or restarting, the
  prompt interrupted by someone else, storage down (files spooled): at most
  ``MAX_ATTEMPTS`` attempts in all, counted in the record (a redelivery after
  a worker died counts too), then failed with the last error;
* given back — this worker is shutting down, or its ComfyUI is down before
  the job started: the attempt is not counted and another worker takes it;
* dropped — the job was cancelled or deleted (a running prompt is
  interrupted on its ComfyUI), or it is already finished (a redelivery);
* refused — the record's spec is not signed with the fleet's secret (forged
  or altered in Redis): nothing is run or contacted, the record says failed,
  the log names the job id and the reason, never the record's content.

Redis going away mid-job (restarted) neither loses nor repeats a job: progress
writes are skipped while it is away, and the claim and the final record wait
for it (each is one script that, repeated by its owner after a lost reply,
answers as the first did). Dramatiq retries its acknowledgement the same way.

Prompt ids are canonical UUIDs derived from the job (``prompt_id_for``): the
job id, its submit time and the delivery number, so a take-over knows the
orphaned prompt's id without trusting Redis for it.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

from . import objects
from .comfy import ComfyClient, ComfyGone, JobError, PromptFailed, PromptRejected, Stopped, Transient, run_prompt
from .config import MAX_ATTEMPTS, FleetError, Settings, require_extra
from .jobs import JOB_ID_OK, nodes_of
from .records import Records, SpecRefused

dramatiq = require_extra("dramatiq")
redis = require_extra("redis")
log = logging.getLogger("adreel.fleet")

#: how long a worker waits for Redis to come back before it gives up on recording a job's end
REDIS_WAIT_S = 600.0
_PROMPT_NS = uuid.UUID("5b0f7a52-3c1e-4d6a-9a57-1f3e0c2d8b41")
T = TypeVar("T")


def prompt_id_for(job_id: str, created: str, delivery: int, retry: int = 0) -> str:
    """The prompt id (a canonical lowercase UUID, as current ComfyUI requires) of one attempt of a job: its
    delivery, and the retries that delivery made on its own ComfyUI."""
    return str(uuid.uuid5(_PROMPT_NS, f"{job_id}/{created}/{delivery}" + (f"/{retry}" if retry else "")))


@dataclass
class Context:
    settings: Settings
    records: Records
    server: ComfyClient
    worker_id: str
    owner: str = ""
    #: the ComfyUI servers this worker may contact: its own and ADREEL_FLEET_COMFY_URLS (never one from Redis)
    comfy_urls: tuple = ()
    shutting_down: threading.Event = field(default_factory=threading.Event)
    unhealthy: threading.Event = field(default_factory=threading.Event)
    busy: threading.Event = field(default_factory=threading.Event)
    store_configured: bool = True


CONTEXT: Optional[Context] = None


def handle(job_id: str) -> None:
    ctx = CONTEXT
    if ctx is None:
        raise RuntimeError("the fleet actor runs only inside `python -m fleet worker`")
    ctx.busy.set()
    try:
        _handle(ctx, job_id)
    finally:
        ctx.busy.clear()


def _when_redis_answers(ctx: Context, what: str, fn: Callable[[], T]) -> T:
    """``fn()``, repeated while Redis does not answer (restarting), for up to ``REDIS_WAIT_S``."""
    deadline = time.monotonic() + REDIS_WAIT_S
    warned = False
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise
            if not warned:
                log.warning("%s: Redis does not answer (%s); waiting for it", what, type(exc).__name__)
                warned = True
            time.sleep(1.0)


def _best_effort(fn: Callable[[], T], default: T) -> T:
    """``fn()``, or ``default`` while Redis does not answer (progress, cancel checks: the next one will do)."""
    try:
        return fn()
    except (redis.ConnectionError, redis.TimeoutError):
        return default


def _handle(ctx: Context, job_id: str) -> None:
    if not isinstance(job_id, str) or not JOB_ID_OK.match(job_id):
        log.warning("a message named a job id that no submit makes; refused (not run, not looked up)")
        return
    if ctx.shutting_down.is_set() or ctx.unhealthy.is_set() or not ctx.server.healthy():
        # not ours to try now: back to the queue before we claim it (nothing counted)
        if not ctx.shutting_down.is_set():
            ctx.unhealthy.set()
        log.warning("job %s: given back (this worker is %s)", job_id,
                    "shutting down" if ctx.shutting_down.is_set() else f"without its ComfyUI at {ctx.server.url}")
        raise dramatiq.Retry(delay=500)
    spec = _verified_spec(ctx, job_id)
    if spec is None:
        return
    delivery = _Delivery.claimed(ctx, job_id)
    if delivery is not None:
        delivery.run(spec)


def _verified_spec(ctx: Context, job_id: str) -> Optional[dict]:
    """The job's spec when it is signed with the fleet's secret; None when it is refused (recorded failed) or
    gone. Nothing of a refused record is used or logged."""
    rec = ctx.records
    try:
        return _when_redis_answers(ctx, f"job {job_id}", lambda: rec.verified_spec(job_id))
    except SpecRefused as refused:
        if _when_redis_answers(ctx, f"job {job_id}", lambda: rec.state_of(job_id)) is None:
            tomb = rec.tombstone(job_id)
            log.info("job %s: not in Redis (deleted before it ran); dropped", job_id)
            if tomb and ctx.store_configured:
                _quiet_remove(job_id, tomb.get("keys", []))
            return None
        log.warning("job %s: refused: %s; not run", job_id, refused)
        rec.refuse(job_id, str(refused))
        return None


class _Delivery:
    """This worker's delivery of one claimed job: its owner token, claim, attempt count and prompt id, the
    callbacks ``run_prompt`` reports to, and what ends the delivery how (see the module's doc)."""

    def __init__(self, ctx: Context, job_id: str, owner: str, claim: dict):
        self.ctx, self.rec, self.job_id, self.owner, self.claim = ctx, ctx.records, job_id, owner, claim
        self.attempts = claim["attempts"]
        self.retry = 0
        self.prompt_id = prompt_id_for(job_id, claim["created"], claim["delivery"])
        self._progress_t = 0.0
        self._stop_t, self._stop_reason = 0.0, None

    @classmethod
    def claimed(cls, ctx: Context, job_id: str) -> Optional["_Delivery"]:
        """The job claimed for this delivery, or None when it is not ours to run (deleted, finished, out of
        attempts)."""
        rec = ctx.records
        owner = f"{ctx.owner}/{uuid.uuid4().hex[:8]}"  # this delivery's: a repeated claim or finish is recognised
        claim = _when_redis_answers(ctx, f"job {job_id}",
                                    lambda: rec.claim(job_id, ctx.worker_id, owner, ctx.server.url))
        prev = claim["previous_state"]
        if prev == "missing":
            tomb = rec.tombstone(job_id)
            log.info("job %s: deleted before it ran; dropped", job_id)
            if tomb and ctx.store_configured:
                _quiet_remove(job_id, tomb.get("keys", []))
            return None
        if prev not in ("queued", "running"):
            log.info("job %s: already %s; dropped", job_id, prev)
            return None
        delivery = cls(ctx, job_id, owner, claim)
        if prev == "running":
            # a redelivery: the worker that had it died. Its ComfyUI may still run the old prompt: stop it
            # there, if that ComfyUI is one this worker was configured with (never a URL only Redis names).
            log.warning("job %s: taken over from %s (attempt %d)", job_id, claim.get("previous_worker"),
                        delivery.attempts)
            _stop_orphan(ctx, job_id, claim.get("previous_comfy") or "",
                         [prompt_id_for(job_id, claim["created"], claim["delivery"] - 1, r)
                          for r in range(MAX_ATTEMPTS)])
        if delivery.attempts > MAX_ATTEMPTS:
            _finish(ctx, job_id, owner, "failed",
                    error=f"gave up after {MAX_ATTEMPTS} attempts: the workers running it stopped each time")
            return None
        log.info("job %s: attempt %d on %s", job_id, delivery.attempts, ctx.server.url)
        return delivery

    # ---------------------------------------------------------------- what run_prompt reports to
    def on_queued(self, queued_id: str) -> None:
        _best_effort(lambda: self.rec.update(self.job_id, self.owner, prompt_id=queued_id), None)

    def on_progress(self, frac: float, node: str) -> None:
        now = time.monotonic()
        if now - self._progress_t >= 0.5:
            self._progress_t = now
            _best_effort(lambda: self.rec.update(self.job_id, self.owner, progress=f"{frac:.3f}", node=node), None)

    def should_stop(self) -> Optional[str]:
        if self.ctx.shutting_down.is_set():
            return "shutdown"
        now = time.monotonic()
        if now - self._stop_t >= 1.0:
            self._stop_t = now
            state = _best_effort(lambda: self.rec.r.hmget(self.rec.job_key(self.job_id), "state", "owner"), None)
            if state is not None:
                if state[0] != "running":
                    self._stop_reason = "cancelled" if state[0] == "cancelled" else "deleted"
                elif state[1] != self.owner:
                    self._stop_reason = "taken over by another worker"
        return self._stop_reason

    # ---------------------------------------------------------------- the attempts
    def run(self, spec: dict) -> None:
        while True:
            try:
                outputs = self._attempt(spec)
            except Stopped as stop:
                self._stopped(stop)
                return
            except (PromptRejected, PromptFailed, Transient, ComfyGone, FleetError) as exc:
                if not self._failed(exc):
                    return
            else:
                break
        self._completed(outputs)

    def _attempt(self, spec: dict) -> dict:
        """One run of the prompt on this worker's ComfyUI; what it stored, once objects an earlier attempt left
        under the job's prefix are removed."""
        ctx, job_id = self.ctx, self.job_id
        entry = asyncio.run(run_prompt(ctx.server, spec["prompt"], on_queued=self.on_queued,
                                       on_progress=self.on_progress, should_stop=self.should_stop,
                                       deadline_s=ctx.settings.job_seconds, prompt_id=self.prompt_id))
        outputs = collect_outputs(spec["prompt"], entry)
        if outputs["keys"] and ctx.store_configured:
            removed = objects.remove(job_id, [], keep=outputs["keys"], keep_runs=outputs["runs"],
                                     keep_prefixes=outputs["hls_prefixes"], bucket=outputs.get("bucket"))
            if removed:
                log.info("job %s: removed %d object(s) an earlier attempt left: %s", job_id, len(removed), removed)
        return outputs

    def _stopped(self, stop: Stopped) -> None:
        ctx, job_id = self.ctx, self.job_id
        if stop.reason == "shutdown":
            _finish(ctx, job_id, self.owner, "queued", attempts_delta=-1, progress="0",
                    error="given back by a worker that was stopping")
            raise dramatiq.Retry(delay=0)
        log.info("job %s: %s while running; its prompt was interrupted", job_id, stop.reason)
        if stop.reason.startswith("taken over"):
            return
        # deleted: whatever the interrupted run still stored goes too
        tomb = _when_redis_answers(ctx, f"job {job_id}", lambda: self.rec.tombstone(job_id))
        if tomb and ctx.store_configured:
            _quiet_remove(job_id, tomb.get("keys", []))

    def _failed(self, exc: Exception) -> bool:
        """After a failed attempt: True when the next attempt runs here now; False when the job failed or is no
        longer ours; ``dramatiq.Retry`` when it goes back to the queue to be retried after a backoff."""
        ctx, job_id, owner, attempts = self.ctx, self.job_id, self.owner, self.attempts
        message = exc.message if isinstance(exc, JobError) else str(exc)
        transient = isinstance(exc, FleetError) or exc.transient  # storage trouble while pruning: retry
        if isinstance(exc, ComfyGone) or (isinstance(exc, Transient) and not ctx.server.healthy()):
            ctx.unhealthy.set()
        if not transient:
            log.info("job %s: failed: %s", job_id, message)
            _finish(ctx, job_id, owner, "failed", error=message)
            return False
        if attempts >= MAX_ATTEMPTS:
            log.warning("job %s: failed after %d attempts: %s", job_id, attempts, message)
            _finish(ctx, job_id, owner, "failed", error=f"{message} (gave up after {attempts} attempts)")
            return False
        delay = ctx.settings.backoff(attempts)
        if isinstance(exc, Spooled) and not ctx.unhealthy.is_set():
            # the render is cached on this ComfyUI and its files wait in this ComfyUI's spool: the next
            # attempt runs here, where it uploads the very same files again (same keys), instead of a new
            # render elsewhere whose late-spooled twin would leave a second video and manifest in the store
            log.warning("job %s: attempt %d failed (%s); retrying in %gs on this ComfyUI", job_id, attempts,
                        message, delay)
            if not _wait_to_retry_here(ctx, job_id, owner, attempts, message, delay, self.should_stop):
                return False
            self.attempts, self.retry = attempts + 1, self.retry + 1
            self.prompt_id = prompt_id_for(job_id, self.claim["created"], self.claim["delivery"], self.retry)
            log.info("job %s: attempt %d on %s", job_id, self.attempts, ctx.server.url)
            return True
        log.warning("job %s: attempt %d failed (%s); retrying in %gs", job_id, attempts, message, delay)
        state = _finish(ctx, job_id, owner, "queued", progress="0",
                        error=f"attempt {attempts} failed: {message}; retrying in {delay:g}s")
        if state != "ok":
            return False  # cancelled, deleted or taken over meanwhile: not ours to retry
        raise dramatiq.Retry(delay=int(delay * 1000))

    def _completed(self, outputs: dict) -> None:
        ctx, job_id = self.ctx, self.job_id
        state = _finish(ctx, job_id, self.owner, "completed", progress="1", outputs=outputs, error="")
        if state == "ok":
            log.info("job %s: completed: %s", job_id, outputs.get("url") or outputs.get("paths"))
            return
        # cancelled or deleted while its outputs were being stored: nothing of it stays in the store
        log.info("job %s: %s as it finished; removing its objects", job_id, state)
        if ctx.store_configured and outputs["keys"]:
            _quiet_remove(job_id, outputs["keys"], runs=outputs["runs"])


def _wait_to_retry_here(ctx: Context, job_id: str, owner: str, attempts: int, message: str, delay: float,
                        should_stop: Callable[[], Optional[str]]) -> bool:
    """Count the next attempt in the record and wait ``delay``; False when the job is no longer ours to run
    (cancelled, deleted, taken over: dropped; this worker stopping: given back)."""
    state = _when_redis_answers(ctx, f"job {job_id}", lambda: ctx.records.update(
        job_id, owner, attempts=attempts + 1, progress="0",
        error=f"attempt {attempts} failed: {message}; retrying in {delay:g}s"))
    if state != "ok":
        log.info("job %s: %s while it waited to retry; dropped", job_id, state)
        return False
    end = time.monotonic() + delay
    while time.monotonic() < end:
        reason = should_stop()
        if reason == "shutdown":
            _finish(ctx, job_id, owner, "queued", attempts_delta=-1, progress="0",
                    error="given back by a worker that was stopping")
            raise dramatiq.Retry(delay=0)
        if reason:
            log.info("job %s: %s while it waited to retry; dropped", job_id, reason)
            return False
        time.sleep(0.2)
    return True


def _finish(ctx: Context, job_id: str, owner: str, state: str, attempts_delta: int = 0, **fields) -> str:
    return _when_redis_answers(ctx, f"job {job_id}", lambda: ctx.records.finish(
        job_id, owner, state, attempts_delta=attempts_delta, **fields))


def _stop_orphan(ctx: Context, job_id: str, previous_comfy: str, orphan_prompts: list[str]) -> None:
    """Stop the dead worker's prompt on its ComfyUI, when that server is one of this worker's configured ones."""
    url = previous_comfy.strip().rstrip("/")
    known = {ctx.server.url, *ctx.comfy_urls}
    if url not in known:
        log.warning("job %s: its previous worker's ComfyUI is not one this worker knows (not in --comfy or "
                    "ADREEL_FLEET_COMFY_URLS); its orphaned prompt, if any, is left alone", job_id)
        return
    server = ctx.server if url == ctx.server.url else ComfyClient(url)
    for prompt_id in orphan_prompts:
        server.interrupt(prompt_id)


def _quiet_remove(job_id: str, keys, runs=()) -> None:
    try:
        objects.remove(job_id, keys, runs=runs)
    except FleetError as exc:
        log.warning("job %s: could not remove its objects: %s", job_id, exc)


class Spooled(Transient):
    """An AssetUpload could not upload: its files wait in its ComfyUI's spool (the store was down)."""


def collect_outputs(prompt: dict, entry: dict) -> dict:
    """What the job stored: from each AssetUpload's result in ``/history``; else the files ComfyUI saved.

    Raises ``Transient`` when an AssetUpload could only spool its files (the store was down)."""
    outs = entry.get("outputs", {}) or {}
    uploads = []
    for node_id, _ in nodes_of(prompt, "AssetUpload"):
        payload = ((outs.get(node_id) or {}).get("adreel_upload") or [None])[0]
        if not isinstance(payload, dict):
            raise Transient(f"AssetUpload (node {node_id}) reported no result")
        if payload.get("status") != "uploaded":
            raise Spooled(f"storage: AssetUpload (node {node_id}) could not upload "
                            f"({payload.get('reason_code') or payload.get('reason') or payload.get('status')}); "
                            "its files wait in that ComfyUI's spool")
        uploads.append(payload)
    keys, runs, files = [], [], []
    for p in uploads:
        for f in p.get("files") or []:
            if f.get("key"):
                keys.append(f["key"])
                files.append({"name": f.get("name"), "kind": f.get("kind"), "key": f["key"], "url": f.get("url"),
                              "bytes": f.get("bytes"), "sha256": f.get("sha256")})
        if p.get("manifest_key"):
            keys.append(p["manifest_key"])
        if p.get("run"):
            runs.append(p["run"])
    keys = list(dict.fromkeys(keys))
    # HLS segments are not listed one by one in the payload: everything in a playlist's folder belongs to it
    hls = sorted({k.rsplit("/", 1)[0] + "/" for k in keys if k.endswith(".m3u8") and "/" in k})
    paths = []
    if not uploads:
        for node_out in outs.values():
            for items in node_out.values() if isinstance(node_out, dict) else []:
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and item.get("filename") and item.get("type") == "output":
                        paths.append("/".join(x for x in (item.get("subfolder"), item["filename"]) if x))
    # what AdReel's nodes show in the editor (the script, the storyboard, a provider's plan) and the images
    # nodes preview (names only): the job API's approval step reads the script, storyboard and key images here
    previews = {node_id: {**{k: v[0] for k, v in node_out.items()
                             if k.startswith("adreel_") and k != "adreel_upload" and isinstance(v, list) and v},
                          **({"images": [{x: i.get(x) for x in ("filename", "subfolder", "type")}
                                         for i in node_out["images"] if isinstance(i, dict)]}
                             if isinstance(node_out.get("images"), list) and node_out["images"] else {})}
                for node_id, node_out in outs.items() if isinstance(node_out, dict)}
    return {"url": uploads[0].get("url") if uploads else None, "bucket": uploads[0].get("bucket") if uploads else None,
            "urls": [p.get("url") for p in uploads], "keys": keys, "runs": runs, "files": files,
            "hls_prefixes": hls, "paths": paths, "previews": {k: v for k, v in previews.items() if v}}
