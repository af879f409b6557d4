//! Pages of the restaurant list and of a restaurant's reviews, by keyset: a page starts after
//! (or before) a row named by its id, so page 500 is one index range scan like page 1. Each page
//! is one statement, its total included (the restaurant total is kept by a trigger; a
//! restaurant's review count is stored with it). Old `?page=N` links still work: by a page map
//! for the whole list (page_numbers.rs), by OFFSET within a search or a restaurant's reviews.

use std::sync::LazyLock;

use time::OffsetDateTime;

use super::queries::{Restaurant, RestaurantRow, Review, ReviewRow};
use super::search_key::contains_pattern;
use super::sql::Param;
use super::{Database, DbError};
use crate::domain::RestaurantId;

/// Where a page of a list starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAt {
    First,
    /// The page after the row with this id (the "next" link).
    After(i64),
    /// The page before the row with this id (the "previous" link).
    Before(i64),
    Last,
    /// Page N counted from the start (bookmarks from before keyset paging): OFFSET.
    Number(u32),
}

/// The four statements of a list, each taking `$1` (a cursor id or an offset) and `$2` (or, for
/// reviews, `$3`) the page size, and each returning rows in display order.
struct PageQueries {
    offset: String,
    after: String,
    before: String,
    last: String,
}

impl PageQueries {
    /// The statement for `at` and its `$1`.
    fn pick(&self, at: PageAt, per_page: u32) -> (&str, i64) {
        match at {
            PageAt::First => (&self.offset, 0),
            PageAt::Number(n) => (
                &self.offset,
                i64::from(n.saturating_sub(1)) * i64::from(per_page),
            ),
            PageAt::After(id) => (&self.after, id),
            PageAt::Before(id) => (&self.before, id),
            PageAt::Last => (&self.last, 0),
        }
    }
}

/// The database a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The orders of the restaurant list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sort {
    /// By name, as people expect (ICU's root collation).
    #[default]
    Name,
    /// Best average first; ties by more reviews, then by name. Unrated restaurants last.
    Rating,
    /// Most reviews first; ties by name.
    Reviews,
}

impl Sort {
    pub const ALL: [Sort; 3] = [Sort::Name, Sort::Rating, Sort::Reviews];

    /// The `?sort=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Rating => "rating",
            Sort::Reviews => "reviews",
        }
    }

    pub fn parse(text: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|sort| sort.as_str() == text)
    }

    /// The sort keys, all ascending, then `id`: descending orders are negated so that a row
    /// comparison `(k1, k2, id) > (...)` finds the next page. Each list has an index in exactly
    /// this order (migrations `collated_keyset_paging` and `search_and_sorts`).
    pub(super) fn keys(self, backend: Backend) -> &'static [&'static str] {
        const PG_NAME: &str = r#"name COLLATE "und-x-icu""#;
        match (backend, self) {
            (Backend::Postgres, Sort::Name) => &[PG_NAME],
            (Backend::Postgres, Sort::Rating) => &[
                "-(CASE WHEN review_count = 0 THEN 0::float8 ELSE rating_sum::float8 / review_count END)",
                "-review_count",
                PG_NAME,
            ],
            (Backend::Postgres, Sort::Reviews) => &["-review_count", PG_NAME],
            (Backend::Sqlite, Sort::Name) => &["name_key"],
            (Backend::Sqlite, Sort::Rating) => &[
                "-(CASE WHEN review_count = 0 THEN 0.0 ELSE CAST(rating_sum AS REAL) / review_count END)",
                "-review_count",
                "name_key",
            ],
            (Backend::Sqlite, Sort::Reviews) => &["-review_count", "name_key"],
        }
    }
}

/// What the restaurant list shows: the restaurants whose folded name contains `search` (all
/// when `None`), in `sort` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestaurantFilter {
    pub search: Option<String>,
    pub sort: Sort,
}

