"""Ollama through the official ``ollama`` client: ``/api/chat`` with a JSON-Schema format.

Host: the node's widget, else ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``.
The request sets ``stream: false`` (Ollama streams by default), ``format`` (the
script's JSON Schema), ``keep_alive`` (keeps the model loaded while a workflow
iterates; ``0`` unloads it after the answer) and ``options`` (temperature, seed,
context size, output limit).
"""
from __future__ import annotations

import asyncio
import os
import re
import threading
import time

import httpx

from .backends import Completion, LLMConfigError, LLMModelMissing, LLMRejected, LLMUnavailable

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_MODEL = "qwen2.5:7b"
_GO_DURATION = re.compile(r"^-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def resolve_host(host: str | None) -> str:
    """The Ollama base URL the client will use, spelled out for messages."""
    raw = (host or "").strip() or os.environ.get("OLLAMA_HOST", "").strip() or DEFAULT_HOST
    try:
        from ollama._client import _parse_host  # the client's own normalisation
        return _parse_host(raw)
    except Exception:  # pragma: no cover - older clients
        return raw if "://" in raw else f"http://{raw}"


def parse_keep_alive(value) -> float | str | None:
    """``keep_alive`` as Ollama takes it: a Go duration string or seconds (negative: forever)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    v = str(value).strip()
    if not v:
        return None
    if _NUMBER.match(v):
        f = float(v)
        return int(f) if f.is_integer() else f
    if _GO_DURATION.match(v):
        return v
    raise LLMConfigError("keep_alive", f"{value!r} is not a duration like 10m, 1h, 30s, 0 (unload now) "
                                       "or -1 (keep loaded)")


# --------------------------------------------------------------- model lists
_MODELS: dict[str, tuple[float, list[str] | None]] = {}
_LOCK = threading.Lock()


def remember_models(host: str, models: list[str] | None) -> None:
    with _LOCK:
        _MODELS[host] = (time.monotonic(), models)


def known_models() -> list[str]:
    """Every model name seen on any Ollama server this process has talked to."""
    with _LOCK:
        names = {m for _, models in _MODELS.values() for m in (models or [])}
    return sorted(names)


def list_models_sync(host: str | None = None, timeout: float = 1.5, max_age: float = 5.0) -> list[str] | None:
    """Model names from ``GET /api/tags`` (None when the server does not answer).

    Cached for ``max_age`` seconds per host, so callers on hot paths (the node
    schema) cost at most one short request every few seconds.
    """
    url = resolve_host(host)
    with _LOCK:
        hit = _MODELS.get(url)
    if hit and time.monotonic() - hit[0] < max_age:
        return hit[1]
    try:
        r = httpx.get(url + "/api/tags", timeout=timeout)
        r.raise_for_status()
        models = sorted({m.get("model") or m.get("name") for m in r.json().get("models", [])} - {None})
    except (httpx.HTTPError, ValueError, AttributeError):
        models = None
    remember_models(url, models)
    return models


class OllamaBackend:
    portable_schema = False

    def __init__(self, model: str, host: str | None = None, keep_alive="10m", context_size: int = 8192,
                 timeout: float = 180.0, max_output_tokens: int | None = None):
        if not (model or "").strip():
            raise LLMConfigError("model", "choose an Ollama model (the list comes from the server's /api/tags)")
        self.model = model.strip()
        self.host = resolve_host(host)
        self.keep_alive = parse_keep_alive(keep_alive)
        self.context_size = int(context_size or 0)
        self.timeout = float(timeout)
        self.max_output_tokens = max_output_tokens
        self.label = f"ollama:{self.model}"
        self.where = f"Ollama at {self.host}"

    def _client(self):
        import ollama
        return ollama.AsyncClient(host=self.host, timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)))

    async def list_models(self) -> list[str] | None:
        client = self._client()
        try:
            resp = await asyncio.wait_for(client.list(), timeout=min(15.0, self.timeout))
            models = sorted(m.model for m in resp.models if m.model)
        except Exception:
            models = None
        finally:
            await client.close()
        remember_models(self.host, models)
        return models

    async def complete(self, messages: list[dict], schema: dict, *, seed: int, temperature: float) -> Completion:
        import ollama
        # enough output for the longest script the schema allows (about 250 tokens a scene), no runaway
        scenes = int(((schema.get("properties") or {}).get("scenes") or {}).get("maxItems") or 12)
        limit = self.max_output_tokens or max(2048, 600 + 250 * scenes)
        options = {"temperature": float(temperature), "seed": int(seed), "num_predict": limit}
        if self.context_size > 0:
            options["num_ctx"] = self.context_size
        client = self._client()
        try:
            resp = await asyncio.wait_for(
                client.chat(model=self.model, messages=messages, format=schema, options=options,
                            keep_alive=self.keep_alive, stream=False),
                timeout=self.timeout + 5)
        except ollama.ResponseError as e:
            raise await self._failure(e.status_code, str(e.error)) from None
        except ConnectionError:
            raise LLMUnavailable(f"{self.where} is not reachable (connection refused): is `ollama serve` running?")
        except (httpx.TimeoutException, asyncio.TimeoutError):
            raise LLMUnavailable(f"{self.where} gave no answer within {self.timeout:g} s")
        except httpx.HTTPError as e:
            raise LLMUnavailable(f"{self.where} broke off the answer ({type(e).__name__}: {e})", transient=True)
        except (ValueError, TypeError) as e:  # not the JSON body the contract promises
            raise LLMUnavailable(f"{self.where} sent an unreadable answer ({e})", transient=True)
        finally:
            await client.close()
        content = (resp.message.content or "") if resp.message else ""
        info = {k: getattr(resp, k, None) for k in ("done_reason", "total_duration", "load_duration",
                                                    "prompt_eval_count", "eval_count")}
        return Completion(content, truncated=resp.done_reason == "length", info=info)

    async def _failure(self, status: int, message: str) -> Exception:
        if status == 404 and "not found" in message.lower():
            return LLMModelMissing(self.model, self.where, await self.list_models(), detail=message)
        if status in (429, 500, 502, 503, 504):
            return LLMUnavailable(f"{self.where} answered {status}: {message}", transient=True)
        if status == 499:
            return LLMUnavailable(f"{self.where} cancelled the request: {message}")
        return LLMRejected(f"{self.where} refused the request ({status}): {message}")

