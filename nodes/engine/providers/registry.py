"""Every cloud video provider by name: the one registry the planner, the node layer and the UIs read."""
from __future__ import annotations

from .base import Provider
from .fal import FalProvider
from .heygen import HeyGenProvider
from .luma import LumaProvider
from .replicate import ReplicateProvider
from .runway import RunwayProvider
from .veo import VeoProvider

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (LumaProvider(), RunwayProvider(), HeyGenProvider(), FalProvider(), ReplicateProvider(), VeoProvider())
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider; choose one of {', '.join(PROVIDERS)}") from None


def list_models() -> dict[str, list[str]]:
    """Models per provider, for node widgets. Replicate takes any owner/name[:version]; these are the priced ones."""
    return {name: list(p.models) for name, p in PROVIDERS.items()}


def provider_info() -> list[dict]:
    """A secret-free description of every provider (env vars, models, cancel support) for UIs and docs."""
    return [
        {
            "name": p.name,
            "label": p.label,
            "key_env": list(p.key_env),
            "base_url_env": p.base_url_env,
            "models": list(p.models),
            "can_cancel": p.can_cancel,
            "default_concurrency": p.default_concurrency,
        }
        for p in PROVIDERS.values()
    ]
