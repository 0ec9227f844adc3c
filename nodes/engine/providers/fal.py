"""fal.ai queue (fal-ai/stable-video, Kling v2.1 standard / pro image-to-video).

Contract: ``POST /{owner}/{app}[/{subpath}]`` with the model input →
``{request_id, …}``. Status, result and cancel use only ``{owner}/{app}``,
never the subpath: ``GET …/requests/{id}/status?logs=1`` (IN_QUEUE |
IN_PROGRESS | COMPLETED, with ``error`` / ``error_type`` on failure),
``GET …/requests/{id}`` for the output ``{"video": {"url", …}}``,
``PUT …/requests/{id}/cancel`` → 202. Auth ``Authorization: Key <FAL_KEY>``.
Errors ``{"detail": str | [{loc, msg, type}]}`` plus ``x-fal-error-type``; an
exhausted balance is a 403 "User is locked. Reason: Exhausted balance…".
Key images go inline as data URIs.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..models import AdReelInputError, describe_validation_error
from . import cost as costs
from .base import ImageRef, JobHandle, JobPlan, ModelSpec, PlanContext, PollState, Provider
from .errors import ProviderAuthError, ProviderCreditError
from .http import HttpCall

SVD = "fal-ai/stable-video"
KLING_STANDARD = "fal-ai/kling-video/v2.1/standard/image-to-video"
KLING_PRO = "fal-ai/kling-video/v2.1/pro/image-to-video"
_ANY_RATIO = {"9:16": "9:16", "1:1": "1:1", "16:9": "16:9"}  # image-to-video: the output follows the image


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FalStableVideoInput(_Request):
    image_url: str
    motion_bucket_id: int = Field(default=127, ge=1, le=255)
    cond_aug: float = 0.02
    fps: int = Field(default=25, ge=10, le=100)
    seed: Optional[int] = None


class FalKlingImageToVideoInput(_Request):
    prompt: str
    image_url: str
    duration: Literal["5", "10"]
    negative_prompt: Optional[str] = None
    cfg_scale: Optional[float] = Field(default=None, ge=0, le=1)


class FalSubmitResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    request_id: str
    status_url: Optional[str] = None
    response_url: Optional[str] = None
    cancel_url: Optional[str] = None


class FalQueueStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    queue_position: Optional[int] = None
    logs: Optional[list[Any]] = None
    metrics: Optional[dict] = None
    error: Optional[str] = None
    error_type: Optional[str] = None


class FalFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str
    content_type: Optional[str] = None
    file_name: Optional[str] = None
    file_size: Optional[int] = None


class FalVideoOutput(BaseModel):
    model_config = ConfigDict(extra="allow")
    video: FalFile
    seed: Optional[int] = None


def app_root(model_id: str) -> str:
    """``owner/app`` of a model id: the only part status / result / cancel URLs use."""
    return "/".join(model_id.split("/")[:2])


class FalProvider(Provider):
    name = "fal"
    label = "fal.ai"
    key_env = ("FAL_KEY",)
    base_url_env = "FAL_BASE_URL"
    default_base_url = "https://queue.fal.run"
    billing_hint = "Top up the balance at fal.ai/dashboard/billing"
    default_concurrency = 4
    default_poll_interval = 2.0
    can_cancel = True
    models = {
        SVD: ModelSpec(id=SVD, label="Stable Video Diffusion", ratios=_ANY_RATIO, typical_seconds=30.0, needs_image=True),
        KLING_STANDARD: ModelSpec(id=KLING_STANDARD, label="Kling v2.1 standard", ratios=_ANY_RATIO,
                                  typical_seconds=150.0, durations=(5, 10), needs_image=True),
        KLING_PRO: ModelSpec(id=KLING_PRO, label="Kling v2.1 pro", ratios=_ANY_RATIO,
                             typical_seconds=240.0, durations=(5, 10), needs_image=True),
    }

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Key {key}"}

    def configure(self, plan: JobPlan, ctx: PlanContext) -> None:
        opts = plan.job.options
        plan.image_mode = "data_uri"
        if plan.spec.id == SVD:
            try:
                inp = dict(motion_bucket_id=int(opts.get("motion_bucket_id", 127)), cond_aug=float(opts.get("cond_aug", 0.02)),
                           fps=int(opts.get("fps", 25)), seed=plan.job.seed)
                FalStableVideoInput(image_url="data:", **inp)
            except ValidationError as exc:
                raise AdReelInputError(f"{plan.field_path}.options", describe_validation_error(exc, "fal stable-video")) from None
            except (ValueError, TypeError):
                raise AdReelInputError(f"{plan.field_path}.options", "motion_bucket_id, fps must be integers and cond_aug a number") from None
            plan.params.update(inp)
            plan.notes.append(f"Stable Video Diffusion makes a short fixed-length clip; the scene lasts {plan.job.scene.duration:g} s")
        else:
            cfg = opts.get("cfg_scale")
            plan.params.update(prompt=self.require_prompt(plan, 2500), duration=str(int(plan.duration)),
                               negative_prompt=plan.job.negative() or None, cfg_scale=None if cfg is None else float(cfg))
        plan.cost = costs.fal(plan.spec.id, plan.duration)

    async def submit_call(self, plan: JobPlan, image: Optional[ImageRef]) -> HttpCall:
        p = plan.params
        if plan.spec.id == SVD:
            body = FalStableVideoInput(image_url=image.data_uri(), motion_bucket_id=p["motion_bucket_id"],
                                       cond_aug=p["cond_aug"], fps=p["fps"], seed=p["seed"])
        else:
            body = FalKlingImageToVideoInput(prompt=p["prompt"], image_url=image.data_uri(), duration=p["duration"],
                                             negative_prompt=p["negative_prompt"], cfg_scale=p["cfg_scale"])
        return HttpCall("POST", f"{plan.base_url}/{plan.spec.id}", json=body.model_dump(exclude_none=True),
                        idempotent=False, what="create")

    def parse_submit(self, plan: JobPlan, body: Any) -> JobHandle:
        return JobHandle(self.parse(FalSubmitResponse, body, plan, "create").request_id)

    def _request_url(self, plan: JobPlan, handle: JobHandle) -> str:
        return f"{plan.base_url}/{app_root(plan.spec.id)}/requests/{handle.id}"

    def poll_call(self, plan: JobPlan, handle: JobHandle) -> HttpCall:
        return HttpCall("GET", self._request_url(plan, handle) + "/status", params={"logs": "1"}, what="status")

    def parse_poll(self, plan: JobPlan, handle: JobHandle, body: Any) -> PollState:
        st = self.parse(FalQueueStatus, body, plan, "status")
        if st.status == "COMPLETED":
            if st.error:
                kind = "safety" if "content_policy" in (st.error_type or "") else "failed"
                return PollState("failed", st.status, error=self.job_failed(plan, handle.id, st.error, st.error_type, kind), detail=st)
            return PollState("succeeded", st.status, detail=st)
        if st.status == "IN_QUEUE":
            text = st.status + (f" (position {st.queue_position})" if st.queue_position is not None else "")
            return PollState("queued", text, detail=st)
        return PollState("running", st.status, detail=st)

    async def result_url(self, plan: JobPlan, handle: JobHandle, state: PollState, fetch) -> str:
        reply = await fetch(HttpCall("GET", self._request_url(plan, handle), what="result"))
        if not reply.ok:
            message, code = self.error_detail(reply.body, reply.headers)
            if code and "content_policy" in code:
                raise self.job_failed(plan, handle.id, message, code, "safety")
            raise self.error_for(reply, plan, "result", job_id=handle.id)
        return self.parse(FalVideoOutput, reply.body, plan, "result").video.url

    def cancel_call(self, plan: JobPlan, handle: JobHandle) -> Optional[HttpCall]:
        return HttpCall("PUT", self._request_url(plan, handle) + "/cancel", what="cancel")

    def error_detail(self, body: Any, headers) -> tuple[str, Optional[str]]:
        code = headers.get("x-fal-error-type") if headers is not None else None
        if isinstance(body, dict):
            detail = body.get("detail")
            if isinstance(detail, list):
                parts, types = [], []
                for item in detail[:3]:
                    if isinstance(item, dict):
                        loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                        if item.get("type"):
                            types.append(str(item["type"]))
                return "; ".join(parts), code or (types[0] if types else None)
            if isinstance(detail, str):
                return detail, code
        message, _ = super().error_detail(body, headers)
        return message, code

    def classify(self, status, message, code, body):
        low = (message or "").lower()
        if status in (402, 403) and ("exhausted balance" in low or "user is locked" in low or "balance" in low):
            return ProviderCreditError, ""
        if status == 401:
            return ProviderAuthError, ""
        return None
