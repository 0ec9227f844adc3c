"""Generation history: what was made, when, for which brief, where it went, what it cost.

Each upload writes one small JSON index object per run at ``<history_prefix><run>.json``
(default ``history/``), once (never over another run's record). It holds object *keys*, not URLs:
a reader makes fresh URLs (a presigned URL written at upload time would have expired).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from ..models import Brief, RenderManifest
from .config import StorageConfig

HISTORY_SCHEMA = "adreel.history/1"


def brief_summary(brief: Optional[Brief], title: str = "") -> str:
    if brief is None:
        return title or "(no brief)"
    text = f"{brief.brand} — {brief.product}: {brief.duration_seconds:g}s {brief.aspect_ratio} {brief.language}"
    if brief.cta:
        text += f", CTA “{brief.cta}”"
    return f"{title} · {text}" if title else text


def run_id_for(sha256: str) -> str:
    """The default run id: the first 12 hex digits of the main video's sha256."""
    return sha256[:12]


def history_key(config: StorageConfig, run: str) -> str:
    return f"{config.history_prefix}{run}.json"


def history_payload(
    *,
    run: str,
    brief: Optional[Brief],
    manifest: Optional[RenderManifest],
    outputs: list[dict],
    manifest_key: Optional[str],
    status: str,
    created: datetime,
) -> dict:
    """The index object of one run (keys only — URLs are made when it is listed)."""
    title = manifest.storyboard.title if manifest is not None else ""
    return {
        "schema": HISTORY_SCHEMA,
        "run": run,
        "created_at": created.astimezone(timezone.utc).isoformat(),
        "uploaded_at": None,
        "status": status,
        "title": title,
        "summary": brief_summary(brief, title),
        "brief": (
            {k: getattr(brief, k) for k in ("brand", "product", "cta", "duration_seconds", "aspect_ratio", "language", "goal")}
            if brief is not None
            else None
        ),
        "costs_usd": float(manifest.costs_usd) if manifest is not None else 0.0,
        "manifest_key": manifest_key,
        "outputs": outputs,
    }
