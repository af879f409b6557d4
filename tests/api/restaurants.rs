//! Restaurants: the index, the add form and its refusals, on SQLite and PostgreSQL.

use reqwest::StatusCode;
use rstest::rstest;
use rstest_reuse::apply;

use crate::helpers::both_backends;

use crate::helpers::{Backend, FieldCase, TestApp};

#[apply(both_backends)]
async fn a_new_site_shows_the_empty_state_and_the_add_form(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (status, html) = app.get_text("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No restaurants yet"), "{html}");
    assert!(html.contains("Azure Restaurant Review"));
    let (status, html) = app.get_text("/create").await;
    assert_eq!(status, StatusCode::OK);
    for field in [
        "restaurant_name",
        "street_address",
        "description",
        "csrfmiddlewaretoken",
    ] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "missing {field}"
        );
    }
    assert!(
        html.contains(">Cancel</a>"),
        "Cancel is a link, not a submit button"
    );
}

#[apply(both_backends)]
async fn an_added_restaurant_redirects_to_its_page_and_is_listed_without_ratings(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Café Lumière").await;
    let (status, html) = app.get_text(&format!("/{id}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Café Lumière"));
    assert!(html.contains("No reviews yet"));
    let (_, index) = app.get_text("/").await;
    assert!(index.contains("Café Lumière"));
    assert!(index.contains("No ratings yet"));
    assert_eq!(app.restaurant_count().await, 1);
}

#[apply(both_backends)]
async fn restaurant_fields_at_their_limits_are_accepted(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app
        .post_restaurant_form(&[
            ("restaurant_name", &"n".repeat(50)),
            ("street_address", &"a".repeat(50)),
            ("description", &"d".repeat(250)),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.restaurant_count().await, 1);
}

#[apply(both_backends)]
async fn bad_restaurant_input_is_refused_with_the_form_kept_and_nothing_stored(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let long_name = "n".repeat(51);
    let long_address = "a".repeat(51);
    let long_description = "d".repeat(251);
    // (case, fields, the field whose message must show)
    let cases: Vec<FieldCase> = vec![
        (
            "missing name",
            vec![("description", "Tasty")],
            "Name is required",
        ),
        (
            "blank name",
            vec![("restaurant_name", "   "), ("description", "Tasty")],
            "Name is required",
        ),
        (
            "missing description",
            vec![("restaurant_name", "Kept Name")],
            "Description is required",
        ),
        (
            "name one over",
            vec![("restaurant_name", &long_name), ("description", "Tasty")],
            "at most 50 characters",
        ),
        (
            "address one over",
            vec![
                ("restaurant_name", "Kept Name"),
                ("street_address", &long_address),
                ("description", "Tasty"),
            ],
            "at most 50 characters",
        ),
        (
            "description one over",
            vec![
                ("restaurant_name", "Kept Name"),
                ("description", &long_description),
            ],
            "at most 250 characters",
        ),
        (
            "NUL in name",
            vec![("restaurant_name", "a\0b"), ("description", "Tasty")],
            "cannot be stored",
        ),
    ];
    for (case, fields, message) in cases {
        let response = app.post_restaurant_form(&fields).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}"
        );
        let html = response.text().await.unwrap();
        assert!(html.contains(message), "{case}: expected {message:?}");
        assert!(html.contains("Restaurant not added"), "{case}");
        for (_, value) in fields
            .iter()
            .filter(|(_, v)| !v.contains('\0') && !v.trim().is_empty())
        {
            assert!(
                html.contains(value),
                "{case}: the typed value {value:?} is shown again"
            );
        }
    }
    assert_eq!(app.restaurant_count().await, 0);
}

