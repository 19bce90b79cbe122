"""parse_listing and validate_listing_spec on board fixtures (K2Web, onclick, Japanese era dates)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipelines.listing import NOTHING_MATCHED, ListingSpec, parse_listing, validate_listing_spec

FIXTURES = Path(__file__).parent / "fixtures" / "sources"

K2WEB = ListingSpec(
    item="table.artclTable tbody tr",
    link="td._artclTdTitle a.artclLinkView",
    title="td._artclTdTitle a.artclLinkView strong",
    date="td._artclTdRdate",
)
ONCLICK = ListingSpec(
    item="tr.board_line",
    link="a[onclick*='boardDetailR']",
    date="td:last-child",
    link_attr="onclick",
    link_regex=r"boardDetailR\('(\d+)'\)",
    link_template="https://www.hikorea.go.kr/board/BoardNtcDetailR.pt?NTCCTT_SEQ={1}",
)


def page(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def day(item) -> date | None:
    return item.published_at.date() if item.published_at else None


def test_k2web_board() -> None:
    parsed = parse_listing(page("k2web_board.html"), "https://www.moj.go.kr/moj/221/subview.do", K2WEB)
    assert parsed.problem is None
    assert parsed.title == "보도자료 | 법무부"
    # the pinned notice repeated further down is kept once; the row with no href is skipped
    assert [i.url for i in parsed.items] == [
        "https://www.moj.go.kr/bbs/moj/182/580100/artclView.do",
        "https://www.moj.go.kr/bbs/moj/182/581234/artclView.do",
        "https://www.moj.go.kr/bbs/moj/182/581200/artclView.do?utm_source=x",
    ]
    pinned, toptier, seasonal = parsed.items
    # title from <strong> only: the "새글" (new) badge in the link is left out
    assert pinned.title == "외국인 전문인력 비자(E-7) 제도 개선 안내"
    assert toptier.title == "법무부, 우수인재 유치를 위한 '톱티어 비자' 신설 추진"
    assert day(toptier) == date(2025, 7, 20)  # 2025.07.20
    assert day(seasonal) == date(2025, 7, 18)  # 2025-07-18


def test_title_defaults_to_link_text() -> None:
    spec = ListingSpec(item=K2WEB.item, link=K2WEB.link, date=K2WEB.date)
    parsed = parse_listing(page("k2web_board.html"), "https://www.moj.go.kr/moj/221/subview.do", spec)
    assert parsed.items[0].title == "외국인 전문인력 비자(E-7) 제도 개선 안내 새글"


def test_onclick_board_builds_links_from_template() -> None:
    parsed = parse_listing(page("onclick_board.html"), "https://www.hikorea.go.kr/board/BoardNtcListR.pt", ONCLICK)
    assert parsed.problem is None
    assert [(i.url, i.title, day(i)) for i in parsed.items] == [
        (
            "https://www.hikorea.go.kr/board/BoardNtcDetailR.pt?NTCCTT_SEQ=4471",
            "고용허가제 외국인근로자 체류기간 연장 안내",
            date(2025, 7, 20),
        ),
        (
            "https://www.hikorea.go.kr/board/BoardNtcDetailR.pt?NTCCTT_SEQ=4468",
            "Notice on the D-10 job-seeker visa points table",
            date(2025, 7, 15),
        ),
    ]


@pytest.mark.parametrize(
    ("regex", "template", "expected"),
    [
        # named group, relative template resolved against the page URL
        (r"boardDetailR\('(?P<id>\d+)'\)", "/board/BoardNtcDetailR.pt?NTCCTT_SEQ={id}", "4471"),
        # {id} falls back to group 1
        (r"'(\d+)'", "BoardNtcDetailR.pt?NTCCTT_SEQ={id}", "4471"),
        # several groups, K2Web jf_viewArtcl style
        (r"boardDetailR\('(\d)(\d+)'\)", "/board/BoardNtcDetailR.pt?NTCCTT_SEQ={1}{2}", "4471"),
        # no template: group 1 is the link
        (r"boardDetailR\('(\d+)'\)", None, None),
    ],
)
def test_regex_and_template_variants(regex: str, template: str | None, expected: str | None) -> None:
    spec = ListingSpec(item="tr.board_line", link="a", link_attr="onclick", link_regex=regex, link_template=template)
    parsed = parse_listing(page("onclick_board.html"), "https://www.hikorea.go.kr/board/BoardNtcListR.pt", spec)
    first = parsed.items[0].url
    if expected is None:
        assert first == "https://www.hikorea.go.kr/board/4471"
    else:
        assert first == f"https://www.hikorea.go.kr/board/BoardNtcDetailR.pt?NTCCTT_SEQ={expected}"


def test_japanese_board_with_era_dates() -> None:
    spec = ListingSpec(item="ul.dateList01 > li", link="div.txt > a", date="div.date")
    parsed = parse_listing(page("isa_press.html"), "https://www.moj.go.jp/isa/publications/press/index.html", spec)
    assert parsed.problem is None
    assert [(i.url, day(i)) for i in parsed.items] == [
        ("https://www.moj.go.jp/isa/publications/press/13_00045.html", date(2025, 7, 20)),  # 令和7年7月20日
        ("https://www.moj.go.jp/isa/publications/press/13_00044.html", date(2025, 7, 3)),  # 2025年7月3日
        ("https://www.moj.go.jp/isa/content/001400000.pdf", date(2019, 5, 1)),  # 令和元年5月1日
    ]
    assert parsed.items[0].title == "「高度専門職」の在留資格による認定件数について"


def test_redesigned_page_is_flagged() -> None:
    redesigned = "<html><body><div class='board-list'><a href='/x'>news</a></div></body></html>"
    parsed = parse_listing(redesigned, "https://www.moj.go.kr/moj/221/subview.do", K2WEB)
    assert parsed.problem == NOTHING_MATCHED
    assert parsed.items == []


def test_rows_without_links_are_flagged_too() -> None:
    spec = ListingSpec(item="table.artclTable tbody tr", link="a.noSuchClass")
    parsed = parse_listing(page("k2web_board.html"), "https://www.moj.go.kr/moj/221/subview.do", spec)
    assert parsed.problem is not None and parsed.problem.startswith(NOTHING_MATCHED)
    assert "5 rows" in parsed.problem


def test_empty_and_broken_pages_do_not_raise() -> None:
    assert parse_listing("", "https://example.com/", K2WEB).problem == "empty page"
    broken = "<table class='artclTable'><tbody><tr><td class='_artclTdTitle'><a class='artclLinkView' href='/a'>x"
    parsed = parse_listing(broken, "https://example.com/board/", K2WEB)
    assert [i.url for i in parsed.items] == ["https://example.com/a"]
    assert parsed.items[0].title == "x"  # the title selector found no <strong>: link text instead
    junk = "\x00\ufffd<<<>>>&&&;" * 100
    assert parse_listing(junk, "https://example.com/", K2WEB).problem == NOTHING_MATCHED


@pytest.mark.parametrize(
    ("base_href", "expected"),
    [
        ("http://other.example/news/", "http://other.example/news/view.do?id=1"),
        ("/bbs/moj/182/", "https://www.moj.go.kr/bbs/moj/182/view.do?id=1"),  # relative: against the page URL
        ("javascript:void(0)", "https://www.moj.go.kr/moj/221/view.do?id=1"),  # not http(s): ignored
        ("", "https://www.moj.go.kr/moj/221/view.do?id=1"),
    ],
)
def test_base_href_is_the_base_for_links(base_href: str, expected: str) -> None:
    html = (
        f'<html><head><base href="{base_href}"><base href="http://second.example/"></head><body>'
        '<table><tr><td><a href="view.do?id=1">x</a></td></tr>'
        '<tr><td><a href="https://abs.example/a">y</a></td></tr></table></body></html>'
    )
    parsed = parse_listing(html, "https://www.moj.go.kr/moj/221/subview.do", ListingSpec(item="tr"))
    assert [i.url for i in parsed.items] == [expected, "https://abs.example/a"]


def test_javascript_and_other_schemes_are_skipped() -> None:
    html = (
        "<ul><li><a href='javascript:void(0)'>a</a></li><li><a href='mailto:x@y'>b</a></li>"
        "<li><a href='https://ok.example/1'>c</a></li></ul>"
    )
    parsed = parse_listing(html, "https://example.com/", ListingSpec(item="li"))
    assert [i.url for i in parsed.items] == ["https://ok.example/1"]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (ListingSpec(item="td["), "invalid CSS selector 'td['"),
        (ListingSpec(item="tr", link="a:::x"), "invalid CSS selector 'a:::x'"),
        (ListingSpec(item="tr", date="td:nth-child(x)"), "invalid CSS selector 'td:nth-child(x)'"),
        (ListingSpec(item="  "), "item selector is empty"),
        (ListingSpec(item="tr", link_regex="boardDetailR\\(("), "invalid link_regex"),
        (ListingSpec(item="tr", link_regex=r"'(\d+)'", link_template="/x/{2}"), "has no such group"),
        (ListingSpec(item="tr", link_template="/x/{1}"), "has no such group"),
        (ListingSpec(item="tr", link_regex=r"(\d+)", link_template="/x/{1"), "invalid link_template"),
    ],
)
def test_validate_listing_spec_errors(spec: ListingSpec, error: str) -> None:
    problem = validate_listing_spec(spec)
    assert problem is not None and error in problem
    assert "\n" not in problem
    # and parse_listing reports the same instead of raising
    assert parse_listing("<p>x</p>", "https://example.com/", spec).problem == problem


@pytest.mark.parametrize("spec", [K2WEB, ONCLICK, ListingSpec(item="li"), ListingSpec(item="tr", link=None)])
def test_validate_listing_spec_accepts_good_specs(spec: ListingSpec) -> None:
    assert validate_listing_spec(spec) is None
