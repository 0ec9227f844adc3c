"""Local fakes of Ollama and of an OpenAI-compatible server, following
shared/reference/provider-contracts.md section 7.

Plain HTTP on 127.0.0.1 (as Ollama and local OpenAI-compatible servers run).
``FakeOllama`` serves what Ollama serves:

- ``GET /api/tags`` → ``{"models": [{name, model, modified_at, size, digest, details{…}}]}``;
- ``POST /api/chat`` / ``POST /api/generate``: ``stream`` defaults to **true**
  (NDJSON chunks, the last with ``done: true``, ``done_reason`` and the ns
  timings); ``stream: false`` gives one JSON object. The answer is a string
  in ``message.content`` / ``response``. ``format`` must be ``"json"`` or a
  JSON-Schema object, else 400 ``invalid format: %q; expected "json" or a
  valid JSON Schema object``. ``keep_alive`` is a duration string or seconds
  (negative = forever, 0 = unload; an empty message list with 0 unloads).
- errors as ``{"error": "<msg>"}``: 400 ``missing request body``, 404
  ``model 'x' not found``, 500 / 503 when scripted, and an error mid-stream
  as a ``{"error": …}`` line under an unchanged 200 status line;
- ``POST /v1/chat/completions`` (OpenAI-compatible): any Bearer key accepted
  and ignored; ``response_format`` ``json_schema`` (only ``json_schema.schema``
  is read) or ``json_object``; errors ``{"error": {"message", "type":
  invalid_request_error (400) | not_found_error (404) | api_error, "param":
  null, "code": null}}``; ``GET /v1/models``.

``FakeOpenAICompatible`` serves only ``/v1`` and can require a key (as OpenAI,
vLLM ``--api-key`` or LM Studio do): a wrong key gets OpenAI's 401 body.

What the model says comes from ``fake.model`` (a callable: request → content)
unless ``fake.script(...)`` queued specific behaviours for the next calls:
content strings, ``Reply(status, body)``, ``HANG`` (no answer for
``hang_seconds``), ``StreamError(msg)``, ``Redirect(location, status)`` (an
HTTP redirect, as a gateway or an attacker's server sends) or
``Drip(content, chunk, delay)`` (a 200 answer whose body arrives ``chunk``
bytes every ``delay`` seconds — a slow drip). ``fake.tags_override`` replaces
the ``/api/tags`` model list (e.g. a hostile server listing 10⁶ names).
``FakeOpenAICompatible(echo_key=True)`` quotes the whole key it was given in
its 401 message, as some gateways do. ``closed_url()`` gives a URL where
nothing listens (a server that is down). ``fake.requests`` records every call.

``PlanModel`` is a stand-in LLM that reads AdReel's prompt (brief lines and
the scene plan) and writes a script that meets it — in English or Korean,
different per seed — or, on request, breaks it in one specific way.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from aiohttp import web

from . import record as record_request

HANG = "__hang__"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict = field(default_factory=dict)


@dataclass
class StreamError:
    message: str


@dataclass
class Redirect:
    location: str
    status: int = 302


@dataclass
class Drip:
    content: str          # the assistant's message content (wrapped in the API's JSON)
    chunk: int = 64
    delay: float = 0.5


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: Any
    raw: bytes


def closed_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


_GO_DURATION = re.compile(r"^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


class FakeOllama:
    """Ollama on 127.0.0.1:<random port>, on its own thread and event loop."""

    serve_native = True
    name = "ollama"

    def __init__(self, models: tuple[str, ...] = ("qwen2.5:7b", "llama3.2:3b"), model: Callable | None = None,
                 hang_seconds: float = 60.0, api_key: str | None = None, echo_key: bool = False):
        self.models = list(models)
        self.echo_key = echo_key
        self.tags_override: list | None = None
        self.model: Callable[[dict], str] = model or PlanModel()
        self.hang_seconds = hang_seconds
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.loaded: dict[str, Any] = {}          # model → keep_alive of its last request
        self._queue: list[Any] = []
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    # ---------------------------------------------------------------- control
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *behaviours) -> "FakeOllama":
        """The next calls' behaviours, in order; afterwards ``self.model`` answers again."""
        with self._lock:
            self._queue.extend(behaviours)
        return self

    def fresh(self) -> "FakeOllama":
        """Forget the earlier tests: no recorded requests, no scripted behaviours, the planning model answers."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
        self.model = PlanModel()
        return self

    def chats(self) -> list[Recorded]:
        return [r for r in self.requests if r.path in ("/api/chat", "/api/generate", "/v1/chat/completions")]

    def start(self) -> "FakeOllama":
        ready = threading.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._routes(app)

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._stopping = asyncio.Event()
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake LLM server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---------------------------------------------------------------- plumbing
    def _routes(self, app: web.Application) -> None:
        if self.serve_native:
            app.router.add_get("/", self._root)
            app.router.add_get("/api/version", self._version)
            app.router.add_get("/api/tags", self._tags)
            app.router.add_post("/api/chat", self._chat)
            app.router.add_post("/api/generate", self._generate)
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_get("/v1/models", self._openai_models)

    async def _record(self, request: web.Request) -> Recorded:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        rec = Recorded(request.method, request.path, dict(request.headers), body, raw)
        self.requests.append(rec)
        record_request("llm", request.method, request.path_qs, request.headers, raw)
        return rec

    def _next(self, body: dict) -> Any:
        with self._lock:
            item = self._queue.pop(0) if self._queue else self.model
        return item(body) if callable(item) else item

    @staticmethod
    def _err(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    # ---------------------------------------------------------------- native API
    async def _root(self, request):
        return web.Response(text="Ollama is running")

    async def _version(self, request):
        return web.json_response({"version": "0.12.6"})

    async def _tags(self, request):
        await self._record(request)
        if self.tags_override is not None:
            return web.json_response({"models": self.tags_override})
        models = []
        for name in self.models:
            digest = hashlib.sha256(name.encode()).hexdigest()
            family = name.split(":")[0].rstrip("0123456789.")
            models.append({
                "name": name, "model": name, "modified_at": "2025-10-01T12:00:00.000000000Z",
                "size": 4_683_087_332, "digest": digest,
                "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                            "parameter_size": "7.6B", "quantization_level": "Q4_K_M"},
            })
        return web.json_response({"models": models})

    def _check_request(self, rec: Recorded, kind: str) -> web.Response | None:
        body = rec.body
        if not rec.raw:
            return self._err(400, "missing request body")
        if not isinstance(body, dict):
            return self._err(400, "invalid character in request body")
        if not body.get("model"):
            return self._err(400, "model is required")
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            return self._err(400, f"invalid format: {json.dumps(json.dumps(fmt))}; "
                                  'expected "json" or a valid JSON Schema object')
        ka = body.get("keep_alive")
        if isinstance(ka, str) and ka and not _GO_DURATION.match(ka):
            return self._err(400, f'time: invalid duration "{ka}"')
        if body["model"] not in self.models:
            return self._err(404, f"model '{body['model']}' not found")
        return None

    async def _hang(self):
        """No answer for ``hang_seconds`` (or until the fake stops)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), self.hang_seconds)
        except asyncio.TimeoutError:
            pass

    async def _chat(self, request):
        return await self._native(request, "chat")

    async def _generate(self, request):
        return await self._native(request, "generate")

    async def _native(self, request: web.Request, kind: str):
        rec = await self._record(request)
        bad = self._check_request(rec, kind)
        if bad is not None:
            return bad
        body = rec.body
        model = body["model"]
        self.loaded[model] = body.get("keep_alive", "5m")
        empty = not body.get("messages") if kind == "chat" else not body.get("prompt")
        if empty and body.get("keep_alive") in (0, "0", "0s"):
            self.loaded.pop(model, None)
            done = {"model": model, "created_at": _now(), "done_reason": "unload", "done": True}
            done.update({"message": {"role": "assistant", "content": ""}} if kind == "chat" else {"response": ""})
            return web.json_response(done)
        behaviour = self._next(body)
        if behaviour == HANG:
            await self._hang()
            behaviour = self.model(body)
        if isinstance(behaviour, Reply):
            return web.json_response(behaviour.body, status=behaviour.status, headers=behaviour.headers)
        if isinstance(behaviour, Redirect):
            return web.Response(status=behaviour.status, headers={"Location": behaviour.location})
        if isinstance(behaviour, Drip):
            done = self._chunk(kind, model, behaviour.content, True)
            done["done_reason"] = "stop"
            return await self._drip(request, json.dumps(done).encode(), behaviour)
        stream = body.get("stream", True)  # Ollama streams unless told not to
        timings = {"total_duration": 1_234_567_890, "load_duration": 12_345_678, "prompt_eval_count": 321,
                   "prompt_eval_duration": 234_567_890, "eval_count": 456, "eval_duration": 987_654_321}
        if isinstance(behaviour, StreamError):
            if not stream:
                return self._err(500, behaviour.message)
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
            await resp.prepare(request)
            await resp.write((json.dumps(self._chunk(kind, model, '{"title": "', False)) + "\n").encode())
            await resp.write((json.dumps({"error": behaviour.message}) + "\n").encode())
            await resp.write_eof()
            return resp
        content = str(behaviour)
        if not stream:
            out = self._chunk(kind, model, content, True)
            out.update({"done_reason": "stop", **timings})
            return web.json_response(out)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        step = max(1, len(content) // 3)
        for i in range(0, len(content), step):
            await resp.write((json.dumps(self._chunk(kind, model, content[i:i + step], False)) + "\n").encode())
        last = self._chunk(kind, model, "", True)
        last.update({"done_reason": "stop", **timings})
        await resp.write((json.dumps(last) + "\n").encode())
        await resp.write_eof()
        return resp

    async def _drip(self, request, payload: bytes, how: "Drip"):
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.content_length = len(payload)
        await resp.prepare(request)
        try:
            for i in range(0, len(payload), how.chunk):
                await resp.write(payload[i:i + how.chunk])
                await asyncio.sleep(how.delay)
                if self._stopping.is_set():
                    break
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    @staticmethod
    def _chunk(kind: str, model: str, text: str, done: bool) -> dict:
        out = {"model": model, "created_at": _now()}
        if kind == "chat":
            out["message"] = {"role": "assistant", "content": text}
        else:
            out["response"] = text
        out["done"] = done
        return out

    # ---------------------------------------------------------------- OpenAI-compatible API
    @staticmethod
    def _oai_err(status: int, message: str, etype: str | None = None, code: str | None = None) -> web.Response:
        etype = etype or {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return web.json_response({"error": {"message": message, "type": etype, "param": None, "code": code}},
                                 status=status)

    def _auth_failure(self, rec: Recorded) -> web.Response | None:
        return None  # Ollama accepts any Bearer key and ignores it

    async def _openai_models(self, request):
        rec = await self._record(request)
        bad = self._auth_failure(rec)
        if bad is not None:
            return bad
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1727784000, "owned_by": "library"} for m in self.models]})

    async def _openai_chat(self, request: web.Request):
        rec = await self._record(request)
        bad = self._auth_failure(rec)
        if bad is not None:
            return bad
        body = rec.body
        if not rec.raw or not isinstance(body, dict):
            return self._oai_err(400, "missing request body")
        if not body.get("model"):
            return self._oai_err(400, "model is required")
        rf = body.get("response_format")
        if rf is not None:
            rtype = rf.get("type") if isinstance(rf, dict) else None
            if rtype == "json_schema":
                schema = (rf.get("json_schema") or {}).get("schema")
                if not isinstance(schema, dict):
                    return self._oai_err(400, "invalid JSON schema in response_format")
            elif rtype not in ("json_object", "text"):
                return self._oai_err(400, f"invalid response format type: {rtype!r}")
        if body["model"] not in self.models:
            return self._oai_err(404, f"model '{body['model']}' not found")
        behaviour = self._next(body)
        if behaviour == HANG:
            await self._hang()
            behaviour = self.model(body)
        if isinstance(behaviour, Reply):
            payload = behaviour.body
            if isinstance(payload, dict) and "error" in payload and isinstance(payload["error"], str):
                etype = {400: "invalid_request_error", 404: "not_found_error"}.get(behaviour.status, "api_error")
                payload = {"error": {"message": payload["error"], "type": etype, "param": None, "code": None}}
            return web.json_response(payload, status=behaviour.status, headers=behaviour.headers)
        if isinstance(behaviour, StreamError):
            return self._oai_err(500, behaviour.message)
        if isinstance(behaviour, Redirect):
            return web.Response(status=behaviour.status, headers={"Location": behaviour.location})
        created = int(time.time())
        if isinstance(behaviour, Drip):
            payload = {"id": "chatcmpl-drip", "object": "chat.completion", "created": created, "model": body["model"],
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": behaviour.content},
                                    "finish_reason": "stop"}]}
            return await self._drip(request, json.dumps(payload).encode(), behaviour)
        content = str(behaviour)
        cid = "chatcmpl-" + hashlib.sha1(f"{created}{len(self.requests)}".encode()).hexdigest()[:8]
        if body.get("stream"):
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            step = max(1, len(content) // 3)
            for i in range(0, len(content), step):
                chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                         "system_fingerprint": "fp_ollama",
                         "choices": [{"index": 0, "delta": {"role": "assistant", "content": content[i:i + step]},
                                      "finish_reason": None}]}
                await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            end = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                   "system_fingerprint": "fp_ollama",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}
            await resp.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
            await resp.write_eof()
            return resp
        return web.json_response({
            "id": cid, "object": "chat.completion", "created": created, "model": body["model"],
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 321, "completion_tokens": 456, "total_tokens": 777},
        })


