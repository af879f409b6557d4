-- Names in the order people expect: SQLite has no Unicode collation, so each name carries a
-- sort key computed by the app (ICU4X's root collation, the order PostgreSQL's "und-x-icu"
-- gives), indexed so that every page of the list is one index range scan (keyset paging).
-- The app fills in keys that are missing or were made by another collation version at startup.
ALTER TABLE restaurant ADD COLUMN name_key BLOB;
CREATE INDEX restaurant_by_name_key ON restaurant (name_key, id);
DROP INDEX restaurant_by_name;

CREATE TABLE sort_key_version (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    version  TEXT    NOT NULL
);

-- The number of restaurants for the pager, kept exact by triggers in the inserting
-- transaction, so no page view counts every row.
CREATE TABLE restaurant_total (
    only_row    INTEGER PRIMARY KEY CHECK (only_row = 1),
    restaurants INTEGER NOT NULL CHECK (restaurants >= 0)
);
INSERT INTO restaurant_total (only_row, restaurants) SELECT 1, COUNT(*) FROM restaurant;

CREATE TRIGGER restaurant_counted AFTER INSERT ON restaurant
BEGIN
    UPDATE restaurant_total SET restaurants = restaurants + 1;
END;

CREATE TRIGGER restaurant_uncounted AFTER DELETE ON restaurant
BEGIN
    UPDATE restaurant_total SET restaurants = restaurants - 1;
END;
