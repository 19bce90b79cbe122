"""Numeric figures and calendar years in English, Korean and Japanese (over NFKC-normalised text).

    find_figures(text, lang) -> (figures, years)

A figure is a quantity with a normalised value and a unit (count, people, percent, points, a
currency code, hours, days, weeks, months, years). Calendar years on their own, dates, ordinals,
codes (E-7, H-1B, subclass 482, COVID-19) and rank cut-offs (top 100) are not figures; years are
returned separately so the caller can give each figure the year its sentence states.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from pipelines.tagging.textnorm import sentence_bounds


@dataclass
class RawFigure:
    """A figure in normalised-text offsets."""

    start: int
    end: int
    value: float
    unit: str
    per: str | None = None
    value_max: float | None = None
    year: int | None = None


@dataclass
class YearMention:
    start: int
    end: int
    year: int
    comparison: bool = False
    """True for a baseline year ("up 20% from 2022", "2022年比"), which a figure before it does not refer to."""
    since: bool = False
    """True for the start of a running total ("since 2018", "2018년 이후"): no figure's year."""


_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
WORD_VALUES: dict[str, int] = {w: i for i, w in enumerate(_SMALL)}
WORD_VALUES.update({w: 20 + 10 * i for i, w in enumerate(_TENS)})
WORD_VALUES.update({"a": 1, "an": 1, "dozen": 12, "a dozen": 12})
SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9, "b": 1e9,
          "trillion": 1e12, "tn": 1e12, "lakh": 1e5, "crore": 1e7}
CURRENCY_SIGNS = {"$": "USD", "US$": "USD", "U.S.$": "USD", "S$": "SGD", "A$": "AUD", "AU$": "AUD", "C$": "CAD",
                  "CA$": "CAD", "HK$": "HKD", "NZ$": "NZD", "NT$": "TWD", "R$": "BRL", "€": "EUR", "£": "GBP",
                  "¥": "JPY", "₩": "KRW", "₹": "INR", "RMB": "CNY"}
CURRENCY_WORDS = {"dollar": "USD", "dollars": "USD", "us dollars": "USD", "yen": "JPY", "won": "KRW",
                  "euro": "EUR", "euros": "EUR", "pound": "GBP", "pounds": "GBP", "sterling": "GBP",
                  "pounds sterling": "GBP", "yuan": "CNY", "renminbi": "CNY", "rupee": "INR", "rupees": "INR",
                  "dirham": "AED", "dirhams": "AED", "baht": "THB", "peso": "PHP", "pesos": "PHP"}
_CODES = "USD|EUR|GBP|JPY|KRW|SGD|CNY|RMB|AUD|CAD|HKD|NZD|TWD|CHF|INR|AED|VND|PHP|THB|IDR|MYR|BRL"
TIME_UNITS = {"hour": "hours", "hr": "hours", "day": "days", "week": "weeks", "month": "months", "year": "years",
              "yr": "years", "decade": "years"}
PEOPLE_NOUNS = frozenset("""
people persons person workers worker employees employee migrants migrant immigrants immigrant foreigners
foreigner nationals residents resident students student graduates applicants applicant holders holder nurses
engineers professionals researchers caregivers trainees interns refugees asylum individuals citizens families
children staff doctors physicians scientists entrepreneurs investors visitors tourists recipients beneficiaries
candidates members talents laborers labourers specialists teachers employers households seekers hires arrivals
newcomers jobseekers job-seekers technicians developers experts fishermen farmers farmworkers caretakers carers
international overseas
""".split())
_STOP = frozenset("""
in of to from and or at by for on with as than the a an this that these those were was are is have has had
will would who which whom per each over under up down into since between about last next
""".split())
_PREV_EXCLUDE = frozenset("""
top no nos number num tier level phase stage round section sections article articles chapter rule title part
schedule annex category class grade group page pages route version form forms subclass subclasses item
paragraph clause room gate flight terminal line band step act bill item rank ranked ranking windows iphone
covid pm apollo highway interstate platform unit ward district zone season episode vol volume
proclamation order box building suite floor fortune boeing docket case appendix subchapter h.r p pp tel phone
telephone fax hotline helpline dial call code codes soc isco anzsco noc
""".split())
_MONTHS = ("jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|"
           "august|september|october|november|december")
_MONTH_BEFORE = re.compile(rf"\b(?:{_MONTHS})\.?\s*$", re.I)
_MONTH_AFTER = re.compile(rf"^(?:st|nd|rd|th)?\s*(?:of\s+)?(?:{_MONTHS})\b", re.I)
# The first day of a date range: "from 13 to 21 September", "13-21 Sept".
_DAY_RANGE_AFTER = re.compile(
    rf"(?:st|nd|rd|th)?\s?(?:-|–|to|and|until|through)\s?\d{{1,2}}(?:st|nd|rd|th)?\s*(?:of\s+)?(?:{_MONTHS})\b", re.I)
# Words before a calendar year that keep it a year even when a noun for people follows
# ("From 22 July 2025 new Skilled Worker roles", "in 2025 workers arrived").
_YEAR_PREPS = frozenset("in since until till by during before after from".split())
# "two thirds", "three quarters": a fraction, not a count.
_FRACTION_AFTER = re.compile(
    r"[\s-](?:halves|thirds?|quarters|fourths?|fifths|sixths|sevenths|eighths|ninths|tenths)\b", re.I)
# House numbers: "10 Downing Street", "500 12th Street SW".
_STREET_AFTER = re.compile(r"(?:\s(?:\d+(?:st|nd|rd|th)|[A-Z][a-z]+)){1,3}\s(?:Street|St|Avenue|Ave|Road|Rd|"
                           r"Boulevard|Blvd|Lane|Drive|Place|Square|Way)\b")
