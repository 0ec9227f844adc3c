"""Server-side ceilings: what one prompt may spend, decode, download or make.

Every limit that protects the operator of a shared ComfyUI comes from the
process environment, never from a widget, and no widget can raise it: a node
takes ``min(widget, ceiling)``. Values are read at each call (so a test or an
operator can change them without re-importing), and a value that is not a
finite, positive number is refused with a message naming the variable — the
safe default is used and the problem logged, never an unlimited ceiling.

| variable | default | what it bounds |
|---|---|---|
| ``ADREEL_PAID_PROVIDERS`` | off | paid cloud providers run only when this is ``1``/``true``/``yes`` |
| ``ADREEL_MAX_COST_USD`` | 5.0 | the most one prompt may spend on providers; a widget budget can only lower it |
| ``ADREEL_MAX_PIXEL_FRAMES`` | 4e10 | duration × fps × pixels × formats × aspects encoded by one prompt |
| ``ADREEL_MAX_EXTRA_ASPECTS`` | 2 | distinct extra aspects one render may add |
| ``ADREEL_MAX_MEDIA_SECONDS`` | 600 | seconds decoded from any input medium (music, reference, narration, clips) |
| ``ADREEL_MAX_MEDIA_FRAMES`` | 10800 | frames one clip or frame batch may hold or expand to |
| ``ADREEL_MAX_FRAMES_BYTES`` | 8 GiB | bytes a lazy clip may expand to as float IMAGE frames (``get_components``) |
| ``ADREEL_MAX_INPUT_PIXELS`` | 40e6 | pixels of an input image (logo, product photo, key image) |
| ``ADREEL_MAX_LLM_ANSWER_BYTES`` | 262144 | bytes read from one LLM answer |
| ``ADREEL_MAX_RESPONSE_BYTES`` | 4194304 | bytes read from any other API answer (JSON, error bodies) |
| ``ADREEL_HTTP_TOTAL_SECONDS`` | 120 | wall time of one API request, connect to last byte |
| ``ADREEL_MAX_DOWNLOAD_BYTES`` | 536870912 | bytes of one downloaded result (provider clip, TTS audio) |
| ``ADREEL_MAX_DOWNLOAD_SECONDS`` | 600 | wall time of one download |
| ``ADREEL_MAX_RUN_DOWNLOAD_BYTES`` | 2147483648 | bytes of all provider clips one prompt downloads together |
| ``ADREEL_MAX_TEXT_CHARS`` | 200000 | characters of any text a node or route accepts (every STRING input, at /prompt and at run time) |
| ``ADREEL_MAX_SYNTH_SECONDS`` | 600 | wall time of one narration's speech synthesis (Interrupt stops it sooner) |
| ``ADREEL_MAX_SYNTH_BYTES`` | 2 GiB | address space of the espeak-ng process that speaks a line |
| ``ADREEL_LLM_MAX_KEEP_ALIVE`` | 3600 | seconds a workflow may ask Ollama to keep a model loaded (``-1``, "forever", is capped to it) |
| ``ADREEL_LLM_MAX_CONTEXT`` | 32768 | the largest ``num_ctx`` a workflow may ask of Ollama |
| ``ADREEL_MAX_PAGE_BYTES`` | 8388608 | bytes read from one fetched web page or its product image (ProductPage) |
| ``ADREEL_PAGE_FETCH_SECONDS`` | 30 | wall time of one page fetch: robots.txt, every redirect and the body |

Spending, pixel-frames and media seconds are a prompt's, all its nodes together: ``budget.py`` keeps
the per-prompt ledger nodes reserve in before they start.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Mapping, Optional

logger = logging.getLogger("adreel.limits")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def env_number(name: str, default, minimum: Optional[float] = None, maximum: Optional[float] = None, *,
               kind=float, above: bool = False, otherwise: Optional[str] = None,
               environ: Optional[Mapping[str, str]] = None):
    """The number in the environment variable ``name``, as ``kind`` (``float`` or ``int``): read at each call.

    Unset or blank: ``default``. A value that is not a finite number, or lies below ``minimum`` (at or below
    it with ``above=True``) or above ``maximum``, is refused: one warning names the variable, what it must
    be and what is used instead (``otherwise``, e.g. "retention stays off"; by default "the default …"),
    and ``default`` is returned — never an unlimited or a zero value.
    """
    env = os.environ if environ is None else environ
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low_ok = minimum is None or (value > minimum if above else value >= minimum)
    if math.isfinite(value) and low_ok and (maximum is None or value <= maximum):
        return int(value) if kind is int else value
    if minimum is not None and maximum is not None:
        rule = f"between {minimum:g} and {maximum:g}"
    elif minimum is not None:
        rule = f"{'above' if above else 'at least'} {minimum:g}"
    else:
        rule = f"at most {maximum:g}" if maximum is not None else "finite"
    logger.warning("%s must be a number %s, not %r: %s", name, rule, raw,
                   otherwise or (f"using the default {default:g}" if default is not None else "left unset"))
    return default


@dataclass(frozen=True)
class Ceiling:
    env: str
    default: float
    integer: bool = False
    allow_zero: bool = False

    def read(self, environ: Optional[Mapping[str, str]] = None) -> float:
        return env_number(self.env, self.default, 0, above=not self.allow_zero,
                          kind=int if self.integer else float, environ=environ)


PAID_PROVIDERS_ENV = "ADREEL_PAID_PROVIDERS"
MAX_COST_USD = Ceiling("ADREEL_MAX_COST_USD", 5.0, allow_zero=True)
MAX_PIXEL_FRAMES = Ceiling("ADREEL_MAX_PIXEL_FRAMES", 4e10)
MAX_EXTRA_ASPECTS = Ceiling("ADREEL_MAX_EXTRA_ASPECTS", 2, integer=True, allow_zero=True)
MAX_MEDIA_SECONDS = Ceiling("ADREEL_MAX_MEDIA_SECONDS", 600.0)
MAX_MEDIA_FRAMES = Ceiling("ADREEL_MAX_MEDIA_FRAMES", 10800, integer=True)
MAX_FRAMES_BYTES = Ceiling("ADREEL_MAX_FRAMES_BYTES", 8 * 1024 ** 3, integer=True)
MAX_INPUT_PIXELS = Ceiling("ADREEL_MAX_INPUT_PIXELS", 40e6, integer=True)
MAX_LLM_ANSWER_BYTES = Ceiling("ADREEL_MAX_LLM_ANSWER_BYTES", 262144, integer=True)
MAX_RESPONSE_BYTES = Ceiling("ADREEL_MAX_RESPONSE_BYTES", 4 * 1024 * 1024, integer=True)
HTTP_TOTAL_SECONDS = Ceiling("ADREEL_HTTP_TOTAL_SECONDS", 120.0)
MAX_DOWNLOAD_BYTES = Ceiling("ADREEL_MAX_DOWNLOAD_BYTES", 512 * 1024 * 1024, integer=True)
MAX_DOWNLOAD_SECONDS = Ceiling("ADREEL_MAX_DOWNLOAD_SECONDS", 600.0)
MAX_RUN_DOWNLOAD_BYTES = Ceiling("ADREEL_MAX_RUN_DOWNLOAD_BYTES", 2 * 1024 * 1024 * 1024, integer=True)
MAX_TEXT_CHARS = Ceiling("ADREEL_MAX_TEXT_CHARS", 200000, integer=True)
MAX_LLM_KEEP_ALIVE = Ceiling("ADREEL_LLM_MAX_KEEP_ALIVE", 3600.0)
MAX_LLM_CONTEXT = Ceiling("ADREEL_LLM_MAX_CONTEXT", 32768, integer=True)
MAX_PAGE_BYTES = Ceiling("ADREEL_MAX_PAGE_BYTES", 8 * 1024 * 1024, integer=True)
PAGE_FETCH_SECONDS = Ceiling("ADREEL_PAGE_FETCH_SECONDS", 30.0)


class LimitExceeded(ValueError):
    """A prompt asked for more than the operator's ceiling allows."""


