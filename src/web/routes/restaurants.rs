//! `/` (the list), `/create` and `POST /add` (a new restaurant), `/<id>/` (one restaurant with
//! its reviews and the review form).

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::html;
// The templates name the forms' fields and limits through these.
use crate::db::{PageAt, RestaurantFilter, Sort};
use crate::domain::{
    Description, RestaurantId, RestaurantName, ReviewText, StreetAddress, UserName,
};
use crate::forms::{FieldErrors, RestaurantInput, ReviewInput, field};
use crate::photos::processing::human_bytes;
use crate::reviews::ReviewFormState;
use crate::web::AppState;
use crate::web::error::{AppError, with_retry_after};
use crate::web::flash::{self, Flash};
use crate::web::forms::parse_urlencoded;
use crate::web::rate_limit::Poster;
use crate::web::security::{CSRF_FIELD, CsrfToken, csrf_failure};
use crate::web::view::{
    Pager, RestaurantView, ReviewView, page_instead, requested_position, shown_number,
};

pub const RESTAURANTS_PER_PAGE: u32 = 20;
pub const REVIEWS_PER_PAGE: u32 = 20;

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    restaurants: Vec<RestaurantView>,
    pager: Pager,
    /// The search as typed (empty: none).
    q: String,
    sort: Sort,
    sorts: [(Sort, &'static str); 3],
}

/// The longest search accepted: names have at most 50 characters, so a longer search cannot
/// match, and SQLite refuses very long LIKE patterns.
const MAX_SEARCH_CHARS: usize = 200;

/// `?q=` (the search, trimmed; blank is none) and `?sort=` (`name`, `rating`, `reviews`; anything
/// else is the default, by name). A query string that cannot be decoded is a 400.
fn list_filter(query: Option<&str>) -> Result<(RestaurantFilter, String), AppError> {
    let fields = parse_urlencoded(query.unwrap_or_default().as_bytes())
        .map_err(|error| AppError::BadRequest(format!("The address could not be read: {error}")))?;
    let q = fields
        .get("q")
        .map(|q| q.trim().to_owned())
        .unwrap_or_default();
    if q.chars().count() > MAX_SEARCH_CHARS {
        return Err(AppError::BadRequest(format!(
            "The search is too long: at most {MAX_SEARCH_CHARS} characters."
        )));
    }
    let sort = fields
        .get("sort")
        .and_then(|s| Sort::parse(s))
        .unwrap_or_default();
    let filter = RestaurantFilter {
        search: (!q.is_empty()).then(|| q.clone()),
        sort,
    };
    Ok((filter, q))
}

/// The query the pager's links keep: the search and a sort other than the default.
fn kept_query(filter: &RestaurantFilter) -> String {
    let mut kept = url::form_urlencoded::Serializer::new(String::new());
    if let Some(q) = &filter.search {
        kept.append_pair("q", q);
    }
    if filter.sort != Sort::Name {
        kept.append_pair("sort", filter.sort.as_str());
    }
    kept.finish()
}

#[derive(Template)]
#[template(path = "create.html")]
struct CreatePage<'a> {
    csrf_token: &'a str,
    input: RestaurantInput,
    errors: FieldErrors,
    /// Restaurants already listed with the same name and address: "did you mean…?".
    similar: Vec<RestaurantView>,
}

#[derive(Template)]
#[template(path = "details.html")]
struct DetailsPage<'a> {
    csrf_token: &'a str,
    restaurant: RestaurantView,
    reviews: Vec<ReviewView>,
    pager: Pager,
    form: ReviewFormView,
    /// A one-off message after a redirect ("Review added"), shown above the restaurant.
    flash: Option<&'static str>,
}

/// What templates/review_form.html shows, for the details page and the form-only page alike.
pub(super) struct ReviewFormView {
    pub(super) input: ReviewInput,
    pub(super) errors: FieldErrors,
    pub(super) open: bool,
    pub(super) message: Option<String>,
    pub(super) rating_choices: [u8; 5],
    pub(super) max_photo_bytes: u64,
    pub(super) max_photo_label: String,
}

impl ReviewFormView {
    /// Closed and empty without a refused form; open with what was typed otherwise.
    pub(super) fn new(app: &AppState, refused: Option<ReviewFormState>) -> Self {
        let open = refused.is_some();
        let form = refused.unwrap_or_default();
        let max_photo_bytes = app.reviews.limits.max_bytes;
        Self {
            input: form.input,
            errors: form.errors,
            open,
            message: form.message,
            rating_choices: [1, 2, 3, 4, 5],
            max_photo_bytes,
            max_photo_label: human_bytes(max_photo_bytes),
        }
    }
}

pub async fn index(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let (filter, q) = list_filter(query.as_deref())?;
    let at = requested_position(query.as_deref());
    let mut number = shown_number(at, query);
    let (mut rows, mut total) = app
        .db
        .restaurant_list(&filter, at, RESTAURANTS_PER_PAGE)
        .await?;
    if let Some(instead) = page_instead(at, rows.len(), total, RESTAURANTS_PER_PAGE) {
        number = shown_number(instead, None);
        (rows, total) = app
            .db
            .restaurant_list(&filter, instead, RESTAURANTS_PER_PAGE)
            .await?;
    }
    let pager = Pager::new(number, total, RESTAURANTS_PER_PAGE).linked_with(
        "/",
        &kept_query(&filter),
        rows.len(),
        rows.first().map(|r| r.id.get()),
        rows.last().map(|r| r.id.get()),
    );
    let page = IndexPage {
        restaurants: rows.into_iter().map(RestaurantView::from).collect(),
        pager,
        q,
        sort: filter.sort,
        sorts: [
            (Sort::Name, "Name"),
            (Sort::Rating, "Best rated"),
            (Sort::Reviews, "Most reviewed"),
        ],
    };
    html(StatusCode::OK, &page)
}

