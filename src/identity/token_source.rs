//! A token source per scope: cached, refreshed ahead of expiry in the background, one refresh
//! at a time, and still serving the cached token while a refresh fails.
//!
//! Written here rather than relying on `azure_identity`'s own cache because that cache returns
//! the refresh error instead of the still-valid token, refreshes only on demand (so a request
//! would wait on the identity endpoint), and cannot tell the PostgreSQL pool that a new
//! password exists.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::{ExposeSecret, SecretString};

/// Refresh when this much of a short token's life is left (or 5 minutes, whichever is less).
const REFRESH_FRACTION_LEFT: f64 = 0.2;
const REFRESH_MARGIN_MAX: Duration = Duration::from_secs(5 * 60);
/// Tokens living at least this long are refreshed at half-life, like MSAL does.
const LONG_TOKEN: Duration = Duration::from_secs(2 * 60 * 60);
/// A token this close to expiry is not handed out for a new connection.
const MIN_REMAINING: Duration = Duration::from_secs(5);
/// Failed refreshes are retried no more often than this, doubling up to `MAX_BACKOFF`; but
/// while the current token is still valid, sooner: halfway to its expiry, so a short-lived
/// token gets several retries before it runs out.
pub const MIN_BACKOFF: Duration = Duration::from_secs(10);
/// The soonest retry after a failure, however close the current token's expiry.
const SHORTEST_RETRY: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(120);
/// How long startup keeps retrying transient failures to get a first token (the SDKs retry
/// about 70 s for IMDS).
pub const FIRST_TOKEN_PATIENCE: Duration = Duration::from_secs(70);
/// A hanging identity endpoint must not stall refreshes forever.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A token and when it stops being valid. `Debug` never shows the token.
#[derive(Clone)]
pub struct Token {
    secret: Arc<SecretString>,
    pub expires_on: OffsetDateTime,
    pub obtained_at: OffsetDateTime,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

impl Token {
    pub fn secret(&self) -> &str {
        self.secret.expose_secret()
    }

    fn remaining(&self, now: OffsetDateTime) -> Duration {
        (self.expires_on - now).try_into().unwrap_or(Duration::ZERO)
    }

    fn usable(&self, now: OffsetDateTime) -> bool {
        self.remaining(now) > MIN_REMAINING
    }

