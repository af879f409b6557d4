//! The sample's pages, at the sample's URLs: `/`, `/<id>/`, `/create`, `/add`, `/review/<id>`.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::AppState;
use super::error::AppError;
use super::forms::{
    FORM_OVERHEAD_BYTES, FieldErrors, FormError, RestaurantInput, ReviewInput, ReviewReadError,
    parse_urlencoded, read_review_form,
};
use super::security::{CSRF_FIELD, CsrfToken, csrf_failure};
use crate::db::{Restaurant, Review};
use crate::domain::{RestaurantId, Stars};
use crate::photos::processing::human_bytes;
use crate::photos::{PhotoError, Variant, delete_photo, save_photo};

pub const RESTAURANTS_PER_PAGE: u32 = 20;
pub const REVIEWS_PER_PAGE: u32 = 20;

const DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");

/// Page navigation under a list.
pub struct Pager {
    pub page: u32,
    pub pages: u32,
    pub prev: Option<u32>,
    pub next: Option<u32>,
}

impl Pager {
    fn new(page: u32, total: i64, per_page: u32) -> Self {
        let pages =
            u32::try_from((total.max(0) as u64).div_ceil(u64::from(per_page))).unwrap_or(u32::MAX);
        let page = page.clamp(1, pages.max(1));
        Self {
            page,
            pages,
            prev: (page > 1).then(|| page - 1),
            next: (page < pages).then(|| page + 1),
        }
    }
}

/// `?page=N`, defaulting to 1 for anything missing or malformed.
fn requested_page(query: Option<String>) -> u32 {
    query
        .and_then(|q| parse_urlencoded(q.as_bytes()).ok())
        .and_then(|fields| fields.get("page").and_then(|p| p.parse::<u32>().ok()))
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

pub struct RestaurantView {
    pub id: i64,
    pub href: String,
    pub name: String,
    pub street_address: String,
    pub description: String,
    pub average: Option<String>,
    pub count_label: String,
    pub stars: Stars,
}

impl From<Restaurant> for RestaurantView {
    fn from(r: Restaurant) -> Self {
        Self {
            id: r.id.get(),
            href: format!("/{}/", r.id),
            average: r.ratings.average_display(),
            count_label: r.ratings.count_display(),
            stars: Stars::from_tenths(r.ratings.average_tenths().unwrap_or(0)),
            name: r.name,
            street_address: r.street_address,
            description: r.description,
        }
    }
}

pub struct PhotoLinks {
    pub full_url: String,
    pub thumbnail_url: String,
}

pub struct ReviewView {
    pub id: i64,
    pub user_name: String,
    pub review_text: String,
    pub stars: Stars,
    pub date_label: String,
    pub date_iso: String,
    pub photo: Option<PhotoLinks>,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    restaurants: Vec<RestaurantView>,
    pager: Pager,
}

#[derive(Template)]
#[template(path = "create.html")]
struct CreatePage<'a> {
    csrf_token: &'a str,
    input: RestaurantInput,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "details.html")]
struct DetailsPage<'a> {
    csrf_token: &'a str,
    restaurant: RestaurantView,
    reviews: Vec<ReviewView>,
    pager: Pager,
    input: ReviewInput,
    errors: FieldErrors,
    form_open: bool,
    form_message: Option<String>,
    rating_choices: [u8; 5],
    max_photo_bytes: u64,
    max_photo_label: String,
}

fn html(status: StatusCode, template: &impl Template) -> Result<Response, AppError> {
    Ok((status, Html(template.render()?)).into_response())
}

pub async fn index(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let requested = requested_page(query);
    let (mut rows, mut total) = app
        .db
        .restaurant_page(requested, RESTAURANTS_PER_PAGE)
        .await?;
    let pager = Pager::new(requested, total, RESTAURANTS_PER_PAGE);
    if pager.page != requested {
        // Past the last page: show the last one rather than an empty list.
        (rows, total) = app
            .db
            .restaurant_page(pager.page, RESTAURANTS_PER_PAGE)
            .await?;
    }
    let page = IndexPage {
        restaurants: rows.into_iter().map(RestaurantView::from).collect(),
        pager: Pager::new(pager.page, total, RESTAURANTS_PER_PAGE),
    };
    html(StatusCode::OK, &page)
}

