"""Replicate predictions: any model by ``owner/name`` or ``owner/name:version``.

Contract: ``POST /v1/models/{owner}/{name}/predictions`` (official models) or
``POST /v1/predictions`` with ``{"version"}`` → 201 prediction;
``GET /v1/predictions/{id}`` with ``status`` starting | processing | succeeded |
failed | canceled | aborted; progress only from tqdm lines in ``logs``;
``POST /v1/predictions/{id}/cancel``. Auth ``Bearer``. Errors are RFC 7807
``{title, detail, status}`` (402 = insufficient credit). Images inline as data URIs.

Models differ in their input names, so a job can say (``options``):
``image_input`` (default ``image``; ``first_frame_image`` for minimax/video-01),
``prompt_input`` (default ``prompt``), ``duration_input`` (unset: no duration
sent), ``aspect_input`` (unset: none sent), ``input`` (extra inputs, merged
last), and the price: ``price_usd_per_run`` or ``price_usd_per_second``.
"""
from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from ..models import AdReelInputError
from . import cost as costs
from .base import ImageRef, JobHandle, JobPlan, ModelSpec, PlanContext, PollState, Provider
from .errors import ProviderAuthError, ProviderCreditError
from .http import HttpCall

_REF = re.compile(r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?::(?P<version>[A-Za-z0-9]{8,128}))?$")
_TQDM = re.compile(r"^[ \t]*(\d+)%[ \t]*\|.*?\|[ \t]*(\d+)/(\d+)", re.M)  # [ \t], not \s: a line start never scans the lines below
_SAFETY = re.compile(r"nsfw|safety|sensitive|flagged|content policy|moderation", re.I)
_ANY_RATIO = {"9:16": "9:16", "1:1": "1:1", "16:9": "16:9"}

# Input names of models AdReel knows; any other model uses the defaults or the job's options.
KNOWN_INPUTS: dict[str, dict[str, str]] = {
    "minimax/video-01": {"image_input": "first_frame_image", "prompt_input": "prompt"},
}


class ReplicateCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any]
    version: Optional[str] = None


