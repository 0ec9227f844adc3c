"""Storage errors, and the redaction that keeps credentials out of them.

Every message an exception of this package carries, and every line it logs
through the ``adreel.storage`` logger, passes through ``redact``: the secret key
(and session token) of every configuration loaded in this process is replaced
by ``***`` and the access key id by a masked form (``…WXYZ``), wherever they
would appear.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

MASK = "***"
_lock = threading.Lock()
_secrets: dict[str, str] = {}  # value -> replacement

logger = logging.getLogger("adreel.storage")


def mask_access_key(value: Optional[str]) -> str:
    """An access key id shown as ``…WXYZ`` (last four characters), never whole."""
    if not value:
        return "(none)"
    value = str(value)
    return "…" + value[-4:] if len(value) > 8 else "…"


def register_secret(value: Optional[str], replacement: str = MASK) -> None:
    """Remember ``value`` so that ``redact`` replaces it from now on."""
    value = (value or "").strip()
    if len(value) >= 4:
        with _lock:
            _secrets[value] = replacement


def redact(text) -> str:
    """``text`` with every registered secret replaced."""
    if text is None:
        return ""
    text = str(text)
    with _lock:
        known = sorted(_secrets.items(), key=lambda kv: len(kv[0]), reverse=True)
    for secret, replacement in known:
        if secret in text:
            text = text.replace(secret, replacement)
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own handling
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True


if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
    logger.addFilter(_RedactingFilter())


class StorageError(RuntimeError):
    """Base class. ``reason`` is a short machine-readable cause."""

    reason = "error"

    def __init__(self, message: str, *, reason: Optional[str] = None):
        if reason:
            self.reason = reason
        self.message = redact(message)
        super().__init__(self.message)


class StorageNotConfigured(StorageError):
    """No bucket or no credentials: says which variables or file to set."""

    reason = "not-configured"


class StorageConfigError(StorageError):
    """A configuration value is present but unusable (named by its source)."""

    reason = "bad-config"


class StorageUnavailable(StorageError):
    """The store cannot be reached or fails (connection refused, timeout, 5xx): retry later."""

    reason = "unavailable"


class StorageRefused(StorageError):
    """The store answered but refused (bucket missing, access denied, bad request)."""

    reason = "refused"


class StorageCredentialsError(StorageRefused):
    """The store rejected the credentials (SignatureDoesNotMatch, InvalidAccessKeyId, …).

    Raised by ``upload_ad`` after the files were spooled: ``result`` holds the
    ``UploadResult`` with the spool paths.
    """

    reason = "credentials"

    def __init__(self, message: str, *, reason: Optional[str] = None, result=None):
        super().__init__(message, reason=reason)
        self.result = result


class StorageVerificationError(StorageError):
    """An object was written but what the store reports does not match the local file."""

    reason = "verification"
