"""Alert rules read each article once (issue 10): a rule's checkpoint `checked_up_to` moves past the articles
that do not match it or are in its ledger, so an evaluation after a crawl reads only the new articles."""

from __future__ import annotations

from monitor.alerts import AlertSender, compile_rules
from storage import open_db
from storage.alerts import rule_checkpoints
from tests.test_alerts_fixtures import FakeTagger, SmtpSink, add_article, make_config, smtp_email


def _checkpoint(config, name: str = "watch") -> int:
    db = open_db(config.db_path)
    try:
        return rule_checkpoints(db.conn, [name])[name]
    finally:
        db.close()


def _sender(config) -> AlertSender:
    sender = AlertSender(config, compile_rules(config, FakeTagger()))
    sender.register()
    return sender


def test_an_evaluation_moves_the_checkpoint_past_what_it_read_and_never_reads_it_again(tmp_path):
    config = make_config(tmp_path, alerts=[{"name": "watch", "to": "reader@example.org", "query": "visa"}])
    sender = _sender(config)
    assert _checkpoint(config) == 0
    old = [add_article(config, f"Harbour news {n}", "Ships and ports.") for n in range(3)]
    assert sender.deliver(dry_run=True).pending == [] and _checkpoint(config) == 0  # a dry run writes nothing
    assert sender.deliver().sent == []
    assert _checkpoint(config) == old[-1]
    # An article below the checkpoint is not read again: changed to match now, it does not alert.
    db = open_db(config.db_path)
    db.execute("UPDATE articles SET text = 'A visa story.' WHERE id = ?", [old[0]])
    db.conn.commit()
    db.close()
    new = add_article(config, "Visa news", "A new visa story.")
    assert [o.article_ids for o in sender.deliver().sent] == [[new]]
    assert _checkpoint(config) == new - 1  # read before it was sent: the next evaluation looks at it again
    assert sender.deliver().sent == []
    assert _checkpoint(config) == new


def test_a_match_not_yet_sent_keeps_the_checkpoint_below_it_until_it_is_sent_once(tmp_path):
    sink = SmtpSink()  # not started: the server is down
    config = make_config(tmp_path, alerts=[{"name": "watch", "to": "reader@example.org", "query": "visa"}],
                         email_=smtp_email(sink))
    sender = _sender(config)
    before = add_article(config, "Harbour news", "Ships and ports.")
    pending = add_article(config, "Visa news", "A visa story.")
    add_article(config, "More harbour news", "Ships again.")
    report = sender.deliver()
    assert report.sent == [] and [o.article_ids for o in report.pending] == [[pending]]
    assert _checkpoint(config) == before == pending - 1
    sink.start()
    try:
        assert [o.article_ids for o in sender.deliver().sent] == [[pending]]
        assert sender.deliver().sent == []
        assert len(sink.wait_for(1)) == 1
    finally:
        sink.stop()
    assert _checkpoint(config) == pending + 1


def test_an_edited_rule_starts_at_the_newest_article_whatever_its_checkpoint(tmp_path):
    config = make_config(tmp_path, alerts=[{"name": "watch", "to": "reader@example.org", "query": "visa"}])
    sender = _sender(config)
    add_article(config, "Harbour news", "Ships and ports.")
    sender.deliver()
    first = _checkpoint(config)
    backlog = add_article(config, "Nurses", "Nursing care workers.")
    edited = make_config(tmp_path, alerts=[{"name": "watch", "to": "reader@example.org", "query": "nursing"}])
    sender = _sender(edited)
    assert _checkpoint(edited) == first  # unchanged, but below the new baseline
    assert sender.deliver().sent == []
    fresh = add_article(edited, "More nurses", "Nursing visas.")
    assert [o.article_ids for o in sender.deliver().sent] == [[fresh]]
    assert backlog < fresh
