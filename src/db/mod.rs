//! Persistence for restaurants and reviews on SQLite (the zero-setup default) or PostgreSQL:
//! pools, sign-in with rotating tokens, migrations and errors here; the queries in [`queries`].
//!
//! Each query is written once and compiled for both drivers by `on_conn!`: sqlx's query
//! builders are generic over the database, and both accept `$N` placeholders and `RETURNING`.

mod paging;
mod queries;
mod search_key;
mod sort_key;

pub use paging::{Backend, PageAt, RestaurantFilter, Sort, details_page_sql, restaurant_page_sql};
pub use queries::{Restaurant, Review};
pub use search_key::fold;

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::{DatabaseSettings, ExposeSecret, PostgresSettings};
use crate::domain::RestaurantId;
use crate::identity::{TokenError, TokenSource};

/// The scope of Azure Database for PostgreSQL's Entra tokens.
pub const POSTGRES_SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";

/// The PostgreSQL migrations, also read by `doctor` to compare with what a database has.
pub static POSTGRES_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| {
    embedded(&[
        (
            20261123000001,
            "restaurants and reviews",
            include_str!("../../migrations/postgres/20261123000001_restaurants_and_reviews.sql"),
        ),
        (
            20261202000001,
            "collated keyset paging",
            include_str!("../../migrations/postgres/20261202000001_collated_keyset_paging.sql"),
        ),
        (
            20261210000001,
            "search and sorts",
            include_str!("../../migrations/postgres/20261210000001_search_and_sorts.sql"),
        ),
        (
            20261215000001,
            "restaurant total per statement",
            include_str!(
                "../../migrations/postgres/20261215000001_restaurant_total_per_statement.sql"
            ),
        ),
    ])
});
static SQLITE_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| {
    embedded(&[
        (
            20261123000001,
            "restaurants and reviews",
            include_str!("../../migrations/sqlite/20261123000001_restaurants_and_reviews.sql"),
        ),
        (
            20261202000001,
            "collated keyset paging",
            include_str!("../../migrations/sqlite/20261202000001_collated_keyset_paging.sql"),
        ),
        (
            20261210000001,
            "search and sorts",
            include_str!("../../migrations/sqlite/20261210000001_search_and_sorts.sql"),
        ),
    ])
});

/// Migrations compiled into the binary (App Service runs the binary alone), listed by hand
/// rather than with `sqlx::migrate!`, whose proc macro compiles both drivers a second time for
/// the build host; a test checks the list against the folders.
fn embedded(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// How long a request waits for a pool connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
/// sqlx pings on every acquire by default, and also on every release (which cannot be turned
/// off): two extra round trips around each query, the largest cost of a request in the
/// benchmark. Under load a connection was used a moment ago, so only the release ping is left;
/// after a quiet spell (when a restarted server or a dropped connection would go unnoticed) the
/// first request still checks it.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no restaurant with id {0}")]
    RestaurantNotFound(RestaurantId),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    #[error("could not open the database")]
    Connect(#[source] sqlx::Error),
    #[error("could not create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error(
        "the role \"{user}\" may not create tables in database \"{database}\" (PostgreSQL 15 and later give new roles no CREATE on schema public); as the server's administrator run: GRANT CREATE ON SCHEMA public TO \"{user}\";"
    )]
    MigrationPrivileges {
        user: String,
        database: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("no token to sign in to PostgreSQL with")]
    Token(#[source] TokenError),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        let refused =
            matches!(&error, sqlx::Error::Database(e) if is_connect_refusal(e.code().as_deref()));
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => DbError::Unavailable(error),
            error if refused => DbError::Unavailable(error),
            other => DbError::Query(other),
        }
    }
}

/// SQLSTATEs with which a server refuses or ends a connection: bad password or expired token
/// (28P01, 28000), starting up or shutting down (57P03), too many connections (53300), the
/// session ended by a shutdown, restart or `pg_terminate_backend` (57P01, 57P02: a query in
/// flight gets this), and the connection-exception class (08).
fn is_connect_refusal(code: Option<&str>) -> bool {
    is_refused_login(code)
        || matches!(code, Some("57P01" | "57P02" | "57P03" | "53300"))
        || code.is_some_and(|c| c.starts_with("08"))
}

/// Wrong password or expired token.
fn is_refused_login(code: Option<&str>) -> bool {
    matches!(code, Some("28P01" | "28000"))
}

/// A pooled connection. A login refused because the token changed while it was being made is
/// retried once, with the pool's current options.
async fn acquire<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
    match pool.acquire().await {
        Err(sqlx::Error::Database(e)) if is_refused_login(e.code().as_deref()) => {
            tracing::debug!("login refused; retrying once with the current token");
            tokio::time::sleep(Duration::from_millis(50)).await;
            pool.acquire().await
        }
        other => other,
    }
}

/// A connection pool for whichever backend is configured.
#[derive(Clone, Debug)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against either backend with one pooled connection; `$conn` is bound to
/// the concrete `PoolConnection` (use it as `&mut *$conn`).
macro_rules! on_conn {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            Database::Sqlite(pool) => {
                let mut $conn = acquire(pool).await?;
                $body
            }
            Database::Postgres(pool) => {
                let mut $conn = acquire(pool).await?;
                $body
            }
        }
    };
}
pub(crate) use on_conn;

