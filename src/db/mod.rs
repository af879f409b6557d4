//! Persistence for restaurants and reviews on SQLite (the zero-setup default) or PostgreSQL:
//! pools, sign-in with rotating tokens, migrations and errors here; the queries in [`queries`]
//! and [`paging`], each written once for both backends through [`sql`] and [`exec`].
//!
//! Two drivers, each for what it does best: sqlx for SQLite (and to run PostgreSQL's
//! migrations, whose bookkeeping deployed databases already have), tokio-postgres with a
//! deadpool pool for PostgreSQL while serving (one round trip a page, dead connections
//! noticed without a ping: see [`postgres`]).

mod exec;
mod page_numbers;
mod paging;
pub mod postgres;
mod queries;
mod search_key;
mod sort_key;
pub mod sql;

pub use exec::Tx;
use page_numbers::PageNumbers;
pub use paging::{Backend, PageAt, RestaurantFilter, Sort, details_page_sql, restaurant_page_sql};
pub use postgres::{PgPool, PoolStatus};
pub use queries::{Restaurant, Review};
pub use search_key::fold;
/// The SQLite sort key of a name (stored beside it; see sort_key.rs), for statements that set a name.
pub use sort_key::name_key as sort_key_for;

use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Connection, SqlSafeStr};

use sqlx::postgres::{PgConnectOptions, PgConnection};
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
        (
            20261220000001,
            "moderation",
            include_str!("../../migrations/postgres/20261220000001_moderation.sql"),
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
        (
            20261220000001,
            "moderation",
            include_str!("../../migrations/sqlite/20261220000001_moderation.sql"),
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

/// How long a request waits for an SQLite pool connection before the database counts as
/// unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no restaurant with id {0}")]
    RestaurantNotFound(RestaurantId),
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// The connection was lost while a write was being committed: it may or may not have
    /// been applied, so it is not sent again.
    #[error(
        "the database connection was lost while committing; the write may or may not have been saved"
    )]
    OutcomeUnknown(#[source] BoxError),
    #[error("database query failed")]
    Query(#[source] BoxError),
    #[error("could not open the database")]
    Connect(#[source] BoxError),
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

impl DbError {
    /// Whether the database could not be reached or answer (a 503, and worth trying again),
    /// rather than a query gone wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable(_) | DbError::OutcomeUnknown(_) | DbError::Token(_)
        )
    }

    /// A tokio-postgres error: unavailable when the connection is gone or the server refuses
    /// sessions; a failed query otherwise.
    pub(crate) fn from_pg(error: tokio_postgres::Error) -> Self {
        let refused = error
            .code()
            .is_some_and(|code| is_connect_refusal(Some(code.code())));
        if refused || postgres::is_dead_connection(&error) {
            DbError::Unavailable(Box::new(error))
        } else {
            DbError::Query(Box::new(error))
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        let refused =
            matches!(&error, sqlx::Error::Database(e) if is_connect_refusal(e.code().as_deref()));
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => DbError::Unavailable(Box::new(error)),
            error if refused => DbError::Unavailable(Box::new(error)),
            other => DbError::Query(Box::new(other)),
        }
    }
}

/// SQLSTATEs with which a server refuses or ends a connection: bad password or expired token
/// (28P01, 28000), starting up or shutting down (57P03), too many connections (53300), the
/// session ended by a shutdown, restart or `pg_terminate_backend` (57P01, 57P02: a query in
/// flight gets this), and the connection-exception class (08).
fn is_connect_refusal(code: Option<&str>) -> bool {
    matches!(code, Some("28P01" | "28000"))
        || matches!(code, Some("57P01" | "57P02" | "57P03" | "53300"))
        || code.is_some_and(|c| c.starts_with("08"))
}

/// An SQLite pool connection.
async fn acquire(
    pool: &SqlitePool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, sqlx::Error> {
    pool.acquire().await
}

/// The database: a pool for whichever backend is configured, and what is kept beside it.
#[derive(Clone, Debug)]
pub struct Database {
    pool: Pool,
    page_numbers: Arc<PageNumbers>,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The connect options for running PostgreSQL's migrations with sqlx, with the password of
/// the moment (a managed-identity token, or the one given).
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
    /// caller has fetched): each new connection with the token of the moment; open
    /// connections are left alone (the server checks a token only at sign-in).
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
                    .map_err(|e| DbError::Connect(Box::new(e)))?
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
                    .map_err(|e| DbError::Connect(Box::new(e)))?;
                tracing::info!(path = %path.display(), "using the embedded SQLite database");
                SQLITE_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(DbError::Migrate)?;
                Pool::Sqlite(pool)
            }
            DatabaseSettings::Postgres(pg) => {
                tracing::Span::current().record("backend", "postgres");
                let connector = postgres::Connector::new(pg, tokens)?;
                // Migrations first, on a connection of their own: the pool's statements are
                // prepared against the tables they make.
                migrate_postgres(pg, &connector).await?;
                let pool = PgPool::open(connector, pg.pool_size).await?;
                let auth = match (pg.uses_entra_token(), &pg.password) {
                    (true, _) => "Microsoft Entra token",
                    (false, Some(_)) => "password",
                    (false, None) => "no password",
                };
                tracing::info!(host = %pg.host, database = %pg.database, user = %pg.user, auth, pool_size = pg.pool_size, "using PostgreSQL");
                Pool::Postgres(pool)
            }
        };
        let db = Database {
            pool: db,
            page_numbers: Arc::default(),
        };
        db.refresh_sort_keys().await?;
        db.refresh_search_keys().await?;
        Ok(db)
    }

    /// Makes the SQLite sort keys of names that have none (rows inserted with plain SQL, say) or
    /// one from another collation version; runs at startup. Nothing to do on PostgreSQL.
    pub async fn refresh_sort_keys(&self) -> Result<(), DbError> {
        match &self.pool {
            Pool::Sqlite(pool) => sort_key::refresh(pool).await,
            Pool::Postgres(_) => Ok(()),
        }
    }

    /// Answers when the database does; used by `/health`.
    #[tracing::instrument(name = "db.ping", skip_all)]
    pub async fn ping(&self) -> Result<(), DbError> {
        let _: Vec<(i32,)> = self.fetch_all("SELECT 1", &[]).await?;
        Ok(())
    }

    /// Which database this is, for the few statements written differently for each.
    pub fn backend(&self) -> Backend {
        match &self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL pool's figures of the moment (`None` on SQLite).
    pub fn pool_status(&self) -> Option<PoolStatus> {
        match &self.pool {
            Pool::Sqlite(_) => None,
            Pool::Postgres(pool) => Some(pool.status()),
        }
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close(),
        }
    }
}

/// Runs PostgreSQL's migrations with sqlx on one connection, signed in as the pool would be.
#[tracing::instrument(name = "db.migrate", skip_all)]
async fn migrate_postgres(
    pg: &PostgresSettings,
    connector: &postgres::Connector,
) -> Result<(), DbError> {
    let password = connector.password().await?;
    let options = postgres_connect_options(pg, password.as_ref().map(|p| p.expose_secret()));
    let mut connection = PgConnection::connect_with(&options)
        .await
        .map_err(|e| DbError::Connect(Box::new(e)))?;
    let result = POSTGRES_MIGRATIONS.run(&mut connection).await;
    let _ = connection.close().await;
    result.map_err(|error| {
        let denied = matches!(&error, sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501"));
        if denied {
            DbError::MigrationPrivileges {
                user: pg.user.clone(),
                database: pg.database.clone(),
                source: error,
            }
        } else {
            DbError::Migrate(error)
        }
    })
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
