"""The storage background: one daemon thread per process that retries the spool and applies retention.

``ensure_retry_thread(forbidden)`` starts it on first use (AssetUpload runs, or at load when uploads wait:
``resume_waiting_uploads``), with the interval and the retention age from the environment:

* ``ADREEL_SPOOL_RETRY_SECONDS``: seconds between retries (default 300, at least 1);
* ``ADREEL_RETENTION_HOURS``: age after which the spool's leftovers (partial copies, copies of uploaded
  files) are removed (``retention.clean_retention``); unset: nothing is ever removed. Files waiting for
  upload are never removed.

A bad value is logged and the default used: a typo must not stop uploads.
"""
from __future__ import annotations

import threading
from typing import Iterable, Optional

from .config import StorageConfig, load_storage_config
from .errors import StorageError, logger
from ..cloud.redaction import redact
from ..limits import env_number
from .retention import MIN_RETENTION_HOURS, clean_retention
from .spool import RetryReport, check_spool_dir, list_spooled, retry_spooled

RETRY_INTERVAL_ENV = "ADREEL_SPOOL_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 300.0
RETENTION_ENV = "ADREEL_RETENTION_HOURS"


def retry_interval() -> float:
    """``ADREEL_SPOOL_RETRY_SECONDS``, at least 1; unset or bad: 300."""
    return env_number(RETRY_INTERVAL_ENV, DEFAULT_RETRY_SECONDS, 1)


def retention_hours() -> Optional[float]:
    """``ADREEL_RETENTION_HOURS``: unset → None (nothing is ever removed); below 24 h (a copy or upload could
    still be running) or not a number → refused with a warning, retention stays off."""
    return env_number(RETENTION_ENV, None, MIN_RETENTION_HOURS, otherwise="retention stays off")


class SpoolRetryThread(threading.Thread):
    """Retries the spool every ``interval_seconds`` until ``stop_event`` is set. Never raises."""

    def __init__(self, interval_seconds: float = 300.0, *, stop_event: Optional[threading.Event] = None,
                 config: Optional[StorageConfig] = None, spool_dir=None,
                 retention_hours: Optional[float] = None, retention_folders=()):
        super().__init__(name="adreel-spool-retry", daemon=True)
        # retention: with an age set, spool entries and temporary files older than it are removed
        self.retention_hours = retention_hours
        self.retention_folders = list(retention_folders)
        self.interval = max(0.05, float(interval_seconds))
        self.stop_event = stop_event or threading.Event()
        self.config = config
        self.spool_dir = spool_dir
        self.last_report: Optional[RetryReport] = None
        self.runs = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.last_report = retry_spooled(self.config, self.spool_dir)
                if self.last_report.uploaded or self.last_report.failed:
                    logger.info("%s", self.last_report.summary())
            except StorageError as exc:
                logger.debug("spool retry skipped: %s", exc.message)
            except Exception as exc:  # noqa: BLE001 - keep the thread alive
                logger.warning("spool retry failed: %s: %s", type(exc).__name__, redact(exc))
            if self.retention_hours is not None:
                self._clean()
            self.runs += 1
            self.stop_event.wait(self.interval)

    def _clean(self) -> None:
        try:
            spool = self.spool_dir or (self.config.spool_dir if self.config else None)
            if spool is None:
                try:
                    spool = load_storage_config().spool_dir
                except StorageError:
                    spool = None
            folders = ([spool] if spool else []) + self.retention_folders
            report = clean_retention(folders, self.retention_hours)  # (a spool is cleaned under its lock)
            if report.removed:
                logger.info("retention: removed %d item(s) older than %gh", len(report.removed), self.retention_hours)
        except Exception as exc:  # noqa: BLE001 - keep the thread alive
            logger.warning("retention failed: %s: %s", type(exc).__name__, redact(exc))

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        self.stop_event.set()
        self.join(timeout)


def start_retry_thread(interval_seconds: float = 300.0, *, stop_event: Optional[threading.Event] = None,
                       config: Optional[StorageConfig] = None, spool_dir=None,
                       retention_hours: Optional[float] = None, retention_folders=()) -> SpoolRetryThread:
    """Start a daemon thread that calls ``retry_spooled`` now and then every ``interval_seconds``
    (and, with ``retention_hours``, cleans what is older than that)."""
    thread = SpoolRetryThread(interval_seconds, stop_event=stop_event, config=config, spool_dir=spool_dir,
                              retention_hours=retention_hours, retention_folders=retention_folders)
    thread.start()
    return thread


_retry_lock = threading.Lock()
_retry_thread: Optional[SpoolRetryThread] = None


def ensure_retry_thread() -> SpoolRetryThread:
    """The one spool-retry daemon thread of this process, started on first use (again if it died).

    Retention covers the spool only. ``temp/adreel_inputs`` (the Brief's logo and product images) is never
    cleaned by AdReel: ComfyUI's cache keeps handing out Brief outputs that point there, and ComfyUI empties
    its temp folder at every start anyway."""
    global _retry_thread
    with _retry_lock:
        if _retry_thread is None or not _retry_thread.is_alive():
            interval = retry_interval()
            _retry_thread = start_retry_thread(interval, retention_hours=retention_hours())
            logger.info("AdReel: spool retry runs every %gs in the background", interval)
        return _retry_thread


def resume_waiting_uploads(forbidden: Iterable[str]) -> Optional[SpoolRetryThread]:
    """At load: when uploads wait in the spool (spooled, or interrupted by a crash or a restart), start the
    retry thread now rather than on the next upload. ``forbidden``: folders the spool may not be in (where
    network users write files). Returns the thread, or None when nothing waits. Never raises."""
    try:
        config = load_storage_config()
        retention_hours()  # a bad ADREEL_RETENTION_HOURS is reported at start, not only on first use
        spool = check_spool_dir(config.spool_dir, list(forbidden))
        if spool.is_dir() and list_spooled(spool):
            return ensure_retry_thread()
    except Exception as exc:  # noqa: BLE001 - storage not configured, a bad spool: the node says so when used
        logger.debug("no spool resume at load: %s", redact(exc))
    return None
