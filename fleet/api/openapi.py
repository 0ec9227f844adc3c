"""The OpenAPI 3.1 document of AdReel's job API, served at ``GET /api/v2/openapi.json``.

The v2 routes follow the Comfy API v2 job contract as ``comfy-sdk`` speaks it;
what AdReel adds is marked ``x-adreel-extension``.
"""
from __future__ import annotations

from .views import DEFAULT_LIST, MAX_LIST, MAX_VARIANTS, V2_STATUSES


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(schema: str, what: str) -> dict:
    return {"description": what, "content": {"application/json": {"schema": _ref(schema)}}}


_ERRORS = {str(code): _answer("ErrorEnvelope", what) for code, what in (
    (400, "malformed request"), (401, "no or unknown API key"), (404, "no such job for this key"),
    (422, "invalid workflow, brief, metadata, or a reused Idempotency-Key"),
    (429, "the fleet's queue is full (queue_full, with Retry-After and how many jobs wait), or this key's "
          "(key_queue_full: how many of its jobs wait, ADREEL_API_MAX_QUEUED_PER_KEY), or too many requests "
          "this minute (rate_limited)"),
    (409, "not in the state this route needs (e.g. not awaiting_approval)"),
    (413, "the body (or its rows) is too large"), (503, "Redis or the store does not answer"))}

_BRAND = {"type": "string", "maxLength": 64, "x-adreel-extension": True,
          "description": "the brand (kit) by its plain name, set as BrandBrief's brand; no slash, backslash, "
                         "leading dot or control character"}

_JOB_OK = {"200": _answer("Job", "the job")}
_JOB_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{20}$"}}


def _op(summary: str, ok: dict, *, params=(), body=None, errors=("401", "404"), extension=False, **extra) -> dict:
    op = {"summary": summary, "parameters": list(params), "responses": {**ok, **{e: _ERRORS[e] for e in errors}},
          "security": [{"bearer": []}], **extra}
    if body:
        op["requestBody"] = body
    if extension:
        op["x-adreel-extension"] = True
    return op


def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "AdReel job API", "version": "1",
                 "description": "The Comfy API v2 job contract over AdReel's fleet (many ComfyUI servers through "
                                "Dramatiq and Redis), with AdReel's extensions marked x-adreel-extension. Every "
                                "route but /api/v2/health needs 'Authorization: Bearer <key>'."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**_output_schemas(), **_job_schemas(), **_batch_schemas()},
        },
        "paths": {**_service_paths(), **_job_paths(), **_approval_paths(), **_batch_paths(), **_asset_paths()},
    }


def _output_schemas() -> dict:
    """The envelope of every error, a job's progress and its outputs."""
    return {
        "ErrorEnvelope": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "details": {"type": "object"}}}}},
        "Progress": {"type": "object", "required": ["value", "nodes_done", "nodes_total"], "properties": {
            "value": {"type": "number", "minimum": 0, "maximum": 1}, "nodes_done": {"type": "integer"},
            "nodes_total": {"type": "integer"}, "current_node": {"type": ["string", "null"]},
            "current_node_class": {"type": ["string", "null"]}, "message": {"type": ["string", "null"]}}},
        "Output": {"type": "object", "properties": {
            "id": {"type": "string", "description": "<job id>-<n>; bytes at /api/v2/assets/{id}/content"},
            "node_id": {"type": "string"}, "name": {"type": "string"},
            "type": {"enum": ["image", "video", "audio", "text", "file", "latent"]},
            "content_type": {"type": "string"}, "size_bytes": {"type": "integer"},
            "hash": {"type": ["string", "null"]}, "url": {"type": "string", "format": "uri"},
            "url_expires_at": {"type": "string", "format": "date-time"}, "job_id": {"type": "string"},
            "sha256": {"type": "string", "x-adreel-extension": True},
            "kind": {"type": "string", "x-adreel-extension": True}}},
    }


