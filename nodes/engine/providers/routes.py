"""Routing scenes to providers — or to the local camera move — under one budget.

The node layer describes, per scene, an ordered *chain* of candidates: a
provider and model (``runway:gen4_turbo``) or ``camera`` (the local camera move
over the key image, which costs nothing). ``plan_routes`` then works out,
before anything is sent:

1. each candidate's plan for each scene — the provider's own local checks
   (model limits, key image, API key, image hosting) and price; a candidate
   that cannot take a scene is skipped with the reason;
2. the order in which a scene tries its candidates, from the quality
   preference:

   - ``best``: the chain's order (list the best model first);
   - ``balanced``: the chain's order, except that a scene the camera move
     serves as well — a call-to-action card or a ``static`` camera — takes
     ``camera`` first when the chain has it;
   - ``budget``: as ``balanced``, and the providers cheapest first;

3. the pick: scenes in order, each takes the first candidate that is usable
   and whose estimate fits what is left of ``max_cost_usd``. A price the
   tables do not know cannot be checked against a budget, so such a
   candidate is skipped when there is one.

``strict=True`` (one provider, no fallback) keeps the plain engine semantics:
the first problem raises as it is, and a run over budget raises the engine's
``BudgetExceededError`` naming every scene's price. Nothing has been sent then.

A list of ``RenderJob`` (one provider and model each) is the same thing with
one candidate per scene: ``plan_routes([SceneRequest.for_job(j) for j in jobs],
strict=True)``.

``render_routes`` runs the picks concurrently under a per-provider cap (an
``asyncio.Semaphore`` per provider) with the engine's ``run_job``. A failed
scene does not stop the others when it has somewhere to fall back to: it moves on to its next usable
candidate that still fits the budget (a job that was submitted may have been
billed, so its estimate stays counted). Only when a scene has no candidate
left does the run stop: the other jobs are cancelled where the provider can,
and that failure is raised naming its scene. A user interrupt stops everything
at once (remote jobs cancelled). Results come back in scene order; a scene
that ends on ``camera`` comes back without a ``ClipResult`` and the caller
renders the camera move.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from .. import limits
from ..models import AdReelInputError, StoryboardScene
from . import cost as costs
from .cost import server_budget
from .base import (
    ImageHost, JobPlan, PlanContext, ProgressCallback, Provider, RunContext, notify, recover_orphans, run_job,
)
from .cancellation import CancelSource, RunSignal
from .download import DEFAULT_MAX_BYTES, ByteBudget, sweep_parts
from .errors import (
    BudgetExceededError,
    MissingApiKeyError,
    ProviderConfigError,
    ProviderError,
    ProviderInterrupted,
)
from .http import RetryPolicy, open_session
from .jobs import ClipResult, ProgressEvent, RenderJob
from .journal import JobJournal, job_key
from .log import logger
from ..cloud.redaction import redact
from .registry import PROVIDERS

CAMERA = "camera"
CAMERA_ALIASES = ("camera", "camera move", "camera_move", "local", "motion")
QUALITIES = ("budget", "balanced", "best")

# Used by provider=auto when the chain is left empty. Candidates without a key are skipped at planning.
DEFAULT_CHAINS = {
    "best": "veo:veo-3.1-generate-preview, runway:gen4_turbo, luma:ray-2, camera",
    "balanced": "runway:gen4_turbo, luma:ray-flash-2, fal:fal-ai/stable-video, camera",
    "budget": "fal:fal-ai/stable-video, luma:ray-flash-2, runway:gen4_turbo, camera",
}
_CHAIN_SPLIT = re.compile(r"(?<!\s)\s*(?:,|;|\n|->|→|=>)\s*")  # a separator starts where a space run starts: linear


# --------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class Candidate:
    """``provider:model``, or the local camera move."""

    provider: str
    model: str = ""

    @property
    def is_camera(self) -> bool:
        return self.provider == CAMERA

    def __str__(self) -> str:
        return CAMERA if self.is_camera else f"{self.provider}:{self.model}"


CAMERA_MOVE = Candidate(CAMERA)


def parse_chain(text: str, field_name: str = "chain") -> list[Candidate]:
    """``"runway:gen4_turbo, luma:ray-flash-2, camera"`` → candidates; a clear error naming the bad item.

    Items are separated by commas, semicolons, new lines or arrows (``->``). A
    Replicate model keeps its ``owner/name:version`` (only the first ``:``
    separates the provider).
    """
    providers = PROVIDERS
    out: list[Candidate] = []
    for k, raw in enumerate(_CHAIN_SPLIT.split(str(text or "").strip())):
        item = raw.strip()
        if not item:
            continue
        if item.lower() in CAMERA_ALIASES:
            cand = CAMERA_MOVE
        else:
            name, sep, model = item.partition(":")
            name, model = name.strip().lower(), model.strip()
            if name not in providers:
                raise AdReelInputError(
                    field_name,
                    f"entry {k + 1} is not provider:model or camera (providers: {', '.join(providers)}; "
                    "e.g. \"runway:gen4_turbo, luma:ray-flash-2, camera\")",
                )
            if not sep or not model:
                example = next(iter(providers[name].models), "owner/name")
                raise AdReelInputError(field_name, f"entry {k + 1}: name the model too, e.g. {name}:{example}")
            providers[name].model_spec(model, field_name)  # raises, listing the provider's models
            cand = Candidate(name, model)
        if cand not in out:
            out.append(cand)
    if not out:
        raise AdReelInputError(field_name, "is empty: list provider:model items and/or camera")
    return out


# --------------------------------------------------------------------------- planning


@dataclass
class RunEstimate:
    """The priced plan of a run; secret-free."""

    total_usd: float  # sum of the known estimates
    unknown: int  # jobs whose price is unknown
    max_cost_usd: Optional[float]
    jobs: list[dict]

    @property
    def within_budget(self) -> bool:
        if self.max_cost_usd is None:
            return True
        return self.unknown == 0 and self.total_usd <= self.max_cost_usd + 1e-9

    def describe(self) -> str:
        text = f"estimated ${self.total_usd:.2f} for {len(self.jobs)} scene(s)"
        if self.unknown:
            text += f" plus {self.unknown} of unknown price"
        if self.max_cost_usd is not None:
            text += f" (budget ${self.max_cost_usd:.2f})"
        return text


def plan_jobs(jobs: Sequence[RenderJob], image_host: Optional[ImageHost] = None) -> list[JobPlan]:
    """Check and price every job locally; raises on the first bad one. No network."""
    ctx = PlanContext(image_host=image_host)
    plans = []
    for i, job in enumerate(jobs):
        field_name = f"jobs[{i}]"
        provider: Optional[Provider] = PROVIDERS.get(job.provider)
        if provider is None:
            raise AdReelInputError(f"{field_name}.provider",
                                   f"unknown provider; choose one of {', '.join(PROVIDERS)}")
        plans.append(provider.plan(job, ctx, field_name))
    return plans


def check_budget(plans: list[JobPlan], max_cost_usd: Optional[float], budget_note: str = "") -> RunEstimate:
    """Price ``plans`` against ``max_cost_usd``; ``BudgetExceededError`` (naming every scene) when over it or unknown."""
    total, unknown = costs.summarize([p.cost for p in plans])
    est = RunEstimate(total_usd=total, unknown=unknown, max_cost_usd=max_cost_usd, jobs=[p.summary() for p in plans])
    if max_cost_usd is None:
        return est
    if unknown:
        names = sorted({p.spec.id for p in plans if p.cost.usd is None})
        raise BudgetExceededError(
            f"cannot check the ${max_cost_usd:.2f} budget: the price of {', '.join(names)} is unknown "
            f"({next(p.cost.basis for p in plans if p.cost.usd is None)}). Nothing was sent."
        )
    if total > max_cost_usd + 1e-9:
        lines = ", ".join(f"scene {p.scene_index} ${p.cost.usd:.2f}" for p in plans)
        what = (f"the server ceiling {limits.MAX_COST_USD.env} (only the operator can raise it)"
                if budget_note else "raise max_cost_usd")
        raise BudgetExceededError(
            f"the run would cost about ${total:.2f}, above the budget of ${max_cost_usd:.2f}{budget_note} ({lines}). "
            f"Nothing was sent: {what}, pick a cheaper model, or render fewer / shorter scenes."
        )
    return est


def estimate_scenes(
    jobs: Sequence[RenderJob], *, image_host: Optional[ImageHost] = None, max_cost_usd: Optional[float] = None
) -> RunEstimate:
    """Plan and price ``jobs`` without sending anything; raises ``BudgetExceededError`` over budget."""
    return check_budget(plan_jobs(jobs, image_host), *server_budget(max_cost_usd))



@dataclass
class SceneRequest:
    """One scene to route: what every candidate's job is built from."""

    scene: StoryboardScene
    aspect_ratio: str
    image_path: Optional[str] = None
    seed: Optional[int] = None
    options: Mapping[str, Any] = field(default_factory=dict)  # shared by all providers
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # {"heygen": {...}}
    prompt: Optional[str] = None  # default: built from the scene
    negative_prompt: Optional[str] = None  # default: the scene's
    chain: Sequence[Candidate] = ()  # this scene's own candidates; empty: the chain given to plan_routes

    @classmethod
    def for_job(cls, job: RenderJob) -> "SceneRequest":
        """A ``RenderJob`` as a request whose one candidate is the job's provider and model."""
        return cls(scene=job.scene, aspect_ratio=job.aspect_ratio, image_path=job.image_path, seed=job.seed,
                   options=dict(job.options), prompt=job.prompt, negative_prompt=job.negative_prompt,
                   chain=(Candidate(job.provider, job.model),))

    def job_for(self, cand: Candidate) -> RenderJob:
        opts = {**dict(self.options), **dict(self.provider_options.get(cand.provider) or {})}
        return RenderJob(scene=self.scene, provider=cand.provider, model=cand.model, image_path=self.image_path,
                         aspect_ratio=self.aspect_ratio, prompt=self.prompt, negative_prompt=self.negative_prompt,
                         seed=self.seed, options=opts)


