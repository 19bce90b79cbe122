"""Unit tests of the fetch layer's pure parts: charset chain, SSRF address rules, types, Retry-After, decoding."""

from __future__ import annotations

import codecs
import gzip
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pipelines.charset import decode_body, normalize_charset
from pipelines.fetch import (
    _BodyReader,
    _http_url,
    _Refusal,
    content_type_verdict,
    host_key,
    parse_retry_after,
    sniff_binary,
)
from pipelines.netguard import ProxyConfig, is_public_address
from pipelines.robots import origin_key, parse_policy, product_token
from tests.hostile_server import EN_CP1252_TEXT as EN
from tests.hostile_server import JA_TEXT as JA
from tests.hostile_server import KO_TEXT as KO
from tests.hostile_server import ZH_TEXT as ZH


def page(text: str, head: str = "") -> str:
    return f"<html><head>{head}<title>t</title></head><body><p>{text}</p><p>{text}</p></body></html>"


# -- charset chain ---------------------------------------------------------------------------

@pytest.mark.parametrize(("label", "codec"), [
    ("Shift_JIS", "cp932"), ("x-sjis", "cp932"), ("EUC-JP", "euc_jp"), ("euc-kr", "cp949"),
    ("ks_c_5601-1987", "cp949"), ("gb2312", "gb18030"), ("GBK", "gb18030"), ("ISO-8859-1", "cp1252"),
    ("latin1", "cp1252"), ("us-ascii", "cp1252"), ("UTF8", "utf-8"), ('"utf-8"', "utf-8"), ("bogus-42", None),
])
def test_labels_map_like_browsers(label: str, codec: str | None) -> None:
    assert normalize_charset(label) == codec


@pytest.mark.parametrize(("text", "codec", "label"), [
    (JA, "shift_jis", "Shift_JIS"), (JA, "cp932", "Shift_JIS"), (JA, "euc_jp", "EUC-JP"),
    (KO, "euc_kr", "EUC-KR"), (KO, "cp949", "euc-kr"), (ZH, "gb18030", "GB18030"), (ZH, "gbk", "gb2312"),
    (EN, "cp1252", "iso-8859-1"),
])
def test_header_charset_decodes_legacy_pages(text: str, codec: str, label: str) -> None:
    decoded, _ = decode_body(page(text).encode(codec), f"text/html; charset={label}")
    assert text in decoded and "\ufffd" not in decoded


@pytest.mark.parametrize(("text", "codec", "label"), [
    (JA, "cp932", "shift_jis"), (KO, "cp949", "euc-kr"), (ZH, "gb18030", "gbk"), (EN, "cp1252", "windows-1252"),
])
def test_meta_charset_and_http_equiv_are_read(text: str, codec: str, label: str) -> None:
    for head in (f'<meta charset="{label}">', f'<meta http-equiv="Content-Type" content="text/html; charset={label}">'):
        decoded, _ = decode_body(page(text, head).encode(codec), "text/html")
        assert text in decoded


def test_xml_declaration_is_read() -> None:
    body = f'<?xml version="1.0" encoding="EUC-KR"?><rss><channel><title>{KO}</title></channel></rss>'
    decoded, codec = decode_body(body.encode("cp949"), "application/rss+xml")
    assert KO in decoded and codec == "cp949"


@pytest.mark.parametrize(("text", "codec"), [(JA, "cp932"), (JA, "euc_jp"), (KO, "cp949"), (ZH, "gb18030"),
                                             (EN, "cp1252"), (JA, "utf-8")])
def test_undeclared_pages_are_detected(text: str, codec: str) -> None:
    decoded, _ = decode_body(page(text).encode(codec), "text/html")
    assert text in decoded


@pytest.mark.parametrize(("bom", "codec"), [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                                            (codecs.BOM_UTF16_BE, "utf-16-be")])
def test_bom_wins_over_a_wrong_header(bom: bytes, codec: str) -> None:
    decoded, used = decode_body(bom + page(JA).encode(codec), "text/html; charset=iso-8859-1")
    assert JA in decoded and used == codec and not decoded.startswith("\ufeff")


def test_header_wins_over_meta() -> None:
    decoded, codec = decode_body(page(KO, '<meta charset="shift_jis">').encode("cp949"), "text/html; charset=euc-kr")
    assert KO in decoded and codec == "cp949"


def test_latin1_label_on_utf8_bytes_is_read_as_utf8() -> None:
    decoded, codec = decode_body(page(EN).encode("utf-8"), "text/html; charset=ISO-8859-1")
    assert EN in decoded and codec == "utf-8"


def test_invalid_bytes_never_raise() -> None:
    decoded, codec = decode_body(b"<p>caf\xc3\xa9 \xff\xfe\xc3( end</p>", "text/html; charset=utf-8")
    assert codec == "utf-8" and "café" in decoded and "\ufffd" in decoded and decoded.endswith("end</p>")
    for junk in (bytes(range(256)) * 4, b"\x81\x82\x83" * 100, b""):
        for content_type in ("", "text/html; charset=shift_jis", "text/html; charset=nonsense"):
            assert isinstance(decode_body(junk, content_type)[0], str)