    /// When to fetch the next token.
    pub fn refresh_at(&self) -> OffsetDateTime {
        let lifetime: Duration = (self.expires_on - self.obtained_at)
            .try_into()
            .unwrap_or(Duration::ZERO);
        if lifetime >= LONG_TOKEN {
            self.obtained_at + lifetime / 2
        } else {
            let margin = lifetime
                .mul_f64(REFRESH_FRACTION_LEFT)
                .min(REFRESH_MARGIN_MAX);
            self.expires_on - margin
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The identity endpoint refused the request (400: no such identity; 401/403: wrong
    /// `IDENTITY_HEADER` or no permission): retrying won't help.
    #[error("{credential} cannot get a token for {scope}: {message}")]
    Rejected {
        credential: String,
        scope: String,
        message: String,
    },
    #[error("{credential} could not get a token for {scope}: {message}")]
    Failed {
        credential: String,
        scope: String,
        message: String,
    },
}

/// What `/health` shows about a token source: never the token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenStatus {
    pub scope: String,
    pub credential: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_refresh: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub tokens_fetched: u64,
}

#[derive(Default)]
struct Bookkeeping {
    last_error: Option<TokenError>,
    last_failure: Option<OffsetDateTime>,
    backoff: Duration,
    /// What the endpoint's last `Retry-After` asked for; never retried sooner.
    retry_after: Option<Duration>,
    fetched: u64,
}

impl Bookkeeping {
    /// When a failed fetch may be tried again, given when the token in hand expires.
    fn retry_at(&self, valid_until: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
        let failed = self.last_failure?;
        let mut retry = failed + self.backoff.max(MIN_BACKOFF);
        if let Some(valid_until) = valid_until.filter(|until| *until > failed) {
            let usable_for: Duration = (valid_until - failed - MIN_REMAINING)
                .try_into()
                .unwrap_or(Duration::ZERO);
            retry = retry.min(failed + (usable_for / 2).max(SHORTEST_RETRY));
        }
        if let Some(asked) = self.retry_after {
            retry = retry.max(failed + asked);
        }
        Some(retry)
    }
}

struct Inner {
    scope: String,
    credential_name: String,
    credential: Arc<dyn TokenCredential>,
    current: watch::Sender<Option<Token>>,
    /// Held while fetching, so concurrent callers wait for one fetch instead of starting many.
    fetching: tokio::sync::Mutex<()>,
    book: Mutex<Bookkeeping>,
}

#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("scope", &self.inner.scope)
            .field("credential", &self.inner.credential_name)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(
        credential: Arc<dyn TokenCredential>,
        credential_name: impl Into<String>,
        scope: impl Into<String>,
    ) -> Self {
        let (current, _) = watch::channel(None);
        Self {
            inner: Arc::new(Inner {
                scope: scope.into(),
                credential_name: credential_name.into(),
                credential,
                current,
                fetching: tokio::sync::Mutex::new(()),
                book: Mutex::new(Bookkeeping::default()),
            }),
        }
    }

    /// A valid token: the cached one in steady state, otherwise one fetch shared by all callers.
    /// While a recent fetch failed and nothing valid is left, the failure is returned at once
    /// instead of calling the identity endpoint again (at most every 30 s).
    pub async fn token(&self) -> Result<Token, TokenError> {
        if let Some(token) = self.cached_usable() {
            return Ok(token);
        }
        let _fetching = self.inner.fetching.lock().await;
        if let Some(token) = self.cached_usable() {
            return Ok(token);
        }
        if let Some(error) = self.backing_off() {
            return Err(error);
        }
        self.fetch().await
    }

    /// The first token, at startup: transient failures are retried with exponential backoff
    /// for up to `give_up_after` (the SDKs do about 70 s for IMDS); a rejection ends at once.
    pub async fn first_token(&self, give_up_after: Duration) -> Result<Token, TokenError> {
        let started = std::time::Instant::now();
        let mut delay = Duration::from_secs(1);
        loop {
            let fetching = self.inner.fetching.lock().await;
            match self.fetch().await {
                Ok(token) => return Ok(token),
                Err(error @ TokenError::Rejected { .. }) => return Err(error),
                Err(error) if started.elapsed() + delay > give_up_after => return Err(error),
                Err(error) => {
                    drop(fetching);
                    tracing::warn!(scope = %self.inner.scope, retry_in = ?delay, error = %error, "could not get the first token; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(16));
                }
            }
        }
    }

    /// Follows token changes (the PostgreSQL pool rotates its password on each).
    pub fn subscribe(&self) -> watch::Receiver<Option<Token>> {
        self.inner.current.subscribe()
    }

    pub fn status(&self) -> TokenStatus {
        let current = self.inner.current.borrow().clone();
        let book = self.inner.book.lock().expect("token bookkeeping lock");
        TokenStatus {
            scope: self.inner.scope.clone(),
            credential: self.inner.credential_name.clone(),
            valid_until: current.as_ref().map(|t| t.expires_on),
            next_refresh: current.as_ref().map(Token::refresh_at),
            last_error: book.last_error.as_ref().map(ToString::to_string),
            tokens_fetched: book.fetched,
        }
    }

    /// Keeps the token fresh until the returned handle is aborted or the source is dropped.
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let source = TokenSource { inner };
                let wait = source.until_next_attempt();
                drop(source);
                tokio::time::sleep(wait).await;
                let Some(inner) = weak.upgrade() else { return };
                let source = TokenSource { inner };
                let _fetching = source.inner.fetching.lock().await;
                // Someone may have fetched while we slept.
                if source.until_next_attempt() > Duration::ZERO {
                    continue;
                }
                if let Err(error) = source.fetch().await {
                    let still_valid = source.cached_usable().is_some();
                    tracing::warn!(scope = %source.inner.scope, still_valid, error = %error, "token refresh failed; will retry");
                }
            }
        })
    }

    fn cached_usable(&self) -> Option<Token> {
        let now = OffsetDateTime::now_utc();
        self.inner
            .current
            .borrow()
            .as_ref()
            .filter(|t| t.usable(now))
            .cloned()
    }

    fn valid_until(&self) -> Option<OffsetDateTime> {
        self.inner.current.borrow().as_ref().map(|t| t.expires_on)
    }

    fn backing_off(&self) -> Option<TokenError> {
        let valid_until = self.valid_until();
        let book = self.inner.book.lock().expect("token bookkeeping lock");
        let retry_at = book.retry_at(valid_until)?;
        (OffsetDateTime::now_utc() < retry_at)
            .then(|| book.last_error.clone())
            .flatten()
    }

    /// How long the refresher sleeps: until the refresh point, or until the backoff ends.
    fn until_next_attempt(&self) -> Duration {
        let now = OffsetDateTime::now_utc();
        let refresh_at = self.inner.current.borrow().as_ref().map(Token::refresh_at);
        let valid_until = self.valid_until();
        let book = self.inner.book.lock().expect("token bookkeeping lock");
        let retry_at = book.retry_at(valid_until);
        let due = match (refresh_at, retry_at) {
            (Some(refresh), Some(retry)) => refresh.max(retry),
            (Some(refresh), None) => refresh,
            (None, Some(retry)) => retry,
            (None, None) => now,
        };
        (due - now).try_into().unwrap_or(Duration::ZERO)
    }

    /// Calls the credential (callers hold `fetching`) and records the outcome. The span and
    /// metric carry the scope and the credential's kind, never the token or `IDENTITY_HEADER`.
    #[tracing::instrument(
        level = "debug",
        name = "identity.token",
        skip_all,
        fields(
            otel.name = %format_args!("token {}", self.inner.scope),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            scope = %self.inner.scope,
            credential = %self.inner.credential_name,
        )
    )]
    async fn fetch(&self) -> Result<Token, TokenError> {
        let scope = self.inner.scope.clone();
        let started = OffsetDateTime::now_utc();
        let outcome = tokio::time::timeout(
            FETCH_TIMEOUT,
            self.inner.credential.get_token(&[scope.as_str()], None),
        )
        .await;
        let result = match &outcome {
            Ok(Ok(access)) => Ok(Token {
                secret: Arc::new(SecretString::from(access.token.secret())),
                expires_on: access.expires_on,
                obtained_at: started,
            }),
            Ok(Err(error)) => Err(self.classify(error)),
            Err(_) => Err(TokenError::Failed {
                credential: self.inner.credential_name.clone(),
                scope: scope.clone(),
                message: format!(
                    "the identity endpoint did not answer within {} s",
                    FETCH_TIMEOUT.as_secs()
                ),
            }),
        };
        crate::telemetry::metrics::token_fetch(&scope, result.is_ok());
        if result.is_err() {
            tracing::Span::current().record("otel.status_code", "ERROR");
        }
        let mut book = self.inner.book.lock().expect("token bookkeeping lock");
        match &result {
            Ok(token) => {
                book.fetched += 1;
                book.last_error = None;
                book.last_failure = None;
                book.backoff = Duration::ZERO;
                book.retry_after = None;
                tracing::info!(scope = %scope, expires_on = %token.expires_on, refresh_at = %token.refresh_at(), "got a new token");
                self.inner.current.send_replace(Some(token.clone()));
            }
            Err(error) => {
                book.last_error = Some(error.clone());
                book.last_failure = Some(OffsetDateTime::now_utc());
                book.backoff = (book.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                book.retry_after = match &outcome {
                    Ok(Err(azure)) => retry_after(azure),
                    _ => None,
                };
            }
        }
        result
    }

    fn classify(&self, error: &azure_core::Error) -> TokenError {
        let message = crate::error_chain(error);
        let credential = self.inner.credential_name.clone();
        let scope = self.inner.scope.clone();
        match assess(error) {
            Assessment::Transient => TokenError::Failed {
                credential,
                scope,
                message,
            },
            Assessment::Rejected(explanation) => TokenError::Rejected {
                credential,
                scope,
                message: match explanation {
                    Some(explanation) => format!("{explanation} ({message})"),
                    None => message,
                },
            },
        }
    }
}

