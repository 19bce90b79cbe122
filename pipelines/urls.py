"""URL helpers: the canonical form used as the dedup key, host extraction, scheme checks.

    canonicalize_url("HTTPS://Example.COM:443/News/?utm_source=x&b=2&a=1#top")
    -> "https://example.com/News/?a=1&b=2"

The tracking parameters that are dropped live in `tracking_params.txt` next to
this module (one name per line, `prefix*` for a family such as `utm_*`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import SplitResult, quote, urljoin, urlsplit, urlunsplit

TRACKING_PARAMS_FILE = Path(__file__).with_name("tracking_params.txt")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_RE = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters left as they are in each part; everything else is percent-encoded (as UTF-8).
# "%" is kept so existing escapes survive; they are normalised separately.
_PATH_SAFE = "/%:@!$&'()*+,;="
_QUERY_PART_SAFE = "%:@!$'()*+,;/?"  # "=" and "&" excluded: they delimit query parameters


@lru_cache(maxsize=1)
def tracking_params() -> tuple[frozenset[str], tuple[str, ...]]:
    """Load the dropped parameter names: (exact names, name prefixes), all lower case."""
    exact: set[str] = set()
    prefixes: list[str] = []
    for line in TRACKING_PARAMS_FILE.read_text(encoding="utf-8").splitlines():
        name = line.strip().lower()
        if not name or name.startswith("#"):
            continue
        if name.endswith("*"):
            prefixes.append(name[:-1])
        else:
            exact.add(name)
    return frozenset(exact), tuple(prefixes)


def is_tracking_param(name: str) -> bool:
    """True if the query parameter `name` only tracks clicks and never selects a document."""
    exact, prefixes = tracking_params()
    key = name.lower()
    return key in exact or key.startswith(prefixes)


def _normalize_escapes(text: str, safe: str) -> str:
    """Uppercase %xx escapes, decode the ones that stand for unreserved characters and
    percent-encode characters that may not appear raw (spaces, non-ASCII, quotes...)."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    text = _PERCENT_RE.sub(fix, text)
    quoted = quote(text, safe=safe)
    # quote() turns a stray "%" that starts no valid escape into "%25" only if "%" is not safe;
    # with "%" safe we must encode those ourselves.
    return re.sub(r"%(?![0-9A-F]{2})", "%25", quoted)


def _canonical_query(query: str) -> str:
    """Drop tracking and empty-name parameters, normalise escapes, sort by name (stable)."""
    params: list[tuple[str, str | None]] = []
    for part in query.split("&"):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if is_tracking_param(_PERCENT_RE.sub(lambda m: chr(int(m.group(1), 16)), name)):
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
    return urlunsplit((scheme, _netloc(parts, scheme), path, _canonical_query(parts.query), ""))


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
