//! Builds the application from [`Settings`] and serves it.
//!
//! The accept loop is written here rather than `axum::serve` because the latter can neither set
//! a header-read timeout nor cap connections: a client that trickles its headers, or never sends
//! a byte, must not hold a connection (and a file descriptor) forever.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::{DatabaseSettings, PhotoSettings, PhotoUrlMode, Settings};
use crate::db::{Database, DbError, POSTGRES_SCOPE};
use crate::identity::{
    self, CredentialError, FIRST_TOKEN_PATIENCE, SelectedCredential, TokenSource,
};
use crate::moderation::{photo_outbox, sign_in};
use crate::photos::azure::STORAGE_SCOPE;
use crate::photos::{ImageWorkers, PhotoLimits, PhotoStore, StoreError};
use crate::reviews::Reviews;
use crate::web::moderator::ModeratorAccess;
use crate::web::{self, AppState};

/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// At most one "at the connection cap" warning this often, however long the siege.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("the database is not usable")]
    Database(#[from] DbError),
    #[error("no Azure credential is usable")]
    Credential(#[from] CredentialError),
    #[error("photo storage is not usable")]
    Photos(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Makes ring the process's TLS provider (reqwest, used by the Azure SDK and object_store, is
/// built without a provider of its own). Idempotent; the app and `doctor` call it first.
pub fn install_tls_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The database and the photo store, opened (and checked) with the app's settings and identity:
/// for serving, and for the `moderate` command, which acts on the same data.
pub struct Storage {
    pub db: Database,
    pub photos: PhotoStore,
    /// Token sources for Azure services (refresh them to keep going past the first token).
    pub token_sources: Vec<TokenSource>,
}

impl Storage {
    /// Connects to the database (running migrations) and checks photo storage.
    pub async fn open(settings: &Settings) -> Result<Self, StartupError> {
        install_tls_provider();
        // One credential for every Azure service, chosen (and logged) once, when first needed.
        let mut credential: Option<SelectedCredential> = None;
        let mut token_source = |scope: &str| -> Result<TokenSource, StartupError> {
            let selected = match &credential {
                Some(selected) => selected.clone(),
                None => {
                    let selected = identity::select(&settings.azure.vars)?;
                    tracing::info!("signing in to Azure with {selected}");
                    credential.insert(selected).clone()
                }
            };
            Ok(TokenSource::new(
                selected.credential.clone(),
                selected.label(),
                scope,
            ))
        };

        let mut token_sources = Vec::new();
        let db_tokens = match &settings.database {
            DatabaseSettings::Postgres(pg) if pg.uses_entra_token() => {
                tracing::info!(
                    rule = pg.auth.reason(),
                    "signing in to PostgreSQL as {} with a Microsoft Entra token (because {})",
                    pg.user,
                    pg.auth.reason()
                );
                let source = token_source(POSTGRES_SCOPE)?;
                token_sources.push(source.clone());
                // Fail fast (a wrong identity ends here) before anything else starts.
                source
                    .first_token(FIRST_TOKEN_PATIENCE)
                    .await
                    .map_err(DbError::Token)?;
                Some(source)
            }
            DatabaseSettings::Postgres(pg) => {
                let how = if pg.password.is_some() {
                    "with the password given"
                } else {
                    "without a password"
                };
                tracing::info!(
                    rule = pg.auth.reason(),
                    "signing in to PostgreSQL as {} {how} (because {})",
                    pg.user,
                    pg.auth.reason()
                );
                None
            }
            DatabaseSettings::Sqlite { .. } => None,
        };
        let photos = match &settings.photos {
            PhotoSettings::Local { dir } => PhotoStore::local(dir)?,
            PhotoSettings::AzureBlob(blob) => {
                let source = token_source(STORAGE_SCOPE)?;
                token_sources.push(source.clone());
                // Fail fast (a wrong identity ends here) before anything else starts.
                source
                    .first_token(FIRST_TOKEN_PATIENCE)
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(
                            anyhow::Error::new(e).context("getting a Blob Storage token"),
                        )
                    })?;
                PhotoStore::azure(blob, source)?
            }
        };
        let db = Database::connect(&settings.database, db_tokens.as_ref()).await?;
        photos.check().await?;
        tracing::info!(store = ?photos, "photo storage ready");
        // Telemetry to Azure Monitor: the same credential and refresh-ahead cache, fetched in
        // the background (telemetry never stops the app from starting).
        if let Some(telemetry) = crate::telemetry::installed().filter(|t| t.wants_monitor_token()) {
            match token_source(crate::config::MONITOR_SCOPE) {
                Ok(source) => {
                    token_sources.push(source.clone());
                    telemetry.use_monitor_tokens(source);
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), "no Azure credential for Application Insights: telemetry is not sent")
                }
            }
        }
        Ok(Self {
            db,
            photos,
            token_sources,
        })
    }
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    db: Database,
    header_read_timeout: Duration,
    max_connections: usize,
    /// Background token refreshers and the photo outbox, stopped at shutdown.
    refreshers: Vec<tokio::task::JoinHandle<()>>,
    /// The one-time moderator sign-in link, made when listening on loopback only.
    sign_in_link: Option<String>,
}

