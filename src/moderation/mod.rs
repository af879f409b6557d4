//! Keeping the site clean: visitors' reports, the moderators' actions (hide, restore, delete,
//! remove a photo, edit and merge restaurants), the audit log every action writes, the outbox
//! of photos to delete, local one-time sign-in links, and the `moderate` command.
//!
//! Every action is one transaction that locks the restaurant it changes first (the order
//! `add_review` uses), reads the values it changes under that lock, changes them, keeps the
//! restaurant's running totals exact and writes its audit entry; photos are deleted from
//! storage only after the commit, through the outbox.

pub mod cli;
mod log;
pub mod photo_outbox;
mod reports;
mod restaurants;
mod reviews;
pub mod sign_in;

use crate::db::{Database, DbError};
use crate::forms::FieldErrors;
use crate::photos::PhotoStore;

pub use log::LogEntry;
pub use reports::{MAX_NOTE_CHARS, QueuedReview, ReportReason, ReviewRow, moved_to, reporter_key};

/// Who acts, as the audit log names them ("Ada Lovelace (oid 1234…)", "local sign-in",
/// "command line (ada@laptop)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("no {0} with that id")]
    NotFound(&'static str),
    #[error("the restaurant's new values are not valid")]
    Invalid(FieldErrors),
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// What an action did: changed something (and wrote an audit entry), or found it already so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    AlreadySo,
}

/// The moderators' actions, over the app's database and photo store.
#[derive(Clone)]
pub struct Moderation {
    pub db: Database,
    pub photos: PhotoStore,
}

impl Moderation {
    pub fn new(db: Database, photos: PhotoStore) -> Self {
        Self { db, photos }
    }
}
