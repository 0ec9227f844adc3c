"""Keep API keys out of messages, logs, reprs and records.

Every key the engine reads is registered here (``register_secret``); ``redact``
then replaces it wherever it would appear, and also masks the usual shapes of a
credential (``Authorization: Bearer …``, ``Key …``, ``x-goog-api-key: …``,
``X-Api-Key: …``, ``?key=…``) even for values this process never registered.

The package logs through one logger, ``adreel.providers``, which carries a
``RedactingFilter``; exception messages are redacted when the exception is built
(see ``errors.ProviderError``).
"""
from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()

# Header / query shapes that carry a credential. Group 1 is kept, the value is masked.
_PATTERNS = [
    re.compile(r"(?i)(\bBearer\s+)[^\s'\",;]+"),
    re.compile(r"(?i)(\bAuthorization['\"]?\s*[:=]\s*['\"]?(?:Key|Token|Basic)\s+)[^\s'\",;]+"),
    re.compile(r"(?i)(\b(?:x-goog-api-key|x-api-key|api[_-]?key|api[_-]?token|api[_-]?secret)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&]+"),
    re.compile(r"(?i)([?&](?:key|api_key|token|access_token)=)[^&\s'\"]+"),
]

logger = logging.getLogger("adreel.providers")


def register_secret(value: str) -> None:
    """Remember ``value`` so that ``redact`` masks it from now on."""
    value = (value or "").strip()
    if len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text) -> str:
    """``text`` with every registered secret and every credential-shaped value masked."""
    if text is None:
        return ""
    text = str(text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_url(url: str) -> str:
    """A URL fit for a message: scheme, host and path only (presigned query strings dropped)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparseable URL>"
    shown = f"{parts.scheme}://{parts.hostname or ''}"
    if parts.port:
        shown += f":{parts.port}"
    shown += parts.path
    if parts.query:
        shown += "?…"
    return redact(shown)


class RedactingFilter(logging.Filter):
    """A logging filter that renders the record's message and redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not leak its arguments either
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


if not any(isinstance(f, RedactingFilter) for f in logger.filters):
    logger.addFilter(RedactingFilter())
