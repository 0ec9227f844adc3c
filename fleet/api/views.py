"""The API's records in Redis, beside the fleet's, and the Comfy API v2 shapes built from both.

Synchronous (redis-py, boto3), like the rest of the fleet; the aiohttp handlers
call these in threads. Keys, under the fleet's namespace ``<ns>``::

    <ns>:api:job:<id>          hash: owner (key id), created, metadata, workflow_name, classes, cost_usd
    <ns>:api:owner:<owner>     sorted set: the owner's job ids by submit time (the job list, newest first)
    <ns>:api:idem:<owner>:<h>  an Idempotency-Key's claim (24 h): the job it made
    <ns>:api:decided:<id>      an approval job's decision (approved / discarded), taken once

A job submitted with ``"approval": true`` (``approval``) first runs its prefix as a fleet job of its own
(``prefix`` in its hash), and holds the whole workflow, signed (``held``, ``held_sig``), until it is
approved; then the whole workflow runs under the job's own id, with the approved script.

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
from ..config import FleetError
from ..jobs import JobSpec, batch_id_for, brief_fields, load_workflow, nodes_of, parse_briefs, prepare_prompt
from ..records import QueueFull, Records, SpecRefused, public_record, sign_spec
from . import approval
from .settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "example_workflows" / "api"

#: the fleet's states → v2's (``canceling`` and ``expired`` never occur: a cancel is immediate, jobs are kept)
STATUS_OF = {"queued": "queued", "running": "running", "completed": "succeeded", "failed": "failed",
             "cancelled": "canceled"}
#: ``awaiting_approval`` is AdReel's: a job submitted with ``"approval": true`` waits there for its approval
V2_STATUSES = ("queued", "running", "awaiting_approval", "succeeded", "canceling", "canceled", "failed", "expired")
TERMINAL = frozenset({"succeeded", "canceled", "failed", "expired"})
#: jobs are kept until DELETE; v2 requires a date
NEVER = "9999-12-31T23:59:59Z"
#: AdReel's stage of a running job, from the class of the node running
STAGES = {"BrandBrief": "script", "ScriptLLM": "script", "StoryboardSplit": "storyboard",
          "SceneKeyImage": "rendering", "MotionClip": "rendering", "SceneNarration": "rendering",
          "MusicBed": "rendering", "BrandImage": "rendering", "ProviderRender": "rendering",
          "FFmpegAssemble": "post-processing", "AssetUpload": "post-processing"}

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_IDEMPOTENCY_KEY = 255
MAX_METADATA_PAIRS = 16
MAX_LIST = 100
DEFAULT_LIST = 50
SCAN_CAP = 2000
_JOB_ID = re.compile(r"^[0-9a-f]{20}$")
_BATCH_ID = re.compile(r"^b[0-9a-f]{20}$")
MAX_VARIANTS = 20
MAX_ROWS_TEXT = 4 * 1024 * 1024
#: how long a quota reservation holds before its job is admitted (a process that died leaves it to lapse)
RESERVE_S = 60
_ASSET_ID = re.compile(r"^([0-9a-f]{20})-(\d{1,4})$")
_META_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: the prefix's stages: the key images belong to the storyboard the user approves
PREFIX_STAGES = {**STAGES, "SceneKeyImage": "storyboard", approval.PREVIEW_CLASS: "storyboard"}


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
    ``brief`` + ``workflow_name`` (+ ``node_inputs``); ``brand`` (a brand kit's name) goes into its BrandBrief."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    if "brief" in body or "workflow_name" in body:
        if "workflow" in body:
            raise ApiError(400, "invalid_request", "give either 'workflow' or 'brief' with 'workflow_name', not both")
        brief = body.get("brief")
        if not isinstance(brief, dict) or not brief:
            raise ApiError(422, "invalid_request", "'brief' must be a JSON object of BrandBrief's fields")
        prompt, name = parse_template(body)
        apply_brief(prompt, brief, "brief")
    else:
        prompt, name = parse_template(body)
    apply_brand(prompt, body.get("brand"))
    return prompt, name


def parse_template(body: dict) -> tuple[dict, str]:
    """The workflow a job (or each row of a batch) starts from, with ``node_inputs`` applied: a shipped workflow
    by ``workflow_name``, or v2's ``workflow`` graph."""
    extra = body.get("extra_data")
    if extra is not None and (not isinstance(extra, dict) or set(extra) - {"api_key_comfy_org"}):
        raise ApiError(400, "invalid_request", "'extra_data' accepts only the 'api_key_comfy_org' field")
    if extra:
        # the fleet's workers queue the prompt without per-job extra data: a partner key would be dropped
        raise ApiError(422, "invalid_request", "'extra_data.api_key_comfy_org' is not supported by the fleet: "
                                               "configure provider keys in the workers' environment")
    if "workflow" in body and "workflow_name" in body:
        raise ApiError(400, "invalid_request", "give either 'workflow' or 'workflow_name', not both")
    if "workflow_name" in body:
        return _shipped(body), str(body["workflow_name"])
    workflow = body.get("workflow")
    if not isinstance(workflow, dict) or not workflow:
        raise ApiError(422, "invalid_workflow", "missing 'workflow' (an API-format graph), or 'brief' with "
                                                "'workflow_name' (AdReel's extension)")
    if isinstance(workflow.get("nodes"), list) or all(k in workflow for k in ("links", "last_node_id")):
        raise ApiError(422, "workflow_format_ui", "this is a UI-format workflow (what the editor saves); "
                                                  "export it in API format")
    if "node_inputs" in body:
        raise ApiError(422, "invalid_request", "'node_inputs' goes with 'workflow_name'; set a 'workflow' graph's "
                                               "widgets in the graph itself")
    prompt = copy.deepcopy(workflow)
    _check_graph(prompt)
    return prompt, "api"


