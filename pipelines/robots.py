"""robots.txt policy per origin, following RFC 9309.

How a robots.txt fetch outcome becomes a policy (RFC 9309 section 2.3.1):

- 2xx: the file is parsed (Protego) and obeyed, Crawl-delay included; only its first
  500 KiB are read.
- 4xx other than 429 ("unavailable"): no rules, everything allowed.
- 429, 5xx, timeouts and connection errors ("unreachable"): complete disallow, but only for
  a short while (`robots_error_ttl`), after which robots.txt is asked for again; pages refused
  meanwhile come back with `retry_later`. 429 counts as unreachable rather than unavailable
  because a server that is rate-limiting us wants fewer requests, not more.
- more than five redirects: treated as unavailable (allow), as the RFC permits.

Groups are matched against our product token only (RFC 9309 2.2.1: "policy-monitor" out of
"policy-monitor/0.1 (+https://github.com/...)"), never against the whole User-Agent header,
whose contact URL would otherwise make groups such as `User-agent: github` or `https` ours.

Fetching is the Fetcher's business (`pipelines.fetch`), through the same guarded path as
every other request; this module only turns outcomes into decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from protego import Protego

from pipelines.netguard import effective_port

ROBOTS_MAX_BYTES = 512_000
"""RFC 9309: crawlers must parse at least 500 KiB; we read that much and no more."""


@dataclass
class RobotsPolicy:
    """What robots.txt of one origin says, and until when we trust that."""

    expires: float
    """time.monotonic() after which robots.txt is fetched again."""
    parser: Protego | None = None
    """None: no rules (4xx, or unreadable file) unless `unreachable`."""
    unreachable: bool = False
    """robots.txt could not be had (5xx, 429, network): everything disallowed for now."""
    reason: str = ""
    error: str = ""
    """When unreachable through network trouble: its error class ("Timeout", "ConnectError", ...)."""

    def allows(self, url: str, user_agent: str) -> bool:
        """Whether user_agent may fetch url."""
        if self.unreachable:
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(url, product_token(user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        """Crawl-delay in seconds of the group matching user_agent, if it has one."""
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(product_token(user_agent))
        return float(delay) if delay is not None and delay >= 0 else None


def product_token(user_agent: str) -> str:
    """The product token of a User-Agent header, which robots.txt groups name (RFC 9309 2.2.1)."""
    words = user_agent.split("/", 1)[0].split()
    return words[0] if words else user_agent.strip()


def robots_url(url: httpx.URL) -> str:
    """The robots.txt URL governing url (same scheme, host and port)."""
    return str(url.copy_with(path="/robots.txt", query=None, fragment=None, userinfo=b""))


def origin_key(url: httpx.URL) -> str:
    """The cache key of robots.txt: scheme, host and port (RFC 9309 2.3)."""
    return f"{url.scheme}://{url.host}:{effective_port(url.scheme, url.port)}"


def parse_policy(body: bytes, now: float, ttl: float) -> RobotsPolicy:
    """A policy from a robots.txt body; an unparsable file means no rules."""
    text = body.decode("utf-8", errors="replace")
    try:
        parser = Protego.parse(text)
    except Exception as exc:  # noqa: BLE001 - a third-party file must never stop the crawl
        return RobotsPolicy(expires=now + ttl, reason=f"robots.txt unparsable ({type(exc).__name__}): allow")
    return RobotsPolicy(expires=now + ttl, parser=parser, reason="robots.txt")


def allow_all(now: float, ttl: float, reason: str) -> RobotsPolicy:
    """No rules: robots.txt is unavailable (4xx) or not worth obeying (redirect maze)."""
    return RobotsPolicy(expires=now + ttl, reason=reason)


def disallow_all(now: float, ttl: float, reason: str, error: str = "") -> RobotsPolicy:
    """Complete disallow while robots.txt is unreachable (5xx, 429, network trouble)."""
    return RobotsPolicy(expires=now + ttl, unreachable=True, reason=reason, error=error)
