//! A stand-in for an OpenTelemetry Collector (or Jaeger, or the Aspire dashboard) on OTLP
//! over HTTP with protobuf: decodes what arrives at `/v1/traces` with the specification's own
//! messages and keeps the spans.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[derive(Default)]
struct Shared {
    spans: Mutex<Vec<Span>>,
    log_bodies: Mutex<Vec<String>>,
    content_types: Mutex<Vec<String>>,
}

pub struct OtlpCollector {
    pub endpoint: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpCollector {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/logs", post(logs))
            .route("/v1/metrics", post(|| async { StatusCode::OK }))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            endpoint: format!("http://{addr}"),
            shared,
            server,
        }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.shared.spans.lock().unwrap().clone()
    }

    pub fn content_types(&self) -> Vec<String> {
        self.shared.content_types.lock().unwrap().clone()
    }

    /// Waits (up to 20 s) until a span satisfies `found`.
    pub async fn wait_for(&self, what: &str, found: impl Fn(&Span) -> bool) -> Span {
        for _ in 0..200 {
            if let Some(span) = self.spans().into_iter().find(|s| found(s)) {
                return span;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let names: Vec<String> = self.spans().iter().map(|s| s.name.clone()).collect();
        panic!("no span for {what} arrived; got {names:?}");
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn traces(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Some(content_type) = headers.get("content-type").and_then(|v| v.to_str().ok()) {
        shared
            .content_types
            .lock()
            .unwrap()
            .push(content_type.to_owned());
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans);
    shared.spans.lock().unwrap().extend(spans);
    StatusCode::OK
}

async fn logs(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportLogsServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    shared
        .log_bodies
        .lock()
        .unwrap()
        .push(format!("{request:?}"));
    StatusCode::OK
}

/// A span attribute's value as text (strings and integers).
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|value| match value {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
