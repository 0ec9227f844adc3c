"""The spoken form of a narration line: what the voice says for what the user wrote.

The voice speaks the spoken form; the on-screen text and the subtitles keep
what was written (subtitles shorten URLs to their readable part: see
:func:`display_form`). Rules, in order:

* URLs: the domain is said as a domain ("acme dot com"), without the scheme
  and ``www``; the path, the query string and the fragment are never read out.
* e-mail addresses: "hello at acme dot com"; social handles: "at acme".
* dates (2026-12-02, 2026.12.02, 12/25) and times (10:30, 9am).
* phone numbers and long digit runs (7+ digits): digit by digit, in their
  groups, with a pause between groups.
* prices ($19.99, €5, ₩19,900, 19,900원), percentages (50 %), ``1+1``
  (Korean: 원 플러스 원), ranges (10~20), ordinals (1st).
* the remaining numbers as words (English, Korean — native Korean before
  counters: 3개 → 세 개; months 6월 → 유월); other languages keep their digits,
  which every voice reads in its own language.
* symbols as words where they are said (``&`` ``+`` ``@`` ``#1`` ``°``), dropped
  where they are not (quotes, backslashes, brackets, ™ ®), dashes and colons
  as pauses; emoji and other pictographs are never read out.

Korean and English have full rules; Spanish, French, German, Portuguese,
Italian, Dutch, Japanese and Chinese get the words for the symbols; any other
language keeps ``%`` ``+`` and numbers for its voice to read in its own
language (espeak-ng knows them for every language it speaks) and gets every
structural rule (URLs, e-mail, phones, emoji, quotes, backslashes).
"""
from __future__ import annotations

import re
import unicodedata

from . import numbers as N

# words a voice says for symbols, per language ("" = say nothing)
_WORDS: dict[str, dict[str, str]] = {
    "en": {"dot": "dot", "at": "at", "percent": "percent", "plus": "plus", "and": "and", "to": "to",
           "number": "number", "degrees": "degrees", "underscore": "underscore", "equals": "equals",
           "times": "times"},
    "ko": {"dot": "닷", "at": "골뱅이", "percent": "퍼센트", "plus": "플러스", "and": "앤", "to": "에서",
           "number": "", "degrees": "도", "underscore": "언더바", "equals": "는", "times": "곱하기"},
    "es": {"dot": "punto", "at": "arroba", "percent": "por ciento", "plus": "más", "and": "y", "to": "a",
           "number": "número", "degrees": "grados", "underscore": "guion bajo"},
    "fr": {"dot": "point", "at": "arobase", "percent": "pour cent", "plus": "plus", "and": "et", "to": "à",
           "number": "numéro", "degrees": "degrés", "underscore": "tiret bas"},
    "de": {"dot": "Punkt", "at": "at", "percent": "Prozent", "plus": "plus", "and": "und", "to": "bis",
           "number": "Nummer", "degrees": "Grad", "underscore": "Unterstrich"},
    "pt": {"dot": "ponto", "at": "arroba", "percent": "por cento", "plus": "mais", "and": "e", "to": "a",
           "number": "número", "degrees": "graus", "underscore": "sublinhado"},
    "it": {"dot": "punto", "at": "chiocciola", "percent": "per cento", "plus": "più", "and": "e", "to": "a",
           "number": "numero", "degrees": "gradi", "underscore": "trattino basso"},
    "nl": {"dot": "punt", "at": "apenstaartje", "percent": "procent", "plus": "plus", "and": "en", "to": "tot",
           "number": "nummer", "degrees": "graden", "underscore": "underscore"},
    "ja": {"dot": "ドット", "at": "アット", "percent": "パーセント", "plus": "プラス", "and": "アンド", "to": "から",
           "number": "", "degrees": "度", "underscore": "アンダーバー"},
    "zh": {"dot": "点", "at": "艾特", "percent": "百分之", "plus": "加", "and": "和", "to": "到",
           "number": "", "degrees": "度", "underscore": "下划线"},
}
_CURRENCY = {  # symbol → (English singular, plural; Korean; ISO code as others say it)
    "$": ("dollar", "dollars", "달러"), "€": ("euro", "euros", "유로"), "£": ("pound", "pounds", "파운드"),
    "¥": ("yen", "yen", "엔"), "₩": ("won", "won", "원"), "₹": ("rupee", "rupees", "루피"),
}
_CENTS = {"$": ("cent", "cents", "센트"), "€": ("cent", "cents", "센트"), "£": ("penny", "pence", "펜스")}
_MONTHS_EN = ("January February March April May June July August September October November "
              "December").split()
