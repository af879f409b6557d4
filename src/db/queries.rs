//! The queries, each written once for both backends (see [`super::sql`]).

use time::OffsetDateTime;

use super::search_key::fold;
use super::sql::{Param, Statement};
use super::{Backend, Database, DbError, sort_key};
use crate::domain::{NewRestaurant, NewReview, RatingSummary, RestaurantId};
use crate::photos::PhotoName;

impl Database {
    #[tracing::instrument(name = "db.create_restaurant", skip_all)]
    pub async fn create_restaurant(&self, new: &NewRestaurant) -> Result<RestaurantId, DbError> {
        // SQLite has no Unicode collation: the name's sort key is stored beside it. Both store
        // the folded name that search and the duplicate check match on.
        let folded = fold(new.name.as_str());
        let key;
        let mut params: Vec<Param> = vec![
            new.name.as_str().into(),
            new.street_address.as_str().into(),
            new.description.as_str().into(),
            folded.as_str().into(),
        ];
        let sql = match self.backend() {
            Backend::Sqlite => {
                key = sort_key::name_key(new.name.as_str());
                params.push(key.as_slice().into());
                "INSERT INTO restaurant (name, street_address, description, name_search, name_key) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id"
            }
            Backend::Postgres => {
                "INSERT INTO restaurant (name, street_address, description, name_search) \
                 VALUES ($1, $2, $3, $4) RETURNING id"
            }
        };
        let written = self.write(&[Statement::returning_id(sql, &params)]).await?;
        self.restaurants_changed();
        let id = written
            .first()
            .and_then(|w| w.id)
            .ok_or_else(|| DbError::Query("the insert returned no id".into()))?;
        Ok(RestaurantId::from_db(id))
    }

    /// Restaurants with the same name and street address as `new`, compared folded (case,
    /// accents and extra spaces aside), oldest first: "did you mean…?" before a duplicate.
    #[tracing::instrument(name = "db.similar_restaurants", skip_all)]
    pub async fn similar_restaurants(
        &self,
        new: &NewRestaurant,
    ) -> Result<Vec<Restaurant>, DbError> {
        let folded = fold(new.name.as_str());
        let rows: Vec<RestaurantRow> = self
            .fetch_all(
                "SELECT id, name, street_address, description, review_count, rating_sum \
                 FROM restaurant WHERE name_search = $1 ORDER BY id LIMIT 100",
                &[folded.as_str().into()],
            )
            .await?;
        let address = fold(new.street_address.as_str());
        Ok(rows
            .into_iter()
            .map(Restaurant::from)
            .filter(|r| fold(&r.street_address) == address)
            .collect())
    }

    #[tracing::instrument(name = "db.restaurant", skip(self), fields(id = id.get()))]
    pub async fn restaurant(&self, id: RestaurantId) -> Result<Option<Restaurant>, DbError> {
        let row: Option<RestaurantRow> = self
            .fetch_optional(
                "SELECT id, name, street_address, description, review_count, rating_sum \
                 FROM restaurant WHERE id = $1",
                &[id.get().into()],
            )
            .await?;
        Ok(row.map(Restaurant::from))
    }

    /// Inserts a review and updates the restaurant's running totals in one transaction (one
    /// round trip on PostgreSQL). Fails with [`DbError::RestaurantNotFound`] (and writes
    /// nothing) for an unknown restaurant.
    #[tracing::instrument(name = "db.add_review", skip(self, review, image), fields(id = id.get()))]
    pub async fn add_review(
        &self,
        id: RestaurantId,
        review: &NewReview,
        image: Option<&PhotoName>,
    ) -> Result<i64, DbError> {
        let rating = i16::from(review.rating.value());
        let totals = [rating.into(), id.get().into()];
        let row = [
            id.get().into(),
            review.user_name.as_str().into(),
            rating.into(),
            review.review_text.as_str().into(),
            OffsetDateTime::now_utc().into(),
            image.map(PhotoName::as_str).into(),
        ];
        let written = self
            .write(&[
                // The parent first: updating it locks it, so concurrent reviews cannot lose
                // an increment. No such restaurant: nothing updated, and nothing inserted.
                Statement::new(
                    "UPDATE restaurant SET review_count = review_count + 1, rating_sum = rating_sum + $1 \
                     WHERE id = $2",
                    &totals,
                ),
                Statement::returning_id(
                    "INSERT INTO review (restaurant_id, user_name, rating, review_text, review_date, image_name) \
                     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM restaurant WHERE id = $1) \
                     RETURNING id",
                    &row,
                ),
            ])
            .await?;
        written
            .get(1)
            .and_then(|inserted| inserted.id)
            .ok_or(DbError::RestaurantNotFound(id))
    }
}

/// `id, name, street_address, description, review_count, rating_sum`: a tuple, which both drivers read (see [`super::sql::Row`]).
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
