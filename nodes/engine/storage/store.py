"""The S3 side: one boto3 client, uploads with HEAD-first idempotency, verification, URLs.

``S3Store`` turns every boto3 / botocore failure into one of the storage
errors (``StorageUnavailable``, ``StorageRefused``, ``StorageCredentialsError``)
with a message that names the problem and never the secret.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import quote, urlsplit

from .config import StorageConfig
from .errors import (
    StorageConfigError,
    StorageCredentialsError,
    StorageError,
    StorageRefused,
    StorageUnavailable,
    StorageVerificationError,
    logger,
    mask_access_key,
)
from ..cloud.redaction import redact
from .keys import FileDigest

IMMUTABLE = "public, max-age=31536000, immutable"
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}(-\d+)?$")

# S3 error codes that mean "these credentials are wrong": what to tell the user.
CREDENTIAL_ERRORS = {
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "InvalidAccessKeyId": "the store does not know this access key id",
    "InvalidClientTokenId": "the store does not know this access key id",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is invalid",
    "TokenRefreshRequired": "the session token has expired",
    "AuthorizationHeaderMalformed": "the credentials or the region do not fit this store",
}
TRANSIENT_CODES = {
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "BandwidthLimitExceeded", "503", "500", "502", "504",
}


@dataclass
class PutOutcome:
    key: str
    status: str  # "uploaded" | "exists"
    etag: Optional[str]
    size: int


def _on_aws(endpoint: Optional[str]) -> bool:
    host = (urlsplit(endpoint).hostname or "") if endpoint else ""
    return host == "amazonaws.com" or host.endswith(".amazonaws.com")


def _client_error(exc: BaseException):
    """The botocore ClientError / BotoCoreError behind ``exc`` (boto3 wraps some in S3UploadFailedError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ClientError, BotoCoreError)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


