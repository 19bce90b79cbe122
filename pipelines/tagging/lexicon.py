"""Taxonomy loading and alias matching: TOML data files -> one compiled regex per kind.

The bundled files under `taxonomy/` define `[[visa]]`, `[[sector]]`, `[[country]]` and `[[org]]`
tables; a user's file in the same format adds entries or extra aliases to existing ids.
Aliases are compiled into a prefix-trie regex (fast leftmost-longest alternation); the matched
text is looked up again in a dict to find which entries it names.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path

TAXONOMY_DIR = Path(__file__).resolve().parent / "taxonomy"
BUNDLED_FILES = ("visas.toml", "sectors.toml", "places.toml")
KINDS = ("visa", "sector", "country", "org")
ALIAS_FIELDS = ("en", "codes", "ko", "ja", "ambiguous", "cues", "subtype_refs", "exclude")
_ID_RE = {
    "visa": re.compile(r"^[A-Z]{2}:[A-Z0-9][A-Z0-9-]*$"),
    "org": re.compile(r"^[A-Z]{2}:[A-Za-z0-9][A-Za-z0-9-]*$"),
    "country": re.compile(r"^[A-Z]{2}$"),
    "sector": re.compile(r"^[a-z][a-z0-9_]*$"),
}
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WS = re.compile(r"\s+")


class TaxonomyError(ValueError):
    """A taxonomy file is missing or malformed; the message is one line naming the file."""


@dataclass
class Entry:
    """One visa, sector, country or organisation."""

    kind: str
    id: str
    country: str | None = None
    name: str = ""
    context: tuple[str, ...] = ()
    parent: str | None = None
    """The id this one is a sub-type or a finer field of (JP:HSP-1B -> JP:HSP-1, batteries -> other):
    alert rules and searches on the parent match it too."""
    rolls_up: bool = False
    """Whether it counts as its parent where tags are compared (Japan's HSP sub-types, O-1A/O-1B), as
    opposed to a sub-type kept distinct (KR:E-7-4, JP:SSW-1); finer sectors always roll up."""


@dataclass(frozen=True)
class Alias:
    """How an alias refers to an entry: `ambiguous` aliases need a context country; `cue` ones only give
    context; `subtype_ref` ones ("No. 1") count only after the entry's parent is named."""

    entry: Entry
    ambiguous: bool = False
    cue: bool = False
    subtype_ref: bool = False


def _key(text: str, fold: bool) -> str:
    """Lookup key of an alias or a matched text: whitespace removed; folded keys are also lower-cased and
    lose hyphens, so "Top-Tier Visa" and "top tier visa" are one name."""
    text = _WS.sub("", text)
    return text.replace("-", "").lower() if fold else text


@dataclass
class Lexicon:
    """All aliases of one kind, compiled into one regex, with dicts to resolve a match to entries."""

    kind: str
    exact: dict[str, list[Alias]] = field(default_factory=dict)
    folded: dict[str, list[Alias]] = field(default_factory=dict)
    _patterns: list[tuple[str, bool]] = field(default_factory=list)

    def add(self, alias: str, ref: Alias, case_sensitive: bool) -> None:
        """Register one alias; ASCII words without capitals in `en` match any case."""
        alias = alias.strip()
        if not alias:
            return
        table, fold = (self.exact, False) if case_sensitive else (self.folded, True)
        refs = table.setdefault(_key(alias, fold), [])
        if ref not in refs:
            refs.append(ref)
        self._patterns.append((alias, case_sensitive))

    def compile(self) -> None:
        """Group aliases by their first word (ASCII) or first character (other scripts).

        Matching then visits only word starts whose word begins some alias and tries a small trie
        regex for that group there: far faster than one big alternation tried at every position.
        """
        ascii_groups: dict[str, list[tuple[str, bool]]] = {}
        other_groups: dict[str, list[tuple[str, bool]]] = {}
        for alias, cs in self._patterns:
            first = _FIRST_WORD.match(alias)
            if first:
                key = first.group().lower()
                keys = [key]
                if first.end() == len(alias):  # a one-word alias may be met in the plural
                    keys += [key + "s", key + "es"]
                for k in keys:
                    ascii_groups.setdefault(k, []).append((alias, cs))
            else:
                other_groups.setdefault(alias[0], []).append((alias, cs))
        self._ascii_src = {k: _trie_regex(v) for k, v in ascii_groups.items()}
        _KEYS.update(self._ascii_src)
        self._other_src = {k: _trie_regex(v) for k, v in other_groups.items()}
        self._compiled: dict[tuple[bool, str], re.Pattern[str]] = {}
        self._other_first = (
            re.compile("[" + "".join(re.escape(c) for c in other_groups) + "]") if other_groups else None
        )

    def names(self) -> list[tuple[str, bool]]:
        """(alias, case-sensitive) of each alias that names an entry by itself (not an ambiguous one, a cue,
        a back-reference or an exclusion): what a keyword search for this kind looks for."""
        found: dict[tuple[str, bool], None] = {}
        for alias, case_sensitive in self._patterns:
            refs = self.exact.get(_key(alias, False), []) if case_sensitive else self.folded.get(_key(alias, True), [])
            if any(not (ref.ambiguous or ref.cue or ref.subtype_ref) for ref in refs):
                found[(alias, case_sensitive)] = None
        return list(found)

    def lookup(self, matched: str) -> list[Alias]:
        """Entries a matched text names (a trailing plural -s/-es is tried off as well)."""
        found: list[Alias] = []
        for variant in _plural_variants(matched):
            found += self.exact.get(_key(variant, False), [])
            found += self.folded.get(_key(variant, True), [])
            if found:
                break
        return found

    def _group(self, ascii_key: bool, key: str) -> re.Pattern[str] | None:
        """The compiled trie regex of one group (compiled on first use, so loading stays fast)."""
        pat = self._compiled.get((ascii_key, key))
        if pat is None:
            src = (self._ascii_src if ascii_key else self._other_src).get(key)
            if src is None:
                return None
            pat = self._compiled[(ascii_key, key)] = re.compile(src)
        return pat

    def finditer(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, matched text) of alias matches in normalised `text`, leftmost-longest, no overlaps."""
        found: list[tuple[int, int, str]] = []
        index = _word_index(text)
        # Only the words of this text that begin some alias (a set intersection, in C).
        for key in index.keys() & self._ascii_src.keys():
            pat = self._group(True, key)
            for start in index[key]:
                hit = pat.match(text, start)  # type: ignore[union-attr]
                if hit:
                    found.append((hit.start(), hit.end(), hit.group()))
        if self._other_first is not None and not text.isascii():
            for m in self._other_first.finditer(text):
                hit = self._group(False, m.group()).match(text, m.start())  # type: ignore[union-attr]
                if hit:
                    found.append((hit.start(), hit.end(), hit.group()))
        found.sort(key=lambda f: (f[0], -f[1]))
        last = -1
        for f in found:
            if f[0] >= last:
                last = f[1]
                yield f


_FIRST_WORD = re.compile(r"[A-Za-z0-9]+")
_WORD_SPLIT = re.compile(r"([A-Za-z0-9]+)")
_KEYS: set[str] = set()
"""First words of the aliases of every lexicon compiled so far: the only words worth indexing."""
_last_index: tuple[str, int, dict[str, list[int]]] = ("", 0, {})


def _word_index(text: str) -> dict[str, list[int]]:
    """Lower-cased ASCII word -> its start offsets in `text`, ascending, for words that begin an alias.

    Every lexicon scans the same text in turn, so the last text's index is kept: the scan and
    the lower-casing, most of the matching time on English text, are done once instead of four times.
    """
    global _last_index
    if _last_index[0] is text and _last_index[1] == len(_KEYS):  # _KEYS only grows
        return _last_index[2]
    # split() with a group gives [between, word, between, word, ..., between].
    lowered = text.isascii()
    parts = _WORD_SPLIT.split(text.lower() if lowered else text)
    words = parts[1::2]
    if words and not lowered:
        words = " ".join(words).lower().split(" ")  # ASCII words: one lower() for all of them
    index: dict[str, list[int]] = {}
    pos = done = 0  # pos = total length of parts[:done]
    # Most words begin no alias: skip them in C, and sum part lengths only up to the words kept.
    for k in compress(range(len(words)), map(_KEYS.__contains__, words)):
        i = 2 * k + 1
        pos += sum(map(len, parts[done:i]))
        done = i
        starts = index.get(words[k])
        if starts is None:
            index[words[k]] = [pos]
        else:
            starts.append(pos)
    _last_index = (text, len(_KEYS), index)
    return index


def _plural_variants(text: str) -> tuple[str, ...]:
    if text[-2:] in ("es", "ES"):
        return text, text[:-1], text[:-2]
    if text[-1:] in ("s", "S"):
        return text, text[:-1]
    return (text,)


def _tokens(alias: str, case_sensitive: bool) -> list[str]:
    """Regex pieces, one per alias character: case-insensitive letters become [xX], spaces flexible."""
    cjk = not alias.isascii()
    out = []
    for ch in alias:
        if not cjk and not case_sensitive and ch in " -":
            # Hyphen variants of a name: "Top-Tier", "Top Tier", "top tier" (and line breaks).
            out.append(r"[\s-]+")
        elif ch.isspace():
            # Korean writes 톱티어 비자 and 톱티어비자; English may break lines inside a name.
            out.append(r"\s?" if cjk else r"\s+")
        elif not case_sensitive and ch.isascii() and ch.isalpha():
            out.append(f"[{ch.lower()}{ch.upper()}]")
        else:
            out.append(re.escape(ch))
    return out


_END = ""  # trie key marking "an alias ends here"


def _trie_regex(patterns: list[tuple[str, bool]]) -> str:
    """One regex matching any of `patterns`, factored by common prefixes (tried longest first).

    Aliases ending with an ASCII letter or digit need a non-alphanumeric character after them (an
    optional plural -s/-es first); the caller only tries ASCII aliases at word starts. CJK edges
    have no boundary because Korean particles and Japanese text run straight on.
    """
    ascii_root: dict = {}
    other_root: dict = {}
    for alias, case_sensitive in patterns:
        root = ascii_root if alias[0] in _ASCII_ALNUM else other_root
        node = root
        for tok in _tokens(alias, case_sensitive):
            node = node.setdefault(tok, {})
        node[_END] = r"(?:e?s)?(?![A-Za-z0-9])" if alias[-1] in _ASCII_ALNUM else ""

    def build(node: dict) -> str:
        alts = [tok + build(child) for tok, child in node.items() if tok != _END]
        if _END in node:
            alts.append(node[_END])
        if len(alts) == 1:
            return alts[0]
        return "(?:" + "|".join(alts) + ")"

    parts = []
    if ascii_root:
        parts.append(build(ascii_root))
    if other_root:
        parts.append(build(other_root))
    return "|".join(f"(?:{p})" for p in parts)


@dataclass
class Taxonomy:
    """Entries and compiled lexicons of every kind."""

    entries: dict[str, dict[str, Entry]]
    lexicons: dict[str, Lexicon]
    files: list[Path]

    @classmethod
    def load(cls, extra_files: Sequence[Path] = ()) -> Taxonomy:
        """Read the bundled taxonomy and then each user file, in order; TaxonomyError on a bad file."""
        entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        lexicons = {k: Lexicon(k) for k in KINDS}
        files = [TAXONOMY_DIR / name for name in BUNDLED_FILES] + [Path(p) for p in extra_files]
        for path in files:
            _load_file(path, entries, lexicons)
        _check_parents(entries, files)
        for lex in lexicons.values():
            lex.compile()
        return cls(entries, lexicons, files)

    def ancestors(self, kind: str, eid: str) -> list[str]:
        """The parents of an id, nearest first (KR:E-7-4 -> [KR:E-7]; JP:HSP-1A -> [JP:HSP-1, JP:HSP])."""
        found: list[str] = []
        entry = self.entries[kind].get(eid)
        while entry is not None and entry.parent:
            found.append(entry.parent)
            entry = self.entries[kind].get(entry.parent)
        return found

    def descendants(self, kind: str, eid: str) -> tuple[str, ...]:
        """Every id below `eid` (its sub-types, theirs ...), in taxonomy order: what a rule on it also matches."""
        return tuple(other for other in self.entries[kind] if other != eid and eid in self.ancestors(kind, other))

    def compared_id(self, kind: str, eid: str) -> str:
        """The id a tag counts as where tags are compared: finer sectors as their top parent, visa
        sub-types marked `rolls_up` as their parent (JP:HSP-1B -> JP:HSP), other ids as themselves."""
        entry = self.entries[kind].get(eid)
        while entry is not None and entry.parent and (kind == "sector" or entry.rolls_up):
            eid = entry.parent
            entry = self.entries[kind].get(eid)
        return eid


def _check_parents(entries: dict[str, dict[str, Entry]], files: list[Path]) -> None:
    """Every `parent` names a known id of the same kind, and no id is its own ancestor."""
    where = ", ".join(str(f) for f in files[len(BUNDLED_FILES):]) or str(TAXONOMY_DIR)
    for kind, table in entries.items():
        for entry in table.values():
            seen = {entry.id}
            parent = entry.parent
            while parent:
                if parent not in table:
                    raise TaxonomyError(f"{where}: [[{kind}]] {entry.id}: unknown parent {parent!r}")
                if parent in seen:
                    raise TaxonomyError(f"{where}: [[{kind}]] {entry.id}: parents form a loop through {parent!r}")
                seen.add(parent)
                parent = table[parent].parent


def _load_file(path: Path, entries: dict[str, dict[str, Entry]], lexicons: dict[str, Lexicon]) -> None:
    """Add one TOML file's tables to `entries` and `lexicons`."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise TaxonomyError(f"{path}: taxonomy file not found") from None
    except OSError as e:
        raise TaxonomyError(f"{path}: cannot read taxonomy file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise TaxonomyError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise TaxonomyError(f"{path}: taxonomy file is not UTF-8") from None
    unknown = set(data) - set(KINDS)
    if unknown:
        raise TaxonomyError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; expected {', '.join(KINDS)}")
    for kind in KINDS:
        tables = data.get(kind, [])
        if not isinstance(tables, list):
            raise TaxonomyError(f"{path}: `{kind}` must be an array of tables ([[{kind}]])")
        for i, table in enumerate(tables, 1):
            _add_entry(path, kind, i, table, entries[kind], lexicons[kind])


def _add_entry(path: Path, kind: str, i: int, table: dict, entries: dict[str, Entry], lex: Lexicon) -> None:
    """Validate one [[kind]] table and register its aliases; a known id gets the extra aliases."""
    where = f"{path}: [[{kind}]] #{i}"
    known = {"id", "country", "name", "context", "parent", "rolls_up", *ALIAS_FIELDS}
    extra = set(table) - known
    if extra:
        raise TaxonomyError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    eid = table.get("id")
    if not isinstance(eid, str) or not _ID_RE[kind].match(eid):
        raise TaxonomyError(f"{where}: missing or malformed id {eid!r}")
    for name in ("country", "name", "parent"):
        if name in table and not isinstance(table[name], str):
            raise TaxonomyError(f"{where} ({eid}): `{name}` must be a string")
    if "rolls_up" in table and not isinstance(table["rolls_up"], bool):
        raise TaxonomyError(f"{where} ({eid}): `rolls_up` must be true or false")
    if "parent" in table and kind not in ("visa", "sector"):
        raise TaxonomyError(f"{where} ({eid}): only visas and sectors have a `parent`")
    for name in (*ALIAS_FIELDS, "context"):
        value = table.get(name, [])
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise TaxonomyError(f"{where} ({eid}): `{name}` must be a list of strings")
    entry = entries.get(eid)
    if entry is None:
        country = table.get("country") or (eid if kind == "country" else None)
        if kind in ("visa", "org") and not country:
            raise TaxonomyError(f"{where} ({eid}): missing `country`")
        if country and not re.fullmatch(r"[A-Z]{2}", country):
            raise TaxonomyError(f"{where} ({eid}): country {country!r} is not an ISO 3166 alpha-2 code")
        entry = Entry(kind, eid, country, table.get("name") or eid)
        entries[eid] = entry
    elif table.get("name"):
        entry.name = table["name"]
    if table.get("parent"):
        entry.parent = table["parent"]
    if "rolls_up" in table:
        entry.rolls_up = table["rolls_up"]
    entry.context = tuple(dict.fromkeys((*entry.context, *table.get("context", []))))
    if table.get("ambiguous") and not entry.context:
        raise TaxonomyError(f"{where} ({eid}): `ambiguous` aliases need a `context` list of countries")
    plain, ambiguous, cue = Alias(entry), Alias(entry, ambiguous=True), Alias(entry, cue=True)
    if table.get("subtype_refs") and not entry.parent:
        raise TaxonomyError(f"{where} ({eid}): `subtype_refs` need a `parent` to refer back to")
    for alias in table.get("en", []):
        # A capitalised acronym in `en` ("AI", "NHS") must keep its case to avoid "ai"/"nhs" in words.
        lex.add(alias, plain, case_sensitive=alias.isupper() and len(alias) <= 5)
    for alias in table.get("codes", []):
        lex.add(alias, plain, case_sensitive=True)
    for alias in table.get("ko", []) + table.get("ja", []):
        lex.add(alias, plain, case_sensitive=True)
    for alias in table.get("ambiguous", []):
        lex.add(alias, ambiguous, case_sensitive=alias.isupper() or not alias.isascii())
    for alias in table.get("cues", []):
        lex.add(alias, cue, case_sensitive=True)
    for alias in table.get("exclude", []):
        # Longer phrases that contain an alias and name nothing ("health insurance"): matched, then dropped.
        lex.add(alias, cue, case_sensitive=False)
    for alias in table.get("subtype_refs", []):
        lex.add(alias, Alias(entry, subtype_ref=True), case_sensitive=not alias.isascii())
