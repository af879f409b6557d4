//! The queries, each written once and compiled for both drivers by `on_conn!`.

use time::OffsetDateTime;

use super::search_key::fold;
use super::{Database, DbError, acquire, on_conn, sort_key};
use crate::domain::{NewRestaurant, NewReview, RatingSummary, RestaurantId};
use crate::photos::PhotoName;

impl Database {
    #[tracing::instrument(name = "db.create_restaurant", skip_all)]
    pub async fn create_restaurant(&self, new: &NewRestaurant) -> Result<RestaurantId, DbError> {
        // SQLite has no Unicode collation: the name's sort key is stored beside it. Both store
        // the folded name that search and the duplicate check match on.
        let (sql, key) = match self {
            Database::Sqlite(_) => (
                "INSERT INTO restaurant (name, street_address, description, name_search, name_key) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                Some(sort_key::name_key(new.name.as_str())),
            ),
            Database::Postgres(_) => (
                "INSERT INTO restaurant (name, street_address, description, name_search) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
                None,
            ),
        };
        let id: i64 = on_conn!(self, conn => {
            let query = sqlx::query_scalar(sql)
                .bind(new.name.as_str())
                .bind(new.street_address.as_str())
                .bind(new.description.as_str())
                .bind(fold(new.name.as_str()));
            match &key {
                Some(key) => query.bind(key.as_slice()),
                None => query,
            }
            .fetch_one(&mut *conn)
            .await?
        });
        Ok(RestaurantId::from_db(id))
    }

    /// Restaurants with the same name and street address as `new`, compared folded (case,
    /// accents and extra spaces aside), oldest first: "did you mean…?" before a duplicate.
    #[tracing::instrument(name = "db.similar_restaurants", skip_all)]
    pub async fn similar_restaurants(
        &self,
        new: &NewRestaurant,
    ) -> Result<Vec<Restaurant>, DbError> {
        let rows: Vec<RestaurantRow> = on_conn!(self, conn => {
            sqlx::query_as(
                "SELECT id, name, street_address, description, review_count, rating_sum \
                 FROM restaurant WHERE name_search = $1 ORDER BY id LIMIT 100",
            )
            .bind(fold(new.name.as_str()))
            .fetch_all(&mut *conn)
            .await?
        });
        let address = fold(new.street_address.as_str());
        Ok(rows
            .into_iter()
            .map(Restaurant::from)
            .filter(|r| fold(&r.street_address) == address)
            .collect())
    }

    #[tracing::instrument(name = "db.restaurant", skip(self), fields(id = id.get()))]
    pub async fn restaurant(&self, id: RestaurantId) -> Result<Option<Restaurant>, DbError> {
        let row: Option<RestaurantRow> = on_conn!(self, conn => {
            sqlx::query_as(
                "SELECT id, name, street_address, description, review_count, rating_sum \
                 FROM restaurant WHERE id = $1",
            )
            .bind(id.get())
            .fetch_optional(&mut *conn)
            .await?
        });
        Ok(row.map(Restaurant::from))
    }

    /// Inserts a review and updates the restaurant's running totals in one transaction.
    /// Fails with [`DbError::RestaurantNotFound`] (and writes nothing) for an unknown restaurant.
    #[tracing::instrument(name = "db.add_review", skip(self, review, image), fields(id = id.get()))]
    pub async fn add_review(
        &self,
        id: RestaurantId,
        review: &NewReview,
        image: Option<&PhotoName>,
    ) -> Result<i64, DbError> {
        let rating = i16::from(review.rating.value());
        let now = OffsetDateTime::now_utc();
        on_conn!(self, conn => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            // Updating the parent first also locks it, so concurrent reviews cannot lose an
            // increment, and tells us whether the restaurant exists.
            let updated = sqlx::query(
                "UPDATE restaurant SET review_count = review_count + 1, rating_sum = rating_sum + $1 \
                 WHERE id = $2",
            )
            .bind(rating)
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(DbError::RestaurantNotFound(id));
            }
            let review_id: i64 = sqlx::query_scalar(
                "INSERT INTO review (restaurant_id, user_name, rating, review_text, review_date, image_name) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(id.get())
            .bind(review.user_name.as_str())
            .bind(rating)
            .bind(review.review_text.as_str())
            .bind(now)
            .bind(image.map(PhotoName::as_str))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(review_id)
        })
    }
}

/// `id, name, street_address, description, review_count, rating_sum`: a tuple rather than a
/// derived row type, so sqlx's proc macros are not needed (they compile both drivers again).
pub(super) type RestaurantRow = (i64, String, String, String, i64, i64);

/// A stored restaurant with its rating totals.
#[derive(Debug, Clone)]
pub struct Restaurant {
    pub id: RestaurantId,
    pub name: String,
    pub street_address: String,
    pub description: String,
    pub ratings: RatingSummary,
}

impl From<RestaurantRow> for Restaurant {
    fn from(row: RestaurantRow) -> Self {
        let (id, name, street_address, description, review_count, rating_sum) = row;
        Self {
            id: RestaurantId::from_db(id),
            name,
            street_address,
            description,
            ratings: RatingSummary {
                review_count,
                rating_sum,
            },
        }
    }
}

/// `id, user_name, rating, review_text, review_date, image_name`.
pub(super) type ReviewRow = (i64, String, i16, String, OffsetDateTime, Option<String>);

/// A stored review.
#[derive(Debug, Clone)]
pub struct Review {
    pub id: i64,
    pub user_name: String,
    pub rating: u8,
    pub review_text: String,
    pub review_date: OffsetDateTime,
    /// `None` also when a stored name is not one this app generates (never served).
    pub image: Option<PhotoName>,
}

impl From<ReviewRow> for Review {
    fn from(row: ReviewRow) -> Self {
        let (id, user_name, rating, review_text, review_date, image_name) = row;
        Self {
            id,
            user_name,
            rating: u8::try_from(rating).unwrap_or(0),
            review_text,
            review_date,
            image: image_name.as_deref().and_then(PhotoName::parse),
        }
    }
}
