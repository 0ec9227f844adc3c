"""The providers' names for the pack's one redaction layer (``engine/cloud/redaction.py``).

Kept because many provider modules import ``logger``, ``redact``,
``redact_url`` and ``register_secret`` from here; the registry, the patterns
and the log filter live in ``cloud.redaction`` and are shared with the LLM
backends, cloud TTS and storage.
"""
from __future__ import annotations

import logging

from ..cloud.redaction import MASK, RedactingFilter, install_log_filter, redact, redact_url, register_secret

__all__ = ["MASK", "RedactingFilter", "logger", "redact", "redact_url", "register_secret"]

logger = logging.getLogger("adreel.providers")
install_log_filter()
