//! Actions on one review: hide, restore, delete, remove its photo, dismiss its reports.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Actor, Moderation, ModerationError, Outcome, log, photo_outbox};
use crate::db::{DbError, Tx};
use crate::photos::PhotoName;

/// A review as it is under its restaurant's lock.
struct Locked {
    restaurant_id: i64,
    user_name: String,
    rating: i16,
    review_text: String,
    image_name: Option<String>,
    hidden: bool,
}

impl Locked {
    fn values(&self) -> Value {
        json!({
            "restaurant": self.restaurant_id,
            "user_name": self.user_name,
            "rating": self.rating,
            "review_text": self.review_text,
            "photo": self.image_name,
            "hidden": self.hidden,
        })
    }
}

type LockedRow = (i64, String, i16, String, Option<String>, bool);

/// Locks the review's restaurant (so totals cannot change under us, and a concurrent merge
/// cannot move the review), then reads the review. The lock comes first, as a write: on SQLite
/// a transaction that read before writing could not write once another had committed. A
/// review moved meanwhile is followed to its new restaurant; a review that is gone is
/// `NotFound`.
async fn lock_review(tx: &mut Tx, review: i64) -> Result<Locked, ModerationError> {
    for _ in 0..3 {
        let locked: Vec<(i64,)> = tx
            .fetch_all(
                "UPDATE restaurant SET review_count = review_count \
                 WHERE id = (SELECT restaurant_id FROM review WHERE id = $1) RETURNING id",
                &[review.into()],
            )
            .await?;
        let row: Option<LockedRow> = tx
            .fetch_optional(
                "SELECT restaurant_id, user_name, rating, review_text, image_name, hidden \
                 FROM review WHERE id = $1",
                &[review.into()],
            )
            .await?;
        let Some((restaurant_id, user_name, rating, review_text, image_name, hidden)) = row else {
            return Err(ModerationError::NotFound("review"));
        };
        if locked.first().map(|(id,)| *id) == Some(restaurant_id) {
            return Ok(Locked {
                restaurant_id,
                user_name,
                rating,
                review_text,
                image_name,
                hidden,
            });
        }
    }
    Err(DbError::Query("the review kept moving between restaurants".into()).into())
}

/// Marks the review's open reports resolved: a moderator has acted on it.
async fn resolve_reports(tx: &mut Tx, review: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE review_report SET resolved_at = $2 WHERE review_id = $1 AND resolved_at IS NULL",
        &[review.into(), OffsetDateTime::now_utc().into()],
    )
    .await?;
    Ok(())
}

/// Takes a visible review's rating out of (`sign` -1) or back into (+1) its restaurant's totals.
async fn count(tx: &mut Tx, locked: &Locked, sign: i64) -> Result<(), DbError> {
    tx.execute(
        "UPDATE restaurant SET review_count = review_count + $2, rating_sum = rating_sum + $3 \
         WHERE id = $1",
        &[
            locked.restaurant_id.into(),
            sign.into(),
            (sign * i64::from(locked.rating)).into(),
        ],
    )
    .await?;
    Ok(())
}

fn subject(review: i64) -> String {
    format!("review {review}")
}

impl Moderation {
    /// Hides a review from every page and from its restaurant's count and average, in one
    /// transaction; its reports are resolved.
    #[tracing::instrument(name = "moderation.hide", skip(self, actor))]
    pub async fn hide(&self, actor: &Actor, review: i64) -> Result<Outcome, ModerationError> {
        self.set_hidden(actor, review, true).await
    }

    /// Shows a hidden review again and counts it again.
    #[tracing::instrument(name = "moderation.restore", skip(self, actor))]
    pub async fn restore(&self, actor: &Actor, review: i64) -> Result<Outcome, ModerationError> {
        self.set_hidden(actor, review, false).await
    }

    async fn set_hidden(
        &self,
        actor: &Actor,
        review: i64,
        hide: bool,
    ) -> Result<Outcome, ModerationError> {
        let mut tx = self.db.begin().await?;
        let locked = lock_review(&mut tx, review).await?;
        if locked.hidden == hide {
            return Ok(Outcome::AlreadySo);
        }
        let sql = if hide {
            "UPDATE review SET hidden = TRUE WHERE id = $1"
        } else {
            "UPDATE review SET hidden = FALSE WHERE id = $1"
        };
        tx.execute(sql, &[review.into()]).await?;
        count(&mut tx, &locked, if hide { -1 } else { 1 }).await?;
        if hide {
            resolve_reports(&mut tx, review).await?;
        }
        let action = if hide {
            "hide review"
        } else {
            "restore review"
        };
        let before = json!({ "hidden": locked.hidden });
        let after = json!({ "hidden": hide });
        log::write(&mut tx, actor, action, &subject(review), &before, &after).await?;
        tx.commit().await?;
        Ok(Outcome::Done)
    }

