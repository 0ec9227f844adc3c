"""Any OpenAI-compatible endpoint: ``POST {base}/chat/completions`` with a ``json_schema`` response format.

Works with OpenAI, vLLM, llama.cpp's server, LM Studio, Ollama's ``/v1`` and
Gemini's OpenAI endpoint. The node's widget holds the *name* of the key
variable (``OPENAI_API_KEY`` by default, or ``none``), never its value; the
key itself comes from the environment, then the AdReel secrets file, and goes
only to the host configured for it in the environment (``cloud/llm_policy.py``:
``OPENAI_BASE_URL`` for ``OPENAI_API_KEY``, ``ADREEL_LLM_URL_<NAME>`` for
``ADREEL_LLM_KEY_<NAME>``, or a host in ``ADREEL_LLM_ALLOWED_HOSTS``). The base
URL comes from the widget, else the one configured for the key, else
``https://api.openai.com/v1``. The key never appears in an error, a log line or
the script; redirects are never followed; answers are capped in bytes and time.
"""
from __future__ import annotations

import asyncio
import logging
import os

from ..cloud.llm_policy import KNOWN_KEYS, NO_KEY, PolicyError, check_key_name, check_llm_destination, configured_base_url
from ..cloud.secrets import SecretsFileError, find_key
from .context import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, cap_context
from .backends import (LLMContextExceeded, Completion, LLMAuthError, LLMConfigError, LLMModelMissing, LLMRejected, LLMUnavailable,
                       retry_after_seconds)
from ..cloud.redaction import redact
from .transport import BrokeOff, TimedOut, Unreachable, exchange, exchange_answer, total_seconds

logger = logging.getLogger("adreel.script")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


def resolve_base_url(base_url: str | None, key_name: str | None = DEFAULT_KEY_ENV) -> str:
    raw = (base_url or "").strip()
    if not raw:
        raw = (configured_base_url(key_name) if key_name else None) or \
            os.environ.get("OPENAI_BASE_URL", "").strip() or DEFAULT_BASE_URL
    if not raw.lower().startswith(("http://", "https://")):
        raise LLMConfigError("openai_base_url", "is not an http(s) URL like http://127.0.0.1:8000/v1")
    raw = raw.rstrip("/")
    if raw.endswith("/chat/completions"):
        raw = raw[: -len("/chat/completions")]
    return raw


def key_name_from_widget(env_name: str | None) -> str | None:
    """The allowed key variable the widget names (None: no key); ``LLMConfigError('api_key_env')`` otherwise."""
    try:
        return check_key_name(env_name, DEFAULT_KEY_ENV)
    except PolicyError as e:
        raise LLMConfigError(e.field, str(e)) from None


def _error_message(exchange_, limit: int = 200) -> tuple[str, str, str]:
    """(message, type, code) from an OpenAI-style error body (or the raw text), clipped and redacted."""
    try:
        body = exchange_.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(err, dict):
            return (redact(str(err.get("message") or err)[:limit]), str(err.get("type") or "")[:60],
                    str(err.get("code") or "")[:60])
        return redact(str(err)[:limit]), "", ""
    except ValueError:
        return exchange_.error_text(limit) or f"HTTP {exchange_.status}", "", ""


