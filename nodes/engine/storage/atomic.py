"""Kept for ``spool.py`` only, until its store no longer writes JSON files: the one writer is
``media.files.write_atomic`` (and ``fsync_dir``)."""
from __future__ import annotations

from ..media.files import fsync_dir, write_atomic as write_text_atomic  # noqa: F401
