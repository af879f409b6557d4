//! The handlers, one module per resource. Each reads its request, calls the flow or the
//! database, and renders the outcome; refusals and errors map to HTTP in `web::error`.

pub mod health;
pub mod moderate;
mod moderate_actions;
pub mod photos;
pub mod reports;
pub mod restaurants;
pub mod reviews;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::error::AppError;

pub(crate) fn html(status: StatusCode, template: &impl Template) -> Result<Response, AppError> {
    Ok((status, Html(template.render()?)).into_response())
}
