"""Cloud video providers: scene (+ key image) → local clip.

Luma (ray-2, ray-flash-2), Runway (gen4_turbo, veo3), HeyGen (avatar speaking
the narration), fal.ai (stable-video, Kling v2.1 standard / pro), Replicate
(any ``owner/name[:version]``) and Google Veo (Gemini API), all through the
one submit → poll → download flow in ``base``.

Entry points for the node layer (``routes``)::

    estimate = estimate_scenes(jobs, max_cost_usd=5.0)          # no network
    plan = plan_routes([SceneRequest.for_job(j) for j in jobs], strict=True, max_cost_usd=5.0)  # no network
    outcomes = await render_routes(plan, RenderSettings(output_dir=..., on_progress=cb, cancel=is_interrupted))

``plan_routes`` also takes one chain of candidates for every scene (``provider=auto``,
a fallback to the local camera move); ``registry.PROVIDERS`` names every provider.

Environment: API keys ``LUMA_API_KEY`` (or ``LUMAAI_API_KEY``),
``RUNWAY_API_KEY`` (or ``RUNWAYML_API_SECRET``), ``HEYGEN_API_KEY``,
``FAL_KEY``, ``REPLICATE_API_TOKEN``, ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``),
or the secrets file (``ADREEL_SECRETS_FILE``, default
``~/.config/adreel/secrets.json``); base URLs ``LUMA_BASE_URL``,
``RUNWAY_BASE_URL``, ``HEYGEN_BASE_URL``, ``FAL_BASE_URL``,
``REPLICATE_BASE_URL``, ``GEMINI_BASE_URL`` (https only); extra trusted CAs
``ADREEL_CA_BUNDLE``; ffprobe ``ADREEL_FFPROBE``.

Server-side ceilings (``nodes/engine/limits.py``), which no widget can raise:
paid providers run only with ``ADREEL_PAID_PROVIDERS=1``; a run never spends
more than ``ADREEL_MAX_COST_USD`` (a widget budget of 0 means that ceiling, not
"unlimited"); API calls and downloads are bounded in time and size.
"""
from __future__ import annotations

from .base import JobPlan, ModelSpec, Provider, choose_duration, run_job
from .cost import CostEstimate
from .errors import (
    BudgetExceededError,
    MissingApiKeyError,
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
from .fal import FalProvider
from .heygen import HeyGenProvider
from .http import CA_BUNDLE_ENV, RetryPolicy
from .jobs import ClipResult, ProgressEvent, RenderJob, RenderTimings
from .luma import LumaProvider
from .replicate import ReplicateProvider
from .registry import PROVIDERS, get_provider, list_models, provider_info
from .routes import (
    RenderSettings,
    RoutePlan,
    RunEstimate,
    SceneOutcome,
    SceneRequest,
    check_budget,
    estimate_scenes,
    plan_jobs,
    plan_routes,
    render_routes,
)
from .runway import RunwayProvider
from .secrets import SECRETS_FILE_ENV, ApiKey, get_api_key
from .veo import VeoProvider

__all__ = [
    "ApiKey", "BudgetExceededError", "CA_BUNDLE_ENV", "CostEstimate", "JobPlan", "MissingApiKeyError", "ModelSpec", "PaidProvidersDisabledError",
    "PROVIDERS", "ProgressEvent", "Provider", "ProviderAuthError", "ProviderConfigError", "ProviderConnectionError",
    "ProviderCreditError", "ProviderDownloadError", "ProviderError", "ProviderForbiddenError", "ProviderInterrupted",
    "ProviderJobFailed", "ProviderProtocolError", "ProviderRateLimitError", "ProviderRequestError",
    "ProviderSafetyError", "ProviderServerError", "ProviderTimeoutError", "RenderJob",
    "ClipResult", "RenderSettings", "RenderTimings", "RetryPolicy", "RoutePlan", "RunEstimate", "SceneOutcome", "SceneRequest", "SECRETS_FILE_ENV", "choose_duration",
    "estimate_scenes", "get_api_key", "get_provider", "list_models", "plan_jobs",
    "plan_routes", "provider_info", "render_routes", "run_job", "check_budget",
]