@pytest.mark.parametrize("label", ["base64", "hex", "rot13", "zlib", "uu", "bz2", "quopri", "undefined", "idna",
                                   "punycode", "utf-7", "unicode-escape", "a\x00b"])
def test_labels_of_non_text_or_unusable_codecs_are_unknown(label: str) -> None:
    assert normalize_charset(label) is None


@pytest.mark.parametrize(("content_type", "head"), [
    ("text/html; charset=base64", ""), ("text/html; charset=undefined", ""), ("text/html; charset=idna", ""),
    ("text/html; charset=punycode", ""), ("text/html", "<meta charset=rot13>"), ("text/html", "<meta charset=hex>"),
    ("text/html", '<meta charset="undefined">'),
])
def test_unusable_charset_labels_fall_through_to_detection(content_type: str, head: str) -> None:
    decoded, codec = decode_body(page("caf\u00e9 \u2460", head).encode("utf-8"), content_type)
    assert codec == "utf-8" and "caf\u00e9 \u2460" in decoded


def test_euc_jp_with_nec_special_characters_is_widened() -> None:
    body = page("\u2460 " + JA, '<meta charset="EUC-JP">').encode("euc_jis_2004")
    assert b"\xad\xa1" in body  # (1) is an NEC special, outside plain EUC-JP
    decoded, codec = decode_body(body, "text/html")
    assert "\u2460 " + JA in decoded and "\ufffd" not in decoded and codec == "euc_jis_2004"
    plain, codec = decode_body(page(JA).encode("euc_jp"), "text/html; charset=EUC-JP")
    assert JA in plain and codec == "euc_jp"


def test_meta_declaring_utf16_means_utf8() -> None:
    decoded, codec = decode_body(page("caf\u00e9", '<meta charset="utf-16">').encode("utf-8"), "text/html")
    assert codec == "utf-8" and "café" in decoded


# -- SSRF address rules ----------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.5.5.5", "10.0.0.1", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:c0a8:101::1", "not-an-ip",
    "fec0::1", "fef0:1::1",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34",
                                     "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)


# -- proxies from the environment, as curl reads them ----------------------------------------

def test_proxy_environment_follows_curl() -> None:
    env = {"HTTP_PROXY": "proxy.corp:3128", "https_proxy": "http://tls-proxy:8443",
           "NO_PROXY": "192.168.0.0/16,.gov.uk, intranet.example:8080 [::1] fd00::/8,10.1.2.3"}
    config = ProxyConfig.from_env(env)
    assert config.proxy_for("http", "www.uscis.gov", 80) == "http://proxy.corp:3128"  # scheme defaults to http
    assert config.proxy_for("https", "www.uscis.gov", 443) == "http://tls-proxy:8443"
    for host, port in [("192.168.1.5", 80), ("gov.uk", 80), ("www.gov.uk", 443), ("GOV.UK.", 80),
                       ("intranet.example", 8080), ("::1", 80), ("[fd12::1]", 80), ("10.1.2.3", 80)]:
        assert config.proxy_for("http", host, port) is None, host
    for host, port in [("notgov.uk", 80), ("gov.uk.evil.example", 80), ("intranet.example", 80),
                       ("10.1.2.4", 80), ("192.169.0.1", 80), ("fe80::1", 80)]:
        assert config.proxy_for("http", host, port) == "http://proxy.corp:3128", host


def test_proxy_environment_precedence_and_wildcards() -> None:
    assert ProxyConfig.from_env({"http_proxy": "http://a:1", "HTTP_PROXY": "http://b:1"}).http == "http://a:1"
    everything = ProxyConfig.from_env({"ALL_PROXY": "http://all:1"})
    assert everything.proxy_for("http", "x.example", 80) == everything.proxy_for("https", "x.example", 443)
    assert ProxyConfig.from_env({"ALL_PROXY": "http://all:1", "no_proxy": "*"}).proxy_for("http", "x", 80) is None
    assert ProxyConfig.from_env({}).proxy_for("http", "x.example", 80) is None
    assert ProxyConfig.from_env({"HTTP_PROXY": "http://p:1"}).proxy_for("ftp", "x.example", 21) is None


# -- content types, sniffing, Retry-After, host keys -----------------------------------------

@pytest.mark.parametrize(("expect", "media", "verdict"), [
    ("html", "text/html", "accept"), ("html", "application/xhtml+xml", "accept"), ("html", "", "sniff"),
    ("html", "text/plain", "sniff"), ("html", "application/octet-stream", "sniff"), ("html", "image/png", "reject"),
    ("html", "application/pdf", "reject"), ("html", "application/json", "reject"),
    ("feed", "application/rss+xml", "accept"), ("feed", "application/atom+xml", "accept"),
    ("feed", "text/xml", "accept"), ("feed", "application/feed+json", "accept"), ("feed", "text/html", "accept"),
    ("feed", "", "sniff"), ("feed", "image/gif", "reject"), ("json", "application/json", "accept"),
    ("json", "text/javascript", "accept"), ("json", "application/vnd.ms-excel", "reject"),
    ("any", "image/png", "accept"),
])
def test_content_type_verdicts(expect: str, media: str, verdict: str) -> None:
    assert content_type_verdict(expect, media) == verdict  # type: ignore[arg-type]