@dataclass
class Option:
    """One candidate for one scene: its plan, or why it cannot be used."""

    candidate: Candidate
    plan: Optional[JobPlan] = None
    problem: Optional[str] = None
    error: Optional[BaseException] = field(default=None, repr=False)
    over_budget: bool = False

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def cost(self) -> Optional[float]:
        return 0.0 if self.candidate.is_camera else (self.plan.cost.usd if self.plan else None)


@dataclass
class SceneRoute:
    position: int  # place in the scene list
    scene: StoryboardScene
    options: list[Option]
    chosen: Optional[int] = None
    notes: list[str] = field(default_factory=list)

    @property
    def pick(self) -> Option:
        return self.options[self.chosen]


@dataclass
class RoutePlan:
    routes: list[SceneRoute]
    max_cost_usd: Optional[float]
    quality: str
    budget_note: str = ""  # set when the server ceiling (ADREEL_MAX_COST_USD) is what bounds the run

    @property
    def total_usd(self) -> float:
        return round(sum(r.pick.cost or 0.0 for r in self.routes), 4)

    @property
    def paid(self) -> list[SceneRoute]:
        return [r for r in self.routes if not r.pick.candidate.is_camera]

    def describe(self) -> str:
        """The estimate shown before anything is sent: total, budget, then one line per scene."""
        n = len(self.routes)
        head = f"estimate ${self.total_usd:.2f} for {n} scene(s)"
        head += f" (budget ${self.max_cost_usd:.2f}{self.budget_note})" if self.max_cost_usd is not None else " (no budget cap)"
        lines = [head]
        for r in self.routes:
            opt = r.pick
            if opt.candidate.is_camera:
                lines.append(f"scene {r.scene.index}: camera move, $0.00")
            else:
                p = opt.plan
                dur = f", {p.duration:g} s" if p.duration else ""
                lines.append(f"scene {r.scene.index}: {opt.candidate}{dur}, ${p.cost.usd:.2f}")
            for skipped in r.options[: r.chosen]:
                if skipped.problem:
                    lines.append(f"  skipped {skipped.candidate}: {skipped.problem}")
        return "\n".join(lines)

    def summary(self) -> list[dict]:
        """Secret-free, JSON-ready: per scene the pick and the candidates skipped."""
        out = []
        for r in self.routes:
            opt = r.pick
            out.append({
                "scene_index": r.scene.index,
                "route": str(opt.candidate),
                "estimated_cost_usd": opt.cost,
                "plan": opt.plan.summary() if opt.plan else None,
                "skipped": [{"candidate": str(o.candidate), "reason": o.problem}
                            for o in r.options[: r.chosen] if o.problem],
            })
        return out