#[apply(both_backends)]
async fn malformed_restaurant_posts_get_a_clear_4xx_and_store_nothing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.csrf_token("/create").await;
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        (
            "duplicate field",
            "application/x-www-form-urlencoded",
            format!(
                "csrfmiddlewaretoken={token}&restaurant_name=A&restaurant_name=B&description=x"
            )
            .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalid UTF-8",
            "application/x-www-form-urlencoded",
            format!("csrfmiddlewaretoken={token}&restaurant_name=%FF%FE&description=x")
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "raw invalid UTF-8 bytes",
            "application/x-www-form-urlencoded",
            [
                format!("csrfmiddlewaretoken={token}&description=x&restaurant_name=").as_bytes(),
                &[0xC3, 0x28],
            ]
            .concat(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "JSON instead of a form",
            "application/json",
            br#"{"restaurant_name":"A"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a megabyte of form",
            "application/x-www-form-urlencoded",
            format!(
                "csrfmiddlewaretoken={token}&description={}",
                "x".repeat(1 << 20)
            )
            .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (case, content_type, body, expected) in cases {
        let response = app
            .client
            .post(app.url("/add"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{case}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<html"), "{case}: a page, not a bare error");
    }
    assert_eq!(app.restaurant_count().await, 0);
}

#[apply(both_backends)]
async fn unknown_restaurants_are_404_pages(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in [
        "/999999/",
        "/0/",
        "/abc/",
        "/-1/",
        "/99999999999999999999999/",
        "/nothing/here",
    ] {
        let (status, html) = app.get_text(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("Page not found"), "{path}");
    }
    let id = app.create_restaurant("Slashless").await;
    let response = app.get(&format!("/{id}")).await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()["location"], format!("/{id}/").as_str());
}

#[apply(both_backends)]
async fn the_index_is_paginated_in_name_order(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for i in (0..25).rev() {
        app.create_restaurant(&format!("Restaurant {i:02}")).await;
    }
    let (_, first) = app.get_text("/").await;
    assert!(first.contains("Restaurant 00") && first.contains("Restaurant 19"));
    assert!(!first.contains("Restaurant 20"));
    assert!(first.contains("Page 1 of 2"));
    let (_, second) = app.get_text("/?page=2").await;
    assert!(second.contains("Restaurant 24") && !second.contains("Restaurant 19"));
    let (status, past_the_end) = app.get_text("/?page=99").await;
    assert_eq!(status, StatusCode::OK);
    assert!(past_the_end.contains("Page 2 of 2"));
    let (status, _) = app.get_text("/?page=abc").await;
    assert_eq!(status, StatusCode::OK);
}

#[apply(both_backends)]
async fn the_same_name_and_address_again_asks_did_you_mean_and_stores_nothing(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let first = app
        .post_restaurant_form(&[
            ("restaurant_name", "Café Müller"),
            ("street_address", "12 Rue de la Paix"),
            ("description", "The original."),
        ])
        .await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let original = first.headers()["location"].to_str().unwrap().to_owned();

    // The same place, typed differently each time.
    for (name, street) in [
        ("Café Müller", "12 Rue de la Paix"),
        ("CAFE MULLER", "12 rue de la paix"),
        ("  cafe   müller ", "12  Rue de la Paix "),
    ] {
        let response = app
            .post_restaurant_form(&[
                ("restaurant_name", name),
                ("street_address", street),
                ("description", "Typed again."),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{name}");
        let html = response.text().await.unwrap();
        assert!(html.contains("Did you mean"), "{name}: {html}");
        assert!(
            html.contains(&format!(
                r#"href="{original}">Café Müller, 12 Rue de la Paix</a>"#
            )),
            "{name}: a link to the one already listed: {html}"
        );
        assert!(html.contains("Typed again."), "{name}: the form is kept");
        assert!(
            html.contains(r#"name="confirm_duplicate""#),
            "{name}: a way to add it anyway"
        );
    }
    assert_eq!(app.restaurant_count().await, 1);

    // A different address, or a different name, is a different restaurant: no question.
    for (name, street) in [
        ("Café Müller", "3 Avenue Foch"),
        ("Café Müller Deux", "12 Rue de la Paix"),
    ] {
        let response = app
            .post_restaurant_form(&[
                ("restaurant_name", name),
                ("street_address", street),
                ("description", "Another place."),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}, {street}");
    }
    assert_eq!(app.restaurant_count().await, 3);
    let (_, create) = app.get_text("/create").await;
    assert!(
        !create.contains("confirm_duplicate"),
        "the box is shown only when asking"
    );
}

#[apply(both_backends)]
async fn a_duplicate_confirmed_as_a_different_restaurant_is_added(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fields = [
        ("restaurant_name", "Twin Peaks Diner"),
        ("street_address", "1 Main Street"),
        ("description", "A chain."),
    ];
    assert_eq!(
        app.post_restaurant_form(&fields).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.post_restaurant_form(&fields).await.status(),
        StatusCode::CONFLICT
    );
    let mut confirmed = fields.to_vec();
    confirmed.push(("confirm_duplicate", "yes"));
    assert_eq!(
        app.post_restaurant_form(&confirmed).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.restaurant_count().await, 2);
    // Both are found by a search.
    let (_, page) = app.get_text("/?q=twin+peaks").await;
    assert_eq!(page.matches(">Twin Peaks Diner</a>").count(), 2);
}
