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


@dataclass
class Completion:
    text: str
    truncated: bool = False          # stopped at the output-token limit
    info: dict = field(default_factory=dict)


class LLMError(Exception):
    pass


class LLMUnavailable(LLMError):
    def __init__(self, message: str, transient: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class LLMRejected(LLMError):
    pass


class LLMModelMissing(LLMError):
    def __init__(self, model: str, where: str, available: list[str] | None, detail: str = ""):
        self.model, self.where, self.available = model, where, available
        if available:
            has = f"it has: {', '.join(available)}"
        elif available == []:
            has = "it has no models yet"
        else:
            has = "its model list could not be read"
        hint = f" (run `ollama pull {model}` on that server)" if where.startswith("Ollama") else ""
        super().__init__(f"{where} has no model {model!r}{hint}; {has}" + (f" [{detail}]" if detail else ""))


class LLMAuthError(LLMError):
    pass


class LLMConfigError(LLMError):
    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(message)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret (and any long prefix of it) blanked out."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
            for n in (24, 16, 12, 8):
                if len(s) > n:
                    text = text.replace(s[:n], "***")
    return text


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
