-- Finding a restaurant: each name's folded search key (lower case, no accents, single spaces;
-- made by the app, which fills in rows that have none at startup), matched with LIKE, and
-- looked up exactly to spot a duplicate restaurant.
ALTER TABLE restaurant ADD COLUMN name_search TEXT;
CREATE INDEX restaurant_by_search_key ON restaurant (name_search);

-- The best-rated and most-reviewed orders, each an index in exactly its order so that every
-- page is one index range scan (keyset paging). Descending orders are negated so that the
-- whole key compares one way: (-average, -count, name, id) ascending. No reviews counts as an
-- average of 0, after every rated restaurant.
CREATE INDEX restaurant_by_rating ON restaurant (
    (-(CASE WHEN review_count = 0 THEN 0::float8 ELSE rating_sum::float8 / review_count END)),
    (-review_count),
    (name COLLATE "und-x-icu"),
    id
);
CREATE INDEX restaurant_by_review_count ON restaurant ((-review_count), (name COLLATE "und-x-icu"), id);