# Phone numbers: "(202) 555-0143", and the digit groups after a leading-zero number ("0300 123 2241").
_US_PHONE_TAIL = re.compile(r"\)\s?\d{3}[-.\s]\d{4}")
_DIGIT_RUN = re.compile(r"(?:[ .\-]?\d+)+")
_ZIP_STATE = re.compile(r"\b[A-Z]{2}\s$")
_PREV_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)\.?\s*[#(]?\s*$")
_SUBCLASS = re.compile(r"subclass(?:es)?\s*(?:\d+\s*(?:/|,|and|or|&)\s*)*$", re.I)
_SINCE_BEFORE = re.compile(r"\bsince\s+(?:(?:the\s+)?(?:start|end|beginning)\s+of\s+)?(?:[A-Z][a-z]+\s+)?$", re.I)
_COMPARISON_BEFORE = re.compile(r"\b(?:from|since|than|compared\s+(?:with|to)|versus|vs\.?|over)\s*$", re.I)

_WORDNUM = ("(?:(?:" + "|".join(_TENS) + ")(?:-(?:" + "|".join(_SMALL[1:10]) + "))?|" + "|".join(_SMALL[1:])
            + "|a\\s+dozen|an?(?=\\s+(?:thousand|million|billion|trillion|decades?)\\b))")
_EN_NUMBER = (r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?: \d{3})+(?![\d]|[.,]\d)|\d+(?:[.,]\d+)*|\.\d+"
              rf"|(?<![A-Za-z-])(?i:{_WORDNUM})(?![A-Za-z]))")
_EN_SCALE = (r"(?:[\s-]?(?i:thousand|million|billion|trillion|lakh|crore)(?![A-Za-z])"
             r"|\s?(?:mn|bn|tn)(?![A-Za-z])|[mkb](?![A-Za-z]))")
_EN_PRE = rf"(?:(?:US|U\.S\.|S|A|AU|C|CA|HK|NZ|NT|R)?\$|[€£¥₩₹]|(?:{_CODES})\s?)"
_EN_FIG = re.compile(
    rf"(?P<pre>{_EN_PRE})?(?P<num>{_EN_NUMBER})(?:\s?(?P<hundred>(?i:hundred))(?![A-Za-z]))?(?P<scale>{_EN_SCALE})?"
)
_EN_UNIT = re.compile(
    r"""(?:\s?-\s?|\s)?(?:
      (?P<pct>%|(?i:per\s?cent|percent|pct)\b)
     |(?P<pp>(?i:percentage[\s-]points?|basis\s+points|points?|pts)\b)
     |(?P<cur>(?i:US\s+dollars|dollars?|yen|won|euros?|pounds\s+sterling|pounds?|sterling|yuan|renminbi|rupees?
               |dirhams?|baht|pesos?)\b|(?:""" + _CODES + r""")\b)
     |(?P<time>(?i:(?:business\s|working\s|calendar\s)?(?:hours?|hrs?|days?|weeks?|months?|years?|yrs?|decades?))\b)
    )""",
    re.X,
)

