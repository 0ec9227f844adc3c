"""AdReel's front door: ``python -m fleet api --port N``, the Comfy API v2 job contract over the whole fleet.

An aiohttp application (``server``) in front of the fleet's Redis records and
its S3-compatible store. A ``comfy-sdk`` client given this server's base URL
and one of its API keys submits, follows (SSE), cancels and downloads as it
does against Comfy's own v2 surfaces. The process keeps nothing of its own:
every job, owner, idempotency key and cost lives in Redis (``views``) or the
store, so several API processes can serve one fleet.

Modules: ``settings`` (the environment, read in one place), ``views`` (the API's
records beside the fleet's and the v2 shapes built from them), ``server`` (the
routes), ``openapi`` (the OpenAPI document served at ``/api/v2/openapi.json``).
"""
