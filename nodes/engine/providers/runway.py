"""Runway (gen4_turbo image-to-video, veo3).

Contract: ``POST /v1/image_to_video`` (or ``/v1/text_to_video`` for veo3
without an image) → ``{"id"}``; ``GET /v1/tasks/{id}`` with ``status``
PENDING | THROTTLED | RUNNING (+``progress`` 0..1) | SUCCEEDED (+``output``) |
FAILED (+``failure``, ``failureCode`` e.g. SAFETY.INPUT.*) | CANCELLED;
``DELETE /v1/tasks/{id}`` cancels. Headers: ``Authorization: Bearer`` and the
required ``X-Runway-Version: 2024-11-06``. Key images as a data URI up to 5 MB,
above that as a hosted https URL (up to 16 MB).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..models import AdReelInputError
from . import cost as costs
from .base import ImageRef, JobHandle, JobPlan, ModelSpec, PlanContext, PollState, Provider
from .errors import ProviderAuthError, ProviderCreditError, ProviderRateLimitError
from .http import HttpCall

API_VERSION = "2024-11-06"
DATA_URI_LIMIT = 5 * 1024 * 1024
URL_IMAGE_LIMIT = 16 * 1024 * 1024
PROMPT_LIMIT = 1000  # UTF-16 code units


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunwayContentModeration(_Request):
    publicFigureThreshold: Literal["auto", "low"] = "auto"


class RunwayImageToVideoRequest(_Request):
    model: Literal["gen4_turbo", "veo3"]
    promptImage: str
    ratio: Literal["1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672", "1080:1920", "1920:1080"]
    promptText: Optional[str] = None
    duration: int
    seed: Optional[int] = Field(default=None, ge=0, le=4294967295)
    contentModeration: Optional[RunwayContentModeration] = None
    negativePrompt: Optional[str] = None


class RunwayTextToVideoRequest(_Request):
    model: Literal["veo3"]
    promptText: str
    ratio: Literal["1280:720", "720:1280", "1080:1920", "1920:1080"]
    duration: int
    seed: Optional[int] = Field(default=None, ge=0, le=4294967295)
    negativePrompt: Optional[str] = None


class RunwayCreateResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str


class RunwayTask(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    status: Literal["PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    createdAt: str
    progress: Optional[float] = None
    output: Optional[list[str]] = None
    failure: Optional[str] = None
    failureCode: Optional[str] = None


_PHASE = {"PENDING": "queued", "THROTTLED": "throttled", "RUNNING": "running",
          "SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELLED": "canceled"}


class RunwayProvider(Provider):
    name = "runway"
    label = "Runway"
    key_env = ("RUNWAY_API_KEY", "RUNWAYML_API_SECRET")
    base_url_env = "RUNWAY_BASE_URL"
    default_base_url = "https://api.dev.runwayml.com"
    billing_hint = "Buy credits at dev.runwayml.com (Billing)"
    default_concurrency = 4
    default_poll_interval = 5.0  # Runway updates tasks no more often than every 5 s
    can_cancel = True
    models = {
        "gen4_turbo": ModelSpec(
            id="gen4_turbo", label="Gen-4 Turbo", typical_seconds=40.0, duration_range=(2, 10), needs_image=True,
            ratios={"9:16": "720:1280", "1:1": "960:960", "16:9": "1280:720"},
        ),
        "veo3": ModelSpec(
            id="veo3", label="Veo 3 (via Runway)", typical_seconds=120.0, durations=(8,),
            ratios={"9:16": "720:1280", "16:9": "1280:720"}, resolutions=("720p", "1080p"), default_resolution="720p",
        ),
    }

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "X-Runway-Version": API_VERSION}

    def configure(self, plan: JobPlan, ctx: PlanContext) -> None:
        spec, job = plan.spec, plan.job
        ratio = spec.ratios[job.aspect_ratio]
        if spec.id == "veo3" and job.options.get("resolution") == "1080p":
            ratio = {"720:1280": "1080:1920", "1280:720": "1920:1080"}[ratio]
        seed = job.seed
        if seed is not None and not (0 <= seed <= 4294967295):
            raise AdReelInputError(f"{plan.field_path}.seed", "Runway seeds are 0..4294967295")
        has_text = bool(job.prompt or job.scene.image_prompt or job.scene.visual_direction)
        prompt = self.require_prompt(plan, PROMPT_LIMIT) if (has_text or plan.image is None) else None
        plan.params.update(ratio=ratio, duration=int(plan.duration), prompt=prompt, seed=seed,
                           negative=job.negative() if spec.id == "veo3" else None)
        if plan.image is not None:
            if plan.image.data_uri_length() <= DATA_URI_LIMIT:
                plan.image_mode = "data_uri"
            elif plan.image.size > URL_IMAGE_LIMIT:
                raise AdReelInputError(f"{plan.field_path}.image", f"Runway takes key images up to 16 MB (this one is {plan.image.size / 1e6:.1f} MB)")
            else:
                self.require_hosting(plan, ctx, "images above 5 MB cannot be sent inline")
                plan.image_mode = "hosted"
                plan.notes.append("key image above 5 MB: sent as a hosted https URL")
        plan.cost = costs.runway(spec.id, plan.duration)

    async def submit_call(self, plan: JobPlan, image: Optional[ImageRef]) -> HttpCall:
        p = plan.params
        if image is not None:
            body = RunwayImageToVideoRequest(
                model=plan.spec.id, promptImage=image.url or image.data_uri(), ratio=p["ratio"],
                promptText=p["prompt"], duration=p["duration"], seed=p["seed"], negativePrompt=p["negative"] or None,
            )
            path = "/v1/image_to_video"
        else:
            body = RunwayTextToVideoRequest(
                model=plan.spec.id, promptText=p["prompt"], ratio=p["ratio"], duration=p["duration"],
                seed=p["seed"], negativePrompt=p["negative"] or None,
            )
            path = "/v1/text_to_video"
        return HttpCall("POST", plan.base_url + path, json=body.model_dump(exclude_none=True), idempotent=False, what="create")

    def parse_submit(self, plan: JobPlan, body: Any) -> JobHandle:
        return JobHandle(self.parse(RunwayCreateResponse, body, plan, "create").id)

    def poll_call(self, plan: JobPlan, handle: JobHandle) -> HttpCall:
        return HttpCall("GET", f"{plan.base_url}/v1/tasks/{handle.id}", what="status")

    def parse_poll(self, plan: JobPlan, handle: JobHandle, body: Any) -> PollState:
        task = self.parse(RunwayTask, body, plan, "status")
        phase = _PHASE[task.status]
        if phase == "succeeded":
            return PollState(phase, task.status, fraction=1.0, result_url=(task.output or [None])[0], detail=task)
        if phase == "failed":
            code = task.failureCode or ""
            kind = "safety" if code.upper().startswith("SAFETY") else "credit" if "CREDIT" in code.upper() else "failed"
            return PollState(phase, task.status, error=self.job_failed(plan, handle.id, task.failure, code or None, kind), detail=task)
        fraction = None
        if task.progress is not None:
            fraction = min(1.0, max(0.0, float(task.progress)))
        return PollState(phase, task.status, fraction=fraction, detail=task)

    def cancel_call(self, plan: JobPlan, handle: JobHandle) -> Optional[HttpCall]:
        return HttpCall("DELETE", f"{plan.base_url}/v1/tasks/{handle.id}", what="cancel")

    def error_detail(self, body: Any, headers) -> tuple[str, Optional[str]]:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            msg = body["error"]
            issues = body.get("issues")
            if isinstance(issues, list) and issues:
                parts = []
                for it in issues[:3]:
                    if isinstance(it, dict):
                        path = ".".join(str(x) for x in it.get("path", []) or [])
                        parts.append(f"{path}: {it.get('message')}" if path else str(it.get("message")))
                msg += " (" + "; ".join(parts) + ")"
            return msg, None
        return super().error_detail(body, headers)

    def classify(self, status, message, code, body):
        low = (message or "").lower()
        if status in (400, 402, 403) and ("credit" in low or "balance" in low):
            return ProviderCreditError, ""
        if status == 401:
            return ProviderAuthError, ""
        if status == 429:
            return ProviderRateLimitError, ("Runway answers 429 when the daily generation quota is used up "
                                            "(too many concurrent tasks show as THROTTLED instead): wait for the quota to reset.")
        return None
