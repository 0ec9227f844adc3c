"""Where AdReel stores its outputs: S3 settings from the environment or a local file.

Sources, and which one wins
---------------------------
Settings come from three places. **For each setting, the first place that sets
it wins:**

1. **The caller** — only the non-secret choices a workflow may carry: the key
   prefix pattern, the URL mode, the presigned-URL expiry and the spool folder.
   Endpoint, bucket and credentials are never taken from a node widget, so they
   never land in workflow JSON, PNG/MP4 metadata or ComfyUI's history.
2. **The environment.** Within it, AdReel's own variables come first, then the
   MinIO-style ones of the seed specs, then boto3's standard ones:

   ========================  ====================================================
   setting                   variables, first set (non-empty) wins
   ========================  ====================================================
   bucket                    ``ADREEL_S3_BUCKET``, ``MINIO_BUCKET``
   endpoint                  ``MINIO_ENDPOINT`` (``host:port`` or a URL; without a
                             scheme ``MINIO_SECURE`` picks https — the default —
                             or http), ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``
   credentials               ``MINIO_ACCESS_KEY`` + ``MINIO_SECRET_KEY``, then
                             ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY``
                             (+ ``AWS_SESSION_TOKEN``), then ``AWS_PROFILE`` (a
                             profile of ``~/.aws/credentials``)
   region                    ``AWS_REGION``, ``AWS_DEFAULT_REGION``
   public / CDN base URL     ``ADREEL_S3_PUBLIC_BASE_URL``
   key prefix pattern        ``ADREEL_S3_PREFIX``
   URL mode                  ``ADREEL_S3_URL_MODE`` (auto | presigned | public | s3)
   presigned URL expiry      ``ADREEL_S3_URL_EXPIRY`` (seconds)
   spool folder              ``ADREEL_SPOOL_DIR``
   ========================  ====================================================

3. **The config file** — JSON at ``$ADREEL_STORAGE_CONFIG``, else
   ``$XDG_CONFIG_HOME/adreel/storage.json`` (``~/.config/adreel/storage.json``)::

       {"endpoint_url": "http://127.0.0.1:9000", "bucket": "ads",
        "access_key": "…", "secret_key": "…", "region": "us-east-1",
        "public_base_url": "https://cdn.example.com/ads",
        "prefix": "{brand}/{date}/{run}/", "url_mode": "auto",
        "url_expiry_seconds": 86400, "multipart_threshold_mb": 64,
        "multipart_chunksize_mb": 16, "max_concurrency": 4,
        "addressing_style": "path", "spool_dir": "~/adreel-spool",
        "history_prefix": "history/", "connect_timeout": 5, "read_timeout": 60}

   Keep it readable by you only (``chmod 600``): a group/world-readable file
   that holds a secret is still used, with a warning in the log.

Then the built-in defaults: AWS S3 itself (no endpoint), region ``us-east-1``,
prefix ``{brand}/{date}/{run}/``, URL mode ``auto`` (the public base URL when
one is set, else a presigned URL), 24 h expiry, multipart above 64 MiB.

The access key and the secret are resolved **as a pair** from the first source
that sets either of them — a MinIO key is never combined with an AWS secret,
nor an environment key with a file secret; a pair missing its other half is an
error naming the missing variable. Without a bucket, or without credentials,
``load_storage_config`` raises ``StorageNotConfigured`` listing what to set.

The secret key is never printed: ``repr`` masks it, every message and log line
of the storage package is redacted, and the access key id appears only as
``…WXYZ``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from ..cloud.secrets import config_file_path, warn_if_shared
from .errors import StorageConfigError, StorageNotConfigured, logger, mask_access_key
from ..cloud.redaction import register_secret

CONFIG_FILE_ENV = "ADREEL_STORAGE_CONFIG"
SPOOL_DIR_ENV = "ADREEL_SPOOL_DIR"
DEFAULT_PREFIX = "{brand}/{date}/{run}/"
DEFAULT_REGION = "us-east-1"
DEFAULT_EXPIRY_SECONDS = 24 * 3600
MAX_EXPIRY_SECONDS = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer
URL_MODES = ("auto", "presigned", "public", "s3")
MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB  # S3's smallest multipart part

_FILE_KEYS = {
    "endpoint_url", "bucket", "access_key", "secret_key", "session_token", "profile", "region",
    "public_base_url", "prefix", "url_mode", "url_expiry_seconds", "multipart_threshold_mb",
    "multipart_chunksize_mb", "max_concurrency", "addressing_style", "spool_dir", "history_prefix",
    "connect_timeout", "read_timeout", "verify_tls",
}

_HELP = (
    "Set ADREEL_S3_BUCKET (or MINIO_BUCKET) and credentials — MINIO_ACCESS_KEY + MINIO_SECRET_KEY "
    "or AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY — plus MINIO_ENDPOINT or AWS_ENDPOINT_URL_S3 for "
    "a store other than AWS S3; or write them to {path} "
    '(JSON: {{"endpoint_url": …, "bucket": …, "access_key": …, "secret_key": …}}).'
)


def default_config_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    return config_file_path(CONFIG_FILE_ENV, "storage.json", environ)


def default_spool_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """Outside ComfyUI's temp folder (ComfyUI empties that at start): a state folder."""
    env = os.environ if environ is None else environ
    if os.name == "nt":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "adreel" / "spool"
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "adreel" / "spool"


