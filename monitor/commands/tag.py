"""The stages on their own: `monitor tag --jsonl`, `monitor retag`, `monitor extract`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from rich.progress import Progress

from monitor.commands import load
from monitor.config import ConfigError, find_config_path
from monitor.crawl import tag_rows
from pipelines.charset import decode_body
from pipelines.extract import extract_article
from pipelines.tagging import Tagger
from storage import open_db, writes
from storage.queries import count_articles, iter_articles_for_tagging


def register(subparsers: argparse._SubParsersAction) -> None:
    tag = subparsers.add_parser("tag", help="tag text from JSON lines: visas, sectors, figures")
    tag.add_argument("--jsonl", action="store_true", required=True,
                     help='read lines {"id", "text", "lang"?} and write one result line each')
    tag.add_argument("file", nargs="?", default="-", metavar="FILE", help="input file, or - for stdin (default)")
    tag.set_defaults(handler=handle_tag)

    retag = subparsers.add_parser("retag", help="re-tag every stored article with the current taxonomy")
    retag.set_defaults(handler=handle_retag)

    extract = subparsers.add_parser("extract", help="run the extraction stage on one saved page")
    extract.add_argument("file", nargs="?", default="-", metavar="FILE", help="HTML file, or - for stdin")
    extract.add_argument("--url", help="the page's URL, to resolve links and read site metadata")
    extract.add_argument("--format", choices=("text", "json"), default="text")
    extract.set_defaults(handler=handle_extract)


def load_tagger(args: argparse.Namespace) -> Tagger:
    """The tagger with the config's extra taxonomy files; no config file is needed for the bundled one."""
    try:
        files = load(args).taxonomy_files
    except ConfigError:
        if args.config or find_config_path(None).exists():
            raise
        files = []
    return Tagger.load(files)


def handle_tag(args: argparse.Namespace) -> int:
    tagger = load_tagger(args)
    bad = 0
    with _open_text(args.file) as stream:
        for number, request in _read_requests(stream):
            if isinstance(request, str):
                print(f"monitor tag: line {number}: {request}", file=sys.stderr)
                bad += 1
                continue
            result = tagger.tag(request["text"], request.get("lang"), country=request.get("country"))
            sys.stdout.write(json.dumps(result.to_json(request.get("id")), ensure_ascii=False) + "\n")
    return 2 if bad else 0


def _read_requests(stream: TextIO) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line number, request) for each non-blank line, or (line number, error message)."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"invalid JSON: {exc.msg}"
            continue
        if not isinstance(request, dict) or not isinstance(request.get("text"), str):
            yield number, 'expected an object with a string "text"'
        elif request.get("lang") is not None and not isinstance(request["lang"], str):
            yield number, '"lang" must be a string'
        elif request.get("country") is not None and not isinstance(request["country"], str):
            yield number, '"country" must be a string (the source\'s ISO country code)'
        else:
            yield number, request


def handle_retag(args: argparse.Namespace) -> int:
    config = load(args)
    tagger = Tagger.load(config.taxonomy_files)
    db = open_db(config.db_path)
    total = count_articles(db.conn)
    articles = iter_articles_for_tagging(db.conn)
    done = 0
    with Progress(transient=False) as progress:
        task = progress.add_task("re-tagging", total=total)
        while batch := list(islice(articles, 64)):
            pending = tagger.tag_many((text, lang, country) for _, text, lang, country in batch)
            for (article_id, *_), tags in zip(batch, pending, strict=True):
                mentions, figures = tag_rows(tags)
                writes.replace_tags(db, article_id, mentions, figures)
            done += len(batch)
            progress.update(task, completed=done)
    print(f"re-tagged {done} articles")
    return 0


def handle_extract(args: argparse.Namespace) -> int:
    if args.file == "-":
        content = sys.stdin.buffer.read()
    else:
        try:
            content = Path(args.file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    html, _encoding = decode_body(content, "text/html")
    extracted = extract_article(html, args.url)
    if args.format == "json":
        json.dump(extracted.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(extracted.text + "\n")
    return 0


class _open_text:
    """Open FILE or stdin ('-') as UTF-8 text; a missing file is a user error."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stream: TextIO | None = None

    def __enter__(self) -> TextIO:
        if self.name == "-":
            return sys.stdin
        try:
            self.stream = open(self.name, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot read {self.name}: {exc.strerror}") from None
        return self.stream

    def __exit__(self, *exc: object) -> None:
        if self.stream:
            self.stream.close()
