"""One secret registry and one log filter for the whole pack (and the ComfyUI process it runs in).

``register_secret(value)`` is called for every key, secret access key and
token AdReel reads. ``redact(text)`` then masks, wherever they appear:

* the value itself, its URL-encoded form and its base64 forms (as in a
  ``Basic`` header or a JSON blob that was base64-encoded, at any alignment);
* the start of one of those forms — its first 8 characters (an error body
  cut at 200 or 500 characters mid-key must not leak the first half of the
  key). A match masks the **whole word** it sits in (the run of characters
  between whitespace, quotes, brackets, ``,;=:&?#``), never just the
  characters that matched: what stays visible is then the same whether a
  guess matched 8 characters of a secret or 80, so a text a visitor chose
  cannot be used to read a secret back one character at a time. Whether a
  word is masked depends only on an 8-character window (guessed whole) or on
  a short secret's whole value. (A secret whose first 8 characters are an
  ordinary word, ``estimate-…``, masks every word holding that word: secrets
  are random, so in practice only they trip it);
* credential shapes, registered or not: ``Authorization: Bearer|Key|Token|Basic …``,
  a bare ``Key …`` / ``Token …`` credential, ``x-api-key`` / ``xi-api-key`` /
  ``x-goog-api-key`` headers, ``?key=`` / ``token=`` / ``sig=`` query values,
  presigned-URL signatures (``X-Amz-Signature``, ``X-Amz-Credential``,
  ``X-Amz-Security-Token``, ``X-Goog-Signature``, ``X-Goog-Credential``),
  ``password=``, ``client_secret=``, ``aws_secret_access_key=`` … and the known
  key shapes (``sk-…``, ``gsk_…``, ``hf_…``, ``r8_…``, ``ghp_…``, ``fw_…``,
  ``AIza…``, ``key_…``, a JWT …: ``credentials.KEY_SHAPES``, the same the
  workflow checks refuse).

``install_log_filter()`` makes every log record of the process pass through
``redact`` when it is created — message, arguments, the traceback of
``logger.exception`` / ``exc_info`` and ``stack_info`` — so AdReel's loggers
(``adreel.*``, ``AdReel``, their children) and ComfyUI's own
``logging.error(traceback.format_exc())`` cannot write a registered secret.
The node layer installs it when ComfyUI loads the pack; importing this module
installs it too (it is idempotent and chains any record factory already set).
"""
from __future__ import annotations

import base64
import logging
import re
import threading
from typing import Iterable, Optional
from urllib.parse import quote, urlsplit

from .credentials import KEY_SHAPE

MASK = "***"
MIN_SECRET_CHARS = 4      # shorter values are not registered (they would mask ordinary words)
MIN_PREFIX_CHARS = 8      # a leaked run this long of a secret's start is masked

_lock = threading.Lock()
# form (the text to find) -> replacement; every registered value adds several forms
_forms: dict[str, str] = {}

_NAME_VALUE_KEYS = (r"password|passwd|pwd|client_secret|aws_secret_access_key|secret_access_key|secret_key|"
                    r"aws_session_token|session_token|security_token|private_key|refresh_token|access_token|"
                    r"id_token|api[_-]?key|api[_-]?token|api[_-]?secret|x-goog-api-key|x-api-key|xi-api-key|"
                    r"x-amz-security-token")
_QUERY_KEYS = (r"key|api_key|apikey|token|access_token|sig|signature|password|client_secret|"
               r"aws_secret_access_key|secret|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|"
               r"X-Goog-Signature|X-Goog-Credential|X-Goog-Security-Token|Signature|Policy|Key-Pair-Id")

