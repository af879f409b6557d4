//! `/moderate/`: the moderators' pages (the queue of reported reviews, hidden and recent
//! reviews, recent restaurants, a restaurant's edit and merge forms, the audit log) and the
//! local sign-in. Every answer here is `Cache-Control: no-store` and `noindex`; the actions
//! are in [`super::moderate_actions`].

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use time::OffsetDateTime;
use tower_http::set_header::SetResponseHeaderLayer;

use super::html;
use super::moderate_actions;
use crate::db::Restaurant;
use crate::domain::{Description, RestaurantId, RestaurantName, StreetAddress};
use crate::forms::{FieldErrors, RestaurantInput, field};
use crate::moderation::{LogEntry, Moderation, QueuedReview, ReviewRow, sign_in};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::flash::{self, Flash};
use crate::web::forms::parse_urlencoded;
use crate::web::moderator::{Moderator, SESSION_COOKIE, session_token};
use crate::web::security::{CSRF_FIELD, CsrfToken, csrf_failure};
use crate::web::view::{RestaurantView, date_label};

/// The moderation routes, with their headers.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/moderate",
            get(|| async { Redirect::permanent("/moderate/") }),
        )
        .route("/moderate/", get(dashboard))
        .route("/moderate/log", get(log))
        .route(
            sign_in::SIGN_IN_PATH,
            get(sign_in_page).post(sign_in_with_link),
        )
        .route("/moderate/sign-out", post(sign_out))
        .route("/moderate/restaurants/{id}", get(restaurant_page))
        .route(
            "/moderate/restaurants/{id}/edit",
            post(moderate_actions::edit_restaurant),
        )
        .route(
            "/moderate/restaurants/{id}/merge",
            post(moderate_actions::merge_restaurants),
        )
        .route(
            "/moderate/reviews/{id}/{action}",
            post(moderate_actions::review_action),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex, nofollow"),
        ))
}

/// A review as the moderation pages show it.
pub(super) struct ReviewItem {
    pub id: i64,
    pub restaurant_id: i64,
    pub restaurant_name: String,
    pub user_name: String,
    pub rating: i16,
    pub review_text: String,
    pub has_photo: bool,
    pub hidden: bool,
    pub date_label: String,
    /// Open reports: (reason, note).
    pub reports: Vec<(String, String)>,
}

impl From<ReviewRow> for ReviewItem {
    fn from(row: ReviewRow) -> Self {
        Self {
            id: row.id,
            restaurant_id: row.restaurant_id,
            restaurant_name: row.restaurant_name,
            user_name: row.user_name,
            rating: row.rating,
            review_text: row.review_text,
            has_photo: row.image_name.is_some(),
            hidden: row.hidden,
            date_label: date_label(row.review_date),
            reports: Vec::new(),
        }
    }
}

impl From<QueuedReview> for ReviewItem {
    fn from(queued: QueuedReview) -> Self {
        let mut item = Self::from(queued.review);
        item.reports = queued.reports;
        item
    }
}

#[derive(Template)]
#[template(path = "moderate.html")]
struct DashboardPage<'a> {
    csrf_token: &'a str,
    flash: Option<&'static str>,
    queue: Vec<ReviewItem>,
    hidden: Vec<ReviewItem>,
    recent: Vec<ReviewItem>,
    restaurants: Vec<RestaurantView>,
    moderator: String,
}

fn moderation(app: &AppState) -> Moderation {
    Moderation::new(app.db.clone(), app.photos.clone())
}

async fn dashboard(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Moderator(actor): Moderator,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let moderation = moderation(&app);
    let page = DashboardPage {
        csrf_token: csrf.as_str(),
        flash: Flash::from_request(&headers).map(Flash::message),
        queue: moderation
            .queue()
            .await?
            .into_iter()
            .map(ReviewItem::from)
            .collect(),
        hidden: moderation
            .recent_reviews(true)
            .await?
            .into_iter()
            .map(ReviewItem::from)
            .collect(),
        recent: moderation
            .recent_reviews(false)
            .await?
            .into_iter()
            .map(ReviewItem::from)
            .collect(),
        restaurants: moderation
            .recent_restaurants()
            .await?
            .into_iter()
            .map(RestaurantView::from)
            .collect(),
        moderator: actor.0,
    };
    shown_once(html(StatusCode::OK, &page)?, &headers, "/moderate/")
}

/// Clears a flash cookie the page showed.
fn shown_once(response: Response, headers: &HeaderMap, path: &str) -> Result<Response, AppError> {
    Ok(match Flash::from_request(headers) {
        Some(_) => flash::shown(response, path),
        None => response,
    })
}

/// An audit entry as the log page shows it.
struct LogItem {
    at_iso: String,
    at_label: String,
    entry: LogEntry,
}

#[derive(Template)]
#[template(path = "moderate_log.html")]
struct LogPage {
    entries: Vec<LogItem>,
    older_href: Option<String>,
    moderator: String,
    csrf_token: String,
}

const LOG_PAGE: i64 = 50;