def _order(scene: StoryboardScene, chain: Sequence[Candidate], quality: str) -> list[Candidate]:
    order = list(chain)
    if quality in ("balanced", "budget") and CAMERA_MOVE in order:
        if scene.segment.lower() == "cta" or scene.camera == "static":
            order.remove(CAMERA_MOVE)
            order.insert(0, CAMERA_MOVE)
    return order


def plan_routes(
    requests: Sequence[SceneRequest],
    chain: Sequence[Candidate] = (),
    *,
    quality: str = "best",
    max_cost_usd: Optional[float] = None,
    image_host: Optional[ImageHost] = None,
    image_host_problem: Optional[str] = None,
    strict: bool = False,
    allowance=None,
) -> RoutePlan:
    """Plan, price and pick a candidate for every scene. No network. See the module doc.

    ``chain``: every scene's candidates, unless a request names its own (``SceneRequest.chain``).
    ``allowance``: the prompt's share of the ceiling (``budget.Allowance``): the budget is never more than
    what the prompt's other nodes left of it. The caller reserves the plan's total there.
    """
    if quality not in QUALITIES:
        raise AdReelInputError("quality", f"must be one of {', '.join(QUALITIES)}")
    max_cost_usd, budget_note = server_budget(max_cost_usd)
    if allowance is not None and allowance.used() > 0 and allowance.left() < max_cost_usd:
        max_cost_usd = allowance.left()
        budget_note = f", what is left of the prompt's allowance ({allowance.describe_used()} in its other nodes)"
    ctx = PlanContext(image_host=image_host)
    routes: list[SceneRoute] = []
    for pos, req in enumerate(requests):
        where = f"scenes[{pos}]"
        own = req.chain or chain
        if not own:
            raise AdReelInputError("chain", "is empty")
        options: list[Option] = []
        for cand in _order(req.scene, own, quality):
            if cand.is_camera:
                options.append(Option(cand))
                continue
            try:
                provider = PROVIDERS.get(cand.provider)
                if provider is None:
                    raise AdReelInputError(f"{where}.provider", "unknown provider; "
                                                                f"choose one of {', '.join(PROVIDERS)}")
                plan = provider.plan(req.job_for(cand), ctx, where)
            except (AdReelInputError, ProviderError) as exc:
                exc = _with_hosting_note(exc, image_host, image_host_problem)
                if strict:
                    raise exc from None
                options.append(Option(cand, problem=_reason(exc), error=exc))
                continue
            options.append(Option(cand, plan=plan))
        if quality == "budget":
            paid = [o for o in options if not o.candidate.is_camera]
            ranked = sorted(paid, key=lambda o: (o.cost is None, o.cost if o.cost is not None else 0.0))
            it = iter(ranked)
            options = [o if o.candidate.is_camera else next(it) for o in options]
        routes.append(SceneRoute(pos, req.scene, options))

    plan = RoutePlan(routes, max_cost_usd, quality, budget_note)
    if strict:
        for r in routes:
            r.chosen = 0
        check_budget([r.pick.plan for r in routes], max_cost_usd, budget_note)
        return plan

    left = None if max_cost_usd is None else float(max_cost_usd)
    for r in routes:
        for k, opt in enumerate(r.options):
            if not opt.usable:
                continue
            if opt.candidate.is_camera:
                r.chosen = k
                break
            cost = opt.cost
            if left is not None and cost is None:
                opt.problem = f"price unknown ({opt.plan.cost.basis}), so it cannot be checked against the budget"
                opt.over_budget = True
                continue
            if left is not None and cost > left + 1e-9:
                opt.problem = f"estimated ${cost:.2f}, more than the ${left:.2f} left of the ${max_cost_usd:.2f} budget"
                opt.over_budget = True
                continue
            r.chosen = k
            if left is not None:
                left -= cost
            break
        if r.chosen is None:
            raise _no_candidate(r, max_cost_usd, budget_note)
        if r.chosen > 0:
            r.notes.extend(f"{o.candidate} skipped: {o.problem}" for o in r.options[: r.chosen] if o.problem)
    return plan