def _start_candidates() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Two cheap regexes that between them find every place an `_EN_FIG` match can start (and a few more).

    The first matches the character there (a digit, a sign, a capital starting a currency prefix);
    the second the character before a number word ("one", "Twenty", "a dozen", "a million"). Both
    begin with a character class, so `re` skips the rest of the text in C, and `_EN_FIG` itself is
    then tried only at those places, not at every position.
    """
    letter_starts: dict[str, list[str]] = {}
    for sign in ("US$", "U.S.$", "S$", "A$", "AU$", "C$", "CA$", "HK$", "NZ$", "NT$", "R$", *_CODES.split("|")):
        letter_starts.setdefault(sign[0], []).append(re.escape(sign[1:]))
    alts = [r"(?<=[\d$€£¥₩₹])", r"(?<=\.)(?=\d)"]
    alts += [f"(?<={re.escape(c)})(?={'|'.join(rests)})" for c, rests in letter_starts.items()]
    signs = re.compile(rf"[\d.$€£¥₩₹{''.join(sorted(letter_starts))}](?:{'|'.join(alts)})")
    word_starts: dict[str, list[str]] = {}
    for w in _SMALL[1:] + _TENS:
        word_starts.setdefault(w[0], []).append(w[1:])
    word_starts["a"] = [r"n?\s+(?:dozen|thousand|million|billion|trillion|decade)"]
    firsts = "".join(c + c.upper() for c in sorted(word_starts))
    words = re.compile(rf"[^A-Za-z-](?=[{firsts}])(?="
                       + "|".join(f"[{c}{c.upper()}](?i:{'|'.join(r)})" for c, r in word_starts.items()) + ")")
    return signs, words


_EN_START, _EN_WORD_START = _start_candidates()


def _figure_starts(text: str) -> list[int]:
    """Sorted offsets where an `_EN_FIG` match may start (see `_start_candidates`)."""
    starts = [m.start() for m in _EN_START.finditer(text)]
    after = [m.end() for m in _EN_WORD_START.finditer(text)]
    if text[:1].isalpha():
        after.append(0)
    return sorted({*starts, *after}) if after else starts


_EN_PER = re.compile(r"(?:\s+(?:a|an|per|each|every)\s+|\s?/\s?)(hour|day|week|month|year|hr|yr|mo)\b", re.I)
_EN_RANGE = re.compile(r"\s?(?:-|to|~)\s?")
_WORD = re.compile(r"\s*([A-Za-z][A-Za-z'-]*)")
_DECADE = re.compile(r"\s?-?\s?decades?\b", re.I)
_EUROPEAN_NUMBER = re.compile(r"\d\.\d{3}\.\d{3}|\d\.\d{3},\d|\d,\d{1,2}\s?%")
# Scale words after a number that make its single dot a decimal point ("2.046 Millionen", "1.275만"),
# beyond the English ones `_EN_SCALE` reads.
_SCALE_WORD_AFTER = re.compile(
    r"\s?(?:(?i:mio|mrd|millionen|milliarden|milliarde|millions?|milliards?|miljoen|miljard|millones|milioni"
    r"|miliardi|milhões|bilhões)(?![A-Za-z])|[천만억조千万億兆])")
# Temperatures (and angles) are not figures: 30°C, 86 °F, 30℃ (NFKC "°C"), 38 degrees Celsius.
_TEMPERATURE_AFTER = re.compile(r"\s?°|\s?-?\s?degrees?\s+(?:Celsius|Fahrenheit|centigrade|C|F)\b", re.I)
_CLOCK_AFTER = re.compile(r"\s?(?:a\.m\.|p\.m\.|am\b|pm\b)", re.I)
_YEAR_TAIL = re.compile(r"-(\d{2})(?!\d)")
_TO_AND = re.compile(r"\s+(?:to|and)\s+")
# Last words `_COMPARISON_BEFORE` can end with: a cheap test of ASCII windows before that regex.
_COMPARISON_ENDS = ("from", "since", "than", "with", "to", "versus", "vs", "vs.", "over")


def _prev_word(prev_text: str) -> re.Match[str] | None:
    """`_PREV_WORD.search(prev_text)`, tried only from the start of the last whitespace-free run.

    The word cannot contain whitespace and only "." / whitespace / one "#" or "(" may follow it,
    so no match starts before that run; and none at all unless it ends with a letter or ".".
    """
    u = prev_text.rstrip()
    if u[-1:] in ("#", "("):
        u = u[:-1].rstrip()
    if not u or not (u[-1] == "." or (u[-1].isascii() and u[-1].isalpha())):
        return None
    return _PREV_WORD.search(prev_text, len(u) - len(u.rsplit(None, 1)[-1]))


def _parse_digits(num: str, european: bool, integer_unit: bool, scaled: bool = False) -> float | None:
    """Value of a digit string with , . or space separators; None if it is not one number (e.g. 1.2.3).

    `integer_unit`: the number counts people, so "19.477" is 19477; `scaled`: a scale word follows
    ("2.046 million"), so a single dot is always a decimal point.
    """
    num = num.replace(" ", "")
    if "," in num and "." in num:
        if num.rfind(",") > num.rfind("."):  # 1.234,5 (European)
            num = num.replace(".", "").replace(",", ".")
        else:
            num = num.replace(",", "")
        return _float(num)
    if "," in num:
        groups = num.split(",")
        if all(len(g) == 3 for g in groups[1:]) and 1 <= len(groups[0]) <= 3 and not (european and len(groups) == 2):
            return _float(num.replace(",", ""))
        if len(groups) == 2:  # 20,8 -> decimal comma
            return _float(num.replace(",", "."))
        return None
    if num.count(".") > 1:
        groups = num.split(".")
        if all(len(g) == 3 for g in groups[1:]) and 1 <= len(groups[0]) <= 3:
            return _float(num.replace(".", ""))
        return None
    if "." in num:
        head, tail = num.split(".")
        # 19.477 is 19477 in a European text or when counting people, 19.477 otherwise; never with a
        # scale word after it (2.046 million) or a zero integer part (a rate: 0.721).
        if len(tail) == 3 and 1 <= len(head) <= 3 and head[0] != "0" and not scaled and (european or integer_unit):
            return _float(head + tail)
    return _float(num)


def _scaled(value: float, factor: float) -> float:
    """`value` times a scale factor, without binary noise (2.046 million is 2046000, not 2045999.9999999998)."""
    return round(value * factor, 6) if factor != 1 else value


def _float(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _word_value(words: str) -> int | None:
    w = " ".join(words.lower().split())
    if w in WORD_VALUES:
        return WORD_VALUES[w]
    if "-" in w:
        tens, _, ones = w.partition("-")
        if tens in WORD_VALUES and ones in WORD_VALUES:
            return WORD_VALUES[tens] + WORD_VALUES[ones]
    return None


def _people_after(text: str, pos: int) -> bool:
    """True when one of the next few words (adjectives allowed in between) is a noun for people."""
    for _ in range(4):
        m = _WORD.match(text, pos)
        if not m:
            return False
        word = m.group(1).lower()
        if word in PEOPLE_NOUNS or word.rstrip("s") in PEOPLE_NOUNS:
            return True
        if word in _STOP:
            return False
        pos = m.end()
    return False


def _is_european(text: str, lang: str | None) -> bool:
    """Whether `1.234` means 1234 in this text: a European language, or decimal commas elsewhere in it."""
    if lang in ("de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "no", "fi", "cs", "ru", "tr", "id", "vi"):
        return True
    return bool(_EUROPEAN_NUMBER.search(text))


def _en_unit_at(text: str, pos: int) -> tuple[str | None, int, str | None]:
    """(unit, end, kind) of a unit word right after `pos`, if any."""
    m = _EN_UNIT.match(text, pos)
    if not m:
        return None, pos, None
    if m.group("pct"):
        return "percent", m.end(), "pct"
    if m.group("pp"):
        return "points", m.end(), "pp"
    if m.group("cur"):
        word = " ".join(m.group("cur").lower().split())
        return CURRENCY_WORDS.get(word) or ("CNY" if word == "rmb" else word.upper()), m.end(), "cur"
    word = m.group("time").lower().split()[-1]
    stem = word[:-1] if word.endswith("s") else word
    return TIME_UNITS.get(stem, "years"), m.end(), "time"


def _en_figures(text: str, lang: str | None) -> tuple[list[RawFigure], list[YearMention]]:
    european = _is_european(text, lang)
    figures: list[RawFigure] = []
    years: list[YearMention] = []
    pos = 0
    n = len(text)
    # _EN_FIG.search(text, pos) is the first candidate start at or after pos where _EN_FIG matches.
    candidates = _figure_starts(text)
    ci = 0
    nc = len(candidates)
    while True:
        m = None
        ci = bisect.bisect_left(candidates, pos, ci)
        while ci < nc:
            m = _EN_FIG.match(text, candidates[ci])
            if m:
                break
            ci += 1
        if not m:
            break
        pos = m.end()
        start, end = m.start(), m.end()
        pre, num, scale = m.group("pre"), m.group("num"), m.group("scale")
        is_word = not num[0].isdigit() and num[0] != "."
        before = text[max(0, start - 2):start]
        after = text[end:end + 2]
        # Codes and identifiers: H-1B, COVID-19, G20, I-140, 5G, 3D, 24/7, 10:30, ordinals (2nd).
        if not is_word and not pre:
            if before[-1:].isalpha() and before[-1:].isascii():
                if text[max(0, start - 2):start] == "FY" and len(num) in (2, 4):
                    y = int(num) + (2000 if len(num) == 2 else 0)
                    window = text[max(0, start - 22):start - 2]
                    years.append(YearMention(start - 2, end, y, bool(_COMPARISON_BEFORE.search(window))))
                continue
            if before[-1:] in ("-", "/", "#", ":") and before[:1].isalnum():
                continue
            if before[-1:] == "#":
                continue
        if not is_word and not pre and num[0] == "0" and num[1:2].isdigit():
            # 0300 123 2241, 06236, 001335263: phone numbers, postcodes and identifiers.
            pos = _DIGIT_RUN.match(text, start).end()
            continue
        if before[-1:] == "(" and (pm := _US_PHONE_TAIL.match(text, end)):
            pos = pm.end()
            continue
        if len(num) == 5 and num.isdigit() and not pre and _ZIP_STATE.search(text, max(0, start - 4), start):
            continue
        if after[:1] in ("/", ":") and after[1:2].isdigit():
            pos = end + 2
            while pos < n and (text[pos].isdigit() or text[pos] in "/:"):
                pos += 1
            continue
        if not scale and after[:1].isalpha() and after[:1].isascii():
            if not _EN_UNIT.match(text, end):
                continue
        prev_text = text[max(0, start - 30):start]
        # ASCII: a substring test first ("İ", "ſ" and the like fold to ASCII letters under re.I).
        if (not prev_text.isascii() or "subclass" in prev_text.lower()) and _SUBCLASS.search(prev_text):
            continue
        pw = _prev_word(prev_text)
        prev_word = pw.group(1).lower().rstrip(".") if pw else ""
        if prev_word in _PREV_EXCLUDE and prev_word != "top" and not pre:
            continue
        if _CLOCK_AFTER.match(text[end:end + 6]) or _TEMPERATURE_AFTER.match(text, end):
            continue

        # Value.
        if is_word:
            value = _word_value(num)
            if value is None or _FRACTION_AFTER.match(text, end):
                continue
        else:
            value = None  # decided once the unit is known (for European separators)
        unit, uend, ukind = _en_unit_at(text, end)
        if pre:
            sign = pre.strip()
            currency = CURRENCY_SIGNS.get(sign) or sign
            unit, uend, ukind = currency, end, "cur"
            u2, e2, k2 = _en_unit_at(text, end)  # "$5 billion dollars", "¥20 million yen"
            if k2 == "cur":
                uend = e2
        # Range "5 to 10 weeks", "5-10%"; "from 20 to 30" is a change, not a range.
        value_max = None
        year_like = (not is_word and not pre and not scale and num.isdigit() and len(num) == 4
                     and 1900 <= int(num) <= 2100)
        if (unit is None or (ukind == "cur" and pre)) and not year_like:
            rm = _EN_RANGE.match(text, uend if pre else end)
            if rm:
                m2 = _EN_FIG.match(text, rm.end())
                if m2 and m2.group("num")[0].isdigit() == (not is_word) and not m2.group("pre"):
                    starts_from = re.search(r"\b(?:from|between)\s+\S*$", text[max(0, start - 20):start], re.I)
                    if not starts_from and rm.group().strip() in ("-", "to", "~"):
                        u3, e3, k3 = _en_unit_at(text, m2.end())
                        if rm.group().strip() == "-" and u3 is None and not pre and not m2.group("scale"):
                            # 3-1, 2-0: a score or an identifier, not a quantity.
                            pos = m2.end()
                            continue
                        if m2.group("num")[0].isdigit():
                            value_max = _parse_digits(m2.group("num"), european, False,
                                                      scaled=bool(m2.group("scale") or scale))
                        else:
                            value_max = _word_value(m2.group("num"))
                        if value_max is not None:
                            s2 = (m2.group("scale") or scale or "").strip().lower()
                            value_max = _scaled(value_max, SCALES.get(s2, 1))
                            if pre:
                                uend = max(m2.end(), e3 if k3 == "cur" else m2.end())
                            else:
                                unit, uend, ukind = u3, e3 if u3 else m2.end(), k3
                            end = m2.end()
                            pos = max(pos, uend)
        if value_max is not None and _TEMPERATURE_AFTER.match(text, end):  # "30 to 35°C"
            continue
        # Hyphen forms: "five-year" is a duration; "two-thirds", "one-off" are not figures.
        if is_word and text[end:end + 1] == "-" and ukind != "time":
            continue
        if is_word and num.lower() in ("one", "a", "an") and not scale and ukind is None and value_max is None:
            continue
        people = unit is None and _people_after(text, uend if value_max else end)
        if value is None:
            # Nobody writes a bare decimal as "40.000", so three zeros with no unit are a thousands group.
            value = _parse_digits(num, european, integer_unit=people or (unit is None and num.endswith(".000")),
                                  scaled=bool(scale) or bool(_SCALE_WORD_AFTER.match(text, end)))
            if value is None:
                continue
        if scale and scale in ("m", "k", "b") and not pre and not people and ukind is None:
            continue  # 100m freestyle, 4k video: metres and resolutions, not millions
        plain_int = not is_word and not pre and not scale and num.isdigit()
        # A calendar year on its own: "in 2012", "2023-24", "the 2024 Olympics".
        if (plain_int and len(num) == 4 and 1900 <= value <= 2100 and ukind is None and value_max is None
                and (not people or prev_word in _YEAR_PREPS
                     or _MONTH_BEFORE.search(text[max(0, start - 12):start]))):
            yend = end
            tail = _YEAR_TAIL.match(text[end:end + 4])
            if tail:
                yend = end + tail.end()
            if text[yend:yend + 1] == "s" or text[yend:yend + 2] == "'s":  # 1990s: a decade
                continue
            window = text[max(0, start - 20):start]
            comparison = ((not window.isascii() or window.rstrip().lower().endswith(_COMPARISON_ENDS))
                          and bool(_COMPARISON_BEFORE.search(window)))
            since = bool(_SINCE_BEFORE.search(window))
            years.append(YearMention(start, yend, int(value), comparison, since))
            pos = max(pos, yend)
            continue
        if plain_int and value <= 31 and ukind is None and not people:
            if (_MONTH_BEFORE.search(text[max(0, start - 12):start]) or _MONTH_AFTER.match(text[end:end + 16])
                    or _DAY_RANGE_AFTER.match(text, end, end + 30)):
                continue
        if plain_int and ukind is None and text[end:end + 1] == " " and _STREET_AFTER.match(text, end):
            continue
        if prev_word == "top" and ukind is None:
            continue
        if scale:
            value = _scaled(value, SCALES.get(scale.strip().lower(), 1))
            if value_max is not None and not re.search(r"[a-z]", text[m.end("num"):m.end()], re.I):
                pass
        if m.group("hundred"):
            value *= 100
        fig_end = uend if unit else end
        if unit is None:
            unit = "people" if people else "count"
        per = None
        pm = _EN_PER.match(text, fig_end)
        if pm:
            per = TIME_UNITS.get(pm.group(1).lower(), pm.group(1).lower())
            per = {"hours": "hour", "days": "day", "weeks": "week", "months": "month", "years": "year",
                   "mo": "month"}.get(per, per)
            fig_end = pm.end()
        if ukind == "time" and _DECADE.match(text, end):  # "a decade", "three decades": years
            value *= 10
            value_max = value_max * 10 if value_max is not None else None
        figures.append(RawFigure(start, fig_end, float(value), unit, per, value_max))
        pos = max(pos, fig_end)
    _inherit_units(text, figures)
    return figures, years


def _inherit_units(text: str, figures: list[RawFigure]) -> None:
    """'from 20 to 30 percent', 'between 5,000 and 10,000 workers': the first bound takes the second's unit."""
    for a, b in zip(figures, figures[1:], strict=False):
        if a.unit in ("count",) and b.unit != "count" and _TO_AND.fullmatch(text[a.end:b.start]):
            a.unit = b.unit


