//! Telemetry as an operator sees it: the real binary exporting to a fake Application Insights
//! ingestion endpoint (HTTPS, bearer tokens checked like Azure) and to an OTLP collector
//! stand-in, through the fake identity endpoint, PostgreSQL in token mode and Azurite.

mod application_insights;
mod doctor;
mod failures;
mod fake_ingestion;
mod otlp;
mod otlp_collector;
mod sampling;

use reqwest::StatusCode;

use crate::helpers::fake_identity::FakeIdentity;
use crate::helpers::process::{AppProcess, add_restaurant, post_review_form};
use crate::helpers::{PHONE_PHOTO, photo_part};

/// What a visitor types in these tests: none of it may appear in anything exported.
pub const TYPED_RESTAURANT: &str = "Sentinel Bistro Qx7";
pub const TYPED_USER: &str = "Typed Name Zq9";
pub const TYPED_REVIEW: &str = "typed review text Vw3 never exported";
pub const TYPED_SEARCH: &str = "searched Jk5";

/// A caller's W3C trace context (a load balancer or another service started the trace).
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Export quickly and in small batches, so tests see telemetry within a second.
pub const QUICK_EXPORT: [(&str, &str); 3] = [
    ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "100"),
];

/// Every trace exported (Application Insights' default keeps about 5 a second, which a test's
/// burst of requests can exceed).
pub const EVERY_TRACE: [(&str, &str); 2] = [
    ("OTEL_TRACES_SAMPLER", "microsoft.fixed_percentage"),
    ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
];

/// The settings of an app on App Service exporting to `ingestion` with the token of
/// `identity`'s managed identity.
pub fn exporting_to(
    ingestion: &fake_ingestion::FakeIngestion,
    identity: &FakeIdentity,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            ingestion.connection_string(),
        ),
        ("TELEMETRY_CA_CERT_FILE", ingestion.ca_file()),
        ("IDENTITY_ENDPOINT", identity.app_service_url.clone()),
        ("IDENTITY_HEADER", identity.header_secret().to_owned()),
        ("AZURE_CLIENT_ID", identity.client_id().to_owned()),
    ]
}

/// Adds a restaurant, posts a review with a photo, then views the restaurant's page with a
/// `traceparent`: every kind of work the app does (PostgreSQL, Blob Storage, photo
/// processing). Returns the page's path (`/<id>/`).
pub async fn visit(client: &reqwest::Client, app: &AppProcess) -> String {
    let response = add_restaurant(client, app, TYPED_RESTAURANT).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let page = response.headers()["location"].to_str().unwrap().to_owned();
    let searched = client
        .get(app.url(&format!("/?q={}", TYPED_SEARCH.replace(' ', "+"))))
        .send()
        .await
        .unwrap();
    assert_eq!(searched.status(), StatusCode::OK);
    let response = post_review_form(client, app, &page, |form| {
        form.text("user_name", TYPED_USER)
            .text("rating", "4")
            .text("review_text", TYPED_REVIEW)
            .part(
                "reviewImage",
                photo_part(PHONE_PHOTO, "IMG_0042.JPG", "image/jpeg"),
            )
    })
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = client
        .get(app.url(&page))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    page
}