/// The connect options for PostgreSQL, built in exactly one place so that a changing password
/// (a managed-identity token) can be swapped in for new connections.
pub fn postgres_connect_options(
    settings: &PostgresSettings,
    password: Option<&str>,
) -> PgConnectOptions {
    let options = PgConnectOptions::new()
        .host(&settings.host)
        .port(settings.port)
        .database(&settings.database)
        .username(&settings.user)
        .ssl_mode(settings.ssl_mode)
        .application_name("restaurant-review");
    let options = match &settings.ssl_root_cert {
        Some(ca) => options.ssl_root_cert(ca),
        None => options,
    };
    match password {
        Some(password) => options.password(password),
        None => options,
    }
}

impl Database {
    /// Opens the configured database (creating the SQLite file on first run) and runs migrations.
    /// PostgreSQL without a password signs in with tokens from `tokens` (whose first token the
    /// caller has fetched): every new connection uses the current one, open connections are
    /// left alone.
    #[tracing::instrument(name = "db.connect", skip_all, fields(backend))]
    pub async fn connect(
        settings: &DatabaseSettings,
        tokens: Option<&TokenSource>,
    ) -> Result<Self, DbError> {
        let db = match settings {
            DatabaseSettings::Sqlite { path } => {
                tracing::Span::current().record("backend", "sqlite");
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| DbError::DataDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let options = SqliteConnectOptions::from_str("sqlite:")
                    .map_err(DbError::Connect)?
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    // A local file does not go away between queries: no ping on acquire.
                    .test_before_acquire(false)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                tracing::info!(path = %path.display(), "using the embedded SQLite database");
                Database::Sqlite(pool)
            }
            DatabaseSettings::Postgres(pg) => {
                tracing::Span::current().record("backend", "postgres");
                let pool_options = PgPoolOptions::new()
                    .max_connections(10)
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for > PING_WHEN_IDLE_FOR {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .max_lifetime(pg.max_connection_lifetime);
                let pool = match (&pg.password, tokens) {
                    (None, Some(tokens)) if pg.uses_entra_token() => {
                        // The caller got the first token already; this is the cached one.
                        let token = tokens.token().await.map_err(DbError::Token)?;
                        let pool = pool_options
                            .connect_with(postgres_connect_options(pg, Some(token.secret())))
                            .await
                            .map_err(DbError::Connect)?;
                        rotate_password_with_tokens(&pool, pg.clone(), tokens);
                        pool
                    }
                    (password, _) => pool_options
                        .connect_with(postgres_connect_options(
                            pg,
                            password.as_ref().map(|p| p.expose_secret()),
                        ))
                        .await
                        .map_err(DbError::Connect)?,
                };
                let auth = match (pg.uses_entra_token(), &pg.password) {
                    (true, _) => "Microsoft Entra token",
                    (false, Some(_)) => "password",
                    (false, None) => "no password",
                };
                tracing::info!(host = %pg.host, database = %pg.database, user = %pg.user, auth, "using PostgreSQL");
                Database::Postgres(pool)
            }
        };
        db.migrate(settings).await?;
        db.refresh_sort_keys().await?;
        db.refresh_search_keys().await?;
        Ok(db)
    }

    /// Makes the SQLite sort keys of names that have none (rows inserted with plain SQL, say) or
    /// one from another collation version; runs at startup. Nothing to do on PostgreSQL.
    pub async fn refresh_sort_keys(&self) -> Result<(), DbError> {
        match self {
            Database::Sqlite(pool) => sort_key::refresh(pool).await,
            Database::Postgres(_) => Ok(()),
        }
    }

    #[tracing::instrument(name = "db.migrate", skip_all)]
    async fn migrate(&self, settings: &DatabaseSettings) -> Result<(), DbError> {
        let result = match self {
            Database::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Database::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        result.map_err(|error| {
            let denied = matches!(&error, sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501"));
            match settings {
                DatabaseSettings::Postgres(pg) if denied => DbError::MigrationPrivileges {
                    user: pg.user.clone(),
                    database: pg.database.clone(),
                    source: error,
                },
                _ => DbError::Migrate(error),
            }
        })
    }

    /// Answers when the database does; used by `/health`.
    #[tracing::instrument(name = "db.ping", skip_all)]
    pub async fn ping(&self) -> Result<(), DbError> {
        on_conn!(self, conn => {
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// Keeps the pool's password equal to the current token, so each new connection signs in with
/// a valid one; open connections are untouched (the server checks tokens only at sign-in).
fn rotate_password_with_tokens(pool: &PgPool, settings: PostgresSettings, tokens: &TokenSource) {
    let pool = pool.clone();
    let mut changes = tokens.subscribe();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            if pool.is_closed() {
                return;
            }
            let token = changes.borrow_and_update().clone();
            if let Some(token) = token {
                pool.set_connect_options(postgres_connect_options(&settings, Some(token.secret())));
                tracing::debug!(expires_on = %token.expires_on, "new PostgreSQL connections use the new token");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration file is in the embedded list, with the version and description its
    /// name gives (as `sqlx migrate` would read the folder).
    #[test]
    fn the_embedded_migrations_are_exactly_the_migration_folders() {
        for (folder, migrator) in [
            ("postgres", &*POSTGRES_MIGRATIONS),
            ("sqlite", &*SQLITE_MIGRATIONS),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(folder);
            let mut files: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|e| e == "sql"))
                .map(|path| {
                    let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
                    let (version, description) = stem.split_once('_').unwrap();
                    let sql = std::fs::read_to_string(&path).unwrap();
                    (version.parse().unwrap(), description.replace('_', " "), sql)
                })
                .collect();
            files.sort();
            let embedded: Vec<(i64, String, String)> = migrator
                .iter()
                .map(|m| {
                    (
                        m.version,
                        m.description.to_string(),
                        m.sql.as_str().to_owned(),
                    )
                })
                .collect();
            assert_eq!(embedded, files, "migrations/{folder}");
        }
    }
}
