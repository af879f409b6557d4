//! Finding a restaurant on both databases: search by name whatever the case and accents, sort
//! by name, best rated or most reviewed, and page through either with the pager keeping both.

use reqwest::StatusCode;
use rstest::rstest;
use rstest_reuse::apply;

use crate::helpers::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::paging::{link, names_on};

/// Posts a review with `rating` for restaurant `id`.
async fn review(app: &TestApp, id: i64, rating: u8) {
    let form = app
        .review_form(
            id,
            &[("user_name", "Rater"), ("rating", &rating.to_string())],
        )
        .await;
    assert_eq!(
        app.post_review(id, form).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[apply(both_backends)]
async fn a_search_finds_names_whatever_their_case_and_accents(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for name in [
        "Café Müller",
        "CAFE CREME",
        "Zum Löwen",
        "Teacafé",
        "Muller Bakery",
    ] {
        app.create_restaurant(name).await;
    }
    let cases: &[(&str, &[&str])] = &[
        ("cafe", &["CAFE CREME", "Café Müller", "Teacafé"]),
        ("CAFÉ", &["CAFE CREME", "Café Müller", "Teacafé"]),
        ("café müller", &["Café Müller"]),
        ("  cafe   MULLER ", &["Café Müller"]),
        ("müller", &["Café Müller", "Muller Bakery"]),
        ("löwen", &["Zum Löwen"]),
        ("LOWEN", &["Zum Löwen"]),
    ];
    for (q, expected) in cases {
        let url = reqwest::Url::parse_with_params(&app.url("/"), &[("q", q)]).unwrap();
        let page = app.client.get(url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{q}");
        let page = page.text().await.unwrap();
        assert_eq!(names_on(&page), *expected, "q={q:?}");
    }
    let (status, page) = app.get_text("/?q=sushi").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No restaurants match “sushi”"), "{page}");
    assert!(page.contains(r#"type="search""#) && page.contains(r#"value="sushi""#));
}

#[apply(both_backends)]
async fn each_sort_order_lists_the_restaurants_as_its_name_says(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // (name, ratings): averages 4.5, 4.5 (fewer reviews), 5, 3, none, none.
    let restaurants: &[(&str, &[u8])] = &[
        ("Bistro Two", &[4, 5]),
        ("Alpha Grill", &[5, 4, 5, 4]),
        ("Ängel Deli", &[5]),
        ("Crown Inn", &[3, 3, 3, 3, 3]),
        ("Zen Garden", &[]),
        ("Delta Diner", &[]),
    ];
    for (name, ratings) in restaurants {
        let id = app.create_restaurant(name).await;
        for rating in *ratings {
            review(&app, id, *rating).await;
        }
    }
    let cases: &[(&str, &[&str])] = &[
        (
            "/",
            &[
                "Alpha Grill",
                "Ängel Deli",
                "Bistro Two",
                "Crown Inn",
                "Delta Diner",
                "Zen Garden",
            ],
        ),
        (
            "/?sort=name",
            &[
                "Alpha Grill",
                "Ängel Deli",
                "Bistro Two",
                "Crown Inn",
                "Delta Diner",
                "Zen Garden",
            ],
        ),
        (
            // Best average first; equal averages by more reviews; no reviews last, by name.
            "/?sort=rating",
            &[
                "Ängel Deli",
                "Alpha Grill",
                "Bistro Two",
                "Crown Inn",
                "Delta Diner",
                "Zen Garden",
            ],
        ),
        (
            "/?sort=reviews",
            &[
                "Crown Inn",
                "Alpha Grill",
                "Bistro Two",
                "Ängel Deli",
                "Delta Diner",
                "Zen Garden",
            ],
        ),
        (
            // An unknown order is the default one, never an error.
            "/?sort=price';--",
            &[
                "Alpha Grill",
                "Ängel Deli",
                "Bistro Two",
                "Crown Inn",
                "Delta Diner",
                "Zen Garden",
            ],
        ),
        (
            "/?q=d&sort=reviews",
            &["Ängel Deli", "Delta Diner", "Zen Garden"],
        ),
    ];
    for (path, expected) in cases {
        let (status, page) = app.get_text(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(names_on(&page), *expected, "{path}");
    }
    let (_, page) = app.get_text("/?sort=rating").await;
    assert!(
        page.contains(r#"<option value="rating" selected>"#),
        "the chosen sort is shown"
    );
}

#[apply(both_backends)]
async fn paging_within_a_search_visits_every_match_once_and_the_links_keep_q_and_sort(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // 45 pizzerias among 60 restaurants; a few have reviews so the order is not just by name.
    let mut expected = Vec::new();
    for i in 0..60 {
        let name = if i % 4 == 0 {
            format!("Taverna {i:02}")
        } else {
            format!("Pizzería {i:02}")
        };
        let id = app.create_restaurant(&name).await;
        if i % 4 != 0 {
            expected.push(name);
        }
        if i % 7 == 0 {
            review(&app, id, 5).await;
        }
    }
    for sort in ["name", "rating", "reviews"] {
        let mut path = format!("/?q=PIZZERIA&sort={sort}");
        let mut pages = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let (status, page) = app.get_text(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            seen.extend(names_on(&page));
            pages.push(path.clone());
            assert!(
                page.contains("of 3</span>"),
                "{path}: three pages of matches"
            );
            match link(&page, "next") {
                Some(next) => {
                    assert!(next.contains("q=PIZZERIA"), "{next} keeps the search");
                    if sort != "name" {
                        assert!(
                            next.contains(&format!("sort={sort}")),
                            "{next} keeps the sort"
                        );
                    }
                    assert!(next.contains("after="), "{next} is a keyset link");
                    path = next;
                }
                None => break,
            }
        }
        assert_eq!(pages.len(), 3, "{sort}: {pages:?}");
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 45, "{sort}: every match once");
        let mut all = expected.clone();
        all.sort();
        assert_eq!(sorted, all, "{sort}: only the matches");
        if sort == "rating" {
            // The five-star pizzerias (i = 7, 14, 21, 35, 42, 49: not 0, 28, 56) come first.
            assert_eq!(seen[0], "Pizzería 07");
        }

        // ...and back from the last page, by the previous links.
        let (_, last) = app
            .get_text(&format!("/?q=PIZZERIA&sort={sort}&page=last"))
            .await;
        let mut back: Vec<String> = names_on(&last);
        let mut page = last;
        while let Some(prev) = link(&page, "prev") {
            assert!(prev.contains("q=PIZZERIA"), "{prev} keeps the search");
            page = app.get_text(&prev).await.1;
            back.splice(0..0, names_on(&page));
        }
        assert_eq!(back, seen, "{sort}: backwards the same list");
    }
}

#[apply(both_backends)]
async fn a_hostile_search_is_only_ever_text(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for name in [
        "100% Vegan",
        "1000 Lakes",
        "Snake_Case Café",
        "Snakes Cafe",
        "O'Brien's",
    ] {
        app.create_restaurant(name).await;
    }
    let long = "a".repeat(200);
    let too_long = "a".repeat(201);
    let percent_run = "%".repeat(200);
    let cases: &[(&str, &str, StatusCode, &[&str])] = &[
        (
            "a percent sign is a percent sign",
            "100%",
            StatusCode::OK,
            &["100% Vegan"],
        ),
        ("a lone percent sign", "%", StatusCode::OK, &["100% Vegan"]),
        (
            "an underscore is an underscore",
            "e_c",
            StatusCode::OK,
            &["Snake_Case Café"],
        ),
        (
            "a lone underscore",
            "_",
            StatusCode::OK,
            &["Snake_Case Café"],
        ),
        ("a quote", "o'brien", StatusCode::OK, &["O'Brien's"]),
        ("SQL", "' OR 1=1 --", StatusCode::OK, &[]),
        (
            "SQL with a semicolon",
            "x'); DROP TABLE restaurant; --",
            StatusCode::OK,
            &[],
        ),
        ("a backslash", "\\", StatusCode::OK, &[]),
        ("an escaped percent", "\\%", StatusCode::OK, &[]),
        ("200 characters", &long, StatusCode::OK, &[]),
        ("200 percent signs", &percent_run, StatusCode::OK, &[]),
        ("201 characters", &too_long, StatusCode::BAD_REQUEST, &[]),
        (
            "control characters",
            "\u{0}\u{7}\u{1b}[2J",
            StatusCode::OK,
            &[],
        ),
    ];
    for (case, q, status, expected) in cases {
        let url = reqwest::Url::parse_with_params(&app.url("/"), &[("q", q)]).unwrap();
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), *status, "{case}");
        let page = response.text().await.unwrap();
        assert!(page.contains("<html"), "{case}: a page");
        if *status == StatusCode::OK {
            assert_eq!(names_on(&page), *expected, "{case}");
        }
    }
    // Query strings no browser sends are refused clearly.
    for path in ["/?q=%ZZ", "/?q=%FF", "/?q=a&q=b"] {
        let (status, page) = app.get_text(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(page.contains("could not be read"), "{path}");
    }
    assert_eq!(app.restaurant_count().await, 5);
}