#: BrandBrief's input that names the brand (and, with brand kits, the kit in ``brands/``)
BRAND_INPUT = "brand"
MAX_BRAND = 64
_BRAND_BAD = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_brand(value: Any, where: str = "brand") -> str:
    """A brand (kit) name: a plain name, never a path (no slash, no backslash, no leading dot, no control
    character), 1-64 characters without surrounding spaces."""
    if not isinstance(value, str) or not value or len(value) > MAX_BRAND or value.strip() != value \
            or value.startswith(".") or _BRAND_BAD.search(value):
        raise ApiError(422, "invalid_request", f"'{where}' must be a brand's plain name: 1-{MAX_BRAND} characters, "
                                               "no slash, backslash, leading dot or control character")
    return value


def apply_brand(prompt: dict, brand: Any) -> None:
    """Put the request's ``brand`` into the workflow's BrandBrief (a brief that names another brand is refused)."""
    if brand is None:
        return
    name = check_brand(brand)
    briefs = nodes_of(prompt, "BrandBrief")
    if len(briefs) != 1:
        raise ApiError(422, "invalid_request", "'brand' needs a workflow with exactly one BrandBrief node")
    inputs = briefs[0][1]["inputs"]
    given = inputs.get(BRAND_INPUT)
    if isinstance(given, list):
        raise ApiError(422, "invalid_request", f"'brand': the workflow's BrandBrief takes its {BRAND_INPUT} "
                                               "from another node")
    inputs[BRAND_INPUT] = name


def apply_brief(workflow: dict, brief: dict, where: str) -> None:
    """Set BrandBrief's widgets from ``brief`` (an unknown field is refused, listing the valid ones)."""
    briefs = nodes_of(workflow, "BrandBrief")
    if len(briefs) != 1:
        raise ApiError(422, "invalid_request", f"'{where}' needs a workflow with exactly one BrandBrief node")
    allowed = brief_fields(workflow)
    brief_node = briefs[0][1]
    for key, value in brief.items():
        if key not in allowed:
            raise ApiError(422, "invalid_request", f"'{where}' has an unknown field; BrandBrief's fields are "
                                                   + ", ".join(allowed))
        brief_node["inputs"][key] = _typed(value, allowed[key], f"{where}.{key}")
    if BRAND_INPUT in brief:
        check_brand(brief_node["inputs"][BRAND_INPUT], f"{where}.{BRAND_INPUT}")


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


def _shipped(body: dict) -> dict:
    """A shipped workflow (``example_workflows/api/<workflow_name>.json``) with ``node_inputs`` applied."""
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


