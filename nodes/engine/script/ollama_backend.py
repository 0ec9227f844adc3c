"""Ollama's ``/api/chat`` with a JSON-Schema ``format``, spoken directly over bounded httpx.

Host: the node's widget, else ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``
(normalised the way the ``ollama`` client does: ``host`` → ``http://host:11434``).
The request sets ``stream: false`` (Ollama streams by default), ``format`` (the
script's JSON Schema), ``keep_alive`` (keeps the model loaded while a workflow
iterates; ``0`` unloads it after the answer) and ``options`` (temperature, seed,
context size, output limit).

Safety (``cloud/llm_policy.py``): the host must pass the destination rules
(public, or a host the operator configured or allowed; loopback and
private ranges only so, or with ``ADREEL_LLM_ALLOW_PRIVATE=1``; link-local /
metadata only when that host is configured), a widget host may
not carry a path (only the configured ``OLLAMA_HOST`` may), redirects are never
followed, answers are capped in bytes (``ADREEL_MAX_LLM_ANSWER_BYTES``) and in
total time (``ADREEL_HTTP_TOTAL_SECONDS``), an error answer's text never reaches
a message (only its status), and ``keep_alive`` / ``context_size`` are capped by
``ADREEL_LLM_MAX_KEEP_ALIVE`` / ``ADREEL_LLM_MAX_CONTEXT``. ``OLLAMA_API_KEY``
(Ollama's cloud) is sent only to the configured ``OLLAMA_HOST``.

Model lists: only the configured host's names are remembered for the node's
combo (``known_models``); a list from any other host is used for that host's
error message and forgotten.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from urllib.parse import urlsplit

from .. import limits
from ..cloud.http import ResponseTooLarge, host_port, is_loopback_host
from ..cloud.llm_policy import PolicyError, check_llm_destination
from ..cloud.secrets import SecretsFileError, find_key
from .context import cap_context
from .backends import Completion, LLMConfigError, LLMModelMissing, LLMRejected, LLMUnavailable
from .transport import BrokeOff, TimedOut, Unreachable, exchange, exchange_answer, total_seconds

logger = logging.getLogger("adreel.script")
DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_MODEL = "qwen2.5:7b"
MAX_MODELS = 500          # names kept from one /api/tags answer
MAX_MODEL_NAME = 200
_GO_DURATION = re.compile(r"^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_GO_PART = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def normalise_host(raw: str) -> str:
    """``host[:port]`` / ``scheme://host[:port][/path]`` as the base URL the ``ollama`` client would use."""
    raw = raw.strip()
    scheme, rest = ("http", raw)
    if "://" in raw:
        scheme, rest = raw.split("://", 1)
    scheme = scheme.lower()
    rest = rest.rstrip("/")
    hostport, _, path = rest.partition("/")
    try:
        parts = urlsplit(f"{scheme}://{hostport}")
        port = parts.port
    except ValueError:
        raise LLMConfigError("ollama_host", "is not a host or URL like http://127.0.0.1:11434") from None
    host = parts.hostname or "127.0.0.1"
    if port is None:
        port = 443 if scheme == "https" else 11434
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}" + (f"/{path}" if path else "")


def configured_host() -> str:
    return normalise_host(os.environ.get("OLLAMA_HOST", "").strip() or DEFAULT_HOST)


def resolve_host(host: str | None) -> str:
    """The Ollama base URL for ``host`` (the widget) — checked against the destination rules."""
    given = (host or "").strip()
    configured = configured_host()
    if not given:
        return configured
    url = normalise_host(given)
    if url == configured:
        return url
    if not url.startswith(("http://", "https://")):
        raise LLMConfigError("ollama_host", "must be an http(s) URL like http://127.0.0.1:11434")
    if urlsplit(url).path not in ("", "/"):
        raise LLMConfigError("ollama_host", "must be scheme://host:port without a path (only the operator's "
                                            "OLLAMA_HOST may carry one)")
    try:
        check_llm_destination(url, None, "ollama_host")
    except PolicyError as e:
        raise LLMConfigError(e.field, str(e)) from None
    return url


def _seconds(value) -> float:
    """keep_alive in seconds (negative: forever)."""
    if isinstance(value, (int, float)):
        return float(value)
    v = str(value)
    sign = -1.0 if v.startswith("-") else 1.0
    return sign * sum(float(n) * _UNIT[u] for n, u in _GO_PART.findall(v))