@dataclass(frozen=True)
class StorageConfig:
    """Resolved storage settings. ``sources`` names where each came from (never values)."""

    bucket: str
    endpoint_url: Optional[str] = None
    region: str = DEFAULT_REGION
    access_key: Optional[str] = field(default=None, repr=False)
    secret_key: Optional[str] = field(default=None, repr=False)
    session_token: Optional[str] = field(default=None, repr=False)
    profile: Optional[str] = None
    public_base_url: Optional[str] = None
    prefix_pattern: str = DEFAULT_PREFIX
    url_mode: str = "auto"
    url_expiry_seconds: int = DEFAULT_EXPIRY_SECONDS
    multipart_threshold: int = 64 * MIB
    multipart_chunksize: int = 16 * MIB
    max_concurrency: int = 4
    addressing_style: str = "auto"
    spool_dir: Path = field(default_factory=default_spool_dir)
    history_prefix: str = "history/"
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    verify_tls: bool = True
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        register_secret(self.secret_key)
        register_secret(self.session_token)
        if self.access_key:
            register_secret(self.access_key, mask_access_key(self.access_key))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"StorageConfig({shown})"

    __str__ = __repr__

    @property
    def credentials_source(self) -> str:
        return self.sources.get("credentials", "unknown")

    def describe(self) -> dict[str, Any]:
        """A dict fit for a log line or a UI: no secret, the access key masked."""
        return {
            "bucket": self.bucket,
            "endpoint_url": self.endpoint_url or "AWS S3",
            "region": self.region,
            "access_key": mask_access_key(self.access_key) if self.access_key else None,
            "credentials": self.credentials_source,
            "public_base_url": self.public_base_url,
            "prefix_pattern": self.prefix_pattern,
            "url_mode": self.url_mode,
            "url_expiry_seconds": self.url_expiry_seconds,
            "multipart_threshold": self.multipart_threshold,
            "spool_dir": str(self.spool_dir),
        }

    def with_choices(
        self,
        *,
        prefix_pattern: Optional[str] = None,
        url_mode: Optional[str] = None,
        url_expiry_seconds: Optional[int] = None,
        spool_dir=None,
    ) -> "StorageConfig":
        """A copy with the caller's non-secret choices applied (they win over every other source)."""
        changes: dict[str, Any] = {}
        sources = dict(self.sources)
        if prefix_pattern is not None and str(prefix_pattern).strip():
            changes["prefix_pattern"] = str(prefix_pattern).strip()
            sources["prefix_pattern"] = "caller"
        if url_mode is not None and str(url_mode).strip():
            changes["url_mode"] = _url_mode(str(url_mode).strip().lower(), "url_mode")
            sources["url_mode"] = "caller"
        if url_expiry_seconds is not None:
            changes["url_expiry_seconds"] = _expiry(url_expiry_seconds, "url_expiry_seconds")
            sources["url_expiry_seconds"] = "caller"
        if spool_dir is not None and str(spool_dir).strip():
            changes["spool_dir"] = Path(spool_dir).expanduser()
            sources["spool_dir"] = "caller"
        if not changes:
            return self
        return dataclasses.replace(self, sources=sources, **changes)


