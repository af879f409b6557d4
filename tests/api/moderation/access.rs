//! Who may moderate, and the protections every moderation page and action has.

use base64::Engine;
use reqwest::StatusCode;
use rstest::rstest;
use rstest_reuse::apply;

use super::{add_review, browser, csrf, moderator, totals};
use crate::helpers::{Backend, TestApp, both_backends};

const MODERATOR_OID: &str = "6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b";

/// App Service's principal header for an Entra user with these claims.
fn principal(oid: &str, name: &str, roles: &[&str]) -> String {
    let mut claims = vec![
        serde_json::json!({"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid}),
        serde_json::json!({"typ": "name", "val": name}),
    ];
    claims.extend(
        roles
            .iter()
            .map(|r| serde_json::json!({"typ": "roles", "val": r})),
    );
    let json = serde_json::json!({"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims});
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

/// Posts hide on `review` as whoever `headers` say, with a valid token for that browser.
async fn hide_as(
    app: &TestApp,
    restaurant: i64,
    review: i64,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let client = browser();
    let token = csrf(app, &client, &format!("/{restaurant}/")).await;
    let mut request = client
        .post(app.url(&format!("/moderate/reviews/{review}/hide")))
        .form(&[("csrfmiddlewaretoken", token.as_str())]);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

#[apply(both_backends)]
async fn a_forged_principal_without_website_auth_enabled_sees_no_moderation_page_and_changes_nothing(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.moderation.moderators = vec![MODERATOR_OID.to_owned()];
    })
    .await
    else {
        return;
    };
    let restaurant = app.create_restaurant("Forgery Inn").await;
    let review = add_review(&app, restaurant, "Ann", "4", false).await;
    let forged = vec![
        (
            "x-ms-client-principal",
            principal(MODERATOR_OID, "Mallory", &["Moderator"]),
        ),
        ("x-ms-client-principal-id", MODERATOR_OID.to_owned()),
        ("x-ms-client-principal-name", "Mallory".to_owned()),
    ];
    for path in [
        "/moderate/",
        "/moderate/log",
        &format!("/moderate/restaurants/{restaurant}"),
    ] {
        let mut request = browser().get(app.url(path));
        for (name, value) in &forged {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(!response.text().await.unwrap().contains("Reported reviews"));
    }
    let response = hide_as(&app, restaurant, review, &forged).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(totals(&app, restaurant).await, (1, 4));
    assert_eq!(super::log_entries(&app).await, 0);
}

#[apply(both_backends)]
async fn with_app_service_authentication_a_listed_or_role_holding_principal_moderates_and_others_get_403(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.moderation.easy_auth = true;
        s.moderation.moderators = vec![MODERATOR_OID.to_owned()];
    })
    .await
    else {
        return;
    };
    let restaurant = app.create_restaurant("Entra Eatery").await;
    let first = add_review(&app, restaurant, "Ann", "4", false).await;
    let second = add_review(&app, restaurant, "Bob", "2", false).await;

    let outsider = vec![(
        "x-ms-client-principal",
        principal("11111111-2222-3333-4444-555555555555", "Eve", &[]),
    )];
    let response = hide_as(&app, restaurant, first, &outsider).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("Eve"));
    assert_eq!(totals(&app, restaurant).await, (2, 6));

    // Nobody signed in: off to App Service's sign-in page, and back here after.
    let response = browser().get(app.url("/moderate/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"],
        "/.auth/login/aad?post_login_redirect_uri=%2Fmoderate%2F"
    );

    let listed = vec![(
        "x-ms-client-principal",
        principal(&MODERATOR_OID.to_uppercase(), "Ada", &[]),
    )];
    assert_eq!(
        hide_as(&app, restaurant, first, &listed).await.status(),
        StatusCode::SEE_OTHER
    );
    let role = vec![(
        "x-ms-client-principal",
        principal(
            "99999999-2222-3333-4444-555555555555",
            "Grace",
            &["Moderator"],
        ),
    )];
    assert_eq!(
        hide_as(&app, restaurant, second, &role).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(totals(&app, restaurant).await, (0, 0));
    let (moderators,): (String,) = app
        .db
        .fetch_one(
            "SELECT moderator FROM moderation_log ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(moderators, format!("Ada (oid {MODERATOR_OID})"));
}

#[apply(both_backends)]
async fn an_action_without_the_csrf_token_changes_nothing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Token Town").await;
    let review = add_review(&app, restaurant, "Ann", "4", false).await;
    let moderator = moderator(&app).await;
    for (case, token) in [("no token", None), ("wrong token", Some("forged"))] {
        let mut fields = vec![];
        if let Some(token) = token {
            fields.push(("csrfmiddlewaretoken", token));
        }
        for path in [
            format!("/moderate/reviews/{review}/hide"),
            format!("/moderate/reviews/{review}/delete"),
            format!("/moderate/restaurants/{restaurant}/edit"),
        ] {
            let response = moderator
                .post(app.url(&path))
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{case}: {path}");
        }
    }
    assert_eq!(totals(&app, restaurant).await, (1, 4));
    assert_eq!(app.review_count().await, 1);
    assert_eq!(super::log_entries(&app).await, 0);
}

#[apply(both_backends)]
async fn moderation_pages_are_not_stored_or_indexed_and_a_sign_in_link_works_once(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Private Pages").await;
    let moderator = moderator(&app).await;
    for path in [
        "/moderate/".to_owned(),
        "/moderate/log".to_owned(),
        format!("/moderate/restaurants/{restaurant}"),
    ] {
        let response = moderator.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(
            response.headers()["x-robots-tag"],
            "noindex, nofollow",
            "{path}"
        );
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("<meta name=\"robots\" content=\"noindex")
        );
    }
    // The link was used by `moderator`: a second browser cannot use it again.
    let other = browser();
    let link = app.sign_in_link.clone().unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let form_token = csrf(&app, &other, "/moderate/sign-in?token=x").await;
    let response = other
        .post(app.url("/moderate/sign-in"))
        .form(&[
            ("csrfmiddlewaretoken", form_token.as_str()),
            ("token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        other
            .get(app.url("/moderate/"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );

    // Signing out ends the session.
    let token = csrf(&app, &moderator, "/moderate/").await;
    let response = moderator
        .post(app.url("/moderate/sign-out"))
        .form(&[("csrfmiddlewaretoken", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        moderator
            .get(app.url("/moderate/"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sign_in_link_is_made_when_listening_on_every_interface() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.listen = "0.0.0.0:0".parse().unwrap();
    })
    .await
    .unwrap();
    assert!(app.sign_in_link.is_none());
    let response = app.get("/moderate/sign-in?token=anything").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
