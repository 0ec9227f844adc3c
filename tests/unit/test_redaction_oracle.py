"""Redaction is no oracle: what stays visible of a text never tells how much of it matched a secret.

The old masking replaced exactly the characters that matched a registered secret's start, so a guess
``known + c`` showed ``***`` followed by the unmatched rest: one character of the secret per 64 tries. Now
a match masks the whole word it sits in, and whether a word is masked depends only on a fixed window (the
first 8 characters of a form of the secret, or a short secret whole). Real leaks stay masked: an error
body cut mid-key, the key inside JSON, a URL, a header, base64 or URL-encoded.
"""
from __future__ import annotations

import base64
import random
import string
from urllib.parse import quote

from hypothesis import given, settings, strategies as st

from nodes.engine.cloud.redaction import MASK, MIN_PREFIX_CHARS, redact, register_secret

_rng = random.Random(7)
ALPHABET = string.ascii_letters + string.digits
KEY = "sk-proj-" + "".join(_rng.choice(ALPHABET + "-_") for _ in range(120))      # 128 characters
PASSWORD = "Zq7" + "".join(_rng.choice(ALPHABET) for _ in range(9)) + ":p=w&" + "".join(_rng.choice(ALPHABET) for _ in range(12))
register_secret(KEY)
register_secret(PASSWORD)


def test_the_reported_attack_learns_nothing():
    """At every position, all 64 candidates for the next character give the same visible text."""
    for known in range(MIN_PREFIX_CHARS, len(KEY)):
        outs = {redact(f"provider: {KEY[:known] + c}tail is unknown") for c in ALPHABET + "-_"}
        assert outs == {f"provider: {MASK} is unknown"}, known


@settings(max_examples=400, deadline=None)
@given(k=st.integers(0, len(KEY)), tail=st.text(alphabet=ALPHABET + "-_.", max_size=30),
       before=st.text(alphabet=ALPHABET + " ,:", max_size=20))
def test_a_right_and_a_wrong_guess_read_back_the_same(k, tail, before):
    right = KEY[:k] + tail
    wrong_char = "A" if k < len(KEY) and KEY[k] != "A" else "B"
    wrong = KEY[:k] + wrong_char + tail[1:] if tail else KEY[:k] + wrong_char
    a, b = redact(f"{before} {right} end"), redact(f"{before} {wrong} end")
    # the visible text is the input with the guess's word masked or not, decided by its start only
    assert (a == b) or (k < MIN_PREFIX_CHARS), (k, a, b)
    if k >= MIN_PREFIX_CHARS:
        assert KEY[:4] not in a and a.endswith(f"{MASK} end")


_word = st.one_of(st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12),
                  st.builds(lambda k, a, b: a + KEY[:k] + b, st.integers(0, 40),
                            st.text(alphabet="xyz", max_size=3), st.text(alphabet="xyz", max_size=3)))


@settings(max_examples=300, deadline=None)
@given(words=st.lists(_word, min_size=1, max_size=12))
def test_each_word_is_kept_or_masked_whole_by_its_8_character_window(words):
    out = redact(" ".join(words)).split(" ")
    assert len(out) == len(words)
    for w, o in zip(words, out):
        assert o == (MASK if KEY[:MIN_PREFIX_CHARS] in w else w), (w, o)


def test_real_leaks_stay_masked():
    for cut in (8, 9, 20, 64, 127, 128):
        body = '{"error": {"message": "Incorrect API key provided: ' + KEY[:cut]
        out = redact(body)
        assert KEY[:8] not in out and MASK in out and out.startswith('{"error": {"message": "Incorrect API key')
    for text in (f"Authorization: Bearer {KEY}", f'{{"key":"{KEY}","x":1}}', f"https://h/v1?k={KEY}&y=2",
                 f"url {quote(KEY, safe='')} end", f"b64 {base64.b64encode(KEY.encode()).decode()} end",
                 f"b64 {base64.b64encode(b'user:' + KEY.encode()).decode()} end"):
        out = redact(text)
        assert KEY[8:20] not in out and KEY[:8] not in out, out
    assert redact(f'x "{KEY}" y') == f'x "{MASK}" y'   # quotes and the rest of the text stay readable
    assert redact(f"password={KEY}") == f"password={MASK}"


def test_a_secret_with_separators_is_masked_in_every_piece():
    out = redact(f"leak: {PASSWORD} and more")
    for piece in (PASSWORD[:12], PASSWORD.split("&")[1]):
        assert piece not in out, out
    assert out.endswith(" and more")
    # a body that starts mid-secret, at one of its pieces, is masked too
    tail = PASSWORD.split("&")[1]
    assert tail not in redact(f"... {tail} (cut)")


def test_ordinary_text_is_untouched():
    for text in ("the token budget is 4096", "scene 3: a bright kitchen", "sk- alone", "proj- words here"):
        assert redact(text) == text
