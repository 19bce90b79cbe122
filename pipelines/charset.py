"""Turn the bytes of a fetched or saved page into text without mojibake and without crashing.

Usable on its own (extraction of saved files reuses it):

    text, encoding = decode_body(content, content_type)

The chain, first hit wins:

1. byte-order mark (a BOM is unambiguous, so it outranks a header, as in the WHATWG
   encoding sniffing algorithm browsers follow);
2. the charset parameter of the HTTP Content-Type header;
3. `<meta charset>` / `<meta http-equiv="Content-Type" content="...; charset=...">` or the
   XML declaration's `encoding`, looked for in the first 4 KiB;
4. detection: valid UTF-8 is UTF-8, otherwise charset-normalizer's best guess;
5. UTF-8.

Labels are mapped as browsers map them (WHATWG Encoding Standard): ISO-8859-1, Latin-1 and
US-ASCII decode as Windows-1252; EUC-KR as CP949; GB2312 and GBK as GB18030; Shift_JIS as
CP932 (Windows-31J, its superset); EUC-JP that isn't plain EUC-JP (NEC special characters
such as ①) is read as EUC-JIS-2004, which has them. Only text encodings count: a label naming
a bytes-to-bytes codec (base64, hex, rot13, zlib) or one that can't decode pages (idna,
punycode, undefined, UTF-7) is ignored, so the chain goes on to the next step. Decoding always
uses replacement characters, so invalid bytes never raise.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

# Labels Python doesn't know, or knows as a narrower encoding than the one servers mean.
_LABEL_OVERRIDES = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "iso_8859-1": "cp1252", "latin1": "cp1252",
    "latin-1": "cp1252", "l1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252", "cp819": "cp1252",
    "ibm819": "cp1252", "x-user-defined": "cp1252",
    "euc-kr": "cp949", "euc_kr": "cp949", "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949",
    "windows-949": "cp949", "ksc5601": "cp949", "korean": "cp949", "x-windows-949": "cp949",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030", "cp936": "gb18030",
    "chinese": "gb18030", "csgb2312": "gb18030", "euc-cn": "gb18030",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
    "windows-31j": "cp932", "csshiftjis": "cp932", "x-ms-cp932": "cp932",
    "iso-8859-9": "cp1254", "latin5": "cp1254", "tis-620": "cp874", "windows-874": "cp874",
    "iso-8859-11": "cp874", "unicode-1-1-utf-8": "utf-8", "utf8": "utf-8",
}
# Codec names (after codecs.lookup) that are widened the same way.
_CODEC_OVERRIDES = {
    "iso8859-1": "cp1252", "ascii": "cp1252", "euc_kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "shift_jis": "cp932", "iso8859-9": "cp1254", "tis-620": "cp874",
}

# Codecs Python calls text encodings that no page is really in: they raise on any input
# (undefined), encode host names (idna, punycode), interpret escapes, or are the UTF-7 of old
# XSS tricks, which the WHATWG Encoding Standard doesn't know either.
_NOT_PAGE_CODECS = frozenset({"undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape",
                              "utf-7", "charmap"})
# Decoded with the wider codec when strict decoding with the narrower one fails.
_WIDER_ON_FAILURE = {"euc_jp": "euc_jis_2004"}

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_PRESCAN_BYTES = 4096
_META_RE = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:+-]+)""", re.IGNORECASE)
_XML_DECL_RE = re.compile(rb"""^\s*<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:+-]+)["']""", re.IGNORECASE)
_CT_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?\s*([^"';\s]+)""", re.IGNORECASE)
_DETECT_BYTES = 1_000_000


def normalize_charset(label: str | None) -> str | None:
    """Map an encoding label from a header or document to a Python text codec name, or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _LABEL_OVERRIDES:
        return _LABEL_OVERRIDES[label]
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):  # ValueError: a label with NUL bytes
        return None
    if not info._is_text_encoding or info.name in _NOT_PAGE_CODECS:
        return None
    return _CODEC_OVERRIDES.get(info.name, info.name)


def charset_from_content_type(content_type: str | None) -> str | None:
    """The codec named by a Content-Type header's charset parameter, if any and known."""
    if not content_type:
        return None
    match = _CT_CHARSET_RE.search(content_type)
    return normalize_charset(match.group(1)) if match else None


def bom_charset(content: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) when the content starts with a byte-order mark."""
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return codec, len(bom)
    return None


def declared_charset(content: bytes) -> str | None:
    """The codec declared inside the document: XML declaration or HTML meta tag, first 4 KiB only."""
    head = content[:_PRESCAN_BYTES]
    match = _XML_DECL_RE.match(head) or _META_RE.search(head)
    if not match:
        return None
    codec = normalize_charset(match.group(1).decode("ascii", "replace"))
    if codec and codec.startswith(("utf-16", "utf-32")):
        # A document that could declare itself in ASCII isn't UTF-16; browsers read it as UTF-8.
        return "utf-8"
    return codec


def detect_charset(content: bytes) -> str | None:
    """Guess the encoding of undeclared content: valid UTF-8 wins, else charset-normalizer's best match."""
    sample = content[:_DETECT_BYTES]
    if len(content) > _DETECT_BYTES:
        # Cut at a newline: never a trail byte of a multibyte character in SJIS/EUC/GB/Big5.
        cut = sample.rfind(b"\n")
        if cut > 0:
            sample = sample[:cut]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    matches = charset_normalizer.from_bytes(sample)
    best = matches.best()
    if best is None:
        return None
    for match in matches:
        # Short Latin text ties between cp1250/cp1252/cp1257; English sources mean cp1252.
        if match.encoding == "cp1252" and match.chaos <= best.chaos and match.coherence >= best.coherence:
            return "cp1252"
    return normalize_charset(best.encoding)


def decode_body(content: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a body to text following BOM, header charset, in-document declaration, detection.

    Returns (text, codec name). Never raises on bad bytes: they become U+FFFD.
    """
    bom = bom_charset(content)
    if bom:
        codec, skip = bom
        return content[skip:].decode(codec, errors="replace"), codec
    codec = charset_from_content_type(content_type)
    if codec == "cp1252" and _is_non_ascii_utf8(content):
        # Servers default to ISO-8859-1 for everything; valid non-ASCII UTF-8 is practically
        # never genuine Windows-1252 text, and decoding it as such is the classic mojibake.
        codec = "utf-8"
    codec = codec or declared_charset(content) or detect_charset(content) or "utf-8"
    return _decode(content, codec)


def _decode(content: bytes, codec: str) -> tuple[str, str]:
    """Decode with replacement characters, switching to a superset codec where the named one falls short."""
    wider = _WIDER_ON_FAILURE.get(codec)
    if wider is not None:
        try:
            return content.decode(codec), codec
        except UnicodeDecodeError:
            codec = wider
    return content.decode(codec, errors="replace"), codec


def _is_non_ascii_utf8(content: bytes) -> bool:
    """True when the content has bytes above 0x7F and all of it is valid UTF-8."""
    if content.isascii():
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
