"""How results are printed: tables, JSON and CSV, and figures as people read them."""

import io
import json

import pytest

from monitor.output import format_figure, write_rows


@pytest.mark.parametrize(
    ("figure", "expected"),
    [
        ({"value": 46946.0, "unit": "count", "year": 2023, "visa": "JP:HSP"}, "46,946 count (2023, JP:HSP)"),
        ({"value": 20.8, "unit": "percent", "year": None, "visa": None}, "20.8 percent"),
        ({"value": 1.0, "unit": "years"}, "1 year"),
        ({"value": 5.0, "unit": "years", "year": 2027}, "5 years (2027)"),
        ({"value": 149860000.0, "unit": "KRW"}, "149,860,000 KRW"),
    ],
)
def test_format_figure(figure, expected):
    assert format_figure(figure) == expected


def test_write_rows_json_and_csv_keep_unicode_and_order():
    out = io.StringIO()
    write_rows(["id", "title"], [(1, "高度専門職")], "json", out)
    assert json.loads(out.getvalue()) == [{"id": 1, "title": "高度専門職"}]
    out = io.StringIO()
    write_rows(["id", "title"], [(1, "톱티어, 비자")], "csv", out)
    assert out.getvalue().splitlines() == ["id,title", '1,"톱티어, 비자"']


def test_table_shows_highlighted_words():
    out = io.StringIO()
    write_rows(["snippet"], [("a <mark>visa</mark> rule",)], "table", out, highlight=("<mark>", "</mark>"))
    assert "a visa rule" in out.getvalue() and "<mark>" not in out.getvalue()