/// The restaurant list in `keys` order (see [`Sort::keys`]), with an index on `(keys, id)`.
/// Without a search the total comes from `restaurant_total` in the same statement (a LEFT
/// JOIN, so an empty page still says how many there are). With one (`$3`, a LIKE pattern on
/// the folded name) the total is a COUNT(*) of the matches, which scans the names once: fine
/// at this scale, and a search is never the page everyone loads.
fn restaurant_queries(keys: &[&str], search: bool) -> PageQueries {
    let alias = |i: usize| match i {
        0 => "sort_key".to_owned(),
        i => format!("sort_key_{}", i + 1),
    };
    let selected: String = keys
        .iter()
        .enumerate()
        .map(|(i, key)| format!(", {key} AS {}", alias(i)))
        .collect();
    let outer_order: String = (0..keys.len())
        .map(|i| format!("r.{}, ", alias(i)))
        .collect();
    let key_list = keys.join(", ");
    let total = if search {
        r"(SELECT COUNT(*) AS restaurants FROM restaurant WHERE name_search LIKE $3 ESCAPE '\') t"
    } else {
        "restaurant_total t"
    };
    let matching = r"name_search LIKE $3 ESCAPE '\'";
    let page = |cursor: Option<&str>, direction: &str, offset: bool| {
        let offset = if offset { " OFFSET $1" } else { "" };
        let condition = match (search, cursor) {
            (false, None) => String::new(),
            (false, Some(cursor)) => format!("WHERE {cursor}"),
            (true, None) => format!("WHERE {matching}"),
            (true, Some(cursor)) => format!("WHERE {matching} AND {cursor}"),
        };
        let order: String = keys
            .iter()
            .map(|key| format!("{key} {direction}, "))
            .collect();
        format!(
            "SELECT t.restaurants, r.id, r.name, r.street_address, r.description, r.review_count, r.rating_sum \
             FROM {total} LEFT JOIN (\
                 SELECT id, name, street_address, description, review_count, rating_sum{selected} \
                 FROM restaurant {condition} ORDER BY {order}id {direction} LIMIT $2{offset}\
             ) r ON 1 = 1 ORDER BY {outer_order}r.id"
        )
    };
    let cursor = |op: &str| {
        format!("({key_list}, id) {op} (SELECT {key_list}, id FROM restaurant WHERE id = $1)")
    };
    PageQueries {
        offset: page(None, "ASC", true),
        after: page(Some(&cursor(">")), "ASC", false),
        before: page(Some(&cursor("<")), "DESC", false),
        last: page(None, "DESC", true),
    }
}

/// A restaurant with one page of its visible reviews (hidden ones are left out, as they are
/// from its totals), newest first, on the `(restaurant_id, id DESC)` index; `$1` is the
/// restaurant, `$2` the cursor or offset, `$3` the page size.
fn details_queries() -> PageQueries {
    let page = |condition: &str, direction: &str, offset: bool| {
        let offset = if offset { " OFFSET $2" } else { "" };
        format!(
            "SELECT r.id, r.name, r.street_address, r.description, r.review_count, r.rating_sum, \
                    v.id, v.user_name, v.rating, v.review_text, v.review_date, v.image_name \
             FROM restaurant r LEFT JOIN (\
                 SELECT id, user_name, rating, review_text, review_date, image_name FROM review \
                 WHERE restaurant_id = $1 AND NOT hidden{condition} ORDER BY id {direction} LIMIT $3{offset}\
             ) v ON 1 = 1 WHERE r.id = $1 ORDER BY v.id DESC"
        )
    };
    PageQueries {
        offset: page("", "DESC", true),
        after: page(" AND id < $2", "DESC", false),
        before: page(" AND id > $2", "ASC", false),
        last: page("", "ASC", true),
    }
}

/// Every restaurant list statement: per backend, per sort, without and with a search.
struct RestaurantStatements {
    plain: PageQueries,
    search: PageQueries,
}

static RESTAURANTS: LazyLock<[[RestaurantStatements; 3]; 2]> = LazyLock::new(|| {
    [Backend::Sqlite, Backend::Postgres].map(|backend| {
        Sort::ALL.map(|sort| RestaurantStatements {
            plain: restaurant_queries(sort.keys(backend), false),
            search: restaurant_queries(sort.keys(backend), true),
        })
    })
});
static DETAILS: LazyLock<PageQueries> = LazyLock::new(details_queries);