def paid_providers_enabled(environ: Optional[Mapping[str, str]] = None) -> bool:
    env = os.environ if environ is None else environ
    raw = (env.get(PAID_PROVIDERS_ENV) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw not in _FALSE:
        logger.warning("%s=%r is not a yes/no value: paid providers stay off", PAID_PROVIDERS_ENV, raw)
    return False


def effective_budget(widget_usd: float, environ: Optional[Mapping[str, str]] = None) -> float:
    """The budget a run may spend: the widget's, never above the server ceiling.

    A widget value of 0 (or anything not a finite, non-negative number) means
    "no budget of my own", which is the ceiling — never "unlimited".
    """
    ceiling = MAX_COST_USD.read(environ)
    try:
        w = float(widget_usd)
    except (TypeError, ValueError):
        w = math.nan
    if not math.isfinite(w) or w <= 0:
        return ceiling
    return min(w, ceiling)


def require_finite(value: float, field: str) -> float:
    """``value`` as a float, or a ``ValueError`` naming ``field`` for NaN/inf."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: must be a number") from None
    if not math.isfinite(f):
        raise ValueError(f"{field}: must be a finite number")
    return f


# --- text and speech -------------------------------------------------------------------------------
# Every text a node or route accepts is at most ``ADREEL_MAX_TEXT_CHARS`` characters (checked at /prompt
# for widget values and again when the node runs, for linked ones). Speech is bounded before and while it
# is made: its estimated length against ``ADREEL_MAX_MEDIA_SECONDS`` before synthesis, then the wall time
# and the memory of the synthesis itself.
MAX_SYNTH_SECONDS = Ceiling("ADREEL_MAX_SYNTH_SECONDS", 600.0)
MAX_SYNTH_BYTES = Ceiling("ADREEL_MAX_SYNTH_BYTES", 2 * 1024 ** 3, integer=True)


def text_problem(value, field: str, environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """A message naming ``field`` and the ceiling when ``value`` (a str, or a list of them) is longer than
    ``ADREEL_MAX_TEXT_CHARS``; None otherwise (and for anything that is not text). The value itself is
    never quoted back."""
    cap = MAX_TEXT_CHARS.read(environ)
    for v in (value if isinstance(value, list) else [value]):
        if isinstance(v, str) and len(v) > cap:
            return (f"{field}: the text is {len(v)} characters, more than the server allows "
                    f"({cap}, {MAX_TEXT_CHARS.env})")
    return None
