"""Languages in scripts: which one a text is in, and how long it takes to say.

No model and no dependency: writing systems (Hangul, kana, Han, Cyrillic, …)
decide most cases, and for Latin-script languages a handful of very common
function words tells English from Spanish, French, German, Portuguese, Italian
and Dutch. Brand, product and CTA strings are taken out first (a Korean ad may
name an English brand).

Speaking rates are natural ad voice-over rates: about 3 words a second for
English, 7 syllables a second for Korean, 8 morae-ish characters for Japanese,
5 characters for Chinese.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

LANGUAGE_NAMES = {
    "en": "English", "ko": "Korean (한국어)", "ja": "Japanese (日本語)", "zh": "Chinese (中文)",
    "es": "Spanish", "fr": "French", "de": "German", "pt": "Portuguese", "it": "Italian", "nl": "Dutch",
    "ru": "Russian", "uk": "Ukrainian", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "th": "Thai",
    "el": "Greek", "vi": "Vietnamese", "id": "Indonesian", "tr": "Turkish", "pl": "Polish", "sv": "Swedish",
}

# writing systems a language is written in (default: Latin)
_SCRIPTS = {
    "ko": {"hangul"}, "ja": {"kana", "han"}, "zh": {"han"},
    "ru": {"cyrillic"}, "uk": {"cyrillic"}, "bg": {"cyrillic"}, "sr": {"cyrillic", "latin"}, "mk": {"cyrillic"},
    "be": {"cyrillic"}, "kk": {"cyrillic"}, "mn": {"cyrillic"},
    "ar": {"arabic"}, "fa": {"arabic"}, "ur": {"arabic"}, "he": {"hebrew"}, "yi": {"hebrew"},
    "th": {"thai"}, "hi": {"devanagari"}, "mr": {"devanagari"}, "ne": {"devanagari"}, "el": {"greek"},
}
_SCRIPT_NAMES = {"hangul": "Korean", "kana": "Japanese", "han": "Chinese", "cyrillic": "Cyrillic",
                 "arabic": "Arabic", "hebrew": "Hebrew", "thai": "Thai", "devanagari": "Devanagari",
                 "greek": "Greek", "latin": "Latin-script"}

_STOPWORDS = {
    "en": "the and you your to of for with is are it this that now get in on our at be more than".split(),
    "es": "el la los las y de que en con para por tu su es un una más ahora del al se".split(),
    "fr": "le la les et de des du que en avec pour vous votre est un une plus au aux ce".split(),
    "de": "der die das und mit für ist ein eine nicht sie ihr ihre jetzt auf zu den dem von".split(),
    "pt": "o a os as e de do da que em com para por você seu sua é um uma mais agora".split(),
    "it": "il la le gli e di che in con per tuo tua è un una più ora del della sono".split(),
    "nl": "de het een en van voor met is je jouw nu op te dat niet meer ook".split(),
}
_STOPSETS = {k: set(v) for k, v in _STOPWORDS.items()}

# speaking rate: (unit, units per second)
_RATES = {
    "en": ("words", 3.0), "es": ("words", 2.9), "fr": ("words", 2.9), "it": ("words", 2.9),
    "pt": ("words", 2.9), "de": ("words", 2.6), "nl": ("words", 2.8),
    "ko": ("syllables", 6.5), "ja": ("characters", 8.0), "zh": ("characters", 5.0), "th": ("characters", 12.0),
}
_DEFAULT_RATE = ("words", 2.8)
# a voice starts a moment after its scene and ends a breath before the next
# (the narration stage's lead-in 0.1 s + breath 0.25 s)
NARRATION_MARGIN = 0.35


def base(lang: str) -> str:
    return (lang or "en").lower().replace("_", "-").split("-")[0]


def language_name(lang: str) -> str:
    return LANGUAGE_NAMES.get(base(lang), lang)


def char_script(ch: str) -> str | None:
    o = ord(ch)
    if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9D:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
        return "han"
    if 0x0400 <= o <= 0x052F:
        return "cyrillic"
    if 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F:
        return "arabic"
    if 0x0590 <= o <= 0x05FF:
        return "hebrew"
    if 0x0E00 <= o <= 0x0E7F:
        return "thai"
    if 0x0900 <= o <= 0x097F:
        return "devanagari"
    if 0x0370 <= o <= 0x03FF:
        return "greek"
    if ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN"):
        return "latin"
    return None


def script_counts(text: str) -> Counter:
    return Counter(s for s in map(char_script, text) if s)


def strip_names(text: str, names: list[str]) -> str:
    """``text`` without the given names (brand, product, CTA), case-insensitively."""
    for name in sorted((n for n in names if n and n.strip()), key=len, reverse=True):
        text = re.sub(re.escape(name.strip()), " ", text, flags=re.IGNORECASE)
    return text


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)?", text.lower())


def latin_language(text: str) -> tuple[str | None, dict[str, int]]:
    """The Latin-script language whose function words dominate, with the counts."""
    words = _words(text)
    hits = {lang: sum(w in s for w in words) for lang, s in _STOPSETS.items()}
    best = max(hits, key=hits.get)
    return (best if hits[best] else None), hits


def language_problem(text: str, lang: str, names: list[str] = ()) -> str | None:
    """Why ``text`` is not in ``lang`` (None when it is, or when too little text to tell)."""
    b = base(lang)
    text = strip_names(text, list(names))
    counts = script_counts(text)
    total = sum(counts.values())
    if total < 4:
        return None
    expected = _SCRIPTS.get(b, {"latin"})
    share = sum(counts[s] for s in expected) / total
    dominant = counts.most_common(1)[0][0]
    if share < 0.5:
        return f"is written in {_SCRIPT_NAMES[dominant]} letters, not {language_name(b)}"
    if b == "ja" and counts["kana"] == 0 and total >= 8:
        return f"has no kana: it reads as Chinese, not {language_name(b)}"
    if b == "zh" and counts["kana"] > 0:
        return f"has Japanese kana, not {language_name(b)}"
    if expected == {"latin"} and b in _STOPSETS:
        best, hits = latin_language(text)
        if best and best != b and hits[best] >= 3 and hits[best] >= 2 * max(1, hits[b]):
            return f"reads as {language_name(best)}, not {language_name(b)}"
    return None


def speech_units(text: str, lang: str) -> float:
    """How much there is to say in ``text``, in the language's rate unit."""
    unit, _ = _RATES.get(base(lang), _DEFAULT_RATE)
    if unit == "words":  # "acme.com" is said as two words, "X2" as two
        tokens = re.findall(r"[^\W_]+(?:['’][^\W_]+)?", text)
        return float(sum(2 if re.search(r"\d", t) and re.search(r"[^\W\d_]", t) else 1 for t in tokens))
    counts = script_counts(text)
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    digits = len(re.findall(r"\d", text))
    if unit == "syllables":
        return counts["hangul"] + 2.0 * latin_words + digits
    if base(lang) == "ja":
        return counts["kana"] + 2.0 * counts["han"] + 2.0 * latin_words + digits
    return counts["han"] + counts["thai"] + 2.0 * latin_words + digits + counts["kana"]


def speaking_rate(lang: str) -> tuple[str, float]:
    return _RATES.get(base(lang), _DEFAULT_RATE)


def speech_seconds(text: str, lang: str) -> float:
    """Seconds a narrator needs for ``text`` at a natural ad pace."""
    _, rate = speaking_rate(lang)
    return speech_units(text, lang) / rate


def narration_fits(text: str, lang: str, seconds: float) -> bool:
    """Whether ``text`` can be said in a scene of ``seconds``, lead-in and breath included."""
    return not text.strip() or speech_seconds(text, lang) + NARRATION_MARGIN <= seconds + 1e-6


def max_units(seconds: float, lang: str) -> int:
    """The most a scene of ``seconds`` can say (in the language's rate unit)."""
    _, rate = speaking_rate(lang)
    return max(0, math.floor((seconds - NARRATION_MARGIN) * rate + 1e-9))
