"""What ProviderRender's widgets mean, without ComfyUI: options, the candidates, the report.

The node file (``nodes/comfy_nodes/provider_node.py``) only reads its inputs,
calls these and the engine, and returns the outputs; everything here is
unit-tested without a ComfyUI server.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field

from ..models import AdReelInputError
from . import PROVIDERS
from .hybrid import CAMERA_MOVE, DEFAULT_CHAINS, Candidate, RoutePlan, SceneOutcome, parse_chain
from .redaction import redact

logger = logging.getLogger("adreel.providers")

POLL_ENV = "ADREEL_PROVIDER_POLL_SECONDS"  # override every provider's poll interval (tests, rate-limited gateways)
_SECRET_NAME = re.compile(  # option names that would carry a credential
    r"(?i)^(x[-_])?(api[-_]?(key|token|secret)|((access|auth|bearer|refresh|api)[-_]?)?token|(client[-_])?secret"
    r"([-_]?key)?|password|passwd|authorization|bearer|credentials?|[a-z]*[-_]api[-_]?key)$")


@dataclass
class Options:
    """``options_json``: shared options, per-provider sections, a seed, a model override."""

    shared: dict = field(default_factory=dict)
    per_provider: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)  # provider → model override (any Replicate owner/name:version)
    seed: int | None = None
    model: str | None = None


def parse_options(text: str | None) -> Options:
    """``{"seed": 7, "resolution": "1080p", "heygen": {"avatar_id": …, "voice_id": …},
    "replicate": {"model": "owner/name:version", "input": {…}, "price_usd_per_run": 0.5}}``.

    Keys never go here (they would be saved in the workflow): an option named like
    a credential is refused.
    """
    text = (text or "").strip()
    if not text:
        return Options()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AdReelInputError("options_json", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise AdReelInputError("options_json", 'must be a JSON object, e.g. {"heygen": {"avatar_id": "…", "voice_id": "…"}}')
    _refuse_secret_names(data, "options_json")
    opts = Options()
    for name, value in data.items():
        if name in PROVIDERS:
            if not isinstance(value, dict):
                raise AdReelInputError(f"options_json.{name}", "must be a JSON object of that provider's options")
            section = dict(value)
            if "model" in section:
                opts.models[name] = str(section.pop("model"))
            opts.per_provider[name] = section
        elif name == "seed":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise AdReelInputError("options_json.seed", "must be a whole number ≥ 0")
            opts.seed = value
        elif name == "model":
            opts.model = str(value)
        else:
            opts.shared[name] = value
    return opts


def _refuse_secret_names(value, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if _SECRET_NAME.search(str(k)):
                raise AdReelInputError(
                    f"{where}.{k}",
                    "API keys and tokens are never taken from a workflow (it is saved in files, PNG/MP4 metadata and "
                    "history). Set the provider's environment variable (e.g. RUNWAY_API_KEY) for the ComfyUI process "
                    "or put it in the secrets file (ADREEL_SECRETS_FILE)",
                )
            _refuse_secret_names(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_secret_names(v, f"{where}[{i}]")


def candidates(provider: str, model: str, fallback: str, quality: str, chain: str, opts: Options) -> list[Candidate]:
    """The chain each scene walks: one provider (+ camera), or for ``auto`` the user's chain."""
    if provider == "auto":
        cands = parse_chain(chain.strip() or DEFAULT_CHAINS[quality], "chain")
    else:
        chosen = opts.models.get(provider) or opts.model or model
        spec = PROVIDERS[provider].models.get(chosen)
        if spec is None:
            try:
                PROVIDERS[provider].model_spec(chosen, "model")  # Replicate: any owner/name[:version]
            except AdReelInputError:
                known = ", ".join(PROVIDERS[provider].models) or "owner/name[:version]"
                extra = ' (any other: options_json {"replicate": {"model": "owner/name:version"}})' if provider == "replicate" else ""
                raise AdReelInputError("model", f"{chosen!r} is not a {PROVIDERS[provider].label} model; "
                                                f"choose one of {known}{extra}") from None
        cands = [Candidate(provider, chosen)]
    if fallback == "camera move" and CAMERA_MOVE not in cands:
        cands.append(CAMERA_MOVE)
    return cands


def poll_interval() -> float | None:
    raw = os.environ.get(POLL_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
        if value <= 0:
            raise ValueError
        return value
    except ValueError:
        logger.warning("%s must be a positive number of seconds (got %r); using each provider's default", POLL_ENV, raw)
        return None



def report_text(plan: RoutePlan, outcomes: list[SceneOutcome], seconds: float) -> tuple[str, dict]:
    est = plan.total_usd
    actual = round(sum((o.result.actual_cost_usd or 0.0) for o in outcomes if o.result is not None), 4)
    unknown_actual = sum(1 for o in outcomes if o.result is not None and o.result.actual_cost_usd is None)
    budget = f"budget ${plan.max_cost_usd:.2f}" if plan.max_cost_usd is not None else "no budget cap"
    head = (f"ProviderRender: {len(outcomes)} scene(s) in {seconds:.0f} s — estimated ${est:.2f}, "
            f"actual ${actual:.2f}{f' + {unknown_actual} of unknown cost' if unknown_actual else ''} ({budget})")
    lines = [head]
    for o in outcomes:
        if o.result is None:
            lines.append(f"scene {o.scene_index}: camera move (local) · $0.00")
        else:
            r = o.result
            got = f"{r.duration:.2f} s" if r.duration else "?"
            cost = f"${r.actual_cost_usd:.2f}" if r.actual_cost_usd is not None else "cost unknown"
            lines.append(f"scene {o.scene_index}: {r.provider} {r.model} · job {r.job_id} · requested "
                         f"{r.requested_duration or r.scene_duration:g} s, received {got} · {cost} ({r.cost_basis})")
        for n in o.notes + ([] if o.result is None else o.result.notes):
            lines.append(f"  note: {n}")
    summary = {
        "estimated_cost_usd": est, "actual_cost_usd": actual, "max_cost_usd": plan.max_cost_usd,
        "quality": plan.quality, "scenes": [o.record() for o in outcomes],
    }
    return redact("\n".join(lines)), json.loads(redact(json.dumps(summary)))
