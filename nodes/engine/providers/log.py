"""The providers' logger, behind the pack's one redaction layer (``engine/cloud/redaction.py``): its log
filter masks every registered secret and credential shape before a record is written."""
from __future__ import annotations

import logging

from ..cloud.redaction import install_log_filter

logger = logging.getLogger("adreel.providers")
install_log_filter()
