"""HeyGen: an avatar speaking the scene's narration.

Contract: ``POST /v2/video/generate`` → ``{"error": null, "data": {"video_id"}}``;
``GET /v1/video_status.get?video_id=`` → ``{"code": 100, "data": {status,
video_url, duration, error, …}}`` with ``status`` pending | waiting |
processing | completed | failed. Auth ``X-Api-Key``. No cancel endpoint.
Gotcha: with too little API credit the create call still succeeds and the job
fails at poll time with ``error.code == "MOVIO_PAYMENT_INSUFFICIENT_CREDIT"``.

Job options: ``avatar_id`` (model ``avatar``) or ``talking_photo_id`` (model
``talking_photo``), ``voice_id`` (both required — find them in the HeyGen app
or with its ``/v2/avatars`` and ``/v2/voices`` endpoints), optional
``avatar_style`` (normal | closeUp | circle), ``voice_speed`` (0.5–1.5),
``background`` (hex colour; default the scene's first palette colour),
``resolution`` (720p | 1080p), ``test`` and ``caption`` (bool),
``usd_per_credit`` (default the Pro plan's $0.99).
"""
from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ..models import AdReelInputError
from . import cost as costs
from .base import ImageRef, JobHandle, JobPlan, ModelSpec, PlanContext, PollState, Provider
from .errors import ProviderAuthError, ProviderCreditError
from .http import HttpCall

_DIMENSIONS = {
    "720p": {"9:16": (720, 1280), "1:1": (720, 720), "16:9": (1280, 720)},
    "1080p": {"9:16": (1080, 1920), "1:1": (1080, 1080), "16:9": (1920, 1080)},
}
SPEECH_WORDS_PER_SECOND = 2.5  # ~150 words a minute, for the cost estimate


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeyGenCharacter(_Request):
    type: Literal["avatar", "talking_photo"]
    avatar_id: Optional[str] = None
    talking_photo_id: Optional[str] = None
    avatar_style: Optional[Literal["normal", "closeUp", "circle"]] = None


class HeyGenVoice(_Request):
    type: Literal["text"] = "text"
    input_text: str = Field(min_length=1, max_length=4999)
    voice_id: str
    speed: Optional[float] = Field(default=None, ge=0.5, le=1.5)


class HeyGenBackground(_Request):
    type: Literal["color"] = "color"
    value: str


class HeyGenVideoInput(_Request):
    character: HeyGenCharacter
    voice: HeyGenVoice
    background: Optional[HeyGenBackground] = None


class HeyGenDimension(_Request):
    width: int
    height: int


class HeyGenGenerateRequest(_Request):
    video_inputs: list[HeyGenVideoInput] = Field(min_length=1, max_length=50)
    dimension: HeyGenDimension
    title: Optional[str] = None
    test: Optional[bool] = None
    caption: Optional[bool] = None


class HeyGenVideoId(BaseModel):
    model_config = ConfigDict(extra="allow")
    video_id: str


class HeyGenGenerateResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    error: Any = None
    data: HeyGenVideoId