# ---------------------------------------------------------------- Korean and Japanese
_CH = r"\d+(?:,\d{3})*(?:\.\d+)?"
_KO_NUM = re.compile(
    rf"(?<![A-Za-z0-9.,\-/#_=])(?<!\d:)(?:{_CH}\s?[조억만천백](?:\s?(?:{_CH})?\s?[조억만천백])*(?:\s?{_CH}(?![\d.]))?|{_CH}"
    r"|(?<![가-힣])만(?=\s?(?:명|원|건|개|가구|달러)))"
)
# Kanji numerals (三万人, 二千人, 十万人) count only before a unit and with a digit kanji in them.
_KANJI_NUM = "[一二三四五六七八九十百千万億兆〇]*[一二三四五六七八九十百〇][一二三四五六七八九十百千万億兆〇]*"
_JA_NUM = re.compile(rf"(?<![A-Za-z0-9.,\-/#_=〒])(?<!\d:)(?:{_CH}[兆億万千](?:(?:{_CH})?[兆億万千])*(?:{_CH})?|{_CH}"
                     rf"|(?P<kanji>(?<![一二三四五六七八九十百千万億兆〇第]){_KANJI_NUM}))")
_KANJI_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")}
_KANJI_SMALL = {"十": 10, "百": 100, "千": 1000}
_KANJI_LARGE = {"万": 1e4, "億": 1e8, "兆": 1e12}
_CJK_SCALE = {"조": 1e12, "억": 1e8, "만": 1e4, "천": 1e3, "백": 1e2, "兆": 1e12, "億": 1e8, "万": 1e4, "千": 1e3}
_CJK_CHUNK = re.compile(r"(\d+(?:,\d{3})*(?:\.\d+)?)?\s?([조억만천백兆億万千])?")

