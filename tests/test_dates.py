"""parse_date on every form feeds, boards and APIs use, and on junk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipelines.dates import parse_date

KST = timezone(timedelta(hours=9))
BST = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 822 (RSS)
        ("Sun, 20 Jul 2025 10:00:00 GMT", datetime(2025, 7, 20, 10, 0, tzinfo=UTC)),
        ("Sun, 20 Jul 2025 10:00:00 +0900", datetime(2025, 7, 20, 10, 0, tzinfo=KST)),
        ("20 Jul 2025 10:00 +0100", datetime(2025, 7, 20, 10, 0, tzinfo=BST)),
        ("Sun, 20 Jul 2025 10:00:00 EST", datetime(2025, 7, 20, 10, 0, tzinfo=timezone(timedelta(hours=-5)))),
        ("Sun, 20 Jul 25 10:00:00 +0000", datetime(2025, 7, 20, 10, 0, tzinfo=UTC)),
        # -0000 means "zone unknown": naive
        ("Sun, 20 Jul 2025 10:00:00 -0000", datetime(2025, 7, 20, 10, 0)),
        # ISO 8601
        ("2025-07-20T10:00:00Z", datetime(2025, 7, 20, 10, 0, tzinfo=UTC)),
        ("2025-07-20T10:00:00+09:00", datetime(2025, 7, 20, 10, 0, tzinfo=KST)),
        ("2025-07-20T10:00:00.250+09:00", datetime(2025, 7, 20, 10, 0, 0, 250000, tzinfo=KST)),
        ("2025-07-20 10:00:00+0900", datetime(2025, 7, 20, 10, 0, tzinfo=KST)),
        ("2025-07-20T10:00:00", datetime(2025, 7, 20, 10, 0)),
        ("2025-07-20", datetime(2025, 7, 20)),
        ("20250720", datetime(2025, 7, 20)),
        # boards
        ("2025.07.20", datetime(2025, 7, 20)),
        ("2025.7.20", datetime(2025, 7, 20)),
        ("2025. 7. 20.", datetime(2025, 7, 20)),
        ("2025/07/20", datetime(2025, 7, 20)),
        ("2025-07-20 (일)", datetime(2025, 7, 20)),
        ("2025.07.20 14:30", datetime(2025, 7, 20, 14, 30)),
        ("2025-07-20 14:30:05 +09:00", datetime(2025, 7, 20, 14, 30, 5, tzinfo=KST)),
        ("등록일 2025.07.20 조회 1523", datetime(2025, 7, 20)),
        (" \n\t2025/07/20\n", datetime(2025, 7, 20)),
        # Chinese/Japanese and Korean calendars
        ("2025年7月20日", datetime(2025, 7, 20)),
        ("2025年07月20日 14:30", datetime(2025, 7, 20, 14, 30)),
        ("2025년 7월 20일", datetime(2025, 7, 20)),
        ("2025년7월20일 14:30", datetime(2025, 7, 20, 14, 30)),
        # full-width digits and punctuation
        ("２０２５年７月２０日", datetime(2025, 7, 20)),
        ("２０２５．０７．２０", datetime(2025, 7, 20)),
        ("令和７年７月２０日", datetime(2025, 7, 20)),
        # Japanese eras
        ("令和7年7月20日", datetime(2025, 7, 20)),
        ("令和元年5月1日", datetime(2019, 5, 1)),
        ("平成31年4月30日", datetime(2019, 4, 30)),
        ("平成元年1月8日", datetime(1989, 1, 8)),
        ("昭和64年1月7日", datetime(1989, 1, 7)),
        ("大正15年12月24日", datetime(1926, 12, 24)),
        ("明治45年7月29日", datetime(1912, 7, 29)),
        ("令和 7 年 7 月 20 日", datetime(2025, 7, 20)),
        ("㋿7年7月20日", datetime(2025, 7, 20)),
        ("R7.7.20", datetime(2025, 7, 20)),
        ("H31.4.30", datetime(2019, 4, 30)),
        ("掲載日：令和7年7月18日", datetime(2025, 7, 18)),
        # English prose dates (pages, some APIs)
        ("July 20, 2025", datetime(2025, 7, 20)),
        ("Jul. 20, 2025", datetime(2025, 7, 20)),
        ("20 July 2025", datetime(2025, 7, 20)),
        ("Published 20 July 2025", datetime(2025, 7, 20)),
        ("July 20, 2025 2:30 PM", datetime(2025, 7, 20, 14, 30)),
        ("July 20, 2025 12:05 am", datetime(2025, 7, 20, 0, 5)),
        # an earlier match that is no date (a document number) does not hide the real one
        ("문서번호 2023-11-45 등록일 2025.07.20", datetime(2025, 7, 20)),
        ("No. 1024.12.01 / 2025-07-20", datetime(2025, 7, 20)),
        ("令和7年13月1日 改正 令和7年7月20日 施行", datetime(2025, 7, 20)),
        ("R7.13.1 R7.7.20", datetime(2025, 7, 20)),
        ("2025년 13월 1일, 2025년 7월 20일", datetime(2025, 7, 20)),
        ("February 30, 2025 or March 1, 2025", datetime(2025, 3, 1)),
        ("30 Feb 2025, 1 Mar 2025", datetime(2025, 3, 1)),
    ],
)
def test_parse_date(text, expected):
    parsed = parse_date(text)
    assert parsed == expected
    # equal aware datetimes can differ in zone: check the zone itself, and naivety
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)
    if expected.tzinfo is not None:
        assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "",
        "   ",
        "not a date",
        "0000-00-00",
        "2025-13-45",
        "2025.02.30",
        "令和7年13月1日",
        "Mon, 99 Jul 2025 10:00:00 GMT",
        "2025.07",
        "2025",
        "12345678901234567890",
        "\x00\xff\ud800",
        "9999년 99월 99일",
        "R7.7",
        "x" * 100_000,
        123,
    ],
)
def test_junk_gives_none(junk):
    assert parse_date(junk) is None


def test_zone_only_counts_after_a_time():
    assert parse_date("2025.07.20 Zürich").tzinfo is None
    assert parse_date("2025.07.20 10:00 Z") == datetime(2025, 7, 20, 10, 0, tzinfo=UTC)
