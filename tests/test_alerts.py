"""Alert rules: checking, matching in SQL (FTS5 and tags), rendering, and exactly-once delivery over real SMTP."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.alerts import GIVE_UP_AFTER, AlertSender, compile_rules, last_digest_slot
from monitor.config import ConfigError
from storage import open_db
from tests.test_alerts_fixtures import (  # noqa: F401 (smtp_sink is a fixture)
    FakeTagger,
    SmtpSink,
    add_article,
    html_part,
    maildir_messages,
    make_config,
    plain_part,
    sector,
    smtp_email,
    smtp_sink,
    visa,
)

READER = "reader@example.org"


def rule(name: str = "watch", **fields) -> dict:
    return {"name": name, "to": READER, **fields}


def sender_for(config, **kwargs) -> AlertSender:
    sender = AlertSender(config, compile_rules(config, FakeTagger()), **kwargs)
    sender.register()
    return sender


# ---------------------------------------------------------------- rules that can't be used


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"query": '"unbalanced'}, "query"),
    ({"query": "visa AND"}, "query"),
    ({"visas": ["KR:E-77"]}, "unknown visa id 'KR:E-77'"),
    ({"visas": ["XX:*"]}, "no visa of country 'XX'"),
    ({"sectors": ["semiconductor"]}, "did you mean 'semiconductors'"),
    ({"sources": ["nowhere"]}, "no source named 'nowhere'"),
    ({"figures": [{"visa": "JP:HSPP", "min": 1}]}, "figures #1 visa"),
])
def test_a_rule_that_cannot_be_used_is_a_config_error_naming_it(tmp_path, fields, fragment):
    config = make_config(tmp_path, alerts=[rule("ok-rule", query="visa"), rule("broken-rule", **fields)])
    with pytest.raises(ConfigError) as failure:
        compile_rules(config, FakeTagger())
    message = str(failure.value)
    assert "'broken-rule'" in message and fragment in message and "\n" not in message


def test_valid_rules_compile(tmp_path):
    config = make_config(tmp_path, alerts=[rule(query='"top tier" OR semiconduct* OR NEAR(visa talent, 5)',
                                                visas=["KR:*", "JP:HSP"], sectors=["nursing"], countries=["KR"],
                                                sources=["wire"], langs=["ko"],
                                                figures=[{"visa": "JP:HSP", "unit": "people", "min": 10000}])])
    (compiled,) = compile_rules(config, FakeTagger())
    assert compiled.conditions.visas == ("KR:*", "JP:HSP")


# ---------------------------------------------------------------- matching


def _matches(tmp_path, articles, **fields) -> list[str]:
    """Titles of the articles an immediate rule with `fields` alerts on (delivered to a Maildir)."""
    config = make_config(tmp_path, alerts=[rule(**fields)])
    sender = sender_for(config)
    for title, text, kwargs in articles:
        add_article(config, title, text, **kwargs)
    report = sender.deliver()
    assert not report.errors
    return sorted(m["Subject"].split(": ", 1)[1] for m in maildir_messages(config.email.outbox))


def test_phrase_query_matches_hyphenated_words(tmp_path):
    titles = _matches(tmp_path, [
        ("Korea plans a Top-Tier visa", "The Top-Tier visa targets researchers.", {}),
        ("Tier lists", "A top ranking and a second tier.", {}),
    ], query='"top tier"')
    assert titles == ["Korea plans a Top-Tier visa"]


def test_japanese_and_korean_terms_match(tmp_path):
    titles = _matches(tmp_path, [
        ("高度専門職の認定件数", "2023年の高度専門職は46,946人でした。", {"lang": "ja"}),
        ("特定技能の動向", "特定技能外国人の数が増えました。", {"lang": "ja"}),
    ], query="高度専門職")
    assert titles == ["高度専門職の認定件数"]
    titles = _matches(tmp_path / "ko", [
        ("최우수인재 비자 신설", "법무부는 최우수인재 비자를 도입한다.", {"lang": "ko"}),
        ("고용허가제 쿼터", "E-9 비자 쿼터가 늘었다.", {"lang": "ko"}),
    ], query="최우수인재")
    assert titles == ["최우수인재 비자 신설"]


def test_prefix_and_boolean_queries(tmp_path):
    titles = _matches(tmp_path, [
        ("Chip workers", "Semiconductor plants need engineers.", {}),
        ("Chip fans", "Semiconductors and nursing visas.", {}),
        ("Farm work", "Seasonal farm workers.", {}),
    ], query="semiconduct* NOT nursing")
    assert titles == ["Chip workers"]


def test_tag_filters_combine_with_and(tmp_path):
    e7 = "The E-7 visa covers semiconductor engineers."
    hsp = "Japan's highly skilled professional visa had 46,946 holders."
    e9 = "The E-9 quota rises."
    titles = _matches(tmp_path, [
        ("E-7 chips", e7, {"mentions": [visa("KR:E-7", "E-7 visa", e7),
                                        sector("semiconductors", "semiconductor", e7)]}),
        ("HSP count", hsp, {"country": "JP", "source": "daily-news",
                            "mentions": [visa("JP:HSP", "highly skilled professional", hsp)],
                            "figures": [{"value": 46946, "unit": "people", "year": 2023, "visa": "JP:HSP",
                                         "text": "46,946", "start": 0, "end": 6}]}),
        ("E-9 quota", e9, {"mentions": [visa("KR:E-9", "E-9", e9)]}),
    ], visas=["KR:*"], sectors=["semiconductors"])
    assert titles == ["E-7 chips"]
    titles = _matches(tmp_path / "fig", [
        ("HSP count", hsp, {"country": "JP", "mentions": [visa("JP:HSP", "highly skilled professional", hsp)],
                            "figures": [{"value": 46946, "unit": "people", "year": 2023, "visa": "JP:HSP",
                                         "text": "46,946", "start": 0, "end": 6}]}),
        ("HSP early", hsp + " In 2012.", {"country": "JP", "figures": [
            {"value": 313, "unit": "people", "year": 2012, "visa": "JP:HSP", "text": "313", "start": 0, "end": 3}]}),
    ], figures=[{"visa": "JP:HSP", "unit": "people", "min": 10000}], countries=["JP"])
    assert titles == ["HSP count"]


# ---------------------------------------------------------------- never the backlog, never twice


def test_a_rule_added_to_a_full_database_sends_nothing_about_the_backlog(tmp_path, smtp_sink):  # noqa: F811
    config = make_config(tmp_path, alerts=[rule(query="visa")], email_=smtp_email(smtp_sink))
    for number in range(5):
        add_article(config, f"Old visa story {number}", "A visa story from before the rule existed.")
    sender = sender_for(config)
    assert sender.deliver().sent == []
    new_id = add_article(config, "New visa story", "A visa story stored after the rule appeared.")
    report = sender.deliver()
    assert [o.article_ids for o in report.sent] == [[new_id]]
    assert sender.deliver().sent == []
    messages = smtp_sink.wait_for(1)
    assert [m["Subject"] for m in messages] == ["[policy-monitor] watch: New visa story"]


def test_immediate_alert_content_and_exactly_once(tmp_path, smtp_sink):  # noqa: F811
    config = make_config(tmp_path, alerts=[rule(query="semiconduct*", to=[READER, "boss@example.org"])],
                         email_=smtp_email(smtp_sink))
    sender = sender_for(config)
    text = ("Korea's E-7 visa now covers semiconductor engineers. The ministry said 1,200 people applied in 2024. "
            "More details will follow.")
    article_id = add_article(config, "E-7 visa opens to chip engineers", text,
                             url="https://gov.example.kr/press/1", published_at="2025-07-20T00:00:00+00:00",
                             mentions=[visa("KR:E-7", "E-7 visa", text), sector("semiconductors", "semiconductor",
                                                                                   text)],
                             figures=[{"value": 1200, "unit": "people", "year": 2024, "visa": "KR:E-7",
                                       "text": "1,200 people", "start": text.index("1,200"), "end": 0}])
    assert len(sender.deliver().sent) == 2
    assert sender.deliver().sent == []
    messages = smtp_sink.wait_for(2)
    assert sorted(rcpts[0] for rcpts, _ in smtp_sink.received) == ["boss@example.org", READER]
    message = messages[0]
    assert message["Subject"] == "[policy-monitor] watch: E-7 visa opens to chip engineers"
    assert message["From"] == "alerts@example.org"
    plain = plain_part(message)
    assert "E-7 visa opens to chip engineers" in plain
    assert "Source: wire" in plain and "Date: 2025-07-20" in plain
    assert "Visas: KR:E-7" in plain and "Sectors: semiconductors" in plain
    assert "1,200 people (2024, KR:E-7)" in plain
    assert "**semiconductor**" in plain
    assert "https://gov.example.kr/press/1" in plain
    html = html_part(message)
    assert "<mark>semiconductor</mark>" in html and 'href="https://gov.example.kr/press/1"' in html
    db = open_db(config.db_path)
    assert db.execute("SELECT rule, article_id FROM alerts_sent").fetchall() == [("watch", article_id)]
    db.close()


def test_title_cannot_inject_headers_and_html_is_escaped(tmp_path, smtp_sink):  # noqa: F811
    config = make_config(tmp_path, alerts=[rule(query="visa")], email_=smtp_email(smtp_sink))
    sender = sender_for(config)
    add_article(config, "Visa news\r\nBcc: x@example.org", "A visa story.")
    add_article(config, '<script>alert("x")</script> & <b>visa</b> rules', "Another visa story <img src=x>.")
    # An RFC 2047 encoded word that decodes to CR LF "Bcc: evil@example.org".
    add_article(config, "=?utf-8?q?x=0D=0ABcc=3A_evil@example.org?= visa", "A third visa story.")
    report = sender.deliver()
    assert len(report.sent) == 3 and report.errors == []
    smtp_sink.wait_for(3)
    assert [rcpts for rcpts, _ in smtp_sink.received] == [[READER], [READER], [READER]]
    for (_, raw), message in zip(smtp_sink.received, smtp_sink.messages, strict=True):
        headers = raw.split(b"\r\n\r\n", 1)[0]
        assert message["Bcc"] is None and b"\nBcc:" not in headers
        assert all("\n" not in str(value) and "\r" not in str(value) for value in message.values())
    injected, scripted, encoded = smtp_sink.messages
    assert injected["Subject"] == "[policy-monitor] watch: Visa news Bcc: x@example.org"
    assert "evil@example.org" in encoded["Subject"]  # harmless text on the one Subject line
    html = html_part(scripted)
    assert "<script>" not in html and "<b>visa</b>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;visa&lt;/b&gt; rules" in html


def test_long_title_is_shortened_in_the_subject(tmp_path):
    config = make_config(tmp_path, alerts=[rule(query="visa")])
    sender = sender_for(config)
    add_article(config, "Visa " + "very " * 60 + "long", "visa text")
    (outgoing,) = sender.deliver().sent
    assert outgoing.subject.endswith("…") and len(outgoing.subject) < 160


def test_smtp_down_records_nothing_and_the_retry_delivers_once(tmp_path):
    sink = SmtpSink().start()
    config = make_config(tmp_path, alerts=[rule(query="visa")], email_=smtp_email(sink))
    sender = sender_for(config)
    add_article(config, "First visa story", "visa")
    assert len(sender.deliver().sent) == 1
    sink.stop()
    add_article(config, "Second visa story", "visa")
    add_article(config, "Third visa story", "visa")
    report = sender.deliver()
    assert report.sent == [] and len(report.pending) == 2 and report.errors
    db = open_db(config.db_path)
    assert db.execute("SELECT count(*) FROM alerts_sent").fetchone()[0] == 1
    db.close()
    restarted = SmtpSink(port=sink.port).start()
    try:
        assert len(sender.deliver().sent) == 2
        assert sender.deliver().sent == []
        subjects = sorted(m["Subject"] for m in restarted.wait_for(2))
        assert subjects == ["[policy-monitor] watch: Second visa story", "[policy-monitor] watch: Third visa story"]
    finally:
        restarted.stop()


def test_one_refused_recipient_does_not_make_the_others_receive_twice(tmp_path):
    class Refusing(SmtpSink):
        refuse = True

        async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
            if self.refuse and address == "flaky@example.org":
                return "450 mailbox busy"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    sink = Refusing().start()
    try:
        config = make_config(tmp_path, alerts=[rule(query="visa", to=[READER, "flaky@example.org"])],
                             email_=smtp_email(sink))
        sender = sender_for(config)
        add_article(config, "Visa story", "visa")
        for _ in range(3):
            report = sender.deliver()
            assert len(report.errors) == 1
        sink.refuse = False
        assert len(sender.deliver().sent) == 1
        assert sender.deliver().sent == []
        assert sorted(rcpts[0] for rcpts, _ in sink.received) == ["flaky@example.org", READER]
    finally:
        sink.stop()


class FilteringSink(SmtpSink):
    """Refuses for good (554) every message mentioning POISON, and the mailbox gone@ (550)."""

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if b"POISON" in (envelope.original_content or envelope.content):
            return "554 5.7.1 Message rejected as spam"
        return await super().handle_DATA(server, session, envelope)


def test_a_message_refused_for_good_fails_alone_and_is_given_up(tmp_path, caplog):
    sink = FilteringSink().start()
    try:
        config = make_config(tmp_path, email_=smtp_email(sink),
                             alerts=[rule("a-first", query="visa"), rule("b-second", query="visa")])
        sender = sender_for(config)
        poison = add_article(config, "POISON visa story", "some visa text one")
        good = add_article(config, "Good visa story", "other visa text two")
        report = sender.deliver()
        # The content filter's 554 is about one message: the server is up, the others go through.
        assert sorted((o.rule, o.article_ids) for o in report.sent) == [("a-first", [good]), ("b-second", [good])]
        assert sorted((o.rule, o.article_ids) for o in report.pending) == [("a-first", [poison]),
                                                                           ("b-second", [poison])]
        assert len(sink.received) == 2
        caplog.set_level(logging.ERROR, logger="monitor.alerts")
        for _ in range(GIVE_UP_AFTER - 2):
            report = sender.deliver()
            assert len(report.errors) == 2 and report.given_up == []
        report = sender.deliver()
        assert sorted(o.rule for o in report.given_up) == ["a-first", "b-second"] and report.pending == []
        assert [r for r in caplog.records if r.levelno == logging.ERROR and "given up" in r.getMessage()]
        # Given up: never tried again, and a later story still goes out.
        report = sender.deliver()
        assert report.errors == [] and report.sent == [] and report.pending == []
        later = add_article(config, "Later visa story", "visa text three")
        assert [o.article_ids for o in sender.deliver().sent] == [[later], [later]]
        db = open_db(config.db_path)
        rows = db.execute("SELECT rule, article_id, attempts, gave_up_at IS NOT NULL FROM alert_failures"
                          " ORDER BY rule").fetchall()
        db.close()
        assert rows == [("a-first", poison, GIVE_UP_AFTER, 1), ("b-second", poison, GIVE_UP_AFTER, 1)]
    finally:
        sink.stop()


def test_a_recipient_refused_for_good_is_given_up_and_the_others_get_one_copy(tmp_path):
    sink = FilteringSink().start()
    try:
        config = make_config(tmp_path, email_=smtp_email(sink),
                             alerts=[rule(query="visa", to=[READER, "gone@example.org"])])
        sender = sender_for(config)
        first = add_article(config, "New visa programme", STORY, source="wire")
        report = sender.deliver()
        assert [o.recipient for o in report.sent] == [READER] and len(report.errors) == 1
        # A syndicated copy arrives while gone@ is still being retried: READER has the story already.
        copy = add_article(config, "New visa programme (syndicated)", STORY + " Reporting by a wire service.",
                           source="daily-news")
        report = sender.deliver()
        assert report.sent == [] and [o.recipient for o in report.pending] == ["gone@example.org"]
        assert report.pending[0].article_ids == [first, copy]
        assert sum(READER in rcpts for rcpts, _ in sink.received) == 1
        db = open_db(config.db_path)
        assert db.execute("SELECT article_id FROM alert_deliveries WHERE recipient = ? ORDER BY article_id",
                          [READER]).fetchall() == [(first,), (copy,)]
        db.close()
        for _ in range(GIVE_UP_AFTER - 3):  # the first article's 5th try gives the message up
            sender.deliver()
        assert [o.recipient for o in sender.deliver().given_up] == ["gone@example.org"]
        assert sender.deliver().errors == []
        assert sum(READER in rcpts for rcpts, _ in sink.received) == 1
        # Given up for gone@ and delivered to READER: the story leaves the rule's candidates.
        db = open_db(config.db_path)
        assert db.execute("SELECT article_id FROM alerts_sent ORDER BY article_id").fetchall() == [(first,), (copy,)]
        db.close()
    finally:
        sink.stop()


def test_a_dry_run_after_an_upgrade_shows_what_a_real_send_sends(tmp_path):
    """A rule registered by name alone (before conditions were hashed) keeps its baseline in a dry run too."""
    config = make_config(tmp_path, alerts=[rule(query="visa")])
    db = open_db(config.db_path)
    db.execute("BEGIN")
    db.execute("INSERT INTO alert_rules (name, first_seen_at, first_article_id) VALUES (?, ?, 0)",
               [config.alerts[0].name, "2020-01-01T00:00:00+00:00"])
    db.execute("COMMIT")
    db.close()
    add_article(config, "Visa news", "A visa story about quotas and processing times.")
    dry = sender_for(config).deliver(dry_run=True)
    real = sender_for(config).deliver()
    assert len(dry.pending) == len(real.sent) == 1


def test_a_missing_password_variable_is_one_error_line_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("PM_TEST_SMTP_PASSWORD", raising=False)
    config = make_config(tmp_path, alerts=[rule(query="visa")],
                         email_={"host": "127.0.0.1", "port": 9, "username": "me",
                                 "password_env": "PM_TEST_SMTP_PASSWORD"})
    sender = sender_for(config)
    add_article(config, "Visa story", "visa")
    report = sender.deliver()
    assert report.sent == [] and len(report.pending) == 1
    assert len(report.errors) == 1 and "PM_TEST_SMTP_PASSWORD" in report.errors[0]


# ---------------------------------------------------------------- rules edited, removed, added again


def test_editing_a_rule_starts_it_afresh(tmp_path):
    config = make_config(tmp_path, alerts=[rule(query="visa")])
    sender_for(config).deliver()
    for number in range(5):
        add_article(config, f"Talent story {number}", f"talent programme number {number} for engineers")
    edited = make_config(tmp_path, alerts=[rule(query="talent")])
    sender = sender_for(edited)
    assert sender.deliver().sent == []
    new = add_article(edited, "Talent story 5", "talent programme number 5")
    assert [o.article_ids for o in sender.deliver().sent] == [[new]]
    # New recipients or schedule are not new conditions: nothing is reset.
    more = add_article(edited, "Talent story 6", "talent programme number 6")
    widened = make_config(tmp_path, alerts=[rule(query="talent", to=[READER, "boss@example.org"])])
    assert sorted((o.recipient, o.article_ids) for o in sender_for(widened).deliver().sent) == [
        ("boss@example.org", [more]), (READER, [more])]


def test_a_rule_registered_by_name_only_keeps_its_baseline(tmp_path):
    # `monitor crawl` notes new rules by name, before any sender knows their conditions.
    from storage.alerts import register_rules

    config = make_config(tmp_path, alerts=[rule(query="visa")])
    db = open_db(config.db_path)
    register_rules(db, ["watch"])
    db.close()
    new = add_article(config, "Visa story", "visa")
    assert [o.article_ids for o in sender_for(config).deliver().sent] == [[new]]


def test_an_edited_rule_starts_afresh_without_register(tmp_path):
    # `monitor alerts send` delivers without registering first.
    config = make_config(tmp_path, alerts=[rule(query="visa")])
    sender_for(config)
    add_article(config, "Talent story", "talent programme")
    edited = make_config(tmp_path, alerts=[rule(query="talent")])
    sender = AlertSender(edited, compile_rules(edited, FakeTagger()))
    assert sender.deliver(dry_run=True).pending == []
    assert sender.deliver().sent == []


def test_a_rule_removed_and_added_again_starts_afresh(tmp_path):
    config = make_config(tmp_path, alerts=[rule("keep", query="visa"), rule("flaky", query="visa")])
    sender_for(config)
    kept = make_config(tmp_path, alerts=[rule("keep", query="visa")])
    sender = sender_for(kept)
    old = add_article(kept, "Visa story while flaky was gone", "visa")
    assert [o.article_ids for o in sender.deliver().sent] == [[old]]
    sender = sender_for(config)
    assert sender.deliver().sent == []
    new = add_article(config, "Visa story after", "visa")
    assert sorted((o.rule, o.article_ids[0]) for o in sender.deliver().sent) == [("flaky", new), ("keep", new)]


def test_dry_run_sends_and_records_nothing(tmp_path):
    config = make_config(tmp_path, alerts=[rule(query="visa")])
    sender = sender_for(config)
    add_article(config, "Visa story", "visa")
    report = sender.deliver(dry_run=True)
    assert report.sent == [] and [o.subject for o in report.pending] == ["[policy-monitor] watch: Visa story"]
    assert not config.email.outbox.exists()
    assert len(sender.deliver().sent) == 1


# ---------------------------------------------------------------- the same story from several outlets


STORY = ("The Ministry of Justice announced on Monday that the new Top-Tier visa will open to researchers in "
         "semiconductors, batteries and biotechnology from next year. Applicants need a doctorate or ten years "
         "of experience, and the ministry expects several hundred applications in the first year.")


def test_same_content_from_two_outlets_alerts_once_listing_both(tmp_path):
    config = make_config(tmp_path, alerts=[rule(query='"top tier"')])
    sender = sender_for(config)
    add_article(config, "Top-Tier visa opens", STORY, source="wire",
                extra_urls=[("https://daily.example.jp/top-tier", "daily-news")])
    (outgoing,) = sender.deliver().sent
    assert "Source: wire (also reported by: daily-news)" in plain_part(outgoing.message)


def test_near_identical_copies_alert_once(tmp_path):
    config = make_config(tmp_path, alerts=[rule(query='"top tier"', mode="immediate")])
    sender = sender_for(config)
    first = add_article(config, "Top-Tier visa opens", STORY, source="wire")
    second = add_article(config, "Korea opens Top-Tier visa", STORY.replace("Monday", "Monday (Yonhap)"),
                         source="daily-news")
    (outgoing,) = sender.deliver().sent
    assert outgoing.article_ids == [first, second]
    assert "also reported by: daily-news" in plain_part(outgoing.message)
    # A third copy arriving after the alert went out is recorded, not sent.
    add_article(config, "Top-Tier visa", STORY.replace("next year", "next year, officials said"), source="wire")
    report = sender.deliver()
    assert report.sent == [] and report.suppressed == 1
    different = add_article(config, "Top-Tier visa quota", "The Top-Tier visa quota is 500 a year.")
    assert [o.article_ids for o in sender.deliver().sent] == [[different]]


# ---------------------------------------------------------------- digests on a controllable clock


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def _at(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def test_daily_digest_sends_at_its_time_one_message_per_recipient(tmp_path, smtp_sink):  # noqa: F811
    tz = "Asia/Seoul"
    config = make_config(tmp_path, timezone=tz, email_=smtp_email(smtp_sink),
                         alerts=[rule("morning", query="visa", mode="daily", at="08:00",
                                      to=[READER, "boss@example.org"])])
    clock = Clock(_at(tz, 2026, 3, 2, 7, 0))
    sender = sender_for(config, now=clock)
    add_article(config, "Visa one", "visa", fetched_at=_iso(_at(tz, 2026, 3, 2, 6, 30)))
    add_article(config, "Visa two", "visa", fetched_at=_iso(_at(tz, 2026, 3, 2, 7, 10)))
    clock.moment = _at(tz, 2026, 3, 2, 7, 59)
    assert sender.deliver().sent == []
    clock.moment = _at(tz, 2026, 3, 2, 8, 0, 20)
    report = sender.deliver()
    assert sorted(o.recipient for o in report.sent) == ["boss@example.org", READER]
    assert {o.subject for o in report.sent} == {"[policy-monitor] morning: 2 new articles"}
    plain = plain_part(report.sent[0].message)
    assert "Visa one" in plain and "Visa two" in plain
    # Stored after this morning's digest: waits for tomorrow's.
    add_article(config, "Visa three", "visa", fetched_at=_iso(_at(tz, 2026, 3, 2, 9, 0)))
    clock.moment = _at(tz, 2026, 3, 2, 21, 0)
    assert sender.deliver().sent == []
    clock.moment = _at(tz, 2026, 3, 3, 8, 1)
    report = sender.deliver()
    assert {o.subject for o in report.sent} == {"[policy-monitor] morning: 1 new article"}
    assert sender.deliver().sent == []
    assert len(smtp_sink.wait_for(4)) == 4


def test_weekly_digest_waits_for_its_day(tmp_path):
    tz = "Europe/Berlin"
    config = make_config(tmp_path, timezone=tz, alerts=[rule("weekly", query="visa", mode="weekly", day="wed",
                                                             at="18:30")])
    clock = Clock(_at(tz, 2026, 3, 2, 9, 0))  # a Monday
    sender = sender_for(config, now=clock)
    add_article(config, "Visa Monday", "visa", fetched_at=_iso(_at(tz, 2026, 3, 2, 9, 0)))
    for moment in (_at(tz, 2026, 3, 3, 12, 0), _at(tz, 2026, 3, 4, 18, 29)):
        clock.moment = moment
        assert sender.deliver().sent == []
    clock.moment = _at(tz, 2026, 3, 4, 18, 31)
    (outgoing,) = sender.deliver().sent
    assert outgoing.subject == "[policy-monitor] weekly: 1 new article"
    add_article(config, "Visa Thursday", "visa", fetched_at=_iso(_at(tz, 2026, 3, 5, 9, 0)))
    clock.moment = _at(tz, 2026, 3, 10, 23, 0)
    assert sender.deliver().sent == []
    clock.moment = _at(tz, 2026, 3, 11, 18, 30)
    assert len(sender.deliver().sent) == 1


def test_digest_missed_while_down_goes_out_at_the_next_sweep(tmp_path):
    tz = "UTC"
    config = make_config(tmp_path, timezone=tz, alerts=[rule("d", query="visa", mode="daily", at="06:00")])
    clock = Clock(_at(tz, 2026, 3, 2, 5, 0))
    sender = sender_for(config, now=clock)
    add_article(config, "Visa", "visa", fetched_at=_iso(_at(tz, 2026, 3, 2, 5, 30)))
    clock.moment = _at(tz, 2026, 3, 2, 14, 0)  # the daemon was down at 06:00
    assert len(sender.deliver().sent) == 1


def test_a_late_article_does_not_make_a_second_digest_for_the_same_slot(tmp_path, smtp_sink):  # noqa: F811
    tz = "UTC"
    config = make_config(tmp_path, timezone=tz, email_=smtp_email(smtp_sink),
                         alerts=[rule("d", query="visa", mode="daily", at="08:00", to=[READER, "boss@example.org"])])
    clock = Clock(_at(tz, 2026, 11, 27, 7, 0))
    sender = sender_for(config, now=clock)
    first = add_article(config, "visa one", "visa text one", fetched_at=_iso(_at(tz, 2026, 11, 27, 7, 30)))
    clock.moment = _at(tz, 2026, 11, 27, 8, 0, 0, 200000)  # the 08:00 digest job
    assert sorted((o.recipient, o.article_ids) for o in sender.deliver(immediate=False).sent) == [
        ("boss@example.org", [first]), (READER, [first])]
    # A crawl that read the clock at 07:59:59 commits after the digest went out.
    late = add_article(config, "visa two", "visa text two", fetched_at=_iso(_at(tz, 2026, 11, 27, 7, 59, 59)))
    clock.moment = _at(tz, 2026, 11, 27, 8, 0, 30)  # the sweep 30 s later
    assert sender.deliver().sent == []
    clock.moment = _at(tz, 2026, 11, 27, 20, 0)
    assert sender.deliver().sent == []
    clock.moment = _at(tz, 2026, 11, 28, 8, 0, 5)  # it rolls into the next slot
    assert sorted((o.recipient, o.article_ids) for o in sender.deliver().sent) == [
        ("boss@example.org", [late]), (READER, [late])]
    assert len(smtp_sink.wait_for(4)) == 4


def test_a_failed_digest_is_retried_for_its_slot_once(tmp_path):
    tz = "UTC"
    sink = SmtpSink()
    config = make_config(tmp_path, timezone=tz, email_=smtp_email(sink),
                         alerts=[rule("d", query="visa", mode="daily", at="08:00")])
    clock = Clock(_at(tz, 2026, 11, 27, 7, 0))
    sender = sender_for(config, now=clock)
    add_article(config, "visa one", "visa text one", fetched_at=_iso(_at(tz, 2026, 11, 27, 7, 30)))
    clock.moment = _at(tz, 2026, 11, 27, 8, 0, 1)
    report = sender.deliver()  # the server is down
    assert report.sent == [] and len(report.pending) == 1
    sink.start()
    try:
        clock.moment = _at(tz, 2026, 11, 27, 8, 0, 31)
        assert [o.subject for o in sender.deliver().sent] == ["[policy-monitor] d: 1 new article"]
        clock.moment = _at(tz, 2026, 11, 27, 8, 1, 1)
        assert sender.deliver().sent == []
    finally:
        sink.stop()


def test_last_digest_slot():
    config_rule = type("R", (), {"mode": "weekly", "at": "08:00", "day": "mon"})()
    now = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # Wednesday
    assert last_digest_slot(config_rule, "Asia/Tokyo", now) == _at("Asia/Tokyo", 2026, 3, 2, 8, 0)
    config_rule.mode = "daily"
    assert last_digest_slot(config_rule, "Asia/Tokyo", now) == _at("Asia/Tokyo", 2026, 3, 4, 8, 0)
    assert last_digest_slot(config_rule, "America/New_York", now) == _at("America/New_York", 2026, 3, 3, 8, 0)
    config_rule.mode = "immediate"
    assert last_digest_slot(config_rule, "UTC", now) is None
