//! `/report/<review>`: a visitor reports a review (spam, offensive, not about this restaurant,
//! other, with an optional note). The form sits under each review in a `<details>` (no script
//! needed); `GET` shows it alone, and a refused report comes back on that page as typed.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::html;
use crate::moderation::{MAX_NOTE_CHARS, Moderation, ReportReason, reporter_key};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::flash::{self, Flash};
use crate::web::forms::parse_urlencoded;
use crate::web::security::{CSRF_FIELD, CsrfToken, csrf_failure};

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    csrf_token: &'a str,
    review_id: i64,
    reasons: [ReportReason; 4],
    chosen: String,
    note: String,
    max_note: usize,
    problem: Option<&'static str>,
}

fn review_id(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(AppError::NotFound)
}

pub async fn report_form(
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let page = ReportPage {
        csrf_token: csrf.as_str(),
        review_id: review_id(&id)?,
        reasons: ReportReason::ALL,
        chosen: String::new(),
        note: String::new(),
        max_note: MAX_NOTE_CHARS,
        problem: None,
    };
    html(StatusCode::OK, &page)
}

pub async fn report(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let review = review_id(&id)?;
    let body = body.map_err(AppError::from_body_rejection)?;
    let fields = parse_urlencoded(&body)
        .map_err(|e| AppError::BadRequest(format!("The report could not be read: {e}")))?;
    if !fields.get(CSRF_FIELD).is_some_and(|t| csrf.matches(t)) {
        return Ok(csrf_failure());
    }
    let chosen = fields.get("reason").cloned().unwrap_or_default();
    let note = fields
        .get("note")
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    let problem = match ReportReason::parse(&chosen) {
        None => Some("Choose why you are reporting this review."),
        Some(_) if note.chars().count() > MAX_NOTE_CHARS => {
            Some("The note is too long: at most 500 characters.")
        }
        Some(_) => None,
    };
    let Some(reason) = ReportReason::parse(&chosen).filter(|_| problem.is_none()) else {
        let page = ReportPage {
            csrf_token: csrf.as_str(),
            review_id: review,
            reasons: ReportReason::ALL,
            chosen,
            note,
            max_note: MAX_NOTE_CHARS,
            problem,
        };
        return html(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let moderation = Moderation::new(app.db.clone(), app.photos.clone());
    let restaurant = moderation
        .report(review, reason, &note, &reporter_key(csrf.as_str()))
        .await?;
    tracing::info!(review, reason = reason.code(), "review reported");
    Ok(flash::redirect(
        &headers,
        &format!("/{restaurant}/"),
        Flash::ReviewReported,
    ))
}