_KO_UNIT = re.compile(
    r"(?:여|\s?여)?\s?(?:(?P<people>명|인(?=\s|$|이|을|의|은|에))|(?P<KRW>원)|(?P<USD>(?:미국\s?)?달러|불(?=\s|$))"
    r"|(?P<JPY>엔(?![가-힣]))|(?P<EUR>유로)|(?P<GBP>파운드)|(?P<CNY>위안)|(?P<points>%\s?포인트|%p|퍼센트\s?포인트|포인트|점(?![검])"
    r")|(?P<percent>%|퍼센트|프로(?![가-힣]))|(?P<hours>시간)|(?P<days>일(?=간|\s?동안|\s?이내|\s?이상|\s?이하|\s?미만|\s?만에|씩))"
    r"|(?P<weeks>주(?=간|\s?동안|\s?이내|일|\s|$))|(?P<months>개월)|(?P<years>년(?!도))"
    r"|(?P<count>건|개국|개사|개소|개|곳|가구|차례|종|회(?![가-힣])))"
)
# 도 right after a number (no space: "1만 도입" is a count) is a temperature or an angle (35도, 영하 5도).
_KO_SKIP_AFTER = re.compile(
    r"\s?(?:월|일|시(?!간)|분(?!야)|위|등(?![가-힣])|번째|차(?!례)|호|대|세(?![가-힣])|조\b|°)|도(?!입)"
)
# 2023년, 2023년도 and the clipped '23년 (a year, never a figure).
_KO_YEAR = re.compile(r"(?<!\d)(?:((?:18|19|20)\d{2})|['‘’](\d{2}))\s?년(도)?")
_JA_UNIT = re.compile(
    r"(?:余|超|強)?(?:(?P<people>人|名)|(?P<JPY>円)|(?P<USD>米?ドル)|(?P<KRW>ウォン)|(?P<EUR>ユーロ)|(?P<GBP>ポンド)"
    r"|(?P<CNY>元)|(?P<points>%ポイント|ポイント|点)|(?P<percent>%|パーセント)|(?P<hours>時間)"
    r"|(?P<days>日間|日(?=以内|以上|以下|未満|ごと))|(?P<weeks>週間)|(?P<months>(?:カ|か|ヶ|ケ|ヵ|箇)月(?:間)?)"
    r"|(?P<years>年間|年(?!度|\d|[0-9]月))"
    r"|(?P<count>件|社|校|カ国|か国|ヶ国|[カかヶケヵ箇]所|機関|団体|業種|分野|種類|職種))"
)
# A number right before 度 is a temperature (41.8度, 最高気温35度), an angle (角度30度) or a repetition
# (3度目, 2度にわたり): never a quantity this stage reports; 年度 follows 年, not a digit.
_JA_SKIP_AFTER = re.compile(r"(?:月|日|時(?!間)|分(?!野)|位|番|号|次|回目|条|項|期|代|歳|階|年度|年|度|\s?°)")
# Never figures, whatever unit follows: per-person rates (1인당, 1人当たり), ordinals (2人目), and
# the number before another separator and digit: dates (2025.07.20, 7/20), times (14:00), phone
# numbers and postcodes (02-2110-4000, 160-0004), versions (2.3.1).
_KO_NEVER_AFTER = re.compile(r"\s?(?:인당|명당)|[-.:/]\d+[-.:/]\d|:\d|/\d|\.\s?\d|-\d{3}")
_JA_NEVER_AFTER = re.compile(r"(?:人|名)(?:当た?り|あたり|目)|[-.:/]\d+[-.:/]\d|:\d|/\d|\.\d|-\d{3}")
# Rank cut-offs before a number: 上位500社, 상위 100개 대학 (a share, 상위 10%, stays a figure).
_CJK_RANK_BEFORE = re.compile(r"(?:上位|下位|トップ|상위|하위|톱)\s?$")
# The denominator-then-numerator of a fraction (3분의 1, 3分の1) and the day of "2025. 7. 20.".
_CJK_NEVER_BEFORE = re.compile(r"(?:분의|分の)\s?$|\d\.\s$")
_HANGUL_BEFORE_JE = re.compile(r"[가-힣]제\s?$")
_CJK_RANGE = re.compile(r"\s?[~～〜]\s?")
_JA_YEAR = re.compile(r"(?<!\d)(?:((?:18|19|20)\d{2})|(令和|平成)(\d{1,2}|元))年(度)?")
_ERAS = {"令和": 2018, "平成": 1988}
_KO_PER = {"주": "week", "월": "month", "연": "year", "연간": "year", "시급": "hour", "월급": "month", "연봉": "year"}
_JA_PER = {"週": "week", "月": "month", "月額": "month", "年収": "year", "年間": "year", "時給": "hour",
           "月給": "month"}