class HeyGenFailure(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: Union[int, str, None] = None
    message: Optional[str] = None
    detail: Optional[str] = None


class HeyGenStatusData(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Optional[str] = None
    status: Literal["pending", "waiting", "processing", "completed", "failed"]
    video_url: Optional[str] = None
    thumbnail_url: Optional[str] = None
    duration: Optional[float] = None
    error: Optional[HeyGenFailure] = None


class HeyGenStatusResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: int
    data: HeyGenStatusData
    message: Optional[str] = None


_CREDIT_CODES = {"insufficient_credit", "MOVIO_PAYMENT_INSUFFICIENT_CREDIT"}
_AUTH_CODES = {"unauthorized", "40009", "INVALID_CREDENTIALS", "invalid_api_key"}
_SAFETY = re.compile(r"moderation|safety|inappropriate|policy", re.I)


class HeyGenProvider(Provider):
    name = "heygen"
    label = "HeyGen"
    key_env = ("HEYGEN_API_KEY",)
    base_url_env = "HEYGEN_BASE_URL"
    default_base_url = "https://api.heygen.com"
    billing_hint = "Add API credit at app.heygen.com (Settings → API / Billing)"
    default_concurrency = 3  # Pro plan concurrency
    default_poll_interval = 5.0
    can_cancel = False
    models = {
        "avatar": ModelSpec(id="avatar", label="Video avatar", ratios={"9:16": "9:16", "1:1": "1:1", "16:9": "16:9"},
                            typical_seconds=180.0, accepts_image=False),
        "talking_photo": ModelSpec(id="talking_photo", label="Photo avatar", ratios={"9:16": "9:16", "1:1": "1:1", "16:9": "16:9"},
                                   typical_seconds=180.0, accepts_image=False),
    }

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"X-Api-Key": key}

    def configure(self, plan: JobPlan, ctx: PlanContext) -> None:
        job, opts = plan.job, plan.job.options
        text = job.scene.narration.strip()
        if not text:
            raise AdReelInputError(f"{plan.field_path}.narration", f"HeyGen makes an avatar speak the narration, and scene {job.scene.index} has none")
        if len(text) >= 5000:
            raise AdReelInputError(f"{plan.field_path}.narration", "HeyGen takes narration under 5000 characters")
        id_key = "avatar_id" if plan.spec.id == "avatar" else "talking_photo_id"
        if not opts.get(id_key):
            raise AdReelInputError(f"{plan.field_path}.{id_key}", f"HeyGen {plan.spec.id} needs options[{id_key!r}] (find it in the HeyGen app, Avatars)")
        if not opts.get("voice_id"):
            raise AdReelInputError(f"{plan.field_path}.voice_id", "HeyGen needs options['voice_id'] (find it in the HeyGen app, Voices)")
        resolution = opts.get("resolution", "720p")
        if resolution not in _DIMENSIONS:
            raise AdReelInputError(f"{plan.field_path}.resolution", "HeyGen takes 720p or 1080p")
        width, height = _DIMENSIONS[resolution][job.aspect_ratio]
        palette = job.scene.palette
        background = opts.get("background") or (palette[0] if palette else None)
        words = len(text.split()) if " " in text else max(1, len(text) // 3)
        speech = words / SPEECH_WORDS_PER_SECOND
        estimate_s = max(job.scene.duration, speech)
        if opts.get("usd_per_credit") is not None:  # NaN, inf and < 0 refused, naming the option
            costs.require_price(opts["usd_per_credit"], f"{plan.field_path}.options.usd_per_credit")
        plan.params.update(text=text, id_key=id_key, id=str(opts[id_key]), voice_id=str(opts["voice_id"]),
                           style=opts.get("avatar_style"), speed=opts.get("voice_speed"), background=background,
                           width=width, height=height, test=opts.get("test"), caption=opts.get("caption"),
                           usd_per_credit=opts.get("usd_per_credit"))
        plan.notes.append(f"HeyGen clip length follows the narration (about {speech:.1f} s spoken); the scene lasts {job.scene.duration:g} s")
        plan.cost = costs.heygen(plan.spec.id, estimate_s, opts.get("usd_per_credit"))

    async def submit_call(self, plan: JobPlan, image: Optional[ImageRef]) -> HttpCall:
        p = plan.params
        character = HeyGenCharacter(type=plan.spec.id, **{p["id_key"]: p["id"]}, avatar_style=p["style"] if plan.spec.id == "avatar" else None)
        body = HeyGenGenerateRequest(
            video_inputs=[HeyGenVideoInput(
                character=character,
                voice=HeyGenVoice(input_text=p["text"], voice_id=p["voice_id"], speed=p["speed"]),
                background=HeyGenBackground(value=p["background"]) if p["background"] else None,
            )],
            dimension=HeyGenDimension(width=p["width"], height=p["height"]),
            title=f"AdReel scene {plan.scene_index}", test=p["test"], caption=p["caption"],
        )
        return HttpCall("POST", f"{plan.base_url}/v2/video/generate", json=body.model_dump(exclude_none=True),
                        idempotent=False, what="create")

    def parse_submit(self, plan: JobPlan, body: Any) -> JobHandle:
        return JobHandle(self.parse(HeyGenGenerateResponse, body, plan, "create").data.video_id)

    def poll_call(self, plan: JobPlan, handle: JobHandle) -> HttpCall:
        return HttpCall("GET", f"{plan.base_url}/v1/video_status.get", params={"video_id": handle.id}, what="status")

    def parse_poll(self, plan: JobPlan, handle: JobHandle, body: Any) -> PollState:
        data = self.parse(HeyGenStatusResponse, body, plan, "status").data
        if data.status == "completed":
            return PollState("succeeded", data.status, result_url=data.video_url, detail=data)
        if data.status == "failed":
            err = data.error or HeyGenFailure()
            code = None if err.code is None else str(err.code)
            reason = " — ".join(x for x in (err.message, err.detail) if x) or "no reason given"
            kind = "credit" if code in _CREDIT_CODES else "safety" if _SAFETY.search(reason) else "failed"
            return PollState("failed", data.status, error=self.job_failed(plan, handle.id, reason, code, kind), detail=data)
        return PollState("queued" if data.status in ("pending", "waiting") else "running", data.status, detail=data)

    def actual_cost(self, plan, state, probe):
        seconds = getattr(state.detail, "duration", None) or (probe.duration if probe else None)
        if seconds:
            c = costs.heygen(plan.spec.id, float(seconds), plan.params.get("usd_per_credit"))
            return costs.CostEstimate(c.usd, f"from the rendered length: {c.basis}")
        return super().actual_cost(plan, state, probe)

    def error_detail(self, body: Any, headers) -> tuple[str, Optional[str]]:
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):
                return str(err.get("message") or ""), (None if err.get("code") is None else str(err.get("code")))
            if isinstance(body.get("code"), int) and body.get("message"):  # legacy numeric envelope
                return str(body["message"]), str(body["code"])
        return super().error_detail(body, headers)

    def classify(self, status, message, code, body):
        if code in _CREDIT_CODES or status == 402:
            return ProviderCreditError, ""
        if code in _AUTH_CODES or status == 401:
            return ProviderAuthError, ""
        return None
