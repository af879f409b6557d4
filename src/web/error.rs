//! The web layer's one error type and its single mapping to HTTP.
//!
//! 4xx answers say what was wrong; 5xx answers are logged once here, with their cause chain, and
//! shown to the user as a friendly page without internals.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use axum::extract::rejection::BytesRejection;

use crate::db::DbError;
use crate::error_chain;
use crate::photos::StoreError;
use crate::reviews::RefusalKind;

/// The status of a refused review: the one place a refusal becomes HTTP.
pub fn refusal_status(kind: RefusalKind) -> StatusCode {
    match kind {
        RefusalKind::Malformed => StatusCode::BAD_REQUEST,
        RefusalKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        RefusalKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RefusalKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        RefusalKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("database error")]
    Database(#[from] DbError),
    #[error("photo storage error")]
    PhotoStore(#[from] StoreError),
    #[error("template rendering failed")]
    Template(#[from] askama::Error),
}

impl AppError {
    /// A URL-encoded body that could not be read: too large, or broken.
    pub fn from_body_rejection(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(
                "The restaurant form is far larger than its fields allow.".into(),
            ),
            _ => AppError::BadRequest(format!(
                "The form could not be read: {}",
                rejection.body_text()
            )),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Database(DbError::RestaurantNotFound(_)) => StatusCode::NOT_FOUND,
            AppError::Database(DbError::Unavailable(_) | DbError::Token(_))
            | AppError::PhotoStore(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Database(_) | AppError::PhotoStore(_) | AppError::Template(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// What the user reads: specific for their mistakes, generic for ours.
    fn user_message(&self) -> (&'static str, String) {
        match self {
            AppError::NotFound | AppError::Database(DbError::RestaurantNotFound(_)) => (
                "Page not found",
                "There is nothing here. The restaurant may not exist.".to_owned(),
            ),
            AppError::BadRequest(message) => ("Bad request", message.clone()),
            AppError::Forbidden(message) => ("Request refused", message.clone()),
            AppError::PayloadTooLarge(message) => ("Upload too large", message.clone()),
            AppError::UnsupportedMediaType(message) => ("Unsupported request", message.clone()),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => (
                "Temporarily unavailable",
                "The site cannot reach its storage right now. Nothing was saved; please try again in a minute."
                    .to_owned(),
            ),
            _ => (
                "Something went wrong",
                "Sorry, something went wrong on our side. Nothing was saved; please try again."
                    .to_owned(),
            ),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
}

/// `Retry-After: <seconds>` on a response (429 and 503 say when to come back).
pub fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, seconds.into());
    response
}

/// A page for a status code that carries no error value (e.g. the 404 fallback).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage {
        title,
        message,
        status: status.as_u16(),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        // The error template is static; if even it fails, plain text still tells the truth.
        Err(_) => (status, format!("{title}: {message}")).into_response(),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // exception.*: OpenTelemetry's names, so telemetry shows it as an exception.
            tracing::error!(status = status.as_u16(), exception.type = "AppError", exception.message = %error_chain(&self), "request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %self, "request refused");
        }
        let (title, message) = self.user_message();
        error_page(status, title, &message)
    }
}
