//! `POST /review/<id>`: reads the review form and hands it to the review flow
//! ([`crate::reviews`]); a refused review shows the restaurant's page again with the form kept.

use axum::Extension;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use super::restaurants::render_details;
use crate::domain::RestaurantId;
use crate::web::AppState;
use crate::web::error::{AppError, refusal_status};
use crate::web::forms::{ReadFailure, read_review};
use crate::web::security::{CsrfToken, csrf_failure};

pub async fn add_review(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    // An unknown restaurant is a 404 before a byte of the upload is read.
    if app.db.restaurant(id).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let max_photo_bytes = app.reviews.limits.max_bytes;
    let outcome = match read_review(&headers, multipart, &csrf, max_photo_bytes).await {
        Ok(submission) => app.reviews.post(id, submission).await,
        Err(ReadFailure::Csrf) => return Ok(csrf_failure()),
        Err(ReadFailure::Refused(refusal)) => Err(refusal),
    };
    match outcome {
        Ok(review_id) => Ok(Redirect::to(&format!("/{id}/#review-{review_id}")).into_response()),
        Err(refusal) => {
            let status = refusal_status(refusal.kind);
            render_details(&app, id, 1, &csrf, Some(refusal.form), status).await
        }
    }
}
