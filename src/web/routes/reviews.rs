//! `POST /review/<id>`: reads the review form and hands it to the review flow
//! ([`crate::reviews`]); a refused review shows the restaurant's page again with the form kept,
//! or, when the database cannot show that page, the form alone, still kept.

use askama::Template;
use axum::Extension;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::html;
use super::restaurants::{ReviewFormView, render_details};
use crate::db::{DbError, PageAt};
use crate::domain::{RestaurantId, ReviewText, UserName};
use crate::forms::field;
use crate::reviews::Refusal;
use crate::web::AppState;
use crate::web::error::{AppError, refusal_status, with_retry_after};
use crate::web::flash::{self, Flash};
use crate::web::forms::{ReadFailure, read_review};
use crate::web::rate_limit::Poster;
use crate::web::security::{CSRF_FIELD, CsrfToken, csrf_failure};

/// The review form alone, for when the restaurant's page cannot be read.
#[derive(Template)]
#[template(path = "review_unavailable.html")]
struct ReviewUnavailablePage<'a> {
    csrf_token: &'a str,
    restaurant_id: i64,
    form: ReviewFormView,
}

pub async fn add_review(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    Poster(client): Poster,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    // An unknown restaurant is a 404 before a byte of the upload is read. When the database is
    // down the form is still read, so that what was typed comes back with the 503.
    let database_up = match app.db.restaurant(id).await {
        Ok(Some(_)) => true,
        Ok(None) => return Err(AppError::NotFound),
        Err(DbError::Unavailable(_) | DbError::Token(_)) => false,
        Err(error) => return Err(error.into()),
    };
    let max_photo_bytes = app.reviews.limits.max_bytes;
    let mut too_many = None;
    let outcome = match read_review(&headers, multipart, Some(&csrf), max_photo_bytes).await {
        Ok(submission) if !database_up => Err(Refusal::not_saved_now(
            submission.input,
            submission.photo.is_some(),
        )),
        // Counted before the photo is processed: a flood costs no image work.
        Ok(submission) => match app.posts.check(client) {
            Ok(()) => app.reviews.post(id, submission).await,
            Err(refused) => {
                too_many = Some(refused);
                let photo_was_sent = submission.photo.is_some();
                Err(Refusal::too_many(
                    submission.input,
                    refused.message(),
                    photo_was_sent,
                ))
            }
        },
        Err(ReadFailure::Csrf) => return Ok(csrf_failure()),
        Err(ReadFailure::Refused(refusal)) => Err(refusal),
    };
    match outcome {
        // To the restaurant's top, where the message and the new average show.
        Ok(_) => Ok(flash::redirect(
            &headers,
            &format!("/{id}/"),
            Flash::ReviewAdded,
        )),
        Err(refusal) => {
            let page = render_refused(&app, id, &csrf, refusal).await?;
            Ok(match too_many {
                Some(refused) => with_retry_after(page, refused.retry_after_secs()),
                None => page,
            })
        }
    }
}

/// `GET /review/<id>`: the address a refused review leaves in the address bar (the page came
/// back from the POST). Reloading or bookmarking it goes to the restaurant's page (303).
pub async fn review_address(Path(id): Path<String>) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    Ok(Redirect::to(&format!("/{id}/")).into_response())
}

/// The restaurant's page with the refused form in it; if the database cannot show the page,
/// the form alone (503), so what was typed is never lost to an outage.
async fn render_refused(
    app: &AppState,
    id: RestaurantId,
    csrf: &CsrfToken,
    refusal: Refusal,
) -> Result<Response, AppError> {
    let status = refusal_status(refusal.kind);
    let details = render_details(
        app,
        id,
        PageAt::First,
        1,
        csrf,
        Some(refusal.form.clone()),
        status,
    );
    match details.await {
        Err(AppError::Database(DbError::Unavailable(_) | DbError::Token(_))) => {}
        rendered => return rendered,
    }
    let mut form = refusal.form;
    if form.errors.get(field::FORM).is_none() {
        form.errors.insert(
            field::FORM,
            "The restaurant's page cannot be shown just now.",
        );
    }
    let page = ReviewUnavailablePage {
        csrf_token: csrf.as_str(),
        restaurant_id: id.get(),
        form: ReviewFormView::new(app, Some(form)),
    };
    html(StatusCode::SERVICE_UNAVAILABLE, &page)
}
