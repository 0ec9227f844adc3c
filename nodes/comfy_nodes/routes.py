"""AdReel's own HTTP routes on ComfyUI's server (read-only; each answers from the engine).

``GET /adreel/providers/estimate`` — the cost badge on ProviderRender: what a run would cost, from the
engine's one price table and each provider's plan (engine: providers.estimate.estimate_query). Every
parameter is checked; a bad one gets 400 with ``{"error", "field"}`` naming it. Nothing is sent to a
provider, no key is read and nothing is stored.
"""
from __future__ import annotations

import logging

from ..engine.models import AdReelInputError
from ..engine.providers.estimate import estimate_query
from ..engine.cloud.redaction import redact
from . import api

logger = logging.getLogger("adreel")
ESTIMATE_ROUTE = "/adreel/providers/estimate"


async def estimate_route(request):
    from aiohttp import web
    try:
        return web.json_response(estimate_query(request.query), headers={"Cache-Control": "no-store"})
    except AdReelInputError as exc:
        return web.json_response({"error": redact(str(exc)), "field": redact(exc.field)}, status=400)
    except Exception as exc:  # a bug here must not look like a price: say so, keep serving
        logger.exception("AdReel: the cost estimate failed")
        return web.json_response({"error": f"the estimate failed on the server ({type(exc).__name__})"}, status=500)


ROUTES_ADDED = api.add_get_route(ESTIMATE_ROUTE, estimate_route)