# Group 1 is kept, the value after it is masked.
_PATTERNS = [
    re.compile(r"(?i)(\bBearer\s+)[^\s'\",;]+"),
    re.compile(r"(?i)(\bAuthorization['\"]?\s*[:=]\s*['\"]?(?:Key|Token|Basic)\s+)[^\s'\",;]+"),
    re.compile(r"(?i)(\bAuthorization['\"]?\s*[:=]\s*['\"]?(?:Digest|AWS4-HMAC-SHA256)\s+)[^'\"\n;]+"),
    re.compile(r"(?i)(\bAuthorization['\"]?\s*[:=]\s*['\"]?)(?!Bearer\b|Key\b|Token\b|Basic\b|Digest\b|\*\*\*)[^\s'\",;]+"),
    # a bare "Key <credential>" / "Token <credential>" (fal, Replicate): long credential-like runs only
    re.compile(r"(\b(?:Key|Token|key|token)\s+)(?!\*\*\*)[A-Za-z0-9_\-]{6,}[:.][A-Za-z0-9_\-:.]{6,}"),
    re.compile(r"(\b(?:Key|Token)\s+)(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)([?&;](?:" + _QUERY_KEYS + r")=)[^&\s'\"#]+"),
    re.compile(r"(?i)(\b(?:" + _NAME_VALUE_KEYS + r")['\"]?\s*[:=]\s*['\"]?)(?!\*\*\*)[^\s'\",;&}]+"),
    re.compile(r"()" + KEY_SHAPE.pattern),  # the known key formats (credentials.KEY_SHAPES)
]


