-- Moderation: hidden reviews, visitors' reports, merged restaurants' old addresses, photos
-- waiting to be deleted, moderators' local sign-ins and the audit log.

-- A hidden review stays in the table (hiding is reversible) but leaves every page and its
-- restaurant's running totals, which count visible reviews only.
ALTER TABLE review ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT FALSE;

-- One row per report; the same visitor (a hash of their browser's CSRF cookie) reporting a
-- review again counts once. Resolved when a moderator acts on the review.
CREATE TABLE review_report (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    review_id    BIGINT       NOT NULL REFERENCES review (id) ON DELETE CASCADE,
    reason       VARCHAR(20)  NOT NULL CHECK (reason IN ('spam', 'offensive', 'off-topic', 'other')),
    note         VARCHAR(500) NOT NULL DEFAULT '',
    reporter     VARCHAR(64)  NOT NULL,
    reported_at  TIMESTAMPTZ  NOT NULL,
    resolved_at  TIMESTAMPTZ  NULL,
    UNIQUE (review_id, reporter)
);
CREATE INDEX review_report_open ON review_report (review_id) WHERE resolved_at IS NULL;

-- A restaurant merged into another: its old address answers 301 to the one it became.
CREATE TABLE restaurant_redirect (
    old_id BIGINT PRIMARY KEY,
    new_id BIGINT NOT NULL REFERENCES restaurant (id) ON DELETE CASCADE
);
CREATE INDEX restaurant_redirect_by_new ON restaurant_redirect (new_id);

-- Photos whose review no longer shows them, written in the same transaction as the change and
-- removed once both renditions are deleted from storage: an outage cannot leave an orphan.
CREATE TABLE photo_deletion (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    photo_name VARCHAR(100) NOT NULL,
    queued_at  TIMESTAMPTZ  NOT NULL,
    attempts   BIGINT       NOT NULL DEFAULT 0
);

-- One-time sign-in links printed at startup on a loopback address, and the sessions they open;
-- only a SHA-256 of each token is kept.
CREATE TABLE moderator_sign_in (
    token_hash VARCHAR(64) PRIMARY KEY,
    kind       VARCHAR(10) NOT NULL CHECK (kind IN ('link', 'session')),
    expires_at TIMESTAMPTZ NOT NULL
);

-- Every moderation action: who, when, what, and the values before and after (JSON text).
CREATE TABLE moderation_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           TIMESTAMPTZ  NOT NULL,
    moderator    VARCHAR(200) NOT NULL,
    action       VARCHAR(40)  NOT NULL,
    subject      VARCHAR(100) NOT NULL,
    before_value TEXT         NOT NULL DEFAULT '',
    after_value  TEXT         NOT NULL DEFAULT ''
);
