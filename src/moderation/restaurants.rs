//! Actions on restaurants: edit (the add form's validation) and merge a duplicate into another.

use serde_json::{Value, json};

use super::{Actor, Moderation, ModerationError, Outcome, log};
use crate::db::{Backend, Tx, fold, sort_key_for};
use crate::domain::RestaurantId;
use crate::forms::RestaurantInput;

/// `name, street_address, description, review_count, rating_sum`.
type RestaurantValues = (String, String, String, i64, i64);

fn values(row: &RestaurantValues) -> Value {
    json!({
        "name": row.0,
        "street_address": row.1,
        "description": row.2,
        "review_count": row.3,
        "rating_sum": row.4,
    })
}

/// Locks the restaurant (its row) and reads it.
async fn lock_restaurant(
    tx: &mut Tx,
    id: i64,
) -> Result<Option<RestaurantValues>, crate::db::DbError> {
    let locked = tx
        .execute(
            "UPDATE restaurant SET review_count = review_count WHERE id = $1",
            &[id.into()],
        )
        .await?;
    if locked == 0 {
        return Ok(None);
    }
    tx.fetch_optional(
        "SELECT name, street_address, description, review_count, rating_sum FROM restaurant WHERE id = $1",
        &[id.into()],
    )
    .await
}

impl Moderation {
    /// Changes a restaurant's name, address and description; refuses exactly what adding one
    /// refuses (the same [`RestaurantInput::validate`]).
    #[tracing::instrument(name = "moderation.edit_restaurant", skip(self, actor, input), fields(id = id.get()))]
    pub async fn edit_restaurant(
        &self,
        actor: &Actor,
        id: RestaurantId,
        input: &RestaurantInput,
    ) -> Result<Outcome, ModerationError> {
        let new = input.validate().map_err(ModerationError::Invalid)?;
        let mut tx = self.db.begin().await?;
        let before = lock_restaurant(&mut tx, id.get())
            .await?
            .ok_or(ModerationError::NotFound("restaurant"))?;
        let after = (
            new.name.as_str().to_owned(),
            new.street_address.as_str().to_owned(),
            new.description.as_str().to_owned(),
            before.3,
            before.4,
        );
        if (&before.0, &before.1, &before.2) == (&after.0, &after.1, &after.2) {
            return Ok(Outcome::AlreadySo);
        }
        let folded = fold(&after.0);
        let key;
        let mut params = vec![
            id.get().into(),
            after.0.as_str().into(),
            after.1.as_str().into(),
            after.2.as_str().into(),
            folded.as_str().into(),
        ];
        let sql = match self.db.backend() {
            Backend::Sqlite => {
                key = sort_key_for(&after.0);
                params.push(key.as_slice().into());
                "UPDATE restaurant SET name = $2, street_address = $3, description = $4, \
                 name_search = $5, name_key = $6 WHERE id = $1"
            }
            Backend::Postgres => {
                "UPDATE restaurant SET name = $2, street_address = $3, description = $4, \
                 name_search = $5 WHERE id = $1"
            }
        };
        tx.execute(sql, &params).await?;
        let subject = format!("restaurant {id}");
        log::write(
            &mut tx,
            actor,
            "edit restaurant",
            &subject,
            &values(&before),
            &values(&after),
        )
        .await?;
        tx.commit().await?;
        self.db.restaurants_changed();
        Ok(Outcome::Done)
    }

    /// Merges restaurant `from` (a duplicate) into `into`: its reviews move, `into`'s totals
    /// are counted again from its visible reviews, `from` is removed and its address (and
    /// every address that already led to it) answers 301 to `into`'s.
    #[tracing::instrument(name = "moderation.merge", skip(self, actor), fields(from = from.get(), into = into.get()))]
    pub async fn merge_restaurants(
        &self,
        actor: &Actor,
        from: RestaurantId,
        into: RestaurantId,
    ) -> Result<Outcome, ModerationError> {
        if from == into {
            return Err(ModerationError::Refused(
                "A restaurant cannot be merged into itself.",
            ));
        }
        let (from, into) = (from.get(), into.get());
        let mut tx = self.db.begin().await?;
        // Both locked, the lower id first, so two merges cannot wait on each other.
        let (first, second) = (from.min(into), from.max(into));
        let first_values = lock_restaurant(&mut tx, first).await?;
        let second_values = lock_restaurant(&mut tx, second).await?;
        let (from_values, into_values) = if from < into {
            (first_values, second_values)
        } else {
            (second_values, first_values)
        };
        let from_values = from_values.ok_or(ModerationError::NotFound("restaurant"))?;
        let into_values = into_values.ok_or(ModerationError::NotFound("restaurant"))?;

        tx.execute(
            "UPDATE review SET restaurant_id = $2 WHERE restaurant_id = $1",
            &[from.into(), into.into()],
        )
        .await?;
        tx.execute(
            "UPDATE restaurant SET \
                 review_count = (SELECT COUNT(*) FROM review WHERE restaurant_id = $1 AND NOT hidden), \
                 rating_sum = (SELECT COALESCE(SUM(rating), 0) FROM review WHERE restaurant_id = $1 AND NOT hidden) \
             WHERE id = $1",
            &[into.into()],
        )
        .await?;
        tx.execute(
            "UPDATE restaurant_redirect SET new_id = $2 WHERE new_id = $1",
            &[from.into(), into.into()],
        )
        .await?;
        tx.execute(
            "INSERT INTO restaurant_redirect (old_id, new_id) VALUES ($1, $2)",
            &[from.into(), into.into()],
        )
        .await?;
        tx.execute("DELETE FROM restaurant WHERE id = $1", &[from.into()])
            .await?;
        let after: Option<RestaurantValues> = tx
            .fetch_optional(
                "SELECT name, street_address, description, review_count, rating_sum FROM restaurant WHERE id = $1",
                &[into.into()],
            )
            .await?;
        let before = json!({ "from": values(&from_values), "into": values(&into_values) });
        let after = json!({ "from": null, "into": after.as_ref().map(values) });
        let subject = format!("restaurant {from} into {into}");
        log::write(
            &mut tx,
            actor,
            "merge restaurants",
            &subject,
            &before,
            &after,
        )
        .await?;
        tx.commit().await?;
        self.db.restaurants_changed();
        Ok(Outcome::Done)
    }
}
