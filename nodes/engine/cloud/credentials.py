"""What a credential looks like: the one detector of API keys and tokens, by their shape or by their name.

* ``KEY_SHAPES`` — the published formats of provider keys (``sk-…``, ``gsk_…``, ``hf_…``, ``r8_…``,
  ``ghp_…``, ``fw_…``, ``AIza…``, ``AKIA…``, a JWT …), as one regular expression. ``redaction`` masks every
  run of these in any text; ``looks_like_key`` refuses them in a workflow.
* ``looks_like_key(text)`` — True when ``text`` holds, anywhere, a known key shape, a PEM private key, or a
  long run that mixes upper case, lower case and digits the way random tokens do (names, ids, hex digests
  and UUIDs pass). With ``name_expected=True`` (a widget that should hold the *name* of a variable, such as
  ScriptLLM's ``api_key_env``) it is stricter: a value that merely starts like a key, a long high-entropy
  string or a long hex / UUID string counts too — no variable is named like that.
* ``is_secret_name(name)`` — True for an option name that would carry a credential (``hf_token``,
  ``private_key``, ``X-Api-Key``, ``githubToken`` …).

Callers never echo what was found.
"""
from __future__ import annotations

import math
import re
from collections import Counter

# (start, rest): a key is its start followed by the rest; the start alone is enough where a name is expected.
_SHAPES = (
    (r"sk-", r"(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"),   # OpenAI, Anthropic, DeepSeek …
    (r"sk_", r"(?:live|test)_[A-Za-z0-9]{16,}"),        # Stripe-style secret keys
    (r"gsk_", r"[A-Za-z0-9]{16,}"),                      # Groq
    (r"hf_", r"[A-Za-z0-9]{16,}"),                       # Hugging Face
    (r"r8_", r"[A-Za-z0-9_]{16,}"),                      # Replicate
    (r"gh[pousr]_", r"[A-Za-z0-9]{16,}"),                # GitHub
    (r"github_pat_", r"[A-Za-z0-9_]{16,}"),
    (r"fw_", r"[A-Za-z0-9]{12,}"),                       # Fireworks
    (r"AIza", r"[0-9A-Za-z_\-]{20,}"),                   # Google
    (r"xai-", r"[A-Za-z0-9]{16,}"),                      # xAI
    (r"pplx-", r"[A-Za-z0-9]{16,}"),                     # Perplexity
    (r"nvapi-", r"[A-Za-z0-9_\-]{16,}"),                 # NVIDIA
    (r"(?:AKIA|ASIA)[0-9A-Z]{8}", r"[0-9A-Z]{4,}"),      # AWS access key ids
    (r"xox[abprs]-", r"[A-Za-z0-9-]{10,}"),              # Slack
    (r"glpat-", r"[A-Za-z0-9_\-]{20,}"),                 # GitLab
    # Runway: one unbroken run with a digit in it, so that names and paths ("key_name_from_widget",
    # "test_key_lookup_order_0") are no keys
    (r"key_", r"(?=[A-Za-z0-9\-]*[0-9])[A-Za-z0-9\-]{16,}"),
    # a JWT (header.payload); it starts a whole run (no "_" / "-" before it), so a long run of "eyJ-eyJ-…"
    # is tried once, not from every "eyJ" in it (redaction stays linear in the text)
    (r"(?<![_\-])eyJ", r"[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}"),
)
KEY_SHAPES = "|".join(start + rest for start, rest in _SHAPES)
# a shape starts a word: nothing alphanumeric right before it
KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9])(?:" + KEY_SHAPES + r")")
_KEY_START = re.compile(r"^(?:" + "|".join(start for start, _ in _SHAPES) + r"|[Bb]earer\s)")

_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_+/=:.-]{24,}")
_PIECES = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _random_looking(run: str) -> bool:
    """A long run mixing upper case, lower case and digits many times over: a token, not a name or an id.

    Hex digests, lowercase ids ("2d5b0e6c…"), UUIDs, camelCase names and names such as
    "Angela-inblackskirt-20220820" pass.
    """
    if _UUID.match(run) or "://" in run:
        return False
    core = re.sub(r"[^A-Za-z0-9]", "", run)
    if len(core) < 24:
        return False
    if not (any(c.isupper() for c in core) and any(c.islower() for c in core) and any(c.isdigit() for c in core)):
        return False
    # natural pieces ("Kling", "2", "Master", "CANARY", "48"): a token breaks into many very short ones
    pieces = _PIECES.findall(core)
    return len(core) / max(1, len(pieces)) < 3.0


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def _not_a_name(value: str) -> bool:
    """Where a variable name is expected: a value that starts like a key, or is long, random and not NAME-shaped."""
    if _KEY_START.match(value):
        return True
    if len(value) >= 20 and not _VARIABLE_NAME.fullmatch(value):
        # mixed case / digits / dashes and no structure of a NAME: a key
        classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
        if classes >= 2 and _entropy(value) > 3.5:
            return True
    return len(value) >= 32 and re.fullmatch(r"[0-9a-fA-F\-]+", value) is not None  # a hex / uuid key (ElevenLabs, fal)


def looks_like_key(value, *, name_expected: bool = False) -> bool:
    """True when ``value`` holds something shaped like an API key or token (never echoed by the caller).

    ``name_expected``: the value should be a variable's name, so anything that starts like a key, or is a
    long random or hex string, counts as well."""
    text = str(value or "")
    if KEY_SHAPE.search(text) or _PEM.search(text):
        return True
    if any(_random_looking(m.group(0)) for m in _TOKEN_RUN.finditer(text)):
        return True
    return name_expected and bool(text.strip()) and _not_a_name(text.strip())


# Words that make an option name a credential wherever they appear ("hf_token", "aws_secret_access_key",
# "private_key", "key", "X-Api-Key", "githubToken"); names are split on _ - . spaces and camelCase.
_SECRET_WORDS = frozenset({
    "key", "keys", "apikey", "token", "secret", "secrets", "password", "passwd", "passphrase", "pwd",
    "authorization", "auth", "bearer", "credential", "credentials", "cookie", "privatekey", "accesskey",
    "secretkey", "authtoken", "accesstoken", "apitoken",
})
# The same inside one unbroken word ("hftoken", "openaikey" is not caught, "openai_key" is).
_SECRET_INFIX = re.compile(r"token|secret|passw(or)?d|api_?key|private_?key|access_?key")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def is_secret_name(name: str) -> bool:
    """True for an option name that would carry a credential (``hf_token``, ``key``, ``private_key``…)."""
    words = [w.lower() for w in _WORD_SPLIT.split(str(name)) if w]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(_SECRET_INFIX.search(w) and not w.endswith("tokens") for w in words)
