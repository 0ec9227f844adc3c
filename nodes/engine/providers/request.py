"""What ProviderRender's widgets mean, without ComfyUI: options, the candidates, the progress text, the report.

The node file (``nodes/comfy_nodes/provider_node.py``) only reads its inputs,
calls these and the engine, and returns the outputs; everything here is
unit-tested without a ComfyUI server.
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field

from typing import Optional, Sequence

from .. import limits
from ..models import AdReelInputError, StoryboardScene, WidgetValues
from .registry import PROVIDERS
from .base import ImageHost
from .routes import CAMERA_MOVE, DEFAULT_CHAINS, Candidate, RoutePlan, SceneOutcome, SceneRequest, parse_chain, plan_routes
from .jobs import ProgressEvent
from ..cloud.credentials import is_secret_name, looks_like_key
from ..cloud.redaction import redact

logger = logging.getLogger("adreel.providers")

POLL_ENV = "ADREEL_PROVIDER_POLL_SECONDS"  # override every provider's poll interval (tests, rate-limited gateways)
MAX_OPTION_DEPTH = 16

_PRICE_NAME = re.compile(r"(?i)price|usd|cost|credit")  # price options: finite and >= 0
_NO_KEYS = ("API keys and tokens are never taken from a workflow (it is saved in files, PNG/MP4 metadata and "
            "history). Set the provider's environment variable (e.g. RUNWAY_API_KEY) for the ComfyUI process "
            "or put it in the secrets file (ADREEL_SECRETS_FILE)")


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
    a credential, or any value shaped like a key, is refused without echoing it; so
    are NaN / inf numbers (Python's JSON accepts them).
    """
    text = (text or "").strip()
    if not text:
        return Options()
    cap = limits.MAX_TEXT_CHARS.read()
    if len(text) > cap:
        raise AdReelInputError("options_json", f"is {len(text)} characters, more than the server's {cap} "
                                               f"({limits.MAX_TEXT_CHARS.env})")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AdReelInputError("options_json", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise AdReelInputError("options_json", f"is nested more than {MAX_OPTION_DEPTH} levels deep") from None
    if not isinstance(data, dict):
        raise AdReelInputError("options_json", 'must be a JSON object, e.g. {"heygen": {"avatar_id": "…", "voice_id": "…"}}')
    _refuse_secrets(data, "options_json")
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


# Option names an error may show as written: the options the providers read, and the usual names of a
# credential someone might paste. Any other name is the workflow's own text (a visitor's, on a shared
# server): it is shown by its position, never repeated.
KNOWN_OPTION_NAMES = frozenset({
    "seed", "model", "resolution", "input", "price_usd_per_run", "price_usd_per_second", "usd_per_credit",
    "avatar_id", "talking_photo_id", "voice_id", "voice_speed", "avatar_style", "background", "caption",
    "person_generation", "negative_prompt", "quality", "style", "duration", "loop", "fps", "cfg_scale",
    "cond_aug", "motion_bucket_id", "image_input", "prompt_input", "duration_input", "aspect_input",
    "key", "api_key", "apikey", "api-key", "x-api-key", "token", "api_token", "access_token", "accesstoken",
    "refresh_token", "auth_token", "hf_token", "github_token", "githubtoken", "secret", "client_secret",
    "password", "private_key", "aws_secret_access_key", "aws_access_key_id", "authorization", "credentials",
    "openai_key", "hftoken", "bearer", "cookie",
})


def _shown_name(name: str, k: int) -> str:
    """An option's name for a field path: as written when it is one AdReel knows (``KNOWN_OPTION_NAMES``
    or a provider's name), else its position. A visitor's text is never repeated in an error."""
    return name if name.lower() in KNOWN_OPTION_NAMES or name in PROVIDERS else f"<option {k + 1}>"


def _refuse_secrets(value, where: str, depth: int = 0) -> None:
    """Refuse credentials by name or by shape, and numbers that are not finite, anywhere in the options.

    The message names where it was found and never repeats the value (nor an option name that is
    itself shaped like a key).
    """
    if depth > MAX_OPTION_DEPTH:
        raise AdReelInputError(where, f"is nested more than {MAX_OPTION_DEPTH} levels deep")
    if isinstance(value, dict):
        for k, (key, v) in enumerate(value.items()):
            name = str(key)
            if looks_like_key(name):
                raise AdReelInputError(f"{where}.<an option name shaped like an API key>", _NO_KEYS)
            shown = _shown_name(name, k)
            if is_secret_name(name):
                raise AdReelInputError(f"{where}.{shown}", _NO_KEYS)
            if (_PRICE_NAME.search(name) and isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) and v < 0):
                raise AdReelInputError(f"{where}.{shown}", "must be a price, 0 or more: a negative "
                                                          "price would enlarge what the other scenes may spend")
            _refuse_secrets(v, f"{where}.{shown}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_secrets(v, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        if looks_like_key(value):
            raise AdReelInputError(where, "holds a value shaped like an API key or token (not shown here). " + _NO_KEYS)
    elif isinstance(value, float) and not math.isfinite(value):
        raise AdReelInputError(where, "must be a finite number")


_refuse_secret_names = _refuse_secrets  # the earlier name


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
                raise AdReelInputError("model", f"is not a {PROVIDERS[provider].label} model; "
                                                f"choose one of {known}{extra}") from None
        cands = [Candidate(provider, chosen)]
    if fallback == "camera move" and CAMERA_MOVE not in cands:
        cands.append(CAMERA_MOVE)
    return cands


def widget_problem(provider, model, fallback, quality, max_cost_usd=None, chain=None, options_json=None) -> str | None:
    """At submit time: what is wrong with the widgets (a message naming the field), or None. No network.

    Values may be None (linked inputs, checked at the run instead)."""
    if max_cost_usd is not None:
        try:  # NaN passes ComfyUI's min/max check
            if limits.require_finite(max_cost_usd, "max_cost_usd") < 0:
                return "max_cost_usd: must be 0 (the server's ceiling) or more"
        except ValueError as exc:
            return str(exc)
    if None in (provider, model, fallback, quality):
        return None
    try:
        candidates(provider, model, fallback, quality, chain or "", parse_options(options_json or ""))
    except AdReelInputError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class RenderWidgets(WidgetValues):
    """ProviderRender's widget values, one value each."""

    provider: str
    model: str
    fallback: str
    quality: str
    chain: str = ""
    max_cost_usd: float = 0.0  # 0: the server's ceiling
    options_json: str = ""
    timeout_s: int = 900


def plan_run(scenes: Sequence[StoryboardScene], image_paths: Sequence[Optional[str]], widgets: RenderWidgets, *,
             aspect_ratio: str, image_host: Optional[ImageHost] = None, image_host_problem: Optional[str] = None,
             allowance=None) -> tuple[RoutePlan, list[Candidate]]:
    """ProviderRender's widgets → the priced plan of the run (and its candidates), before anything is sent.

    ``allowance``: the prompt's share of ``ADREEL_MAX_COST_USD`` (``budget.Allowance``); the plan fits what
    the prompt's other nodes left of it, and its estimate is reserved there before this returns.

    One provider with ``fallback: error`` plans strictly (the first problem raises as it is); otherwise each
    scene walks the candidates. Never above the server ceiling ``ADREEL_MAX_COST_USD``.
    """
    w = widgets
    opts = parse_options(w.options_json)
    cands = candidates(w.provider, w.model, w.fallback, w.quality, w.chain, opts)
    requests = [SceneRequest(scene=sc, aspect_ratio=aspect_ratio, image_path=p, seed=opts.seed,
                             options=opts.shared, provider_options=opts.per_provider)
                for sc, p in zip(scenes, image_paths)]
    plan = plan_routes(requests, cands, quality=w.quality, max_cost_usd=w.max_cost_usd, image_host=image_host,
                       image_host_problem=image_host_problem, strict=w.provider != "auto" and w.fallback == "error",
                       allowance=allowance)
    raw = w.options_json or ""
    if redact(raw) != raw:  # the keys read while planning are known to redact() now
        raise AdReelInputError("options_json", "contains an API key or credential; remove it (keys are read from "
                                               "the environment or the secrets file only). Nothing was sent.")
    if allowance is not None:  # the prompt's other nodes may not spend it now; released where nothing is billed
        allowance.reserve(plan.total_usd, f"ProviderRender's estimate of {_usd(plan.total_usd)}")
    return plan, cands


def poll_interval() -> float | None:
    """``ADREEL_PROVIDER_POLL_SECONDS`` (above 0), or None: each provider's own interval."""
    return limits.env_number(POLL_ENV, None, 0, above=True, otherwise="using each provider's default")


def finite_or_none(value):
    """A number fit for JSON: NaN / inf become None (a NaN in a node's ``ui`` makes ``/history`` unreadable)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_safe(value):
    """``value`` with every non-finite float replaced by None, recursively (dicts, lists, tuples)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return finite_or_none(value)


def _usd(value) -> str:
    value = finite_or_none(value)
    return "cost unknown" if value is None else f"${value:.2f}"


def report_text(plan: RoutePlan, outcomes: list[SceneOutcome], seconds: float) -> tuple[str, dict]:
    """The node's report and its JSON summary; every figure finite (or None), nothing secret."""
    est = finite_or_none(plan.total_usd)
    costs = [finite_or_none(o.result.actual_cost_usd) for o in outcomes if o.result is not None]
    actual = round(sum(c for c in costs if c is not None), 4)
    unknown_actual = sum(1 for c in costs if c is None)
    budget = (f"budget {_usd(plan.max_cost_usd)}{plan.budget_note}" if plan.max_cost_usd is not None
              else "no budget cap")
    head = (f"ProviderRender: {len(outcomes)} scene(s) in {seconds:.0f} s — estimated {_usd(est)}, "
            f"actual ${actual:.2f}{f' + {unknown_actual} of unknown cost' if unknown_actual else ''} ({budget})")
    lines = [head]
    for o in outcomes:
        if o.result is None:
            lines.append(f"scene {o.scene_index}: camera move (local) · $0.00")
        else:
            r = o.result
            got = f"{r.duration:.2f} s" if finite_or_none(r.duration) else "?"
            lines.append(f"scene {o.scene_index}: {r.provider} {r.model} · job {r.job_id} · requested "
                         f"{r.requested_duration or r.scene_duration:g} s, received {got} · "
                         f"{_usd(r.actual_cost_usd)} ({r.cost_basis})")
        for n in o.notes + ([] if o.result is None else o.result.notes):
            lines.append(f"  note: {n}")
    summary = json_safe({
        "estimated_cost_usd": est, "actual_cost_usd": actual, "max_cost_usd": plan.max_cost_usd,
        "quality": plan.quality, "scenes": [o.record() for o in outcomes],
    })
    # allow_nan=False: a non-finite number left anywhere is a bug here, never a broken /history for every browser
    return redact("\n".join(lines)), json.loads(redact(json.dumps(summary, allow_nan=False)))


MAX_REPORT_CHARS = 4 << 20  # a provider_report of 60 scenes with every attempt is ~100 kB


def provider_report_json(summary: dict) -> str:
    """ProviderRender's ``provider_report`` output: the run's summary (its ``scenes`` are the records
    FFmpegAssemble writes into the manifest), as JSON."""
    return json.dumps(summary, allow_nan=False, ensure_ascii=False)


def _number_or_none(value, where: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise AdReelInputError("provider_report", f"{where} is not a cost in USD")
    return value


def provider_records(reports: Sequence, field: str = "provider_report") -> list[dict]:
    """The manifest's ``providers``: every scene record of the connected ``provider_report`` texts
    (ProviderRender's output), in order. Each text is checked: JSON of ProviderRender's shape, a
    provider and model per record, costs finite numbers ≥ 0 or null."""
    records: list[dict] = []
    for n, text in enumerate(r for r in reports if r is not None and r != ""):
        if not isinstance(text, str):
            raise AdReelInputError(field, f"report {n} is a {type(text).__name__}, not ProviderRender's JSON text")
        if len(text) > MAX_REPORT_CHARS:
            raise AdReelInputError(field, f"report {n} is {len(text)} characters, more than {MAX_REPORT_CHARS}")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AdReelInputError(field, f"report {n} is not JSON ({exc.msg} at character {exc.pos}): connect "
                                          "ProviderRender's provider_report output") from None
        scenes = data.get("scenes") if isinstance(data, dict) else None
        if not isinstance(scenes, list):
            raise AdReelInputError(field, f"report {n} has no \"scenes\" list: connect ProviderRender's "
                                          "provider_report output")
        for i, rec in enumerate(scenes):
            where = f"report {n} scenes[{i}]"
            if not (isinstance(rec, dict) and isinstance(rec.get("provider"), str)
                    and isinstance(rec.get("model"), str)):
                raise AdReelInputError(field, f"{where} is not a scene record with a provider and a model")
            for key in ("actual_cost_usd", "estimated_cost_usd"):
                _number_or_none(rec.get(key), f"{where}.{key}")
            records.append(rec)
    return records


_ASPECTS = {"9:16": 9 / 16, "1:1": 1.0, "16:9": 16 / 9}


def aspect_for(width: int, height: int) -> str:
    """The provider aspect ratio nearest to a frame size."""
    ratio = width / height
    return min(_ASPECTS, key=lambda a: abs(_ASPECTS[a] - ratio))


class ProgressLines:
    """A run's progress as text — the title, the estimate, one line per scene, a footer — and its completion.

    Call it with each ``ProgressEvent`` (``on_progress``). The time left is the engine's
    (``ProgressEvent.remaining``).
    """

    def __init__(self, plan: RoutePlan, title: str):
        self.title = title
        self.estimate = plan.describe()
        self.lines = {r.scene.index: ("camera move (local, $0.00)" if r.pick.candidate.is_camera
                                      else f"{r.pick.candidate}: waiting") for r in plan.routes}
        self.fractions = {r.scene.index: (1.0 if r.pick.candidate.is_camera else 0.0) for r in plan.routes}
        self.footer = ""

    def text(self) -> str:
        body = "\n".join(f"scene {i}: {line}" for i, line in sorted(self.lines.items()))
        return "\n".join(x for x in (self.title, self.estimate.splitlines()[0], body, self.footer) if x)

    def done(self) -> float:
        """Scenes done, counting a part-done scene as its fraction (0 … number of scenes)."""
        return sum(self.fractions.values())

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.status == "fallback":
            self.lines[ev.scene_index] = ev.message.split(": ", 1)[-1]
            return
        parts = [f"{ev.provider} {ev.model}", ev.status]
        if ev.fraction is not None:
            parts[-1] += f" {ev.fraction * 100:.0f}%"
        parts.append(f"{ev.elapsed:.0f} s")
        if ev.remaining is not None and ev.status not in ("done", "cancelled"):
            parts.append(f"~{ev.remaining:.0f} s left")
        if ev.cost_usd is not None:
            parts.append(f"${ev.cost_usd:.2f}")
        if ev.job_id:
            parts.append(f"job {ev.job_id}")
        self.lines[ev.scene_index] = " · ".join(parts)
        if ev.status == "done":
            self.fractions[ev.scene_index] = 1.0
        elif ev.fraction is not None:
            self.fractions[ev.scene_index] = min(0.99, ev.fraction)
        elif ev.remaining:
            self.fractions[ev.scene_index] = min(0.95, ev.elapsed / (ev.elapsed + ev.remaining))
