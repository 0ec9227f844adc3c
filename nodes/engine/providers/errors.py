"""The errors a provider render can end with.

Each message names the provider and says what to do. Messages are redacted
when the exception is built, so no API key can travel in one.

Input problems found before any request (bad image, impossible duration or
aspect) are ``AdReelInputError`` from the data model, naming the field.
"""
from __future__ import annotations

from typing import Optional

from ..cloud.redaction import redact


class ProviderError(RuntimeError):
    """Base of every provider failure. ``str(err)`` is a complete, secret-free sentence."""

    def __init__(
        self,
        message: str,
        *,
        provider: Optional[str] = None,
        status: Optional[int] = None,
        code: Optional[str] = None,
        job_id: Optional[str] = None,
    ):
        self.message = redact(message)
        self.provider = provider
        self.status = status
        self.code = None if code is None else redact(str(code))
        self.job_id = None if job_id is None else redact(str(job_id))
        self.scene_index: Optional[int] = None
        # True when a create request failed in a way that does not prove the provider refused it (a 5xx, a
        # connection dropped mid-request, an unreadable 2xx): the job may exist and be billed although no
        # job id came back, so its estimate stays counted against the budget.
        self.maybe_billed = False
        super().__init__(self.message)

    def for_scene(self, index: int) -> "ProviderError":
        """Prefix the message with the scene it belongs to (once)."""
        if self.scene_index is None:
            self.scene_index = index
            if f"scene {index}" not in self.message:
                self.message = f"scene {index}: {self.message}"
                self.args = (self.message,)
        return self

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ProviderConfigError(ProviderError):
    """Something the user must configure first (key, image host, base URL)."""


class MissingApiKeyError(ProviderConfigError):
    """No API key for the provider in the environment or the secrets file."""


class PaidProvidersDisabledError(ProviderConfigError):
    """The operator has not enabled paid providers (``ADREEL_PAID_PROVIDERS``); nothing was sent."""


class BudgetExceededError(ProviderError):
    """The run's estimated cost is above ``max_cost_usd`` (or cannot be known); nothing was sent."""


class ProviderAuthError(ProviderError):
    """HTTP 401 or the provider's own 'bad key' answer."""


class ProviderCreditError(ProviderError):
    """HTTP 402 or an exhausted balance / insufficient credit, at submit or at poll time."""


class ProviderForbiddenError(ProviderError):
    """HTTP 403 that is not about credit: no access to the model or feature."""


class ProviderRequestError(ProviderError):
    """HTTP 400 / 404 / 422: the provider rejected the request itself."""


class ProviderRateLimitError(ProviderError):
    """HTTP 429 still answered after the bounded retries (or a wait too long to honour)."""


class ProviderServerError(ProviderError):
    """HTTP 5xx still answered after the bounded retries."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (DNS, TLS, refused, reset)."""


class ProviderProtocolError(ProviderError):
    """The provider answered with a body that does not follow its documented contract."""


class ProviderJobFailed(ProviderError):
    """The remote job ran and ended in failure."""


class ProviderSafetyError(ProviderJobFailed):
    """The provider's safety / moderation filter rejected the input or the output."""


class ProviderTimeoutError(ProviderError):
    """The job did not finish within the timeout; the remote job was cancelled where possible."""


class ProviderInterrupted(ProviderError):
    """The run was interrupted (ComfyUI interrupt / cancellation); remote job cancelled where possible."""


class ProviderDownloadError(ProviderError):
    """The result could not be downloaded, or what came back is not a video."""
