"""The API's records in Redis, beside the fleet's, and the Comfy API v2 shapes built from both.

Synchronous (redis-py, boto3), like the rest of the fleet; the aiohttp handlers
call these in threads. Keys, under the fleet's namespace ``<ns>``::

    <ns>:api:job:<id>          hash: owner (key id), created, metadata, workflow_name, classes, cost_usd
    <ns>:api:owner:<owner>     sorted set: the owner's job ids by submit time (the job list, newest first)
    <ns>:api:idem:<owner>:<h>  an Idempotency-Key's claim (24 h): the job it made

The job itself (state, progress, outputs, error) is the fleet's record
(``fleet.records``); a job made here is a fleet job of its own batch, with a
random id rather than a content-derived one: v2 makes a new job per submit,
and an ``Idempotency-Key`` (single use, per API key) is what stops a resend.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from .. import objects
from .. import records as fleet_records
from ..config import FleetError
from ..jobs import JobSpec, batch_id_for, brief_fields, load_workflow, nodes_of, prepare_prompt
from ..records import QueueFull, Records, public_record
from .settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "example_workflows" / "api"

#: the fleet's states → v2's (``canceling`` and ``expired`` never occur: a cancel is immediate, jobs are kept)
STATUS_OF = {"queued": "queued", "running": "running", "completed": "succeeded", "failed": "failed",
             "cancelled": "canceled"}
V2_STATUSES = ("queued", "running", "succeeded", "canceling", "canceled", "failed", "expired")
TERMINAL = frozenset({"succeeded", "canceled", "failed", "expired"})
#: jobs are kept until DELETE; v2 requires a date
NEVER = "9999-12-31T23:59:59Z"
#: AdReel's stage of a running job, from the class of the node running
STAGES = {"BrandBrief": "script", "ScriptLLM": "script", "StoryboardSplit": "storyboard",
          "SceneKeyImage": "rendering", "MotionClip": "rendering", "SceneNarration": "rendering",
          "MusicBed": "rendering", "BrandImage": "rendering", "ProviderRender": "rendering",
          "FFmpegAssemble": "post-processing", "AssetUpload": "post-processing"}

#: a record whose signed spec does not verify (the fleet's ``SpecRefused``, where the fleet signs its jobs)
_REFUSED = getattr(fleet_records, "SpecRefused", ())
IDEMPOTENCY_TTL_S = 24 * 3600
MAX_IDEMPOTENCY_KEY = 255
MAX_METADATA_PAIRS = 16
MAX_LIST = 100
DEFAULT_LIST = 50
SCAN_CAP = 2000
_JOB_ID = re.compile(r"^[0-9a-f]{20}$")
_ASSET_ID = re.compile(r"^([0-9a-f]{20})-(\d{1,4})$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ApiError(Exception):
    """An answer in v2's error envelope. ``message`` never repeats what the visitor sent."""

    def __init__(self, status: int, code: str, message: str, details: Optional[dict] = None,
                 headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.headers = status, code, message, details, headers

    def body(self) -> dict:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            err["details"] = self.details
        return {"error": err}


def not_found(what: str = "job") -> ApiError:
    return ApiError(404, "not_found", f"no such {what} for this API key")


def iso(t: Optional[float]) -> Optional[str]:
    if not t:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------ submissions
def parse_submission(body: Any) -> tuple[dict, str]:
    """(the API-format prompt, the workflow's name) from a POST body: v2's ``workflow``, or AdReel's
    ``brief`` + ``workflow_name`` (+ ``node_inputs``)."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    extra = body.get("extra_data")
    if extra is not None and (not isinstance(extra, dict) or set(extra) - {"api_key_comfy_org"}):
        raise ApiError(400, "invalid_request", "'extra_data' accepts only the 'api_key_comfy_org' field")
    if extra:
        # the fleet's workers queue the prompt without per-job extra data: a partner key would be dropped
        raise ApiError(422, "invalid_request", "'extra_data.api_key_comfy_org' is not supported by the fleet: "
                                               "configure provider keys in the workers' environment")
    if "workflow" in body and ("brief" in body or "workflow_name" in body):
        raise ApiError(400, "invalid_request", "give either 'workflow' or 'brief' with 'workflow_name', not both")
    if "brief" in body or "workflow_name" in body:
        return _from_brief(body), str(body.get("workflow_name"))
    workflow = body.get("workflow")
    if not isinstance(workflow, dict) or not workflow:
        raise ApiError(422, "invalid_workflow", "missing 'workflow' (an API-format graph), or 'brief' with "
                                                "'workflow_name' (AdReel's extension)")
    if isinstance(workflow.get("nodes"), list) or all(k in workflow for k in ("links", "last_node_id")):
        raise ApiError(422, "workflow_format_ui", "this is a UI-format workflow (what the editor saves); "
                                                  "export it in API format")
    prompt = copy.deepcopy(workflow)
    _check_graph(prompt)
    return prompt, "api"


def _check_graph(prompt: dict) -> None:
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs"), dict):
            raise ApiError(422, "invalid_workflow", "a node has no class_type / inputs: not an API-format "
                                                    "workflow", details={"node_id": _safe_id(node_id)})
        node.pop("_meta", None)
    if not nodes_of(prompt, "AssetUpload"):
        raise ApiError(422, "invalid_workflow", "the workflow has no AssetUpload node: a fleet job's outputs reach "
                                                "this API only through the store (see "
                                                "example_workflows/api/brief_to_ad_upload.json)")


def _safe_id(node_id: Any) -> str:
    s = str(node_id)
    return s if re.fullmatch(r"[A-Za-z0-9_:.-]{1,32}", s) else "?"


def _from_brief(body: dict) -> dict:
    name = body.get("workflow_name")
    if not isinstance(name, str) or not _WORKFLOW_NAME.match(name):
        raise ApiError(422, "invalid_request", "'workflow_name' must name a shipped workflow: "
                                               + ", ".join(shipped_workflows()))
    path = SHIPPED / f"{name}.json"
    if name not in shipped_workflows():
        raise ApiError(422, "invalid_request", "'workflow_name' is not a shipped workflow; these are: "
                                               + ", ".join(shipped_workflows()))
    try:
        workflow = load_workflow(str(path))
    except FleetError as exc:  # a shipped file: names only our own path
        raise ApiError(500, "internal", str(exc)) from None
    brief = body.get("brief")
    if not isinstance(brief, dict) or not brief:
        raise ApiError(422, "invalid_request", "'brief' must be a JSON object of BrandBrief's fields")
    allowed = brief_fields(workflow)
    (brief_id, brief_node), = nodes_of(workflow, "BrandBrief")
    for key, value in brief.items():
        if key not in allowed:
            raise ApiError(422, "invalid_request", "'brief' has an unknown field; BrandBrief's fields are "
                                                   + ", ".join(allowed))
        brief_node["inputs"][key] = _typed(value, allowed[key], f"brief.{key}")
    overrides = body.get("node_inputs") or {}
    if not isinstance(overrides, dict):
        raise ApiError(422, "invalid_request", "'node_inputs' must map a node class to {input: value}")
    for cls, values in overrides.items():
        targets = nodes_of(workflow, cls) if isinstance(cls, str) else []
        if not targets or not isinstance(values, dict):
            raise ApiError(422, "invalid_request", "'node_inputs' names a node class the workflow does not have; "
                                                   "its classes are " + ", ".join(sorted({n['class_type'] for n in
                                                                                        workflow.values()})))
        for _, node in targets:
            for key, value in values.items():
                current = node["inputs"].get(key)
                if key not in node["inputs"] or isinstance(current, list):
                    raise ApiError(422, "invalid_request", f"'node_inputs.{cls}' sets an input that is not one of "
                                                           "its widgets: " + ", ".join(
                                                               k for k, v in node["inputs"].items()
                                                               if not isinstance(v, list)))
                node["inputs"][key] = _typed(value, current, f"node_inputs.{cls}")
    for node in workflow.values():
        node.pop("_meta", None)
    return workflow


def _typed(value: Any, default: Any, where: str) -> Any:
    if isinstance(value, (dict, list)) or value is None:
        raise ApiError(422, "invalid_request", f"'{where}' must be a string, number or boolean")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def shipped_workflows() -> list[str]:
    try:
        return sorted(p.stem for p in SHIPPED.glob("*.json"))
    except OSError:
        return []


def parse_metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ApiError(422, "metadata_invalid", "'metadata' must be an object of string labels")
    if len(raw) > MAX_METADATA_PAIRS:
        raise ApiError(422, "metadata_invalid", f"'metadata' has {len(raw)} pairs; at most {MAX_METADATA_PAIRS}")
    for k, v in raw.items():
        if not _META_KEY.match(k):
            raise ApiError(422, "metadata_invalid", "a 'metadata' key must be 1-64 letters, digits or _.:-")
        if not isinstance(v, str) or len(v) > 256:
            raise ApiError(422, "metadata_invalid", f"'metadata.{k}' must be a string of at most 256 characters")
    return dict(raw)


def make_spec(job_id: str, prompt: dict, workflow_name: str) -> JobSpec:
    briefs = nodes_of(prompt, "BrandBrief")
    brief = {k: v for k, v in briefs[0][1]["inputs"].items() if not isinstance(v, list)} if briefs else {}
    seed = None
    scripts = nodes_of(prompt, "ScriptLLM")
    if scripts:
        s = scripts[0][1]["inputs"].get("seed", 0)
        seed = int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None
    return JobSpec(id=job_id, row=1, variant=0, seed=seed, brief=brief, prompt=prepare_prompt(prompt, job_id),
                   brand=str(brief.get("brand", "")), workflow=workflow_name)


# ------------------------------------------------------------------ the records
class Views:
    def __init__(self, settings: ApiSettings, records: Optional[Records] = None, actor=None):
        self.settings = settings
        self.records = records or Records(settings.fleet)
        self.r = self.records.r
        self.ns = f"{settings.fleet.namespace}:api"
        self._actor = actor
        self._store = None

    def meta_key(self, job_id: str) -> str:
        return f"{self.ns}:job:{job_id}"

    def owner_key(self, owner: str) -> str:
        return f"{self.ns}:owner:{owner}"

    def idem_key(self, owner: str, key: str) -> str:
        return f"{self.ns}:idem:{owner}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def actor(self):
        if self._actor is None:
            from ..broker import make_broker

            _broker, self._actor = make_broker(self.settings.fleet)
        return self._actor

    def ping(self) -> None:
        self.records.ping()

    def count_request(self, owner: str) -> None:
        """One request of ``owner`` in this minute (a fixed window in Redis, shared by every API process);
        past ``ADREEL_API_RATE_PER_MINUTE``, a 429 saying when the next minute starts."""
        now = time.time()
        window = int(now // 60)
        key = f"{self.ns}:rate:{owner}:{window}"
        pipe = self.r.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
        limit = self.settings.rate_per_minute
        if count > limit:
            wait = max(1, int((window + 1) * 60 - now + 0.999))
            raise ApiError(429, "rate_limited", f"this API key made more than {limit} requests this minute "
                           "(ADREEL_API_RATE_PER_MINUTE); retry after the Retry-After seconds",
                           details={"limit_per_minute": limit}, headers={"Retry-After": str(wait)})

    # submit ---------------------------------------------------------------------
    def submit(self, owner: str, body: Any, idempotency_key: Optional[str], base: str = "") -> str:
        prompt, name = parse_submission(body)
        metadata = parse_metadata(body.get("metadata"))
        hook = body.get("webhook_url")
        if hook is not None:
            from .webhooks import check_url

            hook = check_url(hook, self.settings.webhook_allow_private)
        job_id = secrets.token_hex(10)
        spec = make_spec(job_id, prompt, name)
        claim = None
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY \
                    or not idempotency_key.isascii() or not idempotency_key.isprintable():
                raise ApiError(400, "invalid_request",
                               f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters")
            claim = self.idem_key(owner, idempotency_key)
            if not self.r.set(claim, job_id, nx=True, ex=IDEMPOTENCY_TTL_S):
                made = self.r.get(claim)
                raise ApiError(422, "idempotency_key_reuse", "this Idempotency-Key was already used with this API "
                               "key; keys are single-use: poll or list the job it made",
                               details={"job_id": made} if made and _JOB_ID.match(made) else None)
        now = time.time()
        classes = {k: v["class_type"] for k, v in spec.prompt.items()}
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.meta_key(job_id), mapping={"owner": owner, "created": f"{now:.3f}",
                                                  "metadata": json.dumps(metadata), "workflow_name": name,
                                                  "classes": json.dumps(classes), "base": base,
                                                  **({"webhook_url": hook} if hook else {})})
        pipe.zadd(self.owner_key(owner), {job_id: now})
        pipe.execute()
        try:
            self.records.admit(batch_id_for([job_id]), [spec], self.settings.fleet.max_queued)
        except QueueFull as exc:
            self._forget(owner, job_id)
            if claim:
                self.r.delete(claim)  # nothing was made: the same key may be sent again (the SDK retries a 429)
            raise ApiError(429, "queue_full",
                           f"the fleet's queue is full: {exc.waiting} job(s) are waiting for a worker, and it holds "
                           f"at most {exc.cap} (ADREEL_FLEET_MAX_QUEUED); nothing was submitted. Retry when jobs "
                           "have started.", details={"waiting": exc.waiting, "max_queued": exc.cap},
                           headers={"Retry-After": "10"}) from None
        if hook:
            self.r.sadd(f"{self.ns}:hooks:watch", job_id)
        self.actor().send(job_id)
        return job_id

    def _forget(self, owner: str, job_id: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.meta_key(job_id))
        pipe.zrem(self.owner_key(owner), job_id)
        pipe.execute()

    # read -----------------------------------------------------------------------
    def _load(self, owner: str, job_id: str) -> tuple[dict, dict]:
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise not_found()
        pipe = self.r.pipeline()
        pipe.hgetall(self.meta_key(job_id))
        pipe.hgetall(self.records.job_key(job_id))
        meta, raw = pipe.execute()
        if not meta or meta.get("owner") != owner or not raw:
            raise not_found()
        return meta, raw

    def job(self, owner: str, job_id: str, base: str, position: bool = True) -> dict:
        meta, raw = self._load(owner, job_id)
        rec = public_record(raw)
        if rec["state"] == "completed" and "cost_usd" not in meta:
            cost = self._cost(rec)
            if cost is not None:
                self.r.hset(self.meta_key(job_id), "cost_usd", f"{cost:.6f}")
                meta["cost_usd"] = f"{cost:.6f}"
        queue_position = self._queue_position(job_id, rec) if position and rec["state"] == "queued" else None
        return shape(job_id, meta, raw, base, queue_position)

    def _queue_position(self, job_id: str, rec: dict) -> int:
        ids = list(self.r.smembers(self.records.queued_key))
        pipe = self.r.pipeline()
        for i in ids:
            pipe.hget(self.records.job_key(i), "created")
        mine = rec["created"]
        return sum(1 for i, c in zip(ids, pipe.execute()) if i != job_id and c and (float(c), i) < (mine, job_id))

    def _cost(self, rec: dict) -> Optional[float]:
        """What the job's runs cost, from their history records in the store (None when unknown)."""
        runs = (rec.get("outputs") or {}).get("runs") or []
        if not runs:
            return None
        try:
            from nodes.engine.storage.history import history_key

            store = self.store()
            total = 0.0
            for run in runs:
                data = json.loads(store.get_bytes(history_key(store.config, run), max_bytes=1024 * 1024))
                total += float(data.get("costs_usd") or 0.0)
            return total
        except Exception:  # noqa: BLE001 — no store here, or the record unreadable: the cost stays unknown
            return None

    def store(self):
        if self._store is None:
            from nodes.engine.storage import S3Store, load_storage_config

            self._store = S3Store(load_storage_config())
        return self._store

    def workflow(self, owner: str, job_id: str) -> dict:
        self._load(owner, job_id)
        try:
            spec = self.records.spec(job_id) or {}
        except _REFUSED as exc:
            raise ApiError(409, "record_refused", f"this job's record does not verify: {exc}") from None
        return {"workflow": spec.get("prompt") or {}, "format": "api"}

    def list(self, owner: str, base: str, *, limit: Any = None, cursor: Optional[str] = None,
             statuses: Optional[str] = None, metadata: Optional[dict] = None) -> dict:
        try:
            limit = DEFAULT_LIST if limit in (None, "") else int(limit)
        except (TypeError, ValueError):
            raise ApiError(400, "invalid_request", "'limit' must be a whole number") from None
        if not 1 <= limit <= MAX_LIST:
            raise ApiError(400, "invalid_request", f"'limit' must be between 1 and {MAX_LIST}")
        wanted = None
        if statuses:
            wanted = {s.strip() for s in statuses.split(",") if s.strip()}
            if wanted - set(V2_STATUSES):
                raise ApiError(400, "invalid_request", "'status' takes a comma-separated list of "
                                                       + ", ".join(V2_STATUSES))
        max_score, after = "+inf", None
        if cursor:
            try:
                score, after = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":", 1)
                max_score = float(score)
                if not _JOB_ID.match(after):
                    raise ValueError
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "invalid_cursor", "'cursor' is not one this server gave") from None
        out: list[dict] = []
        scanned, last, key = 0, None, self.owner_key(owner)

        def after_cursor(max_score, after, num):
            chunk = self.r.zrevrangebyscore(key, max_score, "-inf", start=0, num=num, withscores=True)
            return [(i, s) for i, s in chunk if after is None or not (s == max_score and i >= after)]

        exhausted = False
        while scanned < SCAN_CAP and len(out) < limit:
            chunk = after_cursor(max_score, after, 200)
            if not chunk:
                exhausted = True
                break
            pipe = self.r.pipeline()
            for i, _ in chunk:
                pipe.hgetall(self.meta_key(i))
                pipe.hgetall(self.records.job_key(i))
            got = pipe.execute()
            for n, (i, s) in enumerate(chunk):
                if len(out) >= limit:
                    break
                scanned += 1
                last = (s, i)
                meta, raw = got[2 * n], got[2 * n + 1]
                if not meta or not raw:
                    continue
                job = shape(i, meta, raw, base, None)
                if wanted and job["status"] not in wanted:
                    continue
                if metadata and any(job["metadata"].get(k) != v for k, v in metadata.items()):
                    continue
                out.append(job)
            max_score, after = last
        page: dict[str, Any] = {"jobs": out}
        if last is not None and not exhausted and after_cursor(last[0], last[1], 50):
            page["next_cursor"] = base64.urlsafe_b64encode(f"{last[0]!r}:{last[1]}".encode()).decode().rstrip("=")
        return page

    # change ---------------------------------------------------------------------
    def cancel(self, owner: str, job_id: str, base: str) -> dict:
        self._load(owner, job_id)
        self.records.cancel(job_id)  # a terminal job stays as it is; v2: cancel is a request, not a guarantee
        return self.job(owner, job_id, base)

    def delete(self, owner: str, job_id: str) -> dict:
        self._load(owner, job_id)
        removed = objects.delete_job(self.records, job_id)
        self._forget(owner, job_id)
        return {"id": job_id, "deleted": True, "objects_removed": len(removed or [])}

    def asset(self, owner: str, asset_id: str, base: str) -> tuple[dict, str]:
        """(the output as v2 shows it, its object key) of one of the owner's outputs."""
        m = _ASSET_ID.match(asset_id or "")
        if not m:
            raise not_found("asset")
        try:
            meta, raw = self._load(owner, m.group(1))
        except ApiError:
            raise not_found("asset") from None
        outs = shape(m.group(1), meta, raw, base, None)["outputs"]
        files = (public_record(raw)["outputs"] or {}).get("files") or []
        n = int(m.group(2))
        if n >= len(outs) or n >= len(files):
            raise not_found("asset")
        return outs[n], files[n]["key"]


