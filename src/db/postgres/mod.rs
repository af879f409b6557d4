//! PostgreSQL while serving: tokio-postgres connections in a deadpool pool.
//!
//! Why not sqlx's pool (which SQLite and the migrations still use): it pings every connection
//! it takes back, a second round trip per query, and its connections read the socket only
//! while a query runs, so one the server ended while idle is found dead by the next request.
//! tokio-postgres reads each connection in a task of its own: when the server ends a session
//! (a failover, a restart, `pg_terminate_backend`, an idle cut), the client is marked closed at
//! once and the pool drops it before anyone uses it (no ping). And it pipelines, so a write's
//! `BEGIN`, statements and `COMMIT` travel together: one round trip.
//!
//! What still meets a dead connection (the server's goodbye still in flight, or a network that
//! dropped without a word) is retried once on a new connection, when that is safe: a read
//! always; a write only when nothing can have been applied ([`pipeline`]).

mod pipeline;
pub mod tls;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use pipeline::PgTx;

use super::DbError;
use super::sql::Param;
use crate::config::{ExposeSecret, PostgresSettings, SecretString};
use crate::identity::TokenSource;

/// How long a request waits for a pool connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a connection (TCP, TLS, sign-in) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Sent data unacknowledged this long ends the connection (a network that silently dropped),
/// instead of a request waiting for the kernel's default of about 15 minutes.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
/// A sign-in refused right after a token rotation is retried once after this pause.
const LOGIN_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How a connection's background task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The server sent an error while no request was in flight (it ended an idle session) and
    /// closed: no request queued after that was written to the socket.
    ServerEndedIdleSession,
    /// The connection failed some other way: requests in flight may or may not have arrived.
    Broken,
    /// The client closed it.
    Closed,
}

/// One connection: the client, the statements prepared on it, and how its task ended.
pub(crate) struct PgConn {
    client: tokio_postgres::Client,
    statements: HashMap<(&'static str, Vec<Type>), tokio_postgres::Statement>,
    ended: watch::Receiver<Option<Ended>>,
    opened: Instant,
}

impl PgConn {
    /// `sql` prepared with its parameters' types, once per connection.
    async fn statement(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        let types: Vec<Type> = params.iter().map(Param::pg_type).collect();
        if let Some(statement) = self.statements.get(&(sql, types.clone())) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare_typed(sql, &types).await?;
        self.statements.insert((sql, types), statement.clone());
        Ok(statement)
    }

    /// A read: one round trip once the statement is prepared.
    pub(crate) async fn query(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let statement = self.statement(sql, params).await?;
        let values: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.client.query(&statement, &values).await
    }

    /// How the connection's task ended, waiting a moment for it to say (it records the reason
    /// just after the client sees the connection closed).
    async fn ended(&self) -> Option<Ended> {
        let mut ended = self.ended.clone();
        let wait = ended.wait_for(Option::is_some);
        match tokio::time::timeout(Duration::from_secs(1), wait).await {
            Ok(Ok(reason)) => *reason,
            _ => None,
        }
    }
}

/// Opens connections for the pool, each with the current password: the token of the moment
/// when the app signs in with its identity (so rotation needs no bookkeeping), else the
/// password given, or none.
pub(crate) struct Connector {
    settings: PostgresSettings,
    tokens: Option<TokenSource>,
    tls: MakeRustlsConnect,
}

impl Connector {
    pub(crate) fn new(
        settings: &PostgresSettings,
        tokens: Option<&TokenSource>,
    ) -> Result<Self, DbError> {
        let tls = tls::client_config(settings).map_err(|e| DbError::Connect(Box::new(e)))?;
        Ok(Self {
            settings: settings.clone(),
            tokens: tokens.filter(|_| settings.uses_entra_token()).cloned(),
            tls: MakeRustlsConnect::new(tls),
        })
    }

    /// The password of the moment.
    pub(crate) async fn password(&self) -> Result<Option<SecretString>, DbError> {
        Ok(match (&self.settings.password, &self.tokens) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(tokens)) => {
                let token = tokens.token().await.map_err(DbError::Token)?;
                Some(SecretString::from(token.secret().to_owned()))
            }
            (None, None) => None,
        })
    }

    /// A new connection; a sign-in refused because the token changed while it was being made
    /// is retried once.
    pub(crate) async fn connect(&self) -> Result<PgConn, DbError> {
        match self.connect_once().await {
            Err(DbError::Unavailable(error))
                if self.tokens.is_some() && is_refused_login(&*error) =>
            {
                tracing::debug!("sign-in refused; retrying once with the current token");
                tokio::time::sleep(LOGIN_RETRY_PAUSE).await;
                self.connect_once().await
            }
            other => other,
        }
    }

    async fn connect_once(&self) -> Result<PgConn, DbError> {
        let password = self.password().await?;
        let config = connect_config(&self.settings, password.as_ref());
        let (client, connection) = config
            .connect(self.tls.clone())
            .await
            .map_err(DbError::from_pg)?;
        let (ended_tx, ended) = watch::channel(None);
        tokio::spawn(watch_connection(connection, ended_tx));
        Ok(PgConn {
            client,
            statements: HashMap::new(),
            ended,
            opened: Instant::now(),
        })
    }
}

