//! The HTTP client both exporters send through: the app's reqwest and TLS (ring), plus the
//! managed identity's bearer token for Azure Monitor.
//!
//! `opentelemetry-http`'s own reqwest client would add a second reqwest (and its TLS stack),
//! and knows nothing of tokens; the Application Insights exporter takes any client, which is
//! how the bearer token gets in without a hand-written ingestion protocol.

use std::time::Duration;

use axum::http::{self, HeaderValue, Request, Response};
use bytes::Bytes;
use opentelemetry_http::HttpError;
use tokio::sync::watch;

use crate::identity::TokenSource;

/// One request to ingestion or a collector gives up after this long (the exporters retry).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an ingestion answer read (it is a small JSON summary).
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Clone)]
pub struct ExportClient {
    http: reqwest::Client,
    /// The batch processors of the SDK export from their own threads with a plain executor:
    /// the request runs on the app's runtime, and only its result crosses over.
    runtime: tokio::runtime::Handle,
    /// `Some` for Azure Monitor: filled by the application once its credential is chosen.
    tokens: Option<watch::Receiver<Option<TokenSource>>>,
}

impl std::fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportClient")
            .field("bearer", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl ExportClient {
    pub fn new(
        ca_certificate_pem: Option<&[u8]>,
        tokens: Option<watch::Receiver<Option<TokenSource>>>,
    ) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(5));
        if let Some(pem) = ca_certificate_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
        }
        Ok(Self {
            http: builder.build()?,
            runtime: tokio::runtime::Handle::current(),
            tokens,
        })
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut request = request;
        if let Some(tokens) = &self.tokens {
            let source = wait_for_source(tokens.clone()).await?;
            let token = source.token().await?;
            let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.secret()))?;
            bearer.set_sensitive(true);
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, bearer);
        }
        let request = reqwest::Request::try_from(request)?;
        let response = self.http.execute(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let mut answer = Response::builder().status(status);
        if let Some(map) = answer.headers_mut() {
            *map = headers;
        }
        Ok(answer.body(Bytes::from(body))?)
    }
}

/// The token source arrives once the application has chosen its credential (right after
/// startup); telemetry from before then waits for it.
async fn wait_for_source(
    mut tokens: watch::Receiver<Option<TokenSource>>,
) -> Result<TokenSource, HttpError> {
    let source = tokens
        .wait_for(Option::is_some)
        .await
        .map_err(|_| "the application stopped before it signed in to Azure Monitor")?;
    Ok(source.clone().expect("waited for Some"))
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let this = self.clone();
        self.runtime
            .spawn(async move { this.send(request).await })
            .await
            .map_err(|e| Box::new(e) as HttpError)?
    }
}