# ------------------------------------------------------------------ v2 shapes
def shape(job_id: str, meta: dict, raw: dict, base: str, queue_position: Optional[int]) -> dict:
    rec = public_record(raw)
    status = STATUS_OF.get(rec["state"], "failed")
    classes = json.loads(meta.get("classes") or "{}")
    total = max(1, len(classes))
    created = float(meta.get("created") or rec["created"] or 0)
    started = float(raw.get("started") or 0) or None
    ended = rec["updated"] if status in TERMINAL else None
    node = raw.get("node") or None
    value = 1.0 if status == "succeeded" else max(0.0, min(1.0, rec["progress"]))
    node_class = classes.get(node) if node else None
    stage = {"queued": "pending", "running": STAGES.get(node_class or "", "rendering")}.get(status, status)
    progress = {"value": value, "nodes_done": min(total, int(value * total + 1e-9)), "nodes_total": total,
                "current_node": node if status == "running" else None,
                "current_node_class": node_class if status == "running" else None,
                "message": f"{stage}: {node_class} (node {node})" if status == "running" and node_class else stage}
    error = None
    if status == "failed":
        text = rec["error"] or "failed"
        m = re.match(r"^node (\S+) \(([A-Za-z0-9_]+)\)", text)
        error = {"code": "node_execution_error" if m else "job_failed", "message": text,
                 "node_id": m.group(1) if m else None, "class_type": m.group(2) if m else None}
    metrics = {"queue_ms": int((started - created) * 1000) if started else None,
               "execution_ms": int(((ended or time.time()) - started) * 1000) if started and status != "queued"
               else None}
    cost = meta.get("cost_usd")
    urls = {"self": f"/api/v2/jobs/{job_id}", "events": f"/api/v2/jobs/{job_id}/events",
            "cancel": f"/api/v2/jobs/{job_id}/cancel"}
    return {
        "id": job_id, "status": status,
        "created_at": iso(created), "started_at": iso(started), "completed_at": iso(ended),
        "create_time": iso(created), "update_time": iso(rec["updated"] or created),
        "expires_at": NEVER, "queue_position": queue_position, "progress": progress,
        "outputs": outputs_of(job_id, rec, classes, base) if status == "succeeded" else [],
        "error": error, "metrics": metrics, "urls": urls,
        "metadata": json.loads(meta.get("metadata") or "{}"),
        "adreel": {"stage": stage, "brand": rec["brand"], "workflow_name": meta.get("workflow_name") or "",
                   "attempts": rec["attempts"], "worker": rec["worker"] or None,
                   "cost_usd": float(cost) if cost not in (None, "") else None,
                   "note": rec["error"] if status in ("queued", "running") and rec["error"] else None},
    }


def outputs_of(job_id: str, rec: dict, classes: dict, base: str) -> list[dict]:
    from nodes.engine.storage.keys import content_type_for

    uploads = [k for k, c in classes.items() if c == "AssetUpload"]
    out = []
    for n, f in enumerate((rec.get("outputs") or {}).get("files") or []):
        name = f.get("name") or os.path.basename(f.get("key") or "")
        ctype = content_type_for(name)
        major = ctype.split("/", 1)[0]
        kind = major if major in ("image", "video", "audio") else "text" if ctype.startswith("text/") else "file"
        asset_id = f"{job_id}-{n}"
        out.append({"node_id": uploads[0] if uploads else "", "name": name, "type": kind, "content_type": ctype,
                    "size_bytes": int(f.get("bytes") or 0), "id": asset_id, "hash": None,
                    "url": f"{base}/api/v2/assets/{asset_id}/content", "url_expires_at": NEVER, "job_id": job_id,
                    "sha256": f.get("sha256"), "kind": f.get("kind")})
    return out
