"""parse_json_api on a real Federal Register response and a GOV.UK search.json-shaped fixture."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipelines.feeds import parse_feed
from pipelines.jsonapi import MISSING, JsonApiSpec, parse_json_api, resolve_path
from pipelines.text import load_json

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FEDERAL_REGISTER = SHARED / "corpora" / "real-sources" / "federalregister-api-v1-documents-json_dhs-subset_2024-01.json"

FR_SPEC = JsonApiSpec(
    items_path="results",
    fields={
        "url": "html_url",
        "title": "title",
        "date": "publication_date",
        "summary": "abstract",
        "guid": "document_number",
    },
)
GOVUK_SPEC = JsonApiSpec(
    items_path="results",
    fields={"url": "link", "title": "title", "date": "public_timestamp", "summary": "description", "guid": "_id"},
)


def test_federal_register_real_response() -> None:
    if not FEDERAL_REGISTER.is_file():
        pytest.skip(f"Federal Register sample not found at {FEDERAL_REGISTER} (only in the team's shared folder)")
    content = FEDERAL_REGISTER.read_bytes()
    raw = json.loads(content)["results"]
    parsed = parse_json_api(content, "https://www.federalregister.gov/api/v1/documents.json", FR_SPEC)
    assert parsed.problem is None
    # count in the envelope (1893) is not len(results) (39): we follow the list
    assert len(parsed.items) == len(raw) == 39
    for item, doc in zip(parsed.items, raw, strict=True):
        assert item.url == doc["html_url"]
        assert item.url.startswith("https://www.federalregister.gov/documents/2024/01/")
        assert item.guid == doc["document_number"]
        assert item.title and item.title == " ".join(doc["title"].split())
        assert item.published_at is not None
        assert item.published_at.date() == date.fromisoformat(doc["publication_date"])
        assert date(2024, 1, 4) <= item.published_at.date() <= date(2024, 1, 17)
        assert (item.summary is None) == (not doc["abstract"])
    assert parsed.items[0].summary is not None and parsed.items[0].summary.startswith("In compliance with")


def test_govuk_search_json_relative_links() -> None:
    parsed = parse_json_api((FIXTURES / "govuk_search.json").read_bytes(), "https://www.gov.uk", GOVUK_SPEC)
    assert parsed.problem is None
    assert [i.url for i in parsed.items] == [
        "https://www.gov.uk/government/news/changes-to-the-skilled-worker-route",
        "https://www.gov.uk/government/news/high-potential-individual-visa-update",
    ]
    first = parsed.items[0]
    assert first.title == "Changes to the Skilled Worker route"
    assert first.summary == "The Home Office has announced changes to the Skilled Worker visa salary thresholds."
    assert first.guid == "/government/news/changes-to-the-skilled-worker-route"
    assert first.published_at is not None
    assert first.published_at.astimezone(UTC) == datetime(2025, 7, 20, 9, 15, tzinfo=UTC)


def test_nested_paths_top_level_lists_and_numbers() -> None:
    # Canada news API (format=json) nests entries under feed.entry; Home Affairs under d.data.
    canada = {"feed": {"entry": [{"title": "IRCC news", "link": "https://www.canada.ca/en/x.html",
                                  "publishedDate": "2025-07-20", "teaser": "<p>Express Entry <b>draw</b></p>"}]}}
    spec = JsonApiSpec(items_path="feed.entry",
                       fields={"url": "link", "title": "title", "date": "publishedDate", "summary": "teaser"})
    parsed = parse_json_api(json.dumps(canada), "https://api.io.canada.ca/", spec)
    assert parsed.items[0].summary == "Express Entry draw"  # HTML stripped
    assert parsed.items[0].published_at is not None and parsed.items[0].published_at.date() == date(2025, 7, 20)

    top = [{"links": [{"href": "/a"}], "ts": 1752998400, "id": 7, "meta": {"lang": "ja"}},
           {"links": [{"href": "/b"}], "ts": 1752998400000}]
    spec = JsonApiSpec(items_path="", fields={"url": "links.0.href", "date": "ts", "guid": "id", "lang": "meta.lang"})
    parsed = parse_json_api(json.dumps(top).encode(), "https://example.com/api/", spec)
    assert [i.url for i in parsed.items] == ["https://example.com/a", "https://example.com/b"]
    assert parsed.items[0].published_at == datetime(2025, 7, 20, 8, 0, tzinfo=UTC)
    assert parsed.items[1].published_at == parsed.items[0].published_at  # milliseconds
    assert parsed.items[0].guid == "7" and parsed.items[0].lang == "ja"


@pytest.mark.parametrize(
    ("content", "spec", "problem"),
    [
        (b"{not json", GOVUK_SPEC, "invalid JSON"),
        (b"", GOVUK_SPEC, "invalid JSON"),
        (b'{"results": {"a": 1}}', GOVUK_SPEC, "items_path 'results' is a JSON object, not a list"),
        (b'{"data": []}', GOVUK_SPEC, "items_path 'results' not found"),
        (b'{"results": []}', JsonApiSpec(items_path="", fields={"url": "link"}), "the top level is a JSON object"),
        (b'{"results": [{"link": 5}, {"href": "/x"}]}', GOVUK_SPEC, "gave no http(s) link in any of 2 items"),
        (b'{"results": []}', JsonApiSpec(items_path="results", fields={"title": "t"}), "fields.url is required"),
        (b'{"results": []}', JsonApiSpec(items_path="results", fields={"url": "u", "body": "b"}), "unknown field"),
        (b"[" * 100_000 + b"]" * 100_000, JsonApiSpec(fields={"url": "u"}), None),
        (b'\xff\xfe{"results": 1}', GOVUK_SPEC, None),
    ],
)
def test_bad_responses_are_problems(content: bytes, spec: JsonApiSpec, problem: str | None) -> None:
    parsed = parse_json_api(content, "https://www.gov.uk", spec)
    assert parsed.items == []
    assert parsed.problem and "\n" not in parsed.problem
    if problem:
        assert problem in parsed.problem


def test_empty_list_is_not_a_problem() -> None:
    parsed = parse_json_api(b'{"results": []}', "https://www.gov.uk", GOVUK_SPEC)
    assert parsed.items == [] and parsed.problem is None


def test_bad_items_are_skipped_not_fatal() -> None:
    doc = {"results": ["text", None, {"link": "javascript:alert(1)"}, {"link": "/ok", "title": ["not", "text"]}]}
    parsed = parse_json_api(json.dumps(doc), "https://www.gov.uk", GOVUK_SPEC)
    assert parsed.problem is None
    assert [(i.url, i.title) for i in parsed.items] == [("https://www.gov.uk/ok", None)]


def test_resolve_path() -> None:
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert resolve_path(doc, "a.b.1.c") == 2
    assert resolve_path(doc, "a.b.-1.c") == 2
    assert resolve_path(doc, "") is doc
    assert resolve_path(doc, "a.b.5.c") is MISSING
    assert resolve_path(doc, "a.x") is MISSING
    assert resolve_path(doc, "a.b.c") is MISSING  # a key into a list
    assert resolve_path({"a": None}, "a") is None  # present but null is not missing


def test_load_json_replaces_lone_surrogates_everywhere() -> None:
    # "\ud800" is valid JSON but no UTF-8 store (SQLite, email) accepts the string it gives
    raw = b'{"k\\ud800": ["a\\udc00b", {"t": "\\ud83d\\ude00 \\udfff"}], "n": 1}'
    assert load_json(raw) == {"k\ufffd": ["a\ufffdb", {"t": "\U0001f600 \ufffd"}], "n": 1}
    assert load_json(raw.decode()) == load_json(raw)
    assert load_json(b'"\\ud800"') == "\ufffd"
    deep = b"[" * 500 + b'"\\ud800"' + b"]" * 500  # no recursion in the scrubbing
    inner = load_json(deep)
    for _ in range(500):
        inner = inner[0]
    assert inner == "\ufffd"


def test_lone_surrogates_in_fields_and_paths() -> None:
    doc = b'{"results\\udc00": [{"link": "/a\\ud800", "title": "Visa \\ud800", "description": "<p>x\\udfff</p>"}]}'
    spec = JsonApiSpec(items_path="results\ufffd", fields=GOVUK_SPEC.fields)
    parsed = parse_json_api(doc, "https://www.gov.uk", spec)
    assert parsed.problem is None
    item = parsed.items[0]
    assert (item.url, item.title, item.summary) == ("https://www.gov.uk/a\ufffd", "Visa \ufffd", "x\ufffd")
    feed = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"url": "/b\\ud800", "title": "t\\udc00"}]}'
    parsed = parse_feed(feed, "https://example.com/feed.json")
    assert [(i.url, i.title) for i in parsed.items] == [("https://example.com/b\ufffd", "t\ufffd")]