def _job_schemas() -> dict:
    """A job as the API shows it, what a submit sends, and an approval's review."""
    return {
        "Job": {"type": "object", "required": ["id", "status", "created_at", "outputs", "urls"], "properties": {
            "id": {"type": "string"}, "status": {"enum": list(V2_STATUSES)},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "completed_at": {"type": ["string", "null"], "format": "date-time"},
            "expires_at": {"type": "string", "format": "date-time",
                           "description": "jobs are kept until DELETE: 9999-12-31"},
            "queue_position": {"type": ["integer", "null"]}, "progress": _ref("Progress"),
            "outputs": {"type": "array", "items": _ref("Output")},
            "error": {"type": ["object", "null"]}, "metrics": {"type": ["object", "null"]},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "urls": {"type": "object", "properties": {"self": {"type": "string"},
                                                      "events": {"type": "string"},
                                                      "cancel": {"type": "string"}}},
            "adreel": {"type": "object", "x-adreel-extension": True, "properties": {
                "stage": {"enum": ["pending", "script", "storyboard", "awaiting_approval", "rendering",
                                   "post-processing", "succeeded", "failed", "canceled"]},
                "approval": {"type": ["object", "null"], "description": "for a job submitted with "
                             "approval: {state: pending|approved|discarded, script_edited}"},
                "brand": {"type": "string"}, "workflow_name": {"type": "string"},
                "attempts": {"type": "integer"}, "worker": {"type": ["string", "null"]},
                "cost_usd": {"type": ["number", "null"],
                             "description": "from the run's history record, once completed"},
                "note": {"type": ["string", "null"], "description": "why a job waits again (a retry)"}}}}},
        "Submit": {"type": "object", "properties": {
            "workflow": {"type": "object", "description": "an API-format graph with an AssetUpload node"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 16},
            "brief": {"type": "object", "x-adreel-extension": True,
                      "description": "BrandBrief's fields (brand, product, duration_seconds, …), with "
                                     "workflow_name instead of workflow"},
            "workflow_name": {"type": "string", "x-adreel-extension": True,
                              "description": "a shipped workflow: example_workflows/api/<name>.json"},
            "node_inputs": {"type": "object", "x-adreel-extension": True,
                            "description": "{node class: {widget: value}} for the shipped workflow"},
            "approval": {"type": "boolean", "default": False, "x-adreel-extension": True,
                         "description": "stop after the script, storyboard, key images and cost estimate "
                                        "(status awaiting_approval) until POST …/approve; nothing is "
                                        "rendered or paid for before"},
            "webhook_url": {"type": "string", "format": "uri", "x-adreel-extension": True,
                            "description": "this job's own webhook (beside its key's): signed (Standard "
                                           "Webhooks) events job.succeeded, job.failed, job.canceled, "
                                           "job.awaiting_approval"},
            "brand": _BRAND}},
        "Review": {"type": "object", "x-adreel-extension": True, "properties": {
            "id": {"type": "string"}, "status": {"enum": list(V2_STATUSES)},
            "script": {"type": "object", "description": "the script the render will use: as edited, "
                                                        "else as written (ScriptLLM's script_json)"},
            "edited": {"type": "boolean"}, "written": {"type": "object"},
            "storyboard": {"type": ["object", "null"]},
            "key_images": {"type": "array", "items": {"type": "object"}, "description": "{filename, subfolder, "
                           "type} of each key image on the worker's ComfyUI"},
            "estimate": {"type": "object", "description": "ProviderRender's own cost estimate over the "
                                                          "storyboard's scenes: {total_usd, providers}"}}},
    }


def _service_paths() -> dict:
    """Health, this document, submitting and listing jobs."""
    return {
        "/api/v2/health": {"get": {"summary": "is the server and its Redis up (no key needed)", "security": [],
                                   "responses": {"200": {"description": "healthy"},
                                                 "503": {"description": "Redis does not answer"}}}},
        "/api/v2/openapi.json": {"get": _op("this document", {"200": {"description": "OpenAPI 3.1"}},
                                            errors=("401",))},
        "/api/v2/jobs": {
            "post": _op("submit a job (v2 workflow, or AdReel's brief + workflow_name)",
                        {"201": _answer("Job", "the job, queued")},
                        params=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"},
                                 "description": "single use per API key for 24 h: a second request with it "
                                                "is refused (422 idempotency_key_reuse)"}],
                        body={"required": True, "content": {"application/json": {"schema": _ref("Submit")}}},
                        errors=("400", "401", "422", "429", "503")),
            "get": _op("this key's jobs, newest first",
                       {"200": {"description": "{jobs: [Job], next_cursor?}"}},
                       params=[{"name": "status", "in": "query", "schema": {"type": "string"},
                                "description": "comma-separated statuses"},
                               {"name": "limit", "in": "query",
                                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST,
                                           "default": DEFAULT_LIST}},
                               {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                               {"name": "brand", "in": "query", "schema": {"type": "string"},
                                "x-adreel-extension": True, "description": "jobs of this brand (any case)"},
                               {"name": "batch", "in": "query", "schema": {"type": "string"},
                                "x-adreel-extension": True, "description": "jobs of this batch"}],
                       errors=("400", "401"))},
    }


def _job_paths() -> dict:
    """One job: read, delete, cancel, its workflow and events."""
    return {
        "/api/v2/jobs/{id}": {
            "get": _op("the job: status, progress, outputs, error", _JOB_OK, params=[_JOB_ID]),
            "delete": _op("delete the job and its objects in the store (cancelled first if active)",
                          {"200": {"description": "{id, deleted, objects_removed}"}}, params=[_JOB_ID],
                          errors=("401", "404", "503"), extension=True)},
        "/api/v2/jobs/{id}/cancel": {"post": _op("cancel: a queued job is dropped, a running one interrupted; "
                                                 "a finished job stays as it is", _JOB_OK, params=[_JOB_ID])},
        "/api/v2/jobs/{id}/workflow": {"get": _op("the executed API-format graph",
                                                  {"200": {"description": "{workflow, format: api}"}},
                                                  params=[_JOB_ID])},
        "/api/v2/jobs/{id}/events": {"get": _op(
            "server-sent events: status, progress (with AdReel's stage), output, log; ends after a terminal "
            "status", {"200": {"description": "text/event-stream"}}, params=[_JOB_ID])},
    }


