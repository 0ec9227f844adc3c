"""Render many scenes concurrently: plan all, check the budget, then run.

``render_scenes`` first plans every job locally — inputs, images, durations,
ratios, API keys, prices — and refuses the whole run before any request when
something is wrong or the estimate is above ``max_cost_usd``. Jobs then run
concurrently under a per-provider cap (``asyncio.Semaphore``). When one scene
fails, the others are stopped (their remote jobs cancelled where possible) and
the first failure is raised, naming its scene. Results come back in scene order.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from . import cost as costs
from .base import ImageHost, JobPlan, PlanContext, ProgressCallback, Provider, RunContext, recover_orphans, run_job
from .cancellation import CancelSource, RunSignal
from .download import DEFAULT_MAX_BYTES, ByteBudget, sweep_parts
from .errors import BudgetExceededError, ProviderError, ProviderInterrupted
from .http import RetryPolicy, open_session
from .jobs import RenderJob, RenderResult
from .journal import JobJournal, job_key
from .redaction import logger


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


def _registry():
    from . import PROVIDERS  # late import: the registry lives in the package's __init__

    return PROVIDERS


def plan_jobs(jobs: Sequence[RenderJob], image_host: Optional[ImageHost] = None) -> list[JobPlan]:
    """Check and price every job locally; raises on the first bad one. No network."""
    providers = _registry()
    ctx = PlanContext(image_host=image_host)
    plans = []
    for i, job in enumerate(jobs):
        field = f"jobs[{i}]"
        provider: Optional[Provider] = providers.get(job.provider)
        if provider is None:
            from ..models import AdReelInputError

            raise AdReelInputError(f"{field}.provider", f"unknown provider {job.provider!r}; choose one of {', '.join(providers)}")
        plans.append(provider.plan(job, ctx, field))
    return plans


def check_budget(plans: list[JobPlan], max_cost_usd: Optional[float], budget_note: str = "") -> RunEstimate:
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
        what = (f"the server ceiling {costs.limits.MAX_COST_USD.env} (only the operator can raise it)"
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
    return check_budget(plan_jobs(jobs, image_host), *costs.server_budget(max_cost_usd))


async def render_scenes(
    jobs: Sequence[RenderJob],
    *,
    output_dir: Union[str, Path],
    max_cost_usd: Optional[float] = None,
    on_progress: Optional[ProgressCallback] = None,
    cancel: CancelSource = None,
    image_host: Optional[ImageHost] = None,
    concurrency: Union[None, int, dict[str, int]] = None,
    poll_interval: Optional[float] = None,
    timeout: Optional[float] = 900.0,
    retry: Optional[RetryPolicy] = None,
    ca_bundle: Optional[str] = None,
    max_download_bytes: int = DEFAULT_MAX_BYTES,
    journal: bool = True,
) -> list[RenderResult]:
    """Render every job; results in scene order (ties in job order).

    - ``max_cost_usd``: refuse the run (nothing sent) when the estimate is above it or unknown; ``None`` or 0
      means the server ceiling ``ADREEL_MAX_COST_USD``, never "unlimited".
    - ``on_progress``: called (sync or async) with a ``ProgressEvent`` at each step of each job.
    - ``cancel``: an ``asyncio.Event``, ``threading.Event`` or a callable returning True on interrupt.
    - ``image_host``: path → https URL (sync or async), for providers that take hosted images only.
    - ``concurrency``: jobs at once per provider (an int for all, or ``{"runway": 2}``); default per provider.
    - ``poll_interval``: seconds between status polls (default per provider); ``timeout``: seconds per job.
    - ``journal``: keep the jobs journal so a restart resumes (same request) or cancels instead of paying twice.
    """
    if not jobs:
        return []
    plans = plan_jobs(jobs, image_host)
    estimate = check_budget(plans, *costs.server_budget(max_cost_usd))  # never above ADREEL_MAX_COST_USD
    logger.info("provider render: %s", estimate.describe())
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    signal = RunSignal(cancel)
    limits: dict[str, asyncio.Semaphore] = {}
    for p in plans:
        name = p.provider.name
        if name not in limits:
            if isinstance(concurrency, int):
                cap = concurrency
            elif isinstance(concurrency, dict) and name in concurrency:
                cap = concurrency[name]
            else:
                cap = p.provider.default_concurrency
            limits[name] = asyncio.Semaphore(max(1, int(cap)))

    async with open_session(ca_bundle) as session:
        ctx = RunContext(
            session=session, output_dir=out, signal=signal, retry=retry or RetryPolicy(), on_progress=on_progress,
            image_host=image_host, poll_interval=poll_interval, timeout=timeout, max_download_bytes=max_download_bytes,
            journal=JobJournal.for_output(out) if journal else None, download_budget=ByteBudget(),
        )
        if ctx.journal is not None:  # what a restart left: resume ours (in run_job), cancel the rest, drop .part
            sweep_parts(out)
            await recover_orphans(ctx.journal, {job_key(p) for p in plans}, ctx)

        async def one(plan: JobPlan) -> RenderResult:
            async with limits[plan.provider.name]:
                if signal.reason():
                    raise ProviderInterrupted(f"{plan.label}: scene {plan.scene_index} was not started ({signal.reason()})")
                return await run_job(plan, ctx)

        tasks = [asyncio.create_task(one(p)) for p in plans]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if pending:
                signal.trip()  # a job failed: stop the others (they cancel their remote jobs)
                await asyncio.wait(pending)
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    first: Optional[BaseException] = None
    for plan, task in zip(plans, tasks):
        exc = task.exception()
        if exc is None:
            continue
        if isinstance(exc, ProviderError):
            exc.for_scene(plan.scene_index)
        # Prefer the failure that caused the stop over the siblings it interrupted.
        if first is None or (isinstance(first, ProviderInterrupted) and not isinstance(exc, ProviderInterrupted)):
            first = exc
    if first is not None:
        raise first
    results = [t.result() for t in tasks]
    order = sorted(range(len(results)), key=lambda i: (results[i].scene_index, i))
    return [results[i] for i in order]


async def render_scene(job: RenderJob, **kwargs) -> RenderResult:
    """One job; same keyword arguments as ``render_scenes``."""
    return (await render_scenes([job], **kwargs))[0]