class ReplicatePrediction(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    status: Literal["starting", "processing", "succeeded", "failed", "canceled", "aborted"]
    model: Optional[str] = None
    version: Optional[str] = None
    output: Any = None
    logs: Optional[str] = None
    error: Any = None
    metrics: Optional[dict] = None
    urls: Optional[dict] = None


def parse_model_ref(ref: str) -> Optional[tuple[str, str, Optional[str]]]:
    m = _REF.match(ref.strip())
    return (m["owner"], m["name"], m["version"]) if m else None


def progress_from_logs(logs: Optional[str]) -> Optional[float]:
    """The last tqdm line's ``a/b`` as a fraction (what the Replicate SDK reads)."""
    if not logs:
        return None
    hits = _TQDM.findall(logs)
    if not hits:
        return None
    _pct, cur, total = hits[-1]
    return min(1.0, int(cur) / int(total)) if int(total) > 0 else None


def first_url(output: Any) -> Optional[str]:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        for item in output:
            url = first_url(item)
            if url:
                return url
    if isinstance(output, dict):
        for key in ("video", "url", "output"):
            url = first_url(output.get(key))
            if url:
                return url
    return None


class ReplicateProvider(Provider):
    name = "replicate"
    label = "Replicate"
    key_env = ("REPLICATE_API_TOKEN",)
    base_url_env = "REPLICATE_BASE_URL"
    default_base_url = "https://api.replicate.com"
    billing_hint = "Add credit at replicate.com/account/billing"
    default_concurrency = 4
    default_poll_interval = 2.0
    can_cancel = True
    models = {name: ModelSpec(id=name, label=name, ratios=_ANY_RATIO, typical_seconds=180.0) for name in costs.REPLICATE_PRICES}

    def model_spec(self, model: str, field_name: str) -> ModelSpec:
        if not parse_model_ref(model or ""):
            raise AdReelInputError(f"{field_name}.model", f"Replicate models are named owner/name or owner/name:version (got {model!r})")
        return ModelSpec(id=model.strip(), label=model.strip(), ratios=_ANY_RATIO, typical_seconds=180.0)

    def configure(self, plan: JobPlan, ctx: PlanContext) -> None:
        opts = plan.job.options
        owner, name, version = parse_model_ref(plan.spec.id)
        known = KNOWN_INPUTS.get(f"{owner}/{name}", {})
        extra = opts.get("input") or {}
        if not isinstance(extra, dict):
            raise AdReelInputError(f"{plan.field_path}.options.input", "must be a JSON object of model inputs")
        for key in ("price_usd_per_run", "price_usd_per_second"):
            if opts.get(key) is not None:
                costs.require_price(opts[key], f"{plan.field_path}.options.{key}")  # NaN, inf and < 0 refused
        inputs: dict[str, Any] = {}
        prompt_input = opts.get("prompt_input", known.get("prompt_input", "prompt"))
        if prompt_input and (plan.job.prompt or plan.job.scene.image_prompt or plan.job.scene.visual_direction):
            inputs[prompt_input] = self.require_prompt(plan)
        if opts.get("duration_input"):
            inputs[opts["duration_input"]] = int(round(plan.job.scene.duration))
        if opts.get("aspect_input"):
            inputs[opts["aspect_input"]] = plan.job.aspect_ratio
        if plan.job.seed is not None:
            inputs["seed"] = plan.job.seed
        inputs.update(extra)
        if not inputs and plan.image is None:
            raise AdReelInputError(f"{plan.field_path}.prompt", f"nothing to send to {plan.spec.id}: no prompt, no image, no options['input']")
        plan.params.update(owner=owner, name=name, version=version, inputs=inputs,
                           image_input=opts.get("image_input", known.get("image_input", "image")))
        if plan.image is not None:
            plan.image_mode = "data_uri"
        seconds = opts.get("duration_input") and int(round(plan.job.scene.duration)) or plan.job.scene.duration
        plan.cost = costs.replicate(plan.spec.id, seconds, opts)

    async def submit_call(self, plan: JobPlan, image: Optional[ImageRef]) -> HttpCall:
        p = plan.params
        inputs = dict(p["inputs"])
        if image is not None:
            inputs[p["image_input"]] = image.data_uri()
        if p["version"]:
            body = ReplicateCreateRequest(version=p["version"], input=inputs)
            url = f"{plan.base_url}/v1/predictions"
        else:
            body = ReplicateCreateRequest(input=inputs)
            url = f"{plan.base_url}/v1/models/{p['owner']}/{p['name']}/predictions"
        return HttpCall("POST", url, json=body.model_dump(exclude_none=True), idempotent=False, what="create")

    def parse_submit(self, plan: JobPlan, body: Any) -> JobHandle:
        return JobHandle(self.parse(ReplicatePrediction, body, plan, "create").id)

    def poll_call(self, plan: JobPlan, handle: JobHandle) -> HttpCall:
        return HttpCall("GET", f"{plan.base_url}/v1/predictions/{handle.id}", what="status")

    def parse_poll(self, plan: JobPlan, handle: JobHandle, body: Any) -> PollState:
        pred = self.parse(ReplicatePrediction, body, plan, "status")
        if pred.status == "succeeded":
            return PollState("succeeded", pred.status, fraction=1.0, result_url=first_url(pred.output), detail=pred)
        if pred.status == "failed":
            reason = str(pred.error or "no reason given")
            kind = "safety" if _SAFETY.search(reason) else "failed"
            return PollState("failed", pred.status, error=self.job_failed(plan, handle.id, reason, kind=kind), detail=pred)
        if pred.status in ("canceled", "aborted"):
            return PollState("canceled", pred.status, detail=pred)
        phase = "queued" if pred.status == "starting" else "running"
        return PollState(phase, pred.status, fraction=progress_from_logs(pred.logs), detail=pred)

    def cancel_call(self, plan: JobPlan, handle: JobHandle) -> Optional[HttpCall]:
        return HttpCall("POST", f"{plan.base_url}/v1/predictions/{handle.id}/cancel", what="cancel")

    def actual_cost(self, plan, state, probe):
        opts = plan.job.options
        per_second = opts.get("price_usd_per_second")
        if per_second is None and opts.get("price_usd_per_run") is None:
            per_second = costs.REPLICATE_PRICES.get(f"{plan.params['owner']}/{plan.params['name']}", {}).get("per_second")
        if per_second is not None and probe is not None and probe.duration:
            usd = round(float(per_second) * probe.duration, 4)
            return costs.CostEstimate(usd, f"Replicate {plan.spec.id}: ${float(per_second):g}/s × {probe.duration:.2f} s rendered")
        return super().actual_cost(plan, state, probe)

    def error_detail(self, body: Any, headers) -> tuple[str, Optional[str]]:
        if isinstance(body, dict) and ("title" in body or "detail" in body):
            title, detail = body.get("title"), body.get("detail")
            text = " — ".join(str(x) for x in (title, detail) if x)
            return text, None
        return super().error_detail(body, headers)

    def classify(self, status, message, code, body):
        if status == 402:
            return ProviderCreditError, ""
        if status == 401:
            return ProviderAuthError, ""
        return None
