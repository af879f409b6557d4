//! The JSON API under /api/v1: every operation and every refusal, on both databases, as a
//! client sees them (problem+json, ETags, Location, negotiation, CORS, the cross-site guard).

use std::num::NonZeroU32;

use reqwest::multipart::Form;
use reqwest::{Client, Response, StatusCode};
use restaurant_review::config::RateLimitSettings;
use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};

use crate::helpers::{Backend, PHONE_PHOTO, TestApp, both_backends, photo_part};

/// A client as a script or an app is: no cookies, no browser headers.
fn script() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> Response {
    script()
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn json_of(response: Response) -> Value {
    response.json().await.unwrap()
}

/// Asserts an RFC 9457 problem with `status` and returns it.
async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = json_of(response).await;
    assert_eq!(body["status"], status.as_u16());
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "{member} in {body}");
    }
    body
}

async fn add(app: &TestApp, name: &str) -> i64 {
    let response = post_json(
        app,
        "/api/v1/restaurants",
        json!({"restaurant_name": name, "street_address": "1 Main Street", "description": "Added by a script.", "confirm_duplicate": true}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    json_of(response).await["id"].as_i64().unwrap()
}

#[apply(both_backends)]
async fn adding_a_restaurant_answers_201_with_its_location_and_it_can_be_read_back(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = post_json(
        &app,
        "/api/v1/restaurants",
        json!({"restaurant_name": "Café Rouge", "street_address": "2 Quay", "description": "Crêpes."}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created = json_of(response).await;
    assert_eq!(location, format!("/api/v1/restaurants/{}", created["id"]));

    let read = script().get(app.url(&location)).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.headers().contains_key("etag"));
    let read = json_of(read).await;
    assert_eq!(read["name"], "Café Rouge");
    assert_eq!(read["review_count"], 0);
    assert_eq!(read["average_rating"], Value::Null);
    assert_eq!(app.restaurant_count().await, 1);
}

#[apply(both_backends)]
async fn the_list_searches_sorts_and_pages_by_an_opaque_cursor_with_a_next_link(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for name in ["Bistro B", "Bistro A", "Bistro C", "Diner"] {
        add(&app, name).await;
    }
    let first = json_of(
        script()
            .get(app.url("/api/v1/restaurants?q=bistro&limit=2"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["Bistro A", "Bistro B"]);
    assert_eq!(first["total"], 3);
    let next = first["links"]["next"].as_str().unwrap();
    assert!(
        next.contains("cursor=") && next.contains("q=bistro"),
        "{next}"
    );
    let second = json_of(script().get(app.url(next)).send().await.unwrap()).await;
    assert_eq!(names(&second), ["Bistro C"]);
    assert!(second["links"].get("next").is_none());

    let by_reviews = json_of(
        script()
            .get(app.url("/api/v1/restaurants?sort=reviews"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(by_reviews["items"].as_array().unwrap().len(), 4);
}

#[apply(both_backends)]
async fn a_review_as_json_updates_the_totals_and_is_listed_newest_first(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = add(&app, "Chez Totals").await;
    for (name, rating) in [("Ada", 5), ("Bob", 4), ("Cy", 3)] {
        let response = post_json(
            &app,
            &format!("/api/v1/restaurants/{id}/reviews"),
            json!({"user_name": name, "rating": rating, "review_text": "Tried it."}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let one = json_of(script().get(app.url(&location)).send().await.unwrap()).await;
        assert_eq!(one["user_name"], name);
    }
    let restaurant = json_of(
        script()
            .get(app.url(&format!("/api/v1/restaurants/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(restaurant["review_count"], 3);
    assert_eq!(restaurant["average_rating"], 4.0);

    let page = json_of(
        script()
            .get(app.url(&format!("/api/v1/restaurants/{id}/reviews?limit=2")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Cy", "Bob"]);
    assert_eq!(page["total"], 3);
    let next = page["links"]["next"].as_str().unwrap();
    let rest = json_of(script().get(app.url(next)).send().await.unwrap()).await;
    assert_eq!(rest["items"][0]["user_name"], "Ada");
}

#[apply(both_backends)]
async fn a_review_with_a_photo_goes_through_the_photo_pipeline_and_links_its_renditions(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = add(&app, "Chez Photo").await;
    let form = Form::new()
        .text("user_name", "Ada")
        .text("rating", "5")
        .text("review_text", "Look at this.")
        .part(
            "reviewImage",
            photo_part(PHONE_PHOTO, "dish.jpg", "image/jpeg"),
        );
    let response = script()
        .post(app.url(&format!("/api/v1/restaurants/{id}/reviews")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let review = json_of(response).await;
    let display = review["photo"]["display"].as_str().unwrap();
    let thumbnail = review["photo"]["thumbnail"].as_str().unwrap();
    assert!(display.starts_with("/photos/") && thumbnail.starts_with("/photos/"));
    assert_eq!(app.get(display).await.status(), StatusCode::OK);
    assert_eq!(app.stored_photo_files().len(), 2);
}

#[apply(both_backends)]
async fn refused_input_is_a_problem_naming_each_field_and_stores_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = add(&app, "Chez Strict").await;
    let reviews = format!("/api/v1/restaurants/{id}/reviews");
    let cases: [(&str, &str, Value, StatusCode, &str); 6] = [
        (
            "empty name",
            "/api/v1/restaurants",
            json!({"restaurant_name": "", "description": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "restaurant_name",
        ),
        (
            "long description",
            "/api/v1/restaurants",
            json!({"restaurant_name": "A", "description": "x".repeat(251)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "description",
        ),
        (
            "name of the wrong type",
            "/api/v1/restaurants",
            json!({"restaurant_name": 5, "description": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "restaurant_name",
        ),
        (
            "rating out of range",
            &reviews,
            json!({"user_name": "Ada", "rating": 9}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rating",
        ),
        (
            "rating missing",
            &reviews,
            json!({"user_name": "Ada"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rating",
        ),
        (
            "user name too long",
            &reviews,
            json!({"user_name": "x".repeat(21), "rating": 3}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user_name",
        ),
    ];
    for (case, path, body, status, field) in cases {
        let body = problem(post_json(&app, path, body).await, status).await;
        assert!(body["errors"][field].is_string(), "{case}: {body}");
    }
    let not_json = script()
        .post(app.url("/api/v1/restaurants"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(not_json, StatusCode::BAD_REQUEST).await;
    let bad_cursor = script()
        .get(app.url("/api/v1/restaurants?cursor=forged"))
        .send()
        .await
        .unwrap();
    let body = problem(bad_cursor, StatusCode::BAD_REQUEST).await;
    assert!(body["errors"]["cursor"].is_string());
    assert_eq!(app.restaurant_count().await, 1);
    assert_eq!(app.review_count().await, 0);
}

#[apply(both_backends)]
async fn a_likely_duplicate_is_a_409_linking_the_candidate_unless_confirmed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = add(&app, "Le Duplicate").await;
    let again = json!({"restaurant_name": "le  duplicate", "street_address": "1 MAIN STREET", "description": "Same place?"});
    let body = problem(
        post_json(&app, "/api/v1/restaurants", again.clone()).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["candidates"][0], format!("/api/v1/restaurants/{id}"));
    let mut confirmed = again;
    confirmed["confirm_duplicate"] = json!(true);
    let response = post_json(&app, "/api/v1/restaurants", confirmed).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(app.restaurant_count().await, 2);
}

#[apply(both_backends)]
async fn unknown_restaurants_and_reviews_are_404_problems(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = add(&app, "Chez Known").await;
    for path in [
        "/api/v1/restaurants/999".to_owned(),
        "/api/v1/restaurants/abc".to_owned(),
        "/api/v1/restaurants/999/reviews".to_owned(),
        format!("/api/v1/restaurants/{id}/reviews/5"),
        "/api/v1/nothing".to_owned(),
    ] {
        let response = script().get(app.url(&path)).send().await.unwrap();
        problem(response, StatusCode::NOT_FOUND).await;
    }
    let review = post_json(
        &app,
        "/api/v1/restaurants/999/reviews",
        json!({"user_name": "Ada", "rating": 3}),
    )
    .await;
    problem(review, StatusCode::NOT_FOUND).await;
}

#[apply(both_backends)]
async fn wrong_media_types_and_oversized_bodies_are_415_and_413(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.http.max_photo_bytes = 64 * 1024).await
    else {
        return;
    };
    let id = add(&app, "Chez Limits").await;
    let as_form = script()
        .post(app.url("/api/v1/restaurants"))
        .form(&[("restaurant_name", "A"), ("description", "B")])
        .send()
        .await
        .unwrap();
    problem(as_form, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let huge = json!({"restaurant_name": "A", "description": "x".repeat(100_000)});
    problem(
        post_json(&app, "/api/v1/restaurants", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let big_photo = Form::new()
        .text("user_name", "Ada")
        .text("rating", "5")
        .part(
            "reviewImage",
            photo_part(&vec![0u8; 200 * 1024], "big.jpg", "image/jpeg"),
        );
    let response = script()
        .post(app.url(&format!("/api/v1/restaurants/{id}/reviews")))
        .multipart(big_photo)
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(body["errors"]["reviewImage"].is_string(), "{body}");
    let not_a_photo = Form::new()
        .text("user_name", "Ada")
        .text("rating", "5")
        .part("reviewImage", photo_part(b"<svg/>", "x.png", "image/png"));
    let response = script()
        .post(app.url(&format!("/api/v1/restaurants/{id}/reviews")))
        .multipart(not_a_photo)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(app.review_count().await, 0);
    assert!(app.stored_photo_files().is_empty());
}

#[apply(both_backends)]
async fn reads_carry_an_etag_and_answer_304_to_if_none_match(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = add(&app, "Chez Cache").await;
    for path in [
        "/api/v1/restaurants".to_owned(),
        format!("/api/v1/restaurants/{id}"),
        format!("/api/v1/restaurants/{id}/reviews"),
        "/api/openapi.json".to_owned(),
    ] {
        let first = script().get(app.url(&path)).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        assert!(first.headers().contains_key("cache-control"), "{path}");
        let etag = first.headers()["etag"].clone();
        let again = script()
            .get(app.url(&path))
            .header("if-none-match", etag.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(again.headers()["etag"], etag);
    }
    // A new review changes the restaurant, so its old ETag no longer matches.
    let before = script()
        .get(app.url(&format!("/api/v1/restaurants/{id}")))
        .send()
        .await
        .unwrap();
    let etag = before.headers()["etag"].clone();
    post_json(
        &app,
        &format!("/api/v1/restaurants/{id}/reviews"),
        json!({"user_name": "Ada", "rating": 2}),
    )
    .await;
    let after = script()
        .get(app.url(&format!("/api/v1/restaurants/{id}")))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::OK);
}

#[apply(both_backends)]
async fn a_client_accepting_only_html_or_xml_gets_406(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for accept in [
        "text/html",
        "application/xml",
        "text/xml, application/xhtml+xml",
    ] {
        let response = script()
            .get(app.url("/api/v1/restaurants"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::NOT_ACCEPTABLE).await;
    }
    let json_ok = script()
        .get(app.url("/api/v1/restaurants"))
        .header("accept", "text/html, application/json;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok.status(), StatusCode::OK);
}

#[apply(both_backends)]
async fn api_writes_past_the_rate_limit_get_a_429_problem_with_retry_after(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.rate_limit = RateLimitSettings {
            posts_per_minute: NonZeroU32::new(1),
            burst: NonZeroU32::MIN,
            behind_app_service: false,
        }
    })
    .await
    else {
        return;
    };
    let first = post_json(
        &app,
        "/api/v1/restaurants",
        json!({"restaurant_name": "One", "description": "First."}),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = post_json(
        &app,
        "/api/v1/restaurants",
        json!({"restaurant_name": "Two", "description": "Too soon."}),
    )
    .await;
    assert!(second.headers().contains_key("retry-after"));
    problem(second, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(app.restaurant_count().await, 1);
}

#[apply(both_backends)]
async fn a_cross_site_browser_write_with_the_sites_cookies_is_refused_and_a_script_is_not(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let body = json!({"restaurant_name": "Forged", "description": "From elsewhere.", "confirm_duplicate": true});
    let send = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = script().post(app.url("/api/v1/restaurants")).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let cross_site = send(&[
        ("cookie", "csrftoken=abc"),
        ("sec-fetch-site", "cross-site"),
    ])
    .await
    .unwrap();
    problem(cross_site, StatusCode::FORBIDDEN).await;
    let foreign_origin = send(&[
        ("cookie", "csrftoken=abc"),
        ("origin", "https://evil.example"),
    ])
    .await
    .unwrap();
    problem(foreign_origin, StatusCode::FORBIDDEN).await;
    assert_eq!(app.restaurant_count().await, 0);

    // Without cookies a cross-site call is an ordinary API call; same-origin with them too.
    let without_cookies = send(&[("sec-fetch-site", "cross-site")]).await.unwrap();
    assert_eq!(without_cookies.status(), StatusCode::CREATED);
    let same_origin = send(&[
        ("cookie", "csrftoken=abc"),
        ("sec-fetch-site", "same-origin"),
    ])
    .await
    .unwrap();
    assert_eq!(same_origin.status(), StatusCode::CREATED);
    // And the API sets no cookie of its own.
    let read = script()
        .get(app.url("/api/v1/restaurants"))
        .send()
        .await
        .unwrap();
    assert!(!read.headers().contains_key("set-cookie"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_open_to_the_listed_origins_only() {
    let closed = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let response = script()
        .get(closed.url("/api/v1/restaurants"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );

    let open = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.api_cors_origins = vec!["https://app.example".into()];
    })
    .await
    .unwrap();
    let preflight = script()
        .request(reqwest::Method::OPTIONS, open.url("/api/v1/restaurants"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = script()
        .get(open.url("/api/v1/restaurants"))
        .header("origin", "https://other.example")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_page_renders_every_operation_under_the_sites_csp_without_script() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let response = script().get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"));
    let page = response.text().await.unwrap();
    let document: Value = json_of(
        script()
            .get(app.url("/api/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let shown = format!("{} {path}", method.to_uppercase());
            assert!(page.contains(&shown), "{shown} missing from /api/docs");
        }
    }
    assert!(!page.contains("<script>") && !page.contains("cdn"));
    assert!(page.contains("id=\"problem-too-many-posts\""));
}

#[apply(both_backends)]
async fn with_the_database_gone_reads_and_writes_are_503_problems_with_retry_after(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = add(&app, "Dark Kitchen").await;
    // The app's pool is this one: closing it is the database going away.
    app.db.close().await;

    let reads = [
        "/api/v1/restaurants".to_owned(),
        format!("/api/v1/restaurants/{id}"),
        format!("/api/v1/restaurants/{id}/reviews"),
    ];
    for path in reads {
        let response = script().get(app.url(&path)).send().await.unwrap();
        assert!(response.headers().contains_key("retry-after"), "{path}");
        problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    for (path, body) in [
        (
            "/api/v1/restaurants".to_owned(),
            json!({"restaurant_name": "Later", "description": "Posted in the outage."}),
        ),
        (
            format!("/api/v1/restaurants/{id}/reviews"),
            json!({"user_name": "Pat", "rating": 5}),
        ),
    ] {
        let response = post_json(&app, &path, body).await;
        assert!(response.headers().contains_key("retry-after"), "{path}");
        problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    }
    assert!(app.stored_photo_files().is_empty());
}
