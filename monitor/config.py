"""The configuration model: `config.toml` read, checked and turned into typed settings.

Every problem is a `ConfigError` whose message is one line naming the file and
the key. Relative paths resolve against the config file's folder, so the daemon
behaves the same whatever its working directory. Secrets are never read from
the file: `[email] password_env` names an environment variable.
"""

from __future__ import annotations

import difflib
import os
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipelines.fetch import FetchSettings
from pipelines.jsonapi import JsonApiSpec
from pipelines.keep import KeepFilter, validate_keep_filter
from pipelines.listing import ListingSpec, validate_listing_spec
from storage.alerts import FigureFilter
from storage.target import DATABASE_URL_ENV, database_target, is_database_url

SOURCE_KINDS = ("feed", "html_list", "json_api")
ALERT_MODES = ("immediate", "daily", "weekly")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class ConfigError(Exception):
    """The configuration can't be used; the message is one line for the user (exit code 2)."""


@dataclass
class SourceConfig:
    name: str
    kind: str
    url: str
    enabled: bool = True
    country: str | None = None
    lang: str | None = None
    every: float = 3600.0
    """Seconds between crawls of this source by the daemon."""
    cron: str | None = None
    listing: ListingSpec | None = None
    json_api: JsonApiSpec | None = None
    base_url: str | None = None
    fetch_articles: bool = True
    max_items: int = 100
    note: str | None = None
    keep_filter: KeepFilter | None = None
    """`[sources.filter]`: only items naming one of its keywords are stored."""


@dataclass
class AlertRule:
    name: str
    to: list[str]
    mode: str = "immediate"
    at: str = "08:00"
    day: str = "mon"
    query: str | None = None
    visas: list[str] = field(default_factory=list)
    sectors: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    figures: list[FigureFilter] = field(default_factory=list)


@dataclass
class EmailConfig:
    host: str = ""
    port: int = 587
    security: str = "starttls"
    """"starttls", "tls" (implicit TLS) or "none"."""
    username: str | None = None
    password_env: str | None = None
    sender: str = "policy-monitor@localhost"
    outbox: Path = Path("outbox")
    timeout: float = 30.0
    ca_file: Path | None = None
    """PEM file of the CA certificates the SMTP server's certificate is checked against, instead of the
    system's; None means the system's CAs."""

    def password(self) -> str | None:
        """The SMTP password from the environment variable named by `password_env`."""
        return os.environ.get(self.password_env) if self.password_env else None


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass
class WorkersConfig:
    """`[workers]`: the crawl queue of `monitor run --workers` and `monitor worker` (see monitor.workers)."""

    queue_url: str | None = None
    """PostgreSQL database holding the queue; None if neither the key, the store nor $MONITOR_DATABASE_URL give one."""
    concurrency: int = 4
    """Jobs one `monitor worker` runs at once (`--concurrency` overrides it)."""
    alert_interval: float = 30.0
    """Seconds between the scheduler's sweeps that send alerts for articles the workers stored."""
    stalled_after: float = 30.0
    """Seconds without a heartbeat after which a worker counts as dead and its running jobs are run again."""
    busy_retry: float = 5.0
    """Seconds after which a job whose host is busy (another worker crawls it) is tried again."""