class OpenAIBackend:
    portable_schema = True

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str | None = None,
                 timeout: float = 180.0, context_size: int = 0):
        if not (model or "").strip():
            raise LLMConfigError("openai_model", "name the model (e.g. gpt-4o-mini, or what your server serves)")
        self.model = model.strip()[:200]
        self.key_env = key_name_from_widget(api_key_env)
        self.base_url = resolve_base_url(base_url, self.key_env)
        try:
            key = find_key([self.key_env]) if self.key_env else None
        except SecretsFileError as e:
            raise LLMConfigError("api_key_env", str(e)) from None
        self._key = key.reveal() if key else None
        # a key (when one is set) goes only where the environment binds it; no key: destination rules only
        try:
            check_llm_destination(self.base_url, self.key_env if self._key else None, "openai_base_url")
        except PolicyError as e:
            raise LLMConfigError(e.field, str(e)) from None
        self.timeout = total_seconds(timeout)
        # the context the request must fit in (llama-server's -c; 0: unknown, no budget, no max_tokens)
        self.context_size = cap_context(context_size)
        self._tokenize: bool | None = None   # does the server count tokens (llama-server's /tokenize)?
        self.label = f"openai:{self.model}"
        # the endpoint as shown: the operator's configured URL, never a URL a visitor typed
        self.where = (f"the OpenAI-compatible endpoint {self.base_url}" if not (base_url or "").strip()
                      else "the OpenAI-compatible endpoint in openai_base_url")

    def _headers(self) -> dict:
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            h["Authorization"] = f"Bearer {self._key}"
        return h

    def _clean(self, text: str) -> str:
        return redact(text, self._key)

    async def _check_destination(self) -> None:
        """The destination check with DNS (a name that resolves to a metadata / private address)."""
        try:
            await asyncio.to_thread(check_llm_destination, self.base_url, self.key_env if self._key else None,
                                    "openai_base_url", resolve=True)
        except PolicyError as e:
            raise LLMConfigError(e.field, str(e)) from None

    async def list_models(self) -> list[str] | None:
        try:
            await self._check_destination()
            ex = await exchange("GET", self.base_url + "/models", headers=self._headers(),
                                seconds=min(15.0, self.timeout))
            if ex.status != 200:
                return None
            data = ex.json().get("data", [])
            return sorted({str(m["id"])[:200] for m in data[:5000] if isinstance(m, dict) and m.get("id")})
        except (LLMConfigError, Unreachable, TimedOut, BrokeOff, ValueError, KeyError, AttributeError, TypeError):
            return None
        except Exception:  # a too-large list: no list
            return None

    async def count_tokens(self, messages: list[dict]) -> int | None:
        """The prompt's tokens: the server's own count (llama-server's ``/tokenize``, next to ``/v1``) plus the
        chat template's overhead; None when the server cannot count (the conversation estimates, context.py).
        Asked once; a server without it (404, anything else) is not asked again."""
        if self._tokenize is not False and self.base_url.endswith("/v1"):
            text = "\n".join(str(m.get("content", "")) for m in messages)
            try:
                await self._check_destination()
                ex = await exchange("POST", self.base_url[:-3] + "/tokenize", json_body={"content": text},
                                    headers=self._headers(), seconds=min(10.0, self.timeout))
                tokens = ex.json().get("tokens") if ex.status == 200 else None
                if isinstance(tokens, list):
                    self._tokenize = True
                    return PROMPT_OVERHEAD + MESSAGE_OVERHEAD * len(messages) + len(tokens)
            except Exception:  # refused destination, unreachable, not JSON, a too-large answer: no count here
                pass
            self._tokenize = False
        return None

    async def complete(self, messages: list[dict], schema: dict, *, seed: int, temperature: float,
                       max_tokens: int | None = None, answer_cap: int = 2048) -> Completion:
        # ``answer_cap`` (the longest script the schema allows) is not sent: without a known context
        # (``max_tokens``) the server decides
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": float(temperature),
            "seed": int(seed),
            "stream": False,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "ad_script", "strict": True, "schema": schema}},
        }
        if max_tokens:
            payload["max_tokens"] = int(max_tokens)
        await self._check_destination()
        resp = await exchange_answer("POST", self.base_url + "/chat/completions", where=self.where,
                                     clean=self._clean, json_body=payload, headers=self._headers(),
                                     seconds=self.timeout)
        if 300 <= resp.status < 400:
            raise LLMConfigError("openai_base_url", f"{self.where} answered a redirect ({resp.status}); AdReel "
                                                    "never follows one (a key must not travel to another host): "
                                                    "use the final URL")
        if resp.status >= 400:
            raise await self._failure(resp)
        try:
            body = resp.json()
            choice = body["choices"][0]
            message = choice.get("message") or {}
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LLMUnavailable(f"{self.where} sent an answer without choices[0].message", transient=True) from None
        if not content and message.get("refusal"):
            raise LLMRejected(f"{self.label} refused to write the script (its answer is not shown)")
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
        return Completion(content, truncated=choice.get("finish_reason") == "length",
                          info={"finish_reason": str(choice.get("finish_reason"))[:40], "usage": usage})

    async def _failure(self, resp) -> Exception:
        """The error a failed answer becomes. The server's own text only decides which error; the message
        is a fixed description with the status code, never the server's words (a server the workflow
        chose could otherwise read anything back to a visitor)."""
        status = resp.status
        message, etype, code = _error_message(resp)
        logger.warning("%s answered HTTP %s: %s", self.where, status, message)  # the operator's log only
        if status in (401, 403):
            if not self.key_env:
                return LLMAuthError(f"{self.where} wants a key (HTTP {status}); api_key_env is {NO_KEY}")
            have = "is set" if self._key else "is not set"
            return LLMAuthError(f"{self.where} refused the key (HTTP {status}); the key comes from the "
                                f"environment variable {self.key_env}, which {have}")
        if status == 404:
            lowered = message.lower()
            if etype == "not_found_error" or code == "model_not_found" or "model" in lowered:
                return LLMModelMissing(self.model, self.where, await self.list_models())
            return LLMConfigError("openai_base_url", f"{self.where} has no /chat/completions (HTTP 404); "
                                                     "the base URL usually ends in /v1")
        if status in (408, 409, 429) or status >= 500:
            return LLMUnavailable(f"{self.where} answered HTTP {status}", transient=True,
                                  retry_after=retry_after_seconds(resp.headers.get("retry-after")))
        if status == 400 and _context_error(message, etype, code):
            body = _error_body(resp)
            return LLMContextExceeded(f"{self.where} refused the request: it does not fit the model's context "
                                      f"(HTTP {status})", n_ctx=_int(body.get("n_ctx")),
                                      n_prompt=_int(body.get("n_prompt_tokens")))
        return LLMRejected(f"{self.where} refused the request (HTTP {status})")


def _context_error(message: str, etype: str, code: str) -> bool:
    """llama-server's exceed_context_size_error, OpenAI's context_length_exceeded, vLLM's wording."""
    text = f"{message} {etype} {code}".lower()
    return any(k in text for k in ("context size", "context_size", "context length", "context_length",
                                   "maximum context"))


def _error_body(exchange_) -> dict:
    try:
        body = exchange_.json()
        err = body.get("error", body) if isinstance(body, dict) else {}
        return err if isinstance(err, dict) else {}
    except ValueError:
        return {}


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


__all__ = ["DEFAULT_BASE_URL", "DEFAULT_KEY_ENV", "DEFAULT_MODEL", "KNOWN_KEYS", "OpenAIBackend",
           "key_name_from_widget", "resolve_base_url"]
