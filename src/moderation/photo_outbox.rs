//! Photos to delete from storage, kept in the database (`photo_deletion`) by the transaction
//! that stopped showing them, and removed from the outbox only once both renditions are gone.
//! A delete that fails midway (storage down, one rendition deleted and not the other) is
//! retried by every running instance in the background, and after a restart, until it
//! succeeds: unlike a failed save's in-memory retry, nothing is lost with the process.

use std::time::Duration;

use crate::db::{Database, DbError};
use crate::error_chain;
use crate::photos::{PhotoKey, PhotoName, PhotoStore};

/// How often the background task looks at the outbox.
pub const RETRY_EVERY: Duration = Duration::from_secs(30);
/// At most this many photos per pass.
const BATCH: i64 = 100;

/// Deletes both renditions of outbox entry `id`; the entry goes once both are gone (deleting
/// a missing object counts as done), else it stays for the next pass. Whether it is done.
pub(super) async fn delete_one(
    db: &Database,
    photos: &PhotoStore,
    id: i64,
    name: &PhotoName,
) -> bool {
    let mut failed = false;
    for key in PhotoKey::both(name) {
        if let Err(error) = photos.delete(&key).await {
            tracing::warn!(photo = %name, key = %key, error = %error_chain(&error), "could not delete a moderated photo; it stays queued");
            failed = true;
        }
    }
    let outcome = if failed {
        db.fetch_all::<(i64,)>(
            "UPDATE photo_deletion SET attempts = attempts + 1 WHERE id = $1 RETURNING id",
            &[id.into()],
        )
        .await
    } else {
        db.fetch_all::<(i64,)>(
            "DELETE FROM photo_deletion WHERE id = $1 RETURNING id",
            &[id.into()],
        )
        .await
    };
    if let Err(error) = outcome {
        // The photo stays queued (or is deleted again next time, which is harmless).
        tracing::warn!(photo = %name, error = %error_chain(&error), "could not update the photo outbox");
    }
    !failed
}

/// One pass over the outbox; how many photos are still queued after it (of those it saw).
pub async fn retry_pending(db: &Database, photos: &PhotoStore) -> Result<usize, DbError> {
    let queued: Vec<(i64, String)> = db
        .fetch_all(
            "SELECT id, photo_name FROM photo_deletion ORDER BY id LIMIT $1",
            &[BATCH.into()],
        )
        .await?;
    let mut left = 0;
    for (id, raw) in queued {
        match PhotoName::parse(&raw) {
            Some(name) => {
                if !delete_one(db, photos, id, &name).await {
                    left += 1;
                }
            }
            // Not a name this app generates: never stored under a key, nothing to delete.
            None => {
                db.fetch_all::<(i64,)>(
                    "DELETE FROM photo_deletion WHERE id = $1 RETURNING id",
                    &[id.into()],
                )
                .await?;
            }
        }
    }
    Ok(left)
}

/// How many photos wait in the outbox.
pub async fn pending(db: &Database) -> Result<i64, DbError> {
    let (count,): (i64,) = db
        .fetch_one("SELECT COUNT(*) FROM photo_deletion", &[])
        .await?;
    Ok(count)
}

/// Retries the outbox every `every` until aborted.
pub fn spawn(db: Database, photos: PhotoStore, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match retry_pending(&db, &photos).await {
                Ok(0) => {}
                Ok(left) => tracing::info!(left, "moderated photos still waiting to be deleted"),
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "could not read the photo outbox")
                }
            }
        }
    })
}