@dataclass
class Config:
    path: Path | None
    db_path: Path | str
    """A SQLite file, or a PostgreSQL URL kept as a string (`storage.target.is_database_url`)."""
    fetch: FetchSettings
    sources: list[SourceConfig]
    taxonomy_files: list[Path] = field(default_factory=list)
    email: EmailConfig = field(default_factory=EmailConfig)
    timezone: str = "UTC"
    alerts: list[AlertRule] = field(default_factory=list)
    article_concurrency: int = 8
    keep_days: float | None = None
    """[storage] keep_days: article text older than this is pruned (None: kept for ever)."""
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    backfill_keep_any: tuple[str, ...] = ()
    """[backfill] keep_any: keywords `monitor backfill --keep-filter` keeps pages by (with the sources' filters
    and the visa names of the taxonomy)."""

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        close = difflib.get_close_matches(name, [s.name for s in self.sources], n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else " (monitor sources lists them)"
        raise ConfigError(f"no source named {name!r} in {self.path or 'the configuration'}{hint}")


def find_config_path(explicit: str | None) -> Path:
    """`--config`, else `$MONITOR_CONFIG`, else `./config.toml`."""
    return Path(explicit or os.environ.get("MONITOR_CONFIG") or "config.toml")


def load_config(path: Path, db_override: str | None = None) -> Config:
    """Read and check the TOML file at `path`; `db_override` replaces `[storage] path`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (use --config PATH or set MONITOR_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_dict(data, path=path, base_dir=path.resolve().parent, db_override=db_override)


def config_from_dict(
    data: dict[str, Any], *, path: Path | None, base_dir: Path, db_override: str | None = None
) -> Config:
    """Check a parsed configuration and build the typed `Config` (used for files and for the demo)."""
    reader = _Reader(str(path) if path else "config")
    reader.keys(data, "", {"storage", "crawl", "tagging", "sources", "email", "alerts_defaults", "alerts", "workers",
                           "backfill"})

    storage = reader.table(data, "storage", {"path", "keep_days"})
    db_path = _db_target(db_override, reader.string(storage, "[storage]", "path", None), base_dir)
    keep_days = reader.number(storage, "[storage]", "keep_days", None, minimum=1)

    crawl = reader.table(data, "crawl", {
        "user_agent", "timeout", "connect_timeout", "max_bytes", "max_redirects", "per_host_concurrency",
        "per_host_delay", "max_tries", "max_retry_after", "allow_private_addresses", "obey_robots",
        "article_concurrency",
    })
    defaults = FetchSettings()
    fetch = FetchSettings(
        user_agent=reader.string(crawl, "[crawl]", "user_agent", defaults.user_agent),
        timeout=reader.number(crawl, "[crawl]", "timeout", defaults.timeout, minimum=0.1),
        connect_timeout=reader.number(crawl, "[crawl]", "connect_timeout", defaults.connect_timeout, minimum=0.1),
        max_bytes=int(reader.number(crawl, "[crawl]", "max_bytes", defaults.max_bytes, minimum=1024, integer=True)),
        max_redirects=int(reader.number(crawl, "[crawl]", "max_redirects", defaults.max_redirects, minimum=0,
                                        integer=True)),
        per_host_concurrency=int(reader.number(crawl, "[crawl]", "per_host_concurrency",
                                               defaults.per_host_concurrency, minimum=1, integer=True)),
        per_host_delay=reader.number(crawl, "[crawl]", "per_host_delay", defaults.per_host_delay, minimum=0),
        max_tries=int(reader.number(crawl, "[crawl]", "max_tries", defaults.max_tries, minimum=1, integer=True)),
        max_retry_after=reader.number(crawl, "[crawl]", "max_retry_after", defaults.max_retry_after, minimum=0),
        allow_private_addresses=reader.boolean(crawl, "[crawl]", "allow_private_addresses",
                                               defaults.allow_private_addresses),
        obey_robots=reader.boolean(crawl, "[crawl]", "obey_robots", defaults.obey_robots),
    )
    article_concurrency = int(reader.number(crawl, "[crawl]", "article_concurrency", 8, minimum=1, integer=True))

    tagging = reader.table(data, "tagging", {"taxonomy_files"})
    taxonomy_files = [base_dir / p for p in reader.strings(tagging, "[tagging]", "taxonomy_files")]
    for file in taxonomy_files:
        if not file.is_file():
            raise ConfigError(f"{reader.file}: [tagging] taxonomy_files: file not found: {file}")

    backfill = reader.table(data, "backfill", {"keep_any"})
    backfill_keep_any = tuple(reader.strings(backfill, "[backfill]", "keep_any"))
    sources = [_source(reader, raw, index) for index, raw in enumerate(reader.array(data, "sources"))]
    _check_unique(reader, "sources", [s.name for s in sources])

    email = _email(reader, reader.table(data, "email", {
        "host", "port", "security", "username", "password_env", "password", "sender", "outbox", "timeout",
        "ca_file",
    }), base_dir)
    alerts_defaults = reader.table(data, "alerts_defaults", {"timezone"})
    timezone = reader.string(alerts_defaults, "[alerts_defaults]", "timezone", "UTC")
    _check_timezone(reader, timezone)
    alerts = [_alert(reader, raw, index) for index, raw in enumerate(reader.array(data, "alerts"))]
    _check_unique(reader, "alerts", [a.name for a in alerts])
    store = db_override or reader.string(storage, "[storage]", "path", "monitor.db")
    workers = _workers(reader, reader.table(data, "workers", set(WorkersConfig.__dataclass_fields__)), store)
    return Config(
        path=path, db_path=db_path, fetch=fetch, sources=sources, taxonomy_files=taxonomy_files, email=email,
        timezone=timezone, alerts=alerts, article_concurrency=article_concurrency, keep_days=keep_days,
        workers=workers,
        backfill_keep_any=backfill_keep_any,
    )


def _workers(reader: _Reader, table: dict[str, Any], store: str) -> WorkersConfig:
    """`[workers]`; the queue defaults to the store when that is PostgreSQL, else to $MONITOR_DATABASE_URL."""
    where = "[workers]"
    defaults = WorkersConfig()
    queue_url = reader.string(table, where, "queue_url", None)
    if queue_url is None:
        for candidate in (store, os.environ.get("MONITOR_DATABASE_URL") or ""):
            if candidate.startswith(POSTGRES_SCHEMES):
                queue_url = candidate
                break
    return WorkersConfig(
        queue_url=queue_url,
        concurrency=int(reader.number(table, where, "concurrency", defaults.concurrency, minimum=1, integer=True)),
        alert_interval=reader.number(table, where, "alert_interval", defaults.alert_interval, minimum=1),
        stalled_after=reader.number(table, where, "stalled_after", defaults.stalled_after, minimum=1),
        busy_retry=reader.number(table, where, "busy_retry", defaults.busy_retry, minimum=0.1),
    )


def _db_target(override: str | None, configured: str | None, base_dir: Path) -> Path | str:
    """--db, else `[storage] path` (a file relative to the config's folder), else $MONITOR_DATABASE_URL,
    else monitor.db. A PostgreSQL URL stays a string."""
    if override:
        return database_target(override)
    if configured is None:
        configured = os.environ.get(DATABASE_URL_ENV) or "monitor.db"
    return configured if is_database_url(configured) else base_dir / configured


def parse_duration(text: str) -> float | None:
    """Seconds in "90s", "30m", "6h", "1d" or "1w"; None if `text` is not of that form."""
    match = _DURATION.match(text)
    if not match:
        return None
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _source(reader: _Reader, raw: Any, index: int) -> SourceConfig:
    name, where = _named_entry(reader, raw, "sources", index)
    reader.keys(raw, where, {
        "name", "kind", "url", "enabled", "country", "lang", "every", "cron", "selectors", "items_path",
        "fields", "base_url", "fetch_articles", "max_items", "note", "filter",
    })
    kind = reader.string(raw, where, "kind", None)
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"{reader.file}: {where} kind: expected one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    url = reader.url(raw, where, "url", required=True)
    every_text = reader.string(raw, where, "every", "1h")
    every = parse_duration(every_text)
    if every is None:
        raise ConfigError(f"{reader.file}: {where} every: expected a duration like '90s', '30m', '6h', '1d',"
                          f" got {every_text!r}")
    if every < 1:
        raise ConfigError(f"{reader.file}: {where} every: the shortest interval is 1s, got {every_text!r}")
    cron = reader.string(raw, where, "cron", None)
    if cron is not None:
        _check_cron(reader, where, cron)
    source = SourceConfig(
        name=name, kind=kind, url=url,
        enabled=reader.boolean(raw, where, "enabled", True),
        country=_country(reader, where, reader.string(raw, where, "country", None)),
        lang=reader.string(raw, where, "lang", None),
        every=every, cron=cron,
        base_url=reader.url(raw, where, "base_url", required=False),
        fetch_articles=reader.boolean(raw, where, "fetch_articles", True),
        max_items=int(reader.number(raw, where, "max_items", 100, minimum=1, integer=True)),
        note=reader.string(raw, where, "note", None),
        keep_filter=_keep_filter(reader, raw, where),
    )
    if kind == "html_list":
        selectors = reader.table(raw, f"{where} selectors", {
            "item", "link", "title", "date", "summary", "link_attr", "link_regex", "link_template",
        }, key="selectors")
        if "item" not in selectors:
            raise ConfigError(f"{reader.file}: {where} selectors.item: required for kind 'html_list'")
        spec = ListingSpec(**{k: reader.string(selectors, f"{where} selectors", k, None) for k in selectors})
        problem = validate_listing_spec(spec)
        if problem:
            raise ConfigError(f"{reader.file}: {where} selectors: {problem}")
        source.listing = spec
    elif "selectors" in raw:
        raise ConfigError(f"{reader.file}: {where} selectors: only for kind 'html_list'")
    if kind == "json_api":
        fields = reader.table(raw, f"{where} fields", {"url", "title", "date", "summary", "guid", "lang"},
                              key="fields")
        if "url" not in fields:
            raise ConfigError(f"{reader.file}: {where} fields.url: required for kind 'json_api'")
        source.json_api = JsonApiSpec(
            items_path=reader.string(raw, where, "items_path", ""),
            fields={k: reader.string(fields, f"{where} fields", k, None) for k in fields},
        )
    else:
        for key in ("items_path", "fields"):
            if key in raw:
                raise ConfigError(f"{reader.file}: {where} {key}: only for kind 'json_api'")
    return source


def _keep_filter(reader: _Reader, raw: dict[str, Any], where: str) -> KeepFilter | None:
    """`[sources.filter] any = [...]`, checked; None when the source has no filter."""
    if "filter" not in raw:
        return None
    table = reader.table(raw, f"{where} filter", {"any"}, key="filter")
    if "any" not in table:
        raise ConfigError(f"{reader.file}: {where} filter.any: required (a list of keywords, e.g. [\"外国人\"])")
    keywords = reader.strings(table, f"{where} filter", "any")
    problem = validate_keep_filter(keywords)
    if problem:
        raise ConfigError(f"{reader.file}: {where} filter.any: {problem}")
    return KeepFilter(any=tuple(keywords))


def _check_unique(reader: _Reader, section: str, names: list[str]) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{reader.file}: [[{section}]] name {duplicates[0]!r} is used more than once")


def _named_entry(reader: _Reader, raw: Any, section: str, index: int) -> tuple[str, str]:
    """The `name` of entry `index` of an array of tables, and how messages refer to the entry."""
    where = f"[[{section}]] #{index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{reader.file}: {where}: expected a table")
    name = reader.string(raw, where, "name", None)
    if not name:
        raise ConfigError(f"{reader.file}: {where}: 'name' is required")
    return name, f"[[{section}]] {name!r}"


def _email(reader: _Reader, raw: dict[str, Any], base_dir: Path) -> EmailConfig:
    where = "[email]"
    if "password" in raw:
        raise ConfigError(f"{reader.file}: {where} password: secrets never live in the config file;"
                          " set password_env to the name of an environment variable")
    security = reader.string(raw, where, "security", "starttls")
    if security not in ("starttls", "tls", "none"):
        raise ConfigError(f"{reader.file}: {where} security: expected 'starttls', 'tls' or 'none', got {security!r}")
    sender = reader.string(raw, where, "sender", "policy-monitor@localhost")
    if not _EMAIL.match(sender) and not sender.endswith("@localhost"):
        raise ConfigError(f"{reader.file}: {where} sender: not an email address: {sender!r}")
    return EmailConfig(
        host=reader.string(raw, where, "host", ""),
        port=int(reader.number(raw, where, "port", 465 if security == "tls" else 587, minimum=1, integer=True)),
        security=security,
        username=reader.string(raw, where, "username", None),
        password_env=reader.string(raw, where, "password_env", None),
        sender=sender,
        outbox=base_dir / reader.string(raw, where, "outbox", "outbox"),
        timeout=reader.number(raw, where, "timeout", 30.0, minimum=0.1),
        ca_file=_ca_file(reader, raw, base_dir),
    )


def _ca_file(reader: _Reader, raw: dict[str, Any], base_dir: Path) -> Path | None:
    """`[email] ca_file` resolved against the config folder, checked to hold certificates."""
    name = reader.string(raw, "[email]", "ca_file", None)
    if name is None:
        return None
    path = base_dir / name
    if not path.is_file():
        raise ConfigError(f"{reader.file}: [email] ca_file: file not found: {path}")
    # Loaded now so that a wrong file stops the program at start, not at the first alert hours later.
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{reader.file}: [email] ca_file: no usable PEM certificates in {path}:"
                          f" {exc}".replace("\n", " ")) from None
    return path


def _alert(reader: _Reader, raw: Any, index: int) -> AlertRule:
    name, where = _named_entry(reader, raw, "alerts", index)
    reader.keys(raw, where, {
        "name", "to", "mode", "at", "day", "query", "visas", "sectors", "countries", "sources", "langs", "figures",
    })
    to = raw.get("to")
    recipients = [to] if isinstance(to, str) else reader.strings(raw, where, "to")
    if not recipients:
        raise ConfigError(f"{reader.file}: {where} to: at least one address is required")
    for address in recipients:
        if not _EMAIL.match(address):
            raise ConfigError(f"{reader.file}: {where} to: not an email address: {address!r}")
    mode = reader.string(raw, where, "mode", "immediate")
    if mode not in ALERT_MODES:
        raise ConfigError(f"{reader.file}: {where} mode: expected one of {', '.join(ALERT_MODES)}, got {mode!r}")
    at = reader.string(raw, where, "at", "08:00")
    if not _TIME_OF_DAY.match(at):
        raise ConfigError(f"{reader.file}: {where} at: expected a time like '08:00', got {at!r}")
    day = reader.string(raw, where, "day", "mon").lower()[:3]
    if day not in WEEKDAYS:
        raise ConfigError(f"{reader.file}: {where} day: expected a weekday like 'mon', got {raw.get('day')!r}")
    figures = []
    for number, condition in enumerate(reader.array(raw, "figures", where=where)):
        fwhere = f"{where} figures #{number + 1}"
        if not isinstance(condition, dict):
            raise ConfigError(f"{reader.file}: {fwhere}: expected a table like {{visa = \"JP:HSP\", min = 1000}}")
        reader.keys(condition, fwhere, {"visa", "unit", "min", "max", "year"})
        figures.append(FigureFilter(
            visa=reader.string(condition, fwhere, "visa", None),
            unit=reader.string(condition, fwhere, "unit", None),
            min=reader.number(condition, fwhere, "min", None),
            max=reader.number(condition, fwhere, "max", None),
            year=(int(y) if (y := reader.number(condition, fwhere, "year", None, integer=True)) is not None
                  else None),
        ))
    return AlertRule(
        name=name, to=recipients, mode=mode, at=at, day=day,
        query=reader.string(raw, where, "query", None),
        visas=reader.strings(raw, where, "visas"),
        sectors=reader.strings(raw, where, "sectors"),
        countries=[c.upper() for c in reader.strings(raw, where, "countries")],
        sources=reader.strings(raw, where, "sources"),
        langs=reader.strings(raw, where, "langs"),
        figures=figures,
    )


def _country(reader: _Reader, where: str, code: str | None) -> str | None:
    if code is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", code):
        raise ConfigError(f"{reader.file}: {where} country: expected an ISO 3166 alpha-2 code like 'KR', got {code!r}")
    return code.upper()


def _check_cron(reader: _Reader, where: str, cron: str) -> None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(cron)
    except ValueError as exc:
        raise ConfigError(f"{reader.file}: {where} cron: {exc} in {cron!r}") from None


def _check_timezone(reader: _Reader, name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{reader.file}: [alerts_defaults] timezone: unknown IANA time zone {name!r}") from None


class _Reader:
    """Typed access to TOML tables that turns every mistake into a one-line ConfigError."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, key: str, expected: str, value: Any) -> ConfigError:
        place = f"{where} {key}".strip() if where else key
        return ConfigError(f"{self.file}: {place}: expected {expected}, got {value!r}")

    def keys(self, table: dict[str, Any], where: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            place = f"{where} " if where else ""
            raise ConfigError(f"{self.file}: {place}unknown key {unknown[0]!r}"
                              f" (known: {', '.join(sorted(allowed))})")

    def table(self, data: dict[str, Any], where: str, allowed: set[str], key: str | None = None) -> dict[str, Any]:
        key = key or where
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail("", f"[{where}]" if key == where else where, "a table", value)
        self.keys(value, f"[{where}]" if key == where else where, allowed)
        return value

    def array(self, data: dict[str, Any], key: str, where: str = "") -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(where, key, "an array", value)
        return value

    def string(self, table: dict[str, Any], where: str, key: str, default: Any) -> Any:
        value = table.get(key, default)
        if value is not default and not isinstance(value, str):
            raise self.fail(where, key, "a string", value)
        return value

    def strings(self, table: dict[str, Any], where: str, key: str) -> list[str]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, key, "a list of strings", value)
        return list(value)

    def number(self, table: dict[str, Any], where: str, key: str, default: Any, *, minimum: float | None = None,
               integer: bool = False) -> Any:
        value = table.get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise self.fail(where, key, "a whole number" if integer else "a number", value)
        if minimum is not None and value < minimum:
            raise self.fail(where, key, f"a number >= {minimum:g}", value)
        return value

    def boolean(self, table: dict[str, Any], where: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(where, key, "true or false", value)
        return value

    def url(self, table: dict[str, Any], where: str, key: str, *, required: bool) -> str | None:
        value = self.string(table, where, key, None)
        if value is None:
            if required:
                raise ConfigError(f"{self.file}: {where} {key}: required")
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise self.fail(where, key, "an http(s) URL", value) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(where, key, "an http(s) URL", value)
        return value
