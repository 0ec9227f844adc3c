"""Local HTTPS fakes of the six provider APIs, following shared/reference/provider-contracts.md.

Each fake is an aiohttp server on 127.0.0.1 (a random port) with a TLS
certificate from a local ``trustme`` CA; a client trusts it through
``ADREEL_CA_BUNDLE=<FakeTLS.ca_path>``. Point the engine at a fake with the
provider's base-URL variable (``fake.base_url``) and give it ``fake.valid_key``.

What the fakes enforce, as the real APIs do: the exact paths and methods, the
auth header shape (``Bearer`` / ``Key`` / ``X-Api-Key`` / ``x-goog-api-key``),
Runway's required ``X-Runway-Version``, each model's allowed durations, ratios
and input types, fal's subpath-less status / result / cancel URLs, and each
provider's error body shape. Jobs move through the documented status
vocabularies (Runway THROTTLED, Replicate aborted / canceled, …) over
``job_latency`` seconds, and results are https URLs on the fake itself
serving ``media`` (a real MP4). Veo's download answers 302 to a separate
storage server (another origin).

Scripting, per test:

- ``fake.outcome``: ``"success"`` | ``"fail"`` | ``"safety"`` | ``"never"`` |
  ``"credit"`` (provider's exhausted-credit answer, at submit or — HeyGen — at
  poll time) | ``"throttled"`` (Runway) | ``"aborted"`` (Replicate).
- ``fake.job_latency`` (seconds until a job finishes), ``fake.latency_for``
  (body → seconds, per job), ``fake.outcome_for`` (body → outcome, per job),
  ``fake.response_delay`` (seconds before each answer), ``fake.media_drip``
  (the result's first 64 bytes, then one byte per that many seconds).
- ``fake.script(kind, Reply(...), ...)``: the next answers for an endpoint kind
  (``create``, ``status``, ``result``, ``cancel``, ``download``, ``media``),
  e.g. a 429 with ``Retry-After: 1`` then the normal behaviour; ``Reply(0, drop=True)``
  closes the connection without answering (a mid-request drop).
- ``fake.requests``: every request received (method, path, query, headers, body, kind).
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import trustme
from aiohttp import web

from . import record as _record_request  # the session-wide record of what every fake received (conftest.py)

# --------------------------------------------------------------------------- helpers


def make_sample_mp4(path: Path, seconds: float = 2.0) -> Path:
    """A real small H.264 MP4 (320×568, testsrc2) made with ffmpeg."""
    path = Path(path)
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=320x568:d={seconds}",
             "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
            check=True, timeout=120,
        )
    return path


class FakeTLS:
    """A local CA and a server certificate for 127.0.0.1 / localhost."""

    def __init__(self, directory: Path):
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = Path(directory) / "fake-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(ctx)
        return ctx


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list → JSON; str → text; bytes → raw
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection after reading the request, without answering (mid-request drop)


@dataclass
class Recorded:
    kind: str
    method: str
    path: str
    query: dict
    headers: dict
    body: Any
    time: float


@dataclass
class FakeJob:
    id: str
    model: str
    body: dict
    created: float
    latency: float
    outcome: str
    cancelled: bool = False
    extra: dict = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.monotonic() - self.created

    def done(self) -> bool:
        return self.outcome != "never" and self.elapsed() >= self.latency

    def fraction(self) -> float:
        return min(1.0, self.elapsed() / self.latency) if self.latency > 0 else 1.0


def _json(status: int, body: Any, headers: Optional[dict] = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers or {})


def _reply_to_response(r: Reply) -> web.StreamResponse:
    if r.body is None:
        return web.Response(status=r.status, headers=r.headers)
    if isinstance(r.body, bytes):
        return web.Response(status=r.status, body=r.body, headers=r.headers)
    if isinstance(r.body, str):
        return web.Response(status=r.status, text=r.body, headers=r.headers)
    return _json(r.status, r.body, r.headers)


def _is_data_image(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    m = re.match(r"^data:image/(png|jpeg|webp);base64,(.+)$", value, re.S)
    if not m:
        return False
    try:
        base64.b64decode(m.group(2), validate=True)
    except ValueError:
        return False
    return True


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- the server base


class FakeServer:
    """One HTTPS server on its own thread and event loop. Subclasses add the routes."""

    name = "fake"
    prefix = ""  # API path prefix within the base URL

    def __init__(self, tls: FakeTLS, media: bytes = b"", valid_key: Optional[str] = None):
        self.tls = tls
        self.media = media
        self.valid_key = valid_key or f"{self.name}-test-key-{uuid.uuid4().hex[:12]}"
        self.requests: list[Recorded] = []
        self.jobs: dict[str, FakeJob] = {}
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self.port: Optional[int] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None
        self.reset()

    # ---- scripting
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.jobs.clear()
            self._scripts.clear()
        self.outcome = "success"
        self.job_latency = 0.15
        self.latency_for: Optional[Callable[[dict], Optional[float]]] = None
        self.outcome_for: Optional[Callable[[dict], Optional[str]]] = None
        self.response_delay = 0.0
        self.result_url_scheme = "https"
        self.media_override: Optional[bytes] = None
        self.media_chunked = False  # serve media with chunked encoding (no Content-Length)
        self.media_drip: Optional[float] = None  # seconds between bytes after the 64-byte head (a slow-drip server)

    def script(self, kind: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(kind, []).extend(replies)

    def calls(self, kind: Optional[str] = None, method: Optional[str] = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (kind is None or r.kind == kind) and (method is None or r.method == method)]

    # ---- URLs
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + self.prefix

    def media_url(self, job_id: str) -> str:
        return f"{self.result_url_scheme}://127.0.0.1:{self.port}/media/{job_id}.mp4?sig=fake-signature"

    # ---- lifecycle
    def start(self) -> "FakeServer":
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_get("/media/{name}", self._wrap("media", self._media))
            self.routes(app)
            # stop() ends handlers still running (a drip answer sleeps for minutes) after 1 s, not aiohttp's 60
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            left = asyncio.all_tasks(loop)  # handlers the shutdown timeout cut short: ended, then the loop closes
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"fake {self.name} did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    # ---- request handling
    def _wrap(self, kind: str, handler):
        async def wrapped(request: web.Request):
            raw = await request.read()
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
            rec = Recorded(kind, request.method, request.path, dict(request.query), dict(request.headers), body, time.monotonic())
            _record_request(f"provider:{self.name}", request.method, request.path_qs, request.headers, raw)
            with self._lock:
                self.requests.append(rec)
                scripted = self._scripts.get(kind, [])
                override = scripted.pop(0) if scripted else None
            if self.response_delay:
                await asyncio.sleep(self.response_delay)
            if override is not None:
                if override.delay:
                    await asyncio.sleep(override.delay)
                if override.drop:
                    if request.transport is not None:
                        request.transport.abort()
                    raise asyncio.CancelledError()  # nothing is written back: the client sees the connection drop
                return _reply_to_response(override)
            return await handler(request, body)

        return wrapped

    def new_job(self, model: str, body: dict) -> FakeJob:
        latency = self.job_latency
        if self.latency_for is not None:
            custom = self.latency_for(body)
            if custom is not None:
                latency = custom
        outcome = self.outcome
        if self.outcome_for is not None:
            outcome = self.outcome_for(body) or outcome
        job = FakeJob(id=str(uuid.uuid4()), model=model, body=body, created=time.monotonic(), latency=latency, outcome=outcome)
        with self._lock:
            self.jobs[job.id] = job
        return job

    async def _media(self, request: web.Request, body) -> web.StreamResponse:
        data = self.media_override if self.media_override is not None else self.media
        if self.media_drip is not None:  # the ftyp head at once, then one byte per media_drip seconds
            resp = web.StreamResponse(headers={"Content-Type": "video/mp4", "Content-Length": str(len(data))})
            await resp.prepare(request)
            await resp.write(data[:64])
            try:
                for i in range(64, len(data)):
                    await asyncio.sleep(self.media_drip)
                    await resp.write(data[i:i + 1])
            except (ConnectionError, asyncio.CancelledError):
                return resp
            await resp.write_eof()
            return resp
        if not self.media_chunked:
            return web.Response(body=data, content_type="video/mp4")
        resp = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(data), 16384):
            await resp.write(data[i:i + 16384])
        await resp.write_eof()
        return resp


class MediaServer(FakeServer):
    """A storage host (another origin) that serves the media; Veo's 302 points here."""

    name = "storage"

    def routes(self, app):
        pass


