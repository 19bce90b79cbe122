"""URL helpers: the canonical form used as the dedup key, host extraction, scheme checks.

    canonicalize_url("HTTPS://Example.COM:443/News/?utm_source=x&b=2&a=1#top")
    -> "https://example.com/News/?a=1&b=2"

The tracking parameters that are dropped live in `tracking_params.txt` next to
this module (one name per line, `prefix*` for a family such as `utm_*`, `host:name`
for a name that only tracks on one host, such as Google News's `oc`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import SplitResult, quote, urljoin, urlsplit, urlunsplit

from pipelines.text import replace_surrogates

TRACKING_PARAMS_FILE = Path(__file__).with_name("tracking_params.txt")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters left as they are in each part; everything else is percent-encoded (as UTF-8).
# "%" is kept so existing escapes survive; they are normalised separately.
_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_PART_SAFE = "%:@!$'()*+,;/?"  # "=" and "&" excluded: they delimit query parameters


@dataclass(frozen=True)
class _Rules:
    """Parameter names to drop: exact names and prefixes, everywhere or on one host."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]
    by_host: dict[str, tuple[frozenset[str], tuple[str, ...]]]
    """host -> (exact, prefixes) that apply on that host and its subdomains only."""


@lru_cache(maxsize=1)
def tracking_params() -> _Rules:
    """Load the dropped parameter names from `tracking_params.txt`, all lower case.

    One name per line; `prefix*` for a family; `host:name` for a name that tracks
    only on that host (and its subdomains) and may select a document elsewhere.
    """
    exact: dict[str, set[str]] = {"": set()}
    prefixes: dict[str, list[str]] = {"": []}
    for line in TRACKING_PARAMS_FILE.read_text(encoding="utf-8").splitlines():
        entry = line.strip().lower()
        if not entry or entry.startswith("#"):
            continue
        host, _, name = entry.rpartition(":")
        host = host.strip().rstrip(".")
        name = name.strip()
        if name.endswith("*"):
            prefixes.setdefault(host, []).append(name[:-1])
        else:
            exact.setdefault(host, set()).add(name)
    hosts = (set(exact) | set(prefixes)) - {""}
    by_host = {h: (frozenset(exact.get(h, ())), tuple(prefixes.get(h, ()))) for h in hosts}
    return _Rules(frozenset(exact[""]), tuple(prefixes[""]), by_host)


def is_tracking_param(name: str, host: str = "") -> bool:
    """True if the query parameter `name` only tracks clicks and never selects a document
    (on `host`, for the names the data file scopes to a host)."""
    rules = tracking_params()
    key = name.lower()
    if key in rules.exact or key.startswith(rules.prefixes):
        return True
    host = host.lower().rstrip(".")
    while host:
        scoped = rules.by_host.get(host)
        if scoped and (key in scoped[0] or key.startswith(scoped[1])):
            return True
        host = host.partition(".")[2]  # the rules of news.google.com apply to x.news.google.com
    return False


def _normalize_escapes(text: str, safe: str) -> str:
    """Uppercase %xx escapes, decode the ones that stand for unreserved characters and
    percent-encode characters that may not appear raw (spaces, non-ASCII, quotes...)."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    # Lone surrogates (from JSON "\\ud800") become U+FFFD, as Item does, so both give one key.
    text = replace_surrogates(_PERCENT_RE.sub(fix, text))
    quoted = quote(text, safe=safe, errors="replace")  # never raises, whatever the string holds
    # quote() turns a stray "%" that starts no valid escape into "%25" only if "%" is not safe;
    # with "%" safe we must encode those ourselves.
    return re.sub(r"%(?![0-9A-F]{2})", "%25", quoted)


def _canonical_query(query: str, host: str) -> str:
    """Drop tracking and empty-name parameters ("?=x", "?&"), normalise escapes, sort by name (stable)."""
    params: list[tuple[str, str | None]] = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if not name:  # no server reads a value without a name
            continue
        if is_tracking_param(_PERCENT_RE.sub(lambda m: chr(int(m.group(1), 16)), name), host):
            continue
        norm_value = _normalize_escapes(value, _QUERY_PART_SAFE + "=") if sep else None
        params.append((_normalize_escapes(name, _QUERY_PART_SAFE), norm_value))
    # Stable sort by name only: repeated parameters (fields[]=a&fields[]=b) keep their order.
    params.sort(key=lambda p: p[0])
    return "&".join(name if value is None else f"{name}={value}" for name, value in params)


def _netloc(parts: SplitResult, scheme: str) -> str:
    """Lower-cased host with the default port dropped; user info kept as given."""
    host = (parts.hostname or "").rstrip(".")
    try:
        port = parts.port
    except ValueError:  # a non-numeric or out-of-range port: keep the netloc's text
        return parts.netloc.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    netloc = f"{userinfo}@{host}" if userinfo else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return netloc


def canonicalize_url(url: str) -> str:
    """Return the canonical form of `url`, the key under which an article is deduplicated.

    Lower-cases scheme and host, drops the default port, the fragment and tracking
    parameters (see `tracking_params.txt`), sorts the remaining query parameters by
    name, normalises percent-encoding and drops an empty "?". Path case is kept.
    A string that is not an absolute URL comes back stripped but otherwise unchanged.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return url
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        return url
    path = _normalize_escapes(parts.path, _PATH_SAFE) or "/"
    query = _canonical_query(parts.query, (parts.hostname or "").rstrip("."))
    return urlunsplit((scheme, _netloc(parts, scheme), path, query, ""))


def url_host(url: str) -> str:
    """The lower-cased host name of `url` (no port, no user info); "" if there is none."""
    try:
        return (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""


def is_http_url(url: str | None) -> bool:
    """True for an absolute http:// or https:// URL with a host."""
    if not url:
        return False
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def resolve_http_url(link: object, base_url: str) -> str | None:
    """`link` made absolute against `base_url`, if it is a non-empty string that then is an http(s) URL."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        url = urljoin(base_url, link.strip())
    except ValueError:
        return None
    return url if is_http_url(url) else None