def _reason(exc: BaseException) -> str:
    return redact(str(exc))


def _with_hosting_note(exc, image_host, note):
    if (image_host is None and note and isinstance(exc, ProviderConfigError) and not isinstance(exc, MissingApiKeyError)
            and "image host" in str(exc)):
        return ProviderConfigError(f"{exc} Storage: {note}", provider=exc.provider)
    return exc


def _no_candidate(r: SceneRoute, max_cost_usd: Optional[float], budget_note: str = "") -> BaseException:
    reasons = "; ".join(f"{o.candidate}: {o.problem}" for o in r.options)
    text = f"scene {r.scene.index} cannot be rendered by any candidate ({reasons}). Nothing was sent."
    if all(o.over_budget for o in r.options):
        raise_it = (f"The run is bounded by the server ceiling {limits.MAX_COST_USD.env}; the operator sets it."
                    if budget_note else "Raise max_cost_usd, or add camera to the chain "
                    "(fallback: camera move).")
        return BudgetExceededError(f"{text} {raise_it}")
    if len(r.options) == 1 and r.options[0].error is not None:
        return r.options[0].error  # the one candidate's own error, unchanged
    return ProviderConfigError(text)


# --------------------------------------------------------------------------- running


@dataclass
class RouteAttempt:
    candidate: str
    outcome: str  # "rendered" | "failed"
    reason: str = ""
    job_id: Optional[str] = None
    estimated_cost_usd: Optional[float] = None

    def as_dict(self) -> dict:
        return {"candidate": self.candidate, "outcome": self.outcome, "reason": self.reason,
                "job_id": self.job_id, "estimated_cost_usd": self.estimated_cost_usd}