pub async fn create_form(Extension(csrf): Extension<CsrfToken>) -> Result<Response, AppError> {
    let page = CreatePage {
        csrf_token: csrf.as_str(),
        input: RestaurantInput::default(),
        errors: FieldErrors::default(),
        similar: Vec::new(),
    };
    html(StatusCode::OK, &page)
}

fn is_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

pub async fn add_restaurant(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Poster(client): Poster,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    if !is_urlencoded(&headers) {
        return Err(AppError::UnsupportedMediaType(
            "Send the restaurant form as application/x-www-form-urlencoded, as the page does."
                .into(),
        ));
    }
    let body = body.map_err(AppError::from_body_rejection)?;
    let page = |input: RestaurantInput, errors, similar, status| {
        let csrf_token = csrf.as_str();
        html(
            status,
            &CreatePage {
                csrf_token,
                input,
                errors,
                similar,
            },
        )
    };
    let refused = |input: RestaurantInput, errors: FieldErrors, status: StatusCode| {
        page(input, errors, Vec::new(), status)
    };
    let mut fields = match parse_urlencoded(&body) {
        Ok(fields) => fields,
        Err(error) => {
            let errors = FieldErrors::one(error.shown_at(), error.to_string());
            return refused(RestaurantInput::default(), errors, StatusCode::BAD_REQUEST);
        }
    };
    if !fields.get(CSRF_FIELD).is_some_and(|t| csrf.matches(t)) {
        return Ok(csrf_failure());
    }
    let confirmed = fields.remove(field::CONFIRM_DUPLICATE).is_some();
    let input = RestaurantInput::from_fields(&mut fields);
    if let Err(too_many) = app.posts.check(client) {
        let errors = FieldErrors::one(field::FORM, too_many.message());
        let page = refused(input, errors, StatusCode::TOO_MANY_REQUESTS)?;
        return Ok(with_retry_after(page, too_many.retry_after_secs()));
    }
    match input.validate() {
        Ok(new) => {
            // The same name and address (case, accents and spacing aside) is most likely the
            // same place: ask, with links, before adding it a second time.
            if !confirmed {
                let similar = app.db.similar_restaurants(&new).await?;
                if !similar.is_empty() {
                    let similar = similar.into_iter().map(RestaurantView::from).collect();
                    return page(input, FieldErrors::default(), similar, StatusCode::CONFLICT);
                }
            }
            let id = app.db.create_restaurant(&new).await?;
            tracing::info!(restaurant = id.get(), "restaurant added");
            Ok(flash::redirect(
                &headers,
                &format!("/{id}/"),
                Flash::RestaurantAdded,
            ))
        }
        Err(errors) => refused(input, errors, StatusCode::UNPROCESSABLE_ENTITY),
    }
}

pub async fn details(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    let at = requested_position(query.as_deref());
    let number = shown_number(at, query);
    let mut page = match details_page(&app, id, at, number, &csrf, None).await {
        // A restaurant merged into another: its address leads to the one it became.
        Err(AppError::NotFound) => match crate::moderation::moved_to(&app.db, id).await? {
            Some(into) => {
                let location = format!("/{into}/");
                return Ok((
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, location)],
                )
                    .into_response());
            }
            None => return Err(AppError::NotFound),
        },
        page => page?,
    };
    let Some(shown) = Flash::from_request(&headers) else {
        return html(StatusCode::OK, &page);
    };
    page.flash = Some(shown.message());
    Ok(flash::shown(
        html(StatusCode::OK, &page)?,
        &format!("/{id}/"),
    ))
}

/// `/<id>` without the slash: send browsers to the canonical `/<id>/`, as Django does.
pub async fn details_without_slash(Path(id): Path<String>) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    Ok(Redirect::permanent(&format!("/{id}/")).into_response())
}

/// The details page at `at` (shown as page `number`), in one database round trip, with the
/// review form open and filled in when `form` is a refused one.
pub(super) async fn render_details(
    app: &AppState,
    id: RestaurantId,
    at: PageAt,
    number: u32,
    csrf: &CsrfToken,
    form: Option<ReviewFormState>,
    status: StatusCode,
) -> Result<Response, AppError> {
    html(
        status,
        &details_page(app, id, at, number, csrf, form).await?,
    )
}

async fn details_page<'a>(
    app: &AppState,
    id: RestaurantId,
    at: PageAt,
    number: u32,
    csrf: &'a CsrfToken,
    form: Option<ReviewFormState>,
) -> Result<DetailsPage<'a>, AppError> {
    let mut number = number;
    let (restaurant, mut rows) = app
        .db
        .details_page(id, at, REVIEWS_PER_PAGE)
        .await?
        .ok_or(AppError::NotFound)?;
    let count = restaurant.ratings.review_count;
    if let Some(instead) = page_instead(at, rows.len(), count, REVIEWS_PER_PAGE) {
        number = shown_number(instead, None);
        if let Some((_, again)) = app.db.details_page(id, instead, REVIEWS_PER_PAGE).await? {
            rows = again;
        }
    }
    let pager = Pager::new(number, count, REVIEWS_PER_PAGE).linked(
        &format!("/{id}/"),
        rows.len(),
        rows.first().map(|r| r.id),
        rows.last().map(|r| r.id),
    );
    let mut reviews = Vec::new();
    for review in rows {
        reviews.push(ReviewView::new(review, &app.photos).await);
    }
    let page = DetailsPage {
        csrf_token: csrf.as_str(),
        restaurant: RestaurantView::from(restaurant),
        reviews,
        pager,
        form: ReviewFormView::new(app, form),
        flash: None,
    };
    Ok(page)
}