pub async fn create_form(Extension(csrf): Extension<CsrfToken>) -> Result<Response, AppError> {
    let page = CreatePage {
        csrf_token: csrf.as_str(),
        input: RestaurantInput::default(),
        errors: FieldErrors::default(),
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    if !is_urlencoded(&headers) {
        return Err(AppError::UnsupportedMediaType(
            "Send the restaurant form as application/x-www-form-urlencoded, as the page does."
                .into(),
        ));
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(
            "The restaurant form is far larger than its fields allow.".into(),
        ),
        _ => AppError::BadRequest(format!(
            "The form could not be read: {}",
            rejection.body_text()
        )),
    })?;
    let refused = |input: RestaurantInput, errors: FieldErrors, status: StatusCode| {
        let page = CreatePage {
            csrf_token: csrf.as_str(),
            input,
            errors,
        };
        html(status, &page)
    };
    let mut fields = match parse_urlencoded(&body) {
        Ok(fields) => fields,
        Err(error) => {
            let mut errors = FieldErrors::default();
            errors.insert(form_error_field(&error), error.to_string());
            return refused(RestaurantInput::default(), errors, StatusCode::BAD_REQUEST);
        }
    };
    if !fields.get(CSRF_FIELD).is_some_and(|t| csrf.matches(t)) {
        return Ok(csrf_failure());
    }
    let input = RestaurantInput::from_fields(&mut fields);
    match input.validate() {
        Ok(new) => {
            let id = app.db.create_restaurant(&new).await?;
            tracing::info!(restaurant = id.get(), "restaurant added");
            Ok(Redirect::to(&format!("/{id}/")).into_response())
        }
        Err(errors) => refused(input, errors, StatusCode::UNPROCESSABLE_ENTITY),
    }
}

/// Where to show a form-level problem: next to the field it names, if it names one.
fn form_error_field(error: &FormError) -> &'static str {
    let name = match error {
        FormError::Duplicate(name)
        | FormError::InvalidUtf8(name)
        | FormError::FieldTooLong(name) => name.as_str(),
        FormError::Malformed(_) | FormError::Csrf => "",
    };
    [
        "restaurant_name",
        "street_address",
        "description",
        "user_name",
        "rating",
        "review_text",
        "reviewImage",
    ]
    .into_iter()
    .find(|field| *field == name)
    .unwrap_or("form")
}

/// The review form's state when the details page is shown again after a refused submission.
#[derive(Default)]
struct ReviewFormState {
    input: ReviewInput,
    errors: FieldErrors,
    message: Option<String>,
}

impl ReviewFormState {
    fn refused(input: ReviewInput, errors: FieldErrors, photo_was_sent: bool) -> Self {
        let mut message = "Review not added. Please correct the fields marked below.".to_owned();
        if photo_was_sent && errors.get("reviewImage").is_none() {
            message.push_str(" Choose your photo again before saving.");
        }
        Self {
            input,
            errors,
            message: Some(message),
        }
    }
}

async fn render_details(
    app: &AppState,
    id: RestaurantId,
    page: u32,
    csrf: &CsrfToken,
    form: Option<ReviewFormState>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let restaurant = app.db.restaurant(id).await?.ok_or(AppError::NotFound)?;
    let pager = Pager::new(page, restaurant.ratings.review_count, REVIEWS_PER_PAGE);
    let reviews = app.db.reviews(id, pager.page, REVIEWS_PER_PAGE).await?;
    let mut review_views = Vec::with_capacity(reviews.len());
    for review in reviews {
        review_views.push(review_view(app, review).await);
    }
    let form_open = form.is_some();
    let form = form.unwrap_or_default();
    let page = DetailsPage {
        csrf_token: csrf.as_str(),
        restaurant: RestaurantView::from(restaurant),
        reviews: review_views,
        pager,
        input: form.input,
        errors: form.errors,
        form_open,
        form_message: form.message,
        rating_choices: [5, 4, 3, 2, 1],
        max_photo_bytes: app.photo_limits.max_bytes,
        max_photo_label: human_bytes(app.photo_limits.max_bytes),
    };
    html(status, &page)
}

/// A review for the page. A photo whose link cannot be made (storage unreachable) is left out
/// with a warning rather than failing the whole page.
async fn review_view(app: &AppState, review: Review) -> ReviewView {
    let photo = match &review.image {
        Some(name) => {
            let links = async {
                Ok::<_, crate::photos::StoreError>(PhotoLinks {
                    full_url: app.photos.url(&Variant::Display.key(name)).await?,
                    thumbnail_url: app.photos.url(&Variant::Thumbnail.key(name)).await?,
                })
            };
            match links.await {
                Ok(links) => Some(links),
                Err(error) => {
                    tracing::warn!(photo = %name, error = %crate::error_chain(&error), "showing a review without its photo");
                    None
                }
            }
        }
        None => None,
    };
    ReviewView {
        id: review.id,
        stars: Stars::from_rating(review.rating),
        date_label: review.review_date.format(DATE_FORMAT).unwrap_or_default(),
        date_iso: review
            .review_date
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        user_name: review.user_name,
        review_text: review.review_text,
        photo,
    }
}

pub async fn details(
    State(app): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    render_details(&app, id, requested_page(query), &csrf, None, StatusCode::OK).await
}

