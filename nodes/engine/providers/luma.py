"""Luma Dream Machine (ray-2, ray-flash-2).

Contract: ``POST /generations/video`` → 201 Generation; ``GET /generations/{id}``
with ``state`` queued | dreaming | completed | failed; video at
``assets.video``; no progress field; no cancel endpoint. Auth ``Bearer``.
Key images are accepted as URLs only, so a job with a key image needs an
``image_host`` (the storage stage's presigned URLs).
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

_RATIOS = {"9:16": "9:16", "1:1": "1:1", "16:9": "16:9"}
_RESOLUTIONS = ("540p", "720p", "1080p", "4k")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LumaImageKeyframe(_Request):
    type: Literal["image"] = "image"
    url: str


class LumaKeyframes(_Request):
    frame0: Optional[LumaImageKeyframe] = None
    frame1: Optional[LumaImageKeyframe] = None


class LumaCreateRequest(_Request):
    model: Literal["ray-1-6", "ray-2", "ray-flash-2"]
    prompt: str
    aspect_ratio: Literal["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"]
    duration: Literal["5s", "9s"]
    resolution: Literal["540p", "720p", "1080p", "4k"]
    loop: Optional[bool] = None
    keyframes: Optional[LumaKeyframes] = None
    generation_type: Literal["video"] = "video"


class LumaAssets(BaseModel):
    model_config = ConfigDict(extra="allow")
    video: Optional[str] = None
    image: Optional[str] = None
    progress_video: Optional[str] = None


class LumaGeneration(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    state: Literal["queued", "dreaming", "completed", "failed"]
    failure_reason: Optional[str] = None
    assets: Optional[LumaAssets] = None
    created_at: Optional[str] = None
    model: Optional[str] = None
    generation_type: Optional[str] = None


_SAFETY = re.compile(r"moderation|safety|not allowed|blocked|inappropriate|policy", re.I)
_CREDIT = re.compile(r"credit|balance|billing|payment", re.I)


class LumaProvider(Provider):
    name = "luma"
    label = "Luma"
    key_env = ("LUMA_API_KEY", "LUMAAI_API_KEY")
    base_url_env = "LUMA_BASE_URL"
    default_base_url = "https://api.lumalabs.ai/dream-machine/v1"
    billing_hint = "Add credit at lumalabs.ai/api (billing)"
    default_concurrency = 4
    default_poll_interval = 4.0
    can_cancel = False
    models = {
        m: ModelSpec(id=m, label=label, ratios=_RATIOS, typical_seconds=t, durations=(5, 9),
                     resolutions=_RESOLUTIONS, default_resolution="720p")
        for m, label, t in (("ray-2", "Ray 2", 90.0), ("ray-flash-2", "Ray Flash 2", 45.0))
    }

    def configure(self, plan: JobPlan, ctx: PlanContext) -> None:
        resolution = plan.job.options.get("resolution") or plan.spec.default_resolution
        if resolution not in _RESOLUTIONS:
            raise AdReelInputError(f"{plan.field_path}.resolution", f"Luma takes {', '.join(_RESOLUTIONS)}")
        plan.params.update(
            prompt=self.require_prompt(plan), aspect_ratio=_RATIOS[plan.job.aspect_ratio],
            duration=f"{int(plan.duration)}s", resolution=resolution, loop=bool(plan.job.options.get("loop", False)),
        )
        if plan.image is not None:
            self.require_hosting(plan, ctx, "Luma accepts image URLs only")
            plan.image_mode = "hosted"
        plan.cost = costs.luma(plan.spec.id, resolution, plan.duration)

    async def submit_call(self, plan: JobPlan, image: Optional[ImageRef]) -> HttpCall:
        p = plan.params
        body = LumaCreateRequest(
            model=plan.spec.id, prompt=p["prompt"], aspect_ratio=p["aspect_ratio"], duration=p["duration"],
            resolution=p["resolution"], loop=p["loop"] or None,
            keyframes=LumaKeyframes(frame0=LumaImageKeyframe(url=image.url)) if image is not None else None,
        )
        return HttpCall("POST", f"{plan.base_url}/generations/video", json=body.model_dump(exclude_none=True),
                        idempotent=False, what="create")

    def parse_submit(self, plan: JobPlan, body: Any) -> JobHandle:
        gen = self.parse(LumaGeneration, body, plan, "create")
        return JobHandle(gen.id)

    def poll_call(self, plan: JobPlan, handle: JobHandle) -> HttpCall:
        return HttpCall("GET", f"{plan.base_url}/generations/{handle.id}", what="status")

    def parse_poll(self, plan: JobPlan, handle: JobHandle, body: Any) -> PollState:
        gen = self.parse(LumaGeneration, body, plan, "status")
        if gen.state == "completed":
            return PollState("succeeded", gen.state, result_url=gen.assets.video if gen.assets else None, detail=gen)
        if gen.state == "failed":
            reason = gen.failure_reason or ""
            kind = "safety" if _SAFETY.search(reason) else "credit" if _CREDIT.search(reason) else "failed"
            return PollState("failed", gen.state, error=self.job_failed(plan, handle.id, reason, kind=kind), detail=gen)
        return PollState("queued" if gen.state == "queued" else "running", gen.state, detail=gen)

    def classify(self, status, message, code, body):
        if status in (400, 402, 403) and _CREDIT.search(message or ""):
            return ProviderCreditError, ""
        if status == 401:
            return ProviderAuthError, ""
        return None