def parse_rows(body: dict, workflow: dict) -> list[tuple[int, dict]]:
    """A batch's rows: ``csv`` or ``jsonl`` text (the fleet's own parser, ``fleet.jobs.parse_briefs``, as for
    ``python -m fleet submit --briefs``), or ``rows``, a JSON list of BrandBrief objects."""
    given = [k for k in ("csv", "jsonl", "rows") if k in body]
    if len(given) != 1:
        raise ApiError(422, "invalid_request", "a batch needs exactly one of 'csv' (text, a header of BrandBrief's "
                                               "inputs), 'jsonl' (text, a JSON object per line) or 'rows' (a list)")
    what = given[0]
    if len(nodes_of(workflow, "BrandBrief")) != 1:
        raise ApiError(422, "invalid_request", "a batch needs a workflow with exactly one BrandBrief node")
    raw = body[what]
    if what == "rows":
        if not isinstance(raw, list) or not raw or not all(isinstance(r, dict) for r in raw):
            raise ApiError(422, "invalid_request", "'rows' must be a non-empty list of BrandBrief objects")
        return [(n, r) for n, r in enumerate(raw, start=1)]
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(422, "invalid_request", f"'{what}' must be non-empty text")
    if len(raw.encode("utf-8")) > MAX_ROWS_TEXT:
        raise ApiError(413, "too_large", f"'{what}' is larger than {MAX_ROWS_TEXT} bytes")
    try:
        return parse_briefs(raw.lstrip("\ufeff"), workflow, jsonl=what == "jsonl", source=f"'{what}'",
                            name_columns=False)
    except FleetError as exc:  # names the row and the field, never a value or a column the visitor sent
        raise ApiError(422, "invalid_rows", str(exc)) from None


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


# KEYS: the fleet's queued set, the owner's fleet ids, the owner's reservations · ARGV: limit, now, lease, id…
# A reservation covers a job between this check and its admission; one left by a dead process lapses.
_QUOTA = """
local now = tonumber(ARGV[2])
redis.call('zremrangebyscore', KEYS[3], '-inf', now - tonumber(ARGV[3]))
local waiting = redis.call('sintercard', 2, KEYS[1], KEYS[2]) + redis.call('zcard', KEYS[3])
if waiting + (#ARGV - 3) > tonumber(ARGV[1]) then return {-1, waiting} end
for i = 4, #ARGV do
  redis.call('sadd', KEYS[2], ARGV[i])
  redis.call('zadd', KEYS[3], now, ARGV[i])
end
return {1, waiting}
"""