async fn log(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Moderator(actor): Moderator,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let before = query
        .and_then(|q| parse_urlencoded(q.as_bytes()).ok())
        .and_then(|fields| fields.get("before").and_then(|b| b.parse::<i64>().ok()));
    let entries = moderation(&app).log(before, LOG_PAGE).await?;
    let older_href = (entries.len() as i64 == LOG_PAGE)
        .then(|| {
            entries
                .last()
                .map(|e| format!("/moderate/log?before={}", e.id))
        })
        .flatten();
    let page = LogPage {
        entries: entries
            .into_iter()
            .map(|entry| LogItem {
                at_iso: iso(entry.at),
                at_label: date_label(entry.at),
                entry,
            })
            .collect(),
        older_href,
        moderator: actor.0,
        csrf_token: csrf.as_str().to_owned(),
    };
    html(StatusCode::OK, &page)
}

fn iso(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "moderate_restaurant.html")]
pub(super) struct RestaurantPage<'a> {
    pub csrf_token: &'a str,
    pub flash: Option<&'static str>,
    pub restaurant: RestaurantView,
    pub input: RestaurantInput,
    pub errors: FieldErrors,
    /// What went wrong with the merge form, if it was sent and refused.
    pub merge_error: Option<String>,
    pub merge_into: String,
    pub moderator: String,
}

impl<'a> RestaurantPage<'a> {
    pub(super) fn new(csrf: &'a CsrfToken, restaurant: Restaurant, moderator: String) -> Self {
        let input = RestaurantInput {
            restaurant_name: restaurant.name.clone(),
            street_address: restaurant.street_address.clone(),
            description: restaurant.description.clone(),
        };
        Self {
            csrf_token: csrf.as_str(),
            flash: None,
            restaurant: RestaurantView::from(restaurant),
            input,
            errors: FieldErrors::default(),
            merge_error: None,
            merge_into: String::new(),
            moderator,
        }
    }
}

async fn restaurant_page(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Moderator(actor): Moderator,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    let restaurant = app.db.restaurant(id).await?.ok_or(AppError::NotFound)?;
    let mut page = RestaurantPage::new(&csrf, restaurant, actor.0);
    page.flash = Flash::from_request(&headers).map(Flash::message);
    let path = format!("/moderate/restaurants/{id}");
    shown_once(html(StatusCode::OK, &page)?, &headers, &path)
}

#[derive(Template)]
#[template(path = "moderate_sign_in.html")]
struct SignInPage<'a> {
    csrf_token: &'a str,
    token: String,
    problem: Option<&'static str>,
}

/// The page a printed link opens: a button, so that a link preview or prefetch cannot use up
/// the one-time token.
async fn sign_in_page(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    if !app.moderators.local_sign_in {
        return Err(AppError::NotFound);
    }
    let token = query
        .and_then(|q| parse_urlencoded(q.as_bytes()).ok())
        .and_then(|mut fields| fields.remove("token"))
        .unwrap_or_default();
    let page = SignInPage {
        csrf_token: csrf.as_str(),
        problem: token.is_empty().then_some("This address has no sign-in token. Open the whole link the app printed when it started."),
        token,
    };
    html(StatusCode::OK, &page)
}

async fn sign_in_with_link(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    if !app.moderators.local_sign_in {
        return Err(AppError::NotFound);
    }
    let fields = parse_urlencoded(&body)
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")))?;
    if !fields.get(CSRF_FIELD).is_some_and(|t| csrf.matches(t)) {
        return Ok(csrf_failure());
    }
    let token = fields.get("token").map(String::as_str).unwrap_or_default();
    let Some(session) = sign_in::redeem(&app.db, token).await? else {
        let page = SignInPage {
            csrf_token: csrf.as_str(),
            token: String::new(),
            problem: Some(
                "This sign-in link was used already or has expired. Restart the app for a new one, or run `restaurant-review moderate sign-in-link`.",
            ),
        };
        return html(StatusCode::FORBIDDEN, &page);
    };
    tracing::info!("a moderator signed in with a local sign-in link");
    let cookie = cookie::Cookie::build((SESSION_COOKIE, session))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(crate::web::security::is_https(&headers))
        .max_age(cookie::time::Duration::seconds(
            sign_in::SESSION_LIFETIME.whole_seconds(),
        ))
        .build();
    let mut response = flash::redirect(&headers, "/moderate/", Flash::SignedIn);
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn sign_out(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let fields = parse_urlencoded(&body)
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")))?;
    if !fields.get(CSRF_FIELD).is_some_and(|t| csrf.matches(t)) {
        return Ok(csrf_failure());
    }
    match session_token(&headers) {
        Some(token) => sign_in::sign_out(&app.db, &token).await?,
        // An App Service sign-in ends at the platform's own sign-out.
        None if app.moderators.settings.easy_auth => {
            return Ok(Redirect::to("/.auth/logout?post_logout_redirect_uri=/").into_response());
        }
        None => {}
    }
    let cleared = cookie::Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cleared.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}
