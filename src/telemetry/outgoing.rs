//! Blob Storage calls as dependency spans, each carrying the request's `traceparent`.
//!
//! object_store sends through an `HttpService`; this one wraps its default reqwest client,
//! opens a client span per call (method and URL without the query string: a SAS signature or
//! other parameters never leave the process), and injects the W3C trace context.

use async_trait::async_trait;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use opentelemetry::propagation::Injector;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Builds object_store's usual client and wraps it (see the module's comment).
#[derive(Debug, Default)]
pub struct TracedConnector;

impl HttpConnector for TracedConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Traced(inner)))
    }
}

#[derive(Debug)]
struct Traced(HttpClient);

#[async_trait]
impl HttpService for Traced {
    async fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let uri = request.uri();
        let url = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default(),
            uri.path()
        );
        let span = tracing::debug_span!(
            "blob",
            otel.name = %format_args!("{} {}", request.method(), uri.path()),
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = %request.method(),
            url.full = %url,
            server.address = uri.host().unwrap_or_default(),
            http.response.status_code = Empty,
        );
        if super::installed().is_some() {
            let context = span.context();
            opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.inject_context(&context, &mut Headers(request.headers_mut()));
            });
        }
        let result = self.0.execute(request).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                span.record("http.response.status_code", response.status().as_u16());
                if response.status().is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        result
    }
}

struct Headers<'a>(&'a mut axum::http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(key),
            axum::http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}