# ------------------------------------------------------------------ the records
class Views:
    def __init__(self, settings: ApiSettings, records: Optional[Records] = None, actor=None):
        self.settings = settings
        self.records = records or Records(settings.fleet)
        self.r = self.records.r
        self.ns = f"{settings.fleet.namespace}:api"
        self._actor = actor
        self._store = None
        self._quota = self.r.register_script(_QUOTA)

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
        options = self._options(body)
        return self._admit(owner, [(prompt, name, {})], options, idempotency_key, base)[0]

    def submit_batch(self, owner: str, body: Any, idempotency_key: Optional[str], base: str = "") -> dict:
        """A batch: one job per row × variant (rows as CSV or JSON Lines text, as ``python -m fleet submit
        --briefs`` reads them, or a JSON list), all admitted or none."""
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "the body must be a JSON object")
        if "brief" in body:
            raise ApiError(422, "invalid_request", "a batch takes its briefs from 'csv', 'jsonl' or 'rows', not "
                                                   "'brief'")
        template, name = parse_template(body)
        rows = parse_rows(body, template)
        variants = body.get("variants", 1)
        if isinstance(variants, bool) or not isinstance(variants, int) or not 1 <= variants <= MAX_VARIANTS:
            raise ApiError(422, "invalid_request", f"'variants' must be a whole number from 1 to {MAX_VARIANTS}")
        cap = self.settings.fleet.max_queued
        if len(rows) * variants > cap:
            raise ApiError(422, "batch_too_large", f"this batch has {len(rows) * variants} jobs, more than the "
                           f"{cap} the queue may hold (ADREEL_FLEET_MAX_QUEUED); split it",
                           details={"jobs": len(rows) * variants, "max_queued": cap})
        brand = body.get("brand")
        scripts = nodes_of(template, "ScriptLLM")
        if variants > 1 and not scripts:
            raise ApiError(422, "invalid_request", "'variants': the workflow has no ScriptLLM node whose seed could "
                                                   "make variants")
        s = scripts[0][1]["inputs"].get("seed", 0) if scripts else 0
        base_seed = int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else 0
        jobs = []
        for row, values in rows:
            for v in range(variants):
                prompt = copy.deepcopy(template)
                apply_brief(prompt, values, f"row {row}")
                try:
                    apply_brand(prompt, brand)
                except ApiError as exc:
                    raise ApiError(exc.status, exc.code, f"row {row}: {exc.message}") from None
                for node_id, _ in scripts:  # variant k: ScriptLLM's seed + k, as `python -m fleet submit`
                    prompt[node_id]["inputs"]["seed"] = base_seed + v
                jobs.append((prompt, name, {"row": str(row), "variant": str(v)}))
        batch = "b" + secrets.token_hex(10)
        options = self._options(body)
        ids = self._admit(owner, jobs, options, idempotency_key, base, batch=batch)
        now = time.time()
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.batch_key(batch), mapping={"owner": owner, "created": f"{now:.3f}", "jobs": json.dumps(ids),
                                                  "variants": variants, "rows": len(rows)})
        pipe.execute()
        return self.batch(owner, batch, base)

    def batch(self, owner: str, batch: str, base: str) -> dict:
        if not isinstance(batch, str) or not _BATCH_ID.match(batch):
            raise not_found("batch")
        rec = self.r.hgetall(self.batch_key(batch))
        if not rec or rec.get("owner") != owner:
            raise not_found("batch")
        jobs = []
        for job_id in json.loads(rec["jobs"]):
            try:
                jobs.append(self.job(owner, job_id, base, position=False))
            except ApiError:  # deleted since
                continue
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j["status"]] = counts.get(j["status"], 0) + 1
        return {"id": batch, "created_at": iso(float(rec["created"])), "rows": int(rec.get("rows") or 0),
                "variants": int(rec.get("variants") or 1), "counts": counts, "jobs": jobs}

    def batch_key(self, batch: str) -> str:
        return f"{self.ns}:batch:{batch}"

    def _options(self, body: dict) -> dict:
        """What applies to every job of a request: metadata, webhook, approval."""
        metadata = parse_metadata(body.get("metadata"))
        hook = body.get("webhook_url")
        if hook is not None:
            from .webhooks import check_url

            hook = check_url(hook, self.settings.webhook_allow_private)
        wants_approval = body.get("approval", False)
        if not isinstance(wants_approval, bool):
            raise ApiError(422, "invalid_request", "'approval' must be true or false")
        return {"metadata": metadata, "hook": hook, "approval": wants_approval}

    def _admit(self, owner: str, jobs: list, options: dict, idempotency_key: Optional[str], base: str,
               batch: str = "") -> list[str]:
        """Queue ``jobs`` ((prompt, workflow name, labels) each) for ``owner``, all or none: within this key's
        quota and the fleet's cap, signed as every fleet job. Their ids, in order."""
        specs, metas = [], []
        for prompt, name, labels in jobs:
            job_id = secrets.token_hex(10)
            spec = make_spec(job_id, prompt, name)
            held: dict[str, str] = {}
            if options["approval"]:
                try:
                    prefix = approval.prefix_prompt(prompt)
                except approval.NoPrefix as exc:
                    raise ApiError(422, "invalid_request", str(exc)) from None
                prefix_id = secrets.token_hex(10)
                text = json.dumps(prompt, ensure_ascii=False, allow_nan=False, sort_keys=True)
                held = {"approval": "pending", "prefix": prefix_id, "held": text,
                        "held_sig": self._held_sig(job_id, text),
                        "prefix_classes": json.dumps({k: v["class_type"] for k, v in prefix.items()})}
                spec = make_spec(prefix_id, prefix, name)
            classes = {k: v["class_type"] for k, v in prepare_prompt(prompt, job_id).items()}
            specs.append(spec)
            metas.append((job_id, {"owner": owner, "metadata": json.dumps(options["metadata"]), "workflow_name": name,
                                   "classes": json.dumps(classes), "base": base, **held, **labels,
                                   **({"batch": batch} if batch else {}),
                                   **({"webhook_url": options["hook"]} if options["hook"] else {})}))
        ids = [job_id for job_id, _ in metas]
        claim = None
        if idempotency_key is not None:
            if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY \
                    or not idempotency_key.isascii() or not idempotency_key.isprintable():
                raise ApiError(400, "invalid_request",
                               f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters")
            claim = self.idem_key(owner, idempotency_key)
            if not self.r.set(claim, batch or ids[0], nx=True, ex=IDEMPOTENCY_TTL_S):
                made = self.r.get(claim) or ""
                details = {"job_id": made} if _JOB_ID.match(made) else {"batch_id": made} \
                    if _BATCH_ID.match(made) else None
                raise ApiError(422, "idempotency_key_reuse", "this Idempotency-Key was already used with this API "
                               "key; keys are single-use: poll or list what it made", details=details)
        fleet_ids = [spec.id for spec in specs]
        try:
            waiting, cap = self.records.waiting(), self.settings.fleet.max_queued
            if waiting + len(fleet_ids) > cap:  # the fleet's cap first (``admit`` holds it atomically below)
                raise self._queue_full(QueueFull(waiting, len(fleet_ids), cap))
            self._reserve(owner, fleet_ids)
        except ApiError:
            if claim:
                self.r.delete(claim)  # nothing was made: the same key may be sent again
            raise
        now = time.time()
        pipe = self.r.pipeline(transaction=True)
        for n, (job_id, meta) in enumerate(metas):
            pipe.hset(self.meta_key(job_id), mapping={**meta, "created": f"{now + n * 1e-6:.6f}"})
            pipe.zadd(self.owner_key(owner), {job_id: now + n * 1e-6})
        pipe.execute()
        try:
            self.records.admit(batch_id_for(fleet_ids), specs, self.settings.fleet.max_queued)
        except QueueFull as exc:
            for job_id in ids:
                self._forget(owner, job_id)
            self.r.srem(self.fleet_ids_key(owner), *fleet_ids)
            if claim:
                self.r.delete(claim)  # nothing was made: the same key may be sent again (the SDK retries a 429)
            raise self._queue_full(exc) from None
        finally:
            self.r.zrem(self.reserving_key(owner), *fleet_ids)
        if options["hook"] or self.settings.key_webhooks.get(owner):
            self.r.sadd(f"{self.ns}:hooks:watch", *ids)
        for fleet_id in fleet_ids:
            self.actor().send(fleet_id)
        return ids

    def fleet_ids_key(self, owner: str) -> str:
        return f"{self.ns}:fleetids:{owner}"

    def reserving_key(self, owner: str) -> str:
        return f"{self.ns}:reserving:{owner}"

    def _reserve(self, owner: str, fleet_ids: list[str]) -> None:
        """Count ``fleet_ids`` as this key's (its quota, ``ADREEL_API_MAX_QUEUED_PER_KEY``), or a 429 saying how
        many of its jobs wait. Atomic: two requests of one key at once cannot both pass the quota."""
        limit = self.settings.max_queued_per_key
        res = self._quota(keys=[self.records.queued_key, self.fleet_ids_key(owner), self.reserving_key(owner)],
                          args=[limit, f"{time.time():.3f}", RESERVE_S, *fleet_ids])
        if int(res[0]) < 0:
            waiting = int(res[1])
            raise ApiError(429, "key_queue_full",
                           f"this API key has {waiting} job(s) waiting for a worker and may have at most {limit} "
                           f"(ADREEL_API_MAX_QUEUED_PER_KEY); this request would add {len(fleet_ids)}; nothing was "
                           "submitted. Retry when your jobs have started.",
                           details={"waiting_for_key": waiting, "max_queued_per_key": limit,
                                    "adding": len(fleet_ids)}, headers={"Retry-After": "10"})

    def _held_sig(self, job_id: str, text: str) -> str:
        """The held workflow's signature: the fleet's own (``records.sign_spec``, its secret), bound to this job."""
        return sign_spec(self.settings.fleet.signing_key(), self.records.ns, f"approval-held:{job_id}", text)

    def _queue_full(self, exc: QueueFull) -> ApiError:
        return ApiError(429, "queue_full",
                        f"the fleet's queue is full: {exc.waiting} job(s) are waiting for a worker, and it holds "
                        f"at most {exc.cap} (ADREEL_FLEET_MAX_QUEUED); nothing was submitted. Retry when jobs "
                        "have started.", details={"waiting": exc.waiting, "max_queued": exc.cap},
                        headers={"Retry-After": "10"})

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
        if not meta or meta.get("owner") != owner:
            raise not_found()
        raw = self._phase(meta, raw)
        if not raw:
            raise not_found()
        return meta, raw

    def _phase(self, meta: dict, raw: dict) -> dict:
        """The fleet record that says where the job is: its prefix's until it is approved, then its own."""
        if meta.get("approval") in ("pending", "discarded") and meta.get("prefix"):
            return self.r.hgetall(self.records.job_key(meta["prefix"]))
        return raw

    @staticmethod
    def fleet_id(job_id: str, meta: dict) -> str:
        return meta["prefix"] if meta.get("approval") in ("pending", "discarded") and meta.get("prefix") else job_id

    def job(self, owner: str, job_id: str, base: str, position: bool = True) -> dict:
        meta, raw = self._load(owner, job_id)
        rec = public_record(raw)
        if rec["state"] == "completed" and "cost_usd" not in meta:
            cost = self._cost(rec)
            if cost is not None:
                self.r.hset(self.meta_key(job_id), "cost_usd", f"{cost:.6f}")
                meta["cost_usd"] = f"{cost:.6f}"
        queue_position = self._queue_position(self.fleet_id(job_id, meta), rec) \
            if position and rec["state"] == "queued" else None
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
        meta, _ = self._load(owner, job_id)
        if self.fleet_id(job_id, meta) != job_id:  # not approved yet: the whole workflow it holds
            return {"workflow": prepare_prompt(self._held(job_id, meta), job_id), "format": "api"}
        try:
            spec = self.records.spec(job_id) or {}
        except SpecRefused as exc:
            raise ApiError(409, "record_refused", f"this job's record does not verify: {exc}") from None
        return {"workflow": spec.get("prompt") or {}, "format": "api"}

    def _held(self, job_id: str, meta: dict) -> dict:
        import hmac

        text, sig = meta.get("held") or "", meta.get("held_sig") or ""
        if not text or not hmac.compare_digest(self._held_sig(job_id, text).encode(), sig.encode("utf-8", "replace")):
            raise ApiError(409, "record_refused", "this job's held workflow does not verify with the fleet's secret "
                                                  "(altered in Redis, or the secret changed)")
        return json.loads(text)

    # approval -------------------------------------------------------------------
    def _awaiting(self, owner: str, job_id: str) -> tuple[dict, dict]:
        meta, raw = self._load(owner, job_id)
        if meta.get("approval") != "pending" or public_record(raw)["state"] != "completed" \
                or self.r.exists(self.decided_key(job_id)):
            status = shape(job_id, meta, raw, "", None)["status"]
            raise ApiError(409, "not_awaiting_approval", f"this job is {status}, not awaiting_approval"
                           + ("" if meta.get("approval") else " (it was submitted without 'approval': true)"),
                           details={"status": status})
        return meta, raw

    def decided_key(self, job_id: str) -> str:
        return f"{self.ns}:decided:{job_id}"

    def script(self, owner: str, job_id: str) -> dict:
        """The script (as edited, else as the prefix wrote it), the storyboard, the key images and the estimate."""
        meta, raw = self._load(owner, job_id)
        if not meta.get("approval"):
            raise ApiError(409, "not_awaiting_approval", "this job was submitted without 'approval': true; "
                           "GET …/workflow gives its graph")
        rec = public_record(raw)
        if rec["state"] != "completed":
            status = shape(job_id, meta, raw, "", None)["status"]
            raise ApiError(409, "not_ready", f"the script is not written yet (the job is {status})",
                           details={"status": status}, headers={"Retry-After": "2"})
        prompt = self._held(job_id, meta)
        written, storyboard = approval.previews_of(rec["outputs"], prompt)
        edited = json.loads(meta["script"]) if meta.get("script") else None
        if "estimate" not in meta:
            meta["estimate"] = json.dumps(approval.estimate(prompt, storyboard))
            self.r.hset(self.meta_key(job_id), "estimate", meta["estimate"])
        storyboard = dict(storyboard or {})
        storyboard.pop("script", None)
        return {"id": job_id, "status": shape(job_id, meta, raw, "", None)["status"],
                "script": edited or written, "edited": edited is not None, "written": written,
                "storyboard": storyboard or None, "key_images": approval.key_images(rec["outputs"], prompt),
                "estimate": json.loads(meta["estimate"])}

    def key_image(self, owner: str, job_id: str, n: str) -> tuple[str, dict]:
        """(the ComfyUI server, {filename, subfolder, type}) of an approval job's n-th key image. The server is
        the one its prefix ran on, and only when the operator lists it (``ADREEL_FLEET_COMFY_URLS``): a URL
        read from a record is never fetched otherwise."""
        meta, _ = self._load(owner, job_id)
        if not meta.get("approval") or not re.fullmatch(r"\d{1,4}", n or ""):
            raise not_found("key image")
        raw = self.r.hgetall(self.records.job_key(meta["prefix"]))
        images = approval.key_images(public_record(raw)["outputs"], self._held(job_id, meta)) if raw else []
        if int(n) >= len(images):
            raise not_found("key image")
        img = images[int(n)]
        if not (re.fullmatch(r"[A-Za-z0-9._-]{1,200}", str(img.get("filename")))
                and re.fullmatch(r"[A-Za-z0-9_-]{0,64}", str(img.get("subfolder") or ""))
                and img.get("type") in ("temp", "output")):
            raise not_found("key image")
        comfy = (raw.get("comfy") or "").rstrip("/")
        if comfy not in self.settings.fleet.comfy_urls:
            raise ApiError(409, "key_image_unreachable", "the key images are on a ComfyUI server this API is not "
                           "configured to read from: list the fleet's servers in ADREEL_FLEET_COMFY_URLS")
        return comfy, img

    def put_script(self, owner: str, job_id: str, body: Any) -> dict:
        from nodes.engine.models import AdReelInputError

        meta, _ = self._awaiting(owner, job_id)
        if not isinstance(body, dict) or "script" not in body:
            raise ApiError(422, "invalid_request", "the body must be {\"script\": {…}} (the script as GET …/script "
                                                   "gives it, edited)")
        try:
            text = approval.check_script(self._held(job_id, meta), body["script"])
        except AdReelInputError as exc:
            raise ApiError(422, "invalid_script", str(exc), details={"field": exc.field}) from None
        except ValueError:
            raise ApiError(422, "invalid_script", "'script' must hold finite numbers only") from None
        self.r.hset(self.meta_key(job_id), "script", text)
        return self.script(owner, job_id)

    def approve(self, owner: str, job_id: str, base: str) -> dict:
        """Run the whole workflow with the approved script, under the job's id (signed as every fleet job)."""
        meta, raw = self._awaiting(owner, job_id)
        prompt = self._held(job_id, meta)
        text = meta.get("script")
        if not text:
            written, _ = approval.previews_of(public_record(raw)["outputs"], prompt)
            if not written:
                raise ApiError(409, "record_refused", "the prefix recorded no script to approve")
            text = json.dumps(written, ensure_ascii=False, allow_nan=False)
        self._reserve(owner, [job_id])  # the render waits for a worker: within this key's quota
        try:
            if not self.r.set(self.decided_key(job_id), "approved", nx=True):
                self.r.srem(self.fleet_ids_key(owner), job_id)
                raise ApiError(409, "not_awaiting_approval", "this job was approved or discarded already")
            spec = make_spec(job_id, approval.with_script(prompt, text), meta.get("workflow_name") or "api")
            try:
                self.records.admit(batch_id_for([job_id]), [spec], self.settings.fleet.max_queued)
            except QueueFull as exc:
                self.r.delete(self.decided_key(job_id))  # nothing was started: it may be approved again
                self.r.srem(self.fleet_ids_key(owner), job_id)
                raise self._queue_full(exc) from None
        finally:
            self.r.zrem(self.reserving_key(owner), job_id)
        self.r.hset(self.meta_key(job_id), "approval", "approved")
        self.actor().send(job_id)
        return self.job(owner, job_id, base)

    def discard(self, owner: str, job_id: str, base: str) -> dict:
        self._awaiting(owner, job_id)
        if not self.r.set(self.decided_key(job_id), "discarded", nx=True):
            raise ApiError(409, "not_awaiting_approval", "this job was approved or discarded already")
        self.r.hset(self.meta_key(job_id), "approval", "discarded")
        return self.job(owner, job_id, base)

    def list(self, owner: str, base: str, *, limit: Any = None, cursor: Optional[str] = None,
             statuses: Optional[str] = None, metadata: Optional[dict] = None, brand: Optional[str] = None,
             batch: Optional[str] = None) -> dict:
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
        if brand is not None and (not brand or len(brand) > MAX_BRAND):
            raise ApiError(400, "invalid_request", f"'brand' must be 1-{MAX_BRAND} characters")
        if batch is not None and not _BATCH_ID.match(batch):
            raise ApiError(400, "invalid_request", "'batch' is not a batch id this server gave")
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
                if meta:
                    raw = self._phase(meta, raw)
                if not meta or not raw:
                    continue
                job = shape(i, meta, raw, base, None)
                if wanted and job["status"] not in wanted:
                    continue
                if metadata and any(job["metadata"].get(k) != v for k, v in metadata.items()):
                    continue
                if brand and job["adreel"]["brand"].casefold() != brand.casefold():
                    continue
                if batch and meta.get("batch") != batch:
                    continue
                out.append(job)
            max_score, after = last
        page: dict[str, Any] = {"jobs": out}
        if last is not None and not exhausted and after_cursor(last[0], last[1], 50):
            page["next_cursor"] = base64.urlsafe_b64encode(f"{last[0]!r}:{last[1]}".encode()).decode().rstrip("=")
        return page

    # change ---------------------------------------------------------------------
    def cancel(self, owner: str, job_id: str, base: str) -> dict:
        meta, raw = self._load(owner, job_id)
        if meta.get("approval") == "pending":
            if public_record(raw)["state"] == "completed":  # awaiting approval: cancelling is discarding
                if self.r.set(self.decided_key(job_id), "discarded", nx=True):
                    self.r.hset(self.meta_key(job_id), "approval", "discarded")
            else:
                self.records.cancel(meta["prefix"])
            return self.job(owner, job_id, base)
        self.records.cancel(job_id)  # a terminal job stays as it is; v2: cancel is a request, not a guarantee
        return self.job(owner, job_id, base)

    def delete(self, owner: str, job_id: str) -> dict:
        meta, _ = self._load(owner, job_id)
        removed = list(objects.delete_job(self.records, job_id) or [])
        if meta.get("prefix"):
            removed += objects.delete_job(self.records, meta["prefix"]) or []
        self.r.delete(self.decided_key(job_id))
        self.r.srem(self.fleet_ids_key(owner), *[i for i in (job_id, meta.get("prefix")) if i])
        self._forget(owner, job_id)
        return {"id": job_id, "deleted": True, "objects_removed": len(removed)}

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
    decision = meta.get("approval") or None
    stages = STAGES
    classes = json.loads(meta.get("classes") or "{}")
    if decision in ("pending", "discarded"):  # the prefix's record: it writes the script and storyboard
        classes = json.loads(meta.get("prefix_classes") or "{}")
        stages = PREFIX_STAGES
        if decision == "discarded":
            status = "canceled"
        elif status == "succeeded":
            status = "awaiting_approval"
    total = max(1, len(classes))
    created = float(meta.get("created") or rec["created"] or 0)
    started = float(raw.get("started") or 0) or None
    ended = rec["updated"] if status in TERMINAL else None
    node = raw.get("node") or None
    value = 1.0 if status in ("succeeded", "awaiting_approval") else max(0.0, min(1.0, rec["progress"]))
    node_class = classes.get(node) if node else None
    stage = {"queued": "pending", "running": stages.get(node_class or "", "rendering")}.get(status, status)
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
    if decision:
        urls.update(script=f"/api/v2/jobs/{job_id}/script", approve=f"/api/v2/jobs/{job_id}/approve",
                    discard=f"/api/v2/jobs/{job_id}/discard")
    return {
        "id": job_id, "status": status,
        "created_at": iso(created), "started_at": iso(started), "completed_at": iso(ended),
        "create_time": iso(created), "update_time": iso(rec["updated"] or created),
        "expires_at": NEVER, "queue_position": queue_position, "progress": progress,
        "outputs": outputs_of(job_id, rec, classes, base) if status == "succeeded" else [],
        "error": error, "metrics": metrics, "urls": urls,
        "metadata": json.loads(meta.get("metadata") or "{}"),
        "adreel": {"stage": stage, "brand": rec["brand"], "workflow_name": meta.get("workflow_name") or "",
                   "batch": meta.get("batch") or None,
                   "row": int(meta["row"]) if meta.get("row") else None,
                   "variant": int(meta["variant"]) if meta.get("variant") else None,
                   "attempts": rec["attempts"], "worker": rec["worker"] or None,
                   "cost_usd": float(cost) if cost not in (None, "") else None,
                   "note": rec["error"] if status in ("queued", "running") and rec["error"] else None,
                   "approval": {"state": decision, "script_edited": bool(meta.get("script"))} if decision else None},
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
