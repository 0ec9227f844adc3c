"""The routes: Comfy API v2's jobs, outputs and health, and AdReel's extensions, on aiohttp.

Every route but ``/api/v2/health`` needs ``Authorization: Bearer <key>`` (401
otherwise); a job is visible only to the key that made it (another key gets
404, as for a job that does not exist). Errors use v2's envelope
``{"error": {"code", "message", "details"}}``. Handlers run the synchronous
Redis and store calls of ``views`` in threads.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Optional

import aiohttp
import redis
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from ..config import FleetError, Settings
from . import openapi
from .settings import ApiSettings, load_api_settings
from .views import TERMINAL, ApiError, Views, not_found
from .webhooks import Hooks

log = logging.getLogger("adreel.fleet.api")

SETTINGS = web.AppKey("settings", ApiSettings)
VIEWS = web.AppKey("views", Views)
STREAMS = web.AppKey("streams", dict)
HOOKS = web.AppKey("hooks", Hooks)
OWNER = "adreel_owner"
#: how often an event stream reads the job's record (aiohttp-sse writes a ": ping" comment every 15 s)
EVENTS_POLL_S = 0.5
MAX_BODY = 16 * 1024 * 1024 + 65536
MAX_KEY_IMAGE = 32 * 1024 * 1024
PUBLIC = frozenset({"/api/v2/health", "/", "/dashboard", "/dashboard/"})
#: the dashboard's files: public (they hold no data; the page asks for a key and sends it as any client does)
DASHBOARD = Path(__file__).resolve().parent / "dashboard"
DASHBOARD_FILES = {"": ("index.html", "text/html"), "app.js": ("app.js", "text/javascript"),
                   "app.css": ("app.css", "text/css")}
DASHBOARD_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                                "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
                                                "base-uri 'none'; form-action 'none'",
                     "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                     "Cache-Control": "no-cache"}


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers=exc.headers)


def _bearer(request: web.Request) -> str:
    head = request.headers.get("Authorization", "")
    scheme, _, token = head.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@web.middleware
async def guard(request: web.Request, handler):
    try:
        if request.path not in PUBLIC and not request.path.startswith("/dashboard/"):
            owner = request.app[SETTINGS].owner_of(_bearer(request))
            if owner is None:
                raise ApiError(401, "unauthorized", "this route needs an API key: 'Authorization: Bearer <key>'",
                               headers={"WWW-Authenticate": 'Bearer realm="adreel"'})
            request[OWNER] = owner
            await asyncio.to_thread(request.app[VIEWS].count_request, owner)
        return await handler(request)
    except ApiError as exc:
        return _error(exc)
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            code = "not_found" if exc.status == 404 else "method_not_allowed"
            return _error(ApiError(exc.status, code, "no such route" if exc.status == 404
                                   else "this route does not take that method"))
        raise
    except redis.RedisError as exc:
        log.warning("%s %s: Redis: %s", request.method, request.path, type(exc).__name__)
        return _error(ApiError(503, "upstream_unreachable", f"the fleet's Redis does not answer "
                                                            f"({type(exc).__name__}); retry shortly",
                               headers={"Retry-After": "5"}))
    except FleetError as exc:  # the fleet's messages name no secret (URLs masked, storage errors redacted)
        log.warning("%s %s: %s", request.method, request.path, exc)
        return _error(ApiError(503, "upstream_unreachable", str(exc), headers={"Retry-After": "5"}))
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:  # noqa: BLE001 — logged here, never shown to the visitor
        log.exception("%s %s failed", request.method, request.path)
        return _error(ApiError(500, "internal", "the server failed on this request; it is logged"))


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def _call(request: web.Request, fn, *args, **kw):
    return await asyncio.to_thread(fn, *args, **kw)


# ------------------------------------------------------------------ jobs
async def submit(request: web.Request) -> web.Response:
    body = await _json_body(request)
    views = request.app[VIEWS]
    owner = request[OWNER]
    job_id = await _call(request, views.submit, owner, body, request.headers.get("Idempotency-Key"),
                         _base(request))
    log.info("job %s submitted by key %s", job_id, owner)
    job = await _call(request, views.job, owner, job_id, _base(request))
    return web.json_response(job, status=201, headers={"Location": job["urls"]["self"]})


async def submit_batch(request: web.Request) -> web.Response:
    body = await _json_body(request)
    owner = request[OWNER]
    batch = await _call(request, request.app[VIEWS].submit_batch, owner, body,
                        request.headers.get("Idempotency-Key"), _base(request))
    log.info("batch %s (%d jobs) submitted by key %s", batch["id"], len(batch["jobs"]), owner)
    return web.json_response(batch, status=201, headers={"Location": f"/api/v2/batches/{batch['id']}"})


async def get_batch(request: web.Request) -> web.Response:
    return web.json_response(await _call(request, request.app[VIEWS].batch, request[OWNER], request.match_info["id"],
                                         _base(request)))


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


async def list_jobs(request: web.Request) -> web.Response:
    q = request.rel_url.query
    metadata = {}
    for k, v in q.items():
        m = re.fullmatch(r"metadata\[(.{1,64})\]", k)
        if m:
            metadata[m.group(1)] = v
    page = await _call(request, request.app[VIEWS].list, request[OWNER], _base(request), limit=q.get("limit"),
                       cursor=q.get("cursor"), statuses=q.get("status"), metadata=metadata,
                       brand=q.get("brand"), batch=q.get("batch"))
    return web.json_response(page)


async def get_job(request: web.Request) -> web.Response:
    job = await _call(request, request.app[VIEWS].job, request[OWNER], request.match_info["id"], _base(request))
    return web.json_response(job)


async def get_workflow(request: web.Request) -> web.Response:
    return web.json_response(await _call(request, request.app[VIEWS].workflow, request[OWNER],
                                         request.match_info["id"]))


async def cancel_job(request: web.Request) -> web.Response:
    await _before_decision(request)
    job = await _call(request, request.app[VIEWS].cancel, request[OWNER], request.match_info["id"],
                      _base(request))
    return web.json_response(job)


async def _json_body(request: web.Request):
    try:
        return json.loads(await request.text(), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_request", "the body must be JSON (numbers finite)") from None
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "too_large", f"the body is larger than {MAX_BODY} bytes") from None


async def get_script(request: web.Request) -> web.Response:
    return web.json_response(await _call(request, request.app[VIEWS].script, request[OWNER],
                                         request.match_info["id"]))


async def put_script(request: web.Request) -> web.Response:
    body = await _json_body(request)
    return web.json_response(await _call(request, request.app[VIEWS].put_script, request[OWNER],
                                         request.match_info["id"], body))


async def key_image(request: web.Request) -> web.Response:
    """An approval job's key image, read from the ComfyUI its prefix ran on (ComfyUI's own ``/view``)."""
    comfy, img = await _call(request, request.app[VIEWS].key_image, request[OWNER], request.match_info["id"],
                             request.match_info["n"])
    timeout = aiohttp.ClientTimeout(total=20)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{comfy}/view", params={k: img.get(k) or "" for k in ("filename", "subfolder",
                                                                                        "type")},
                                   allow_redirects=False) as resp:
                if resp.status == 404:
                    raise not_found("key image")  # that ComfyUI was restarted: its temporary files are gone
                if resp.status != 200 or not resp.content_type.startswith("image/"):
                    raise ApiError(502, "upstream_failed", f"the ComfyUI server answered HTTP {resp.status}")
                body = await resp.content.read(MAX_KEY_IMAGE + 1)
                if len(body) > MAX_KEY_IMAGE:
                    raise ApiError(502, "upstream_failed", "the key image is larger than this API serves")
                ctype = resp.content_type
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ApiError(503, "upstream_unreachable", f"the ComfyUI server does not answer ({type(exc).__name__})",
                       headers={"Retry-After": "5"}) from None
    return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "private, max-age=300",
                                                                "X-Content-Type-Options": "nosniff"})


async def _before_decision(request: web.Request) -> None:
    """A job waiting for approval gets its ``job.awaiting_approval`` event filed before the wait ends."""
    await _call(request, request.app[HOOKS].file_before_decision, request.match_info["id"])


async def approve_job(request: web.Request) -> web.Response:
    await _before_decision(request)
    job = await _call(request, request.app[VIEWS].approve, request[OWNER], request.match_info["id"],
                      _base(request))
    log.info("job %s approved by key %s", job["id"], request[OWNER])
    return web.json_response(job)


async def discard_job(request: web.Request) -> web.Response:
    await _before_decision(request)
    return web.json_response(await _call(request, request.app[VIEWS].discard, request[OWNER],
                                         request.match_info["id"], _base(request)))


async def delete_job(request: web.Request) -> web.Response:
    return web.json_response(await _call(request, request.app[VIEWS].delete, request[OWNER],
                                         request.match_info["id"]))


async def job_events(request: web.Request) -> web.StreamResponse:
    """SSE: ``status`` (on every change, queue position included), ``progress``, ``output`` (each output,
    before the terminal status), ``log`` (a failure's message); the stream ends after a terminal status."""
    views, owner, job_id, base = request.app[VIEWS], request[OWNER], request.match_info["id"], _base(request)
    job = await _call(request, views.job, owner, job_id, base)
    streams = request.app[STREAMS]
    if streams["open"] >= request.app[SETTINGS].max_streams:
        raise ApiError(429, "too_many_streams", "too many event streams are open; poll GET /api/v2/jobs/{id}",
                       headers={"Retry-After": "5"})
    streams["open"] += 1
    resp = EventSourceResponse()
    try:
        await resp.prepare(request)
        async with resp:
            sent_status: Optional[tuple] = None
            sent_progress: Optional[tuple] = None
            while resp.is_connected():
                status = job["status"]
                if status in TERMINAL:
                    for out in job["outputs"]:
                        await resp.send(json.dumps(out), event="output")
                    if job["error"]:
                        await resp.send(json.dumps({"level": "error", "message": job["error"]["message"]}),
                                        event="log")
                    await resp.send(json.dumps({"status": status, "queue_position": None}), event="status")
                    break
                if (status, job["queue_position"]) != sent_status:
                    sent_status = (status, job["queue_position"])
                    await resp.send(json.dumps({"status": status, "queue_position": job["queue_position"]}),
                                    event="status")
                p = job["progress"]
                if status == "running" and (p["value"], p["current_node"]) != sent_progress:
                    sent_progress = (p["value"], p["current_node"])
                    await resp.send(json.dumps({**p, "stage": job["adreel"]["stage"]}), event="progress")
                await asyncio.sleep(EVENTS_POLL_S)
                try:
                    job = await _call(request, views.job, owner, job_id, base)
                except ApiError:  # deleted meanwhile
                    await resp.send(json.dumps({"status": "canceled", "queue_position": None}), event="status")
                    break
                except (redis.RedisError, FleetError):
                    break  # the client reconnects or polls; polling is the source of truth
    except ConnectionResetError:
        pass
    finally:
        streams["open"] -= 1
    return resp


# ------------------------------------------------------------------ outputs
async def get_asset(request: web.Request) -> web.Response:
    out, _key = await _call(request, request.app[VIEWS].asset, request[OWNER], request.match_info["id"],
                            _base(request))
    return web.json_response({"id": out["id"], "hash": None, "size_bytes": out["size_bytes"],
                              "content_type": out["content_type"], "file_path": out["name"],
                              "created_at": None, "url": out["url"], "url_expires_at": out["url_expires_at"],
                              "expires_at": None, "job_id": out["job_id"], "sha256": out["sha256"]})


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def asset_content(request: web.Request) -> web.StreamResponse:
    """The output's bytes, streamed from the store through this server (Range supported): a client needs
    only this server's address and its key, never the store's."""
    views = request.app[VIEWS]
    out, key = await _call(request, views.asset, request[OWNER], request.match_info["id"], _base(request))
    rng = request.headers.get("Range")
    if rng is not None and not (_RANGE.match(rng) and rng != "bytes=-"):
        rng = None  # a malformed Range is ignored (RFC 9110): the whole object

    def fetch():
        store = views.store()
        kw = {"Range": rng} if rng else {}
        try:
            return store.client.get_object(Bucket=store.config.bucket, Key=key, **kw)
        except Exception as exc:  # noqa: BLE001 — botocore's, classified below
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code == "InvalidRange":
                raise ApiError(416, "range_not_satisfiable", "the range lies outside the output") from None
            if code in ("NoSuchKey", "404"):
                raise not_found("asset") from None
            raise FleetError(f"storage: {store.classify(exc, 'read the output')}") from None

    obj = await _call(request, fetch)
    body = obj["Body"]
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", out["name"]) or "output"
    resp = web.StreamResponse(status=206 if obj.get("ContentRange") else 200, headers={
        "Content-Type": out["content_type"], "Content-Length": str(obj["ContentLength"]), "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{safe_name}"', "Cache-Control": "private, no-store"})
    if obj.get("ContentRange"):
        resp.headers["Content-Range"] = obj["ContentRange"]
    try:
        await resp.prepare(request)
        while True:
            chunk = await asyncio.to_thread(body.read, 256 * 1024)
            if not chunk:
                break
            await resp.write(chunk)
        await resp.write_eof()
    finally:
        body.close()
    return resp


# ------------------------------------------------------------------ health, docs
async def health(request: web.Request) -> web.Response:
    try:
        await _call(request, request.app[VIEWS].ping)
    except FleetError:
        return web.json_response({"status": "unhealthy", "error": {"code": "upstream_unreachable",
                                                                   "message": "the fleet's Redis does not answer"}},
                                 status=503)
    return web.json_response({"status": "healthy"})


async def dashboard(request: web.Request) -> web.Response:
    """AdReel Studio: one static page (HTML, JS, CSS) over this API, in English and Korean."""
    name, ctype = DASHBOARD_FILES.get(request.match_info.get("name", ""), (None, None))
    if name is None:
        raise not_found("file")
    return web.Response(body=(DASHBOARD / name).read_bytes(), content_type=ctype, charset="utf-8",
                        headers=DASHBOARD_HEADERS)


async def to_dashboard(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


async def openapi_doc(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


def make_app(settings: ApiSettings, views: Optional[Views] = None) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[VIEWS] = views or Views(settings)
    app[STREAMS] = {"open": 0}
    app[HOOKS] = Hooks(app[VIEWS])

    async def webhooks(app: web.Application):
        task = asyncio.create_task(app[HOOKS].run(settings.webhook_secrets, settings.webhook_allow_private,
                                                         settings.webhook_retry_seconds))
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    app.cleanup_ctx.append(webhooks)
    app.add_routes([
        web.get("/api/v2/health", health),
        web.get("/", to_dashboard),
        web.get("/dashboard", to_dashboard),
        web.get("/dashboard/", dashboard),
        web.get("/dashboard/{name}", dashboard),
        web.get("/api/v2/openapi.json", openapi_doc),
        web.post("/api/v2/jobs", submit),
        web.get("/api/v2/jobs", list_jobs),
        web.get("/api/v2/jobs/{id}", get_job),
        web.delete("/api/v2/jobs/{id}", delete_job),
        web.get("/api/v2/jobs/{id}/workflow", get_workflow),
        web.post("/api/v2/jobs/{id}/cancel", cancel_job),
        web.get("/api/v2/jobs/{id}/events", job_events),
        web.get("/api/v2/jobs/{id}/script", get_script),
        web.put("/api/v2/jobs/{id}/script", put_script),
        web.get("/api/v2/jobs/{id}/key_images/{n}", key_image),
        web.post("/api/v2/jobs/{id}/approve", approve_job),
        web.post("/api/v2/jobs/{id}/discard", discard_job),
        web.post("/api/v2/batches", submit_batch),
        web.get("/api/v2/batches/{id}", get_batch),
        web.get("/api/v2/assets/{id}", get_asset),
        web.get("/api/v2/assets/{id}/content", asset_content),
    ])
    return app


def run_api(fleet: Settings, host: str, port: int) -> int:
    settings = load_api_settings(fleet)  # refuses to start without the fleet's signing secret
    views = Views(settings)
    views.ping()
    views.actor()  # the Dramatiq broker, once
    store = "the store configured" if _store_ok(views) else "NO store settings (outputs cannot be downloaded)"
    print(f"AdReel job API (Comfy API v2) on http://{host}:{port}/api/v2 — {len(settings.key_hashes)} key(s), "
          f"Redis {settings.fleet.redis_display}, queue cap {settings.fleet.max_queued}, {store}", flush=True)
    web.run_app(make_app(settings, views), host=host, port=port, print=None, access_log=log)
    return 0


def _store_ok(views: Views) -> bool:
    try:
        views.store()
        return True
    except Exception:  # noqa: BLE001
        return False
