"""Hosting a key image for providers that take image URLs only (Luma).

``host_image(path, config)`` uploads the image to the configured S3-compatible
bucket under a content-addressed key (``key-images/<name>-<sha256[:12]>.png``:
the same image is uploaded once) and returns an https URL the provider can
fetch: the public / CDN URL when ``ADREEL_S3_PUBLIC_BASE_URL`` (or the config
file's ``public_base_url``) is set, else a presigned GET URL valid for
``expiry_seconds`` (at most the configured expiry). A provider fetches from the
internet, so a plain-http URL is refused with a message saying what to set.

``image_host_from_environment()`` gives the provider engine its ``image_host``
callable, or ``None`` plus the reason (storage not configured / misconfigured),
so a node can say why a Luma key image cannot be sent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional

from .config import StorageConfig, load_storage_config
from .errors import StorageConfigError, StorageError, StorageNotConfigured
from ..cloud.redaction import redact
from .keys import content_key, content_type_for, digest_file
from .store import S3Store

KEY_IMAGE_PREFIX = "key-images/"
DEFAULT_EXPIRY_SECONDS = 6 * 3600  # long enough for a queued provider job to fetch it


def host_image(
    path,
    config: StorageConfig,
    *,
    store: Optional[S3Store] = None,
    expiry_seconds: int = DEFAULT_EXPIRY_SECONDS,
    allow_http: bool = False,
) -> str:
    """Upload ``path`` (idempotent, verified) and return a URL to it; see the module doc."""
    p = Path(path)
    if not p.is_file():
        raise StorageError(f"key image {p} does not exist", reason="local-io")
    store = store or S3Store(config)
    digest = digest_file(p, config.multipart_chunksize)
    key = content_key(KEY_IMAGE_PREFIX, p.name, digest.sha256)
    store.upload_file(p, key, digest, content_type=content_type_for(p))
    if config.public_base_url:
        url = store.url_for(key, mode="public")
    else:
        url = store.url_for(key, mode="presigned", expiry=max(60, min(int(expiry_seconds), config.url_expiry_seconds)))
    if not url.startswith("https://") and not allow_http:
        where = "ADREEL_S3_PUBLIC_BASE_URL" if config.public_base_url else "the S3 endpoint"
        raise StorageConfigError(
            f"the key image was uploaded to {store.where()}, but its URL is not https ({where} is plain http), "
            "and a cloud provider fetches images over the internet: use an https endpoint, or set "
            "ADREEL_S3_PUBLIC_BASE_URL to an https CDN / public URL of the bucket"
        )
    return url


def image_host_from_environment(
    environ: Optional[Mapping[str, str]] = None,
) -> tuple[Optional[Callable[[str], str]], Optional[str]]:
    """``(image_host, None)`` when storage is configured, else ``(None, reason)``. No network."""
    try:
        config = load_storage_config(environ)
    except StorageNotConfigured as exc:
        return None, redact(str(exc))
    except StorageConfigError as exc:
        return None, f"storage is misconfigured: {redact(str(exc))}"
    base = config.public_base_url or config.endpoint_url  # None: AWS S3 itself, https
    if base and not base.lower().startswith("https://"):
        which = "ADREEL_S3_PUBLIC_BASE_URL" if config.public_base_url else "the S3 endpoint"
        return None, (f"storage is configured, but {which} is plain http and a cloud provider fetches key images "
                      "over the internet: use an https endpoint or set ADREEL_S3_PUBLIC_BASE_URL to an https URL "
                      "of the bucket")
    store = S3Store(config)

    def host(path: str) -> str:
        return host_image(path, config, store=store)

    return host, None