    /// Deletes a review for good: the row (and its reports), its part of the totals, and both
    /// renditions of its photo (through the outbox, so a storage outage leaves no orphan).
    #[tracing::instrument(name = "moderation.delete_review", skip(self, actor))]
    pub async fn delete_review(
        &self,
        actor: &Actor,
        review: i64,
    ) -> Result<Outcome, ModerationError> {
        let mut tx = self.db.begin().await?;
        let locked = lock_review(&mut tx, review).await?;
        tx.execute("DELETE FROM review WHERE id = $1", &[review.into()])
            .await?;
        if !locked.hidden {
            count(&mut tx, &locked, -1).await?;
        }
        let photo = queue_photo(&mut tx, &locked).await?;
        let before = locked.values();
        log::write(
            &mut tx,
            actor,
            "delete review",
            &subject(review),
            &before,
            &Value::Null,
        )
        .await?;
        tx.commit().await?;
        self.delete_queued_photo(photo).await;
        Ok(Outcome::Done)
    }

    /// Removes a review's photo (both renditions) and keeps the review.
    #[tracing::instrument(name = "moderation.remove_photo", skip(self, actor))]
    pub async fn remove_photo(
        &self,
        actor: &Actor,
        review: i64,
    ) -> Result<Outcome, ModerationError> {
        let mut tx = self.db.begin().await?;
        let locked = lock_review(&mut tx, review).await?;
        if locked.image_name.is_none() {
            return Ok(Outcome::AlreadySo);
        }
        tx.execute(
            "UPDATE review SET image_name = NULL WHERE id = $1",
            &[review.into()],
        )
        .await?;
        let photo = queue_photo(&mut tx, &locked).await?;
        let before = json!({ "photo": locked.image_name });
        let after = json!({ "photo": null });
        log::write(
            &mut tx,
            actor,
            "remove photo",
            &subject(review),
            &before,
            &after,
        )
        .await?;
        tx.commit().await?;
        self.delete_queued_photo(photo).await;
        Ok(Outcome::Done)
    }

    /// Keeps a reported review as it is and takes it off the queue.
    #[tracing::instrument(name = "moderation.dismiss_reports", skip(self, actor))]
    pub async fn dismiss_reports(
        &self,
        actor: &Actor,
        review: i64,
    ) -> Result<Outcome, ModerationError> {
        let mut tx = self.db.begin().await?;
        lock_review(&mut tx, review).await?;
        let open: Vec<(i64,)> = tx
            .fetch_all(
                "SELECT id FROM review_report WHERE review_id = $1 AND resolved_at IS NULL",
                &[review.into()],
            )
            .await?;
        if open.is_empty() {
            return Ok(Outcome::AlreadySo);
        }
        resolve_reports(&mut tx, review).await?;
        let before = json!({ "open_reports": open.len() });
        let after = json!({ "open_reports": 0 });
        log::write(
            &mut tx,
            actor,
            "dismiss reports",
            &subject(review),
            &before,
            &after,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Done)
    }

    /// Deletes a photo queued by a committed action now; a failure leaves it in the outbox for
    /// the background retry.
    async fn delete_queued_photo(&self, queued: Option<(i64, PhotoName)>) {
        if let Some((id, name)) = queued {
            photo_outbox::delete_one(&self.db, &self.photos, id, &name).await;
        }
    }
}

/// Queues the review's photo for deletion in the action's transaction; its outbox id and name.
async fn queue_photo(tx: &mut Tx, locked: &Locked) -> Result<Option<(i64, PhotoName)>, DbError> {
    let Some(raw) = &locked.image_name else {
        return Ok(None);
    };
    let ids: Vec<(i64,)> = tx
        .fetch_all(
            "INSERT INTO photo_deletion (photo_name, queued_at) VALUES ($1, $2) RETURNING id",
            &[raw.as_str().into(), OffsetDateTime::now_utc().into()],
        )
        .await?;
    // A name this app did not generate was never served and cannot be a store key.
    Ok(ids
        .first()
        .and_then(|(id,)| PhotoName::parse(raw).map(|name| (*id, name))))
}