def _clean(value) -> Optional[str]:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _bool(value, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise StorageConfigError(f"{source} must be true or false (got {text!r})")


def _number(value, source: str, *, minimum: float, maximum: Optional[float] = None, integer=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StorageConfigError(f"{source} must be a number (got {value!r})") from None
    if number != number or number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise StorageConfigError(f"{source} must be {bound} (got {value!r})")
    return int(number) if integer else number


def _expiry(value, source: str) -> int:
    return _number(value, source, minimum=1, maximum=MAX_EXPIRY_SECONDS, integer=True)


def _url_mode(value: str, source: str) -> str:
    if value not in URL_MODES:
        raise StorageConfigError(f"{source} must be one of {', '.join(URL_MODES)} (got {value!r})")
    return value


def _http_url(value: str, source: str, *, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StorageConfigError(f"{source} must be an http(s) URL for the {what} (got {value!r})")
    if parts.username or parts.password:
        # never echo it: the user part may be a credential
        raise StorageConfigError(f"{source} must not contain a user name or password; set the credentials separately")
    return value.rstrip("/")


def _minio_endpoint(value: str, secure: Optional[str], source: str) -> str:
    if "://" in value:
        return _http_url(value, source, what="S3 endpoint")
    use_tls = True if secure is None else _bool(secure, "MINIO_SECURE")
    return _http_url(("https://" if use_tls else "http://") + value, source, what="S3 endpoint")


def _read_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # json's message can quote the file's content (a secret): name the error type and line only
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise StorageConfigError(
            f"cannot read the storage config file {path}{where} ({type(exc).__name__}); "
            "it must be a JSON object"
        ) from None
    if not isinstance(data, dict):
        raise StorageConfigError(f"the storage config file {path} must hold a JSON object")
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise StorageConfigError(
            f"the storage config file {path} has unknown keys {unknown}; known keys: {sorted(_FILE_KEYS)}"
        )
    if data.get("secret_key"):
        warn_if_shared(path, "storage config", logger)
    return data


def load_storage_config(
    environ: Optional[Mapping[str, str]] = None,
    config_path=None,
    *,
    prefix_pattern: Optional[str] = None,
    url_mode: Optional[str] = None,
    url_expiry_seconds: Optional[int] = None,
    spool_dir=None,
) -> StorageConfig:
    """Resolve the storage settings (see the module docstring for the precedence rule).

    ``environ`` defaults to ``os.environ``; ``config_path`` to ``default_config_path()``.
    The keyword arguments are the caller's non-secret choices; they win.
    """
    env = os.environ if environ is None else environ
    path = Path(config_path).expanduser() if config_path else default_config_path(env)
    file = _read_file(path)
    file_src = f"config file {path}"
    sources: dict[str, str] = {}

    def pick(name: str, env_vars: tuple[str, ...], file_key: Optional[str]):
        for var in env_vars:
            value = _clean(env.get(var))
            if value is not None:
                sources[name] = var
                return value, var
        if file_key is not None:
            value = file.get(file_key)
            if value is not None and (not isinstance(value, str) or value.strip()):
                sources[name] = f"{file_src} ({file_key})"
                return value, f"{file_key} in {path}"
        return None, None

    bucket, bucket_src = pick("bucket", ("ADREEL_S3_BUCKET", "MINIO_BUCKET"), "bucket")

    # endpoint
    endpoint = None
    minio = _clean(env.get("MINIO_ENDPOINT"))
    if minio is not None:
        endpoint = _minio_endpoint(minio, _clean(env.get("MINIO_SECURE")), "MINIO_ENDPOINT")
        sources["endpoint_url"] = "MINIO_ENDPOINT"
    else:
        value, src = pick("endpoint_url", ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), "endpoint_url")
        if value is not None:
            endpoint = _http_url(str(value).strip(), src, what="S3 endpoint")

    # credentials, as a pair from one source
    access_key = secret_key = session_token = profile = None
    cred_src = None
    for a_var, s_var, t_var in (
        ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", None),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    ):
        a, s = _clean(env.get(a_var)), _clean(env.get(s_var))
        if a or s:
            if not (a and s):
                missing = s_var if a else a_var
                raise StorageConfigError(f"{a_var if a else s_var} is set but {missing} is not: set both (or neither)")
            access_key, secret_key = a, s
            session_token = _clean(env.get(t_var)) if t_var else None
            cred_src = f"{a_var} + {s_var}"
            break
    if cred_src is None:
        a, s = _clean(file.get("access_key")), _clean(file.get("secret_key"))
        if a or s:
            if not (a and s):
                missing = "secret_key" if a else "access_key"
                raise StorageConfigError(f"the storage config file {path} sets only one of access_key / secret_key: {missing} is missing")
            access_key, secret_key = a, s
            session_token = _clean(file.get("session_token"))
            cred_src = f"{file_src} (access_key + secret_key)"
    if cred_src is None:
        profile_env = _clean(env.get("AWS_PROFILE"))
        profile_file = _clean(file.get("profile"))
        if profile_env or profile_file:
            profile = profile_env or profile_file
            cred_src = "AWS_PROFILE" if profile_env else f"{file_src} (profile)"
    if cred_src:
        sources["credentials"] = cred_src

    if not bucket:
        raise StorageNotConfigured("storage is not configured: no bucket. " + _HELP.format(path=path))
    if not cred_src:
        raise StorageNotConfigured(
            f"storage is not configured: no credentials for bucket {bucket!r}. " + _HELP.format(path=path)
        )
    bucket = str(bucket).strip()
    if not (3 <= len(bucket) <= 63) or any(c.isspace() or c == "/" for c in bucket):
        raise StorageConfigError(f"{bucket_src} is not a valid bucket name (got {bucket!r})")

    region, _ = pick("region", ("AWS_REGION", "AWS_DEFAULT_REGION"), "region")
    public, public_src = pick("public_base_url", ("ADREEL_S3_PUBLIC_BASE_URL",), "public_base_url")
    if public is not None:
        public = _http_url(str(public).strip(), public_src, what="public base URL")
    prefix, _ = pick("prefix_pattern", ("ADREEL_S3_PREFIX",), "prefix")
    mode, mode_src = pick("url_mode", ("ADREEL_S3_URL_MODE",), "url_mode")
    expiry, expiry_src = pick("url_expiry_seconds", ("ADREEL_S3_URL_EXPIRY",), "url_expiry_seconds")
    spool, _ = pick("spool_dir", (SPOOL_DIR_ENV,), "spool_dir")

    def file_number(key, default, **kw):
        if file.get(key) is None:
            return default
        return _number(file[key], f"{key} in {path}", **kw)

    threshold = file_number("multipart_threshold_mb", 64, minimum=MIN_PART_BYTES // MIB) * MIB
    chunk = file_number("multipart_chunksize_mb", 16, minimum=MIN_PART_BYTES // MIB) * MIB
    addressing = str(file.get("addressing_style") or ("path" if endpoint else "auto")).lower()
    if addressing not in ("auto", "path", "virtual"):
        raise StorageConfigError(f"addressing_style in {path} must be auto, path or virtual (got {addressing!r})")
    history_prefix = str(file.get("history_prefix") or "history/").strip().strip("/") + "/"
    if history_prefix.startswith(".") or ".." in history_prefix.split("/"):
        raise StorageConfigError(f"history_prefix in {path} must be a plain folder name like history/")

    config = StorageConfig(
        bucket=bucket,
        endpoint_url=endpoint,
        region=str(region or DEFAULT_REGION),
        access_key=access_key,
        secret_key=secret_key,
        session_token=session_token,
        profile=profile,
        public_base_url=public,
        prefix_pattern=str(prefix) if prefix is not None else DEFAULT_PREFIX,
        url_mode=_url_mode(str(mode).strip().lower(), mode_src) if mode is not None else "auto",
        url_expiry_seconds=_expiry(expiry, expiry_src) if expiry is not None else DEFAULT_EXPIRY_SECONDS,
        multipart_threshold=int(threshold),
        multipart_chunksize=int(chunk),
        max_concurrency=int(file_number("max_concurrency", 4, minimum=1, maximum=32, integer=True)),
        addressing_style=addressing,
        spool_dir=Path(str(spool)).expanduser() if spool is not None else default_spool_dir(env),
        history_prefix=history_prefix,
        connect_timeout=float(file_number("connect_timeout", 5.0, minimum=0.1, maximum=600)),
        read_timeout=float(file_number("read_timeout", 60.0, minimum=0.1, maximum=3600)),
        verify_tls=_bool(file["verify_tls"], f"verify_tls in {path}") if "verify_tls" in file else True,
        sources=sources,
    )
    return config.with_choices(
        prefix_pattern=prefix_pattern, url_mode=url_mode, url_expiry_seconds=url_expiry_seconds, spool_dir=spool_dir
    )
