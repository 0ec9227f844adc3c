"""AdReel's own HTTP routes on ComfyUI's server (read-only; each answers from the engine).

``GET /adreel/providers/estimate`` — the cost badge on ProviderRender: what a run would cost, from the
engine's one price table and each provider's plan (engine: providers.estimate.estimate_query). Every
parameter is checked; a bad one gets 400 with ``{"error", "field"}`` naming it and the kind of problem,
never repeating what the request sent (masked or not: a masked echo would tell how much of a guess matched
a secret). Nothing is sent to a provider, no key is read and nothing is stored.

``GET /adreel/ollama/models`` — ScriptLLM's model list: the models of the Ollama server configured with
``OLLAMA_HOST`` (never a host the request names).
"""
from __future__ import annotations

import logging

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


ROUTES_ADDED = all([api.add_get_route(ESTIMATE_ROUTE, estimate_route), api.add_get_route(MODELS_ROUTE, models_route)])
