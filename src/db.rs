//! Persistence for restaurants and reviews on SQLite (the zero-setup default) or PostgreSQL.
//!
//! Each query is written once and compiled for both drivers by [`on_conn!`]: sqlx's query
//! builders are generic over the database, and both accept `$N` placeholders and `RETURNING`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use time::OffsetDateTime;

use crate::config::{DatabaseSettings, PostgresSettings};
use crate::domain::{NewRestaurant, NewReview, RatingSummary, RestaurantId};
use crate::identity::{TokenError, TokenSource};
use crate::photos::PhotoName;

/// The scope of Azure Database for PostgreSQL's Entra tokens.
pub const POSTGRES_SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";

/// The PostgreSQL migrations, also read by `doctor` to compare with what a database has.
pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a request waits for a pool connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

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

/// SQLSTATEs with which a server refuses a connection: bad password or expired token (28P01,
/// 28000), starting up or shutting down (57P03), too many connections (53300).
fn is_connect_refusal(code: Option<&str>) -> bool {
    is_refused_login(code) || matches!(code, Some("57P03" | "53300"))
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
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .max_lifetime(pg.max_connection_lifetime);
                let pool = match (&pg.password, tokens) {
                    (None, Some(tokens)) => {
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
                            password.as_ref().map(|p| p.expose()),
                        ))
                        .await
                        .map_err(DbError::Connect)?,
                };
                let auth = if pg.password.is_some() {
                    "password"
                } else {
                    "Microsoft Entra token"
                };
                tracing::info!(host = %pg.host, database = %pg.database, user = %pg.user, auth, "using PostgreSQL");
                Database::Postgres(pool)
            }
        };
        db.migrate(settings).await?;
        Ok(db)
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

    #[tracing::instrument(name = "db.create_restaurant", skip_all)]
    pub async fn create_restaurant(&self, new: &NewRestaurant) -> Result<RestaurantId, DbError> {
        let id: i64 = on_conn!(self, conn => {
            sqlx::query_scalar(
                "INSERT INTO restaurant (name, street_address, description) \
                 VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(new.name.as_str())
            .bind(new.street_address.as_str())
            .bind(new.description.as_str())
            .fetch_one(&mut *conn)
            .await?
        });
        Ok(RestaurantId::from_db(id))
    }

    /// One page of restaurants in name order, plus the total count for the pager.
    #[tracing::instrument(name = "db.restaurant_page", skip(self))]
    pub async fn restaurant_page(
        &self,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<Restaurant>, i64), DbError> {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
        let (rows, total): (Vec<RestaurantRow>, i64) = on_conn!(self, conn => {
            let rows = sqlx::query_as(
                "SELECT id, name, street_address, description, review_count, rating_sum \
                 FROM restaurant ORDER BY name, id LIMIT $1 OFFSET $2",
            )
            .bind(i64::from(per_page))
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM restaurant")
                .fetch_one(&mut *conn)
                .await?;
            (rows, total)
        });
        Ok((rows.into_iter().map(Restaurant::from).collect(), total))
    }

    #[tracing::instrument(name = "db.restaurant", skip(self), fields(id = id.get()))]
    pub async fn restaurant(&self, id: RestaurantId) -> Result<Option<Restaurant>, DbError> {
        let row: Option<RestaurantRow> = on_conn!(self, conn => {
            sqlx::query_as(
                "SELECT id, name, street_address, description, review_count, rating_sum \
                 FROM restaurant WHERE id = $1",
            )
            .bind(id.get())
            .fetch_optional(&mut *conn)
            .await?
        });
        Ok(row.map(Restaurant::from))
    }

    /// A page of a restaurant's reviews, newest first.
    #[tracing::instrument(name = "db.reviews", skip(self), fields(id = id.get()))]
    pub async fn reviews(
        &self,
        id: RestaurantId,
        page: u32,
        per_page: u32,
    ) -> Result<Vec<Review>, DbError> {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(per_page);
        let rows: Vec<ReviewRow> = on_conn!(self, conn => {
            sqlx::query_as(
                "SELECT id, user_name, rating, review_text, review_date, image_name \
                 FROM review WHERE restaurant_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            )
            .bind(id.get())
            .bind(i64::from(per_page))
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?
        });
        Ok(rows.into_iter().map(Review::from).collect())
    }

    /// Inserts a review and updates the restaurant's running totals in one transaction.
    /// Fails with [`DbError::RestaurantNotFound`] (and writes nothing) for an unknown restaurant.
    #[tracing::instrument(name = "db.add_review", skip(self, review, image), fields(id = id.get()))]
    pub async fn add_review(
        &self,
        id: RestaurantId,
        review: &NewReview,
        image: Option<&PhotoName>,
    ) -> Result<i64, DbError> {
        let rating = i16::from(review.rating.value());
        let now = OffsetDateTime::now_utc();
        on_conn!(self, conn => {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            // Updating the parent first also locks it, so concurrent reviews cannot lose an
            // increment, and tells us whether the restaurant exists.
            let updated = sqlx::query(
                "UPDATE restaurant SET review_count = review_count + 1, rating_sum = rating_sum + $1 \
                 WHERE id = $2",
            )
            .bind(rating)
            .bind(id.get())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(DbError::RestaurantNotFound(id));
            }
            let review_id: i64 = sqlx::query_scalar(
                "INSERT INTO review (restaurant_id, user_name, rating, review_text, review_date, image_name) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(id.get())
            .bind(review.user_name.as_str())
            .bind(rating)
            .bind(review.review_text.as_str())
            .bind(now)
            .bind(image.map(PhotoName::as_str))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(review_id)
        })
    }

    /// Every stored photo name; used by tests and consistency checks.
    pub async fn image_names(&self) -> Result<Vec<String>, DbError> {
        Ok(on_conn!(self, conn => {
            sqlx::query_scalar("SELECT image_name FROM review WHERE image_name IS NOT NULL ORDER BY id")
                .fetch_all(&mut *conn)
                .await?
        }))
    }

    /// Number of rows in the review table.
    pub async fn review_total(&self) -> Result<i64, DbError> {
        Ok(on_conn!(self, conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM review").fetch_one(&mut *conn).await?
        }))
    }

    /// Number of rows in the restaurant table.
    pub async fn restaurant_total(&self) -> Result<i64, DbError> {
        Ok(on_conn!(self, conn => {
            sqlx::query_scalar("SELECT COUNT(*) FROM restaurant").fetch_one(&mut *conn).await?
        }))
    }
}

#[derive(sqlx::FromRow)]
struct RestaurantRow {
    id: i64,
    name: String,
    street_address: String,
    description: String,
    review_count: i64,
    rating_sum: i64,
}

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
        Self {
            id: RestaurantId::from_db(row.id),
            name: row.name,
            street_address: row.street_address,
            description: row.description,
            ratings: RatingSummary {
                review_count: row.review_count,
                rating_sum: row.rating_sum,
            },
        }
    }
}

#[derive(sqlx::FromRow)]
struct ReviewRow {
    id: i64,
    user_name: String,
    rating: i16,
    review_text: String,
    review_date: OffsetDateTime,
    image_name: Option<String>,
}

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
        Self {
            id: row.id,
            user_name: row.user_name,
            rating: u8::try_from(row.rating).unwrap_or(0),
            review_text: row.review_text,
            review_date: row.review_date,
            image: row.image_name.as_deref().and_then(PhotoName::parse),
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