/// The `Retry-After` (in seconds, at most `MAX_BACKOFF`) of the identity endpoint's answer in
/// the error's chain, as App Service and IMDS send with 429.
fn retry_after(error: &azure_core::Error) -> Option<Duration> {
    use azure_core::error::ErrorKind;
    use azure_core::http::headers::HeaderName;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(azure) = e.downcast_ref::<azure_core::Error>()
            && let ErrorKind::HttpResponse {
                raw_response: Some(raw),
                ..
            } = azure.kind()
        {
            let seconds = raw
                .headers()
                .get_optional_str(&HeaderName::from_static("retry-after"))?
                .trim()
                .parse::<u64>()
                .ok()?;
            return Some(Duration::from_secs(seconds).min(MAX_BACKOFF));
        }
        current = e.source();
    }
    None
}

enum Assessment {
    /// Worth retrying: the network, a timeout, throttling, a server error.
    Transient,
    /// Retrying cannot help: a configuration problem (wrong identity, wrong header, no CLI...).
    Rejected(Option<&'static str>),
}

/// Looks through the error's chain for the identity endpoint's answer or an I/O failure. The
/// managed-identity protocol says: 400 = no such identity (do not retry); 404, 408, 410, 429
/// and 5xx = retry.
fn assess(error: &azure_core::Error) -> Assessment {
    use azure_core::error::ErrorKind;
    use azure_core::http::StatusCode;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut saw_io = false;
    while let Some(e) = current {
        if let Some(azure) = e.downcast_ref::<azure_core::Error>() {
            match azure.kind() {
                ErrorKind::HttpResponse { status, .. } => {
                    return match *status {
                        StatusCode::BadRequest => Assessment::Rejected(Some(
                            "the identity endpoint answered 400: this identity is not assigned to the app",
                        )),
                        StatusCode::Unauthorized | StatusCode::Forbidden => {
                            Assessment::Rejected(Some(
                                "the identity endpoint refused the request (401/403): check IDENTITY_HEADER and the identity's permissions",
                            ))
                        }
                        StatusCode::NotFound
                        | StatusCode::RequestTimeout
                        | StatusCode::Gone
                        | StatusCode::TooManyRequests => Assessment::Transient,
                        status if u16::from(status) >= 500 => Assessment::Transient,
                        _ => Assessment::Rejected(None),
                    };
                }
                ErrorKind::Io => saw_io = true,
                _ => {}
            }
        }
        if e.downcast_ref::<std::io::Error>().is_some() {
            saw_io = true;
        }
        current = e.source();
    }
    if saw_io {
        Assessment::Transient
    } else {
        Assessment::Rejected(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    use azure_core::credentials::{AccessToken, Secret as AzureSecret, TokenRequestOptions};

    /// A credential that counts calls and can be told to fail; stands in for the SDK here,
    /// the integration tests use the real one against a fake identity endpoint.
    #[derive(Debug)]
    struct Counting {
        calls: AtomicU32,
        lifetime: time::Duration,
        failing: std::sync::atomic::AtomicBool,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.delay).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Io,
                    "endpoint down",
                ));
            }
            Ok(AccessToken::new(
                AzureSecret::new(format!("token-{n}")),
                OffsetDateTime::now_utc() + self.lifetime,
            ))
        }
    }

    fn source(lifetime: time::Duration, delay: Duration) -> (TokenSource, Arc<Counting>) {
        let credential = Arc::new(Counting {
            calls: AtomicU32::new(0),
            lifetime,
            failing: Default::default(),
            delay,
        });
        (
            TokenSource::new(credential.clone(), "Counting", "scope/.default"),
            credential,
        )
    }

    #[tokio::test]
    async fn a_hundred_concurrent_callers_cause_one_fetch() {
        let (source, credential) = source(time::Duration::hours(1), Duration::from_millis(50));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                tokio::spawn({
                    let source = source.clone();
                    async move { source.token().await.unwrap().secret().to_owned() }
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), "token-1");
        }
        assert_eq!(credential.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_serving_the_valid_token_and_backs_off() {
        let (source, credential) = source(time::Duration::hours(1), Duration::ZERO);
        assert_eq!(source.token().await.unwrap().secret(), "token-1");
        credential.failing.store(true, Ordering::SeqCst);
        // Force a refresh attempt as the refresher would.
        {
            let _guard = source.inner.fetching.lock().await;
            assert!(source.fetch().await.is_err());
        }
        assert_eq!(
            source.token().await.unwrap().secret(),
            "token-1",
            "still valid, still served"
        );
        assert!(
            source
                .status()
                .last_error
                .unwrap()
                .contains("endpoint down")
        );
        assert!(
            source.until_next_attempt() >= MIN_BACKOFF - Duration::from_secs(1),
            "no retry before the backoff"
        );
    }

    #[tokio::test]
    async fn with_nothing_valid_failures_are_answered_from_the_backoff_without_calling_again() {
        let (source, credential) = source(time::Duration::hours(1), Duration::ZERO);
        credential.failing.store(true, Ordering::SeqCst);
        assert!(source.token().await.is_err());
        assert!(source.token().await.is_err());
        assert!(source.token().await.is_err());
        assert_eq!(credential.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failed_refresh_of_a_short_token_is_retried_well_before_it_expires() {
        let failed = OffsetDateTime::now_utc();
        let book = Bookkeeping {
            last_failure: Some(failed),
            backoff: MIN_BACKOFF,
            ..Default::default()
        };
        let retry_in = |left: Option<u64>| {
            let until = left.map(|secs| failed + Duration::from_secs(secs));
            book.retry_at(until).unwrap() - failed
        };
        // A 60 s token is refreshed with 12 s left: halfway to its last usable moment.
        assert_eq!(retry_in(Some(12)), time::Duration::milliseconds(3_500));
        assert_eq!(
            retry_in(Some(3)),
            time::Duration::seconds(2),
            "the shortest retry"
        );
        // A long-lived token keeps the usual backoff; so does having none.
        assert_eq!(retry_in(Some(3600)), time::Duration::seconds(10));
        assert_eq!(retry_in(None), time::Duration::seconds(10));
    }

    #[test]
    fn a_retry_after_from_the_endpoint_is_read_and_honoured_even_with_a_valid_token() {
        use azure_core::http::headers::{HeaderName, Headers};
        use azure_core::http::{RawResponse, StatusCode};
        let mut headers = Headers::new();
        headers.insert(HeaderName::from_static("retry-after"), "20");
        let raw = RawResponse::from_bytes(StatusCode::TooManyRequests, headers, "throttled");
        let error = azure_core::Error::with_message(
            azure_core::error::ErrorKind::HttpResponse {
                status: StatusCode::TooManyRequests,
                error_code: None,
                raw_response: Some(Box::new(raw)),
            },
            "throttled",
        );
        assert_eq!(retry_after(&error), Some(Duration::from_secs(20)));

        let failed = OffsetDateTime::now_utc();
        let book = Bookkeeping {
            last_failure: Some(failed),
            backoff: MIN_BACKOFF,
            retry_after: Some(Duration::from_secs(20)),
            ..Default::default()
        };
        // A minute of validity left would mean a retry in 10 s (the backoff); 20 s were asked.
        let retry = book
            .retry_at(Some(failed + Duration::from_secs(60)))
            .unwrap();
        assert_eq!(retry - failed, time::Duration::seconds(20));
        // Ten seconds left would mean 2.5 s; the endpoint asked for 20.
        let retry = book
            .retry_at(Some(failed + Duration::from_secs(10)))
            .unwrap();
        assert_eq!(retry - failed, time::Duration::seconds(20));
    }

    #[test]
    fn refresh_points_follow_the_token_lifetime() {
        let now = OffsetDateTime::now_utc();
        let token = |life: time::Duration| Token {
            secret: Arc::new(SecretString::from("t")),
            obtained_at: now,
            expires_on: now + life,
        };
        // 60 s token: refresh with 12 s left.
        assert_eq!(
            token(time::Duration::seconds(60)).refresh_at(),
            now + time::Duration::seconds(48)
        );
        // 1 h user token: 5 minutes before expiry.
        assert_eq!(
            token(time::Duration::hours(1)).refresh_at(),
            now + time::Duration::minutes(55)
        );
        // 24 h managed-identity token: at half-life.
        assert_eq!(
            token(time::Duration::hours(24)).refresh_at(),
            now + time::Duration::hours(12)
        );
        assert!(!format!("{:?}", token(time::Duration::hours(1))).contains("\"t\""));
    }
}