/// The connection settings for tokio-postgres, with `password` (never logged).
fn connect_config(
    settings: &PostgresSettings,
    password: Option<&SecretString>,
) -> tokio_postgres::Config {
    use sqlx::postgres::PgSslMode;
    use tokio_postgres::config::SslMode;
    let mut config = tokio_postgres::Config::new();
    config
        .host(&settings.host)
        .port(settings.port)
        .dbname(&settings.database)
        .user(&settings.user)
        .application_name("restaurant-review")
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_user_timeout(TCP_USER_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .ssl_mode(match settings.ssl_mode {
            PgSslMode::Disable => SslMode::Disable,
            // libpq's "allow" tries without TLS first; tokio-postgres knows only "prefer",
            // which gets a connection in the same cases.
            PgSslMode::Allow | PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => SslMode::Require,
        });
    if let Some(password) = password {
        config.password(password.expose_secret());
    }
    config
}

/// Drives a connection and records how it ended, before the connection (and the requests still
/// queued on it) is dropped, so a caller whose request failed can tell whether it was sent.
async fn watch_connection<S, T>(
    connection: tokio_postgres::Connection<S, T>,
    ended: watch::Sender<Option<Ended>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut connection = std::pin::pin!(connection);
    let reason = match connection.as_mut().await {
        Ok(()) => Ended::Closed,
        // tokio-postgres ends a connection with the server's own error only when it arrives
        // while no request is in flight (the server ended an idle session).
        Err(error) if error.as_db_error().is_some() => {
            tracing::info!(
                reason = %error,
                "PostgreSQL ended an idle connection; the pool opens a new one when needed"
            );
            Ended::ServerEndedIdleSession
        }
        Err(error) => {
            tracing::info!(reason = %crate::error_chain(&error), "a PostgreSQL connection failed");
            Ended::Broken
        }
    };
    let _ = ended.send(Some(reason));
}

impl managed::Manager for Connector {
    type Type = PgConn;
    type Error = DbError;

    async fn create(&self) -> Result<PgConn, DbError> {
        self.connect().await
    }

    /// No round trip: a connection the server ended is already marked closed by its task.
    async fn recycle(&self, conn: &mut PgConn, _: &Metrics) -> RecycleResult<DbError> {
        if conn.client.is_closed() {
            return Err(RecycleError::message("the connection was closed"));
        }
        if conn.opened.elapsed() >= self.settings.max_connection_lifetime {
            return Err(RecycleError::message("older than its maximum lifetime"));
        }
        Ok(())
    }
}

/// The pool's figures of the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolStatus {
    /// Connections open now.
    pub size: usize,
    /// Of those, waiting in the pool.
    pub idle: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// The most the pool opens.
    pub max: usize,
}

/// The pool of PostgreSQL connections.
#[derive(Clone)]
pub struct PgPool {
    pool: managed::Pool<Connector>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("status", &self.status())
            .finish()
    }
}

impl PgPool {
    /// A pool of at most `max_size` connections; opens the first one now, so that a wrong
    /// host, password or identity stops the app at startup.
    pub(crate) async fn open(connector: Connector, max_size: usize) -> Result<Self, DbError> {
        let pool = managed::Pool::builder(connector)
            .max_size(max_size)
            .wait_timeout(Some(ACQUIRE_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(5)))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Connect(Box::new(e)))?;
        let pool = Self { pool };
        drop(pool.get().await?);
        Ok(pool)
    }

    async fn get(&self) -> Result<Object<Connector>, DbError> {
        self.pool.get().await.map_err(|error| match error {
            PoolError::Backend(error) => error,
            PoolError::Timeout(_) => {
                DbError::Unavailable("no database connection became free within 5 s".into())
            }
            other => DbError::Unavailable(other.to_string().into()),
        })
    }

    /// Puts a new connection in place of a dead one, keeping its slot in the pool.
    async fn replace(&self, conn: &mut Object<Connector>) -> Result<(), DbError> {
        let fresh = self.pool.manager().connect().await?;
        let slot: &mut PgConn = conn;
        *slot = fresh;
        Ok(())
    }

    /// A read, retried once on a new connection when its connection was dead.
    pub async fn fetch(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let mut conn = self.get().await?;
        match conn.query(sql, params).await {
            Err(error) if is_dead_connection(&error) => {
                tracing::info!(
                    cause = %crate::error_chain(&error),
                    "a read met a dead connection; retrying it on a new one"
                );
                self.replace(&mut conn).await?;
                conn.query(sql, params).await.map_err(DbError::from_pg)
            }
            other => other.map_err(DbError::from_pg),
        }
    }

    pub fn status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            size: status.size,
            idle: status.available,
            waiting: status.waiting,
            max: status.max_size,
        }
    }

    pub fn close(&self) {
        self.pool.close();
    }
}

/// Whether `error` says the connection was gone (rather than the statement refused): the
/// client saw it close, the socket failed, or the server said it is ending the session
/// (57P01 admin shutdown or `pg_terminate_backend`, 57P02 crash shutdown, 57P03 starting up
/// or shutting down) or named a connection exception (class 08).
pub(crate) fn is_dead_connection(error: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    error.is_closed()
        || error
            .source()
            .is_some_and(|source| source.is::<std::io::Error>())
        || is_session_ended(error)
}

/// The server said it is ending this session (the backend exits after sending this).
fn is_session_ended(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        let code = code.code();
        matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08")
    })
}

/// A wrong password or expired token, from the server.
fn is_refused_login(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|code| matches!(code.code(), "28P01" | "28000"))
}