_TLDS = ("com net org io co ai app dev shop store kr jp cn uk de fr es it nl eu us ca au in br mx ru info biz me tv "
         "xyz online site live link ly gg to be ch at se no dk fi pl pt").split()

_PLACEHOLDER = "\ue000"  # a private-use character, then the held piece's index: already-spoken text
_PIECE_BASE = 0xE100     # the index in hex, one private-use character per hex digit (U+E100 … U+E10F)
_PIECE = re.compile(f"{_PLACEHOLDER}([\ue100-\ue10f]+)")
_URL_SCHEME = re.compile(r"(?i)\b(?:https?|ftp)://[^\s<>\"'`]+")
_WWW = re.compile(r"(?i)\bwww\.[^\s<>\"'`]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_BARE_DOMAIN = re.compile(rf"(?i)(?<![\w@.-])((?:{_LABEL}\.)+(?:{'|'.join(_TLDS)}))\b(/[^\s<>\"'`]*)?")
_EMAIL = re.compile(rf"(?i)(?<![\w.%+-])([A-Za-z0-9._%+-]+)@((?:{_LABEL}\.)+[A-Za-z]{{2,24}})\b")
_HANDLE = re.compile(r"(?<![\w@])@([A-Za-z0-9_][A-Za-z0-9_.]*[A-Za-z0-9_]|[A-Za-z0-9_])")
_ISO_DATE = re.compile(r"(?<![\d.])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d])\.?")
_SHORT_DATE = re.compile(r"(?<![\d/.,])(\d{1,2})/(\d{1,2})(?![\d/])")
_TIME = re.compile(r"(?i)(?<![\d:.])(\d{1,2}):(\d{2})(?![\d:])(\s?[ap]\.?m\.?\b)?")
_AMPM = re.compile(r"(?i)(?<![\d:.])(\d{1,2})\s?([ap])\.?m\.?(?![a-z])")
_PHONE = re.compile(r"(?<![\dA-Za-z.,+])(\+?\(?\d[\d ().-]{5,}\d)(?![\dA-Za-z,]|\.\d)")
_LONG_DIGITS = re.compile(r"(?<![\d.,])\d{7,}(?![\d.,]\d)")
# a number of more digits than any amount is said digit by digit (and never converted to an int)
_HUGE_NUMBER = re.compile(rf"(?<!\d)(?<!\d,)\d(?:,?\d){{{len(str(N.MAX_WORDS_NUMBER)) - 1},}}")
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_PRICE_PREFIX = re.compile(rf"([$€£¥₩₹])\s?({_NUM})")
_NUM_START = r"(?<!\d)(?<!\d,)"  # a number starts where its digit run starts (never inside one)
_PRICE_SUFFIX = re.compile(rf"{_NUM_START}(\d+,\d{{1,2}}(?![\d,])|{_NUM})\s?([$€£¥₩₹])")
_PLUS_OFFER = re.compile(r"(?<![\d+])(\d{1,2})\s?\+\s?(\d{1,2})(?![\d+])")
_PERCENT = re.compile(rf"{_NUM_START}({_NUM}|\d+,\d+)\s?[%％]")
_RANGE = re.compile(rf"{_NUM_START}({_NUM})\s?[~〜–—-]\s?({_NUM})")
_ORDINAL = re.compile(r"(?i)\b(\d+)(st|nd|rd|th)\b")
_HASH_NUMBER = re.compile(r"#\s?(\d+)")
_NUMBER = re.compile(_NUM)
_KO_COUNTER = re.compile(rf"(?<![\d.,])(\d+)\s?({'|'.join(sorted(N.KO_NATIVE_COUNTERS, key=len, reverse=True))})(?!월)")
_KO_MONTH = re.compile(r"(\d{1,2})\s?월")
_APOSTROPHE_IN_WORD = re.compile(r"(?<=[^\W\d_])['’](?=[^\W\d_])")


def base_language(language: str) -> str:
    return (language or "en").lower().replace("_", "-").split("-")[0]


def words_for(language: str) -> dict[str, str]:
    return _WORDS.get(base_language(language), {})


# ------------------------------------------------------------------ pieces
def _domain_labels(domain: str) -> list[str]:
    labels = [lb for lb in domain.strip(".").split(".") if lb]
    if labels and labels[0].lower() == "www":
        labels = labels[1:]
    return labels


def say_domain(domain: str, lang: str) -> str:
    dot = words_for(lang).get("dot")
    labels = [_say_label(lb, lang) for lb in _domain_labels(domain)]
    if dot is None:  # a language without a table: the voice reads the dots itself
        return ".".join(labels)
    return f" {dot} ".join(labels)


def _say_label(label: str, lang: str) -> str:
    """A domain label or an e-mail's local part: letters as they are, digits one by one, '-' and '_' as pauses."""
    parts = re.split(r"[-_]+", label)
    out = []
    for p in parts:
        p = re.sub(r"\d+", lambda m: f" {say_digits(m.group(0), lang)} ", p)
        out.append(p.strip())
    return " ".join(o for o in out if o)


def say_digits(digits: str, lang: str) -> str:
    b = base_language(lang)
    if b == "en":
        return N.en_digits(digits)
    if b == "ko":
        return N.ko_digits(digits)
    return " ".join(d for d in digits if d.isdigit())  # each a one-digit number, read in the voice's language


def say_number(text: str, lang: str) -> str:
    """A number as the language says it (digits kept where the voice reads them itself)."""
    b = base_language(lang)
    if b == "en":
        return N.en_decimal(text)
    if b == "ko":
        return N.ko_decimal(text)
    return text


def _say_url(url: str, lang: str) -> str:
    rest = re.sub(r"(?i)^(?:https?|ftp)://", "", url)
    host = re.split(r"[/?#]", rest, 1)[0]
    host = host.rsplit("@", 1)[-1].split(":")[0]  # user:pass@host:port → host
    return say_domain(host, lang)


def _say_email(local: str, domain: str, lang: str) -> str:
    w = words_for(lang)
    local_words = []
    for chunk in re.split(r"(\.)", local):
        if chunk == ".":
            local_words.append(w.get("dot", "."))
        elif chunk:
            local_words.append(_say_label(chunk.replace("+", " "), lang))
    at = w.get("at", "@")
    return f"{' '.join(local_words)} {at} {say_domain(domain, lang)}"


def _say_phone(raw: str, lang: str) -> str | None:
    groups = re.findall(r"\d+", raw)
    digits = "".join(groups)
    if len(digits) < 7:
        return None
    if len(groups) == 1:  # one long run: groups of 3-4 as people read them
        run, groups = groups[0], []
        while len(run) > 4:
            cut = 3 if len(run) not in (5, 6, 8) else (len(run) - 4 if len(run) <= 8 else 4)
            groups.append(run[:cut])
            run = run[cut:]
        groups.append(run)
    plus = raw.strip().startswith("+")
    spoken = [say_digits(g, lang) for g in groups]
    if plus:
        spoken[0] = f"{words_for(lang).get('plus', '+')} {spoken[0]}"
    return ", ".join(spoken)


def _is_phone(raw: str) -> bool:
    """A phone number: 7+ digits in groups marked by '-', '.', '(' or a leading '+',
    or 9+ digits in space-separated groups of 2-4."""
    raw = raw.strip()
    groups = re.findall(r"\d+", raw)
    digits = sum(map(len, groups))
    if digits < 7:
        return False
    if re.search(r"[().-]", raw) or raw.startswith("+"):
        return True
    return digits >= 9 and all(2 <= len(g) <= 4 for g in groups)


def _is_amount(run: str, after: str) -> bool:
    """A long digit run that is an amount, not a code: round (…000) or followed by a currency."""
    return run.endswith("000") or bool(re.match(r"\s?(?:원|달러|엔|유로|[$€£¥₩₹]|won\b|dollars?\b|euros?\b)", after, re.I))


def _say_price(symbol: str, amount: str, lang: str) -> str:
    b = base_language(lang)
    if b not in ("en", "ko"):
        return f"{amount} {symbol}"  # the voice reads a currency sign after its amount in its language
    if re.fullmatch(r"\d+,\d{1,2}", amount):  # 19,99 €: a decimal comma
        amount = amount.replace(",", ".")
    whole, _, frac = amount.replace(",", "").partition(".")
    names = _CURRENCY[symbol]
    if b == "ko":
        out = f"{N.ko_sino(int(whole or '0'))} {names[2]}"
        if frac and int(frac) and symbol in _CENTS:
            out += f" {N.ko_sino(int(frac[:2].ljust(2, '0')))} {_CENTS[symbol][2]}"
        elif frac and int(frac):
            out = f"{N.ko_decimal(amount)} {names[2]}"
        return out
    if b == "en":
        n = int(whole or "0")
        out = f"{N.en_cardinal(n)} {names[0] if n == 1 else names[1]}"
        if frac and int(frac):
            if symbol in _CENTS:
                c = int(frac[:2].ljust(2, "0"))
                out += f" {N.en_cardinal(c)}"  # "nineteen dollars ninety-nine", as ads say it
            else:
                out = f"{N.en_decimal(amount)} {names[1]}"
        return out
    return f"{amount} {symbol}"  # the voice reads a currency sign after its amount in its language


# ------------------------------------------------------------------ the whole line
def spoken_form(text: str, language: str) -> str:
    """What the voice says for ``text`` in ``language`` (see the module's rules)."""
    if not text or not text.strip():
        return ""
    line = _Line(base_language(language))
    s = text.replace("\r", " ").replace("\n", " ")
    s = re.sub("[™®©℠]", "", s)
    s = unicodedata.normalize("NFKC", s)  # full-width digits and letters, compatibility forms
    s = "".join(" " if unicodedata.category(ch) == "Co" else ch for ch in s)  # private use: ours from here
    s = line.addresses(s)
    s = line.dates_and_digits(s)
    s = line.amounts(s)
    s = _say_symbols(s, line.w)
    s = _tidy(s)
    s = line.put_back(s)
    s = re.sub(r"\s+", " ", s).strip(" ,.")
    if s and text.rstrip()[-1:] in ".!?。！？" and s[-1] not in ".!?":
        s += text.rstrip()[-1].replace("。", ".").replace("！", "!").replace("？", "?")
    return s if re.search(r"[^\W_]", s) else ""


class _Line:
    """One line being put into words: the language, its words, and the pieces already said, held out of
    the text (as private-use placeholders) so that later rules never touch them."""

    def __init__(self, lang: str):
        self.lang = lang
        self.w = words_for(lang)
        self.said: list[str] = []

    def hold(self, spoken: str, right: str = " ") -> str:
        self.said.append(spoken)
        index = "".join(chr(_PIECE_BASE + int(h, 16)) for h in format(len(self.said) - 1, "x"))
        return f" {_PLACEHOLDER}{index}{right}"

    def put_back(self, s: str) -> str:
        return _PIECE.sub(lambda m: self.said[int("".join(f"{ord(c) - _PIECE_BASE:x}" for c in m.group(1)), 16)], s)

    def addresses(self, s: str) -> str:
        """URLs, e-mail addresses, handles: said as domains; paths and query strings never."""
        hold, lang, w = self.hold, self.lang, self.w
        s = _EMAIL.sub(lambda m: hold(_say_email(m.group(1), m.group(2), lang)), s)
        s = _URL_SCHEME.sub(lambda m: hold(_say_url(m.group(0).rstrip(".,;:!?)]}"), lang)), s)
        s = _WWW.sub(lambda m: hold(_say_url(m.group(0).rstrip(".,;:!?)]}"), lang)), s)
        s = _BARE_DOMAIN.sub(lambda m: hold(say_domain(m.group(1), lang)), s)
        return _HANDLE.sub(lambda m: hold(f"{w.get('at', '@')} {_say_label(m.group(1).replace('.', ' '), lang)}"), s)

    def iso_date(self, m):
        hold, lang = self.hold, self.lang
        y, mo, d = int(m.group(1)), int(m.group(3)), int(m.group(4))
        if not (1 <= mo <= 12 and 1 <= d <= 31):
            return m.group(0)
        if lang == "en":
            return hold(f"{_MONTHS_EN[mo - 1]} {N.en_ordinal(d)}, {N.en_year(y)}")
        if lang == "ko":
            return hold(f"{N.ko_sino(y)}년 {N.ko_month(mo)}월 {N.ko_sino(d)}일")
        return m.group(0).rstrip(".").replace("/", "-")

    def short_date(self, m):
        hold, lang = self.hold, self.lang
        mo, d = int(m.group(1)), int(m.group(2))
        if not (1 <= mo <= 12 and 1 <= d <= 31) or lang not in ("en", "ko"):
            return m.group(0)
        if lang == "en":
            return hold(f"{_MONTHS_EN[mo - 1]} {N.en_ordinal(d)}")
        return hold(f"{N.ko_month(mo)}월 {N.ko_sino(d)}일")

    def clock(self, m):
        hold, lang = self.hold, self.lang
        h, mi, ampm = int(m.group(1)), int(m.group(2)), (m.group(3) or "").strip().lower().replace(".", "")
        if h > 24 or mi > 59:
            return m.group(0)
        if lang == "en":
            mins = "o'clock" if mi == 0 and not ampm else ("" if mi == 0 else
                                                             (f"oh {N.en_cardinal(mi)}" if mi < 10 else N.en_cardinal(mi)))
            return hold(" ".join(x for x in (N.en_cardinal(h), mins, " ".join(ampm.upper())) if x))
        if lang == "ko":
            head = {"am": "오전 ", "pm": "오후 "}.get(ampm, "")
            return hold(f"{head}{N.ko_native(h if h <= 12 else h - 12) if h else '영'} 시"
                        + (f" {N.ko_sino(mi)} 분" if mi else ""))
        return m.group(0)

    def ampm(self, m):
        hold, lang = self.hold, self.lang
        h, half = int(m.group(1)), m.group(2).lower()
        if not 1 <= h <= 12:
            return m.group(0)
        if lang == "en":
            return hold(f"{N.en_cardinal(h)} {half.upper()} M")
        if lang == "ko":
            return hold(f"{'오전' if half == 'a' else '오후'} {N.ko_native(h)} 시")
        return m.group(0)

    def dates_and_digits(self, s: str) -> str:
        """Dates and times; phone numbers and long digit runs: digit by digit, in groups."""
        hold, lang = self.hold, self.lang
        s = _ISO_DATE.sub(self.iso_date, s)
        s = _TIME.sub(self.clock, s)
        s = _AMPM.sub(self.ampm, s)
        s = _PHONE.sub(lambda m: hold(_say_phone(m.group(1), lang)) if _is_phone(m.group(1)) else m.group(0), s)
        s = _LONG_DIGITS.sub(lambda m: m.group(0) if _is_amount(m.group(0), s[m.end():m.end() + 8])
                             else hold(_say_phone(m.group(0), lang)), s)
        s = _HUGE_NUMBER.sub(lambda m: hold(say_digits(m.group(0), lang)), s)
        return _SHORT_DATE.sub(self.short_date, s)

    def offer(self, m):
        hold, lang, w = self.hold, self.lang, self.w
        a, b = int(m.group(1)), int(m.group(2))
        plus = w.get("plus", "+")
        if lang == "ko" and N.ko_english_small(a) and N.ko_english_small(b):
            return hold(f"{N.ko_english_small(a)} {plus} {N.ko_english_small(b)}")
        return hold(f"{say_number(m.group(1), lang)} {plus} {say_number(m.group(2), lang)}")

    def percent(self, m):
        hold, lang = self.hold, self.lang
        word = self.w.get("percent")
        if word is None:
            return hold(f"{m.group(1)}%")
        if lang == "zh":
            return hold(f"{word}{m.group(1)}")
        return hold(f"{say_number(m.group(1), lang)} {word}")

    def amounts(self, s: str) -> str:
        """Prices, offers, percentages, ranges, ordinals, counters, then every other number."""
        hold, lang, w = self.hold, self.lang, self.w
        s = _PRICE_PREFIX.sub(lambda m: hold(_say_price(m.group(1), m.group(2), lang)), s)
        s = _PRICE_SUFFIX.sub(lambda m: hold(_say_price(m.group(2), m.group(1), lang)), s)
        s = _PLUS_OFFER.sub(self.offer, s)
        s = _RANGE.sub(lambda m: hold(f"{say_number(m.group(1), lang)} {w.get('to', '-')} {say_number(m.group(2), lang)}")
                       if w.get("to") else m.group(0), s)
        s = _PERCENT.sub(self.percent, s)
        if lang == "en":
            s = _ORDINAL.sub(lambda m: hold(N.en_ordinal(int(m.group(1)))), s)
        if lang == "ko":
            # a particle stays on its counter: 3개와 → 세 개와, 3시까지 → 세 시까지
            s = _KO_MONTH.sub(lambda m: hold(f"{N.ko_month(int(m.group(1)))}월", "") if 1 <= int(m.group(1)) <= 12
                              else m.group(0), s)
            s = _KO_COUNTER.sub(lambda m: hold(f"{N.ko_native(int(m.group(1)))} {m.group(2)}", "")
                                if re.fullmatch(r"\d+", m.group(1)) else m.group(0), s)
        s = _HASH_NUMBER.sub(lambda m: hold(f"{w.get('number', '')} {say_number(m.group(1), lang)}".strip()), s)
        return _NUMBER.sub(lambda m: f" {say_number(m.group(0), lang)} ", s)


def _say_symbols(s: str, w: dict) -> str:
    """Symbols: said (in the words ``w`` of the language), paused or dropped."""
    s = s.replace("&", f" {w.get('and', '&')} ")
    s = s.replace("+", f" {w.get('plus', '+')} ")
    s = s.replace("@", f" {w.get('at', '@')} ")
    s = re.sub(r"[%％]", f" {w.get('percent', '%')} ", s)
    s = re.sub(r"[°℃℉]", f" {w.get('degrees', '°')} ", s)
    s = s.replace("=", f" {w.get('equals', '')} ")
    s = _APOSTROPHE_IN_WORD.sub("\ue001", s)  # keep "there's", drop quoting apostrophes
    s = re.sub(r"[\"'‘’‚‛“”„‟«»‹›「」『』〈〉《》`´]", " ", s)
    s = s.replace("\ue001", "'")
    s = re.sub(r"[\\/|_*^~#<>{}\[\]]", " ", s)
    s = re.sub(r"[()（）]", ", ", s)
    s = re.sub(r"\s[-–—]+\s|[–—―]+|\s-+|(?<!-)-+\s|:|;|…|\.{2,}|[·•]", ", ", s)
    s = s.replace("。", ". ").replace("、", ", ").replace("！", "! ").replace("？", "? ").replace("，", ", ")
    # emoji, pictographs, joiners, variation selectors, keycaps, leftover currency signs: never read out
    return "".join(" " if unicodedata.category(ch) in ("So", "Sk", "Sm", "Sc", "Cf", "Cs", "Cn", "Me")
                   or ch in "\ufe0f\u20e3" else ch for ch in s)


def _tidy(s: str) -> str:
    """The punctuation tidied (before the held pieces are put back)."""
    s = re.sub(r"\s+", " ", s)
    s = re.sub(r"(?<!\s)\s+([,.!?])", r"\1", s)
    s = re.sub(r"([,.!?])(?:\s*[,])+", r"\1", s)
    s = re.sub(r",\s*([.!?])", r"\1", s)
    s = re.sub(r"([.!?])[.!?]+", r"\1", s)
    return re.sub(r"([,.!?])(?=[^\s\d,.!?])", r"\1 ", s)


def display_form(text: str) -> str:
    """What the subtitles show: the text as written, URLs shortened to host and path
    (no scheme, no ``www.``, no query string or fragment)."""
    def short(m):
        url = m.group(0)
        tail = re.search(r"[.,;:!?)\]}]+$", url)
        url = url[: tail.start()] if tail else url
        rest = re.sub(r"(?i)^(?:https?|ftp)://", "", url)
        rest = re.sub(r"(?i)^www\.", "", rest)
        rest = re.split(r"[?#]", rest, 1)[0].rstrip("/")
        return rest + (tail.group(0) if tail else "")
    text = _URL_SCHEME.sub(short, text)
    return _WWW.sub(short, text)
