//! Local sign-in for the person at the machine: a one-time link printed at startup (as Jupyter
//! does) opens a moderator session in that browser. Offered only while the app listens on a
//! loopback address (see `startup`); the web layer accepts these sessions only then too.
//!
//! Links and sessions live in the database (`moderator_sign_in`), as SHA-256 hashes of their
//! tokens, so any instance can check them and a leaked database holds no usable token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::db::{Database, DbError, sql::Statement};

/// How long a printed link can be used (once).
pub const LINK_LIFETIME: Duration = Duration::hours(24);
/// How long a session opened by a link lasts.
pub const SESSION_LIFETIME: Duration = Duration::hours(12);
/// The path a printed link opens.
pub const SIGN_IN_PATH: &str = "/moderate/sign-in";

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

async fn store(db: &Database, kind: &str, lifetime: Duration) -> Result<String, DbError> {
    let token = new_token();
    let token_hash = hash(&token);
    let now = OffsetDateTime::now_utc();
    db.write(&[
        // Expired links and sessions go whenever a new one is made.
        Statement::new(
            "DELETE FROM moderator_sign_in WHERE expires_at < $1",
            &[now.into()],
        ),
        Statement::new(
            "INSERT INTO moderator_sign_in (token_hash, kind, expires_at) VALUES ($1, $2, $3)",
            &[
                token_hash.as_str().into(),
                kind.into(),
                (now + lifetime).into(),
            ],
        ),
    ])
    .await?;
    Ok(token)
}

/// A new one-time sign-in token, to print as `<address>/moderate/sign-in?token=<token>`.
pub async fn new_link(db: &Database) -> Result<String, DbError> {
    store(db, "link", LINK_LIFETIME).await
}

/// Uses up a link's token: a new session token if the link was valid and unused.
pub async fn redeem(db: &Database, link_token: &str) -> Result<Option<String>, DbError> {
    let used: Vec<(OffsetDateTime,)> = db
        .fetch_all(
            "DELETE FROM moderator_sign_in WHERE token_hash = $1 AND kind = 'link' RETURNING expires_at",
            &[hash(link_token).as_str().into()],
        )
        .await?;
    match used.first() {
        Some((expires,)) if *expires > OffsetDateTime::now_utc() => {
            Ok(Some(store(db, "session", SESSION_LIFETIME).await?))
        }
        _ => Ok(None),
    }
}

/// Whether a session token is current.
pub async fn session_valid(db: &Database, session_token: &str) -> Result<bool, DbError> {
    let row: Option<(OffsetDateTime,)> = db
        .fetch_optional(
            "SELECT expires_at FROM moderator_sign_in WHERE token_hash = $1 AND kind = 'session'",
            &[hash(session_token).as_str().into()],
        )
        .await?;
    Ok(row.is_some_and(|(expires,)| expires > OffsetDateTime::now_utc()))
}

/// Ends a session.
pub async fn sign_out(db: &Database, session_token: &str) -> Result<(), DbError> {
    db.write(&[Statement::new(
        "DELETE FROM moderator_sign_in WHERE token_hash = $1 AND kind = 'session'",
        &[hash(session_token).as_str().into()],
    )])
    .await?;
    Ok(())
}