impl Application {
    /// Connects to the database (running migrations), checks photo storage and binds the
    /// listener. Port 0 picks a free port; see [`Application::local_addr`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let Storage {
            db,
            photos,
            token_sources,
        } = Storage::open(&settings).await?;
        // Only after the first tokens proved the identity works: keep them fresh from now on.
        let mut refreshers: Vec<_> = token_sources
            .iter()
            .map(TokenSource::spawn_refresher)
            .collect();
        refreshers.push(photo_outbox::spawn(
            db.clone(),
            photos.clone(),
            photo_outbox::RETRY_EVERY,
        ));
        // Moderating from the browser without setting anything up: only for the person at the
        // machine, so only while nothing but this machine can connect.
        let local_sign_in = settings.listen.ip().is_loopback();
        let moderators = ModeratorAccess::new(settings.moderation.clone(), local_sign_in);

        let limits = PhotoLimits::new(settings.http.max_photo_bytes)
            .with_max_memory(settings.http.photo_memory_limit);
        let reviews = Reviews {
            db: db.clone(),
            photos: photos.clone(),
            workers: ImageWorkers::new(settings.http.image_workers, limits.max_memory),
            limits,
        };
        crate::telemetry::metrics::observe(&db, &reviews.workers);
        let state = AppState {
            db: db.clone(),
            photos,
            reviews,
            token_sources,
            moderators,
            posts: web::rate_limit::PostLimiter::new(&settings.rate_limit),
        };
        let photo_origin = match &settings.photos {
            PhotoSettings::AzureBlob(blob) if blob.url_mode != PhotoUrlMode::Proxy => {
                Some(blob.origin())
            }
            _ => None,
        };
        let router = web::router(state, &settings.http, photo_origin.as_deref());
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?;
        let sign_in_link = match local_sign_in {
            true => Some(format!(
                "http://{local_addr}{}?token={}",
                sign_in::SIGN_IN_PATH,
                sign_in::new_link(&db).await?
            )),
            false => None,
        };
        Ok(Self {
            sign_in_link,
            listener,
            local_addr,
            router,
            db,
            header_read_timeout: settings.http.header_read_timeout,
            max_connections: settings.http.max_connections,
            refreshers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The one-time link that signs the person at the machine in as a moderator (listening on
    /// loopback only); print it, never log it.
    pub fn sign_in_link(&self) -> Option<&str> {
        self.sign_in_link.as_deref()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then drains connections gracefully.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let graceful = GracefulShutdown::new();
        // At the cap the loop stops accepting: open connections are still served, and new ones
        // wait in the kernel's listen backlog until a slot frees.
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let mut last_full_warning: Option<Instant> = None;
        tracing::info!(
            max_connections = self.max_connections,
            "serving at most {} connections at once",
            self.max_connections
        );
        tokio::pin!(shutdown);

        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
            if slots.available_permits() == 0
                && last_full_warning.is_none_or(|at| at.elapsed() >= FULL_WARNING_INTERVAL)
            {
                tracing::warn!(
                    max_connections = self.max_connections,
                    "at the connection cap (MAX_CONNECTIONS): new connections wait until one closes"
                );
                last_full_warning = Some(Instant::now());
            }
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Usually running out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // The peer's address, for the rate limit (`web::rate_limit`).
            let service = TowerToHyperService::new(self.router.clone().map_request(
                move |mut request: axum::http::Request<_>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                },
            ));
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let header_read_timeout = self.header_read_timeout;
            tokio::spawn(async move {
                let _slot = slot;
                // hyper's header timeout starts only once HTTP/1 or HTTP/2 is told apart by the
                // first bytes; a connection that never sends one is closed here on the same
                // timeout.
                if !first_byte_within(&stream, header_read_timeout).await {
                    tracing::debug!("closing a connection that sent nothing");
                    return;
                }
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                if let Err(error) = watcher.watch(connection.into_owned()).await {
                    tracing::debug!(error = %error, "connection ended with an error");
                }
            });
        }

        drop(self.listener);
        tracing::info!("shutting down: finishing in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("gave up waiting for connections to close"),
        }
        for refresher in &self.refreshers {
            refresher.abort();
        }
        self.db.close().await;
    }
}

/// Whether the client sent something (or closed) within `timeout`.
async fn first_byte_within(stream: &TcpStream, timeout: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.peek(&mut byte)).await,
        Ok(Ok(_))
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
