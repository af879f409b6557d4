-- Moderation: hidden reviews, visitors' reports, merged restaurants' old addresses, photos
-- waiting to be deleted, moderators' local sign-ins and the audit log.

-- A hidden review stays in the table (hiding is reversible) but leaves every page and its
-- restaurant's running totals, which count visible reviews only.
ALTER TABLE review ADD COLUMN hidden INTEGER NOT NULL DEFAULT FALSE CHECK (hidden IN (0, 1));

-- One row per report; the same visitor (a hash of their browser's CSRF cookie) reporting a
-- review again counts once. Resolved when a moderator acts on the review.
CREATE TABLE review_report (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    review_id    INTEGER NOT NULL REFERENCES review (id) ON DELETE CASCADE,
    reason       TEXT    NOT NULL CHECK (reason IN ('spam', 'offensive', 'off-topic', 'other')),
    note         TEXT    NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    reporter     TEXT    NOT NULL,
    reported_at  TEXT    NOT NULL,
    resolved_at  TEXT    NULL,
    UNIQUE (review_id, reporter)
);
CREATE INDEX review_report_open ON review_report (review_id) WHERE resolved_at IS NULL;

-- A restaurant merged into another: its old address answers 301 to the one it became.
CREATE TABLE restaurant_redirect (
    old_id INTEGER PRIMARY KEY,
    new_id INTEGER NOT NULL REFERENCES restaurant (id) ON DELETE CASCADE
);
CREATE INDEX restaurant_redirect_by_new ON restaurant_redirect (new_id);

-- Photos whose review no longer shows them, written in the same transaction as the change and
-- removed once both renditions are deleted from storage: an outage cannot leave an orphan.
CREATE TABLE photo_deletion (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_name TEXT    NOT NULL,
    queued_at  TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);

-- One-time sign-in links printed at startup on a loopback address, and the sessions they open;
-- only a SHA-256 of each token is kept.
CREATE TABLE moderator_sign_in (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('link', 'session')),
    expires_at TEXT NOT NULL
);

-- Every moderation action: who, when, what, and the values before and after (JSON text).
CREATE TABLE moderation_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    moderator    TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    before_value TEXT NOT NULL DEFAULT '',
    after_value  TEXT NOT NULL DEFAULT ''
);
