-- Restaurants and their reviews. Limits match the Azure sample's models and are enforced here
-- as well as in the domain types, so no code path can store an invalid row.
-- SQLite's length() counts characters of TEXT values, like PostgreSQL's char_length().
CREATE TABLE restaurant (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL CHECK (typeof(name) = 'text' AND length(trim(name)) BETWEEN 1 AND 50 AND length(name) <= 50),
    street_address TEXT    NOT NULL DEFAULT '' CHECK (typeof(street_address) = 'text' AND length(street_address) <= 50),
    description    TEXT    NOT NULL CHECK (typeof(description) = 'text' AND length(trim(description)) BETWEEN 1 AND 250 AND length(description) <= 250),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Running totals, updated in the same transaction as each review insert, so the index page
    -- shows averages without aggregating every review.
    review_count   INTEGER NOT NULL DEFAULT 0 CHECK (review_count >= 0),
    rating_sum     INTEGER NOT NULL DEFAULT 0 CHECK (rating_sum BETWEEN review_count AND 5 * review_count)
);

CREATE INDEX restaurant_by_name ON restaurant (name, id);

CREATE TABLE review (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    restaurant_id INTEGER NOT NULL REFERENCES restaurant (id) ON DELETE CASCADE,
    user_name     TEXT    NOT NULL CHECK (typeof(user_name) = 'text' AND length(trim(user_name)) BETWEEN 1 AND 20 AND length(user_name) <= 20),
    rating        INTEGER NOT NULL CHECK (typeof(rating) = 'integer' AND rating BETWEEN 1 AND 5),
    review_text   TEXT    NOT NULL DEFAULT '' CHECK (typeof(review_text) = 'text' AND length(review_text) <= 500),
    review_date   TEXT    NOT NULL,
    image_name    TEXT    NULL CHECK (image_name IS NULL OR length(image_name) BETWEEN 1 AND 100)
);

CREATE INDEX review_newest_first ON review (restaurant_id, id DESC);
