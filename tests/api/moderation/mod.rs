//! Moderation on both databases: reports, the queue, hide and restore, delete (also when
//! storage fails midway), remove a photo, edit and merge restaurants, the audit log; who may
//! moderate (local sign-in, App Service's principal header only when the platform says so);
//! the `moderate` command.

mod access;
mod actions;
mod command;

use reqwest::multipart::Form;
use reqwest::{Client, StatusCode};

use crate::helpers::{TestApp, extract_csrf, photo_part};

/// A browser of its own (its own cookies), not following redirects.
pub fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser signed in as a moderator the local way: the printed link, then its button.
pub async fn moderator(app: &TestApp) -> Client {
    let client = browser();
    let link = app
        .sign_in_link
        .clone()
        .expect("a sign-in link on loopback");
    let page = client
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = extract_csrf(&page).expect("the sign-in page has a form");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let response = client
        .post(app.url("/moderate/sign-in"))
        .form(&[
            ("csrfmiddlewaretoken", csrf.as_str()),
            ("token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/moderate/");
    client
}

/// The HTML of `path` as `client` (and its cookies) gets it.
pub async fn page_as(app: &TestApp, client: &Client, path: &str) -> String {
    client
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The page's CSRF token for `client`.
pub async fn csrf(app: &TestApp, client: &Client, path: &str) -> String {
    let page = page_as(app, client, path).await;
    extract_csrf(&page).unwrap_or_else(|| panic!("{path} has a form: {page}"))
}

/// Posts a moderation form with the token (as the pages do); the response.
pub async fn act(
    app: &TestApp,
    client: &Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = csrf(app, client, "/moderate/").await;
    let mut all = vec![("csrfmiddlewaretoken", token.as_str())];
    all.extend_from_slice(fields);
    client.post(app.url(path)).form(&all).send().await.unwrap()
}

/// Hide, restore, delete, remove-photo or dismiss on review `id`, expecting the 303 back.
pub async fn review_action(app: &TestApp, client: &Client, id: i64, action: &str) {
    let response = act(
        app,
        client,
        &format!("/moderate/reviews/{id}/{action}"),
        &[],
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{action} review {id}"
    );
}

/// Adds a review (with a small PNG when `photo`) and returns its id.
pub async fn add_review(
    app: &TestApp,
    restaurant: i64,
    name: &str,
    rating: &str,
    photo: bool,
) -> i64 {
    let mut form: Form = app
        .review_form(
            restaurant,
            &[
                ("user_name", name),
                ("rating", rating),
                ("review_text", "Some words."),
            ],
        )
        .await;
    if photo {
        form = form.part("reviewImage", photo_part(&tiny_png(), "p.png", "image/png"));
    }
    let response = app.post_review(restaurant, form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (id,): (i64,) = app
        .db
        .fetch_one("SELECT MAX(id) FROM review", &[])
        .await
        .unwrap();
    id
}

fn tiny_png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb([20, 120, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The restaurant's stored totals: (review_count, rating_sum).
pub async fn totals(app: &TestApp, restaurant: i64) -> (i64, i64) {
    app.db
        .fetch_one(
            "SELECT review_count, rating_sum FROM restaurant WHERE id = $1",
            &[restaurant.into()],
        )
        .await
        .unwrap()
}

/// Rows in the audit log.
pub async fn log_entries(app: &TestApp) -> i64 {
    let (n,): (i64,) = app
        .db
        .fetch_one("SELECT COUNT(*) FROM moderation_log", &[])
        .await
        .unwrap();
    n
}

/// A visitor (their own browser) reports review `id`.
pub async fn report(
    app: &TestApp,
    visitor: &Client,
    restaurant: i64,
    id: i64,
    reason: &str,
    note: &str,
) -> reqwest::Response {
    let token = csrf(app, visitor, &format!("/{restaurant}/")).await;
    visitor
        .post(app.url(&format!("/report/{id}")))
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("reason", reason),
            ("note", note),
        ])
        .send()
        .await
        .unwrap()
}
