"""Numbers as words: English (cardinal, ordinal, digit by digit) and Korean
(Sino-Korean, native Korean before counters, digit by digit).

Other languages keep their digits: every espeak-ng voice (and every cloud
voice) reads numerals in its own language; what those voices cannot know is
how a phone number or a code is grouped, which the spoken form decides.
"""
from __future__ import annotations

_EN_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen").split()
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_EN_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
_EN_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
           "nine": "ninth", "twelve": "twelfth"}
MAX_WORDS_NUMBER = 10 ** 15  # past this a "number" is a code: said digit by digit


def en_cardinal(n: int) -> str:
    if n < 0:
        return "minus " + en_cardinal(-n)
    if n >= MAX_WORDS_NUMBER:
        return en_digits(str(n))
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        return _EN_TENS[n // 10] + (f"-{_EN_ONES[n % 10]}" if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return f"{_EN_ONES[n // 100]} hundred" + (f" {en_cardinal(rest)}" if rest else "")
    for value, name in _EN_SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return f"{en_cardinal(head)} {name}" + (f" {en_cardinal(rest)}" if rest else "")
    raise AssertionError(n)


def en_ordinal(n: int) -> str:
    words = en_cardinal(n)
    head, sep, last = words.rpartition("-" if "-" in words.split(" ")[-1] else " ")
    if last in _EN_ORD:
        last = _EN_ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}{sep}{last}" if sep else last


def en_year(n: int) -> str:
    """2026 → twenty twenty-six; 2005 → two thousand five; 1999 → nineteen ninety-nine."""
    if 2000 <= n <= 2009 or n % 1000 == 0 or not 1000 <= n <= 2099:
        return en_cardinal(n)
    hi, lo = divmod(n, 100)
    return f"{en_cardinal(hi)} " + (en_cardinal(lo) if lo >= 10 else f"oh {en_cardinal(lo)}" if lo else "hundred")


def en_digits(digits: str) -> str:
    return " ".join(_EN_ONES[int(d)] for d in digits if d.isdigit())


def en_decimal(text: str) -> str:
    """'19.99' → nineteen point nine nine; '1,234' → one thousand two hundred thirty-four."""
    whole, _, frac = text.replace(",", "").partition(".")
    out = en_cardinal(int(whole or "0"))
    if frac:
        out += " point " + en_digits(frac)
    return out


# ------------------------------------------------------------------ Korean
_KO_DIGITS = "영일이삼사오육칠팔구"
_KO_PHONE_DIGITS = "공일이삼사오육칠팔구"
_KO_SMALL_UNITS = ((1000, "천"), (100, "백"), (10, "십"))
_KO_BIG_UNITS = ("", "만", "억", "조", "경")
_KO_NATIVE_ONES = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
_KO_NATIVE_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
# counters that take native Korean numbers (1–99): 세 개, 두 명, 열 시 …
KO_NATIVE_COUNTERS = ("개", "명", "시간", "시", "살", "잔", "병", "마리", "가지", "달", "권", "장", "벌",
                      "켤레", "송이", "곳", "박스", "팩")
_KO_ENGLISH_SMALL = ("", "원", "투", "쓰리", "포", "파이브", "식스", "세븐", "에잇", "나인")  # 1+1 → 원 플러스 원


def _ko_group(n: int) -> str:
    out = []
    for value, name in _KO_SMALL_UNITS:
        d, n = divmod(n, value)
        if d:
            out.append(("" if d == 1 else _KO_DIGITS[d]) + name)
    if n:
        out.append(_KO_DIGITS[n])
    return "".join(out)


def ko_sino(n: int) -> str:
    """Sino-Korean: 19900 → 만구천구백, 50 → 오십, 2026 → 이천이십육."""
    if n < 0:
        return "마이너스 " + ko_sino(-n)
    if n == 0:
        return "영"
    if n >= 10 ** 20:
        return ko_digits(str(n))
    groups, out = [], []
    while n:
        n, g = divmod(n, 10000)
        groups.append(g)
    for i in range(len(groups) - 1, -1, -1):
        g = groups[i]
        if not g:
            continue
        word = "" if (g == 1 and i == 1) else _ko_group(g)  # 만, not 일만
        out.append(word + _KO_BIG_UNITS[i])
    return " ".join(out)


def ko_native(n: int) -> str:
    """Native Korean before a counter (1–99): 3 → 세, 20 → 스무, 21 → 스물한; else Sino-Korean."""
    if not 1 <= n <= 99:
        return ko_sino(n)
    tens, ones = divmod(n, 10)
    if tens == 2 and ones == 0:
        return "스무"
    return _KO_NATIVE_TENS[tens] + _KO_NATIVE_ONES[ones]


def ko_month(n: int) -> str:
    return {6: "유", 10: "시"}.get(n, ko_sino(n))


def ko_digits(digits: str, phone: bool = True) -> str:
    table = _KO_PHONE_DIGITS if phone else _KO_DIGITS
    return "".join(table[int(d)] for d in digits if d.isdigit())


def ko_decimal(text: str) -> str:
    whole, _, frac = text.replace(",", "").partition(".")
    out = ko_sino(int(whole or "0"))
    if frac:
        out += " 점 " + ko_digits(frac, phone=False)
    return out


def ko_english_small(n: int) -> str | None:
    """How Korean ads say the numbers of '1+1' and '2+1' (원 플러스 원, 투 플러스 원)."""
    return _KO_ENGLISH_SMALL[n] if 1 <= n <= 9 else None
