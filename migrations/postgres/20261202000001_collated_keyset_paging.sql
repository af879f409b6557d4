-- Names in the order people expect: ICU's root collation ("Äpfel & Birnen" beside "apple tree
-- diner", "Zum Löwen" last) rather than byte order, with an index in exactly that order so that
-- every page of the list is one index range scan (keyset paging), however deep.
CREATE INDEX restaurant_by_collated_name ON restaurant ((name COLLATE "und-x-icu"), id);
DROP INDEX restaurant_by_name;

-- The number of restaurants for the pager, kept exact by a trigger in the inserting
-- transaction, so no page view counts every row.
CREATE TABLE restaurant_total (
    only_row    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    restaurants BIGINT  NOT NULL CHECK (restaurants >= 0)
);
INSERT INTO restaurant_total (restaurants) SELECT COUNT(*) FROM restaurant;

CREATE FUNCTION restaurant_total_follows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE restaurant_total SET restaurants = restaurants + 1;
    ELSE
        UPDATE restaurant_total SET restaurants = restaurants - 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER restaurant_counted AFTER INSERT OR DELETE ON restaurant
    FOR EACH ROW EXECUTE FUNCTION restaurant_total_follows();
