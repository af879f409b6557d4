-- Restaurants and their reviews. Limits match the Azure sample's models and are enforced here
-- as well as in the domain types, so no code path can store an invalid row.
CREATE TABLE restaurant (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           VARCHAR(50)  NOT NULL CHECK (char_length(btrim(name)) BETWEEN 1 AND 50),
    street_address VARCHAR(50)  NOT NULL DEFAULT '',
    description    VARCHAR(250) NOT NULL CHECK (char_length(btrim(description)) BETWEEN 1 AND 250),
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    -- Running totals, updated in the same transaction as each review insert, so the index page
    -- shows averages without aggregating every review.
    review_count   BIGINT NOT NULL DEFAULT 0 CHECK (review_count >= 0),
    rating_sum     BIGINT NOT NULL DEFAULT 0 CHECK (rating_sum BETWEEN review_count AND 5 * review_count)
);

CREATE INDEX restaurant_by_name ON restaurant (name, id);

CREATE TABLE review (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    restaurant_id BIGINT       NOT NULL REFERENCES restaurant (id) ON DELETE CASCADE,
    user_name     VARCHAR(20)  NOT NULL CHECK (char_length(btrim(user_name)) BETWEEN 1 AND 20),
    rating        SMALLINT     NOT NULL CHECK (rating BETWEEN 1 AND 5),
    review_text   VARCHAR(500) NOT NULL DEFAULT '',
    review_date   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    image_name    VARCHAR(100) NULL CHECK (image_name IS NULL OR char_length(image_name) BETWEEN 1 AND 100)
);

CREATE INDEX review_newest_first ON review (restaurant_id, id DESC);
