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
  interrupted on its ComfyUI), or it is already finished (a redelivery).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import dramatiq

from . import objects
from .comfy import ComfyGone, ComfyServer, JobError, PromptFailed, PromptRejected, Stopped, Transient, run_prompt
from .config import MAX_ATTEMPTS, FleetError, Settings
from .jobs import nodes_of
from .records import Records

log = logging.getLogger("adreel.fleet")


@dataclass
class Context:
    settings: Settings
    records: Records
    server: ComfyServer
    worker_id: str
    owner: str = ""
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


def _handle(ctx: Context, job_id: str) -> None:
    rec = ctx.records
    if ctx.shutting_down.is_set() or ctx.unhealthy.is_set() or not ctx.server.healthy():
        # not ours to try now: back to the queue before we claim it (nothing counted)
        if not ctx.shutting_down.is_set():
            ctx.unhealthy.set()
        log.warning("job %s: given back (this worker is %s)", job_id,
                    "shutting down" if ctx.shutting_down.is_set() else f"without its ComfyUI at {ctx.server.url}")
        raise dramatiq.Retry(delay=500)

    claim = rec.claim(job_id, ctx.worker_id, ctx.owner, ctx.server.url)
    prev = claim["previous_state"]
    if prev == "missing":
        tomb = rec.tombstone(job_id)
        log.info("job %s: deleted before it ran; dropped", job_id)
        if tomb and ctx.store_configured:
            _quiet_remove(job_id, tomb.get("keys", []))
        return
    if prev not in ("queued", "running"):
        log.info("job %s: already %s; dropped", job_id, prev)
        return
    attempts = claim["attempts"]
    if prev == "running":
        # a redelivery: the worker that had it died. Its ComfyUI may still run the old prompt: stop it there.
        log.warning("job %s: taken over from %s (attempt %d)", job_id, claim.get("previous_worker"), attempts)
        if claim.get("previous_comfy") and claim.get("previous_prompt"):
            ComfyServer(claim["previous_comfy"]).interrupt(claim["previous_prompt"])
    if attempts > MAX_ATTEMPTS:
        rec.finish(job_id, ctx.owner, "failed",
                   error=f"gave up after {MAX_ATTEMPTS} attempts: the workers running it stopped each time")
        return
    spec = rec.spec(job_id)
    if not spec:
        return
    log.info("job %s: attempt %d on %s", job_id, attempts, ctx.server.url)

    last = {"t": 0.0}

    def on_queued(prompt_id: str) -> None:
        rec.update(job_id, ctx.owner, prompt_id=prompt_id)

    def on_progress(frac: float, node: str) -> None:
        now = time.monotonic()
        if now - last["t"] >= 0.5:
            last["t"] = now
            rec.update(job_id, ctx.owner, progress=f"{frac:.3f}", node=node)

    stop_check = {"t": 0.0, "reason": None}

    def should_stop() -> Optional[str]:
        if ctx.shutting_down.is_set():
            return "shutdown"
        now = time.monotonic()
        if now - stop_check["t"] >= 1.0:
            stop_check["t"] = now
            state = rec.state_of(job_id)
            if state != "running":
                stop_check["reason"] = "cancelled" if state == "cancelled" else "deleted"
        return stop_check["reason"]

    try:
        entry = asyncio.run(run_prompt(ctx.server, spec["prompt"], on_queued=on_queued, on_progress=on_progress,
                                       should_stop=should_stop, deadline_s=ctx.settings.job_seconds))
        outputs = collect_outputs(spec["prompt"], entry)
        if outputs["keys"] and ctx.store_configured:
            removed = objects.remove(job_id, [], keep=outputs["keys"], keep_runs=outputs["runs"],
                                     keep_prefixes=outputs["hls_prefixes"], bucket=outputs.get("bucket"))
            if removed:
                log.info("job %s: removed %d object(s) an earlier attempt left: %s", job_id, len(removed), removed)
    except Stopped as stop:
        if stop.reason == "shutdown":
            rec.finish(job_id, ctx.owner, "queued", attempts_delta=-1, progress="0",
                       error="given back by a worker that was stopping")
            raise dramatiq.Retry(delay=0)
        log.info("job %s: %s while running; its prompt was interrupted", job_id, stop.reason)
        tomb = rec.tombstone(job_id)  # deleted: whatever the interrupted run still stored goes too
        if tomb and ctx.store_configured:
            _quiet_remove(job_id, tomb.get("keys", []))
        return
    except (PromptRejected, PromptFailed, Transient, ComfyGone, FleetError) as exc:
        message = exc.message if isinstance(exc, JobError) else str(exc)
        transient = isinstance(exc, FleetError) or exc.transient  # storage trouble while pruning: retry
        if isinstance(exc, ComfyGone) or (isinstance(exc, Transient) and not ctx.server.healthy()):
            ctx.unhealthy.set()
        if not transient:
            log.info("job %s: failed: %s", job_id, message)
            rec.finish(job_id, ctx.owner, "failed", error=message)
            return
        if attempts >= MAX_ATTEMPTS:
            log.warning("job %s: failed after %d attempts: %s", job_id, attempts, message)
            rec.finish(job_id, ctx.owner, "failed", error=f"{message} (gave up after {attempts} attempts)")
            return
        delay = ctx.settings.backoff(attempts)
        log.warning("job %s: attempt %d failed (%s); retrying in %gs", job_id, attempts, message, delay)
        rec.finish(job_id, ctx.owner, "queued", progress="0",
                   error=f"attempt {attempts} failed: {message}; retrying in {delay:g}s")
        raise dramatiq.Retry(delay=int(delay * 1000))

    state = rec.finish(job_id, ctx.owner, "completed", progress="1", outputs=outputs, error="")
    if state == "ok":
        log.info("job %s: completed: %s", job_id, outputs.get("url") or outputs.get("paths"))
        return
    # cancelled or deleted while its outputs were being stored: nothing of it stays in the store
    log.info("job %s: %s as it finished; removing its objects", job_id, state)
    if ctx.store_configured and outputs["keys"]:
        _quiet_remove(job_id, outputs["keys"], runs=outputs["runs"])


def _quiet_remove(job_id: str, keys, runs=()) -> None:
    try:
        objects.remove(job_id, keys, runs=runs)
    except FleetError as exc:
        log.warning("job %s: could not remove its objects: %s", job_id, exc)


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
            raise Transient(f"storage: AssetUpload (node {node_id}) could not upload "
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
    return {"url": uploads[0].get("url") if uploads else None, "bucket": uploads[0].get("bucket") if uploads else None,
            "urls": [p.get("url") for p in uploads], "keys": keys, "runs": runs, "files": files,
            "hls_prefixes": hls, "paths": paths}
