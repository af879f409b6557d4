//! The moderators' actions (`POST /moderate/…`), each with the form's CSRF token: hide,
//! restore, delete, remove a photo, dismiss reports, edit and merge restaurants. Each goes to
//! [`crate::moderation`], which writes the audit entry, and comes back with a 303 and a message.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::html;
use super::moderate::RestaurantPage;
use crate::domain::RestaurantId;
use crate::forms::RestaurantInput;
use crate::moderation::{Moderation, ModerationError, Outcome};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::flash::{self, Flash};
use crate::web::forms::parse_urlencoded;
use crate::web::moderator::Moderator;
use crate::web::security::{CSRF_FIELD, CsrfToken, csrf_failure};

/// The form's fields, or the answer to a form that cannot be read or lacks its token.
fn read_form(
    csrf: &CsrfToken,
    body: Result<Bytes, BytesRejection>,
) -> Result<HashMap<String, String>, Box<Response>> {
    let body = body.map_err(|r| Box::new(AppError::from_body_rejection(r).into_response()))?;
    let fields = parse_urlencoded(&body).map_err(|e| {
        Box::new(AppError::BadRequest(format!("The form could not be read: {e}")).into_response())
    })?;
    if !fields.get(CSRF_FIELD).is_some_and(|t| csrf.matches(t)) {
        return Err(Box::new(csrf_failure()));
    }
    Ok(fields)
}

impl From<ModerationError> for AppError {
    fn from(error: ModerationError) -> Self {
        match error {
            ModerationError::NotFound(_) => AppError::NotFound,
            ModerationError::Refused(message) => AppError::BadRequest(message.to_owned()),
            ModerationError::Invalid(_) => {
                AppError::BadRequest("The restaurant's new values are not valid.".into())
            }
            ModerationError::Database(error) => AppError::Database(error),
        }
    }
}

/// `POST /moderate/reviews/<id>/<action>`: hide, restore, delete, remove-photo, dismiss.
pub async fn review_action(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Moderator(actor): Moderator,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let review: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    if let Err(answer) = read_form(&csrf, body) {
        return Ok(*answer);
    }
    let moderation = Moderation::new(app.db.clone(), app.photos.clone());
    let (outcome, done) = match action.as_str() {
        "hide" => (moderation.hide(&actor, review).await?, Flash::ReviewHidden),
        "restore" => (
            moderation.restore(&actor, review).await?,
            Flash::ReviewRestored,
        ),
        "delete" => (
            moderation.delete_review(&actor, review).await?,
            Flash::ReviewDeleted,
        ),
        "remove-photo" => (
            moderation.remove_photo(&actor, review).await?,
            Flash::PhotoRemoved,
        ),
        "dismiss" => (
            moderation.dismiss_reports(&actor, review).await?,
            Flash::ReportsDismissed,
        ),
        _ => return Err(AppError::NotFound),
    };
    tracing::info!(review, action, ?outcome, "moderation action");
    Ok(flash::redirect(
        &headers,
        "/moderate/",
        shown(outcome, done),
    ))
}

/// What the page says after an action: `done`, or that there was nothing to do.
fn shown(outcome: Outcome, done: Flash) -> Flash {
    if outcome == Outcome::Done {
        done
    } else {
        Flash::NothingToDo
    }
}

/// `POST /moderate/restaurants/<id>/edit`: the add form's fields and validation.
pub async fn edit_restaurant(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Moderator(actor): Moderator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    let mut fields = match read_form(&csrf, body) {
        Ok(fields) => fields,
        Err(answer) => return Ok(*answer),
    };
    let input = RestaurantInput::from_fields(&mut fields);
    let moderation = Moderation::new(app.db.clone(), app.photos.clone());
    match moderation.edit_restaurant(&actor, id, &input).await {
        Ok(outcome) => Ok(flash::redirect(
            &headers,
            &format!("/moderate/restaurants/{id}"),
            shown(outcome, Flash::RestaurantSaved),
        )),
        Err(ModerationError::Invalid(errors)) => {
            let restaurant = app.db.restaurant(id).await?.ok_or(AppError::NotFound)?;
            let mut page = RestaurantPage::new(&csrf, restaurant, actor.0);
            page.input = input;
            page.errors = errors;
            html(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /moderate/restaurants/<id>/merge` with `into`: the restaurant it duplicates.
pub async fn merge_restaurants(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Moderator(actor): Moderator,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let from = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    let fields = match read_form(&csrf, body) {
        Ok(fields) => fields,
        Err(answer) => return Ok(*answer),
    };
    let typed = fields
        .get("into")
        .map(|v| v.trim().trim_matches('/').to_owned())
        .unwrap_or_default();
    let refuse = |message: String| refused_merge(&app, &csrf, from, &actor, &typed, message);
    let Some(into) = RestaurantId::parse(&typed) else {
        return refuse(
            "Give the number of the restaurant to merge into (the number in its address, /12/)."
                .into(),
        )
        .await;
    };
    let moderation = Moderation::new(app.db.clone(), app.photos.clone());
    match moderation.merge_restaurants(&actor, from, into).await {
        Ok(_) => Ok(flash::redirect(
            &headers,
            &format!("/{into}/"),
            Flash::RestaurantsMerged,
        )),
        Err(ModerationError::Refused(message)) => refuse(message.to_owned()).await,
        Err(ModerationError::NotFound(_)) if app.db.restaurant(from).await?.is_some() => {
            refuse(format!("There is no restaurant {into} to merge into.")).await
        }
        Err(error) => Err(error.into()),
    }
}

/// The restaurant's moderation page again, with the merge form as typed and what was wrong.
async fn refused_merge(
    app: &AppState,
    csrf: &CsrfToken,
    from: RestaurantId,
    actor: &crate::moderation::Actor,
    typed: &str,
    message: String,
) -> Result<Response, AppError> {
    let restaurant = app.db.restaurant(from).await?.ok_or(AppError::NotFound)?;
    let mut page = RestaurantPage::new(csrf, restaurant, actor.0.clone());
    page.merge_error = Some(message);
    page.merge_into = typed.to_owned();
    html(StatusCode::UNPROCESSABLE_ENTITY, &page)
}