@dataclass
class SceneOutcome:
    """How a scene ended: a provider clip (``result``) or the camera move (``result is None``)."""

    scene_index: int
    route: str
    result: Optional[ClipResult] = None
    position: int = 0  # the scene's place in the requests given to plan_routes
    attempts: list[RouteAttempt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def is_camera(self) -> bool:
        return self.result is None

    def record(self) -> dict:
        """For ``RenderManifest.providers``: the engine's record plus the route and attempts."""
        base = self.result.manifest_entry() if self.result is not None else {
            "scene_index": self.scene_index, "provider": CAMERA, "model": "camera move", "job_id": None,
            "estimated_cost_usd": 0.0, "actual_cost_usd": 0.0}
        return {**base, "route": self.route, "attempts": [a.as_dict() for a in self.attempts],
                "route_notes": list(self.notes)}


class _Ledger:
    """What the run may still spend: the budget minus the estimates committed so far — and, with the
    prompt's ``allowance``, never more than the prompt's other nodes left (the plan's total was reserved
    there by the caller; releases and fallbacks move the prompt's reservation too)."""

    def __init__(self, plan: RoutePlan, allowance=None):
        self.max = plan.max_cost_usd
        self.committed = plan.total_usd
        self.allowance = allowance

    def release(self, usd: Optional[float]) -> None:
        self.committed -= usd or 0.0
        if self.allowance is not None:
            self.allowance.release(usd or 0.0)

    def fits(self, usd: Optional[float]) -> bool:
        if self.allowance is not None and (usd is None or usd > self.allowance.left() + 1e-9):
            return False
        if self.max is None:
            return True
        return usd is not None and self.committed + usd <= self.max + 1e-9

    def commit(self, usd: Optional[float]) -> None:
        if self.allowance is not None:
            self.allowance.reserve(usd or 0.0, f"a fallback estimated at ${usd or 0:.2f}")
        self.committed += usd or 0.0

    def left(self) -> Optional[float]:
        return None if self.max is None else max(0.0, self.max - self.committed)


@dataclass
class RenderSettings:
    """How ``render_routes`` runs a plan: where the clips go, who is told, what stops it, and its limits."""

    output_dir: Union[str, Path]
    on_progress: Optional[ProgressCallback] = None  # called (sync or async) with each job's ``ProgressEvent``
    cancel: CancelSource = None  # an ``asyncio.Event``, ``threading.Event`` or a callable True on interrupt
    image_host: Optional[ImageHost] = None  # path → https URL (sync or async), for hosted-image-only providers
    concurrency: Union[None, int, dict[str, int]] = None  # jobs at once per provider: one int, or {"runway": 2}
    poll_interval: Optional[float] = None  # seconds between status polls; None: each provider's default
    timeout: Optional[float] = 900.0  # seconds per job
    retry: Optional[RetryPolicy] = None
    ca_bundle: Optional[str] = None
    max_download_bytes: int = DEFAULT_MAX_BYTES
    journal: bool = True  # keep the jobs journal (``journal.py``): a restart resumes or cancels, never pays twice
    allowance: Any = None  # the prompt's share of ADREEL_MAX_COST_USD that plan_routes' total was reserved in

    def cap(self, provider: Provider) -> int:
        if isinstance(self.concurrency, int):
            return self.concurrency
        if isinstance(self.concurrency, dict) and provider.name in self.concurrency:
            return self.concurrency[provider.name]
        return provider.default_concurrency


async def render_routes(plan: RoutePlan, settings: RenderSettings) -> list[SceneOutcome]:
    """Run a ``plan_routes`` plan; outcomes in scene order (``SceneOutcome.position`` is each scene's place in
    the requests). See the module doc."""
    if not plan.routes:
        return []
    out = Path(settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    logger.info("provider render: %s", plan.describe().replace("\n", " | "))
    if not plan.paid:  # nothing to send: no session, no network
        return _in_scene_order([SceneOutcome(r.scene.index, CAMERA, notes=list(r.notes), position=r.position)
                                for r in plan.routes])
    signal = RunSignal(settings.cancel)
    async with open_session(settings.ca_bundle) as session:
        ctx = RunContext(
            session=session, output_dir=out, signal=signal, retry=settings.retry or RetryPolicy(),
            on_progress=settings.on_progress, image_host=settings.image_host, poll_interval=settings.poll_interval,
            timeout=settings.timeout, max_download_bytes=settings.max_download_bytes,
            journal=JobJournal.for_output(out) if settings.journal else None, download_budget=ByteBudget(),
        )
        if ctx.journal is not None:  # what a restart left: resume ours (in run_job), cancel the rest, drop .part
            sweep_parts(out)
            await recover_orphans(ctx.journal, {job_key(o.plan) for r in plan.routes for o in r.options
                                                if o.plan is not None}, ctx, PROVIDERS)
        tasks = await _SceneRunner(plan, settings, ctx).run_all()
    _raise_first_failure(plan, tasks)
    return _in_scene_order([t.result() for t in tasks])


class _SceneRunner:
    """Runs every scene's route at once: its pick, then its fallbacks, under per-provider caps and one ledger."""

    def __init__(self, plan: RoutePlan, settings: RenderSettings, ctx: RunContext):
        self.plan, self.settings, self.ctx = plan, settings, ctx
        self.ledger = _Ledger(plan, settings.allowance)
        self.caps: dict[str, asyncio.Semaphore] = {}

    async def run_all(self) -> list[asyncio.Task]:
        """One task per scene; the first scene that runs out of candidates stops the others."""
        tasks = [asyncio.create_task(self.scene(r)) for r in self.plan.routes]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if pending:
                self.ctx.signal.trip()  # a scene ran out of candidates: stop the others (they cancel their jobs)
                await asyncio.wait(pending)
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return tasks

    async def scene(self, route: SceneRoute) -> SceneOutcome:
        outcome = SceneOutcome(route.scene.index, "", notes=list(route.notes), position=route.position)
        k = route.chosen
        while True:
            opt = route.options[k]
            if opt.candidate.is_camera:
                outcome.route = CAMERA
                return outcome
            try:
                result = await self._render(opt.plan)
            except ProviderInterrupted:
                raise
            except ProviderError as exc:
                k = await self._fall_back(route, k, exc, outcome)  # raises when nothing is left
                continue
            outcome.attempts.append(RouteAttempt(str(opt.candidate), "rendered", "", result.job_id, opt.cost))
            outcome.route = str(opt.candidate)
            outcome.result = result
            return outcome

    async def _render(self, jp: JobPlan) -> ClipResult:
        async with self._cap(jp.provider):
            reason = self.ctx.signal.reason()
            if reason:
                raise ProviderInterrupted(f"{jp.label}: scene {jp.scene_index} was not started ({reason})")
            return await run_job(jp, self.ctx)

    async def _fall_back(self, route: SceneRoute, k: int, exc: ProviderError, outcome: SceneOutcome) -> int:
        """After candidate ``k`` failed: the next one that fits what is left of the budget; re-raises ``exc``
        when there is none."""
        opt = route.options[k]
        exc.for_scene(route.scene.index)
        outcome.attempts.append(RouteAttempt(str(opt.candidate), "failed", str(exc), exc.job_id, opt.cost))
        if exc.job_id is None and not exc.maybe_billed:  # refused outright: nothing billed
            self.ledger.release(opt.cost)
        elif exc.job_id is None:
            outcome.notes.append(f"{opt.candidate}: the create request failed without a clear refusal, so the job "
                                 f"may exist and be billed; its estimate ${opt.cost or 0:.2f} stays counted against "
                                 "the budget")
        nxt = _next_option(route, k, self.ledger)
        if nxt is None:
            raise exc
        target = route.options[nxt].candidate
        self.ledger.commit(route.options[nxt].cost)
        outcome.notes.append(f"{opt.candidate} failed, fell back to {target}: {exc}")
        await self._note(route, f"scene {route.scene.index}: {opt.candidate} failed ({exc}); falling back to {target}")
        return nxt

    def _cap(self, provider: Provider) -> asyncio.Semaphore:
        if provider.name not in self.caps:
            self.caps[provider.name] = asyncio.Semaphore(max(1, int(self.settings.cap(provider))))
        return self.caps[provider.name]

    async def _note(self, route: SceneRoute, text: str, status: str = "fallback") -> None:
        logger.info("scene %d: %s", route.scene.index, text)
        await notify(self.settings.on_progress, ProgressEvent(
            scene_index=route.scene.index, provider="", model="", job_id=None, status=status, elapsed=0.0,
            remaining=None, fraction=None, cost_usd=None, message=redact(text)))


def _raise_first_failure(plan: RoutePlan, tasks: list[asyncio.Task]) -> None:
    """Raise the failure that stopped the run, preferring it over the siblings it interrupted."""
    first: Optional[BaseException] = None
    for route, task in zip(plan.routes, tasks):
        exc = task.exception()
        if exc is None:
            continue
        if isinstance(exc, ProviderError):
            exc.for_scene(route.scene.index)
        if first is None or (isinstance(first, ProviderInterrupted) and not isinstance(exc, ProviderInterrupted)):
            first = exc
    if first is not None:
        raise first


def _in_scene_order(outcomes: list[SceneOutcome]) -> list[SceneOutcome]:
    return sorted(outcomes, key=lambda o: (o.scene_index, o.position))


def _next_option(route: SceneRoute, k: int, ledger: _Ledger) -> Optional[int]:
    for j in range(k + 1, len(route.options)):
        opt = route.options[j]
        if opt.candidate.is_camera:
            return j
        if opt.plan is None:
            continue  # could not be planned (its problem is already in the plan's notes)
        if ledger.fits(opt.cost):
            return j
        route.notes.append(f"{opt.candidate} not tried: estimated ${opt.cost or 0:.2f}, over what is left of the budget")
    return None
