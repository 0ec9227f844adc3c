"""AdReel storage: finished ads → any S3-compatible store (AWS S3, MinIO, R2, SeaweedFS) → URLs.

Plain Python (boto3), no ComfyUI. The node layer calls:

* ``upload_ad(video, extras, manifest_path=…, config=load_storage_config(prefix_pattern=…, url_mode=…))``
  → ``UploadResult`` (``status`` "uploaded" or "spooled", ``url``, ``urls``, ``files``, ``describe()``,
  ``payload()``);
* ``retry_spooled()`` → ``RetryReport``; ``background.ensure_retry_thread()``: the process's one retry (and
  retention) thread, configured from the environment; ``start_retry_thread(interval)`` for another;
* ``update_manifest_urls(manifest_path, {path_or_sha256: url})``;
* ``clean_retention([spool_dir, claimed_dir], max_age_hours)`` → ``RetentionReport`` (at least 24 h; never
  removes what waits for upload; cleans only folders AdReel created — ``claim_folder``);
* ``manifest_beside(video)``: the render's manifest, by exact name; ``check_spool_dir(spool, forbidden)``.

Every manifest and file under ComfyUI's input/output/temp is untrusted (see ``manifest``); every upload is
recorded in the spool before it starts, so a crash is finished by the next retry (see ``spool``).

Configuration and its precedence rule: see ``config`` (``load_storage_config``).
"""
from .background import SpoolRetryThread, ensure_retry_thread, resume_waiting_uploads, start_retry_thread
from .config import (
    DEFAULT_PREFIX,
    URL_MODES,
    StorageConfig,
    default_config_path,
    default_spool_dir,
    load_storage_config,
)
from .errors import (
    StorageConfigError,
    StorageCredentialsError,
    StorageError,
    StorageNotConfigured,
    StorageRefused,
    StorageUnavailable,
    StorageVerificationError,
)
from .keys import PLACEHOLDERS, content_type_for, render_prefix
from .manifest import load_manifest, manifest_beside, update_manifest_urls
from .retention import RetentionReport, claim_folder, clean_retention
from .spool import RetryReport, SpoolEntry, check_spool_dir, list_spooled, retry_spooled
from .store import S3Store
from .uploader import UploadedFile, UploadResult, progress_line, upload_ad

__all__ = [
    "DEFAULT_PREFIX", "URL_MODES", "PLACEHOLDERS",
    "StorageConfig", "load_storage_config", "default_config_path", "default_spool_dir",
    "StorageError", "StorageNotConfigured", "StorageConfigError", "StorageUnavailable", "StorageRefused",
    "StorageCredentialsError", "StorageVerificationError",
    "upload_ad", "progress_line", "UploadResult", "UploadedFile", "S3Store",
    "retry_spooled", "RetryReport", "SpoolEntry", "SpoolRetryThread", "start_retry_thread", "list_spooled",
    "ensure_retry_thread", "resume_waiting_uploads",
    "update_manifest_urls", "load_manifest", "manifest_beside", "check_spool_dir", "claim_folder",
    "RetentionReport", "clean_retention",
    "content_type_for", "render_prefix",
]
