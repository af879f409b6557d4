//! Spam control: posting is limited per client, and the client is the peer, or on App Service
//! the address the platform appended to `X-Forwarded-For` — never one the client picks.

use std::num::NonZeroU32;

use reqwest::StatusCode;
use restaurant_review::config::RateLimitSettings;
use rstest::rstest;
use rstest_reuse::apply;

use crate::helpers::{Backend, TestApp, both_backends};

/// One post at once, then one a minute: the second post in a row is refused.
async fn app_allowing_one_post(backend: Backend, behind_app_service: bool) -> Option<TestApp> {
    TestApp::spawn_with(backend, |settings| {
        settings.rate_limit = RateLimitSettings {
            posts_per_minute: NonZeroU32::new(1),
            burst: NonZeroU32::MIN,
            behind_app_service,
        };
    })
    .await
}

async fn post_review_from(app: &TestApp, restaurant: i64, forwarded_for: &str) -> StatusCode {
    let form = app
        .review_form(
            restaurant,
            &[
                ("user_name", "Ada"),
                ("rating", "4"),
                ("review_text", "Fine."),
            ],
        )
        .await;
    app.client
        .post(app.url(&format!("/review/{restaurant}")))
        .header("x-forwarded-for", forwarded_for)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
}

#[apply(both_backends)]
async fn a_review_past_the_limit_gets_429_with_retry_after_and_the_form_as_typed(backend: Backend) {
    let Some(app) = app_allowing_one_post(backend, false).await else {
        return;
    };
    let restaurant = app.create_restaurant("Chez Flood").await;
    let form = app
        .review_form(
            restaurant,
            &[
                ("user_name", "Spammy"),
                ("rating", "5"),
                ("review_text", "Typed by a script, kept for a person."),
            ],
        )
        .await;

    let response = app.post_review(restaurant, form).await;

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let page = response.text().await.unwrap();
    assert!(
        page.contains("posting faster than this site allows"),
        "{page}"
    );
    assert!(page.contains("value=\"Spammy\""), "{page}");
    assert!(page.contains("Typed by a script, kept for a person."));
    assert_eq!(app.review_count().await, 0);
}

#[apply(both_backends)]
async fn a_restaurant_past_the_limit_gets_429_with_the_form_as_typed(backend: Backend) {
    let Some(app) = app_allowing_one_post(backend, false).await else {
        return;
    };
    app.create_restaurant("The first one").await;

    let response = app
        .post_restaurant_form(&[
            ("restaurant_name", "The second one"),
            ("street_address", "2 Side Street"),
            ("description", "Posted too soon after the first."),
        ])
        .await;

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let page = response.text().await.unwrap();
    assert!(page.contains("value=\"The second one\""), "{page}");
    assert!(page.contains("Posted too soon after the first."));
    assert_eq!(app.restaurant_count().await, 1);
}

#[apply(both_backends)]
async fn a_spoofed_forwarded_for_without_app_service_changes_nothing(backend: Backend) {
    let Some(app) = app_allowing_one_post(backend, false).await else {
        return;
    };
    let restaurant = app.create_restaurant("Chez Spoof").await;
    // create_restaurant used the one post; new addresses in the header do not buy another.
    for spoofed in ["198.51.100.1", "198.51.100.2, 203.0.113.9:1234"] {
        assert_eq!(
            post_review_from(&app, restaurant, spoofed).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{spoofed}"
        );
    }
    assert_eq!(app.review_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_app_service_the_platforms_entry_is_the_client_not_the_clients_first_entry() {
    let app = app_allowing_one_post(Backend::Sqlite, true)
        .await
        .expect("SQLite");
    let restaurant = app
        .db
        .create_restaurant(&restaurant_review::domain::NewRestaurant {
            name: restaurant_review::domain::RestaurantName::parse("Chez Azure").unwrap(),
            street_address: restaurant_review::domain::StreetAddress::parse("").unwrap(),
            description: restaurant_review::domain::Description::parse("Behind the front end.")
                .unwrap(),
        })
        .await
        .unwrap()
        .get();

    let first = post_review_from(&app, restaurant, "198.51.100.1, 203.0.113.1:50001").await;
    // The client changes what it sends; the platform's entry (same client) does not change.
    let again = post_review_from(&app, restaurant, "198.51.100.2, 203.0.113.1:50002").await;
    let someone_else = post_review_from(&app, restaurant, "198.51.100.1, 203.0.113.2:50003").await;

    assert_eq!(first, StatusCode::SEE_OTHER);
    assert_eq!(again, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(someone_else, StatusCode::SEE_OTHER);
    assert_eq!(app.review_count().await, 2);
}

#[apply(both_backends)]
async fn the_forms_and_the_api_draw_on_one_allowance(backend: Backend) {
    let Some(app) = app_allowing_one_post(backend, false).await else {
        return;
    };
    let through_the_api = app
        .client
        .post(app.url("/api/v1/restaurants"))
        .json(&serde_json::json!({"restaurant_name": "By API", "description": "First."}))
        .send()
        .await
        .unwrap();
    assert_eq!(through_the_api.status(), StatusCode::CREATED);

    let through_the_form = app
        .post_restaurant_form(&[
            ("restaurant_name", "By form"),
            ("description", "Second, too soon."),
        ])
        .await;

    assert_eq!(through_the_form.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.restaurant_count().await, 1);
}
