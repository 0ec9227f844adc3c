"""What goes into a provider render and what comes out of it.

``RenderJob`` is one scene to render; ``ClipResult`` is the local clip plus
an audit record (job id, costs, timings, notes) that holds no secret and no
presigned URL, so it can go straight into the ``RenderManifest``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..models import StoryboardScene


def _sentence(text: str) -> str:
    text = (text or "").strip()
    return text if not text or text[-1] in ".!?。" else text + "."


@dataclass
class RenderJob:
    """One scene for one provider / model.

    ``options`` carries provider-specific settings, e.g. HeyGen ``avatar_id`` /
    ``voice_id``; Replicate ``image_input`` (input field name for the image),
    ``input`` (extra model inputs), ``price_usd_per_run`` / ``price_usd_per_second``;
    ``resolution`` for providers that take one.
    """

    scene: StoryboardScene
    provider: str
    model: str
    image_path: Optional[str] = None
    aspect_ratio: str = "9:16"
    prompt: Optional[str] = None  # default: built from the scene
    negative_prompt: Optional[str] = None  # default: scene.negative_prompt
    seed: Optional[int] = None
    options: dict[str, Any] = field(default_factory=dict)

    def text_prompt(self) -> str:
        if self.prompt and self.prompt.strip():
            return self.prompt.strip()
        sc = self.scene
        parts = [_sentence(sc.image_prompt), _sentence(sc.visual_direction)]
        if sc.camera == "static":
            parts.append("Static camera.")
        elif sc.camera:
            parts.append(f"Camera: {sc.camera.replace('_', ' ')}.")
        return " ".join(p for p in parts if p)

    def negative(self) -> str:
        return (self.negative_prompt if self.negative_prompt is not None else self.scene.negative_prompt).strip()


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report for one scene's job."""

    scene_index: int
    provider: str
    model: str
    job_id: Optional[str]
    status: str  # planned | submitting | queued | throttled | running | downloading | done | retrying | cancelling
    elapsed: float  # seconds since the job started
    remaining: Optional[float]  # estimated seconds left, None when unknown
    fraction: Optional[float]  # 0..1 when the provider reports progress (Runway, Replicate)
    cost_usd: Optional[float]  # the estimate (or the actual cost once known)
    message: str  # one human line, e.g. "runway gen4_turbo: RUNNING 40% (12 s)"


class RenderTimings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    submit_s: float = 0.0
    queued_s: float = 0.0
    running_s: float = 0.0
    download_s: float = 0.0
    total_s: float = 0.0
    polls: int = 0
    retries: int = 0


class ClipResult(BaseModel):
    """A rendered clip on disk and everything needed to audit it. Secret-free."""

    model_config = ConfigDict(extra="forbid")

    scene_index: int
    provider: str
    model: str
    job_id: str
    path: str
    bytes: int
    sha256: str
    container: str  # mp4 | mov | webm
    requested_duration: Optional[float] = None  # what was asked of the provider
    scene_duration: float
    duration: Optional[float] = None  # measured with ffprobe
    width: Optional[int] = None
    height: Optional[int] = None
    estimated_cost_usd: Optional[float] = None
    actual_cost_usd: Optional[float] = None
    cost_basis: str = ""
    result_host: str = ""  # where the file came from (host only; presigned URLs are not kept)
    timings: RenderTimings = Field(default_factory=RenderTimings)
    notes: list[str] = Field(default_factory=list)

    def manifest_entry(self) -> dict:
        """The record for ``RenderManifest.providers``."""
        return self.model_dump(mode="json")
