//! `GET /photos/<key>`: photos served by the app (local directory, `proxy` mode).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::photos::PhotoKey;
use crate::photos::store::CACHE_CONTROL;
use crate::web::AppState;
use crate::web::error::AppError;

/// Names are server-generated and never change, so photos may be cached for a year.
pub async fn photo(
    State(app): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    let key = PhotoKey::parse(&key).ok_or(AppError::NotFound)?;
    let stored = app.photos.get(&key).await?.ok_or(AppError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, stored.content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        stored.bytes,
    )
        .into_response())
}
