"""Any OpenAI-compatible endpoint: ``POST {base}/chat/completions`` with a ``json_schema`` response format.

Works with OpenAI, vLLM, llama.cpp's server, LM Studio, Ollama's ``/v1`` and
Gemini's OpenAI endpoint. The base URL comes from the node's widget, else
``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``. The key comes from the
environment only — the node's widget holds the variable's NAME
(``OPENAI_API_KEY`` by default), never its value — and never appears in an
error, a log line or the script.
"""
from __future__ import annotations

import asyncio
import os
import re

import httpx

from .backends import (Completion, LLMAuthError, LLMConfigError, LLMModelMissing, LLMRejected, LLMUnavailable,
                       redact, retry_after_seconds)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def resolve_base_url(base_url: str | None) -> str:
    raw = (base_url or "").strip() or os.environ.get("OPENAI_BASE_URL", "").strip() or DEFAULT_BASE_URL
    if not re.match(r"^https?://", raw):
        raise LLMConfigError("openai_base_url", f"{raw!r} is not an http(s) URL like http://127.0.0.1:8000/v1")
    raw = raw.rstrip("/")
    if raw.endswith("/chat/completions"):
        raw = raw[: -len("/chat/completions")]
    return raw


def key_from_env(env_name: str | None) -> tuple[str, str | None]:
    """(variable name, its value or None). The widget may only hold a NAME."""
    name = (env_name or "").strip() or DEFAULT_KEY_ENV
    if not _ENV_NAME.match(name) or name.lower().startswith(("sk-", "sk_")):
        # never echo it: it may be a pasted key
        raise LLMConfigError("api_key_env", "must be the NAME of an environment variable that holds the key "
                                            "(like OPENAI_API_KEY), never the key itself")
    return name, (os.environ.get(name) or None)


def _error_message(resp: httpx.Response) -> tuple[str, str, str]:
    """(message, type, code) from an OpenAI-style error body (or the raw text)."""
    try:
        body = resp.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(err, dict):
            return str(err.get("message") or err), str(err.get("type") or ""), str(err.get("code") or "")
        return str(err), "", ""
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase, "", ""


class OpenAIBackend:
    portable_schema = True

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = None,
                 timeout: float = 180.0):
        if not (model or "").strip():
            raise LLMConfigError("openai_model", "name the model (e.g. gpt-4o-mini, or what your server serves)")
        self.model = model.strip()
        self.base_url = resolve_base_url(base_url)
        self.key_env, self._key = key_from_env(api_key_env)
        self.timeout = float(timeout)
        self.label = f"openai:{self.model}"
        self.where = f"the OpenAI-compatible endpoint {self.base_url}"

    def _headers(self) -> dict:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            h["Authorization"] = f"Bearer {self._key}"
        return h

    def _clean(self, text: str) -> str:
        return redact(text, self._key)

    async def list_models(self) -> list[str] | None:
        try:
            async with httpx.AsyncClient(timeout=min(15.0, self.timeout)) as client:
                r = await client.get(self.base_url + "/models", headers=self._headers())
                r.raise_for_status()
                return sorted(str(m["id"]) for m in r.json().get("data", []) if m.get("id"))
        except (httpx.HTTPError, ValueError, KeyError, AttributeError, TypeError):
            return None

    async def complete(self, messages: list[dict], schema: dict, *, seed: int, temperature: float) -> Completion:
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": float(temperature),
            "seed": int(seed),
            "stream": False,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "ad_script", "strict": True, "schema": schema}},
        }
        timeout = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                resp = await asyncio.wait_for(
                    client.post(self.base_url + "/chat/completions", json=payload, headers=self._headers()),
                    timeout=self.timeout + 5)
        except httpx.ConnectError:
            raise LLMUnavailable(f"{self.where} is not reachable (connection refused)") from None
        except (httpx.TimeoutException, asyncio.TimeoutError):
            raise LLMUnavailable(f"{self.where} gave no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise LLMUnavailable(self._clean(f"{self.where} broke off the answer ({type(e).__name__})"),
                                 transient=True) from None
        if resp.status_code >= 400:
            raise await self._failure(resp)
        try:
            body = resp.json()
            choice = body["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LLMUnavailable(f"{self.where} sent an answer without choices[0].message", transient=True) from None
        content = message.get("content") or ""
        if not content and message.get("refusal"):
            raise LLMRejected(self._clean(f"{self.model} refused: {message['refusal']}"))
        return Completion(content, truncated=choice.get("finish_reason") == "length",
                          info={"finish_reason": choice.get("finish_reason"), "usage": body.get("usage")})

    async def _failure(self, resp: httpx.Response) -> Exception:
        status = resp.status_code
        message, etype, code = _error_message(resp)
        message = self._clean(message)
        if status in (401, 403):
            have = "is set" if self._key else "is not set"
            return LLMAuthError(f"{self.where} refused the key ({status}: {message}); the key comes from the "
                                f"environment variable {self.key_env}, which {have}")
        if status == 404:
            lowered = message.lower()
            if etype == "not_found_error" or code == "model_not_found" or "model" in lowered:
                return LLMModelMissing(self.model, self.where, await self.list_models(), detail=message)
            return LLMConfigError("openai_base_url", f"{self.where} has no /chat/completions (404: {message}); "
                                                     "the base URL usually ends in /v1")
        if status in (408, 409, 429) or status >= 500:
            return LLMUnavailable(f"{self.where} answered {status}: {message}", transient=True,
                                  retry_after=retry_after_seconds(resp.headers.get("retry-after")))
        return LLMRejected(f"{self.where} refused the request ({status}: {message})")
