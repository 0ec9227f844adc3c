"""What every LLM backend shares: the answer type and the ways a call can fail.

A backend turns chat messages plus a JSON Schema into the model's text. How a
failure is handled depends on its kind:

* :class:`LLMUnavailable` — no usable answer (server down, timeout, 5xx, 429):
  retried when ``transient`` and tries remain, then the template takes over;
* :class:`LLMRejected` — the server refused the request (a 400): template;
* :class:`LLMModelMissing`, :class:`LLMAuthError`, :class:`LLMConfigError` —
  something only the user can fix: a clear error, no fallback.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..cloud.http import retry_after_value
from ..cloud.redaction import redact


@dataclass
class Completion:
    text: str
    truncated: bool = False          # stopped at the output-token limit
    info: dict = field(default_factory=dict)


MAX_LISTED = 40  # model names named in a message (a hostile server may list millions)


class LLMError(Exception):
    def __init__(self, message: str = "", *args):
        super().__init__(redact(message), *args)


class LLMUnavailable(LLMError):
    def __init__(self, message: str, transient: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class LLMRejected(LLMError):
    pass


class LLMContextExceeded(LLMRejected):
    """The request does not fit the model's context (llama-server: "exceeds the available context size").

    Never retried as is: the generator shrinks the request or falls back. ``n_ctx`` / ``n_prompt`` are the
    server's figures when it gives them."""

    def __init__(self, message: str, n_ctx: int | None = None, n_prompt: int | None = None):
        super().__init__(message)
        self.n_ctx, self.n_prompt = n_ctx, n_prompt


class LLMModelMissing(LLMError):
    def __init__(self, model: str, where: str, available: list[str] | None, detail: str = ""):
        self.model, self.where, self.available = model, where, available
        if available:
            shown = [str(m)[:100] for m in available[:MAX_LISTED]]
            more = f" (+{len(available) - MAX_LISTED} more)" if len(available) > MAX_LISTED else ""
            has = f"it has: {', '.join(shown)}{more}"
        elif available == []:
            has = "it has no models yet"
        else:
            has = "its model list could not be read"
        hint = " (run `ollama pull <model>` on that server)" if where.startswith(("Ollama", "the Ollama")) else ""
        # the model's name is the workflow's (a visitor's) text: named by its widget, never repeated
        super().__init__(f"{where} has no model of the name the workflow gives{hint}; {has}")


class LLMAuthError(LLMError):
    pass


class LLMConfigError(LLMError):
    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(message)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` value (seconds or an HTTP date) in seconds, or None."""
    return retry_after_value(value)