/// `/<id>` without the slash: send browsers to the canonical `/<id>/`, as Django does.
pub async fn details_without_slash(Path(id): Path<String>) -> Result<Response, AppError> {
    let id = RestaurantId::parse(&id).ok_or(AppError::NotFound)?;
    Ok(Redirect::permanent(&format!("/{id}/")).into_response())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

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
    let max_photo = app.photo_limits.max_bytes;
    let too_large = |input: ReviewInput| {
        let mut errors = FieldErrors::default();
        errors.insert(
            "reviewImage",
            PhotoError::TooLarge {
                max_bytes: max_photo,
            }
            .to_string(),
        );
        ReviewFormState::refused(input, errors, false)
    };
    // A declared size over the limit is refused without reading (or buffering) the body.
    if content_length(&headers).is_some_and(|len| len > max_photo + FORM_OVERHEAD_BYTES) {
        let form = too_large(ReviewInput::default());
        return render_details(
            &app,
            id,
            1,
            &csrf,
            Some(form),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }
    let multipart = match multipart {
        Ok(multipart) => multipart,
        Err(rejection) => {
            let mut errors = FieldErrors::default();
            errors.insert(
                "form",
                format!(
                    "The review form could not be read: {}",
                    rejection.body_text()
                ),
            );
            let form = ReviewFormState::refused(ReviewInput::default(), errors, false);
            return render_details(&app, id, 1, &csrf, Some(form), StatusCode::BAD_REQUEST).await;
        }
    };
    let submission = match read_review_form(multipart, &csrf, max_photo).await {
        Ok(submission) => submission,
        Err(ReviewReadError::Form(FormError::Csrf)) => return Ok(csrf_failure()),
        Err(ReviewReadError::Form(error)) => {
            let mut errors = FieldErrors::default();
            errors.insert(form_error_field(&error), error.to_string());
            let form = ReviewFormState::refused(ReviewInput::default(), errors, false);
            return render_details(&app, id, 1, &csrf, Some(form), StatusCode::BAD_REQUEST).await;
        }
        Err(ReviewReadError::PhotoTooLarge(input)) => {
            return render_details(
                &app,
                id,
                1,
                &csrf,
                Some(too_large(input)),
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .await;
        }
    };

    let photo_was_sent = submission.photo.is_some();
    let review = match submission.input.validate() {
        Ok(review) => review,
        Err(errors) => {
            let form = ReviewFormState::refused(submission.input, errors, photo_was_sent);
            return render_details(
                &app,
                id,
                1,
                &csrf,
                Some(form),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };

    let photo = match submission.photo {
        None => None,
        Some(upload) => match app
            .workers
            .process(upload.bytes, app.photo_limits.clone())
            .await
        {
            Ok(photo) => Some(photo),
            Err(error) => {
                let status = match error {
                    PhotoError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                let mut errors = FieldErrors::default();
                errors.insert("reviewImage", error.to_string());
                let form = ReviewFormState::refused(submission.input, errors, true);
                return render_details(&app, id, 1, &csrf, Some(form), status).await;
            }
        },
    };

    // Photo first, then the row; if the row cannot be written the photo is removed again, so
    // neither an orphan photo nor a review pointing at a missing one is left behind.
    if let Some(photo) = &photo
        && let Err(error) = save_photo(app.photos.as_ref(), photo).await
    {
        tracing::error!(error = %crate::error_chain(&error), "storing a photo failed; the review was not saved");
        let mut errors = FieldErrors::default();
        errors.insert(
                "reviewImage",
                "Your photo could not be stored just now, so the review was not saved. Please try again in a minute.",
            );
        let form = ReviewFormState::refused(submission.input, errors, true);
        return render_details(
            &app,
            id,
            1,
            &csrf,
            Some(form),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
    }
    match app
        .db
        .add_review(id, &review, photo.as_ref().map(|p| &p.name))
        .await
    {
        Ok(review_id) => {
            tracing::info!(
                restaurant = id.get(),
                review = review_id,
                with_photo = photo.is_some(),
                "review added"
            );
            Ok(Redirect::to(&format!("/{id}/#review-{review_id}")).into_response())
        }
        Err(error) => {
            if let Some(photo) = &photo {
                delete_photo(app.photos.as_ref(), &photo.name).await;
            }
            Err(error.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_clamps_and_links_neighbours() {
        let p = Pager::new(1, 45, 20);
        assert_eq!((p.page, p.pages, p.prev, p.next), (1, 3, None, Some(2)));
        let p = Pager::new(9, 45, 20);
        assert_eq!((p.page, p.prev, p.next), (3, Some(2), None));
        let p = Pager::new(1, 0, 20);
        assert_eq!((p.page, p.pages), (1, 0));
    }

    #[test]
    fn page_query_defaults_to_one() {
        assert_eq!(requested_page(None), 1);
        assert_eq!(requested_page(Some("page=3".into())), 3);
        assert_eq!(requested_page(Some("page=0".into())), 1);
        assert_eq!(requested_page(Some("page=abc".into())), 1);
        assert_eq!(requested_page(Some("page=%FF".into())), 1);
    }
}
