//! `/api/v1/restaurants/{id}/reviews`: a restaurant's reviews (newest first, keyset pages), one
//! review, and posting one — as JSON, or as multipart with a photo through the site's review
//! flow (`reviews::Reviews::post`: the same validation, photo pipeline, limits and memory
//! budget, and the same nothing-half-saved guarantee).

use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::http::{conditional_json, content_type_is};
use super::model::{NewReviewIn, NewReviewMultipart, ReviewOut, ReviewPage, restaurant_href};
use super::problem::Problem;
use super::restaurants::{
    JSON_BODY_LIMIT, LIST_CACHE, created_json, page_links, page_params, query_fields, read_json,
    split_page,
};
use crate::db::{PageAt, Review};
use crate::domain::RestaurantId;
use crate::reviews::{Refusal, Submission};
use crate::web::AppState;
use crate::web::forms::{ReadFailure, read_review};
use crate::web::rate_limit::Poster;
use crate::web::view::ReviewView;

/// A review does not change once posted, but its photo links may expire (SAS): revalidate.
const REVIEW_CACHE: &str = "no-cache";

async fn with_photo_links(app: &AppState, review: Review) -> ReviewOut {
    // The pages' own link making: the same PHOTO_URL_MODE, and a photo whose link cannot be
    // made is left out rather than failing the answer.
    let view_photo = ReviewView::new(review.clone(), &app.photos).await.photo;
    ReviewOut::new(review, view_photo)
}

fn reviews_href(id: RestaurantId) -> String {
    format!("{}/reviews", restaurant_href(id.get()))
}