_CJK_SINCE_AFTER = re.compile(r"\s?(?:이후|以降|以来)")
_CJK_COMPARISON_AFTER = re.compile(r"\s?(?:대비|보다|比|に比べ|と比べ|と比較)")


def _kanji_value(text: str) -> float:
    """Value of a kanji numeral: 三万 30000, 二千 2000, 十万 100000, 百二十 120."""
    total = 0.0
    group = 0.0
    digit: int | None = None
    for ch in text:
        if ch in _KANJI_DIGITS:
            digit = (digit or 0) * 10 + _KANJI_DIGITS[ch]  # 二〇二四 style digit runs
        elif ch in _KANJI_SMALL:
            group += (digit if digit is not None else 1) * _KANJI_SMALL[ch]
            digit = None
        else:
            group += digit or 0
            total += (group or 1) * _KANJI_LARGE[ch]
            group, digit = 0.0, None
    return total + group + (digit or 0)


def _cjk_value(text: str) -> float | None:
    total = 0.0
    group = 0.0
    seen = False
    for num, scale in _CJK_CHUNK.findall(text):
        if not num and not scale:
            continue
        seen = True
        v = float(num.replace(",", "")) if num else None
        if scale in ("천", "백", "千"):
            group += (v if v is not None else 1) * _CJK_SCALE[scale]
        elif scale:
            group += v or 0
            total += (group or 1) * _CJK_SCALE[scale]
            group = 0
        else:
            group += v or 0
    return total + group if seen else None


