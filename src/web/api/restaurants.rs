//! `/api/v1/restaurants`: the list (search, sorts, keyset pages), one restaurant, adding one.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::http::{conditional_json, content_type_is, cursor_after, parse_cursor};
use super::model::{
    NewRestaurantIn, PageLinks, RestaurantOut, RestaurantPage, V1, restaurant_href,
};
use super::problem::Problem;
use crate::db::{PageAt, Restaurant, RestaurantFilter, Sort};
use crate::domain::RestaurantId;
use crate::forms::field;
use crate::web::AppState;
use crate::web::forms::parse_urlencoded;
use crate::web::rate_limit::Poster;

/// Lists change with every restaurant and review: cache, but ask each time (the ETag makes
/// that a 304).
pub const LIST_CACHE: &str = "no-cache";
/// One restaurant's totals may be half a minute old.
const RESTAURANT_CACHE: &str = "public, max-age=30, must-revalidate";
/// The largest JSON body a restaurant can need, many times over.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// As the index: names have at most 50 characters.
const MAX_SEARCH_CHARS: usize = 200;

/// The query string's fields, strictly decoded (as the pages decode theirs).
pub fn query_fields(query: Option<&str>) -> Result<HashMap<String, String>, Problem> {
    parse_urlencoded(query.unwrap_or_default().as_bytes()).map_err(|error| {
        Problem::bad_request(format!("The query string could not be read: {error}"))
    })
}

/// `cursor` and `limit`: where the page starts and how long it is (1–100, default 20).
pub fn page_params(fields: &HashMap<String, String>) -> Result<(PageAt, u32), Problem> {
    let at = match fields.get("cursor").filter(|c| !c.is_empty()) {
        None => PageAt::First,
        Some(cursor) => PageAt::After(parse_cursor(cursor).ok_or_else(|| {
            Problem::field(
                StatusCode::BAD_REQUEST,
                "cursor",
                "This cursor was not given out by this API; use the `next` link of a page.",
            )
        })?),
    };
    let limit = match fields.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::field(
                    StatusCode::BAD_REQUEST,
                    "limit",
                    format!("A whole number from 1 to {MAX_LIMIT}."),
                )
            })?,
    };
    Ok((at, limit))
}

/// The rows of a page fetched one longer than `limit`: the page, and the cursor of the next
/// one when there is more.
pub fn split_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> i64,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more
        .then(|| rows.last().map(|row| cursor_after(id(row))))
        .flatten();
    (rows, next)
}

/// A page's own link (its cursor when it started after one) and the next page's, if any,
/// keeping the `kept` query pairs and a `limit` other than the default.
pub fn page_links(
    path: &str,
    mut kept: Vec<(&str, String)>,
    limit: u32,
    at: PageAt,
    next: Option<String>,
) -> PageLinks {
    if limit != DEFAULT_LIMIT {
        kept.push(("limit", limit.to_string()));
    }
    let this = match at {
        PageAt::After(id) => page_link(path, &kept, Some(&cursor_after(id))),
        _ => page_link(path, &kept, None),
    };
    PageLinks {
        this,
        next: next.map(|cursor| page_link(path, &kept, Some(&cursor))),
    }
}