def _b64_forms(value: bytes) -> Iterable[str]:
    """The base64 text a value becomes at each of the 3 alignments (only the characters it alone decides)."""
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        yield enc(value).decode().rstrip("=")
        for pad in (1, 2):
            text = enc(b"\0" * pad + value).decode()
            end = 4 * ((pad + len(value)) // 3)
            yield text[4:end]
        text = enc(value).decode()
        yield text[: 4 * (len(value) // 3)]


def forms_of(value: str) -> set[str]:
    """Every text form of ``value`` that is masked: itself, URL-encoded, base64 (any alignment)."""
    forms = {value, quote(value, safe=""), quote(value, safe="/:")}
    forms.update(_b64_forms(value.encode("utf-8")))
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS and (f == value or len(f) >= MIN_PREFIX_CHARS)}


# Characters that end a word for masking: whitespace, quotes, brackets and the separators of JSON, headers,
# URLs and ``name=value`` text. A secret that contains one of them is also registered from each of its
# pieces to its end, so every word it spans is masked.
_SEPARATORS = r"\s\"'`<>()\[\]{},;\\=:&?#"
_WORD = re.compile(f"[^{_SEPARATORS}]+")
_PIECE_START = re.compile(f"(?<=[{_SEPARATORS}])[^{_SEPARATORS}]")


class _Snapshot:
    """What ``redact`` reads: rebuilt on each registration, read without a lock.

    ``finder`` finds every *trigger*: the first ``MIN_PREFIX_CHARS`` characters of a long form, or a short
    form whole. A trigger depends on a fixed window of text only, never on how far a match continues."""

    __slots__ = ("forms", "triggers", "finder")

    def __init__(self, forms: dict[str, str]):
        self.forms = dict(forms)
        self.triggers: dict[str, str] = {}   # trigger text -> replacement
        for form, replacement in forms.items():
            key = form[:MIN_PREFIX_CHARS]
            if self.triggers.get(key, replacement) != replacement:
                replacement = MASK  # two secrets share a start: the plain mask
            self.triggers[key] = replacement
        # longest first, so a short form never hides a long form's start at the same place
        keys = sorted(self.triggers, key=len, reverse=True)
        self.finder = re.compile("|".join(re.escape(k) for k in keys)) if keys else None


_snapshot = _Snapshot({})


def register_secret(value: Optional[str], replacement: str = MASK) -> None:
    """Remember ``value`` (and its encoded forms) so that ``redact`` masks it from now on."""
    global _snapshot
    value = (value or "").strip()
    if len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        if value in _forms:
            return
        for form in forms_of(value):
            _forms.setdefault(form, replacement)
        for m in _PIECE_START.finditer(value):  # the text from each piece on (a cut body may start there)
            if len(value) - m.start() >= MIN_PREFIX_CHARS:
                _forms.setdefault(value[m.start():], replacement)
        _snapshot = _Snapshot(_forms)


def registered(value: str) -> bool:
    return (value or "").strip() in _snapshot.forms


def _mask_words(text: str, snap: _Snapshot) -> str:
    """Every word holding (part of) a trigger replaced whole by its mask (linear in ``text``).

    Every start position is tried (a match may hide another that overlaps it), and a trigger that spans
    a boundary masks each word it touches."""
    if snap.finder is None:
        return text
    spans: list[tuple[int, int, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = snap.finder.search(text, pos)
        if m is None:
            break
        spans.append((m.start(), m.end(), snap.triggers[m.group(0)]))
        pos = m.start() + 1
    if not spans:
        return text
    out, last, k = [], 0, 0
    for word in _WORD.finditer(text):
        ws, we = word.span()
        while k < len(spans) and spans[k][1] <= ws:
            k += 1
        replacement = None
        j = k
        while j < len(spans) and spans[j][0] < we:
            if spans[j][1] > ws:
                rep = spans[j][2]
                replacement = rep if replacement in (None, rep) else MASK
            j += 1
        if replacement is not None:
            out.append(text[last:ws])
            out.append(replacement)
            last = we
    out.append(text[last:])
    return "".join(out)


def redact(text, *extra: Optional[str]) -> str:
    """``text`` with every registered secret (and ``extra`` values), any word holding the start of one,
    and every credential-shaped value masked."""
    if text is None:
        return ""
    text = str(text)
    for value in extra:
        register_secret(value)
    text = _mask_words(text, _snapshot)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_url(url: str) -> str:
    """A URL fit for a message: scheme, host and path only (query strings such as presigned signatures dropped)."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    shown = f"{parts.scheme}://{parts.hostname or ''}"
    if port:
        shown += f":{port}"
    shown += parts.path
    if parts.query:
        shown += "?…"
    return redact(shown)


def clip(text, limit: int = 200) -> str:
    """A remote server's text for a message: redacted, one line, at most ``limit`` characters."""
    flat = " ".join(str(text or "").split())
    if len(flat) > limit:
        flat = flat[:limit] + "…"
    return redact(flat)


# ----------------------------------------------------------------- logging
def _clean_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_adreel_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not leak its arguments either
        message = str(record.msg)
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        try:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        except Exception:
            record.exc_text = f"{record.exc_info[0].__name__ if record.exc_info[0] else 'Exception'} (traceback hidden)"
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
        # the formatter prints exc_text when set; exc_info would only be re-formatted by handlers that ignore it
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._adreel_redacted = True
    return record


class RedactingFilter(logging.Filter):
    """A logging filter that renders the record's message (and traceback) and redacts it."""

    def filter(self, record: logging.LogRecord) -> bool:
        _clean_record(record)
        return True


_factory_lock = threading.Lock()
_installed = False
ADREEL_LOGGERS = ("adreel", "AdReel", "adreel.providers", "adreel.storage", "adreel.script", "adreel.cloud",
                  "adreel.upload", "adreel.limits")


def install_log_filter() -> None:
    """Redact every log record this process creates (idempotent).

    A logging filter on a logger does not see its children's records, and a
    handler added later would have none: so the record factory itself
    redacts (chained to whatever factory was set before), and the named AdReel
    loggers and the root logger's current handlers carry a ``RedactingFilter``
    as well.
    """
    global _installed
    with _factory_lock:
        if not _installed:
            previous = logging.getLogRecordFactory()

            def factory(*args, **kwargs):
                return _clean_record(previous(*args, **kwargs))

            factory._adreel_redacting = True  # type: ignore[attr-defined]
            logging.setLogRecordFactory(factory)
            _installed = True
    for name in ADREEL_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in lg.filters):
            lg.addFilter(RedactingFilter())
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


logger = logging.getLogger("adreel.cloud")
install_log_filter()