def _cjk_figures(text: str, lang: str) -> tuple[list[RawFigure], list[YearMention]]:
    ko = lang == "ko"
    num_re, unit_re, skip_re = (_KO_NUM, _KO_UNIT, _KO_SKIP_AFTER) if ko else (_JA_NUM, _JA_UNIT, _JA_SKIP_AFTER)
    never_re = _KO_NEVER_AFTER if ko else _JA_NEVER_AFTER
    per_map = _KO_PER if ko else _JA_PER
    years: list[YearMention] = []
    for ym in (_KO_YEAR if ko else _JA_YEAR).finditer(text):
        if ko:
            y = int(ym.group(1)) if ym.group(1) else 2000 + int(ym.group(2))
        elif ym.group(1):
            y = int(ym.group(1))
        else:
            y = _ERAS[ym.group(2)] + (1 if ym.group(3) == "元" else int(ym.group(3)))
        comparison = bool(_CJK_COMPARISON_AFTER.match(text, ym.end()))
        since = bool(_CJK_SINCE_AFTER.match(text, ym.end()))
        years.append(YearMention(ym.start(), ym.end(), y, comparison, since))
    year_spans = [(y.start, y.end) for y in years]
    figures: list[RawFigure] = []
    for m in num_re.finditer(text):
        start, end = m.start(), m.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        if any(s <= start < e for s, e in year_spans):
            continue
        prev = text[max(0, start - 3):start]
        if prev.endswith(("第", "第 ")) or (prev.endswith(("제", "제 ")) and not _HANGUL_BEFORE_JE.search(prev)):
            continue  # 第3回, 제2조: ordinals (but 점수제 200점 is a points figure)
        if (text[end:end + 1] == "." and not text[end + 1:end + 2].isdigit() and not text[end + 1:end + 2].isspace()
                and (start == 0 or not text[start - 1].isalnum()) and not unit_re.match(text, end)):
            continue  # "6.建設業": the number of a list item
        if never_re.match(text, end) or _CJK_NEVER_BEFORE.search(text, max(0, start - 3), start):
            continue
        if text[start] == "0" and text[start + 1:start + 2].isdigit():  # 06236, 001335263: codes
            continue
        um = unit_re.match(text, end)
        if not um and skip_re.match(text, end):
            continue
        if (not um or not (um.group("percent") or um.group("points"))) and _CJK_RANK_BEFORE.search(
                text, max(0, start - 4), start):
            continue
        if not ko and m.group("kanji"):
            # 一人, 一部, 十分: a kanji numeral is a figure only with a unit and a value above one.
            if not um or _kanji_value(text[start:end]) <= 1:
                continue
            value = _kanji_value(text[start:end])
        else:
            value = _cjk_value(text[start:end])
        if value is None:
            continue
        if um and text[um.end():um.end() + 1] == "=":  # 1ドル=150円: an exchange rate's base
            continue
        if um:
            unit = next(k for k, v in um.groupdict().items() if v)
            fig_end = um.end()
        else:
            unit, fig_end = "count", end
        # Prefixes meaning "per": 주 52시간, 週28時間, 月額30万円, 時給1000円.
        per = None
        for word, period in sorted(per_map.items(), key=lambda kv: -len(kv[0])):
            s = start - len(word)
            if text[max(0, s - 1):start].rstrip().endswith(word):
                ws = text.rfind(word, 0, start)
                if ws >= 0 and text[ws + len(word):start].strip() == "" and (
                        ws == 0 or not text[ws - 1].isalnum() or not ko):
                    if ko or not text[ws - 1:ws].isdigit():
                        per, start = period, ws
                        break
        # "3~5년", "3～5年": the lower bound takes the upper one's unit and becomes one range figure.
        last = figures[-1] if figures else None
        if (last is not None and last.unit == "count" and last.value_max is None and unit != "count"
                and _CJK_RANGE.fullmatch(text, last.end, start)):
            last.end, last.unit, last.value_max, last.per = fig_end, unit, value, last.per or per
            continue
        figures.append(RawFigure(start, fig_end, value, unit, per))
    return figures, years


def find_figures(text: str, lang: str | None) -> tuple[list[RawFigure], list[YearMention]]:
    """Figures and calendar years in normalised `text`, in order of appearance."""
    if lang in ("ko", "ja"):
        return _cjk_figures(text, lang)
    return _en_figures(text, lang)


# Clause boundaries inside a Korean or Japanese sentence: commas and the particles for a starting
# point ("2012年末の313件から、2023年末には46,946件"; "2023년 3만 명에서 2024년 16만 명으로").
_CJK_CLAUSE = re.compile(r"[、，;；：]|[,:](?!\d)|から|より|에서|부터")