def parse_keep_alive(value, cap: float | None = None) -> float | str | None:
    """``keep_alive`` as Ollama takes it (a Go duration string or seconds), capped at ``cap`` seconds
    (``ADREEL_LLM_MAX_KEEP_ALIVE``): a negative value ("forever") or a longer one becomes the cap."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise LLMConfigError("keep_alive", "is not a duration")
    if isinstance(value, (int, float)):
        parsed: float | str = value
        if value != value or value in (float("inf"), float("-inf")):
            raise LLMConfigError("keep_alive", "must be a finite duration")
    else:
        v = str(value).strip()
        if not v:
            return None
        if len(v) > 40:
            raise LLMConfigError("keep_alive", "is not a duration like 10m, 1h, 30s or 0")
        if _NUMBER.match(v):
            f = float(v)
            parsed = int(f) if f.is_integer() else f
        elif _GO_DURATION.match(v):
            parsed = v
        else:
            raise LLMConfigError("keep_alive", "is not a duration like 10m, 1h, 30s, 0 (unload now) "
                                               "or -1 (as long as the server allows)")
    limit = limits.MAX_LLM_KEEP_ALIVE.read() if cap is None else cap
    seconds = _seconds(parsed)
    if seconds < 0 or seconds > limit:
        return int(limit)
    return parsed


# --------------------------------------------------------------- model lists
_MODELS: dict[str, tuple[float, list[str] | None]] = {}
_LOCK = threading.Lock()
_REFRESHING = threading.Event()


def remember_models(host: str, models: list[str] | None) -> None:
    """Keep ``models`` for the node's combo — only when ``host`` is the configured OLLAMA_HOST."""
    if host != configured_host():
        return
    with _LOCK:
        _MODELS.clear()
        _MODELS[host] = (time.monotonic(), models)


def known_models() -> list[str]:
    """The model names last listed by the configured Ollama server (no request)."""
    with _LOCK:
        hit = _MODELS.get(configured_host())
    return list(hit[1] or []) if hit else []


def _names(body) -> list[str]:
    items = body.get("models", []) if isinstance(body, dict) else []
    if not isinstance(items, list):
        return []
    names = set()
    for m in items[: MAX_MODELS * 4]:
        if isinstance(m, dict):
            name = m.get("model") or m.get("name")
            if isinstance(name, str) and 0 < len(name) <= MAX_MODEL_NAME:
                names.add(name)
        if len(names) >= MAX_MODELS:
            break
    return sorted(names)


async def fetch_models(host: str, seconds: float = 3.0) -> list[str] | None:
    """Names from ``GET {host}/api/tags`` (None when the server does not answer), bounded in bytes and time."""
    try:
        ex = await exchange("GET", host + "/api/tags", headers=_auth_headers(host), seconds=seconds)
        if ex.status != 200:
            return None
        return _names(ex.json())
    except (Unreachable, TimedOut, BrokeOff, ResponseTooLarge, ValueError, LLMConfigError):
        return None


async def list_configured_models(seconds: float = 3.0) -> tuple[str, list[str] | None]:
    host = configured_host()
    models = await fetch_models(host, seconds)
    remember_models(host, models)
    return host, models


def refresh_in_background(max_age: float = 30.0) -> None:
    """Refresh the configured host's list on a daemon thread when older than ``max_age`` (never blocks)."""
    with _LOCK:
        hit = _MODELS.get(configured_host())
    if hit and time.monotonic() - hit[0] < max_age:
        return
    if _REFRESHING.is_set():
        return
    _REFRESHING.set()

    def run():
        try:
            asyncio.run(list_configured_models())
        except Exception:
            pass
        finally:
            _REFRESHING.clear()

    threading.Thread(target=run, name="adreel-ollama-models", daemon=True).start()


def _auth_headers(host: str) -> dict:
    """``OLLAMA_API_KEY`` only for the configured OLLAMA_HOST (https, or http to loopback)."""
    try:
        key = find_key(["OLLAMA_API_KEY"])
    except SecretsFileError:
        key = None
    if key is None:
        return {}
    if host_port(host) != host_port(configured_host()):
        return {}
    if not (host.startswith("https://") or is_loopback_host(urlsplit(host).hostname)):
        return {}
    return {"Authorization": f"Bearer {key.reveal()}"}