class FakeOpenAICompatible(FakeOllama):
    """Only ``/v1`` (vLLM, llama.cpp server, LM Studio, OpenAI), optionally requiring a key."""

    serve_native = False
    name = "openai"

    def _auth_failure(self, rec: Recorded) -> web.Response | None:
        if not self.api_key:
            return None
        auth = rec.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else ""
        if given == self.api_key:
            return None
        if not given:
            return self._oai_err(401, "You didn't provide an API key. You need to provide your API key in an "
                                      "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                                 "invalid_request_error")
        masked = given if self.echo_key else given[:3] + "*" * max(0, len(given) - 7) + given[-4:]
        return self._oai_err(401, f"Incorrect API key provided: {masked}. You can find your API key at "
                                  "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                             "invalid_api_key")


# =========================================================================== a stand-in model


def _messages(body: dict) -> list[dict]:
    if "messages" in body:
        return body["messages"]
    return [{"role": "user", "content": body.get("prompt", "")}]


def read_prompt(body: dict) -> dict:
    """What AdReel's first user message asks for: brief fields and the scene plan."""
    user = next(m["content"] for m in _messages(body) if m.get("role") == "user")
    brief = dict(re.findall(r"^- ([a-z ()A-Z]+): (.*)$", user, flags=re.M))
    plan = [(seg, float(sec), int(budget)) for seg, sec, budget in
            re.findall(r"^\s+\d+\. (\w+): ([0-9.]+) s — narration at most (\d+) ", user, flags=re.M)]
    lang = re.search(r"\((\w{2,3}(?:-\w+)*)\)\s*$", brief.get("language", "(en)"))
    total = float(re.search(r"add up to exactly ([0-9.]+) seconds", user).group(1))
    return {"brand": brief.get("brand", ""), "product": brief.get("product", ""),
            "cta": brief.get("call to action (CTA)", ""), "language": lang.group(1) if lang else "en",
            "plan": plan, "total": total}


def request_seed(body: dict) -> int:
    return int((body.get("options") or {}).get("seed", body.get("seed", 0)) or 0)


_LINES = {
    "en": {
        "hook": ["Stop. Look at {product}.", "Your day just got easier.", "Meet {product}."],
        "problem": ["Chores eat your evenings.", "Mess again? Every single day."],
        "solution": ["{product} handles it for you.", "{brand} built {product} to do it."],
        "benefit": ["Get your evenings back.", "More time, less fuss."],
        "proof": ["Families love {brand}.", "Thousands switched to {brand}."],
        "offer": ["Save big this week."],
        "cta": ["{cta}", "{brand}. {cta}"],
    },
    "ko": {
        "hook": ["{product}를 만나보세요.", "하루가 가벼워집니다.", "잠깐, {product}입니다."],
        "problem": ["매일 반복되는 청소.", "또 지저분해졌나요?"],
        "solution": ["{product}가 대신합니다.", "{brand}가 만든 {product}."],
        "benefit": ["저녁 시간을 돌려받으세요.", "더 편하게, 더 여유롭게."],
        "proof": ["많은 가족이 {brand}를 선택했습니다.", "고객 만족 일등, {brand}."],
        "offer": ["이번 주 특별 할인."],
        "cta": ["{cta}", "{brand}. {cta}"],
    },
}
def _units(text: str, lang: str) -> int:
    """Words (or, for Korean, syllables with a Latin word as two) — as the prompt's budget counts them
    (a model that reads "at most 4 words" and counts)."""
    if lang == "ko":
        return len(re.findall(r"[\uac00-\ud7a3]", text)) + 2 * len(re.findall(r"[A-Za-z]+", text)) + \
            len(re.findall(r"\d", text))
    tokens = re.findall(r"[^\W_]+(?:['’][^\W_]+)?", text)  # "acme.com" is two words, "X2" two
    return sum(2 if re.search(r"\d", t) and re.search(r"[^\W\d_]", t) else 1 for t in tokens)


_CAMERAS = ["zoom_in", "zoom_out", "pan_left", "pan_right", "drift", "pulse"]


class PlanModel:
    """A fake LLM that follows AdReel's prompt. ``flaw`` breaks one thing on purpose:

    ``None`` (a good answer), ``"prose"`` (text, no JSON), ``"schema"`` (JSON
    that breaks the schema), ``"durations"`` (scenes add up to 80 % of the
    length), ``"language"`` (English narration whatever the brief's language),
    ``"long_narration"`` (narration far too long for its scene).
    """

    def __init__(self, flaw: str | None = None, tag: str = "LLM"):
        self.flaw = flaw
        self.tag = tag
        self.calls = 0

    def __call__(self, body: dict) -> str:
        self.calls += 1
        if self.flaw == "prose":
            return ("Sure! Here is an idea for your ad: open on the product in a sunny kitchen, show how easy "
                    "it is, then end with the call to action. Let me know if you want changes.")
        p = read_prompt(body)
        if self.flaw == "schema":
            return json.dumps({"title": "Broken", "scenes": [
                {"segment": "opening shot", "duration": "three seconds", "camera": "dolly zoom",
                 "narration": "Hello"}]})
        seed = request_seed(body)
        rng = random.Random(f"{seed}:{p['product']}")
        lang = "en" if self.flaw == "language" else ("ko" if p["language"].startswith("ko") else "en")
        lines = _LINES[lang]
        fields = {k: p[k] for k in ("brand", "product", "cta")}
        scenes = []
        plan = p["plan"]
        for i, (seg, sec, budget) in enumerate(plan):
            pool = lines.get(seg) or lines["solution"]
            # consecutive seeds open differently (a real model varies far more)
            text = (pool[seed % len(pool)] if i == 0 else rng.choice(pool)).format(**fields)
            if seg == "cta":
                on_screen, narration = p["cta"], text
            else:
                on_screen, narration = text.split(".")[0][:40] or text, text
            if i == 0 and seg != "cta":
                narration = f"{p['brand']} {p['product']}."
                on_screen = text if p["product"] in text else f"{p['product']}: {text}"
            if _units(narration, lang) > budget:  # the prompt's budget for this scene
                narration = next((t.format(**fields) for t in pool if _units(t.format(**fields), lang) <= budget), "")
            if self.flaw == "long_narration":
                narration = " ".join([narration or text] * 12)
            scenes.append({
                "segment": seg,
                "duration": round(sec * (0.8 if self.flaw == "durations" else 1.0), 2),
                "on_screen_text": on_screen,
                "narration": narration,
                "visual_direction": f"{self.tag} shot {i + 1}: {p['product']} in a bright home",
                "image_prompt": f"{p['product']} in a bright modern living room, {seg} moment, soft daylight, "
                                f"advertising photo, variant {seed}",
                "negative_prompt": "blurry, text, watermark",
                "camera": _CAMERAS[(seed + i) % len(_CAMERAS)],
                "transition": "cut" if i == 0 else rng.choice(["cut", "crossfade", "fade"]),
                "music_mood": "upbeat",
                "brand_elements": ["logo"] if seg in ("hook", "cta") else [],
            })
        # the plan's durations, nudged to show this is the LLM's own timing, still adding up exactly
        if self.flaw != "durations" and len(scenes) >= 2:
            shift = round(0.1 * ((seed % 3) - 1), 2)
            if scenes[0]["duration"] + shift > 0.3 and scenes[1]["duration"] - shift > 0.3:
                scenes[0]["duration"] = round(scenes[0]["duration"] + shift, 2)
                scenes[1]["duration"] = round(scenes[1]["duration"] - shift, 2)
        title = f"{self.tag}: {p['brand']} {p['product']} #{seed}"
        return json.dumps({"title": title, "scenes": scenes}, ensure_ascii=False)
