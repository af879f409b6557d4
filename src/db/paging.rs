//! Pages of the restaurant list and of a restaurant's reviews, by keyset: a page starts after
//! (or before) a row named by its id, so page 500 is one index range scan like page 1. Each page
//! is one statement, its total included (the restaurant total is kept by a trigger; a
//! restaurant's review count is stored with it). Old `?page=N` links still work, by OFFSET.

use std::sync::LazyLock;

use time::OffsetDateTime;

use super::queries::{Restaurant, RestaurantRow, Review, ReviewRow};
use super::{Database, DbError, acquire, on_conn};
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

/// The restaurant list in name order: `sort` is the collated sort expression, with an index on
/// `(sort, id)`. The total comes from `restaurant_total` in the same statement (a LEFT JOIN, so
/// an empty page still says how many there are).
fn restaurant_queries(sort: &str) -> PageQueries {
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
    PageQueries {
        offset: page("", "ASC", true),
        after: page(&cursor(">"), "ASC", false),
        before: page(&cursor("<"), "DESC", false),
        last: page("", "DESC", true),
    }
}

/// A restaurant with one page of its reviews, newest first, on the `(restaurant_id, id DESC)`
/// index; `$1` is the restaurant, `$2` the cursor or offset, `$3` the page size.
fn details_queries() -> PageQueries {
    let page = |condition: &str, direction: &str, offset: bool| {
        let offset = if offset { " OFFSET $2" } else { "" };
        format!(
            "SELECT r.id, r.name, r.street_address, r.description, r.review_count, r.rating_sum, \
                    v.id, v.user_name, v.rating, v.review_text, v.review_date, v.image_name \
             FROM restaurant r LEFT JOIN (\
                 SELECT id, user_name, rating, review_text, review_date, image_name FROM review \
                 WHERE restaurant_id = $1{condition} ORDER BY id {direction} LIMIT $3{offset}\
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

static POSTGRES_RESTAURANTS: LazyLock<PageQueries> =
    LazyLock::new(|| restaurant_queries(r#"name COLLATE "und-x-icu""#));
static SQLITE_RESTAURANTS: LazyLock<PageQueries> = LazyLock::new(|| restaurant_queries("name_key"));
static DETAILS: LazyLock<PageQueries> = LazyLock::new(details_queries);

/// Which SQL dialect a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The exact statement `GET /` sends for `at`, and its `$1` (`$2` is the page size): the
/// benchmark runs it straight against the database as the route's floor.
pub fn restaurant_page_sql(backend: Backend, at: PageAt, per_page: u32) -> (&'static str, i64) {
    let queries: &'static PageQueries = match backend {
        Backend::Sqlite => &SQLITE_RESTAURANTS,
        Backend::Postgres => &POSTGRES_RESTAURANTS,
    };
    queries.pick(at, per_page)
}

/// The exact statement `GET /<id>/` sends for `at`, and its `$2` (`$1` is the restaurant, `$3`
/// the page size); the same text on both backends.
pub fn details_page_sql(at: PageAt, per_page: u32) -> (&'static str, i64) {
    let queries: &'static PageQueries = &DETAILS;
    queries.pick(at, per_page)
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
    #[tracing::instrument(name = "db.restaurant_page", skip(self))]
    pub async fn restaurant_page(
        &self,
        at: PageAt,
        per_page: u32,
    ) -> Result<(Vec<Restaurant>, i64), DbError> {
        let queries = match self {
            Database::Sqlite(_) => &*SQLITE_RESTAURANTS,
            Database::Postgres(_) => &*POSTGRES_RESTAURANTS,
        };
        let (sql, cursor) = queries.pick(at, per_page);
        let rows: Vec<TotalAndRestaurant> = on_conn!(self, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(cursor)
                .bind(i64::from(per_page))
                .fetch_all(&mut *conn)
                .await?
        });
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
        let rows: Vec<RestaurantAndReview> = on_conn!(self, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id.get())
                .bind(cursor)
                .bind(i64::from(per_page))
                .fetch_all(&mut *conn)
                .await?
        });
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

    #[test]
    fn the_last_page_holds_the_remainder_or_a_full_page() {
        assert_eq!(last_page_len(45, 20), 5);
        assert_eq!(last_page_len(40, 20), 20);
        assert_eq!(last_page_len(3, 20), 3);
        assert_eq!(last_page_len(0, 20), 0);
    }
}