class OllamaBackend:
    portable_schema = False

    def __init__(self, model: str, host: str | None = None, keep_alive="10m", context_size: int = 8192,
                 timeout: float = 180.0, max_output_tokens: int | None = None):
        if not (model or "").strip():
            raise LLMConfigError("model", "choose an Ollama model (the list comes from the server's /api/tags)")
        self.model = model.strip()[:MAX_MODEL_NAME]
        self.host = resolve_host(host)
        self.keep_alive = parse_keep_alive(keep_alive)
        self.context_size = cap_context(context_size)
        self.timeout = total_seconds(timeout)
        self.max_output_tokens = max_output_tokens
        self.label = f"ollama:{self.model}"
        # the server as shown: the operator's OLLAMA_HOST, never a host a visitor typed
        self.where = f"Ollama at {self.host}" if self.host == configured_host() else "the Ollama server in ollama_host"

    async def _check_destination(self) -> None:
        if self.host == configured_host():
            return
        try:
            await asyncio.to_thread(check_llm_destination, self.host, None, "ollama_host", resolve=True)
        except PolicyError as e:
            raise LLMConfigError(e.field, str(e)) from None

    async def list_models(self) -> list[str] | None:
        try:
            await self._check_destination()
        except LLMConfigError:
            return None
        models = await fetch_models(self.host, min(15.0, self.timeout))
        remember_models(self.host, models)
        return models

    async def complete(self, messages: list[dict], schema: dict, *, seed: int, temperature: float,
                       max_tokens: int | None = None, answer_cap: int = 2048) -> Completion:
        # within a known context, what the prompt leaves of it (``max_tokens``); else enough output for the
        # longest script the schema allows (``answer_cap``), no runaway (context.py)
        limit = self.max_output_tokens or max_tokens or answer_cap
        options = {"temperature": float(temperature), "seed": int(seed), "num_predict": limit}
        if self.context_size > 0:
            options["num_ctx"] = self.context_size
        payload = {"model": self.model, "messages": messages, "format": schema, "options": options,
                   "stream": False}
        if self.keep_alive is not None:
            payload["keep_alive"] = self.keep_alive
        await self._check_destination()
        ex = await exchange_answer("POST", self.host + "/api/chat", where=self.where,
                                   refused_hint=": is `ollama serve` running?", json_body=payload,
                                   headers=_auth_headers(self.host), seconds=self.timeout)
        if 300 <= ex.status < 400:
            raise LLMConfigError("ollama_host", f"{self.where} answered a redirect ({ex.status}); AdReel never "
                                                "follows one: use the final URL")
        if ex.status >= 400:
            try:
                body = ex.json()
                message = str(body.get("error") if isinstance(body, dict) else body)[:200]
            except ValueError:
                message = ""
            raise await self._failure(ex.status, message)
        try:
            body = ex.json()
            message = body.get("message") or {}
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise TypeError("content is not text")
        except (ValueError, TypeError, AttributeError) as e:  # not the JSON body the contract promises
            raise LLMUnavailable(f"{self.where} sent an unreadable answer ({type(e).__name__})", transient=True) from None
        if body.get("error"):
            raise LLMUnavailable(f"{self.where} answered with an error (its text is not shown)", transient=True)
        info = {k: body.get(k) for k in ("done_reason", "total_duration", "load_duration",
                                         "prompt_eval_count", "eval_count")}
        return Completion(content, truncated=body.get("done_reason") == "length", info=info)

    async def _failure(self, status: int, message: str) -> Exception:
        """The server's text only decides which error; the message is fixed (never the server's words)."""
        logger.warning("%s answered HTTP %s: %s", self.where, status, message[:200])  # the operator's log only
        if status == 404 and "not found" in message.lower():
            return LLMModelMissing(self.model, self.where, await self.list_models())
        if status in (429, 500, 502, 503, 504):
            return LLMUnavailable(f"{self.where} answered HTTP {status}", transient=True)
        if status == 499:
            return LLMUnavailable(f"{self.where} cancelled the request")
        return LLMRejected(f"{self.where} refused the request (HTTP {status})")
