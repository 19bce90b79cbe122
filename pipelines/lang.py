"""Language detection from the text itself (the config's `lang` is only a hint)."""

from __future__ import annotations

import re

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")
_HAN_LANGS = frozenset({"ja", "zh", "ko"})
_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÿ]+")

# A few very frequent function words per Latin-script language; enough to tell
# apart the languages immigration news comes in without a model download.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the of and to in is for that on with by as are was from be has have this it an at".split()),
    "fr": frozenset("le la les des du de et est une un pour dans sur que qui par au aux sont avec".split()),
    "de": frozenset("der die das und ist von mit für den dem des ein eine auf nicht sich zu im".split()),
    "es": frozenset("el la los las de del y que en por para con una un es se al como".split()),
    "pt": frozenset("o a os as de do da dos das e que em para com um uma é no na por".split()),
    "nl": frozenset("de het een en van is dat op te in voor met zijn niet aan er".split()),
    "it": frozenset("il lo la gli le di del della che e è per con non una un sono alla nel".split()),
    "id": frozenset("yang dan di ini itu dengan untuk dari tidak akan pada adalah dalam ke juga".split()),
}
_LANGS_OF_WORD: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _word in _words:
        _LANGS_OF_WORD[_word] = (*_LANGS_OF_WORD.get(_word, ()), _lang)

# Share of words that must be function words of the best language before it beats the hint:
# running text in a listed language scores well above this; other languages rarely reach it.
_MIN_SHARE = 0.08


def detect_language(text: str, hint: str | None = None) -> str | None:
    """Return an ISO 639-1 code for `text` ("en", "ko", "ja", "zh", "fr", ...), or `hint` if unsure.

    Scripts decide Korean, Japanese and Chinese (Han characters with no kana or hangul
    are the hint's language when the hint is ja, zh or ko); for Latin script the share of
    common function words decides. Only the first 2,000 characters are read.
    """
    sample = text[:2000]
    hangul = len(_HANGUL.findall(sample))
    kana = len(_KANA.findall(sample))
    han = len(_HAN.findall(sample))
    words = [w.lower() for w in _LATIN_WORD.findall(sample)]
    cjk = hangul + kana + han
    if cjk and cjk >= len(words):
        if hangul >= kana + han / 4:
            return "ko"
        if kana:
            return "ja"
        # Han alone: Japanese headlines and Korean hanja terms are often kanji only
        # (高度専門職 在留資格), so a CJK hint outranks the guess of Chinese.
        return hint if hint in _HAN_LANGS else "zh"
    if not words:
        return hint
    scores = dict.fromkeys(_STOPWORDS, 0)
    for word in words:
        for lang in _LANGS_OF_WORD.get(word, ()):
            scores[lang] += 1
    best = max(scores, key=scores.__getitem__)
    if scores[best] < max(2, _MIN_SHARE * len(words)):
        return hint
    if hint in scores and scores[hint] >= 0.8 * scores[best]:
        return hint
    return best