fn restaurant_statements(backend: Backend, sort: Sort) -> &'static RestaurantStatements {
    let b = match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => 1,
    };
    let s = Sort::ALL.iter().position(|x| *x == sort).unwrap_or(0);
    &RESTAURANTS[b][s]
}

/// The exact SQL the app sends for a page of the restaurant list without a search (`$1` the
/// cursor id or offset, `$2` the page size), for benchmarks to run as the app does.
pub fn restaurant_page_sql(backend: Backend, sort: Sort, at: PageAt) -> &'static str {
    restaurant_statements(backend, sort).plain.pick(at, 1).0
}

/// The exact SQL the app sends for a restaurant's details page (`$1` the restaurant, `$2` the
/// cursor id or offset, `$3` the page size); the same on both backends.
pub fn details_page_sql(at: PageAt) -> &'static str {
    DETAILS.pick(at, 1).0
}

/// `total, id, name, street_address, description, review_count, rating_sum`, the restaurant
/// columns NULL on an empty page.
type TotalAndRestaurant = (
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// A restaurant's columns, then a review's (NULL when the page has none).
type RestaurantAndReview = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i16>,
    Option<String>,
    Option<OffsetDateTime>,
    Option<String>,
);

/// How many rows the last page has, of `total` in pages of `per_page`.
pub fn last_page_len(total: i64, per_page: u32) -> usize {
    let per_page = i64::from(per_page);
    match total.max(0) % per_page {
        0 if total > 0 => per_page as usize,
        rest => rest as usize,
    }
}

impl Database {
    /// One page of restaurants in name order and how many there are in all.
    pub async fn restaurant_page(
        &self,
        at: PageAt,
        per_page: u32,
    ) -> Result<(Vec<Restaurant>, i64), DbError> {
        self.restaurant_list(&RestaurantFilter::default(), at, per_page)
            .await
    }

    /// One page of the restaurants `filter` picks, in its order, and how many it picks.
    // The search is what a visitor typed: only whether there is one is recorded.
    #[tracing::instrument(name = "db.restaurant_page", skip(self, filter), fields(sort = ?filter.sort, searching = filter.search.is_some()))]
    pub async fn restaurant_list(
        &self,
        filter: &RestaurantFilter,
        at: PageAt,
        per_page: u32,
    ) -> Result<(Vec<Restaurant>, i64), DbError> {
        // A numbered page of the whole list starts where the page map says (see
        // page_numbers.rs), not after an OFFSET scan.
        let at = match (at, &filter.search) {
            (PageAt::Number(number), None) => {
                self.numbered_page(filter.sort, number, per_page).await?
            }
            _ => at,
        };
        let statements = restaurant_statements(self.backend(), filter.sort);
        let pattern = filter.search.as_deref().map(contains_pattern);
        let queries = match &pattern {
            Some(_) => &statements.search,
            None => &statements.plain,
        };
        let (sql, cursor) = queries.pick(at, per_page);
        let mut params: Vec<Param> = vec![cursor.into(), i64::from(per_page).into()];
        if let Some(pattern) = &pattern {
            params.push(pattern.as_str().into());
        }
        let rows: Vec<TotalAndRestaurant> = self.fetch_all(sql, &params).await?;
        let total = rows.first().map_or(0, |row| row.0);
        let mut restaurants: Vec<Restaurant> = rows
            .into_iter()
            .filter_map(|(_, id, name, street, description, count, sum)| {
                Some(Restaurant::from(
                    (id?, name?, street?, description?, count?, sum?) as RestaurantRow,
                ))
            })
            .collect();
        if at == PageAt::Last {
            let keep = last_page_len(total, per_page);
            restaurants.drain(..restaurants.len().saturating_sub(keep));
        }
        Ok((restaurants, total))
    }

