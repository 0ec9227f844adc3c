"""AdReel's own HTTP routes on ComfyUI's server (read-only; each answers from the engine).

``GET /adreel/providers/estimate`` — the cost badge on ProviderRender: what a run would cost, from the
engine's one price table and each provider's plan (engine: providers.estimate.estimate_query). Every
parameter is checked; a bad one gets 400 with ``{"error", "field"}`` naming it and the kind of problem,
never repeating what the request sent (masked or not: a masked echo would tell how much of a guess matched
a secret). Nothing is sent to a provider, no key is read and nothing is stored.

``GET /adreel/ollama/models`` — ScriptLLM's model list: the models of the Ollama server configured with
``OLLAMA_HOST`` (never a host the request names).

``GET /adreel/brands`` — the brand kits' names; ``GET /adreel/brands/{name}`` — one kit as JSON;
``PUT /adreel/brands/{name}`` — save a kit (the body: the kit's JSON, at most 64 KiB) into the first
``brands`` folder. The name is a plain name; a bad kit gets 400 naming the field, never repeating it.
"""
from __future__ import annotations

import logging

from ..engine.brand.kit import MAX_KIT_BYTES, check_name, list_kits, load_kit, parse_kit, save_kit
from ..engine.models import AdReelInputError
from ..engine.providers.estimate import estimate_query
from ..engine.script.backends import LLMConfigError
from ..engine.script.ollama_backend import configured_host, list_configured_models, normalise_host
from ..engine.cloud.redaction import redact
from . import api

logger = logging.getLogger("adreel")
ESTIMATE_ROUTE = "/adreel/providers/estimate"
MODELS_ROUTE = "/adreel/ollama/models"


async def estimate_route(request):
    from aiohttp import web
    try:
        return web.json_response(estimate_query(request.query), headers={"Cache-Control": "no-store"})
    except AdReelInputError as exc:
        # the message holds no request value (estimate.py); redaction stays as a second line of defence
        return web.json_response({"error": redact(str(exc)), "field": redact(exc.field)}, status=400)
    except Exception as exc:  # a bug here must not look like a price: say so, keep serving
        logger.exception("AdReel: the cost estimate failed")
        return web.json_response({"error": f"the estimate failed on the server ({type(exc).__name__})"}, status=500)


async def models_route(request):
    """GET /adreel/ollama/models → {"host", "models"} of the configured OLLAMA_HOST (models null when it is down).

    ``?host=`` is accepted only when it names that same host: the route never requests another host, so
    it is neither an SSRF nor a port-scan oracle, and what it stores is what every user sees anyway."""
    from aiohttp import web
    host = request.query.get("host", "")
    if host:
        try:
            same = normalise_host(host) == configured_host()
        except LLMConfigError:
            same = False
        if not same:
            return web.json_response({"error": "host: only the Ollama server configured with OLLAMA_HOST is "
                                               "listed here", "host": configured_host()}, status=400)
    host, models = await list_configured_models(3.0)
    return web.json_response({"host": host, "models": models})


def _field_error(exc: AdReelInputError, status: int = 400):
    from aiohttp import web
    return web.json_response({"error": redact(str(exc)), "field": redact(exc.field)}, status=status)


async def brands_route(request):
    """GET /adreel/brands → {"brands": [names]}."""
    from aiohttp import web
    return web.json_response({"brands": list_kits(api.brand_roots())}, headers={"Cache-Control": "no-store"})


async def brand_get_route(request):
    """GET /adreel/brands/{name} → the kit (404 when there is none of that name)."""
    from aiohttp import web
    try:
        name = check_name(request.match_info.get("name", ""), "name")
        kit, _ = load_kit(api.brand_roots(), name, "name")
    except AdReelInputError as exc:
        return _field_error(exc, 404 if "no brand kit of that name" in str(exc) else 400)
    return web.json_response(kit.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


async def brand_put_route(request):
    """PUT /adreel/brands/{name} with the kit's JSON → {"name", "saved": true}; 400 naming the field, 413 when
    the body is over the size cap (read no further than it)."""
    from aiohttp import web
    try:
        name = check_name(request.match_info.get("name", ""), "name")
        if request.content_length is not None and request.content_length > MAX_KIT_BYTES:
            return web.json_response({"error": f"a brand kit is at most {MAX_KIT_BYTES} bytes", "field": "body"},
                                     status=413)
        raw = await request.content.read(MAX_KIT_BYTES + 1)
        if len(raw) > MAX_KIT_BYTES:
            return web.json_response({"error": f"a brand kit is at most {MAX_KIT_BYTES} bytes", "field": "body"},
                                     status=413)
        kit = parse_kit(raw, name, "body")
        roots = api.brand_roots()
        if not roots:
            return web.json_response({"error": "no brands folder is configured", "field": "name"}, status=500)
        save_kit(roots[0], kit)
    except AdReelInputError as exc:
        return _field_error(exc)
    except OSError as exc:
        logger.error("AdReel: could not save a brand kit (%s)", type(exc).__name__)
        return web.json_response({"error": "the kit could not be written on the server"}, status=500)
    return web.json_response({"name": kit.name, "saved": True})


BRANDS_ROUTE = "/adreel/brands"
ROUTES_ADDED = all([api.add_get_route(ESTIMATE_ROUTE, estimate_route), api.add_get_route(MODELS_ROUTE, models_route),
                    api.add_get_route(BRANDS_ROUTE, brands_route),
                    api.add_get_route(BRANDS_ROUTE + "/{name}", brand_get_route),
                    api.add_put_route(BRANDS_ROUTE + "/{name}", brand_put_route)])
