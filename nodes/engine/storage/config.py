"""Where AdReel stores its outputs: S3 settings from the environment, a local file and boto3.

Sources, and which one wins
---------------------------
**For each setting, the first place that sets it wins:**

1. **The caller** — only the non-secret choices a workflow may carry: the key
   prefix pattern, the URL mode, the presigned-URL expiry and the spool folder.
   Endpoint, bucket and credentials are never taken from a node widget, so they
   never land in workflow JSON, PNG/MP4 metadata or ComfyUI's history.
2. **AdReel's environment variables** (and the MinIO-style ones of the seed specs):

   ========================  ====================================================
   setting                   variables, first set (non-empty) wins
   ========================  ====================================================
   bucket                    ``ADREEL_S3_BUCKET``, ``MINIO_BUCKET``
   endpoint                  ``MINIO_ENDPOINT`` (``host:port`` or a URL; without a
                             scheme ``MINIO_SECURE`` picks https — the default —
                             or http)
   credentials               ``MINIO_ACCESS_KEY`` + ``MINIO_SECRET_KEY``
   public / CDN base URL     ``ADREEL_S3_PUBLIC_BASE_URL``
   key prefix pattern        ``ADREEL_S3_PREFIX``
   URL mode                  ``ADREEL_S3_URL_MODE`` (auto | presigned | public | s3)
   presigned URL expiry      ``ADREEL_S3_URL_EXPIRY`` (seconds)
   spool folder              ``ADREEL_SPOOL_DIR``
   region                    ``AWS_REGION`` (botocore reads only ``AWS_DEFAULT_REGION``)
   ========================  ====================================================

3. **The config file** — JSON at ``$ADREEL_STORAGE_CONFIG``, else
   ``$XDG_CONFIG_HOME/adreel/storage.json`` (``~/.config/adreel/storage.json``),
   read into ``StorageFile`` (unknown keys and bad values are errors naming the key)::

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
4. **boto3's own settings**, for the endpoint, the credentials and the region
   left unset above: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
   ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``),
   ``AWS_PROFILE`` and ``~/.aws/``, ``AWS_DEFAULT_REGION`` —
   boto3 resolves them itself, as it documents.

Then the built-in defaults: AWS S3 itself (no endpoint), prefix
``{brand}/{date}/{run}/``, URL mode ``auto`` (the public base URL when one is
set, else a presigned URL), 24 h expiry, multipart above 64 MiB, path-style
addressing for any endpoint other than AWS S3.

AdReel's access key and secret are taken **as a pair** from one source — a
MinIO key is never combined with a secret from the file; a pair missing its
other half is an error naming what is missing. Without a bucket, or without
credentials (AdReel's or any boto3 finds), ``load_storage_config`` raises
``StorageNotConfigured`` listing what to set.

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
from typing import Any, Literal, Mapping, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    """Resolved storage settings. ``sources`` names where each came from (never values). ``None`` for the
    endpoint, the region or the credentials: boto3 resolves them itself (``AWS_*``, profiles)."""

    bucket: str
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
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
    addressing_style: Optional[str] = None  # None: path-style for any endpoint but AWS S3's
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
            "endpoint_url": self.endpoint_url or "boto3's (AWS S3 unless AWS_ENDPOINT_URL_S3 says otherwise)",
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
        given = {"prefix": prefix_pattern, "url_mode": url_mode, "url_expiry_seconds": url_expiry_seconds,
                 "spool_dir": spool_dir}
        given = {k: v if isinstance(v, (int, float)) else str(v) for k, v in given.items()
                 if v is not None and str(v).strip()}
        if not given:
            return self
        checked = _validated(given, {k: k for k in given})
        changes = {_CONFIG_NAME.get(k, k): getattr(checked, k) for k in given}
        if "spool_dir" in changes:
            changes["spool_dir"] = Path(changes["spool_dir"]).expanduser()
        sources = {**self.sources, **{name: "caller" for name in changes}}
        return dataclasses.replace(self, sources=sources, **changes)


_CONFIG_NAME = {"prefix": "prefix_pattern"}  # StorageFile's name -> StorageConfig's


class StorageFile(BaseModel):
    """The config file's settings (also the shape AdReel's environment variables are checked against)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    endpoint_url: Optional[str] = None
    bucket: Optional[str] = None
    access_key: Optional[str] = None
    secret_key: Optional[str] = None
    session_token: Optional[str] = None
    profile: Optional[str] = None
    region: Optional[str] = None
    public_base_url: Optional[str] = None
    prefix: Optional[str] = None
    url_mode: Literal[URL_MODES] = "auto"
    url_expiry_seconds: int = Field(DEFAULT_EXPIRY_SECONDS, ge=1, le=MAX_EXPIRY_SECONDS)
    multipart_threshold_mb: float = Field(64, ge=MIN_PART_BYTES // MIB)
    multipart_chunksize_mb: float = Field(16, ge=MIN_PART_BYTES // MIB)
    max_concurrency: int = Field(4, ge=1, le=32)
    addressing_style: Optional[Literal["auto", "path", "virtual"]] = None
    spool_dir: Optional[str] = None
    history_prefix: str = "history/"
    connect_timeout: float = Field(5.0, ge=0.1, le=600)
    read_timeout: float = Field(60.0, ge=0.1, le=3600)
    verify_tls: bool = True

    @field_validator("url_mode", "addressing_style", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("endpoint_url", "public_base_url")
    @classmethod
    def _http_url(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        if parts.username or parts.password:  # (never echoed: the user part may be a credential)
            raise ValueError("must not contain a user name or password; set the credentials separately")
        return value.rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not 3 <= len(value) <= 63 or any(c.isspace() or c == "/" for c in value)):
            raise ValueError("is not a valid bucket name (3 to 63 characters, no space or /)")
        return value

    @field_validator("history_prefix")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = (value.strip("/") or "history") + "/"
        if value.startswith(".") or ".." in value.split("/"):
            raise ValueError("must be a plain folder name like history/")
        return value


def _validated(values: dict, origin: dict) -> StorageFile:
    """``values`` checked as ``StorageFile``; an error names where the bad value came from (``origin``:
    setting -> variable or file key), never the value itself (it may be a secret)."""
    try:
        return StorageFile.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            name = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "extra_forbidden":
                problems.append(f"{origin.get(name, repr(name))} is not a known setting "
                                f"(known keys: {sorted(StorageFile.model_fields)})")
            else:
                message = err["msg"].removeprefix("Value error, ")
                problems.append(f"{origin.get(name, name)}: {message}")
        raise StorageConfigError("bad storage setting: " + "; ".join(problems)) from None


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
    if data.get("secret_key"):
        warn_if_shared(path, "storage config", logger)
    return {k: v for k, v in data.items() if v is not None and (not isinstance(v, str) or v.strip())}


# StorageFile's setting -> AdReel's variables for it, first set wins (the credentials go as a pair, below)
_ENV = {
    "bucket": ("ADREEL_S3_BUCKET", "MINIO_BUCKET"),
    "public_base_url": ("ADREEL_S3_PUBLIC_BASE_URL",),
    "prefix": ("ADREEL_S3_PREFIX",),
    "url_mode": ("ADREEL_S3_URL_MODE",),
    "url_expiry_seconds": ("ADREEL_S3_URL_EXPIRY",),
    "spool_dir": (SPOOL_DIR_ENV,),
    "region": ("AWS_REGION",),  # (botocore itself reads only AWS_DEFAULT_REGION; the other AWS SDKs read this)
}


def _from_environment(env: Mapping[str, str]) -> tuple[dict, dict]:
    """AdReel's variables that are set: (setting -> value, setting -> variable)."""
    values, origin = {}, {}
    for name, names in _ENV.items():
        var = next((v for v in names if str(env.get(v) or "").strip()), None)
        if var is not None:
            values[name], origin[name] = env[var].strip(), var
    endpoint = str(env.get("MINIO_ENDPOINT") or "").strip()
    if endpoint:
        if "://" not in endpoint:
            tls = _validated({"verify_tls": env.get("MINIO_SECURE") or "true"}, {"verify_tls": "MINIO_SECURE"})
            endpoint = ("https://" if tls.verify_tls else "http://") + endpoint  # (MINIO_SECURE: a bool)
        values["endpoint_url"], origin["endpoint_url"] = endpoint, "MINIO_ENDPOINT"
    key, secret = (str(env.get(v) or "").strip() for v in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"))
    if key or secret:
        if not (key and secret):
            have, missing = ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY") if key else ("MINIO_SECRET_KEY", "MINIO_ACCESS_KEY")
            raise StorageConfigError(f"{have} is set but {missing} is not: set both (or neither)")
        values.update(access_key=key, secret_key=secret)
        origin.update(access_key="MINIO_ACCESS_KEY", secret_key="MINIO_SECRET_KEY")
    return values, origin


def _credentials(values: dict, origin: dict, file: dict, file_src: str) -> dict:
    """AdReel's credentials, as a pair from one source (the environment's, else the file's), or the file's
    profile; {} leaves them to boto3. Adds ``origin["credentials"]``."""
    if "access_key" in values:
        origin["credentials"] = "MINIO_ACCESS_KEY + MINIO_SECRET_KEY"
        return {"access_key": values["access_key"], "secret_key": values["secret_key"]}
    if "access_key" in file or "secret_key" in file:
        if not ("access_key" in file and "secret_key" in file):
            missing = "secret_key" if "access_key" in file else "access_key"
            raise StorageConfigError(f"the {file_src} sets only one of access_key / secret_key: {missing} is missing")
        origin["credentials"] = f"{file_src} (access_key + secret_key)"
        return {k: file[k] for k in ("access_key", "secret_key", "session_token") if k in file}
    if "profile" in file:
        origin["credentials"] = f"{file_src} (profile)"
        return {"profile": file["profile"]}
    return {}


_CREDENTIAL_KEYS = ("access_key", "secret_key", "session_token", "profile")
_BOTO3_METHODS = {"env": "AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY", "shared-credentials-file": "~/.aws/credentials",
                  "config-file": "~/.aws/config"}


def boto3_credentials_source() -> Optional[str]:
    """Where boto3 finds credentials by itself (``AWS_*``, ``AWS_PROFILE``, ``~/.aws``, SSO, a container or
    instance role…), or None when it finds none."""
    import botocore.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        found = botocore.session.Session().get_credentials()
    except ProfileNotFound:
        raise StorageConfigError("AWS_PROFILE names a profile that does not exist") from None
    except BotoCoreError as exc:
        logger.debug("boto3 found no credentials: %s", type(exc).__name__)
        return None
    if found is None:
        return None
    return _BOTO3_METHODS.get(found.method, f"boto3 ({found.method})")


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

    ``environ`` (AdReel's variables) defaults to ``os.environ``; ``config_path`` to ``default_config_path()``;
    boto3 reads its own ``AWS_*`` from the process. The keyword arguments are the caller's non-secret
    choices; they win.
    """
    env = os.environ if environ is None else environ
    path = Path(config_path).expanduser() if config_path else default_config_path(env)
    file = _read_file(path)
    file_src = f"config file {path}"
    values, origin = _from_environment(env)
    for name in file:
        origin.setdefault(name, f"{name} in {path}")
    merged = {k: v for k, v in {**file, **values}.items() if k not in _CREDENTIAL_KEYS}
    merged.update(_credentials(values, origin, file, file_src))
    settings = _validated(merged, origin)
    if not settings.bucket:
        raise StorageNotConfigured("storage is not configured: no bucket. " + _HELP.format(path=path))
    if "credentials" not in origin:
        found = boto3_credentials_source()
        if found is None:
            raise StorageNotConfigured(f"storage is not configured: no credentials for bucket {settings.bucket!r}. "
                                       + _HELP.format(path=path))
        origin["credentials"] = found
    sources = {_CONFIG_NAME.get(k, k): v if v.isupper() or k == "credentials" else f"{file_src} ({k})"
               for k, v in origin.items() if k not in ("access_key", "secret_key")}
    config = StorageConfig(
        bucket=settings.bucket, endpoint_url=settings.endpoint_url, region=settings.region,
        access_key=settings.access_key, secret_key=settings.secret_key, session_token=settings.session_token,
        profile=settings.profile, public_base_url=settings.public_base_url,
        prefix_pattern=settings.prefix if settings.prefix is not None else DEFAULT_PREFIX,
        url_mode=settings.url_mode, url_expiry_seconds=settings.url_expiry_seconds,
        multipart_threshold=int(settings.multipart_threshold_mb * MIB),
        multipart_chunksize=int(settings.multipart_chunksize_mb * MIB),
        max_concurrency=settings.max_concurrency,
        addressing_style=settings.addressing_style or ("path" if settings.endpoint_url else None),
        spool_dir=Path(settings.spool_dir).expanduser() if settings.spool_dir else default_spool_dir(env),
        history_prefix=settings.history_prefix, connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout, verify_tls=settings.verify_tls, sources=sources,
    )
    return config.with_choices(
        prefix_pattern=prefix_pattern, url_mode=url_mode, url_expiry_seconds=url_expiry_seconds, spool_dir=spool_dir
    )
