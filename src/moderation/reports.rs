//! Visitors' reports, and what the moderation pages list: the queue of reported reviews (most
//! reported, then most recently reported), hidden reviews, recent reviews and restaurants.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Moderation, ModerationError};
use crate::db::{Database, DbError, Restaurant};
use crate::domain::RestaurantId;

/// Why a visitor reports a review: the short list the form offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportReason {
    Spam,
    Offensive,
    OffTopic,
    Other,
}

impl ReportReason {
    pub const ALL: [Self; 4] = [Self::Spam, Self::Offensive, Self::OffTopic, Self::Other];

    /// The form value and the stored one.
    pub fn code(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::Offensive => "offensive",
            Self::OffTopic => "off-topic",
            Self::Other => "other",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Spam => "Spam or advertising",
            Self::Offensive => "Offensive",
            Self::OffTopic => "Not about this restaurant",
            Self::Other => "Something else",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// The longest note a report may carry.
pub const MAX_NOTE_CHARS: usize = 500;

/// A review as the moderation pages list it, with its restaurant.
#[derive(Debug, Clone)]
pub struct ReviewRow {
    pub id: i64,
    pub restaurant_id: i64,
    pub restaurant_name: String,
    pub user_name: String,
    pub rating: i16,
    pub review_text: String,
    pub image_name: Option<String>,
    pub hidden: bool,
    pub review_date: OffsetDateTime,
}

/// A reported review with its open reports (reason and note each, newest first).
#[derive(Debug, Clone)]
pub struct QueuedReview {
    pub review: ReviewRow,
    pub reports: Vec<(String, String)>,
}

type Row = (
    i64,
    i64,
    String,
    String,
    i16,
    String,
    Option<String>,
    bool,
    OffsetDateTime,
);

fn review_row(row: Row) -> ReviewRow {
    let (
        id,
        restaurant_id,
        restaurant_name,
        user_name,
        rating,
        review_text,
        image_name,
        hidden,
        review_date,
    ) = row;
    ReviewRow {
        id,
        restaurant_id,
        restaurant_name,
        user_name,
        rating,
        review_text,
        image_name,
        hidden,
        review_date,
    }
}

/// The reporter's key: a hash of their browser's CSRF cookie (the cookie itself is never
/// stored), so one browser's reports of one review count once. Best effort: a visitor who
/// clears cookies counts again.
pub fn reporter_key(browser_token: &str) -> String {
    let digest = Sha256::digest(browser_token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A review's columns (as [`Row`]), then its open reports' count and the newest one's id.
type QueueRow = (
    i64,
    i64,
    String,
    String,
    i16,
    String,
    Option<String>,
    bool,
    OffsetDateTime,
    i64,
    i64,
);

const QUEUE_LIMIT: i64 = 50;
const RECENT_LIMIT: i64 = 20;

impl Moderation {
    /// Records a visitor's report of a visible review; the same reporter again counts once.
    /// The review's restaurant (to go back to), or `NotFound`.
    #[tracing::instrument(name = "moderation.report", skip(self, note, reporter))]
    pub async fn report(
        &self,
        review: i64,
        reason: ReportReason,
        note: &str,
        reporter: &str,
    ) -> Result<RestaurantId, ModerationError> {
        let restaurant: Option<(i64,)> = self
            .db
            .fetch_optional(
                "SELECT restaurant_id FROM review WHERE id = $1 AND NOT hidden",
                &[review.into()],
            )
            .await?;
        let (restaurant,) = restaurant.ok_or(ModerationError::NotFound("review"))?;
        // Best effort against repeats: the unique (review, reporter) pair. The review may have
        // gone since the read above; then nothing is inserted, which is right too.
        self.db
            .fetch_all::<(i64,)>(
                "INSERT INTO review_report (review_id, reason, note, reporter, reported_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM review WHERE id = $1) \
                 ON CONFLICT (review_id, reporter) DO NOTHING RETURNING id",
                &[
                    review.into(),
                    reason.code().into(),
                    note.into(),
                    reporter.into(),
                    OffsetDateTime::now_utc().into(),
                ],
            )
            .await?;
        Ok(RestaurantId::from_db(restaurant))
    }

    /// Reviews with open reports: most reported first, then the most recently reported.
    pub async fn queue(&self) -> Result<Vec<QueuedReview>, DbError> {
        let rows: Vec<QueueRow> = self
            .db
            .fetch_all(
                "SELECT v.id, v.restaurant_id, r.name, v.user_name, v.rating, v.review_text, \
                        v.image_name, v.hidden, v.review_date, q.reports, q.newest \
                 FROM (SELECT review_id, COUNT(*) AS reports, MAX(id) AS newest FROM review_report \
                       WHERE resolved_at IS NULL GROUP BY review_id) q \
                 JOIN review v ON v.id = q.review_id JOIN restaurant r ON r.id = v.restaurant_id \
                 ORDER BY q.reports DESC, q.newest DESC LIMIT $1",
                &[QUEUE_LIMIT.into()],
            )
            .await?;
        let open: Vec<(i64, String, String)> = self
            .db
            .fetch_all(
                "SELECT review_id, reason, note FROM review_report WHERE resolved_at IS NULL \
                 ORDER BY id DESC LIMIT 1000",
                &[],
            )
            .await?;
        let mut by_review: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        for (review, reason, note) in open {
            let label = ReportReason::parse(&reason).map_or(reason, |r| r.label().to_owned());
            by_review.entry(review).or_default().push((label, note));
        }
        Ok(rows
            .into_iter()
            .map(|(a, b, c, d, e, f, g, h, i, _, _)| {
                let review = review_row((a, b, c, d, e, f, g, h, i));
                let reports = by_review.remove(&review.id).unwrap_or_default();
                QueuedReview { review, reports }
            })
            .collect())
    }

    /// The newest reviews, hidden ones included (`hidden_only`: only those).
    pub async fn recent_reviews(&self, hidden_only: bool) -> Result<Vec<ReviewRow>, DbError> {
        let sql = if hidden_only {
            "SELECT v.id, v.restaurant_id, r.name, v.user_name, v.rating, v.review_text, \
                    v.image_name, v.hidden, v.review_date \
             FROM review v JOIN restaurant r ON r.id = v.restaurant_id \
             WHERE v.hidden ORDER BY v.id DESC LIMIT $1"
        } else {
            "SELECT v.id, v.restaurant_id, r.name, v.user_name, v.rating, v.review_text, \
                    v.image_name, v.hidden, v.review_date \
             FROM review v JOIN restaurant r ON r.id = v.restaurant_id \
             ORDER BY v.id DESC LIMIT $1"
        };
        let rows: Vec<Row> = self.db.fetch_all(sql, &[RECENT_LIMIT.into()]).await?;
        Ok(rows.into_iter().map(review_row).collect())
    }

    /// The newest restaurants.
    pub async fn recent_restaurants(&self) -> Result<Vec<Restaurant>, DbError> {
        let rows: Vec<(i64, String, String, String, i64, i64)> = self
            .db
            .fetch_all(
                "SELECT id, name, street_address, description, review_count, rating_sum \
                 FROM restaurant ORDER BY id DESC LIMIT $1",
                &[RECENT_LIMIT.into()],
            )
            .await?;
        Ok(rows.into_iter().map(Restaurant::from).collect())
    }
}

/// Where a merged restaurant's address now leads, if it was merged.
pub async fn moved_to(db: &Database, id: RestaurantId) -> Result<Option<RestaurantId>, DbError> {
    let row: Option<(i64,)> = db
        .fetch_optional(
            "SELECT new_id FROM restaurant_redirect WHERE old_id = $1",
            &[id.get().into()],
        )
        .await?;
    Ok(row.map(|(id,)| RestaurantId::from_db(id)))
}
