//! What every page shares, checked in the HTML (tests/api/browser.rs checks it in a browser):
//! the skip link, the navbar's current page, and the one-off messages after adding something,
//! which need no server-side session.

use reqwest::StatusCode;
use rstest::rstest;
use rstest_reuse::apply;

use crate::helpers::both_backends;

use crate::helpers::{Backend, TestApp};

#[apply(both_backends)]
async fn every_page_starts_with_a_skip_link_and_marks_its_navbar_entry(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Marked").await;
    // (path, status, the navbar entry marked current)
    let cases: [(&str, StatusCode, Option<&str>); 4] = [
        ("/", StatusCode::OK, Some("Restaurants")),
        ("/create", StatusCode::OK, Some("Add restaurant")),
        (&format!("/{id}/"), StatusCode::OK, None),
        ("/nothing/here", StatusCode::NOT_FOUND, None),
    ];
    for (path, expected, current) in cases {
        let (status, html) = app.get_text(path).await;
        assert_eq!(status, expected, "{path}");
        let body = &html[html.find("<body").unwrap()..];
        let first_link = &body[body.find("<a ").expect("a link")..];
        assert!(
            first_link.starts_with("<a class=\"skip-link\" href=\"#content\">Skip to content</a>"),
            "{path}: the skip link comes first"
        );
        assert!(html.contains("<main id=\"content\""), "{path}");
        // The navbar entries marked current: `aria-current="page"` inside a nav-link tag.
        let marked: Vec<&str> = html
            .match_indices("aria-current=\"page\">")
            .filter(|(at, _)| {
                html[..*at]
                    .rfind("class=\"nav-link")
                    .is_some_and(|l| html[l..*at].find('<').is_none())
            })
            .map(|(at, m)| {
                let text = &html[at + m.len()..];
                &text[..text.find('<').unwrap()]
            })
            .collect();
        match current {
            // Once in the bar and once in the phone menu.
            Some(entry) => assert_eq!(marked, [entry, entry], "{path}"),
            None => assert!(marked.is_empty(), "{path}: {marked:?}"),
        }
    }
}

#[apply(both_backends)]
async fn adding_a_restaurant_says_so_once_on_its_page(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Flash Café").await;
    let (status, html) = app.get_text(&format!("/{id}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("role=\"status\"") && html.contains("Restaurant added"),
        "{html}"
    );
    let (_, again) = app.get_text(&format!("/{id}/")).await;
    assert!(!again.contains("Restaurant added"), "shown once only");
    // The message belongs to that page: another restaurant's page never shows it.
    let other = app.create_restaurant("Other Place").await;
    let (_, index) = app.get_text("/").await;
    assert!(!index.contains("Restaurant added"));
    let (_, other_page) = app.get_text(&format!("/{other}/")).await;
    assert!(other_page.contains("Restaurant added"));
    let (_, first_again) = app.get_text(&format!("/{id}/")).await;
    assert!(!first_again.contains("Restaurant added"));
}

#[apply(both_backends)]
async fn a_review_leads_back_to_the_restaurant_with_its_new_average_and_a_message(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Average Place").await;
    let _ = app.get_text(&format!("/{id}/")).await;
    let form = app
        .review_form(id, &[("user_name", "Ana"), ("rating", "5")])
        .await;
    let response = app.post_review(id, form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], format!("/{id}/").as_str());
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains(&format!("Path=/{id}/")) && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let (_, html) = app.get_text(&format!("/{id}/")).await;
    let flash = html.find("Review added").expect("the message");
    let average = html.find("5.0").expect("the new average");
    assert!(flash < average, "the message comes before the summary");
    let (_, again) = app.get_text(&format!("/{id}/")).await;
    assert!(!again.contains("Review added"));
}

#[tokio::test]
async fn a_forged_flash_cookie_shows_nothing() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let id = app.create_restaurant("Forged").await;
    let _ = app.get_text(&format!("/{id}/")).await;
    let html = reqwest::Client::new()
        .get(app.url(&format!("/{id}/")))
        .header("cookie", "flash=<b>hacked</b>")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("hacked") && !html.contains("role=\"status\""));
}
