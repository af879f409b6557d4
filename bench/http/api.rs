//! The JSON API's reads beside the HTML pages (loopback section): `GET /api/v1/restaurants`
//! and one restaurant, each against the statement it sends as its floor.

use restaurant_review::db::{Backend, PageAt, Sort, restaurant_page_sql};

use super::PER_PAGE;
use super::load::Floor;

/// The statement `GET /api/v1/restaurants/{id}` sends (db::queries, `Database::restaurant`).
const ONE_RESTAURANT_SQL: &str = "SELECT id, name, street_address, description, review_count, rating_sum \
     FROM restaurant WHERE id = $1";

/// (name, path, floor) of each API route, for the restaurant `id`.
pub fn routes(backend: Backend, id: i64) -> Vec<(&'static str, String, Floor)> {
    vec![
        (
            "/api/v1/restaurants",
            "/api/v1/restaurants".to_owned(),
            // The first page, one row longer than shown to know whether there is a next.
            Floor {
                sql: restaurant_page_sql(backend, Sort::Name, PageAt::First),
                params: vec![0, i64::from(PER_PAGE) + 1],
            },
        ),
        (
            "/api/v1/restaurants/<id>",
            format!("/api/v1/restaurants/{id}"),
            Floor {
                sql: ONE_RESTAURANT_SQL,
                params: vec![id],
            },
        ),
    ]
}
