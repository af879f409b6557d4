//! The server span of each request, in OpenTelemetry's terms: named by its route template
//! (`GET /{id}/`, never `/17/`), continuing the caller's W3C `traceparent`, with its status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::Extractor;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::gate::UNSAMPLED_TARGET;
use super::metrics;
use super::sampling::{RequestDecision, Sampling};

/// The route of requests no route matched (a 404 or a probe): one name, whatever the path.
const UNMATCHED: &str = "(unmatched)";

/// The request span, under `target` (see [`request_span`]).
macro_rules! request_span_under {
    ($target:expr, $request:expr, $route:expr, $request_id:expr) => {
        tracing::info_span!(
            target: $target,
            "request",
            method = %$request.method(),
            route = $route,
            request_id = $request_id,
            otel.name = %format_args!("{} {}", $request.method(), $route),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %$request.method(),
            http.route = $route,
            http.response.status_code = Empty,
        )
    };
}

/// The span tower-http's `TraceLayer` opens for each request. It holds no path or query (the
/// route is recorded when known) and nothing the visitor typed.
pub fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The router runs this after routing, so the route template is known here (and must be:
    // an OpenTelemetry span's name is fixed once it starts).
    let route = route(request);
    let Some(telemetry) = super::installed() else {
        return request_span_under!(module_path!(), request, route, request_id);
    };
    let remote = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(request.headers()))
    });
    let parent = match telemetry.sampling() {
        // The OpenTelemetry SDK's samplers decide when the span starts.
        None => remote,
        Some(sampling) => match sampling.decide_request(&remote) {
            RequestDecision::Sampled { percentage } => Sampling::parent_for(remote, percentage),
            RequestDecision::Dropped => {
                return request_span_under!(UNSAMPLED_TARGET, request, route, request_id);
            }
        },
    };
    let span = request_span_under!(module_path!(), request, route, request_id);
    let _ = span.set_parent(parent);
    span
}

/// Inside the request span: records the status
/// (5xx marks it failed) and the request metrics.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route(&request).to_owned();
    let span = tracing::Span::current();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    metrics::request(method.as_str(), &route, status, started.elapsed());
    response
}

fn route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
}

struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
