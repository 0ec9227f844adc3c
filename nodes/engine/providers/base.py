"""The one submit → poll → download flow shared by every provider.

A provider module subclasses ``Provider`` and only *describes* its API: how to
plan a job (models, allowed durations / ratios, price), how to build the create
request, how to read a status body, where the result is, how to cancel, and how
its error bodies look. ``run_job`` does the rest, the same way for everyone:

    plan (local checks, no network) → submit (bounded retries) → poll every
    ``poll_interval`` until done (progress callback each time) → download
    (https, capped, checked) → ``ClipResult``

One run is a ``JobRun``; it tells its observers each change of the remote
job's state, and the jobs journal (``journal.JournalRecorder``) is the
observer that lets a restart resume the job instead of paying for it twice.

A stop — user interrupt, the job's timeout, or a sibling scene's failure —
is noticed within ~50 ms while waiting; the remote job is then cancelled where
the provider has a cancel endpoint, and a clear ``ProviderInterrupted`` /
``ProviderTimeoutError`` is raised (saying so when there is no cancel endpoint).
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, ClassVar, Mapping, Optional, Sequence, Union

import aiohttp
from pydantic import BaseModel, ValidationError

from .. import limits
from ..models import AdReelInputError
from . import cost as costs
from .cancellation import SIBLING_FAILED, TIMEOUT, JobStop, Overtime, RunSignal, Stopped
from .download import DEFAULT_MAX_BYTES, ByteBudget, Download, DownloadedFile, ProbeInfo
from .errors import (
    PaidProvidersDisabledError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderConnectionError,
    ProviderCreditError,
    ProviderDownloadError,
    ProviderError,
    ProviderForbiddenError,
    ProviderInterrupted,
    ProviderJobFailed,
    ProviderProtocolError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderSafetyError,
    ProviderServerError,
    ProviderTimeoutError,
)
from .http import HttpCall, HttpReply, RetryPolicy, call_with_retries, origin, require_https
from .images import ImageInfo, load_image
from .journal import Entry, JobEvent, JobJournal, JournalRecorder
from .jobs import ClipResult, ProgressEvent, RenderJob, RenderTimings
from .log import logger
from ..cloud.redaction import redact
from .secrets import ApiKey, get_api_key, secrets_file_path

ImageHost = Callable[[str], Union[str, Awaitable[str]]]
ProgressCallback = Callable[[ProgressEvent], Union[None, Awaitable[None]]]


# --------------------------------------------------------------------------- model specs


@dataclass(frozen=True)
class ModelSpec:
    """What a model accepts. ``durations``: allowed discrete values; ``duration_range``: an int range."""

    id: str
    label: str
    ratios: Mapping[str, str]  # brief aspect ("9:16") → the provider's value
    typical_seconds: float  # how long a job usually takes (ETA when no progress is reported)
    durations: Optional[tuple[float, ...]] = None
    duration_range: Optional[tuple[int, int]] = None
    needs_image: bool = False
    accepts_image: bool = True
    resolutions: tuple[str, ...] = ()
    default_resolution: Optional[str] = None


def choose_duration(scene_seconds: float, spec: ModelSpec) -> tuple[Optional[float], Optional[str]]:
    """The nearest allowed duration ≥ the scene's, else the longest; with a note when it differs."""
    if spec.durations:
        allowed = sorted(spec.durations)
    elif spec.duration_range:
        lo, hi = spec.duration_range
        allowed = list(range(lo, hi + 1))
    else:
        return None, None
    fitting = [d for d in allowed if d >= scene_seconds - 1e-6]
    chosen = fitting[0] if fitting else allowed[-1]
    note = None
    if abs(chosen - scene_seconds) > 1e-6:
        shown = ", ".join(f"{d:g}" for d in allowed) if len(allowed) <= 6 else f"{allowed[0]:g}–{allowed[-1]:g}"
        if chosen > scene_seconds:
            note = (f"{spec.id}: scene lasts {scene_seconds:g} s; requested {chosen:g} s (allowed: {shown} s) — "
                    "the assembler trims it to the scene")
        else:
            note = (f"{spec.id}: scene lasts {scene_seconds:g} s but the model's longest clip is {chosen:g} s — "
                    "the assembler must extend it (or split the scene)")
    return chosen, note


# --------------------------------------------------------------------------- plan & poll state


@dataclass
class JobPlan:
    """A job checked and priced locally; everything ``run_job`` needs except the network."""

    job: RenderJob
    provider: "Provider" = field(repr=False)
    spec: ModelSpec
    field_path: str  # where the job sits in the input, for error messages: "jobs[2]"
    key: ApiKey = field(repr=False)
    base_url: str
    duration: Optional[float]
    image: Optional[ImageInfo]
    image_mode: Optional[str]  # "data_uri" | "hosted" | "base64" | None
    cost: costs.CostEstimate
    params: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def scene_index(self) -> int:
        return self.job.scene.index

    @property
    def label(self) -> str:
        return f"{self.provider.label} ({self.spec.id})"

    def summary(self) -> dict:
        """A secret-free description for cost badges and manifests."""
        return {
            "scene_index": self.scene_index,
            "provider": self.provider.name,
            "model": self.spec.id,
            "scene_duration": self.job.scene.duration,
            "requested_duration": self.duration,
            "estimated_cost_usd": self.cost.usd,
            "cost_basis": self.cost.basis,
            "image": None if self.image is None else self.image_mode,
            "params": dict(self.params),
            "notes": list(self.notes),
        }


