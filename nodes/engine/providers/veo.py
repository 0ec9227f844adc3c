"""Google Veo through the Gemini API (predictLongRunning).

Contract: ``POST /models/{model}:predictLongRunning`` with ``{"instances":
[{prompt, image{bytesBase64Encoded, mimeType}}], "parameters": {aspectRatio,
durationSeconds, resolution, negativePrompt, …}}`` → ``{"name":
"models/…/operations/…"}``; ``GET /{name}`` until ``done``; the video is at
``response.generateVideoResponse.generatedSamples[0].video.uri`` — a
``files/…:download`` URL on the API host that needs the key and answers 302
to storage (the key is not sent past that redirect). A safety block is
``raiMediaFilteredCount`` / ``raiMediaFilteredReasons`` with no samples. Auth
``x-goog-api-key``. No cancel endpoint. Quota and billing problems are 429
RESOURCE_EXHAUSTED with ``RetryInfo.retryDelay`` in the error body's details.
"""
from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..models import AdReelInputError
from . import cost as costs
from .base import ImageRef, JobHandle, JobPlan, ModelSpec, PlanContext, PollState, Provider
from .errors import ProviderAuthError, ProviderForbiddenError, ProviderProtocolError, ProviderRateLimitError
from .http import HttpCall, HttpReply, parse_proto_duration

_RATIOS = {"9:16": "9:16", "16:9": "16:9"}
_OP_NAME = re.compile(r"^(models/[A-Za-z0-9._-]+/)?operations/[A-Za-z0-9._-]+$")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VeoImage(_Request):
    bytesBase64Encoded: str
    mimeType: Literal["image/png", "image/jpeg", "image/webp"]


class VeoInstance(_Request):
    prompt: str
    image: Optional[VeoImage] = None


class VeoParameters(_Request):
    aspectRatio: Literal["16:9", "9:16"]
    durationSeconds: int
    resolution: Optional[Literal["720p", "1080p", "4k"]] = None
    negativePrompt: Optional[str] = None
    personGeneration: Optional[Literal["allow_all", "allow_adult", "dont_allow"]] = None
    sampleCount: Optional[int] = Field(default=None, ge=1, le=4)
    enhancePrompt: Optional[bool] = None


class VeoPredictRequest(_Request):
    instances: list[VeoInstance] = Field(min_length=1, max_length=1)
    parameters: VeoParameters


class VeoVideo(BaseModel):
    model_config = ConfigDict(extra="allow")
    uri: Optional[str] = None


class VeoSample(BaseModel):
    model_config = ConfigDict(extra="allow")
    video: Optional[VeoVideo] = None


class VeoGenerateVideoResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    generatedSamples: Optional[list[VeoSample]] = None
    raiMediaFilteredCount: Optional[int] = None
    raiMediaFilteredReasons: Optional[list[str]] = None


class VeoResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    generateVideoResponse: Optional[VeoGenerateVideoResponse] = None


class VeoStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: Optional[int] = None
    message: Optional[str] = None


