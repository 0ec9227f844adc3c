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
from pathlib import Path
from typing import Optional, Sequence, Union

from . import cost as costs
from .base import ImageHost, JobPlan, ProgressCallback, RunContext, recover_orphans, run_job
from .cancellation import CancelSource, RunSignal
from .download import DEFAULT_MAX_BYTES, ByteBudget, sweep_parts
from .errors import ProviderError, ProviderInterrupted
from .http import RetryPolicy, open_session
from .jobs import RenderJob, RenderResult
from .journal import JobJournal, job_key
from .redaction import logger
from .registry import PROVIDERS
from .routes import check_budget, plan_jobs


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
            await recover_orphans(ctx.journal, {job_key(p) for p in plans}, ctx, PROVIDERS)

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
