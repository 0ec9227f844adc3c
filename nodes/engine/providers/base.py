"""The one submit → poll → download flow shared by every provider.

A provider module subclasses ``Provider`` and only *describes* its API: how to
plan a job (models, allowed durations / ratios, price), how to build the create
request, how to read a status body, where the result is, how to cancel, and how
its error bodies look. ``run_job`` does the rest, the same way for everyone:

    plan (local checks, no network) → submit (bounded retries) → poll every
    ``poll_interval`` until done (progress callback each time) → download
    (https, capped, checked) → ``RenderResult``

A stop — user interrupt, the job's timeout, or a sibling scene's failure —
is noticed within ~50 ms while waiting; the remote job is then cancelled where
the provider has a cancel endpoint, and a clear ``ProviderInterrupted`` /
``ProviderTimeoutError`` is raised (saying so when there is no cancel endpoint).
"""
from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, ClassVar, Mapping, Optional, Union

import aiohttp
from pydantic import BaseModel, ValidationError

from .. import limits
from ..models import AdReelInputError
from . import cost as costs
from .cancellation import SIBLING_FAILED, TIMEOUT, JobStop, Overtime, RunSignal, Stopped
from .download import DEFAULT_MAX_BYTES, ByteBudget, ProbeInfo, download_video
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
from .journal import JobJournal, claim, job_key, release
from .jobs import ProgressEvent, RenderJob, RenderResult, RenderTimings
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


async def _cancel_remote(plan: JobPlan, handle: Optional[JobHandle], ctx: RunContext, auth: dict) -> str:
    """Cancel the remote job if there is one; a sentence saying what happened."""
    if handle is None:
        return "nothing had been submitted yet"
    call = plan.provider.cancel_call(plan, handle)
    if call is None:
        return (f"{plan.provider.label} has no cancel endpoint: job {handle.id} keeps running on their side "
                "and may still be billed")
    policy = RetryPolicy(max_retries=2, base_delay=min(ctx.retry.base_delay, 0.5), max_delay=2.0,
                         max_retry_after=5.0, request_timeout=min(ctx.retry.request_timeout, 20.0))
    try:
        reply = await call_with_retries(ctx.session, call, label=plan.label, auth=auth, policy=policy)
    except ProviderError as exc:
        return f"cancelling job {handle.id} failed ({exc}); cancel it in the {plan.provider.label} dashboard"
    if reply.ok:
        logger.info("%s: cancelled job %s", plan.label, handle.id)
        return f"the remote job {handle.id} was cancelled"
    return (f"cancelling job {handle.id} failed (HTTP {reply.status}); cancel it in the "
            f"{plan.provider.label} dashboard")


CREATE_GRACE_S = 10.0  # on a stop during the create request, how long its answer (the job id, to cancel) is awaited
_RESUME_STALE = (400, 403, 404, 410, 422)  # a recorded job the provider no longer knows: create a new one


def _http_policy(policy: RetryPolicy) -> RetryPolicy:
    """The run's retry policy, each request bounded by the server's ADREEL_HTTP_TOTAL_SECONDS."""
    return dataclasses.replace(policy, request_timeout=min(policy.request_timeout, limits.HTTP_TOTAL_SECONDS.read()))


