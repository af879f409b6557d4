//! The JSON API under `/api/v1/`, its OpenAPI 3.1 document (`/api/openapi.json`, generated
//! from the handlers' annotations by utoipa) and a reference page rendered from that document
//! (`/api/docs`). The router and the document come from the same `routes!` lists
//! (utoipa-axum), so a route cannot exist without its entry or the other way round; a test
//! checks both against the running app.

pub mod docs;
pub mod http;
pub mod model;
pub mod problem;
pub mod restaurants;
pub mod reviews;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Restaurant reviews API",
        description = "Restaurants and their reviews, as JSON. Reads are cacheable (ETag, If-None-Match); writes need no cookie or token and are rate-limited per client. Errors are RFC 9457 problem details.",
        license(name = "MIT", identifier = "MIT"),
    ),
    tags(
        (name = "restaurants", description = "Restaurants and their totals"),
        (name = "reviews", description = "A restaurant's reviews"),
    ),
    components(schemas(Problem)),
)]
struct ApiDoc;

/// The routes of `/api/v1`, each with its document entry.
fn v1_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            restaurants::list_restaurants,
            restaurants::create_restaurant
        ))
        .routes(routes!(restaurants::get_restaurant))
        .routes(routes!(reviews::list_reviews, reviews::create_review))
        .routes(routes!(reviews::get_review))
}

/// The router of `/api/v1` and the document it was built with.
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .nest(model::V1, v1_routes())
        .split_for_parts()
}

/// The OpenAPI document, as served (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| {
        let (_, mut document) = parts();
        document.info.version = env!("CARGO_PKG_VERSION").to_owned();
        document
    });
    &DOCUMENT
}

/// The API's routes and layers. `cors_origins` are the origins allowed to call it from a
/// browser (none: same-origin only).
pub fn router(cors_origins: &[String]) -> Router<AppState> {
    let (v1, _) = parts();
    let v1 = v1
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(http::refuse_cross_site_cookies));
    let mut api = Router::new()
        .merge(v1)
        .route(
            "/api/openapi.json",
            get(openapi_json).fallback(method_not_allowed),
        )
        .layer(middleware::from_fn(http::negotiate));
    if let Some(cors) = http::cors(cors_origins) {
        api = api.layer(cors);
    }
    api.route("/api/docs", get(docs::page))
        .route("/api/{*rest}", axum::routing::any(no_such_resource))
}

/// The document as JSON, with an ETag.
async fn openapi_json(headers: HeaderMap) -> Response {
    static JSON: LazyLock<Arc<serde_json::Value>> =
        LazyLock::new(|| Arc::new(serde_json::to_value(document()).unwrap_or_default()));
    http::conditional_json(&headers, JSON.as_ref(), "public, max-age=300")
}

async fn method_not_allowed(request: Request) -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} is not an operation of {}; see /api/openapi.json.",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

async fn no_such_resource() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-resource",
        "No such resource",
        "The API has nothing at this address; see /api/openapi.json.",
    )
    .into_response()
}