def _approval_paths() -> dict:
    """The approval step: the script to review and edit, the key images, approve, discard."""
    return {
        "/api/v2/jobs/{id}/script": {
            "get": _op("the script, storyboard, key images and cost estimate of a job submitted with approval",
                       {"200": _answer("Review", "what is to be approved")}, params=[_JOB_ID],
                       errors=("401", "404", "409"), extension=True),
            "put": _op("replace the script the render will use (checked as ScriptLLM checks an edited script)",
                       {"200": _answer("Review", "the review with the edited script")}, params=[_JOB_ID],
                       body={"required": True, "content": {"application/json": {"schema": {
                           "type": "object", "required": ["script"],
                           "properties": {"script": {"type": "object"}}}}}},
                       errors=("400", "401", "404", "409", "422"), extension=True)},
        "/api/v2/jobs/{id}/key_images/{n}": {"get": _op(
            "an approval job's n-th key image (PNG), read from the ComfyUI server its prefix ran on when "
            "ADREEL_FLEET_COMFY_URLS lists it", {"200": {"description": "the image"}},
            params=[_JOB_ID, {"name": "n", "in": "path", "required": True, "schema": {"type": "integer"}}],
            errors=("401", "404", "409"), extension=True)},
        "/api/v2/jobs/{id}/approve": {"post": _op(
            "approve: the whole workflow runs with the script as shown by GET …/script", _JOB_OK, params=[_JOB_ID],
            errors=("401", "404", "409", "429"), extension=True)},
        "/api/v2/jobs/{id}/discard": {"post": _op(
            "discard: the job ends canceled, nothing is rendered", _JOB_OK, params=[_JOB_ID],
            errors=("401", "404", "409"), extension=True)},
    }


def _batch_schemas() -> dict:
    """A batch as submitted (rows × variants) and as read back."""
    return {
        "BatchSubmit": {"type": "object", "x-adreel-extension": True,
                        "description": "one job per row × variant, all queued or none; the job fields "
                                       "(workflow_name or workflow, node_inputs, approval, webhook_url, "
                                       "metadata, brand) apply to every job",
                        "properties": {
            "workflow_name": {"type": "string"}, "workflow": {"type": "object"},
            "node_inputs": {"type": "object"},
            "csv": {"type": "string", "description": "CSV text: a header of BrandBrief's inputs, a brief per "
                                                     "row (as python -m fleet submit --briefs reads it)"},
            "jsonl": {"type": "string", "description": "JSON Lines text: a BrandBrief object per line"},
            "rows": {"type": "array", "items": {"type": "object"}, "description": "BrandBrief objects"},
            "variants": {"type": "integer", "minimum": 1, "maximum": MAX_VARIANTS, "default": 1,
                         "description": "variant k sets ScriptLLM's seed to the workflow's seed + k"},
            "approval": {"type": "boolean"}, "webhook_url": {"type": "string", "format": "uri"},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "brand": _BRAND}},
        "Batch": {"type": "object", "x-adreel-extension": True, "properties": {
            "id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
            "rows": {"type": "integer"}, "variants": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "jobs per status"},
            "jobs": {"type": "array", "items": _ref("Job")}}},
    }


def _batch_paths() -> dict:
    """Batches: submit rows × variants, read one back."""
    return {
        "/api/v2/batches": {"post": _op(
            "submit a batch: CSV or JSON Lines rows (or a list) × variants, one job each, all queued or none",
            {"201": _answer("Batch", "the batch and its jobs")},
            params=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
            body={"required": True, "content": {"application/json": {"schema": _ref("BatchSubmit")}}},
            errors=("400", "401", "413", "422", "429", "503"), extension=True)},
        "/api/v2/batches/{id}": {"get": _op(
            "a batch: its jobs and how many are in each status", {"200": _answer("Batch", "the batch")},
            params=[{"name": "id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^b[0-9a-f]{20}$"}}], extension=True)},
    }


def _asset_paths() -> dict:
    """An output's metadata and bytes."""
    return {
        "/api/v2/assets/{id}": {"get": _op("an output's metadata", {"200": {"description": "the output"}},
                                           params=[{**_JOB_ID, "schema": {"type": "string"}}])},
        "/api/v2/assets/{id}/content": {"get": _op("an output's bytes, streamed from the store (Range supported)",
                                                   {"200": {"description": "the bytes"},
                                                    "206": {"description": "the range"}},
                                                   params=[{**_JOB_ID, "schema": {"type": "string"}}])},
    }