def test_sniffing_tells_binary_from_text() -> None:
    assert sniff_binary(b"\x89PNG\r\n\x1a\n....") == "PNG image"
    assert sniff_binary(b"%PDF-1.7\n") == "PDF"
    assert sniff_binary(b"GIF89a") == "GIF image"
    assert sniff_binary(b"abc\x00def") == "binary data"
    assert sniff_binary("<html><p>特定技能</p></html>".encode("cp932")) is None
    assert sniff_binary(codecs.BOM_UTF16_LE + "<html>".encode("utf-16-le")) is None


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    soon = parse_retry_after(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))
    assert soon is not None and 25 <= soon <= 31
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("-5") is None
    for odd_digits in ("\u00b2", "\u0663", "1\u00b9", "\uff11\uff10"):  # superscript, Arabic-Indic, fullwidth
        assert parse_retry_after(odd_digits) is None


def test_host_keys_include_non_default_ports() -> None:
    assert host_key("https://www.uscis.gov/news") == "www.uscis.gov"
    assert host_key("http://www.uscis.gov:80/news") == "www.uscis.gov"
    assert host_key("http://127.0.0.1:8081/x") == "127.0.0.1:8081"


def test_robots_groups_match_our_product_token_not_our_contact_url() -> None:
    ua = "policy-monitor/0.1 (+https://github.com/policy-monitor/policy-monitor)"
    assert product_token(ua) == "policy-monitor" and product_token("  ") == ""
    for name in ("github", "https", "com", "0.1"):
        policy = parse_policy(f"User-agent: {name}\nDisallow: /\nCrawl-delay: 30\n".encode(), now=0.0, ttl=60.0)
        assert policy.allows("https://www.uscis.gov/news", ua), name
        assert policy.crawl_delay(ua) is None, name
    ours = parse_policy(b"User-agent: Policy-Monitor\nDisallow: /news\nCrawl-delay: 4\n", now=0.0, ttl=60.0)
    assert not ours.allows("https://www.uscis.gov/news", ua) and ours.crawl_delay(ua) == 4.0


def test_hosts_beyond_dns_limits_are_invalid_urls() -> None:
    assert isinstance(_http_url("http://" + "a" * 64 + ".example.com/"), str)
    assert isinstance(_http_url("http://" + "a." * 127 + "com/"), str)
    assert not isinstance(_http_url("http://" + "a" * 63 + ".example.com/"), str)


def test_origin_keys_spell_out_default_ports() -> None:
    import httpx

    assert origin_key(httpx.URL("https://www.uscis.gov/x")) == "https://www.uscis.gov:443"
    assert origin_key(httpx.URL("http://www.uscis.gov/x")) == "http://www.uscis.gov:80"
    assert origin_key(httpx.URL("http://127.0.0.1:8081/x")) == "http://127.0.0.1:8081"


def test_crawl_delay_and_rules_from_robots() -> None:
    policy = parse_policy(b"User-agent: *\nDisallow: /private/\nCrawl-delay: 10\n", now=0.0, ttl=60.0)
    ua = "policy-monitor/0.1 (+https://example.org)"
    assert policy.crawl_delay(ua) == 10.0
    assert not policy.allows("https://x.gov/private/a", ua) and policy.allows("https://x.gov/news", ua)
    assert parse_policy(b"\xff\xfe garbage \x00", 0.0, 60.0).allows("https://x.gov/", ua)


# -- bounded decompression -------------------------------------------------------------------

def test_body_reader_decodes_multi_member_gzip_and_bounds_output() -> None:
    body = gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 1000)
    reader = _BodyReader("gzip", max_bytes=10_000, truncate=False)
    for i in range(0, len(body), 7):
        reader.feed(body[i:i + 7])
    reader.feed(b"", final=True)
    assert bytes(reader.body) == b"a" * 1000 + b"b" * 1000 and reader.raw == len(body)

    bomb = zlib.compress(bytes(50_000_000), 9)  # ~50 KB that expands to 50 MB
    reader = _BodyReader("deflate", max_bytes=1_000_000, truncate=False)
    with pytest.raises(_Refusal) as refused:
        reader.feed(bomb)
    assert refused.value.error == "TooLarge" and len(reader.body) <= 1_000_001


def test_body_reader_truncates_when_asked_and_refuses_unknown_encodings() -> None:
    reader = _BodyReader("", max_bytes=10, truncate=True)
    assert reader.feed(b"0123456789abcdef") is False and bytes(reader.body) == b"0123456789"
    with pytest.raises(_Refusal) as refused:
        _BodyReader("br", max_bytes=10, truncate=False)
    assert refused.value.error == "DecodingError"
    double = gzip.compress(gzip.compress(b"twice"))
    reader = _BodyReader("gzip, gzip", max_bytes=100, truncate=False)
    reader.feed(double, final=True)
    assert bytes(reader.body) == b"twice"