class VeoOperation(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    done: Optional[bool] = None
    error: Optional[VeoStatus] = None
    response: Optional[VeoResponse] = None
    metadata: Optional[dict] = None


def _spec(model: str, label: str, typical: float) -> ModelSpec:
    if model.startswith("veo-2"):
        return ModelSpec(id=model, label=label, ratios=_RATIOS, typical_seconds=typical, duration_range=(5, 8))
    res = ("720p", "1080p", "4k") if model.startswith("veo-3.1") else ("720p", "1080p")
    return ModelSpec(id=model, label=label, ratios=_RATIOS, typical_seconds=typical, durations=(4, 6, 8),
                     resolutions=res, default_resolution="720p")


def _error_details(body: Any) -> list:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        details = body["error"].get("details")
        return details if isinstance(details, list) else []
    return []


class VeoProvider(Provider):
    name = "veo"
    label = "Google Veo"
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    base_url_env = "GEMINI_BASE_URL"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    billing_hint = "Enable billing for the key's project in Google AI Studio (Settings → Billing)"
    default_concurrency = 2  # preview models allow 10 requests a minute
    default_poll_interval = 10.0
    can_cancel = False
    download_with_key = True
    models = {
        m: _spec(m, label, t)
        for m, label, t in (
            ("veo-3.1-generate-preview", "Veo 3.1", 120.0),
            ("veo-3.1-fast-generate-preview", "Veo 3.1 Fast", 60.0),
            ("veo-3.0-generate-001", "Veo 3", 120.0),
            ("veo-3.0-fast-generate-001", "Veo 3 Fast", 60.0),
            ("veo-2.0-generate-001", "Veo 2", 120.0),
        )
    }

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def configure(self, plan: JobPlan, ctx: PlanContext) -> None:
        opts, spec = plan.job.options, plan.spec
        resolution = None
        if spec.resolutions:
            resolution = opts.get("resolution") or spec.default_resolution
            if resolution not in spec.resolutions:
                raise AdReelInputError(f"{plan.field_path}.resolution", f"{spec.id} takes {', '.join(spec.resolutions)}")
        person = opts.get("person_generation")
        if person is not None and person not in ("allow_all", "allow_adult", "dont_allow"):
            raise AdReelInputError(f"{plan.field_path}.person_generation", "must be allow_all, allow_adult or dont_allow")
        plan.params.update(prompt=self.require_prompt(plan), aspect=_RATIOS[plan.job.aspect_ratio],
                           duration=int(plan.duration), resolution=resolution,
                           negative=plan.job.negative() or None, person=person)
        if plan.image is not None:
            plan.image_mode = "base64"
        plan.cost = costs.veo(spec.id, plan.duration, resolution or "720p")

    async def submit_call(self, plan: JobPlan, image: Optional[ImageRef]) -> HttpCall:
        p = plan.params
        body = VeoPredictRequest(
            instances=[VeoInstance(
                prompt=p["prompt"],
                image=VeoImage(bytesBase64Encoded=image.base64(), mimeType=image.info.mime) if image is not None else None,
            )],
            parameters=VeoParameters(aspectRatio=p["aspect"], durationSeconds=p["duration"], resolution=p["resolution"],
                                     negativePrompt=p["negative"], personGeneration=p["person"]),
        )
        return HttpCall("POST", f"{plan.base_url}/models/{plan.spec.id}:predictLongRunning",
                        json=body.model_dump(exclude_none=True), idempotent=False, what="create")

    def parse_submit(self, plan: JobPlan, body: Any) -> JobHandle:
        op = self.parse(VeoOperation, body, plan, "create")
        if not _OP_NAME.match(op.name) or ".." in op.name:
            raise ProviderProtocolError(f"{plan.label}: unexpected operation name in the create response", provider=self.name)
        return JobHandle(op.name.rsplit("/", 1)[-1], {"name": op.name})

    def poll_call(self, plan: JobPlan, handle: JobHandle) -> HttpCall:
        return HttpCall("GET", f"{plan.base_url}/{handle.data['name']}", what="status")

    def parse_poll(self, plan: JobPlan, handle: JobHandle, body: Any) -> PollState:
        op = self.parse(VeoOperation, body, plan, "status")
        if op.error is not None and (op.error.code or op.error.message):
            return PollState("failed", "error", error=self.job_failed(plan, handle.id, op.error.message, op.error.code), detail=op)
        if not op.done:
            return PollState("running", "running", detail=op)
        gen = op.response.generateVideoResponse if op.response else None
        if gen is None:
            return PollState("failed", "done", error=self.job_failed(plan, handle.id, "the operation finished without a video response"), detail=op)
        if gen.raiMediaFilteredCount or gen.raiMediaFilteredReasons:
            reasons = "; ".join(gen.raiMediaFilteredReasons or []) or f"{gen.raiMediaFilteredCount} video(s) filtered"
            return PollState("failed", "filtered", error=self.job_failed(plan, handle.id, reasons, "raiMediaFiltered", "safety"), detail=op)
        uri = next((s.video.uri for s in gen.generatedSamples or [] if s.video and s.video.uri), None)
        return PollState("succeeded", "done", result_url=uri, detail=op)

    def retry_hint(self, reply: HttpReply) -> Optional[float]:
        for item in _error_details(reply.body):
            if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
                return parse_proto_duration(item.get("retryDelay"))
        return None

    def error_detail(self, body: Any, headers) -> tuple[str, Optional[str]]:
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            code = err.get("status")
            for item in _error_details(body):
                if isinstance(item, dict) and item.get("reason"):
                    code = item["reason"]
            return str(err.get("message") or ""), code
        return super().error_detail(body, headers)

    def classify(self, status, message, code, body):
        if code == "API_KEY_INVALID" or status == 401:
            return ProviderAuthError, ""
        if status == 403:
            return ProviderForbiddenError, "Veo may need a paid (billing-enabled) Gemini API project."
        if status == 429:
            return ProviderRateLimitError, ("The Gemini API reports quota or billing limits as 429 RESOURCE_EXHAUSTED: "
                                            "check the project's quota and billing in Google AI Studio.")
        return None