/// A restaurant's reviews, newest first, 20 a page (`limit`).
#[utoipa::path(
    get,
    path = "/restaurants/{id}/reviews",
    tag = "reviews",
    params(
        ("id" = i64, Path, description = "The restaurant's id", minimum = 1),
        ("cursor" = Option<String>, Query, description = "Where the page starts: the `cursor` of a `next` link"),
        ("limit" = Option<u32>, Query, description = "Reviews per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "A page of reviews", body = ReviewPage, content_type = "application/json",
            headers(("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 400, description = "A query parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such restaurant", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "The request accepts no JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database cannot be reached", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn list_reviews(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = RestaurantId::parse(&id).ok_or_else(Problem::not_found)?;
    let fields = query_fields(query.as_deref())?;
    let (at, limit) = page_params(&fields)?;
    let (restaurant, rows) = app
        .db
        .details_page(id, at, limit + 1)
        .await?
        .ok_or_else(Problem::not_found)?;
    let (rows, next) = split_page(rows, limit, |r: &Review| r.id);
    let mut items = Vec::with_capacity(rows.len());
    for review in rows {
        items.push(with_photo_links(&app, review).await);
    }
    let page = ReviewPage {
        restaurant: restaurant_href(id.get()),
        items,
        total: restaurant.ratings.review_count,
        links: page_links(&reviews_href(id), Vec::new(), limit, at, next),
    };
    Ok(conditional_json(&headers, &page, LIST_CACHE))
}

/// One review of a restaurant.
#[utoipa::path(
    get,
    path = "/restaurants/{id}/reviews/{review_id}",
    tag = "reviews",
    params(
        ("id" = i64, Path, description = "The restaurant's id", minimum = 1),
        ("review_id" = i64, Path, description = "The review's id", minimum = 1),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The review", body = ReviewOut, content_type = "application/json",
            headers(("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 404, description = "No such review of this restaurant", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "The request accepts no JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database cannot be reached", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn get_review(
    State(app): State<AppState>,
    Path((id, review_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = RestaurantId::parse(&id).ok_or_else(Problem::not_found)?;
    let review_id = RestaurantId::parse(&review_id)
        .ok_or_else(Problem::not_found)?
        .get();
    // The reviews page statement itself, one row long, starting just above this id: whatever
    // hides a review from the pages hides it here too.
    let (_, rows) = app
        .db
        .details_page(id, PageAt::After(review_id.saturating_add(1)), 1)
        .await?
        .ok_or_else(Problem::not_found)?;
    let review = rows
        .into_iter()
        .find(|r| r.id == review_id)
        .ok_or_else(Problem::not_found)?;
    let review = with_photo_links(&app, review).await;
    Ok(conditional_json(&headers, &review, REVIEW_CACHE))
}

/// Posts a review: JSON without a photo, or `multipart/form-data` (the site's form fields)
/// with one. The rules, limits and messages are the site's.
#[utoipa::path(
    post,
    path = "/restaurants/{id}/reviews",
    tag = "reviews",
    params(("id" = i64, Path, description = "The restaurant's id", minimum = 1)),
    request_body(content(
        (NewReviewIn = "application/json"),
        (NewReviewMultipart = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "Posted", body = ReviewOut, content_type = "application/json",
            headers(("Location" = String, description = "The new review"))),
        (status = 202, description = "Saved, but it could not be read back just now: Location is where it will be",
            headers(("Location" = String, description = "The new review"))),
        (status = 400, description = "The body could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A cross-site browser request carrying this site's cookies", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such restaurant", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "The request accepts no JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The photo or body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither application/json nor multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields or the photo are not valid: `errors` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many posts from this client; try again after Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage or the database cannot be reached; nothing was saved", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn create_review(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Poster(client): Poster,
    request: Request,
) -> Result<Response, Problem> {
    let id = RestaurantId::parse(&id).ok_or_else(Problem::not_found)?;
    // An unknown restaurant is a 404 before a byte of the body is read.
    match app.db.restaurant(id).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(Problem::not_found()),
        Err(error) => return Err(error.into()),
    }
    let headers = request.headers().clone();
    let submission = if content_type_is(&headers, "application/json") {
        let review: NewReviewIn = read_json(&headers, request.into_body(), JSON_BODY_LIMIT).await?;
        Submission {
            input: review.into(),
            photo: None,
        }
    } else if content_type_is(&headers, "multipart/form-data") {
        let multipart = Multipart::from_request(request, &()).await;
        let max_photo_bytes = app.reviews.limits.max_bytes;
        match read_review(&headers, multipart, None, max_photo_bytes).await {
            Ok(submission) => submission,
            Err(ReadFailure::Refused(refusal)) => return Err(refusal.into()),
            // No token is asked for without a CSRF token to check against.
            Err(ReadFailure::Csrf) => {
                return Err(Problem::bad_request("The form could not be read."));
            }
        }
    } else {
        return Err(Problem::unsupported_media_type(
            "Send the review as application/json, or as multipart/form-data with a photo.",
        ));
    };
    if let Err(refused) = app.posts.check(client) {
        return Err(Problem::too_many(
            refused.retry_after_secs(),
            refused.message(),
        ));
    }
    let review_id = app
        .reviews
        .post(id, submission)
        .await
        .map_err(Problem::from_refusal)?;
    let location = format!("{}/{review_id}", reviews_href(id));
    let stored = app
        .db
        .details_page(id, PageAt::After(review_id.saturating_add(1)), 1)
        .await;
    match stored {
        Ok(Some((_, rows))) => match rows.into_iter().find(|r| r.id == review_id) {
            Some(review) => Ok(created_json(
                &location,
                &with_photo_links(&app, review).await,
            )),
            None => Err(Problem::not_found()),
        },
        // Saved, but it cannot be read back just now: not an error (a retry would post it
        // twice), a 202 pointing at where it can be read.
        outcome => {
            if let Err(error) = outcome {
                tracing::warn!(error = %crate::error_chain(&error), "a posted review could not be read back");
            }
            let mut response = axum::http::StatusCode::ACCEPTED.into_response();
            if let Ok(location) = axum::http::HeaderValue::from_str(&location) {
                response
                    .headers_mut()
                    .insert(axum::http::header::LOCATION, location);
            }
            Ok(response)
        }
    }
}

impl Problem {
    fn from_refusal(refusal: Refusal) -> Self {
        refusal.into()
    }
}
