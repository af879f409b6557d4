//! HTTP: routes, templates, forms, errors and the protections around them.

pub mod api;
pub mod assets;
pub mod drain;
pub mod error;
pub mod flash;
pub mod forms;
pub mod moderator;
pub mod rate_limit;
pub mod routes;
pub mod security;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Extensions, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use drain::{DrainBudget, drain_unread_body};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

use crate::config::HttpSettings;
use crate::db::Database;
use crate::identity::TokenSource;
use crate::photos::{PhotoStore, URL_PREFIX};
use crate::reviews::Reviews;
use error::{AppError, error_page};
use routes::{health, photos, restaurants, reviews};

/// What every handler can reach. Everything here is either a pool or immutable, so any number
/// of instances can run side by side behind a load balancer.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub photos: PhotoStore,
    /// Posting a review: the flow, with its database, store, image workers and limits.
    pub reviews: Reviews,
    /// Token sources for Azure services, reported by `/health`.
    pub token_sources: Vec<TokenSource>,
    /// Spam control: how often one client may post reviews and restaurants.
    pub posts: rate_limit::PostLimiter,
    /// Who may moderate (App Service sign-in, local sign-in links).
    pub moderators: moderator::ModeratorAccess,
}

/// The URL-encoded restaurant form is tiny; anything much larger is not a browser's doing.
const RESTAURANT_FORM_LIMIT: usize = 64 * 1024;
/// How many times a route's body limit is read and discarded after a refusal, so that the
/// client sees the answer (see [`drain`]); beyond that the connection is closed.
const DRAIN_LIMIT_FACTOR: u64 = 4;
/// The longest a refused upload is read for; also at most half the request timeout, so the
/// refusal goes out before the timeout's 408 would.
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// The app's routes and layers. `photo_origin` is where pages load photos from besides the
/// app itself (a Blob Storage endpoint in `public` and `sas` modes).
pub fn router(state: AppState, http: &HttpSettings, photo_origin: Option<&str>) -> Router {
    let csp = HeaderValue::from_str(&security::content_security_policy(photo_origin))
        .unwrap_or_else(|_| HeaderValue::from_static(security::CONTENT_SECURITY_POLICY));
    let review_body_limit =
        usize::try_from(forms::review_body_limit(state.reviews.limits.max_bytes))
            .unwrap_or(usize::MAX);
    let drain_time = DRAIN_TIME.min(http.request_timeout / 2);
    let drain = |limit: usize| DrainBudget {
        max_bytes: DRAIN_LIMIT_FACTOR.saturating_mul(limit as u64),
        max_time: drain_time,
    };
    let allowed_hosts = Arc::new(http.allowed_hosts.clone());
    let x_request_id = HeaderName::from_static("x-request-id");
    assets::prepare_in_background();

    Router::new()
        .route("/", get(restaurants::index))
        .route("/create", get(restaurants::create_form))
        .route(
            "/add",
            post(restaurants::add_restaurant)
                .layer(DefaultBodyLimit::max(RESTAURANT_FORM_LIMIT))
                .layer(middleware::from_fn_with_state(
                    drain(RESTAURANT_FORM_LIMIT),
                    drain_unread_body,
                )),
        )
        .route("/{id}/", get(restaurants::details))
        .route("/{id}", get(restaurants::details_without_slash))
        .route(
            "/review/{id}",
            post(reviews::add_review)
                .layer(DefaultBodyLimit::max(review_body_limit))
                .layer(middleware::from_fn_with_state(
                    drain(review_body_limit),
                    drain_unread_body,
                ))
                // Where the browser is left after a refused review: reloading it must not 405.
                .get(reviews::review_address),
        )
        // The JSON API (its own errors, negotiation, CORS and cross-site guard; see api/).
        .merge(
            api::router(&http.api_cors_origins)
                .layer(DefaultBodyLimit::max(review_body_limit))
                .layer(middleware::from_fn_with_state(
                    drain(review_body_limit),
                    drain_unread_body,
                )),
        )
        // Moderation: visitors' reports, and the moderators' pages under /moderate/.
        .route(
            "/report/{id}",
            get(routes::reports::report_form)
                .post(routes::reports::report)
                .layer(DefaultBodyLimit::max(RESTAURANT_FORM_LIMIT)),
        )
        .merge(routes::moderate::routes().layer(DefaultBodyLimit::max(RESTAURANT_FORM_LIMIT)))
        .route("/health", get(health::health))
        .route("/static/{name}", get(assets::static_asset))
        .route(&format!("{URL_PREFIX}{{*key}}"), get(photos::photo))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // Layers listed first run first on the way in.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(x_request_id.clone(), MakeRequestUuid))
                // The request span: its route template, never the path or query (telemetry).
                .layer(TraceLayer::new_for_http().make_span_with(crate::telemetry::request::request_span))
                .layer(middleware::from_fn(crate::telemetry::request::record))
                .layer(PropagateRequestIdLayer::new(x_request_id))
                // Outside everything that answers, so error pages are compressed too.
                .layer(compression())
                .layer(middleware::from_fn(close_after_refused_upload))
                .layer(CatchPanicLayer::custom(|_panic| {
                    tracing::error!("a request handler panicked");
                    error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong",
                        "Sorry, something went wrong on our side. Nothing was saved; please try again.",
                    )
                }))
                .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp))
                .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
                .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .layer(security_header(header::REFERRER_POLICY, "same-origin"))
                .layer(middleware::from_fn_with_state(allowed_hosts, security::enforce_allowed_hosts))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    http.request_timeout,
                ))
                .layer(RequestBodyTimeoutLayer::new(http.body_idle_timeout))
                .layer(MapRequestBodyLayer::new(axum::body::Body::new))
                .layer(security::cross_origin_layer())
                .layer(middleware::from_fn(security::csrf_token)),
        )
}

/// Pages, CSS, JS, JSON and SVG; not images (photos are already compressed), bodies too small
/// to gain, or static assets, which come compressed at their best levels.
fn compression() -> CompressionLayer<impl Predicate> {
    let predicate = SizeAbove::new(256)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
        .and(|_, _, _: &_, extensions: &Extensions| {
            extensions.get::<assets::Negotiated>().is_none()
        });
    // Pages are compressed per request at level 1: a 10 KB index page becomes 1.3 KB (br) for
    // about a third of a debug build's GET / throughput; level 4 cost two thirds (measured side
    // by side with wrk), brotli's default 11 tens of milliseconds a page. Static assets are
    // compressed once, at the best level (see assets.rs).
    CompressionLayer::new()
        .quality(CompressionLevel::Precise(1))
        .compress_when(predicate)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// A refused POST may not have had its body read (an oversized upload is refused from its
/// `Content-Length`); hyper then closes the connection, so say so, or an HTTP/1.1 client
/// would reuse it for its next request and fail.
async fn close_after_refused_upload(request: Request, next: Next) -> Response {
    let closes = request.method() == Method::POST && request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if closes && (response.status().is_client_error() || response.status().is_server_error()) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn not_found() -> Response {
    AppError::NotFound.into_response()
}

async fn method_not_allowed() -> Response {
    error_page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "This address does not accept that kind of request.",
    )
}
