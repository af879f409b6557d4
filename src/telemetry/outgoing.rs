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
use opentelemetry::trace::TraceContextExt;
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
        // Only a span OpenTelemetry records has a context to pass on (none when nothing exports).
        let context = span.context();
        if context.span().span_context().is_valid() {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use object_store::ObjectStoreExt;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::path::Path;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// A Blob call made inside a traced request carries that request's trace onward, on the
    /// wire, in W3C `traceparent` (an anonymous client against a local recorder).
    #[tokio::test]
    async fn blob_calls_carry_the_current_trace_in_traceparent() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let recorder = seen.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let recorder = recorder.clone();
            async move {
                let parent = headers.get("traceparent").and_then(|v| v.to_str().ok());
                recorder
                    .lock()
                    .unwrap()
                    .push(parent.unwrap_or("none").to_owned());
                axum::http::StatusCode::NOT_FOUND
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _default = tracing::subscriber::set_default(subscriber);
        let store = MicrosoftAzureBuilder::new()
            .with_endpoint(format!("http://{addr}/devstoreaccount1"))
            .with_account("devstoreaccount1")
            .with_skip_signature(true)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .with_container_name("photos")
            .with_http_connector(TracedConnector)
            .build()
            .unwrap();
        let request = tracing::info_span!("request");
        let trace_id = request
            .context()
            .span()
            .span_context()
            .trace_id()
            .to_string();
        let result = store
            .get(&Path::from("missing.jpg"))
            .instrument(request)
            .await;
        assert!(result.is_err(), "the recorder answers 404");
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty());
        for parent in seen {
            assert!(
                parent.contains(&trace_id),
                "{parent} is not of trace {trace_id}"
            );
        }
    }
}
