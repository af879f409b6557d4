//! `GET /health`: whether the database answers, and each token source's state.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::identity::TokenSource;
use crate::web::AppState;

/// 200 when the database answers, 503 otherwise, with each token source's state (valid until,
/// last error; never the token); never cached.
pub async fn health(State(app): State<AppState>) -> Response {
    let probe = tokio::time::timeout(Duration::from_secs(5), app.db.ping()).await;
    let (status, database) = match probe {
        Ok(Ok(())) => (StatusCode::OK, "ok"),
        Ok(Err(error)) => {
            tracing::warn!(error = %crate::error_chain(&error), "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer within 5 s");
            (StatusCode::SERVICE_UNAVAILABLE, "timeout")
        }
    };
    let tokens: Vec<_> = app.token_sources.iter().map(TokenSource::status).collect();
    let body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
        "database": database,
        "tokens": tokens,
        // What telemetry export dropped, if it exports at all.
        "telemetry": crate::telemetry::installed().map(|t| t.status()),
    });
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}
