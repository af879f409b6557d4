//! The audit log: one entry per moderation action, written in the action's transaction.

use serde_json::Value;
use time::OffsetDateTime;

use super::{Actor, Moderation};
use crate::db::{DbError, Tx};

/// One audit entry as `/moderate/log` and `moderate log` show it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub id: i64,
    pub at: OffsetDateTime,
    pub moderator: String,
    pub action: String,
    pub subject: String,
    pub before: String,
    pub after: String,
}

/// Writes the entry for `action` on `subject` ("review 12"), with the values before and after
/// as JSON (`Value::Null` when there is nothing: a deleted review has no after).
pub(super) async fn write(
    tx: &mut Tx,
    actor: &Actor,
    action: &str,
    subject: &str,
    before: &Value,
    after: &Value,
) -> Result<(), DbError> {
    let text = |value: &Value| match value {
        Value::Null => String::new(),
        value => value.to_string(),
    };
    let (before, after) = (text(before), text(after));
    tx.execute(
        "INSERT INTO moderation_log (at, moderator, action, subject, before_value, after_value) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            OffsetDateTime::now_utc().into(),
            actor.0.as_str().into(),
            action.into(),
            subject.into(),
            before.as_str().into(),
            after.as_str().into(),
        ],
    )
    .await?;
    Ok(())
}

type LogRow = (i64, OffsetDateTime, String, String, String, String, String);

impl Moderation {
    /// The newest entries first; `before` pages back from an entry id.
    pub async fn log(&self, before: Option<i64>, limit: i64) -> Result<Vec<LogEntry>, DbError> {
        let rows: Vec<LogRow> = self
            .db
            .fetch_all(
                "SELECT id, at, moderator, action, subject, before_value, after_value \
                 FROM moderation_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
                &[before.unwrap_or(i64::MAX).into(), limit.into()],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at, moderator, action, subject, before, after)| LogEntry {
                    id,
                    at,
                    moderator,
                    action,
                    subject,
                    before,
                    after,
                },
            )
            .collect())
    }
}
