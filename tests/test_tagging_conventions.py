"""The tagging conventions of ../shared/specs/tagging-conventions.md (issue 13), one rule per test,
plus figure metrics, parent ids in rules and searches, and the real-text dev set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.tagging import Tagger, TaxonomyError
from pipelines.tagging.metrics import MetricVocabulary
from storage import open_db, open_readonly
from storage.alerts import FigureFilter, RuleConditions, condition_clauses, conditions_hash
from storage.queries import SearchFilters, search_articles
from storage.schema import SCHEMA_VERSION
from storage.writes import content_hash, store_article
from tests.conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpora" / "article-extraction" / "ground-truth.json"


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.load()


def visas(tagger: Tagger, text: str, lang: str = "en", country: str | None = None) -> list[tuple[str, str]]:
    return [(v.text, v.id) for v in tagger.tag(text, lang, country=country).visas]


def sectors(tagger: Tagger, text: str, lang: str = "en") -> list[tuple[str, str]]:
    return [(s.text, s.sector) for s in tagger.tag(text, lang).sectors]


# ---------------------------------------------------------------- visas
@pytest.mark.parametrize(("text", "country", "expected"), [
    # A short form counts once the country is clear: named in the text ...
    ("Singapore raised the EP qualifying salary again.", None, [("EP", "SG:EP")]),
    ("In China, the R Visa, also called the Talent Visa, is for top talent.", None,
     [("R Visa", "CN:R"), ("Talent Visa", "CN:R")]),
    ("Taiwan's Gold Card holders rose to 10,000.", None, [("Gold Card", "TW:GOLD-CARD")]),
    # ... by the source's country ...
    ("The EP qualifying salary rose to S$5,600 a month.", "SG", [("EP", "SG:EP")]),
    # ... or by another visa of that country the text names.
    ("Companies hire on S Passes and EPs.", None, [("S Passes", "SG:S-PASS"), ("EPs", "SG:EP")]),
    # Abbreviations that name one status only count anywhere.
    ("HSFP holders can bring their parents.", None, [("HSFP", "JP:HSP")]),
])
def test_short_forms_count_once_the_country_is_clear(tagger, text, country, expected):
    assert visas(tagger, text, country=country) == expected


@pytest.mark.parametrize("text", [
    "The EP qualifying salary rose again.",         # no country: an EP could be a record
    "The bank's gold card offers lounge access.",
    "Applicants need a talent visa of some kind.",
])
def test_short_forms_without_a_clear_country_are_not_visas(tagger, text):
    assert visas(tagger, text) == []


def test_quoted_and_hyphen_variants_count(tagger):
    found = visas(tagger, "Workers under the 'Top Tier' visa, the \"top-tier\" visa and the Top Tier Visa.")
    assert [vid for _, vid in found] == ["KR:TOP-TIER"] * 3
    assert [text for text, _ in found][:2] == ["Top Tier", "top-tier"]
    assert visas(tagger, 'The UAE grants "golden" visas to doctors.') == [("golden", "AE:GOLDEN-VISA")]


def test_top_tier_as_an_adjective_is_not_a_visa(tagger):
    assert visas(tagger, "Singapore wants top-tier candidates from top-tier universities.") == []


def test_a_subtype_reference_counts_after_its_parent(tagger):
    text = "Japan's Specified Skilled Worker program has two categories; the No. 1 category allows five years."
    assert visas(tagger, text) == [("Specified Skilled Worker program", "JP:SSW"), ("the No. 1 category", "JP:SSW-1")]
    later = visas(tagger, "特定技能の受入れが進み、2号への移行も始まった。", "ja")
    assert later == [("特定技能", "JP:SSW"), ("2号", "JP:SSW-2")]
    # With no parent named before it, "No. 1" is only a rank.
    assert visas(tagger, "The No. 1 category allows five years.") == []


@pytest.mark.parametrize(("text", "lang", "expected"), [
    ("Apply for an Employment Pass (EP) in Singapore.", "en", [("Employment Pass (EP)", "SG:EP")]),
    ("숙련기능인력(E-7-4) 전환 인원을 늘린다.", "ko", [("숙련기능인력(E-7-4)", "KR:E-7-4")]),
    ("The Skills in Demand (Subclass 482) visa replaced the Temporary Skill Shortage (Subclass 482) visa.", "en",
     [("Skills in Demand (Subclass 482)", "AU:SID-482"), ("Temporary Skill Shortage (Subclass 482)", "AU:TSS")]),
])
def test_an_attached_parenthetical_code_belongs_to_the_name(tagger, text, lang, expected):
    assert visas(tagger, text, lang) == expected


def test_ryugaku_counts_as_a_status_of_residence_but_students_do_not(tagger):
    assert visas(tagger, "「留学」の在留資格を持つ留学生は33万人。", "ja") == [("「留学」の在留資格", "JP:STUDENT")]
    assert visas(tagger, "留学生の就職を支援する。", "ja") == []


def test_subtypes_keep_a_parent_and_roll_up_where_the_spec_says(tagger):
    taxonomy = tagger.taxonomy
    assert taxonomy.ancestors("visa", "JP:HSP-1B") == ["JP:HSP-1", "JP:HSP"]
    assert {"JP:HSP-1", "JP:HSP-1A", "JP:HSP-1B", "JP:HSP-1C", "JP:HSP-2"} <= set(tagger.subtypes("visa", "JP:HSP"))
    assert set(tagger.subtypes("visa", "US:O-1")) == {"US:O-1A", "US:O-1B"}
    assert taxonomy.compared_id("visa", "JP:HSP-1B") == "JP:HSP"
    assert taxonomy.compared_id("visa", "US:L-1A") == "US:L-1"
    # Korean sub-codes and SSW (i)/(ii) have a parent for rules but stay distinct.
    assert taxonomy.ancestors("visa", "KR:E-7-4") == ["KR:E-7"]
    assert taxonomy.compared_id("visa", "KR:E-7-4") == "KR:E-7-4"
    assert taxonomy.compared_id("visa", "JP:SSW-2") == "JP:SSW-2"


@pytest.mark.parametrize(("toml", "message"), [
    ('[[visa]]\nid = "XX:A"\ncountry = "XX"\nparent = "XX:NOPE"\n', "unknown parent 'XX:NOPE'"),
    ('[[visa]]\nid = "XX:A"\ncountry = "XX"\nparent = "XX:B"\n[[visa]]\nid = "XX:B"\ncountry = "XX"\n'
     'parent = "XX:A"\n', "loop"),
    ('[[visa]]\nid = "XX:A"\ncountry = "XX"\nsubtype_refs = ["No. 1"]\n', "need a `parent`"),
    ('[[sector]]\nid = "quantum"\nrolls_up = "yes"\n', "`rolls_up` must be true or false"),
])
def test_bad_parents_are_one_line_taxonomy_errors(tmp_path: Path, toml, message):
    extra = tmp_path / "extra.toml"
    extra.write_text(toml, encoding="utf-8")
    with pytest.raises(TaxonomyError, match=message) as err:
        Tagger.load([extra])
    assert "\n" not in str(err.value)


def test_no_visa_on_non_immigration_news(tagger):
    """The 181 general news pages of the article-extraction corpus name no visa."""
    if not CORPUS.exists():
        pytest.skip(f"shared article-extraction corpus not found at {CORPUS}")
    pages = json.loads(CORPUS.read_text(encoding="utf-8"))
    tagged = [(page, v.text) for page, gold in pages.items()
              for v in tagger.tag(gold.get("articleBody") or "", None).visas]
    assert tagged == []


# ---------------------------------------------------------------- sectors
@pytest.mark.parametrize(("text", "lang"), [
    ("Students at universities and colleges earned PhD degrees.", "en"),
    ("Research institutes and hospitals hired welders, painters and truck drivers.", "en"),
    ("박사 학위를 가진 유학생이 대학과 연구기관, 병원에 지원했다.", "ko"),
    ("留学生は大学や日本語学校で学ぶ。", "ja"),
    ("The health insurance premium and the health minister's plan.", "en"),
])
def test_credentials_places_of_study_institutions_and_trades_are_not_sectors(tagger, text, lang):
    assert sectors(tagger, text, lang) == []


def test_health_and_care_workers_are_two_sectors(tagger):
    assert sectors(tagger, "The ministry said health and care workers may apply.") == [
        ("health", "healthcare"), ("care workers", "caregiving")]


def test_workers_of_a_facility_count(tagger):
    assert [s for _, s in sectors(tagger, "Shipyard workers and hospital workers went on strike.")] == [
        "shipbuilding", "healthcare"]


def test_industry_lists_get_finer_ids_that_roll_up_to_other(tagger):
    found = sectors(tagger, "반도체·디스플레이·이차전지·로봇·방산 분야 인재", "ko")
    assert [s for _, s in found] == ["semiconductors", "displays", "batteries", "robotics", "defence"]
    assert {tagger.taxonomy.compared_id("sector", s) for _, s in found[1:]} == {"other"}
    assert {"batteries", "displays", "robotics", "defence"} <= set(tagger.subtypes("sector", "other"))


def test_academic_fields_that_describe_talent_count(tagger):
    assert sectors(tagger, "He majored in engineering.") == [("engineering", "engineering")]
    assert sectors(tagger, "공대 출신 인재", "ko") == [("공대", "engineering")]
    assert [s for _, s in sectors(tagger, "Candidates from STEM occupations and data scientists.")] == [
        "stem", "it_software"]


# ---------------------------------------------------------------- figures: years
@pytest.mark.parametrize(("text", "lang", "expected"), [
    ("USCIS received 470,342 registrations for FY 2025.", "en", [("470,342", 2025)]),
    ("Workers arrived in fiscal 2024: 310,000 of them.", "en", [("310,000", 2024)]),
    ("令和7年度の受入れ見込数は5万人とする。", "ja", [("5万人", 2025)]),
    ("As of June 2020, 15,000 people held the status.", "en", [("15,000", 2020)]),
    ("Japan plans to accept up to 820,000 workers by 2030.", "en", [("820,000", 2030)]),
    ("The quota rose from 1,000 in 2020 to 2,000 last year.", "en", [("1,000", 2020), ("2,000", None)]),
    ("E-9 인력은 2021년 5만2000명에서 지난해 6만9000명으로 늘었다.", "ko", [("5만2000명", 2021), ("6만9000명", None)]),
    ("Since 2018, 5,000 workers have arrived under the scheme.", "en", [("5,000", None)]),
    ("2018년 이후 누적 5만 명이 입국했다.", "ko", [("5만 명", None)]),
    ("'23년 선발 인원을 3,000명으로 확대한다.", "ko", [("3,000명", 2023)]),
    ("In 2024 the government extended the stay to five years.", "en", [("five years", None)]),
])
def test_figure_years_follow_the_sentence_rules(tagger, text, lang, expected):
    assert [(f.text, f.year) for f in tagger.tag(text, lang).figures] == expected


@pytest.mark.parametrize(("text", "lang"), [
    ("Care workers (SoC code 6135) and senior care workers (SoC code 6136).", "en"),
    ("6.建設業 7.造船・舶用業", "ja"),
    ("출입국관리법 제18조 제2항에 따라 시행한다.", "ko"),
])
def test_codes_and_list_numbers_are_not_figures(tagger, text, lang):
    assert tagger.tag(text, lang).figures == []


def test_points_after_a_suffix_je_are_figures(tagger):
    assert [f.text for f in tagger.tag("점수제 200점 이상이어야 한다.", "ko").figures] == ["200점"]


# ---------------------------------------------------------------- figures: metrics
@pytest.mark.parametrize(("text", "lang", "metrics"), [
    ("Recognised cases surged from 313 in 2012 to 46,946 in 2023.", "en", ["recognitions", "recognitions"]),
    ("Korea set a quota of 35,000 for the E-7-4 visa.", "en", ["quota"]),
    ("USCIS received 308,613 registrations and selected 87,500.", "en", ["applications", "approvals"]),
    ("Taiwan has issued nearly 600 Employment Gold Cards.", "en", ["issuances"]),
    ("EP holders numbered 187,300 last December.", "en", ["holders"]),
    ("Farmers hired 310,000 workers through the H-2A program.", "en", ["workers"]),
    ("The H-1B program has an annual cap of 65,000 visas.", "en", ["cap"]),
    ("The salary threshold rose to £41,700.", "en", ["salary_threshold"]),
    ("Candidates must score at least 70 points.", "en", ["points_threshold"]),
    ("A new $100,000 fee applies to petitions.", "en", ["fee"]),
    ("Processing can take over 60 business days.", "en", ["processing_time"]),
    ("Graduates can stay for up to two years.", "en", ["duration"]),
    ("Applicants pick one of 86 job fields.", "en", ["other"]),
    ("年収2,000万円以上であること。", "ja", ["salary_threshold"]),
    ("高度専門職の認定件数は2万件を超えた。", "ja", ["recognitions"]),
    ("고용허가 인력 도입 규모는 13만명으로 결정됐다.", "ko", ["quota"]),
])
def test_figures_know_what_they_count(tagger, text, lang, metrics):
    assert [f.metric for f in tagger.tag(text, lang).figures] == metrics


def test_a_table_under_one_heading_keeps_its_metric(tagger):
    text = "在留資格別の在留者数を見ると、「永住者」が77万人です。「留学」は33万人です。"
    assert [f.metric for f in tagger.tag(text, "ja").figures] == ["holders", "holders"]


def test_the_metric_vocabulary_is_the_documented_one():
    vocabulary = MetricVocabulary.load()
    assert set(vocabulary.ids) == {"recognitions", "applications", "approvals", "issuances", "holders", "workers",
                                   "quota", "cap", "salary_threshold", "fee", "points_threshold",
                                   "processing_time", "duration", "other"}


def test_tag_jsonl_prints_each_figures_metric(tmp_path: Path):
    request = json.dumps({"id": 1, "text": "Korea set a quota of 35,000 for the E-7-4 visa.", "lang": "en"})
    result = subprocess.run([sys.executable, "-m", "monitor", "tag", "--jsonl", "-"], input=request + "\n",
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert [(f["text"], f["metric"]) for f in line["figures"]] == [("35,000", "quota")]


def test_tag_jsonl_takes_the_sources_country(tmp_path: Path):
    lines = [json.dumps({"id": 1, "text": "The EP qualifying salary rose.", "lang": "en", "country": "SG"}),
             json.dumps({"id": 2, "text": "The EP qualifying salary rose.", "lang": "en", "country": 65})]
    result = subprocess.run([sys.executable, "-m", "monitor", "tag", "--jsonl", "-"], input="\n".join(lines) + "\n",
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert result.returncode == 2 and "line 2" in result.stderr and "Traceback" not in result.stderr
    assert [v["id"] for v in json.loads(result.stdout.splitlines()[0])["visas"]] == ["SG:EP"]


def test_tag_many_takes_the_sources_country_too(tagger):
    texts = [("The EP qualifying salary rose.", "en", "SG"), ("The EP qualifying salary rose.", "en")]
    assert [[v.id for v in r.visas] for r in tagger.tag_many(texts)] == [["SG:EP"], []]


# ---------------------------------------------------------------- storage, rules and search
def test_figures_store_their_metric_and_retag_fills_it(tmp_path: Path):
    db = open_db(tmp_path / "monitor.db")
    assert "metric" in {c.name for c in db["figures"].columns}
    assert SCHEMA_VERSION == db.execute("PRAGMA user_version").fetchone()[0]
    text = "Korea set a quota of 35,000 for the E-7-4 visa."
    stale = [{"value": 35000, "unit": "count", "year": None, "visa": None, "text": "35,000", "start": 21, "end": 27}]
    store_article(db, {"url": "https://e.org/q", "title": "t", "text": text, "lang": "en", "country": "KR",
                       "content_hash": content_hash("t", text)}, [], stale)
    assert db.execute("SELECT metric FROM figures").fetchall() == [(None,)]
    db.close()
    (tmp_path / "config.toml").write_text('[storage]\npath = "monitor.db"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "monitor", "retag"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    db = open_db(tmp_path / "monitor.db")
    assert db.execute("SELECT text, metric, visa FROM figures").fetchall() == [("35,000", "quota", "KR:E-7-4")]


@pytest.fixture()
def tagged_db(tmp_path: Path, tagger: Tagger):
    """Articles tagged with a visa sub-type and a finer sector only."""
    from monitor.crawl import tag_rows

    db = open_db(tmp_path / "s.db")
    for url, text in (("https://e.org/hsp", "高度専門職1号ロの認定件数は2万件を超えた。"),
                      ("https://e.org/bat", "이차전지 기업이 외국인 인재 300명을 채용했다."),
                      ("https://e.org/none", "The weather was fine.")):
        mentions, figures = tag_rows(tagger.tag(text, None))
        store_article(db, {"url": url, "title": url, "text": text, "lang": None,
                           "content_hash": content_hash(url, text)}, mentions, figures)
    db.close()
    conn = open_readonly(tmp_path / "s.db")
    yield conn
    conn.close()


def test_search_on_a_parent_matches_its_subtypes(tagged_db, tagger: Tagger):
    hsp = SearchFilters(visa="JP:HSP", visa_subtypes=tagger.subtypes("visa", "JP:HSP"))
    assert [r["url"] for r in search_articles(tagged_db, "", hsp)] == ["https://e.org/hsp"]
    assert search_articles(tagged_db, "", SearchFilters(visa="JP:HSP")) == []  # without the taxonomy, exact ids
    other = SearchFilters(sector="other", sector_subtypes=tagger.subtypes("sector", "other"))
    assert [r["url"] for r in search_articles(tagged_db, "", other)] == ["https://e.org/bat"]


def test_rules_on_a_parent_match_its_subtypes_without_changing_their_hash(tagged_db, tagger: Tagger):
    plain = RuleConditions(visas=("JP:HSP",), figures=(FigureFilter(visa="JP:HSP"),))
    wide = RuleConditions(visas=("JP:HSP",), figures=(FigureFilter(visa="JP:HSP"),),
                          subtypes={"JP:HSP": tagger.subtypes("visa", "JP:HSP")})
    assert conditions_hash(plain) == conditions_hash(wide)
    for conditions, expected in ((plain, []), (wide, [("https://e.org/hsp",)])):
        clauses, params = condition_clauses(conditions)
        rows = tagged_db.execute(f"SELECT a.url FROM articles a WHERE {' AND '.join(clauses)}", params).fetchall()
        assert [tuple(row) for row in rows] == expected


def test_compiled_rules_carry_the_subtypes_of_their_ids(tagger: Tagger):
    from monitor.alerts import rule_subtypes
    from monitor.config import AlertRule

    rule = AlertRule(name="hsp", to=["analyst@example.org"], visas=["JP:HSP", "KR:*"], sectors=["other"])
    found = rule_subtypes(rule, tagger)
    assert "JP:HSP-1B" in found["JP:HSP"] and "batteries" in found["other"] and "KR:*" not in found


def test_search_cli_on_a_parent_visa_finds_subtypes(tmp_path: Path, tagger: Tagger):
    from monitor.crawl import tag_rows

    db = open_db(tmp_path / "monitor.db")
    text = "高度専門職1号ロの認定件数は2万件を超えた。"
    mentions, figures = tag_rows(tagger.tag(text, "ja"))
    store_article(db, {"url": "https://e.org/hsp", "title": "HSP", "text": text, "lang": "ja",
                       "content_hash": content_hash("HSP", text)}, mentions, figures)
    db.close()
    result = subprocess.run([sys.executable, "-m", "monitor", "--db", str(tmp_path / "monitor.db"), "search", "",
                             "--visa", "JP:HSP", "--format", "json"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr
    assert "https://e.org/hsp" in result.stdout


# ---------------------------------------------------------------- the real-text dev set
def test_real_dev_set_is_large_enough_and_sourced():
    sys.path.insert(0, str(ROOT))
    from bench.tagging import load_real

    items = load_real()
    counts = {lang: sum(1 for i in items if i.lang == lang) for lang in ("en", "ko", "ja")}
    assert counts["en"] >= 80 and counts["ko"] >= 35 and counts["ja"] >= 35
    assert all(i.url.startswith(("http://", "https://")) for i in items)
    assert {i.split for i in items} == {"tune", "test"}
    assert 0.3 <= sum(i.split == "test" for i in items) / len(items) <= 0.5


def test_real_dev_set_test_split_scores(tagger):
    """The held-apart test split stays above the issue's targets (0.90 en, 0.85 ko/ja per category)."""
    sys.path.insert(0, str(ROOT))
    from bench.tagging import load_real, prf, score

    res = score([i for i in load_real() if i.split == "test"], tagger)
    for (lang, cat), counts in res["stats"].items():
        assert prf(*counts)[2] >= (0.9 if lang == "en" else 0.85), (lang, cat)
