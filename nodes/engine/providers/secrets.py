"""Provider keys through the pack's one key lookup (``engine/cloud/secrets.py``).

Lookup order: each environment variable, then the secrets file
(``$ADREEL_SECRETS_FILE``, else ``~/.config/adreel/secrets.json``) by the same
names or the provider's name. This module only turns "not found" and "file
unreadable" into the provider errors.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from ..cloud.secrets import SECRETS_FILE_ENV, ApiKey, SecretsFileError, find_key, secrets_file_path
from .errors import MissingApiKeyError, ProviderConfigError

__all__ = ["SECRETS_FILE_ENV", "ApiKey", "get_api_key", "secrets_file_path"]


def get_api_key(
    provider: str,
    env_vars: Sequence[str],
    *,
    label: Optional[str] = None,
    key_hint: str = "",
    environ: Optional[Mapping[str, str]] = None,
) -> ApiKey:
    """The provider's key, or ``MissingApiKeyError`` naming where to put it."""
    try:
        key = find_key(env_vars, provider, environ=environ)
    except SecretsFileError as exc:
        raise ProviderConfigError(str(exc)) from None
    if key is not None:
        return key
    path = secrets_file_path(environ)
    names = " or ".join(env_vars)
    hint = f" {key_hint}" if key_hint else ""
    raise MissingApiKeyError(
        f"{label or provider}: no API key found. Set the environment variable {names} for the ComfyUI "
        f"process, or add \"{env_vars[0]}\" to the secrets file {path} (set {SECRETS_FILE_ENV} to use "
        f"another file). Keys are never read from a node widget, so they stay out of workflows.{hint}",
        provider=provider,
    )