/// A link to `path` with `kept` query pairs and, when given, the cursor.
pub fn page_link(path: &str, kept: &[(&str, String)], cursor: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in kept {
        query.append_pair(name, value);
    }
    if let Some(cursor) = cursor {
        query.append_pair("cursor", cursor);
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Restaurants, 20 a page (`limit`), by name, best rated or most reviewed, optionally only
/// those whose name contains `q` (case, accents and spacing aside).
#[utoipa::path(
    get,
    path = "/restaurants",
    tag = "restaurants",
    params(
        ("q" = Option<String>, Query, description = "Search in names (case, accents and spacing aside)", max_length = 200),
        ("sort" = Option<String>, Query, description = "`name` (default), `rating` (best average first) or `reviews` (most reviewed first)", pattern = "^(name|rating|reviews)$"),
        ("cursor" = Option<String>, Query, description = "Where the page starts: the `cursor` of a `next` link"),
        ("limit" = Option<u32>, Query, description = "Restaurants per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "A page of restaurants", body = RestaurantPage, content_type = "application/json",
            headers(("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "no-cache"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 400, description = "A query parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "The request accepts no JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database cannot be reached; try again after Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn list_restaurants(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let fields = query_fields(query.as_deref())?;
    let search = fields
        .get("q")
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if search
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
    {
        return Err(Problem::field(
            StatusCode::BAD_REQUEST,
            "q",
            format!("The search is too long: at most {MAX_SEARCH_CHARS} characters."),
        ));
    }
    let sort = match fields.get("sort") {
        None => Sort::default(),
        Some(text) => Sort::parse(text).ok_or_else(|| {
            Problem::field(
                StatusCode::BAD_REQUEST,
                "sort",
                "One of name, rating, reviews.",
            )
        })?,
    };
    let (at, limit) = page_params(&fields)?;
    let filter = RestaurantFilter { search, sort };
    let (rows, total) = app.db.restaurant_list(&filter, at, limit + 1).await?;
    let (rows, next) = split_page(rows, limit, |r: &Restaurant| r.id.get());

    let mut kept: Vec<(&str, String)> = Vec::new();
    if let Some(q) = &filter.search {
        kept.push(("q", q.clone()));
    }
    if filter.sort != Sort::Name {
        kept.push(("sort", filter.sort.as_str().to_owned()));
    }
    let path = format!("{V1}/restaurants");
    let page = RestaurantPage {
        items: rows.into_iter().map(RestaurantOut::from).collect(),
        total,
        links: page_links(&path, kept, limit, at, next),
    };
    Ok(conditional_json(&headers, &page, LIST_CACHE))
}

/// One restaurant with its review count and average rating.
#[utoipa::path(
    get,
    path = "/restaurants/{id}",
    tag = "restaurants",
    params(
        ("id" = i64, Path, description = "The restaurant's id", minimum = 1),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 if unchanged"),
    ),
    responses(
        (status = 200, description = "The restaurant", body = RestaurantOut, content_type = "application/json",
            headers(("ETag" = String, description = "Validator for If-None-Match"), ("Cache-Control" = String, description = "Half a minute"))),
        (status = 304, description = "Unchanged since the ETag given"),
        (status = 404, description = "No such restaurant", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "The request accepts no JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database cannot be reached", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn get_restaurant(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let id = RestaurantId::parse(&id).ok_or_else(Problem::not_found)?;
    let restaurant = app
        .db
        .restaurant(id)
        .await?
        .ok_or_else(Problem::not_found)?;
    Ok(conditional_json(
        &headers,
        &RestaurantOut::from(restaurant),
        RESTAURANT_CACHE,
    ))
}

/// Reads a JSON body of at most `limit` bytes: 415 if it is not declared JSON, 413 if too
/// large, 400 if it is not JSON, 422 naming the field whose value has the wrong type.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, Problem> {
    if !content_type_is(headers, "application/json") {
        return Err(Problem::unsupported_media_type(
            "Send the body as application/json.",
        ));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            Problem::too_large(format!("The body is larger than {limit} bytes."))
        } else {
            Problem::bad_request("The body could not be read.")
        }
    })?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_data() && path != "." {
            Problem::field(StatusCode::UNPROCESSABLE_ENTITY, &path, inner.to_string())
        } else {
            Problem::bad_request(format!("The body is not the JSON object expected: {inner}"))
        }
    })?;
    deserializer.end().map_err(|error| {
        Problem::bad_request(format!("The body has more after its JSON: {error}"))
    })?;
    Ok(value)
}

/// Adds a restaurant, with the rules of the site's form. The same name and address as one
/// already listed (case, accents and spacing aside) is a 409 naming it, unless
/// `confirm_duplicate` is true.
#[utoipa::path(
    post,
    path = "/restaurants",
    tag = "restaurants",
    request_body(content = NewRestaurantIn, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = RestaurantOut, content_type = "application/json",
            headers(("Location" = String, description = "The new restaurant"))),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A cross-site browser request carrying this site's cookies", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "The request accepts no JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Likely a duplicate: `candidates` links the restaurants already listed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields are not valid: `errors` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many posts from this client; try again after Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database cannot be reached", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn create_restaurant(
    State(app): State<AppState>,
    Poster(client): Poster,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let new: NewRestaurantIn = read_json(&headers, body, JSON_BODY_LIMIT).await?;
    let (input, confirmed) = new.into_input();
    app.posts
        .check(client)
        .map_err(|refused| Problem::too_many(refused.retry_after_secs(), refused.message()))?;
    let new = input.validate().map_err(|errors| {
        Problem::invalid("Restaurant not added: some fields are not valid.").with_errors(&errors)
    })?;
    if !confirmed {
        let similar = app.db.similar_restaurants(&new).await?;
        if !similar.is_empty() {
            let mut problem = Problem::new(
                StatusCode::CONFLICT,
                "likely-duplicate",
                "Likely a duplicate",
                "A restaurant with this name and address is already listed. Send confirm_duplicate: true to add it anyway.",
            );
            problem.candidates = similar
                .iter()
                .map(|r| restaurant_href(r.id.get()))
                .collect();
            problem.errors.insert(
                field::RESTAURANT_NAME.to_owned(),
                "Already listed at this address.".to_owned(),
            );
            return Err(problem);
        }
    }
    let id = app.db.create_restaurant(&new).await?;
    tracing::info!(restaurant = id.get(), "restaurant added through the API");
    let created = RestaurantOut::from(Restaurant {
        id,
        name: new.name.into_inner(),
        street_address: new.street_address.into_inner(),
        description: new.description.into_inner(),
        ratings: crate::domain::RatingSummary {
            review_count: 0,
            rating_sum: 0,
        },
    });
    Ok(created_json(&created.links.this.clone(), &created))
}

/// 201 with `Location` and the created resource.
pub fn created_json<T: serde::Serialize>(location: &str, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = (StatusCode::CREATED, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    response
}