@dataclass
class JobHandle:
    id: str
    data: dict = field(default_factory=dict)


@dataclass
class PollState:
    phase: str  # queued | throttled | running | succeeded | failed | canceled
    raw_status: str
    fraction: Optional[float] = None
    result_url: Optional[str] = None
    error: Optional[ProviderError] = None
    detail: Any = None


@dataclass
class ImageRef:
    """The key image in the form the provider takes."""

    info: ImageInfo
    url: Optional[str] = None  # hosted https URL

    def data_uri(self) -> str:
        return self.info.data_uri()

    def base64(self) -> str:
        return self.info.base64()


@dataclass
class PlanContext:
    image_host: Optional[ImageHost] = None


# --------------------------------------------------------------------------- provider base


class Provider:
    """Describes one provider's HTTP contract. Subclasses fill the class attributes and hooks."""

    name: ClassVar[str]
    label: ClassVar[str]
    key_env: ClassVar[tuple[str, ...]]
    base_url_env: ClassVar[str]
    default_base_url: ClassVar[str]
    billing_hint: ClassVar[str] = "Add credit in the provider's billing page"
    models: ClassVar[dict[str, ModelSpec]] = {}
    default_concurrency: ClassVar[int] = 4
    default_poll_interval: ClassVar[float] = 5.0
    can_cancel: ClassVar[bool] = False
    download_with_key: ClassVar[bool] = False  # send the key when the result URL is on the API origin

    # ---- configuration
    def base_url(self) -> str:
        url = os.environ.get(self.base_url_env) or self.default_base_url
        return require_https(url, f"{self.label} base URL ({self.base_url_env})")

    def api_key(self) -> ApiKey:
        return get_api_key(self.name, self.key_env, label=self.label)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def model_spec(self, model: str, field_name: str) -> ModelSpec:
        spec = self.models.get(model)
        if spec is None:
            raise AdReelInputError(f"{field_name}.model", f"{self.label} has no such model; choose one of {', '.join(self.models)}")
        return spec

    def require_enabled(self) -> None:
        """Paid providers are off unless the operator turns them on; no widget can."""
        if not limits.paid_providers_enabled():
            raise PaidProvidersDisabledError(
                f"{self.label}: paid cloud providers are turned off on this server. The operator enables them by "
                f"setting {limits.PAID_PROVIDERS_ENV}=1 in the ComfyUI process environment (the spending ceiling "
                f"per prompt is {limits.MAX_COST_USD.env}, now ${limits.MAX_COST_USD.read():.2f}). Nothing was sent.",
                provider=self.name,
            )

    # ---- planning (no network)
    def plan(self, job: RenderJob, ctx: PlanContext, field_name: str) -> JobPlan:
        self.require_enabled()
        spec = self.model_spec(job.model, field_name)
        if job.aspect_ratio not in spec.ratios:
            raise AdReelInputError(
                f"{field_name}.aspect_ratio",
                f"{self.label} {spec.id} cannot render {job.aspect_ratio}; it offers {', '.join(spec.ratios) or 'none'}",
            )
        image = None
        if job.image_path:
            image = load_image(job.image_path, f"{field_name}.image")
        if spec.needs_image and image is None:
            raise AdReelInputError(f"{field_name}.image", f"{self.label} {spec.id} animates a key image: connect one for scene {job.scene.index}")
        notes = []
        if image is not None and not spec.accepts_image:
            notes.append(f"{spec.id} does not take a key image; the image was not sent")
            image = None
        duration, note = choose_duration(job.scene.duration, spec)
        if note:
            notes.append(note)
        if image is not None:
            target = _aspect_value(job.aspect_ratio)
            if abs(image.aspect - target) / target > 0.03:
                notes.append(
                    f"key image is {image.width}×{image.height} (aspect {image.aspect:.3f}), the output is "
                    f"{job.aspect_ratio}: the provider will crop or pad it"
                )
        plan = JobPlan(
            job=job, provider=self, spec=spec, field_path=field_name, key=None, base_url="", duration=duration,
            image=image, image_mode=None, cost=costs.CostEstimate(None, "not estimated"), notes=notes,
        )
        self.configure(plan, ctx)
        plan.key = self.api_key()
        plan.base_url = self.base_url()
        return plan

    def configure(self, plan: JobPlan, ctx: PlanContext) -> None:
        """Provider hook: check the job further, fill ``plan.params``, ``plan.image_mode``, ``plan.cost``."""
        raise NotImplementedError

    def require_prompt(self, plan: JobPlan, limit: Optional[int] = None) -> str:
        job = plan.job
        if not (job.prompt or job.scene.image_prompt or job.scene.visual_direction):
            raise AdReelInputError(f"{plan.field_path}.prompt", f"scene {job.scene.index} has no image_prompt or visual_direction to describe the video")
        text = job.text_prompt()
        if limit is not None and _utf16_len(text) > limit:
            cut = text[:limit]
            while _utf16_len(cut) > limit:
                cut = cut[:-1]
            if " " in cut[int(len(cut) * 0.8):]:
                cut = cut.rsplit(" ", 1)[0]
            plan.notes.append(f"prompt shortened from {_utf16_len(text)} to {_utf16_len(cut)} characters (the model's limit is {limit})")
            text = cut
        return text

    def require_hosting(self, plan: JobPlan, ctx: PlanContext, why: str) -> None:
        if ctx.image_host is None:
            raise ProviderConfigError(
                f"{self.label} needs the key image as a public https URL ({why}), and no image host is configured. "
                "Connect the storage stage (AssetUpload / an S3-compatible bucket) so key images are uploaded and "
                "passed as presigned URLs, or render this scene without a key image.",
                provider=self.name,
            )

    # ---- the HTTP contract (provider hooks)
    async def submit_call(self, plan: JobPlan, image: Optional[ImageRef]) -> HttpCall:
        raise NotImplementedError

    def parse_submit(self, plan: JobPlan, body: Any) -> JobHandle:
        raise NotImplementedError

    def poll_call(self, plan: JobPlan, handle: JobHandle) -> HttpCall:
        raise NotImplementedError

    def parse_poll(self, plan: JobPlan, handle: JobHandle, body: Any) -> PollState:
        raise NotImplementedError

    async def result_url(self, plan: JobPlan, handle: JobHandle, state: PollState, fetch) -> str:
        if not state.result_url:
            raise ProviderProtocolError(f"{plan.label}: job {handle.id} finished without a video URL", provider=self.name, job_id=handle.id)
        return state.result_url

    def cancel_call(self, plan: JobPlan, handle: JobHandle) -> Optional[HttpCall]:
        return None

    def actual_cost(self, plan: JobPlan, state: PollState, probe: Optional[ProbeInfo]) -> costs.CostEstimate:
        return costs.CostEstimate(plan.cost.usd, f"billed parameters: {plan.cost.basis}" if plan.cost.usd is not None else plan.cost.basis)

    def retry_hint(self, reply: HttpReply) -> Optional[float]:
        return None

    # ---- errors
    def error_detail(self, body: Any, headers: Mapping[str, str]) -> tuple[str, Optional[str]]:
        """(message, code) from an error body. Default: ``detail`` / ``error`` / ``message`` keys."""
        if isinstance(body, dict):
            for key in ("detail", "error", "message", "title"):
                val = body.get(key)
                if isinstance(val, str) and val:
                    return val, None
                if isinstance(val, dict):
                    return str(val.get("message") or val), val.get("code")
        return (str(body)[:300] if body else ""), None

    def classify(self, status: int, message: str, code: Optional[str], body: Any) -> Optional[tuple[type, str]]:
        """Provider-specific mapping: (error class, hint) or None for the default by status."""
        return None

    def error_for(self, reply: HttpReply, plan: JobPlan, what: str, job_id: Optional[str] = None) -> ProviderError:
        message, code = self.error_detail(reply.body, reply.headers)
        message = _short(message)
        special = self.classify(reply.status, message, code, reply.body)
        status = reply.status
        shown = f"HTTP {status}" + (f" {code}" if code and str(code) not in message else "") + (f": {message}" if message else "")
        label = plan.label
        if special is not None:
            cls, hint = special
        else:
            cls, hint = _default_class(status), ""
        if cls is ProviderAuthError:
            text = (f"{label} rejected the API key ({shown}). Check {' / '.join(self.key_env)} in the ComfyUI "
                    f"process environment or the secrets file {secrets_file_path()}.")
        elif cls is ProviderCreditError:
            text = f"{label}: not enough credit ({shown}). {self.billing_hint}, then queue the prompt again."
        elif cls is ProviderForbiddenError:
            text = (f"{label} refused the {what} request ({shown}). The account behind the key may not have access "
                    f"to {plan.spec.id}; check the plan and model permissions.")
        elif cls is ProviderRateLimitError:
            text = (f"{label} is rate-limiting this key ({shown}) after {reply.attempts} attempt(s) over "
                    f"{reply.waited:.0f} s. Lower the concurrency for {self.name}, wait, or raise the account's quota.")
        elif cls is ProviderServerError:
            text = (f"{label} had a server error ({shown}) on the {what} request, still failing after "
                    f"{reply.attempts} attempt(s). This is on the provider's side: try again later.")
        elif cls is ProviderJobFailed:
            text = f"{label}: the job failed ({shown})."
        else:
            text = (f"{label} rejected the {what} request as invalid ({shown}). Check the scene's prompt, image, "
                    f"duration and ratio against {plan.spec.id}'s limits.")
        if what == "create" and status >= 500:
            text += (" The create request is not repeated automatically when the job may already exist: check the "
                     f"{self.label} dashboard before queueing again.") if status == 500 else ""
        if hint:
            text = f"{text} {hint}"
        return cls(text, provider=self.name, status=status, code=code, job_id=job_id)

    def job_failed(self, plan: JobPlan, job_id: str, reason: Any, code: Any = None, kind: str = "failed") -> ProviderError:
        """The error for a job the provider reports as failed. ``kind``: failed | safety | credit."""
        reason = _short(reason or "no reason given")
        shown = f"{code}: {reason}" if code else reason
        if kind == "safety":
            return ProviderSafetyError(
                f"{plan.label}: the provider's safety filter rejected scene {plan.scene_index} (job {job_id}; {shown}). "
                "Rephrase the scene's prompt or use another key image, then queue again.",
                provider=self.name, code=code, job_id=job_id,
            )
        if kind == "credit":
            return ProviderCreditError(
                f"{plan.label}: not enough credit to finish job {job_id} ({shown}). {self.billing_hint}, then queue "
                "the prompt again.",
                provider=self.name, code=code, job_id=job_id,
            )
        return ProviderJobFailed(
            f"{plan.label}: job {job_id} for scene {plan.scene_index} failed on the provider's side ({shown}). "
            "Queue it again; if it keeps failing, change the prompt or key image.",
            provider=self.name, code=code, job_id=job_id,
        )

    def parse(self, model: type[BaseModel], body: Any, plan: JobPlan, what: str) -> Any:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            raise ProviderProtocolError(
                f"{plan.label}: unexpected {what} response ({where or 'body'}: {first.get('msg')}); "
                "the provider's API may have changed — please report this",
                provider=self.name,
            ) from None


