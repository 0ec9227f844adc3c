"""Storage errors, and the redaction that keeps credentials out of them.

Every message an exception of this package carries passes through the pack's
one redaction layer (``engine/cloud/redaction.py``): the secret key (and
session token) of every configuration loaded in this process is replaced by
``***`` and the access key id by a masked form (``…WXYZ``), wherever they — or
their encoded forms, or a prefix of them — would appear; presigned-URL
signatures are masked too. Log lines of ``adreel.storage`` (and every other
logger) are redacted by the same layer's log filter.
"""
from __future__ import annotations

import logging
from typing import Optional

from ..cloud.redaction import install_log_filter, redact

logger = logging.getLogger("adreel.storage")
install_log_filter()


def mask_access_key(value: Optional[str]) -> str:
    """An access key id shown as ``…WXYZ`` (last four characters), never whole."""
    if not value:
        return "(none)"
    value = str(value)
    return "…" + value[-4:] if len(value) > 8 else "…"


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
