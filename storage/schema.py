"""The database schema as an ordered list of forward migrations.

`PRAGMA user_version` holds how many migrations a database has had; opening a
database applies the missing ones in order, each in its own transaction.
Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

# Kana, Han and Hangul (and half-width katakana): the characters `articles_cjk_grams` indexes.
_CJK_GLOB = "'*[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uff66-\uff9f]*'"

MIGRATIONS: list[str] = [
    # 1: the core tables.
    """
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        country TEXT,
        lang TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_attempt_at TEXT,
        last_success_at TEXT,
        last_new_item_at TEXT,
        last_error TEXT,
        last_error_at TEXT,
        next_due_at TEXT,
        backoff_seconds REAL,
        broken INTEGER NOT NULL DEFAULT 0,
        broken_reason TEXT
    );
    CREATE TABLE articles (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        link TEXT,
        source TEXT,
        country TEXT,
        title TEXT,
        published_at TEXT,
        fetched_at TEXT NOT NULL,
        lang TEXT,
        text TEXT NOT NULL DEFAULT '',
        summary TEXT,
        text_origin TEXT NOT NULL DEFAULT 'page',
        extraction_note TEXT,
        content_hash TEXT NOT NULL,
        guid TEXT
    );
    CREATE INDEX articles_content_hash ON articles(content_hash);
    CREATE INDEX articles_published_at ON articles(published_at);
    CREATE INDEX articles_source ON articles(source);
    CREATE TABLE article_urls (
        url TEXT PRIMARY KEY,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        source TEXT,
        seen_at TEXT NOT NULL
    );
    CREATE INDEX article_urls_article ON article_urls(article_id);
    CREATE TABLE mentions (
        id INTEGER PRIMARY KEY,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('visa', 'sector', 'country', 'org')),
        label TEXT NOT NULL,
        country TEXT,
        text TEXT NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        sentence TEXT
    );
    CREATE INDEX mentions_article ON mentions(article_id);
    CREATE INDEX mentions_kind_label ON mentions(kind, label);
    CREATE TABLE figures (
        id INTEGER PRIMARY KEY,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        value REAL NOT NULL,
        unit TEXT NOT NULL,
        year INTEGER,
        visa TEXT,
        text TEXT NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        sentence TEXT
    );
    CREATE INDEX figures_article ON figures(article_id);
    CREATE INDEX figures_visa ON figures(visa);
    CREATE TABLE fetches (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL,
        source TEXT,
        status INTEGER,
        error TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        fetched_at TEXT NOT NULL,
        bytes INTEGER NOT NULL DEFAULT 0,
        elapsed REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX fetches_url ON fetches(url);
    CREATE INDEX fetches_source ON fetches(source, fetched_at);
    CREATE TABLE http_cache (
        url TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        content_hash TEXT,
        unchanged_200s INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: full-text search, kept in sync by triggers. unicode61 serves word
    # queries (phrases, prefixes, NEAR); trigram serves Japanese and Korean,
    # which unicode61 cannot segment. Only rows with kana, Han or Hangul go
    # into the trigram index: it is the costlier of the two to maintain (so an
    # FTS5 'integrity-check' on articles_fts_cjk reports the rows left out).
    """
    CREATE VIRTUAL TABLE articles_fts USING fts5(
        title, text, content='articles', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    );
    CREATE VIRTUAL TABLE articles_fts_cjk USING fts5(
        title, text, content='articles', content_rowid='id', tokenize='trigram'
    );
    CREATE TRIGGER articles_fts_ai AFTER INSERT ON articles BEGIN
        INSERT INTO articles_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
    END;
    CREATE TRIGGER articles_fts_cjk_ai AFTER INSERT ON articles
    WHEN coalesce(new.title, '') || new.text GLOB '*[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]*' BEGIN
        INSERT INTO articles_fts_cjk(rowid, title, text) VALUES (new.id, new.title, new.text);
    END;
    CREATE TRIGGER articles_fts_ad AFTER DELETE ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
    END;
    CREATE TRIGGER articles_fts_cjk_ad AFTER DELETE ON articles
    WHEN coalesce(old.title, '') || old.text GLOB '*[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]*' BEGIN
        INSERT INTO articles_fts_cjk(articles_fts_cjk, rowid, title, text)
            VALUES ('delete', old.id, old.title, old.text);
    END;
    CREATE TRIGGER articles_fts_au AFTER UPDATE OF title, text ON articles BEGIN
        INSERT INTO articles_fts(articles_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
        INSERT INTO articles_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
    END;
    CREATE TRIGGER articles_fts_cjk_au_old AFTER UPDATE OF title, text ON articles
    WHEN coalesce(old.title, '') || old.text GLOB '*[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]*' BEGIN
        INSERT INTO articles_fts_cjk(articles_fts_cjk, rowid, title, text)
            VALUES ('delete', old.id, old.title, old.text);
    END;
    CREATE TRIGGER articles_fts_cjk_au_new AFTER UPDATE OF title, text ON articles
    WHEN coalesce(new.title, '') || new.text GLOB '*[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]*' BEGIN
        INSERT INTO articles_fts_cjk(rowid, title, text) VALUES (new.id, new.title, new.text);
    END;
    """,
    # 3: alert bookkeeping: when each rule was first seen, and the exactly-once ledger.
    """
    CREATE TABLE alert_rules (
        name TEXT PRIMARY KEY,
        first_seen_at TEXT NOT NULL,
        first_article_id INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE alerts_sent (
        rule TEXT NOT NULL,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (rule, article_id)
    );
    """,
    # 4 (alerts, issue 5): each recipient's copy of an alert, recorded once the
    # SMTP server accepted it, so a retry after one recipient failed never
    # re-sends to the others; `alerts_sent` is written when all have it.
    """
    CREATE TABLE alert_deliveries (
        rule TEXT NOT NULL,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (rule, article_id, recipient)
    );
    """,
    # 5: items whose page could not be had for a passing reason (timeout, 5xx,
    # Retry-After), waiting for a later cycle instead of being stored with the
    # feed summary at once.
    """
    CREATE TABLE deferred_items (
        url TEXT PRIMARY KEY,
        source TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        updated_at TEXT NOT NULL
    );
    """,
    # 6: the parse settings a cached body was read with: a source whose selectors,
    # fields or limits changed is read again even when the server says "not modified".
    """
    ALTER TABLE http_cache ADD COLUMN settings TEXT;
    """,
    # 7 (alerts): the hash of each rule's conditions, so an edited rule starts
    # afresh instead of sending the backlog; the digest slots already sent to
    # each recipient, so one slot is never sent twice; and messages the SMTP
    # server refused for good (5xx), retried a few times and then given up.
    """
    ALTER TABLE alert_rules ADD COLUMN conditions_hash TEXT;
    CREATE TABLE alert_digests (
        rule TEXT NOT NULL,
        recipient TEXT NOT NULL,
        slot TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        articles INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (rule, recipient, slot)
    );
    CREATE TABLE alert_failures (
        rule TEXT NOT NULL,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        updated_at TEXT NOT NULL,
        gave_up_at TEXT,
        PRIMARY KEY (rule, article_id, recipient)
    );
    """,
    # 8 (issue 8, the web UI): views Datasette shows, since it opens the database read-only and cannot
    # create them itself. `articles_cjk` is `articles` again, so that the UI can search it through the
    # trigram index (Japanese, Korean); `tagged_articles` has one row per article and visa or sector
    # it mentions, so that the UI can facet articles by visa and by sector.
    """
    CREATE VIEW articles_cjk AS
        SELECT id, title, link, url, source, country, lang, published_at, fetched_at, summary, text
        FROM articles;
    CREATE VIEW tagged_articles AS
        SELECT m.article_id, a.title, coalesce(a.link, a.url) AS link, a.source, a.country,
            a.lang, a.published_at, a.fetched_at, m.kind,
            CASE WHEN m.kind = 'visa' THEN m.label END AS visa,
            CASE WHEN m.kind = 'sector' THEN m.label END AS sector
        FROM (SELECT DISTINCT article_id, kind, label FROM mentions WHERE kind IN ('visa', 'sector')) m
        JOIN articles a ON a.id = m.article_id;
    """,
    # 9 (issue 12, retention): when `[storage] keep_days` pruning emptied an
    # article's text; the row, its tags and figures stay.
    """
    ALTER TABLE articles ADD COLUMN text_pruned_at TEXT;
    """,
    # 10 (issue 13): what each figure counts (recognitions, quota, salary_threshold ...);
    # NULL for figures stored before it until `monitor retag` fills it in.
    """
    ALTER TABLE figures ADD COLUMN metric TEXT;
    CREATE INDEX figures_metric ON figures(metric);
    """,
    # 11 (issue 10): search at a million articles. Indexes that let a selective tag filter drive a
    # search and answer the filters' EXISTS from the index alone (mentions_kind_label is replaced by
    # one that also holds article_id; the NOCASE one serves `--visa KR:*`, a case-insensitive LIKE
    # prefix); the date every unranked listing sorts by; the source country. And an index of the one-
    # and two-character substrings of Japanese, Chinese and Korean text, which neither FTS5 tokenizer
    # finds (trigram needs three): the words are the distinct characters and character pairs of each
    # run of those scripts (`storage.queries.cjk_grams`, a Python function every connection of
    # `open_db` registers; existing rows are filled here). It only picks candidates: a search still
    # checks them with the substring test, so rows it keeps after an article changed or went (it is
    # contentless, with nothing to delete by) cost a check, never a wrong result.
    f"""
    DROP INDEX mentions_kind_label;
    CREATE INDEX mentions_kind_label_article ON mentions(kind, label, article_id);
    CREATE INDEX mentions_kind_label_nocase ON mentions(kind, label COLLATE NOCASE, article_id);
    CREATE INDEX mentions_kind_country ON mentions(kind, country, article_id);
    CREATE INDEX articles_date ON articles(coalesce(published_at, fetched_at));
    CREATE INDEX articles_country ON articles(country);
    CREATE VIRTUAL TABLE articles_cjk_grams USING fts5(
        grams, content='', columnsize=0, detail='none', tokenize='ascii'
    );
    INSERT INTO articles_cjk_grams(rowid, grams)
        SELECT id, cjk_grams(title, text) FROM articles
        WHERE coalesce(title, '') || text GLOB {_CJK_GLOB};
    CREATE TRIGGER articles_cjk_grams_ai AFTER INSERT ON articles
    WHEN coalesce(new.title, '') || new.text GLOB {_CJK_GLOB} BEGIN
        INSERT INTO articles_cjk_grams(rowid, grams) VALUES (new.id, cjk_grams(new.title, new.text));
    END;
    CREATE TRIGGER articles_cjk_grams_au AFTER UPDATE OF title, text ON articles
    WHEN coalesce(new.title, '') || new.text GLOB {_CJK_GLOB} BEGIN
        INSERT INTO articles_cjk_grams(rowid, grams) VALUES (new.id, cjk_grams(new.title, new.text));
    END;
    """,
    # 12 (issue 10): each alert rule's checkpoint. Every article up to `checked_up_to` was read for the
    # rule and either does not match it or is in its ledger, so evaluating the rule after a crawl reads
    # only the articles above it: the cost follows the new articles, not the database.
    """
    ALTER TABLE alert_rules ADD COLUMN checked_up_to INTEGER NOT NULL DEFAULT 0;
    """,
    # 13 (issue 11, backfill from news archives): the ledger of `monitor backfill`, one row per WARC file:
    # how far it was read (records and the byte offset of the next record, where a re-run resumes),
    # what it gave, and whether it is finished (a re-run skips it).
    """
    CREATE TABLE backfill_files (
        file TEXT PRIMARY KEY,
        records_read INTEGER NOT NULL DEFAULT 0,
        next_offset BIGINT NOT NULL DEFAULT 0,  -- BIGINT: files over 2 GB on PostgreSQL too
        stored INTEGER NOT NULL DEFAULT 0,
        known INTEGER NOT NULL DEFAULT 0,
        broken INTEGER NOT NULL DEFAULT 0,
        finished INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT,
        last_error TEXT
    );
    """,
    # 14 (issue 10, several daemons on one database): a message being sent is claimed first, one row per
    # rule, article and recipient; a second sender's claim of the same finds the row and sends nothing.
    # Claims go when the message is recorded (or failed); one older than its lease is a sender that died.
    """
    CREATE TABLE alert_claims (
        rule TEXT NOT NULL,
        article_id INTEGER NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        claimed_by TEXT NOT NULL,
        PRIMARY KEY (rule, article_id, recipient)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