def _default_class(status: int) -> type:
    if status == 401:
        return ProviderAuthError
    if status == 402:
        return ProviderCreditError
    if status == 403:
        return ProviderForbiddenError
    if status == 429:
        return ProviderRateLimitError
    if status >= 500:
        return ProviderServerError
    return ProviderRequestError


def _short(text: Any, limit: int = 300) -> str:
    text = redact(" ".join(str(text or "").split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _aspect_value(aspect: str) -> float:
    w, h = aspect.split(":")
    return float(w) / float(h)


# --------------------------------------------------------------------------- the flow


@dataclass
class RunContext:
    session: aiohttp.ClientSession
    output_dir: Path
    signal: RunSignal
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_progress: Optional[ProgressCallback] = None
    image_host: Optional[ImageHost] = None
    poll_interval: Optional[float] = None
    timeout: Optional[float] = 900.0
    max_download_bytes: int = DEFAULT_MAX_BYTES
    journal: Optional[JobJournal] = None  # the jobs journal (resume / cancel after a restart); None: not kept
    download_budget: Optional[ByteBudget] = None  # bytes the run's downloads may write together


class _Reporter:
    def __init__(self, plan: JobPlan, ctx: RunContext, stop: JobStop):
        self.plan, self.ctx, self.stop = plan, ctx, stop
        self.job_id: Optional[str] = None
        self.running_since: Optional[float] = None
        self.first_fraction: Optional[tuple[float, float]] = None  # (time, fraction) of the first report

    async def __call__(self, status: str, *, fraction: Optional[float] = None, detail: str = "", cost: Optional[float] = None):
        cb = self.ctx.on_progress
        now = time.monotonic()
        elapsed = now - self.stop.started
        remaining = None
        if fraction is not None and 0 < fraction < 1 and self.first_fraction is None:
            self.first_fraction = (now, fraction)
        if fraction is not None and 0 < fraction < 1 and fraction > self.first_fraction[1] + 0.01:
            # the rate since the first report: a resumed job may already be part done when first seen
            t0, f0 = self.first_fraction
            remaining = (1 - fraction) * (now - t0) / (fraction - f0)
        elif fraction is not None and 0.01 < fraction < 1 and self.running_since is not None:
            run = now - self.running_since
            remaining = run * (1 - fraction) / fraction
        elif status in ("submitting", "queued", "throttled", "running"):
            left = self.plan.spec.typical_seconds - elapsed
            remaining = left if left > 0 else None
        elif status == "done":
            remaining = 0.0
        p = self.plan
        shown_cost = p.cost.usd if cost is None else cost
        text = f"{p.provider.name} {p.spec.id} scene {p.scene_index}: {detail or status}"
        if fraction is not None:
            text += f" {fraction * 100:.0f}%"
        text += f" ({elapsed:.0f} s"
        if remaining is not None and status != "done":
            text += f", ~{remaining:.0f} s left"
        text += ")"
        event = ProgressEvent(
            scene_index=p.scene_index, provider=p.provider.name, model=p.spec.id, job_id=self.job_id,
            status=status, elapsed=elapsed, remaining=remaining, fraction=fraction, cost_usd=shown_cost,
            message=redact(text),
        )
        logger.debug("%s", event.message)
        await notify(cb, event)


async def notify(callback: Optional[ProgressCallback], event: ProgressEvent) -> None:
    """Hand ``event`` to a progress callback (sync or async); a failing callback is logged, never raised."""
    if callback is None:
        return
    try:
        res = callback(event)
        if inspect.isawaitable(res):
            await res
    except Exception as exc:  # a broken progress display must not lose a paid job
        logger.warning("progress callback failed: %s", type(exc).__name__)


def _safe_name(text: str, limit: int = 48) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return (cleaned or "x")[:limit]


async def _resolve_image(plan: JobPlan, ctx: RunContext) -> Optional[ImageRef]:
    if plan.image is None:
        return None
    ref = ImageRef(info=plan.image)
    if plan.image_mode == "hosted":
        host = ctx.image_host
        if host is None:
            plan.provider.require_hosting(plan, PlanContext(None), "no inline images")
        try:
            if inspect.iscoroutinefunction(host):
                url = await host(str(plan.image.path))
            else:  # a blocking uploader (boto3) must not stall the event loop
                url = await asyncio.to_thread(host, str(plan.image.path))
            if inspect.isawaitable(url):
                url = await url
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderConfigError(
                f"{plan.label}: uploading the key image for scene {plan.scene_index} to the image host failed "
                f"({type(exc).__name__}: {_short(exc, 200)}); check the storage settings",
                provider=plan.provider.name,
            ) from None
        ref.url = require_https(str(url), "the hosted key image URL")
    return ref


CREATE_GRACE_S = 10.0  # on a stop during the create request, how long its answer (the job id, to cancel) is awaited
_RESUME_STALE = (400, 403, 404, 410, 422)  # a recorded job the provider no longer knows: create a new one


def _http_policy(policy: RetryPolicy) -> RetryPolicy:
    """The run's retry policy, each request bounded by the server's ADREEL_HTTP_TOTAL_SECONDS."""
    return dataclasses.replace(policy, request_timeout=min(policy.request_timeout, limits.HTTP_TOTAL_SECONDS.read()))


@dataclass(frozen=True)
class Cancellation:
    """What stopping a run did to its remote job."""

    cancelled: bool  # the provider confirmed the cancel
    sentence: str  # for the error message: what happened, and what the user should do


JobObserver = Callable[..., None]  # observer(event: JobEvent, **fields): told each change of the job's state


class JobRun:
    """One planned job: submit (or resume), poll, download and bill it — or, on a stop, cancel it.

    The run tells its observers each change of the remote job's state (a ``JobEvent`` and its fields: job id,
    how to cancel it, the clip's hash). The jobs journal is one observer (``journal.JournalRecorder``):
    it is what lets a restart resume the job instead of paying for it twice.
    """

    def __init__(self, plan: JobPlan, ctx: RunContext, observers: Sequence[JobObserver] = ()):
        self.plan, self.ctx, self.provider = plan, ctx, plan.provider
        self.observers = list(observers)
        self.stop = JobStop(ctx.signal, ctx.timeout)
        self.report = _Reporter(plan, ctx, self.stop)
        self.auth = self.provider.auth_headers(plan.key.reveal())
        self.policy = _http_policy(ctx.retry)
        self.timings = RenderTimings()
        self.handle: Optional[JobHandle] = None  # set once the remote job is known to exist
        self.resumed = False
        self.phase, self.phase_since = "submitting", time.monotonic()

    def _tell(self, event: JobEvent, **fields: Any) -> None:
        for observer in self.observers:
            observer(event, **fields)

    async def run(self, earlier: Optional[Entry] = None) -> ClipResult:
        """``earlier``: what an earlier run recorded for this very request, when its job can be resumed."""
        try:
            state = await self._start(earlier)
            state = await self._poll_until_done(state)
            return await self._deliver(state, await self._download(state))
        except Stopped as stopped:
            raise await self._stopped(stopped) from None
        except ProviderError as exc:
            if self.handle is not None and not isinstance(exc, ProviderDownloadError):
                self._tell(JobEvent.FAILED, job_id=self.handle.id)
            raise
        except asyncio.CancelledError:
            if self.handle is not None:
                try:
                    self._closed_by(await asyncio.shield(self._cancel_remote()))
                except BaseException:
                    pass
            raise

    # ---- submit or resume
    async def _start(self, earlier: Optional[Entry]) -> Optional[PollState]:
        """The remote job: the earlier run's, when it can still be resumed, else a new one. Its first state
        when already polled (a resumed job), else None."""
        self.stop.raise_if_stopped()
        self.provider.require_enabled()  # checked again here: a run may start without planning through the node
        handle, state = await self._resume(earlier) if earlier is not None else (None, None)
        self.resumed = handle is not None
        self.handle = handle or await self._submit()
        self.report.job_id = self.handle.id
        self.stop.raise_if_stopped()  # a stop during the create: the job exists now, and is cancelled then
        self.phase, self.phase_since = "queued", time.monotonic()
        return state

    async def _resume(self, earlier: Entry) -> tuple[Optional[JobHandle], Optional[PollState]]:
        """Poll the job an earlier run left unfinished (or undelivered) for this very request; pay nothing."""
        plan, provider = self.plan, self.provider
        handle = JobHandle(earlier.job_id, dict(earlier.handle_data))
        self.report.job_id = handle.id
        await self.report("resuming", detail=f"resuming job {handle.id} from an earlier run")
        try:
            reply = await self._send(provider.poll_call(plan, handle))
            self.timings.polls += 1
            state = provider.parse_poll(plan, handle, reply.body) if reply.ok else None
        except ProviderProtocolError:
            state, reply = None, None
        if state is None and reply is not None and reply.status not in _RESUME_STALE:
            raise provider.error_for(reply, plan, "status", job_id=handle.id)
        if state is None or state.phase in ("failed", "canceled"):
            self._tell(JobEvent.STALE, job_id=handle.id)
            logger.info("%s: recorded job %s can no longer be resumed; submitting a new one", plan.label, handle.id)
            self.report.job_id = None
            return None, None
        self._tell(JobEvent.RESUMED, job_id=handle.id, handle_data=handle.data, cancel=earlier.cancel)
        logger.info("%s: scene %d resumes job %s from an earlier run instead of paying for a new one",
                    plan.label, plan.scene_index, handle.id)
        return handle, state

    async def _submit(self) -> JobHandle:
        """Create the remote job: the one request that costs money."""
        plan, provider = self.plan, self.provider
        call = await provider.submit_call(plan, await _resolve_image(plan, self.ctx))
        await self.report("submitting")
        t0 = time.monotonic()
        self._tell(JobEvent.SUBMITTING)
        # Whether a failed create may have been billed is decided here, by how it failed:
        # - it never reached the provider (``maybe_billed`` left False where http.call_with_retries gives up
        #   on connecting): nothing can exist remotely;
        # - the connection dropped mid-request (marked by http.call_with_retries), or the run stopped while
        #   it was in flight: a job may exist that we know no id for;
        # - a 4xx is a refusal; a 5xx does not prove nothing was made;
        # - accepted (2xx) but unreadable: the job probably exists.
        # A job that may exist keeps its estimate counted against the budget (routes.render_routes).
        try:
            reply = await self._create(call)
        except ProviderConnectionError as exc:
            self._tell(JobEvent.CREATE_UNKNOWN if exc.maybe_billed else JobEvent.REFUSED)
            raise
        except Stopped:
            self._tell(JobEvent.CREATE_UNKNOWN)
            raise
        if not reply.ok:
            err = provider.error_for(reply, plan, "create")
            err.maybe_billed = reply.status >= 500
            self._tell(JobEvent.CREATE_UNKNOWN if err.maybe_billed else JobEvent.REFUSED)
            raise err
        try:
            handle = provider.parse_submit(plan, reply.body)
        except ProviderError as exc:
            exc.maybe_billed = True
            self._tell(JobEvent.CREATE_UNKNOWN)
            raise
        cancel = provider.cancel_call(plan, handle)
        self._tell(JobEvent.SUBMITTED, job_id=handle.id, handle_data=handle.data,
                   cancel=None if cancel is None else {"method": cancel.method, "url": cancel.url})
        self.timings.submit_s = round(time.monotonic() - t0, 3)
        logger.info("%s: scene %d submitted as job %s", plan.label, plan.scene_index, handle.id)
        return handle

    # ---- HTTP
    def _with_retries(self, call: HttpCall) -> Awaitable[HttpReply]:
        return call_with_retries(self.ctx.session, call, label=self.plan.label, auth=self.auth, policy=self.policy,
                                 stop=self.stop, hint=self.provider.retry_hint,
                                 on_wait=functools.partial(self._retrying, call.what))

    async def _retrying(self, what: str, reason: str, delay: float) -> None:
        self.timings.retries += 1
        await self.report("retrying", detail=f"{what}: {reason}, retrying in {delay:.1f} s")

    async def _send(self, call: HttpCall) -> HttpReply:
        """An API call with bounded retries; an interrupt or the job's timeout ends it even in flight."""
        return await self.stop.run(self._with_retries(call))

    async def _create(self, call: HttpCall) -> HttpReply:
        """The create request: on a stop, its answer is awaited a little so the new job can be cancelled."""
        task = asyncio.ensure_future(self._with_retries(call))
        try:
            return await self.stop.run(asyncio.shield(task))
        except Stopped:
            if task.done() and (task.cancelled() or isinstance(task.exception(), Stopped)):
                raise  # stopped between attempts: nothing in flight
            try:
                return await asyncio.wait_for(asyncio.shield(task), CREATE_GRACE_S)  # then cancelled by the caller
            except Exception:
                task.cancel()
                raise Stopped(self.stop.reason() or "interrupted") from None

    # ---- poll
    async def _poll_until_done(self, state: Optional[PollState]) -> PollState:
        """Poll every ``poll_interval`` until the job succeeded; ``state``: one already read (a resumed job)."""
        interval = self.ctx.poll_interval if self.ctx.poll_interval is not None else self.provider.default_poll_interval
        while True:
            if state is None:
                state = await self._poll(interval)
            self._enter_phase(state.phase)
            if state.phase == "succeeded":
                _account(self.timings, self.phase, time.monotonic() - self.phase_since)
                return state
            self._raise_if_ended(state)
            await self.report(state.phase, fraction=state.fraction, detail=state.raw_status)
            state = None

    async def _poll(self, interval: float) -> PollState:
        await self.stop.sleep(interval)
        reply = await self._send(self.provider.poll_call(self.plan, self.handle))
        self.timings.polls += 1
        if not reply.ok:
            raise self.provider.error_for(reply, self.plan, "status", job_id=self.handle.id)
        return self.provider.parse_poll(self.plan, self.handle, reply.body)

    def _enter_phase(self, phase: str) -> None:
        """Time spent queued and running, for the timings; the start of running, for the time left."""
        if phase == self.phase:
            return
        now = time.monotonic()
        _account(self.timings, self.phase, now - self.phase_since)
        self.phase, self.phase_since = phase, now
        if phase == "running" and self.report.running_since is None:
            self.report.running_since = now

    def _raise_if_ended(self, state: PollState) -> None:
        """A job that ended without a video: the provider's error."""
        plan, handle = self.plan, self.handle
        if state.phase == "failed":
            err = state.error or ProviderJobFailed(f"{plan.label}: job {handle.id} failed ({state.raw_status})")
            err.job_id = err.job_id or handle.id
            raise err
        if state.phase == "canceled":
            raise ProviderJobFailed(
                f"{plan.label}: job {handle.id} ended as {state.raw_status} on the provider's side "
                "(cancelled there, or its deadline passed); queue the scene again",
                provider=self.provider.name, job_id=handle.id,
            )

    # ---- download and bill
    async def _download(self, state: PollState) -> DownloadedFile:
        plan, provider, handle = self.plan, self.provider, self.handle
        url = await self.stop.run(provider.result_url(plan, handle, state, self._send))
        await self.report("downloading")
        stem = self.ctx.output_dir / (
            f"scene{plan.scene_index:03d}_{provider.name}_{_safe_name(plan.spec.id)}_{_safe_name(handle.id, 40)}"
        )
        left = self.stop.remaining()
        fetch = Download(
            self.ctx.session, plan.label, auth=self.auth if provider.download_with_key else None,
            auth_origin=plan.base_url if provider.download_with_key else None,
            max_bytes=self.ctx.max_download_bytes, policy=self.ctx.retry, stop=self.stop,
            budget=self.ctx.download_budget,
        )
        try:
            clip = await fetch(url, stem, min(limits.MAX_DOWNLOAD_SECONDS.read(), left) if left is not None else None)
        except ProviderError as exc:
            exc.job_id = exc.job_id or handle.id
            self._tell(JobEvent.DOWNLOAD_FAILED, job_id=handle.id)  # done and paid: a re-queue downloads it again
            raise
        self.timings.download_s = round(clip.seconds, 3)
        return clip

    def _actual_cost(self, state: PollState, clip: DownloadedFile) -> costs.CostEstimate:
        try:
            return self.provider.actual_cost(self.plan, state, clip.probe)
        except (ValueError, TypeError, ArithmeticError):  # a non-finite or negative figure from a response
            return costs.CostEstimate(None, "unknown: the provider's reported length could not be priced")

    async def _deliver(self, state: PollState, clip: DownloadedFile) -> ClipResult:
        plan, handle, probe = self.plan, self.handle, clip.probe
        actual = self._actual_cost(state, clip)
        self.timings.total_s = round(time.monotonic() - self.stop.started, 3)
        notes = plan.notes + clip.notes
        if self.resumed:
            notes.append(f"resumed job {handle.id}, created by an earlier run (ComfyUI restarted): no new job "
                         "was paid for")
        result = ClipResult(
            scene_index=plan.scene_index, provider=self.provider.name, model=plan.spec.id, job_id=handle.id,
            path=str(clip.path), bytes=clip.bytes, sha256=clip.sha256, container=clip.container,
            requested_duration=plan.duration, scene_duration=plan.job.scene.duration,
            duration=probe.duration if probe else None,
            width=probe.width if probe else None, height=probe.height if probe else None,
            estimated_cost_usd=plan.cost.usd, actual_cost_usd=actual.usd, cost_basis=redact(actual.basis),
            result_host=clip.host, timings=self.timings, notes=[redact(n) for n in notes],
        )
        self._tell(JobEvent.DOWNLOADED, job_id=handle.id, sha256=clip.sha256, bytes=clip.bytes)
        await self.report("done", fraction=1.0, cost=actual.usd)
        return result

    # ---- stop and cancel
    async def _stopped(self, stopped: Stopped) -> ProviderError:
        """Cancel the remote job after a stop; the error that says why the scene stopped and what became of it."""
        plan, job_id = self.plan, self.handle.id if self.handle else None
        outcome = await self._cancel_remote()
        self._closed_by(outcome)
        await self.report("cancelled", detail=f"stopped ({stopped.reason})")
        if stopped.reason == TIMEOUT:
            return ProviderTimeoutError(
                f"{plan.label}: scene {plan.scene_index} did not finish within {self.ctx.timeout:g} s; "
                f"{outcome.sentence}. Raise the timeout if the provider is just slow.",
                provider=self.provider.name, job_id=job_id,
            )
        why = "another scene failed" if stopped.reason == SIBLING_FAILED else "the run was interrupted"
        return ProviderInterrupted(f"{plan.label}: scene {plan.scene_index} stopped because {why}; {outcome.sentence}.",
                                   provider=self.provider.name, job_id=job_id)

    def _closed_by(self, outcome: Cancellation) -> None:
        if self.handle is not None:
            # Cancelled: closed. No cancel endpoint (or the cancel failed): left open, so a re-queue resumes the
            # job instead of paying for a new one.
            self._tell(JobEvent.CANCELLED if outcome.cancelled else JobEvent.STOPPED, job_id=self.handle.id)

    async def _cancel_remote(self) -> Cancellation:
        plan, handle, label = self.plan, self.handle, self.provider.label
        if handle is None:
            return Cancellation(False, "nothing had been submitted yet")
        call = self.provider.cancel_call(plan, handle)
        if call is None:
            return Cancellation(False, f"{label} has no cancel endpoint: job {handle.id} keeps running on their "
                                       "side and may still be billed")
        retry = self.ctx.retry
        policy = RetryPolicy(max_retries=2, base_delay=min(retry.base_delay, 0.5), max_delay=2.0,
                             max_retry_after=5.0, request_timeout=min(retry.request_timeout, 20.0))
        try:
            reply = await call_with_retries(self.ctx.session, call, label=plan.label, auth=self.auth, policy=policy)
        except ProviderError as exc:
            return Cancellation(False, f"cancelling job {handle.id} failed ({exc}); cancel it in the {label} dashboard")
        if reply.ok:
            logger.info("%s: cancelled job %s", plan.label, handle.id)
            return Cancellation(True, f"the remote job {handle.id} was cancelled")
        return Cancellation(False, f"cancelling job {handle.id} failed (HTTP {reply.status}); cancel it in the "
                                   f"{label} dashboard")


async def run_job(plan: JobPlan, ctx: RunContext) -> ClipResult:
    """Submit (or resume), poll and download one planned job, the jobs journal observing. See the module doc.

    The journal is kept when ``ctx.journal`` is set and this process is not already running the very same
    request (the second of two identical runs is neither recorded nor resumed).
    """
    recorder = JournalRecorder.open(ctx.journal, plan)
    if recorder is None:
        return await JobRun(plan, ctx).run()
    try:
        return await JobRun(plan, ctx, [recorder]).run(recorder.earlier_job())
    finally:
        recorder.close()


async def recover_orphans(journal: JobJournal, keep: set, ctx: RunContext,
                          providers: Mapping[str, Provider]) -> list[str]:
    """Cancel (where the provider can) the unfinished jobs a dead process left that this run does not resume.

    ``providers``: the registry, by name (``registry.PROVIDERS``). A key goes only to a recorded cancel URL on
    the provider's configured base URL. Returns what was done, one sentence per job, for the log.
    """

    done = []
    policy = RetryPolicy(max_retries=1, base_delay=0.2, max_delay=1.0, max_retry_after=2.0,
                         request_timeout=min(10.0, limits.HTTP_TOTAL_SECONDS.read()))
    for e in journal.orphans(keep):
        provider = providers.get(e.provider)
        what = f"{e.provider or '?'} job {e.job_id or '(no id)'} for scene {e.scene_index}"
        if not e.job_id:
            journal.append(JobEvent.ABANDONED, e.key, job_id=None)
            done.append(f"{what}: its create request never answered; it may have been billed — check the dashboard")
            continue
        if provider is None or not e.cancel or not isinstance(e.cancel.get("url"), str):
            journal.append(JobEvent.ABANDONED, e.key, job_id=e.job_id)
            done.append(f"{what}: no cancel endpoint; it may still be billed")
            continue
        try:
            if origin(e.cancel["url"]) != origin(provider.base_url()):
                raise ProviderConfigError("the recorded cancel URL is not on the configured base URL")
            key = provider.api_key()
            call = HttpCall(str(e.cancel.get("method") or "POST"), e.cancel["url"], what="cancel")
            reply = await JobStop(ctx.signal, None).run(
                call_with_retries(ctx.session, call, label=provider.label, auth=provider.auth_headers(key.reveal()),
                                  policy=policy), 30.0)
            ok = reply.ok or reply.status == 404
        except (ProviderError, AdReelInputError, Stopped, Overtime) as exc:
            ok = False
            done.append(f"{what}: cancelling failed ({type(exc).__name__}); cancel it in the dashboard")
        else:
            done.append(f"{what}: cancelled (left unfinished by an earlier ComfyUI process)" if ok else
                        f"{what}: cancelling failed (HTTP {reply.status}); cancel it in the dashboard")
        journal.append(JobEvent.CANCELLED if ok else JobEvent.ABANDONED, e.key, job_id=e.job_id)
    for line in done:
        logger.warning("provider jobs journal: %s", line)
    journal.compact()
    return done


def _account(t: RenderTimings, phase: str, seconds: float) -> None:
    if phase in ("queued", "throttled"):
        t.queued_s = round(t.queued_s + seconds, 3)
    elif phase == "running":
        t.running_s = round(t.running_s + seconds, 3)