async def run_job(plan: JobPlan, ctx: RunContext) -> RenderResult:
    """Submit (or resume), poll and download one planned job. See the module doc."""
    provider = plan.provider
    stop = JobStop(ctx.signal, ctx.timeout)
    report = _Reporter(plan, ctx, stop)
    auth = provider.auth_headers(plan.key.reveal())
    interval = ctx.poll_interval if ctx.poll_interval is not None else provider.default_poll_interval
    policy = _http_policy(ctx.retry)
    timings = RenderTimings()
    handle: Optional[JobHandle] = None
    phase_since = time.monotonic()
    last_phase = "submitting"
    journal = ctx.journal
    key = job_key(plan) if journal is not None else ""
    claimed = bool(key) and claim(key)
    resumed_note: Optional[str] = None

    def record(event: str, **fields) -> None:
        if journal is not None and claimed:
            journal.append(event, key, provider=provider.name, model=plan.spec.id, scene_index=plan.scene_index,
                           **fields)

    def retries(call: HttpCall):
        async def on_wait(reason: str, delay: float):
            timings.retries += 1
            await report("retrying", detail=f"{call.what}: {reason}, retrying in {delay:.1f} s")

        return call_with_retries(ctx.session, call, label=plan.label, auth=auth, policy=policy, stop=stop,
                                 hint=provider.retry_hint, on_wait=on_wait)

    async def request(call: HttpCall) -> HttpReply:
        return await stop.run(retries(call))  # Interrupt / the job timeout end even a request in flight

    async def create(call: HttpCall) -> HttpReply:
        """The create request: on a stop, its answer is awaited a little so the new job can be cancelled."""
        task = asyncio.ensure_future(retries(call))
        try:
            return await stop.run(asyncio.shield(task))
        except Stopped:
            if task.done() and (task.cancelled() or isinstance(task.exception(), Stopped)):
                raise  # stopped between attempts: nothing in flight
            try:
                return await asyncio.wait_for(asyncio.shield(task), CREATE_GRACE_S)  # then cancelled below
            except Exception:
                task.cancel()
                raise Stopped(stop.reason() or "interrupted") from None

    async def submit() -> JobHandle:
        image = await _resolve_image(plan, ctx)
        call = await provider.submit_call(plan, image)
        await report("submitting")
        t0 = time.monotonic()
        record("submitting")
        try:
            reply = await create(call)
        except ProviderConnectionError as exc:
            # "cannot reach": no attempt got through, nothing can exist remotely. Any other failure
            # (a drop mid-request) may have created a job we know no id for.
            exc.maybe_billed = "cannot reach" not in exc.message
            record("create_unknown" if exc.maybe_billed else "refused")
            raise
        except Stopped:
            record("create_unknown")
            raise
        if not reply.ok:
            err = provider.error_for(reply, plan, "create")
            err.maybe_billed = reply.status >= 500  # a 4xx is a refusal; a 5xx does not prove nothing was made
            record("create_unknown" if err.maybe_billed else "refused")
            raise err
        try:
            h = provider.parse_submit(plan, reply.body)
        except ProviderError as exc:
            exc.maybe_billed = True  # accepted (2xx) but unreadable: the job probably exists
            record("create_unknown")
            raise
        cancel = provider.cancel_call(plan, h)
        record("submitted", job_id=h.id, handle_data=h.data,
               cancel=None if cancel is None else {"method": cancel.method, "url": cancel.url})
        timings.submit_s = round(time.monotonic() - t0, 3)
        logger.info("%s: scene %d submitted as job %s", plan.label, plan.scene_index, h.id)
        return h

    async def resume() -> tuple[Optional[JobHandle], Optional[PollState]]:
        """An unfinished (or undelivered) job of an earlier run for this very request: poll it, pay nothing."""
        prior = journal.lookup(key) if (journal is not None and claimed) else None
        if prior is None or not prior.resumable:
            return None, None
        h = JobHandle(prior.job_id, dict(prior.handle_data))
        report.job_id = h.id
        await report("resuming", detail=f"resuming job {h.id} from an earlier run")
        try:
            reply = await request(provider.poll_call(plan, h))
            timings.polls += 1
            st = provider.parse_poll(plan, h, reply.body) if reply.ok else None
        except ProviderProtocolError:
            st, reply = None, None
        if st is None and reply is not None and reply.status not in _RESUME_STALE:
            raise provider.error_for(reply, plan, "status", job_id=h.id)
        if st is None or st.phase in ("failed", "canceled"):
            record("stale", job_id=h.id)
            logger.info("%s: recorded job %s can no longer be resumed; submitting a new one", plan.label, h.id)
            report.job_id = None
            return None, None
        record("resumed", job_id=h.id, handle_data=h.data, cancel=prior.cancel)
        logger.info("%s: scene %d resumes job %s from an earlier run instead of paying for a new one",
                    plan.label, plan.scene_index, h.id)
        return h, st

    try:
        stop.raise_if_stopped()
        provider.require_enabled()  # checked again here: run_job may be called without planning through the node
        handle, state = await resume()
        if handle is not None:
            resumed_note = (f"resumed job {handle.id}, created by an earlier run (ComfyUI restarted): no new job "
                            "was paid for")
        else:
            handle = await submit()
        report.job_id = handle.id
        stop.raise_if_stopped()  # a stop during the create: the job exists now, and is cancelled below
        phase_since, last_phase = time.monotonic(), "queued"
        while True:
            if state is None:
                await stop.sleep(interval)
                reply = await request(provider.poll_call(plan, handle))
                timings.polls += 1
                if not reply.ok:
                    raise provider.error_for(reply, plan, "status", job_id=handle.id)
                state = provider.parse_poll(plan, handle, reply.body)
            now = time.monotonic()
            if state.phase != last_phase:
                _account(timings, last_phase, now - phase_since)
                phase_since, last_phase = now, state.phase
                if state.phase == "running" and report.running_since is None:
                    report.running_since = now
            if state.phase == "succeeded":
                break
            if state.phase == "failed":
                err = state.error or ProviderJobFailed(f"{plan.label}: job {handle.id} failed ({state.raw_status})")
                err.job_id = err.job_id or handle.id
                raise err
            if state.phase == "canceled":
                raise ProviderJobFailed(
                    f"{plan.label}: job {handle.id} ended as {state.raw_status} on the provider's side "
                    "(cancelled there, or its deadline passed); queue the scene again",
                    provider=provider.name, job_id=handle.id,
                )
            await report(state.phase, fraction=state.fraction, detail=state.raw_status)
            state = None
        _account(timings, last_phase, time.monotonic() - phase_since)
        url = await stop.run(provider.result_url(plan, handle, state, request))
        await report("downloading")
        stem = ctx.output_dir / (
            f"scene{plan.scene_index:03d}_{provider.name}_{_safe_name(plan.spec.id)}_{_safe_name(handle.id, 40)}"
        )
        left = stop.remaining()
        try:
            dl = await download_video(
                ctx.session, url, stem, label=plan.label,
                auth=auth if provider.download_with_key else None,
                auth_origin=plan.base_url if provider.download_with_key else None,
                max_bytes=ctx.max_download_bytes, policy=ctx.retry, stop=stop,
                total_seconds=min(limits.MAX_DOWNLOAD_SECONDS.read(), left) if left is not None else None,
                budget=ctx.download_budget,
            )
        except ProviderError as exc:
            exc.job_id = exc.job_id or handle.id
            record("download_failed", job_id=handle.id)  # done and paid: a re-queue downloads it again
            raise
        timings.download_s = round(dl.seconds, 3)
        try:
            actual = provider.actual_cost(plan, state, dl.probe)
        except (ValueError, TypeError, ArithmeticError):  # a non-finite or negative figure from a response
            actual = costs.CostEstimate(None, "unknown: the provider's reported length could not be priced")
        timings.total_s = round(time.monotonic() - stop.started, 3)
        notes = plan.notes + dl.notes + ([resumed_note] if resumed_note else [])
        result = RenderResult(
            scene_index=plan.scene_index, provider=provider.name, model=plan.spec.id, job_id=handle.id,
            path=str(dl.path), bytes=dl.bytes, sha256=dl.sha256, container=dl.container,
            requested_duration=plan.duration, scene_duration=plan.job.scene.duration,
            duration=dl.probe.duration if dl.probe else None,
            width=dl.probe.width if dl.probe else None, height=dl.probe.height if dl.probe else None,
            estimated_cost_usd=plan.cost.usd, actual_cost_usd=actual.usd, cost_basis=redact(actual.basis),
            result_host=dl.host, timings=timings, notes=[redact(n) for n in notes],
        )
        record("downloaded", job_id=handle.id, sha256=dl.sha256, bytes=dl.bytes)
        await report("done", fraction=1.0, cost=actual.usd)
        return result
    except Stopped as stopped:
        outcome = await _cancel_remote(plan, handle, ctx, auth)
        if handle is not None:
            # cancelled: closed. No cancel endpoint (or it failed): left open, so a re-queue resumes the job
            # instead of paying for a new one.
            record("cancelled" if outcome.startswith("the remote job") else "stopped", job_id=handle.id)
        await report("cancelled", detail=f"stopped ({stopped.reason})")
        if stopped.reason == TIMEOUT:
            raise ProviderTimeoutError(
                f"{plan.label}: scene {plan.scene_index} did not finish within {ctx.timeout:g} s; {outcome}. "
                "Raise the timeout if the provider is just slow.",
                provider=provider.name, job_id=handle.id if handle else None,
            ) from None
        why = "another scene failed" if stopped.reason == SIBLING_FAILED else "the run was interrupted"
        raise ProviderInterrupted(
            f"{plan.label}: scene {plan.scene_index} stopped because {why}; {outcome}.",
            provider=provider.name, job_id=handle.id if handle else None,
        ) from None
    except ProviderError as exc:
        if handle is not None and not isinstance(exc, ProviderDownloadError):
            record("failed", job_id=handle.id)
        raise
    except asyncio.CancelledError:
        if handle is not None:
            try:
                outcome = await asyncio.shield(_cancel_remote(plan, handle, ctx, auth))
                record("cancelled" if outcome.startswith("the remote job") else "stopped", job_id=handle.id)
            except BaseException:
                pass
        raise
    finally:
        if claimed:
            release(key)


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
            journal.append("abandoned", e.key, job_id=None)
            done.append(f"{what}: its create request never answered; it may have been billed — check the dashboard")
            continue
        if provider is None or not e.cancel or not isinstance(e.cancel.get("url"), str):
            journal.append("abandoned", e.key, job_id=e.job_id)
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
        journal.append("cancelled" if ok else "abandoned", e.key, job_id=e.job_id)
    for line in done:
        logger.warning("provider jobs journal: %s", line)
    journal.compact()
    return done


def _account(t: RenderTimings, phase: str, seconds: float) -> None:
    if phase in ("queued", "throttled"):
        t.queued_s = round(t.queued_s + seconds, 3)
    elif phase == "running":
        t.running_s = round(t.running_s + seconds, 3)