    /// A restaurant and one page of its reviews, newest first; `None` for an unknown id.
    #[tracing::instrument(name = "db.details_page", skip(self), fields(id = id.get()))]
    pub async fn details_page(
        &self,
        id: RestaurantId,
        at: PageAt,
        per_page: u32,
    ) -> Result<Option<(Restaurant, Vec<Review>)>, DbError> {
        let (sql, cursor) = DETAILS.pick(at, per_page);
        let rows: Vec<RestaurantAndReview> = self
            .fetch_all(
                sql,
                &[id.get().into(), cursor.into(), i64::from(per_page).into()],
            )
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let restaurant = Restaurant::from((
            first.0,
            first.1.clone(),
            first.2.clone(),
            first.3.clone(),
            first.4,
            first.5,
        ));
        let mut reviews: Vec<Review> = rows
            .into_iter()
            .filter_map(|row| {
                let review: ReviewRow = (row.6?, row.7?, row.8?, row.9?, row.10?, row.11);
                Some(Review::from(review))
            })
            .collect();
        if at == PageAt::Last {
            // The oldest page's worth, newest first: the last page is its tail.
            let keep = last_page_len(restaurant.ratings.review_count, per_page);
            reviews.drain(..reviews.len().saturating_sub(keep));
        }
        Ok(Some((restaurant, reviews)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name-sorted list's statements as they were before search and sorts, which the
    /// benchmark runs: they must not change.
    fn statements_before_search(sort: &str) -> [String; 4] {
        let page = |condition: &str, direction: &str, offset: bool| {
            let offset = if offset { " OFFSET $1" } else { "" };
            format!(
                "SELECT t.restaurants, r.id, r.name, r.street_address, r.description, r.review_count, r.rating_sum \
                 FROM restaurant_total t LEFT JOIN (\
                     SELECT id, name, street_address, description, review_count, rating_sum, {sort} AS sort_key \
                     FROM restaurant {condition} ORDER BY {sort} {direction}, id {direction} LIMIT $2{offset}\
                 ) r ON 1 = 1 ORDER BY r.sort_key, r.id"
            )
        };
        let cursor = |op: &str| {
            format!("WHERE ({sort}, id) {op} (SELECT {sort}, id FROM restaurant WHERE id = $1)")
        };
        [
            page("", "ASC", true),
            page(&cursor(">"), "ASC", false),
            page(&cursor("<"), "DESC", false),
            page("", "DESC", true),
        ]
    }

    #[test]
    fn the_plain_name_sorted_list_sends_the_statements_it_always_has() {
        for (backend, sort) in [
            (Backend::Sqlite, "name_key"),
            (Backend::Postgres, r#"name COLLATE "und-x-icu""#),
        ] {
            let [offset, after, before, last] = statements_before_search(sort);
            let sql = |at| restaurant_page_sql(backend, Sort::Name, at);
            assert_eq!(sql(PageAt::First), offset);
            assert_eq!(sql(PageAt::Number(3)), offset);
            assert_eq!(sql(PageAt::After(7)), after);
            assert_eq!(sql(PageAt::Before(7)), before);
            assert_eq!(sql(PageAt::Last), last);
        }
        assert!(details_page_sql(PageAt::After(1)).contains("AND id < $2"));
    }

    #[test]
    fn every_sort_pages_by_keyset_and_a_search_filters_every_statement() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            for sort in Sort::ALL {
                let statements = restaurant_statements(backend, sort);
                assert!(statements.plain.after.contains("id) > (SELECT"));
                assert!(statements.plain.before.contains("id) < (SELECT"));
                for sql in [
                    &statements.search.offset,
                    &statements.search.after,
                    &statements.search.before,
                    &statements.search.last,
                ] {
                    assert_eq!(
                        sql.matches(r"name_search LIKE $3 ESCAPE '\'").count(),
                        2,
                        "{sql}"
                    );
                }
            }
        }
        assert_eq!(Sort::parse("rating"), Some(Sort::Rating));
        assert_eq!(Sort::parse("RATING"), None);
    }

    #[test]
    fn the_last_page_holds_the_remainder_or_a_full_page() {
        assert_eq!(last_page_len(45, 20), 5);
        assert_eq!(last_page_len(40, 20), 20);
        assert_eq!(last_page_len(3, 20), 3);
        assert_eq!(last_page_len(0, 20), 0);
    }
}