class S3Store:
    """A bucket behind one boto3 client, configured by a ``StorageConfig``."""

    def __init__(self, config: StorageConfig, client=None):
        self.config = config
        self._client = client
        self._lock = threading.Lock()

    # -- client ---------------------------------------------------------
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self):
        import boto3
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ProfileNotFound

        cfg = self.config

        def client(addressing: str):
            options = dict(
                signature_version="s3v4",
                s3={"addressing_style": addressing},
                retries={"total_max_attempts": 3, "mode": "standard"},
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.read_timeout,
                user_agent_extra="AdReel-storage",
                # newer botocore adds CRC checksums to every PUT; several S3-compatible stores reject them
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            keys = {}
            if cfg.access_key:  # AdReel's own keys: an AWS_PROFILE in the environment (maybe stale) is ignored
                core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
                session = boto3.session.Session(botocore_session=core)
                keys = dict(aws_access_key_id=cfg.access_key, aws_secret_access_key=cfg.secret_key,
                            aws_session_token=cfg.session_token)
            else:  # the file's profile, or whatever boto3 resolves itself (AWS_*, AWS_PROFILE, ~/.aws, roles)
                session = boto3.session.Session(profile_name=cfg.profile)
            return session.client("s3", endpoint_url=cfg.endpoint_url, region_name=cfg.region, verify=cfg.verify_tls,
                                  config=Config(**options), **keys)

        try:
            made = client(cfg.addressing_style or "auto")
            if cfg.addressing_style is None and not _on_aws(made.meta.endpoint_url):
                made = client("path")  # an endpoint from AWS_ENDPOINT_URL_S3: MinIO, SeaweedFS, R2 … answer path-style
            return made
        except ProfileNotFound:
            raise StorageConfigError(f"the AWS profile {cfg.profile!r} ({cfg.credentials_source}) does not exist") from None
        except BotoCoreError as exc:
            raise StorageConfigError(f"cannot set up the S3 client: {type(exc).__name__}: {redact(exc)}") from None

    @property
    def endpoint(self) -> Optional[str]:
        """The endpoint in use: AdReel's, or the one boto3 resolved (None: AWS S3 itself)."""
        if self.config.endpoint_url:
            return self.config.endpoint_url
        resolved = self.client.meta.endpoint_url
        return None if _on_aws(resolved) else resolved.rstrip("/")

    # -- errors ---------------------------------------------------------
    def where(self) -> str:
        try:
            endpoint = self.endpoint
        except StorageError:
            endpoint = self.config.endpoint_url
        return f"bucket {self.config.bucket!r} at {endpoint or 'AWS S3'}"

    def classify(self, exc: BaseException, action: str) -> StorageError:
        """A storage error for ``exc`` raised while doing ``action`` (e.g. 'upload ad.mp4')."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectionError as BotoConnectionError,
            HTTPClientError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        if isinstance(exc, StorageError):
            return exc
        inner = _client_error(exc) or exc
        where = self.where()
        if isinstance(inner, ClientError):
            err = inner.response.get("Error", {}) or {}
            code = str(err.get("Code") or "")
            status = int(inner.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            detail = redact(err.get("Message") or "")
            if code in CREDENTIAL_ERRORS:
                return StorageCredentialsError(
                    f"the S3 store refused the credentials ({code}): {CREDENTIAL_ERRORS[code]} — access key "
                    f"{mask_access_key(self.config.access_key)} from {self.config.credentials_source}, {where}. "
                    "Check the access key and secret key you set",
                    reason=code,
                )
            if code in ("NoSuchBucket",):
                return StorageRefused(
                    f"the {where} does not exist ({code}); create it or set ADREEL_S3_BUCKET to an existing bucket",
                    reason="bucket-missing",
                )
            if status >= 500 or code in TRANSIENT_CODES:
                return StorageUnavailable(f"the S3 store failed to {action} (HTTP {status} {code}) — {where}", reason="server-error")
            if code in ("AccessDenied", "403", "AllAccessDisabled", "AccountProblem"):
                return StorageRefused(
                    f"the S3 store denied {action} ({code}{': ' + detail if detail and detail != 'Forbidden' else ''}) — "
                    f"access key {mask_access_key(self.config.access_key)} from {self.config.credentials_source}, {where}; "
                    "check that this key may read and write the bucket",
                    reason="access-denied",
                )
            return StorageRefused(f"the S3 store refused to {action} (HTTP {status} {code}{': ' + detail if detail else ''}) — {where}",
                                  reason=code or "refused")
        if isinstance(inner, (NoCredentialsError, PartialCredentialsError)):
            return StorageCredentialsError(f"no usable S3 credentials ({self.config.credentials_source}): {type(inner).__name__}",
                                           reason="no-credentials")
        if isinstance(inner, (BotoConnectionError, ConnectionClosedError, ReadTimeoutError, HTTPClientError, ConnectionError, TimeoutError)):
            kind = {
                "EndpointConnectionError": "cannot connect",
                "ConnectTimeoutError": "connection timed out",
                "ReadTimeoutError": "read timed out",
                "ConnectionClosedError": "connection closed",
            }.get(type(inner).__name__, type(inner).__name__)
            return StorageUnavailable(f"the S3 store is unreachable ({kind}) while trying to {action} — {where}", reason="unreachable")
        if isinstance(inner, OSError):
            return StorageError(f"cannot {action}: {type(inner).__name__}: {redact(inner)}", reason="local-io")
        return StorageError(f"cannot {action}: {type(inner).__name__}: {redact(inner)}")

    # -- operations -----------------------------------------------------
    def probe(self) -> Optional[str]:
        """One cheap authenticated request (list one key), so that a wrong secret or a missing
        bucket shows up as such — a HEAD answers only a bare 403/404.

        Returns a note when the key may not list the bucket (uploads are still tried).
        """
        try:
            self.client.list_objects_v2(Bucket=self.config.bucket, MaxKeys=1)
        except Exception as exc:  # noqa: BLE001 - classified below
            err = self.classify(exc, "list the bucket")
            if err.reason == "access-denied":
                return "the key may not list the bucket; uploading without the listing check"
            raise err from None
        return None

    def head(self, key: str) -> Optional[dict]:
        """The object's HEAD, or None when it does not exist (or this key may not read it)."""
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "")
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return None
            if status == 403 and code == "403":
                return None  # no read permission on a write-only key: upload and let PUT report
            raise self.classify(exc, f"check {key}") from None
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc, f"check {key}") from None

    @staticmethod
    def _matches(head: dict, digest: FileDigest) -> bool:
        if int(head.get("ContentLength", -1)) != digest.size:
            return False
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        if meta.get("sha256"):
            return meta["sha256"] == digest.sha256
        etag = str(head.get("ETag") or "").strip('"')
        return etag == digest.md5

    def verify(self, key: str, digest: FileDigest, head: Optional[dict] = None) -> dict:
        """Check that the object at ``key`` is this file: size, sha256 metadata, and the ETag where it is an MD5."""
        head = head if head is not None else self.head(key)
        if head is None:
            raise StorageVerificationError(f"{key} is missing from {self.where()} right after its upload")
        size = int(head.get("ContentLength", -1))
        if size != digest.size:
            raise StorageVerificationError(f"{key}: the store holds {size} bytes, the file has {digest.size}")
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        if meta.get("sha256") != digest.sha256:
            raise StorageVerificationError(f"{key}: the stored sha256 metadata does not match the file")
        etag = str(head.get("ETag") or "").strip('"')
        if _MD5_ETAG.match(etag) and head.get("ServerSideEncryption") not in ("aws:kms", "aws:kms:dsse"):
            if "-" not in etag:
                if etag != digest.md5:
                    raise StorageVerificationError(f"{key}: the stored ETag does not match the file's MD5")
            elif int(etag.split("-")[1]) == len(digest.part_md5s):
                if etag != digest.expected_etag(0):
                    raise StorageVerificationError(f"{key}: the stored multipart ETag does not match the file's parts")
        return head

    def upload_file(
        self,
        path: Path,
        key: str,
        digest: FileDigest,
        *,
        content_type: str,
        cache_control: Optional[str] = IMMUTABLE,
        metadata: Optional[dict] = None,
        progress: Optional[Callable[[int], None]] = None,
        overwrite_if_different: bool = True,
    ) -> PutOutcome:
        """Upload ``path`` to ``key`` unless an identical object is already there (HEAD first);
        verify what the store holds afterwards. Multipart above the configured threshold."""
        from boto3.s3.transfer import TransferConfig

        existing = self.head(key)
        if existing is not None and self._matches(existing, digest):
            if progress:
                progress(digest.size)
            return PutOutcome(key, "exists", str(existing.get("ETag") or "").strip('"') or None, digest.size)
        if existing is not None and not overwrite_if_different:
            raise StorageRefused(f"{key} already exists in {self.where()} with other content", reason="conflict")
        if existing is not None:
            # a content-addressed object should never differ; a manifest with fresh presigned URLs does
            level = logging.WARNING if cache_control == IMMUTABLE else logging.DEBUG
            logger.log(level, "replacing %s: the stored object differs from the local file", key)
        cfg = self.config
        transfer = TransferConfig(
            multipart_threshold=cfg.multipart_threshold,
            multipart_chunksize=cfg.multipart_chunksize,
            max_concurrency=cfg.max_concurrency,
            use_threads=cfg.max_concurrency > 1,
        )
        extra = {"ContentType": content_type, "Metadata": {"sha256": digest.sha256, **(metadata or {})}}
        if cache_control:
            extra["CacheControl"] = cache_control
        try:
            self.client.upload_file(str(path), cfg.bucket, key, ExtraArgs=extra, Config=transfer, Callback=progress)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc, f"upload {Path(path).name}") from None
        head = self.verify(key, digest)
        return PutOutcome(key, "uploaded", str(head.get("ETag") or "").strip('"') or None, digest.size)

    def put_json(self, key: str, data, *, cache_control: Optional[str] = "no-cache", if_absent: bool = False) -> PutOutcome:
        """Write ``data`` as a JSON object. ``if_absent``: only when no object is at ``key`` yet (HEAD first,
        and a conditional ``If-None-Match: *`` PUT where the store supports it); an existing one is left as
        it is (status ``exists``): a record written once is never replaced by another run."""
        import hashlib

        from botocore.exceptions import ClientError

        body = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        sha = hashlib.sha256(body).hexdigest()
        extra = {"ContentType": "application/json", "Metadata": {"sha256": sha}}
        if cache_control:
            extra["CacheControl"] = cache_control
        if if_absent:
            existing = self.head(key)
            if existing is not None:
                return PutOutcome(key, "exists", str(existing.get("ETag") or "").strip('"') or None,
                                  int(existing.get("ContentLength") or 0))
        try:
            try:
                if if_absent:
                    self.client.put_object(Bucket=self.config.bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
                else:
                    self.client.put_object(Bucket=self.config.bucket, Key=key, Body=body, **extra)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code") or "")
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if if_absent and (status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict")):
                    head = self.head(key) or {}
                    return PutOutcome(key, "exists", str(head.get("ETag") or "").strip('"') or None,
                                      int(head.get("ContentLength") or 0))
                if if_absent and (status == 501 or code == "NotImplemented"):
                    self.client.put_object(Bucket=self.config.bucket, Key=key, Body=body, **extra)  # (HEAD checked)
                else:
                    raise
            head = self.client.head_object(Bucket=self.config.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc, f"write {key}") from None
        if int(head.get("ContentLength", -1)) != len(body):
            raise StorageVerificationError(f"{key}: the store holds {head.get('ContentLength')} bytes, expected {len(body)}")
        return PutOutcome(key, "uploaded", str(head.get("ETag") or "").strip('"') or None, len(body))

    def get_bytes(self, key: str, max_bytes: int = 5 * 1024 * 1024) -> bytes:
        try:
            obj = self.client.get_object(Bucket=self.config.bucket, Key=key)
            if int(obj.get("ContentLength") or 0) > max_bytes:
                obj["Body"].close()
                raise StorageRefused(f"{key} is larger than {max_bytes} bytes", reason="too-large")
            return obj["Body"].read(max_bytes + 1)[:max_bytes]
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc, f"read {key}") from None

    def abort_incomplete_uploads(self, key: str) -> int:
        """Abort the incomplete multipart uploads of exactly ``key`` (what a crashed upload of that content
        key left behind; parts are billed until aborted). Other keys are never touched. Returns how many."""
        aborted = 0
        try:
            page = self.client.list_multipart_uploads(Bucket=self.config.bucket, Prefix=key)
            for up in page.get("Uploads", []) or []:
                if up.get("Key") != key or not up.get("UploadId"):
                    continue
                self.client.abort_multipart_upload(Bucket=self.config.bucket, Key=key, UploadId=up["UploadId"])
                aborted += 1
        except Exception as exc:  # noqa: BLE001 - a store without the listing: the lifecycle rule cleans up
            logger.debug("could not list incomplete uploads of %s: %s", key, type(exc).__name__)
            return aborted
        if aborted:
            logger.info("aborted %d incomplete multipart upload(s) of %s left by an interrupted attempt", aborted, key)
        return aborted

    def list_objects(self, prefix: str) -> Iterator[dict]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.config.bucket, Prefix=prefix):
                yield from page.get("Contents", []) or []
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc, f"list {prefix or 'the bucket'}") from None

    # -- URLs -----------------------------------------------------------
    def url_for(self, key: str, mode: Optional[str] = None, expiry: Optional[int] = None) -> str:
        """The URL a user gets for ``key``: presigned (expiring), public/CDN, or ``s3://``.

        ``auto``: the public base URL when one is configured, else presigned.
        ``public`` without a base URL: the endpoint's path-style URL (the bucket must allow public reads).
        """
        cfg = self.config
        mode = (mode or cfg.url_mode or "auto").lower()
        if mode == "auto":
            mode = "public" if cfg.public_base_url else "presigned"
        if mode == "s3":
            return f"s3://{cfg.bucket}/{key}"
        if mode == "public":
            quoted = quote(key, safe="/-_.~")
            if cfg.public_base_url:
                return f"{cfg.public_base_url.rstrip('/')}/{quoted}"
            if self.endpoint:
                return f"{self.endpoint}/{cfg.bucket}/{quoted}"
            return f"https://{cfg.bucket}.s3.{self.client.meta.region_name}.amazonaws.com/{quoted}"
        if mode != "presigned":
            raise StorageConfigError(f"unknown URL mode {mode!r}")
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": cfg.bucket, "Key": key}, ExpiresIn=int(expiry or cfg.url_expiry_seconds)
            )
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc, f"sign a URL for {key}") from None