def assign_years(figures: list[RawFigure], years: list[YearMention], starts: list[int], length: int,
                 text: str = "", lang: str | None = None) -> None:
    """Give each figure the year its sentence states for it.

    English (and other languages written number-after-year or year-after-number alike): a year
    right after the figure ("313 in 2012") wins unless another figure comes between or it is a
    baseline ("up 20% from 2022"); otherwise the nearest year before it in the sentence ("In 2023,
    46,946 ..."); otherwise the nearest later one.

    Korean and Japanese put the year before the number ("2012年末の313件", "2023년 3만 5천 명"),
    so there the nearest year before the figure in its own clause wins, then a later year in
    that clause ("300件を超えた(2023年度)"), then the nearest year before in the sentence, then
    a later one if no other figure comes between or follows it in its clause.
    """
    if not years:
        return
    cjk = lang in ("ko", "ja") and bool(text)
    clause_starts = [m.end() for m in _CJK_CLAUSE.finditer(text)] if cjk else []
    # Years and (English) figures come in text order, so slices by bisect replace scans of all of them.
    year_starts = [y.start for y in years]
    years_sorted = all(a <= b for a, b in zip(year_starts, year_starts[1:], strict=False))
    fig_starts = [f.start for f in figures]
    if not all(a <= b for a, b in zip(fig_starts, fig_starts[1:], strict=False)):
        fig_starts = None
    for f in figures:
        s0, s1 = sentence_bounds(starts, f.start, length)
        if years_sorted:
            in_sentence = years[bisect.bisect_left(year_starts, s0):bisect.bisect_left(year_starts, s1)]
        else:
            in_sentence = [y for y in years if s0 <= y.start < s1]
        in_sentence = [y for y in in_sentence if not y.since]
        if not in_sentence:
            continue
        if f.unit in DURATION_UNITS and f.per is None:
            continue  # a duration is a rule ("stay five years"), not a count of some year
        chosen = (_cjk_year(f, in_sentence, figures, clause_starts, s0, s1) if cjk
                  else _en_year(f, in_sentence, figures, fig_starts))
        if chosen is not None and not _relative_year(text, f, chosen, cjk):
            f.year = chosen.year


DURATION_UNITS = frozenset(("hours", "days", "weeks", "months", "years"))
# A relative year next to a figure ("2,000 last year", 지난해 6만9000명, 昨年の5000人) is not the year the
# sentence states for another figure.
_EN_RELATIVE_AFTER = re.compile(
    r"\s*(?:\w+\s+)?(?:in\s+|for\s+|of\s+)?(?:the\s+)?(?:last|this|next|previous|past|current|coming)\s+"
    r"(?:fiscal\s+)?year\b", re.I)
_CJK_RELATIVE = re.compile(r"(?:지난해|작년|올해|금년|내년|전년|昨年|今年|来年|前年|本年)(?:도|度)?")


def _relative_year(text: str, f: RawFigure, chosen: YearMention, cjk: bool) -> bool:
    """Whether a relative year ("last year", 올해) names the figure's year, after the year `chosen` for it."""
    if not text:
        return False
    if not cjk:
        return bool(_EN_RELATIVE_AFTER.match(text, f.end, f.end + 40)) and chosen.start < f.start
    window_start = max(chosen.end if chosen.end <= f.start else 0, f.start - 12)
    return bool(_CJK_RELATIVE.search(text, window_start, f.start))


def _en_year(f: RawFigure, in_sentence: list[YearMention], figures: list[RawFigure],
             fig_starts: list[int] | None = None) -> YearMention | None:
    """The year of a figure in an English sentence (see `assign_years`); `fig_starts`: the figures'
    starts when ascending, to look for one between by bisect."""
    for y in in_sentence:
        if y.start >= f.end and y.start - f.end <= 40 and not y.comparison:
            if fig_starts is not None:
                i = bisect.bisect_left(fig_starts, f.end)
                between = i < len(fig_starts) and fig_starts[i] < y.start
            else:
                between = any(f.end <= g.start < y.start for g in figures)
            if not between:
                return y
            break
    before = [y for y in in_sentence if y.end <= f.start]
    if before:
        return before[-1]
    later = [y for y in in_sentence if y.start >= f.end and not y.comparison]
    return later[0] if later else None


def _cjk_year(f: RawFigure, in_sentence: list[YearMention], figures: list[RawFigure], clause_starts: list[int],
              s0: int, s1: int) -> YearMention | None:
    """The year of a figure in a Korean or Japanese sentence (see `assign_years`)."""
    i = bisect.bisect_right(clause_starts, f.start) - 1
    c0 = max(s0, clause_starts[i]) if i >= 0 else s0
    c1 = min(s1, clause_starts[i + 1]) if i + 1 < len(clause_starts) else s1
    before = [y for y in in_sentence if y.end <= f.start]
    later = [y for y in in_sentence if y.start >= f.end and not y.comparison]
    in_clause = [y for y in before if y.start >= c0 and not y.comparison]
    if in_clause:
        return in_clause[-1]
    in_clause_later = [y for y in later if y.start < c1]
    if in_clause_later:
        return in_clause_later[0]
    before = [y for y in before if not y.comparison] or before
    if before:
        return before[-1]
    # A year in a later clause belongs to the figure only if no other figure comes between or
    # follows it in its clause: "13만 명으로, 역대 최대였던 2024년의 16만 5천 명보다" gives 13만 no year.
    if later:
        j = bisect.bisect_right(clause_starts, later[0].start)
        y_end = min(s1, clause_starts[j]) if j < len(clause_starts) else s1
        if not any(f.end <= g.start < y_end for g in figures):
            return later[0]
    return None