# --------------------------------------------------------------------------- Luma


class LumaFake(FakeServer):
    name = "luma"
    prefix = "/dream-machine/v1"
    MODELS = {"ray-1-6", "ray-2", "ray-flash-2"}
    RATIOS = {"1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"}

    def routes(self, app):
        p = self.prefix
        app.router.add_post(p + "/generations/video", self._wrap("create", self.create))
        app.router.add_post(p + "/generations", self._wrap("create", self.create))
        app.router.add_get(p + "/generations/{id}", self._wrap("status", self.status))
        app.router.add_delete(p + "/generations/{id}", self._wrap("delete", self.delete))
        app.router.add_get(p + "/credits", self._wrap("credits", self.credits))

    def _auth(self, request) -> Optional[web.Response]:
        if request.headers.get("Authorization") != f"Bearer {self.valid_key}":
            return _json(401, {"detail": "Invalid API key is provided"})
        return None

    @staticmethod
    def error(status: int, detail: str) -> Reply:
        return Reply(status, {"detail": detail})

    def _generation(self, job: FakeJob) -> dict:
        state, failure, assets = "queued", None, None
        if job.elapsed() > job.latency * 0.3 or job.outcome == "never":
            state = "dreaming"
        if job.done():
            if job.outcome == "success":
                state, assets = "completed", {"video": self.media_url(job.id), "image": None, "progress_video": None}
            else:
                state = "failed"
                failure = ("400: prompt not allowed because advanced moderation failed" if job.outcome == "safety"
                           else "Job failed due to internal error")
        return {"id": job.id, "state": state, "failure_reason": failure, "assets": assets,
                "created_at": "2025-01-01T00:00:00Z", "model": job.model, "generation_type": "video", "request": job.body}

    async def create(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        if not isinstance(body, dict):
            return _json(400, {"detail": "Request body must be JSON"})
        if body.get("model") not in self.MODELS:
            return _json(400, {"detail": f"Invalid model: {body.get('model')!r}"})
        if not isinstance(body.get("prompt", ""), str):
            return _json(400, {"detail": "prompt must be a string"})
        if "duration" in body and body["duration"] not in ("5s", "9s"):
            return _json(400, {"detail": "duration must be one of '5s', '9s'"})
        if "aspect_ratio" in body and body["aspect_ratio"] not in self.RATIOS:
            return _json(400, {"detail": "Invalid aspect_ratio"})
        if "resolution" in body and body["resolution"] not in ("540p", "720p", "1080p", "4k"):
            return _json(400, {"detail": "Invalid resolution"})
        for name, frame in (body.get("keyframes") or {}).items():
            if name not in ("frame0", "frame1") or not isinstance(frame, dict):
                return _json(400, {"detail": f"Invalid keyframe {name}"})
            if frame.get("type") == "image" and not str(frame.get("url", "")).startswith("https://"):
                return _json(400, {"detail": "keyframe image must be a public https URL"})
        job = self.new_job(body["model"], body)
        return _json(201, self._generation(job))

    async def status(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _json(404, {"detail": "Generation not found"})
        return _json(200, self._generation(job))

    async def delete(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        self.jobs.pop(request.match_info["id"], None)
        return web.Response(status=204)

    async def credits(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        return _json(200, {"credit_balance": 1234.5})


# --------------------------------------------------------------------------- Runway


class RunwayFake(FakeServer):
    name = "runway"
    VERSION = "2024-11-06"
    I2V_RATIOS = {
        "gen4_turbo": {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"},
        "veo3": {"1280:720", "720:1280", "1080:1920", "1920:1080"},
    }

    def routes(self, app):
        app.router.add_post("/v1/image_to_video", self._wrap("create", self.image_to_video))
        app.router.add_post("/v1/text_to_video", self._wrap("create", self.text_to_video))
        app.router.add_get("/v1/tasks/{id}", self._wrap("status", self.task))
        app.router.add_delete("/v1/tasks/{id}", self._wrap("cancel", self.cancel))
        app.router.add_get("/v1/organization", self._wrap("organization", self.organization))

    @staticmethod
    def error(status: int, message: str, issues: Optional[list] = None) -> Reply:
        body = {"error": message, "docUrl": "https://docs.dev.runwayml.com/errors"}
        if issues:
            body["issues"] = issues
        return Reply(status, body)

    def _check(self, request) -> Optional[web.Response]:
        if request.headers.get("Authorization") != f"Bearer {self.valid_key}":
            return _json(401, {"error": "Unauthorized: invalid API key"})
        if request.headers.get("X-Runway-Version") != self.VERSION:
            return _json(400, {"error": "Invalid or missing X-Runway-Version header; set it to 2024-11-06",
                               "issues": [{"code": "invalid_value", "path": ["X-Runway-Version"], "message": "required"}]})
        return None

    def _invalid(self, param: str, message: str) -> web.Response:
        return _json(400, {"error": f"Invalid parameter '{param}'",
                           "issues": [{"code": "invalid_value", "path": [param], "message": message}]})

    def _validate_common(self, body: dict, model: str) -> Optional[web.Response]:
        duration = body.get("duration")
        if model == "gen4_turbo" and not (isinstance(duration, int) and 2 <= duration <= 10):
            return self._invalid("duration", "gen4_turbo takes an integer duration from 2 to 10")
        if model == "veo3" and duration != 8:
            return self._invalid("duration", "veo3 duration must be 8")
        if body.get("ratio") not in self.I2V_RATIOS[model]:
            return self._invalid("ratio", f"ratio must be one of {sorted(self.I2V_RATIOS[model])}")
        text = body.get("promptText")
        if text is not None and (not isinstance(text, str) or _utf16(text) > 1000):
            return self._invalid("promptText", "at most 1000 characters")
        seed = body.get("seed")
        if seed is not None and not (isinstance(seed, int) and 0 <= seed <= 4294967295):
            return self._invalid("seed", "0..4294967295")
        if self.outcome == "credit":
            return _json(400, {"error": "You do not have enough credits to run this task."})
        return None

    async def image_to_video(self, request, body):
        if (denied := self._check(request)) is not None:
            return denied
        if not isinstance(body, dict) or body.get("model") not in self.I2V_RATIOS:
            return self._invalid("model", "unknown model")
        image = body.get("promptImage")
        if isinstance(image, str) and image.startswith("data:"):
            if len(image) > 5 * 1024 * 1024 or not _is_data_image(image):
                return self._invalid("promptImage", "data URIs must be base64 images of at most 5 MB")
        elif not (isinstance(image, str) and image.startswith("https://")):
            return self._invalid("promptImage", "an https URL, a data URI or a runway:// URI is required")
        if (bad := self._validate_common(body, body["model"])) is not None:
            return bad
        return _json(200, {"id": self.new_job(body["model"], body).id})

    async def text_to_video(self, request, body):
        if (denied := self._check(request)) is not None:
            return denied
        if not isinstance(body, dict) or body.get("model") != "veo3":
            return self._invalid("model", "text_to_video takes veo3 (gen4_turbo is image-to-video only)")
        if not body.get("promptText"):
            return self._invalid("promptText", "required")
        if (bad := self._validate_common(body, "veo3")) is not None:
            return bad
        return _json(200, {"id": self.new_job("veo3", body).id})

    def _task(self, job: FakeJob) -> dict:
        out = {"id": job.id, "createdAt": "2025-01-01T00:00:00.000Z"}
        if job.cancelled:
            return {**out, "status": "CANCELLED"}
        f = job.fraction()
        if job.done():
            if job.outcome in ("success", "throttled"):
                return {**out, "status": "SUCCEEDED", "output": [self.media_url(job.id)]}
            if job.outcome == "safety":
                return {**out, "status": "FAILED", "failure": "Your prompt did not pass our content moderation.",
                        "failureCode": "SAFETY.INPUT.TEXT"}
            return {**out, "status": "FAILED", "failure": "An unexpected error occurred.", "failureCode": "INTERNAL.BAD_OUTPUT"}
        if f < 0.2:
            return {**out, "status": "PENDING"}
        if job.outcome == "throttled" and f < 0.5:
            return {**out, "status": "THROTTLED"}
        return {**out, "status": "RUNNING", "progress": round(min(f, 0.99) if job.outcome != "never" else 0.5, 3)}

    async def task(self, request, body):
        if (denied := self._check(request)) is not None:
            return denied
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _json(404, {"error": "Task not found"})
        return _json(200, self._task(job))

    async def cancel(self, request, body):
        if (denied := self._check(request)) is not None:
            return denied
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _json(404, {"error": "Task not found"})
        job.cancelled = True
        return web.Response(status=204)

    async def organization(self, request, body):
        if (denied := self._check(request)) is not None:
            return denied
        return _json(200, {"creditBalance": 1000, "tier": {"maxMonthlyCreditSpend": 10000}})


# --------------------------------------------------------------------------- HeyGen


class HeyGenFake(FakeServer):
    name = "heygen"

    def routes(self, app):
        app.router.add_post("/v2/video/generate", self._wrap("create", self.generate))
        app.router.add_get("/v1/video_status.get", self._wrap("status", self.status))
        app.router.add_post("/v1/video.delete", self._wrap("delete", self.delete))

    @staticmethod
    def error(status: int, code: str, message: str) -> Reply:
        return Reply(status, {"data": None, "error": {"code": code, "message": message}})

    def _auth(self, request) -> Optional[web.Response]:
        if request.headers.get("X-Api-Key") != self.valid_key:
            return _json(401, {"data": None, "error": {"code": "unauthorized", "message": "Unauthorized: the API key is invalid"}})
        return None

    def _bad(self, message: str) -> web.Response:
        return _json(400, {"data": None, "error": {"code": "invalid_parameter", "message": message}})

    async def generate(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        inputs = body.get("video_inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 50:
            return self._bad("video_inputs must hold 1 to 50 items")
        for item in inputs:
            ch, voice = item.get("character") or {}, item.get("voice") or {}
            if ch.get("type") == "avatar" and not ch.get("avatar_id"):
                return self._bad("character.avatar_id is required")
            if ch.get("type") == "talking_photo" and not ch.get("talking_photo_id"):
                return self._bad("character.talking_photo_id is required")
            if ch.get("type") not in ("avatar", "talking_photo"):
                return self._bad("character.type must be avatar or talking_photo")
            if voice.get("type") != "text" or not voice.get("voice_id"):
                return self._bad("voice.type text needs voice_id")
            if not isinstance(voice.get("input_text"), str) or not 0 < len(voice["input_text"]) < 5000:
                return self._bad("voice.input_text must be 1 to 4999 characters")
        dim = body.get("dimension") or {}
        if not isinstance(dim.get("width"), int) or not isinstance(dim.get("height"), int):
            return self._bad("dimension.width and dimension.height are required integers")
        job = self.new_job("avatar", body)
        # The v2 gotcha: short API credit is not reported here, only when polling.
        return _json(200, {"error": None, "data": {"video_id": job.id}})

    def _data(self, job: FakeJob) -> dict:
        data = {"id": job.id, "status": "pending", "video_url": None, "thumbnail_url": None, "gif_url": None,
                "caption_url": None, "video_url_caption": None, "duration": None, "callback_id": None,
                "created_at": 1735689600, "error": None}
        f = job.fraction()
        if job.outcome == "credit" and f >= 0.3:
            data.update(status="failed", error={"code": "MOVIO_PAYMENT_INSUFFICIENT_CREDIT",
                                                "message": "Insufficient credit. This operation requires 'api' credits.",
                                                "detail": "Insufficient credit."})
        elif job.done():
            if job.outcome == "success":
                data.update(status="completed", video_url=self.media_url(job.id), duration=2.0,
                            thumbnail_url=f"{self.url}/media/{job.id}.jpg")
            else:
                data.update(status="failed", error={"code": 40119, "message": "Video is too long",
                                                    "detail": "Video is too long (> 3600.0s). Please upgrade your plan."})
        elif f >= 0.5 or job.outcome == "never":
            data["status"] = "processing"
        elif f >= 0.2:
            data["status"] = "waiting"
        return data

    async def status(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self.jobs.get(request.query.get("video_id", ""))
        if job is None:
            return _json(404, {"data": None, "error": {"code": "video_not_found", "message": "Video not found"}})
        return _json(200, {"code": 100, "data": self._data(job), "message": "Success"})

    async def delete(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        return _json(200, {"code": 100, "data": None, "message": "Success"})


# --------------------------------------------------------------------------- fal.ai


class FalFake(FakeServer):
    name = "fal"
    APPS = {
        "fal-ai/stable-video": "svd",
        "fal-ai/kling-video/v2.1/standard/image-to-video": "kling",
        "fal-ai/kling-video/v2.1/pro/image-to-video": "kling",
    }

    def routes(self, app):
        app.router.add_get("/{owner}/{alias}/requests/{rid}/status", self._wrap("status", self.status))
        app.router.add_put("/{owner}/{alias}/requests/{rid}/cancel", self._wrap("cancel", self.cancel))
        app.router.add_get("/{owner}/{alias}/requests/{rid}", self._wrap("result", self.result))
        app.router.add_post("/{app:.+}", self._wrap("create", self.submit))
        app.router.add_route("*", "/{other:.+}", self._wrap("unknown", self.not_found))

    @staticmethod
    def error(status: int, detail: Any, error_type: Optional[str] = None) -> Reply:
        return Reply(status, {"detail": detail}, {"x-fal-error-type": error_type} if error_type else {})

    EXHAUSTED = "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing"

    def _auth(self, request) -> Optional[web.Response]:
        if request.headers.get("Authorization") != f"Key {self.valid_key}":
            return _json(401, {"detail": "Invalid Key authorization header"})
        return None

    def _unprocessable(self, field_name: str, msg: str, typ: str = "value_error") -> web.Response:
        return _json(422, {"detail": [{"loc": ["body", field_name], "msg": msg, "type": typ}]})

    async def not_found(self, request, body):
        return _json(404, {"detail": "Not Found"})

    async def submit(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        app_id = request.match_info["app"]
        kind = self.APPS.get(app_id)
        if kind is None:
            return _json(404, {"detail": f"Application '{app_id}' not found"})
        if self.outcome == "credit":
            return _json(403, {"detail": self.EXHAUSTED})
        if not isinstance(body, dict):
            return self._unprocessable("body", "field required", "missing")
        image = body.get("image_url")
        if not (_is_data_image(image) or (isinstance(image, str) and image.startswith("https://"))):
            return self._unprocessable("image_url", "must be a URL or a base64 data URI of an image")
        if kind == "svd":
            if not (isinstance(body.get("motion_bucket_id", 127), int) and 1 <= body.get("motion_bucket_id", 127) <= 255):
                return self._unprocessable("motion_bucket_id", "ensure this value is between 1 and 255")
            if not (isinstance(body.get("fps", 25), int) and 10 <= body.get("fps", 25) <= 100):
                return self._unprocessable("fps", "ensure this value is between 10 and 100")
        else:
            if not isinstance(body.get("prompt"), str) or not body["prompt"]:
                return self._unprocessable("prompt", "field required", "missing")
            if body.get("duration", "5") not in ("5", "10"):
                return self._unprocessable("duration", "unexpected value; permitted: '5', '10'", "literal_error")
        job = self.new_job(app_id, body)
        root = "/".join(app_id.split("/")[:2])
        base = f"{self.url}/{root}/requests/{job.id}"
        return _json(200, {"request_id": job.id, "gateway_request_id": job.id, "response_url": base,
                           "status_url": base + "/status", "cancel_url": base + "/cancel",
                           "status": "IN_QUEUE", "queue_position": 0})

    def _job_for(self, request) -> Optional[FakeJob]:
        job = self.jobs.get(request.match_info["rid"])
        root = f"{request.match_info['owner']}/{request.match_info['alias']}"
        if job is None or "/".join(job.model.split("/")[:2]) != root:
            return None
        return job

    async def status(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self._job_for(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        logs = [{"message": "Generating...", "level": "INFO", "timestamp": "2025-01-01T00:00:00Z"}] if request.query.get("logs") == "1" else None
        if job.cancelled:
            return _json(200, {"status": "COMPLETED", "logs": logs, "error": "Request was cancelled", "error_type": "request_cancelled"})
        if job.done():
            out = {"status": "COMPLETED", "logs": logs, "metrics": {"inference_time": job.latency}}
            if job.outcome == "safety":
                out.update(error="The content could not be processed because it was flagged by a content checker.",
                           error_type="content_policy_violation")
            elif job.outcome == "fail":
                out.update(error="Internal server error during inference", error_type="internal_error")
            return _json(200, out)
        if job.fraction() < 0.3:
            return _json(200, {"status": "IN_QUEUE", "queue_position": 0})
        return _json(200, {"status": "IN_PROGRESS", "logs": logs})

    async def result(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self._job_for(request)
        if job is None:
            return _json(404, {"detail": "Request not found"})
        if not job.done():
            return _json(400, {"detail": "Request is still in progress"})
        if job.outcome == "safety":
            return _json(422, {"detail": [{"loc": ["body", "image_url"], "msg": "The content was flagged by a content checker.",
                                           "type": "content_policy_violation"}]}, {"x-fal-error-type": "content_policy_violation"})
        if job.outcome != "success":
            return _json(500, {"detail": "Internal server error during inference"})
        return _json(200, {"video": {"url": self.media_url(job.id), "content_type": "video/mp4",
                                     "file_name": "output.mp4", "file_size": len(self.media)}, "seed": 42})

    async def cancel(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self._job_for(request)
        if job is None:
            return _json(404, {"status": "NOT_FOUND"})
        if job.done():
            return _json(400, {"status": "ALREADY_COMPLETED"})
        job.cancelled = True
        return _json(202, {"status": "CANCELLATION_REQUESTED"})


# --------------------------------------------------------------------------- Replicate


class ReplicateFake(FakeServer):
    name = "replicate"
    MODELS = {"minimax/video-01", "wan-video/wan-2.2-i2v-fast", "acme/clip-maker"}
    VERSIONS = {"5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa": "acme/clip-maker"}
    INSUFFICIENT = {"title": "Insufficient credit", "status": 402,
                    "detail": "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to purchase credit."}

    def routes(self, app):
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._wrap("create", self.create_model))
        app.router.add_post("/v1/predictions", self._wrap("create", self.create_version))
        app.router.add_get("/v1/predictions/{id}", self._wrap("status", self.get))
        app.router.add_post("/v1/predictions/{id}/cancel", self._wrap("cancel", self.cancel))

    @staticmethod
    def error(status: int, title: str, detail: str) -> Reply:
        return Reply(status, {"title": title, "detail": detail, "status": status})

    def _auth(self, request) -> Optional[web.Response]:
        if request.headers.get("Authorization") != f"Bearer {self.valid_key}":
            return _json(401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401})
        return None

    def _start(self, model: str, version: Optional[str], body: Any) -> web.Response:
        if self.outcome == "credit":
            return _json(402, self.INSUFFICIENT)
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return _json(422, {"title": "Input validation failed", "status": 422, "detail": "- input: Invalid type. Expected: object"})
        for key, value in body["input"].items():
            if isinstance(value, str) and value.startswith("data:") and not _is_data_image(value):
                return _json(422, {"title": "Input validation failed", "status": 422, "detail": f"- input.{key}: Does not match format 'uri'"})
        job = self.new_job(model, body)
        job.extra["version"] = version or uuid.uuid4().hex * 2
        return _json(201, self._prediction(job))

    async def create_model(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        if model not in self.MODELS:
            return _json(404, {"title": "Not found", "detail": "The requested resource could not be found.", "status": 404})
        return self._start(model, None, body)

    async def create_version(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        version = (body or {}).get("version") if isinstance(body, dict) else None
        model = self.VERSIONS.get(str(version).split(":")[-1])
        if model is None:
            return _json(422, {"title": "Invalid version", "status": 422, "detail": "The specified version does not exist (or perhaps you don't have permission to use it?)"})
        return self._start(model, version, body)

    def _prediction(self, job: FakeJob) -> dict:
        urls = {"get": f"{self.url}/v1/predictions/{job.id}", "cancel": f"{self.url}/v1/predictions/{job.id}/cancel",
                "web": f"https://replicate.com/p/{job.id}"}
        pred = {"id": job.id, "model": job.model, "version": job.extra.get("version"), "input": job.body.get("input"),
                "status": "starting", "output": None, "logs": "", "error": None, "metrics": {},
                "created_at": "2025-01-01T00:00:00Z", "started_at": None, "completed_at": None, "urls": urls}
        f = job.fraction()
        if job.cancelled:
            return {**pred, "status": "canceled"}
        if job.done():
            if job.outcome == "success":
                return {**pred, "status": "succeeded", "output": self.media_url(job.id),
                        "logs": "100%|██████████| 50/50 [00:02<00:00]\n", "metrics": {"predict_time": round(job.latency, 3)}}
            if job.outcome == "aborted":
                return {**pred, "status": "aborted"}
            if job.outcome == "safety":
                return {**pred, "status": "failed", "error": "NSFW content detected. Try running it again, or try a different prompt."}
            return {**pred, "status": "failed", "error": "CUDA out of memory"}
        if f < 0.2:
            return pred
        step = 25 if job.outcome == "never" else max(1, min(49, int(f * 50)))
        bar = "█" * (step // 5)
        return {**pred, "status": "processing", "started_at": "2025-01-01T00:00:01Z",
                "logs": f"loading model\n{step * 2:3d}%|{bar:<10}| {step}/50 [00:01<00:01, 25.0it/s]\n"}

    async def get(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _json(404, {"title": "Not found", "detail": "The requested resource could not be found.", "status": 404})
        return _json(200, self._prediction(job))

    async def cancel(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _json(404, {"title": "Not found", "detail": "The requested resource could not be found.", "status": 404})
        if not job.done():
            job.cancelled = True
        return _json(200, self._prediction(job))


# --------------------------------------------------------------------------- Google Veo


class VeoFake(FakeServer):
    name = "veo"
    prefix = "/v1beta"
    MODELS = {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-3.0-generate-001",
              "veo-3.0-fast-generate-001", "veo-2.0-generate-001"}
    NOT_IN_GEMINI_API = ("seed", "fps", "generateAudio", "storageUri")

    def __init__(self, tls: FakeTLS, media: bytes = b"", valid_key: Optional[str] = None, storage: Optional[MediaServer] = None):
        self.storage = storage
        super().__init__(tls, media, valid_key)

    def routes(self, app):
        p = self.prefix
        app.router.add_post(p + "/models/{model_action}", self._wrap("create", self.predict))
        app.router.add_get(p + "/models/{model}/operations/{op}", self._wrap("status", self.operation))
        app.router.add_get(p + "/files/{file_action}", self._wrap("download", self.download))

    @staticmethod
    def error(code: int, status: str, message: str, details: Optional[list] = None) -> Reply:
        return Reply(code, {"error": {"code": code, "message": message, "status": status, "details": details or []}})

    @classmethod
    def quota_exhausted(cls, retry_delay: str = "1s") -> Reply:
        """The documented 429: no Retry-After header, RetryInfo.retryDelay in the body."""
        return cls.error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.", [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
             "violations": [{"quotaMetric": "generativelanguage.googleapis.com/predict_long_running_requests",
                             "quotaId": "PredictLongRunningRequestsPerMinutePerProject"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay},
        ])

    def _auth(self, request) -> Optional[web.Response]:
        if request.headers.get("x-goog-api-key") != self.valid_key:
            return _json(400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                         "status": "INVALID_ARGUMENT", "details": [
                                             {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                              "domain": "googleapis.com",
                                              "metadata": {"service": "generativelanguage.googleapis.com"}}]}})
        return None

    def _invalid(self, message: str) -> web.Response:
        return _json(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})

    async def predict(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        model, _, action = request.match_info["model_action"].partition(":")
        if action != "predictLongRunning" or model not in self.MODELS:
            return _json(404, {"error": {"code": 404, "message": f"models/{model} is not found for API version v1beta, or is not supported for {action}.", "status": "NOT_FOUND"}})
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list) or len(body["instances"]) != 1:
            return self._invalid("instances must hold exactly one instance")
        inst = body["instances"][0]
        unknown = set(inst) - {"prompt", "image", "lastFrame", "referenceImages", "video"}
        if unknown:
            return self._invalid(f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}")
        image = inst.get("image")
        if image is not None:
            if "gcsUri" in image:
                return self._invalid("gcsUri isn't supported by this model. Please remove it or refer to the Gemini API documentation for supported usage.")
            try:
                base64.b64decode(image.get("bytesBase64Encoded", ""), validate=True)
            except ValueError:
                return self._invalid("image.bytesBase64Encoded is not valid base64")
            if image.get("mimeType") not in ("image/png", "image/jpeg", "image/webp"):
                return self._invalid("image.mimeType must be an image type")
        params = body.get("parameters") or {}
        for name in self.NOT_IN_GEMINI_API:
            if name in params:
                return self._invalid(f"{name} parameter is not supported in Gemini API.")
        duration = params.get("durationSeconds")
        allowed = range(5, 9) if model.startswith("veo-2") else (4, 6, 8)
        if duration is not None and (not isinstance(duration, int) or duration not in allowed):
            return self._invalid(f"The number value for `durationSeconds` is out of bound. Please provide a value in {list(allowed)}.")
        if params.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
            return self._invalid("aspectRatio must be 16:9 or 9:16")
        job = self.new_job(model, body)
        return _json(200, {"name": f"models/{model}/operations/{job.id}"})

    async def operation(self, request, body):
        if (denied := self._auth(request)) is not None:
            return denied
        job = self.jobs.get(request.match_info["op"])
        name = f"models/{request.match_info['model']}/operations/{request.match_info['op']}"
        if job is None or job.model != request.match_info["model"]:
            return _json(404, {"error": {"code": 404, "message": "Operation not found", "status": "NOT_FOUND"}})
        if not job.done():
            return _json(200, {"name": name})
        if job.outcome == "fail":
            return _json(200, {"name": name, "done": True, "error": {"code": 13, "message": "Video generation failed due to an internal error."}})
        gen: dict
        if job.outcome == "safety":
            gen = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [
                "We can't create videos with children. Please try a different prompt."]}
        else:
            gen = {"generatedSamples": [{"video": {"uri": f"{self.base_url}/files/{job.id}:download?alt=media"}}]}
        return _json(200, {"name": name, "done": True, "response": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": gen}})

    async def download(self, request, body):
        file_id, _, action = request.match_info["file_action"].partition(":")
        if action != "download" or request.query.get("alt") != "media":
            return _json(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})
        if request.headers.get("x-goog-api-key") != self.valid_key:
            return _json(403, {"error": {"code": 403, "message": "Method doesn't allow unregistered callers. Please use API Key or other form of API consumer identity to call this API.", "status": "PERMISSION_DENIED"}})
        target = (self.storage.url if self.storage else self.url) + f"/media/{file_id}.mp4?X-Goog-Signature=fake"
        return web.Response(status=302, headers={"Location": target})


ALL_FAKES = (LumaFake, RunwayFake, HeyGenFake, FalFake, ReplicateFake, VeoFake)
