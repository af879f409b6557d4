//! RFC 9457 problem details (`application/problem+json`): the API's one error shape, with the
//! field errors by field name. Built from the same `AppError`s and review `Refusal`s as the
//! pages, so a status means the same thing on both.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::error_chain;
use crate::forms::FieldErrors;
use crate::reviews::{Refusal, RefusalKind};
use crate::web::error::{AppError, refusal_status};

pub const PROBLEM_JSON: &str = "application/problem+json";
/// How long a client should wait after a 503 before trying again.
pub const UNAVAILABLE_RETRY_SECS: u32 = 10;

/// A problem: what went wrong, and for a refused body which fields and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem; it resolves to its entry in `/api/docs`.
    #[serde(rename = "type", serialize_with = "problem_type")]
    #[schema(rename = "type", value_type = String, example = "/api/docs#problem-invalid")]
    pub slug: &'static str,
    /// Short and the same for every problem of this kind.
    pub title: &'static str,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What happened this time, for a person.
    pub detail: String,
    /// Messages for the fields that were refused, by field name (`restaurant_name`, `rating`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
    /// For a likely duplicate (409): links to the restaurants already listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after: Option<u32>,
}

/// The `type` URI: the problem's entry on the reference page.
fn problem_type<S: serde::Serializer>(
    slug: &&'static str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("/api/docs#problem-{slug}"))
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            slug,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: BTreeMap::new(),
            candidates: Vec::new(),
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(UNAVAILABLE_RETRY_SECS),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// A refused field of the request (a query parameter or a body field) named `field`.
    pub fn field(status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut problem = match status {
            StatusCode::BAD_REQUEST => Self::bad_request(message.clone()),
            _ => Self::invalid("A field is not valid."),
        };
        problem.errors.insert(field.to_owned(), message);
        problem
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid fields",
            detail,
        )
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "There is nothing here. The restaurant may not exist.",
        )
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Request too large",
            detail,
        )
    }

    pub fn too_many(retry_after_secs: u64, detail: impl Into<String>) -> Self {
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-posts",
            "Too many posts",
            detail,
        );
        problem.retry_after = Some(u32::try_from(retry_after_secs).unwrap_or(u32::MAX));
        problem
    }

    pub fn with_errors(mut self, errors: &FieldErrors) -> Self {
        self.errors = errors
            .iter()
            .map(|(field, message)| (field.to_owned(), message.to_owned()))
            .collect();
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        let status = error.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %error_chain(&error), "API request failed");
        } else {
            tracing::info!(status = status.as_u16(), error = %error, "API request refused");
        }
        match error {
            AppError::NotFound | AppError::Database(DbError::RestaurantNotFound(_)) => {
                Self::not_found()
            }
            AppError::BadRequest(message) => Self::bad_request(message),
            AppError::Forbidden(message) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", message)
            }
            AppError::PayloadTooLarge(message) => Self::too_large(message),
            AppError::UnsupportedMediaType(message) => Self::unsupported_media_type(message),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Self::new(
                status,
                "unavailable",
                "Temporarily unavailable",
                "The service cannot reach its storage right now. Nothing was saved; try again shortly.",
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side. Nothing was saved.",
            ),
        }
    }
}

impl From<DbError> for Problem {
    fn from(error: DbError) -> Self {
        AppError::from(error).into()
    }
}

/// A refused review, as the pages refuse it: the same kinds and statuses, the same messages.
impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        let status = refusal_status(refusal.kind);
        let detail = refusal
            .form
            .message
            .clone()
            .unwrap_or_else(|| "Review not added.".to_owned());
        let problem = match refusal.kind {
            RefusalKind::Malformed => Self::bad_request(detail),
            RefusalKind::Invalid => Self::invalid(detail),
            RefusalKind::TooLarge => Self::too_large(detail),
            RefusalKind::Unavailable => {
                Self::new(status, "unavailable", "Temporarily unavailable", detail)
            }
            RefusalKind::TooMany => Self::new(status, "too-many-posts", "Too many posts", detail),
        };
        problem.with_errors(&refusal.form.errors)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
