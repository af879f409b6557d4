//! Keyset paging and name order, on both databases: the pager's links walk every restaurant
//! (and every review) exactly once, whatever is added meanwhile, and names sort as people
//! expect rather than by bytes.

use rstest::rstest;
use rstest_reuse::apply;

use crate::helpers::both_backends;
use crate::helpers::{Backend, TestApp};

const PER_PAGE: usize = 20;

/// The restaurant names on an index page, in the order shown.
pub(crate) fn names_on(page: &str) -> Vec<String> {
    page.split(r#"<a class="fw-semibold text-decoration-none" href=""#)
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split_once("\">")?.1.split_once("</a>")?.0;
            Some(html_unescape(name))
        })
        .collect()
}

pub(crate) fn html_unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
}

/// The href of the pager link with `rel`, unescaped.
pub(crate) fn link(page: &str, rel: &str) -> Option<String> {
    let before = page.split(&format!("\" rel=\"{rel}\"")).next()?;
    if before.len() == page.len() {
        return None;
    }
    Some(html_unescape(before.rsplit("href=\"").next()?))
}

/// Review ids on a details page, in the order shown.
fn review_ids_on(page: &str) -> Vec<i64> {
    page.split("id=\"review-")
        .skip(1)
        .filter_map(|rest| rest.split_once('"')?.0.parse().ok())
        .collect()
}

#[apply(both_backends)]
async fn names_are_listed_in_the_order_people_expect_on_both_databases(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let expected = [
        "10 Downing",
        "9 Lives",
        "Ängel",
        "Äpfel & Birnen",
        "apple tree diner",
        "Cafe Creme",
        "café crème",
        "Zebra Bar",
        "Zum Löwen",
    ];
    for name in [
        "Zum Löwen",
        "café crème",
        "apple tree diner",
        "9 Lives",
        "Zebra Bar",
    ] {
        app.create_restaurant(name).await;
    }
    for name in ["Äpfel & Birnen", "Cafe Creme", "Ängel", "10 Downing"] {
        app.create_restaurant(name).await;
    }
    let (_, index) = app.get_text("/").await;
    assert_eq!(names_on(&index), expected);
}

#[apply(both_backends)]
async fn next_and_previous_links_visit_every_restaurant_once_even_with_equal_names(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Ties everywhere: 45 restaurants under three names, so only the id orders them.
    for i in 0..45 {
        let name = ["Same Place", "Twin Diner", "Échoppe"][i % 3];
        app.create_restaurant(name).await;
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/".to_owned();
    loop {
        let (_, page) = app.get_text(&path).await;
        let hrefs: Vec<String> = page
            .split("href=\"/")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(href, _)| href.to_owned()))
            .filter(|href| href.ends_with('/') && href.trim_end_matches('/').parse::<i64>().is_ok())
            .collect();
        let mut ids: Vec<String> = hrefs;
        ids.dedup(); // the name and the Details button link the same page
        seen.extend(ids.clone());
        pages.push((path.clone(), ids));
        match link(&page, "next") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(
        pages[1].0.contains("after="),
        "keyset links: {}",
        pages[1].0
    );
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (45, 45), "{pages:?}");
    let (_, last) = app.get_text(&pages[2].0).await;
    assert!(last.contains("Page 3 of 3"));

    // And back: the previous links give the same pages.
    let prev = link(&last, "prev").expect("a previous link on page 3");
    assert!(prev.contains("before="), "{prev}");
    let (_, second) = app.get_text(&prev).await;
    assert!(second.contains("Page 2 of 3"));
    let names_second: Vec<String> = names_on(&second);
    assert_eq!(names_second.len(), PER_PAGE);
    let (_, via_next) = app.get_text(&pages[1].0).await;
    assert_eq!(second, via_next);

    // The last page by its own link, and an old-style page number, agree.
    let (_, by_last) = app.get_text("/?page=last").await;
    let (_, by_number) = app.get_text("/?page=3").await;
    assert_eq!(names_on(&by_last).len(), 5);
    assert_eq!(by_last, by_number);
}

#[apply(both_backends)]
async fn a_restaurant_added_between_page_loads_is_neither_repeated_nor_skipped(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for i in 0..30 {
        app.create_restaurant(&format!("Bistro {i:02}")).await;
    }
    let (_, first) = app.get_text("/").await;
    let first_names = names_on(&first);
    assert_eq!(first_names.last().map(String::as_str), Some("Bistro 19"));
    let next = link(&first, "next").unwrap();

    // Someone adds a restaurant that sorts onto the first page before the reader goes on.
    app.create_restaurant("Auberge").await;
    let (_, second) = app.get_text(&next).await;
    let second_names = names_on(&second);
    assert_eq!(second_names.first().map(String::as_str), Some("Bistro 20"));
    assert_eq!(second_names.len(), 10);
    assert!(second.contains("Page 2 of 2"));
    // The first page now starts with the newcomer.
    let (_, again) = app.get_text("/").await;
    assert_eq!(names_on(&again)[0], "Auberge");
}

#[apply(both_backends)]
async fn reviews_are_paged_newest_first_by_keyset(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Much Discussed").await;
    for i in 0..45 {
        let form = app
            .review_form(
                id,
                &[
                    ("user_name", "Regular"),
                    ("rating", "4"),
                    ("review_text", &format!("Visit {i}")),
                ],
            )
            .await;
        assert!(app.post_review(id, form).await.status().is_redirection());
    }
    let (_, first) = app.get_text(&format!("/{id}/")).await;
    let newest = review_ids_on(&first);
    assert_eq!(newest.len(), PER_PAGE);
    assert!(newest.windows(2).all(|w| w[0] > w[1]), "newest first");
    let next = link(&first, "next").unwrap();
    assert!(next.contains("after="), "{next}");
    let (_, second) = app.get_text(&next).await;
    let older = review_ids_on(&second);
    assert_eq!(older.len(), PER_PAGE);
    assert!(older[0] < *newest.last().unwrap());
    let (_, last) = app.get_text(&format!("/{id}/?page=last")).await;
    let oldest = review_ids_on(&last);
    assert_eq!(oldest.len(), 5);
    assert!(last.contains("Page 3 of 3"));
    assert!(oldest[4] < older[PER_PAGE - 1]);
    let mut all: Vec<i64> = [newest, older, oldest].concat();
    all.dedup();
    assert_eq!(all.len(), 45);
    // Back from the last page.
    let prev = link(&last, "prev").unwrap();
    let (_, back) = app.get_text(&prev).await;
    assert_eq!(review_ids_on(&back), review_ids_on(&second));
}

#[apply(both_backends)]
async fn restaurants_inserted_and_deleted_in_bulk_are_counted_by_the_pager(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // One statement each, as an import or a cleanup would: the total is kept per statement on
    // PostgreSQL, per row on SQLite.
    let insert = "INSERT INTO restaurant (name, street_address, description) \
                  SELECT 'Imported ' || n, n || ' Main Street', 'Imported.' FROM (\
                      WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 45) \
                      SELECT n FROM seq) s";
    let delete = "DELETE FROM restaurant WHERE name IN ('Imported 1', 'Imported 2', 'Imported 3')";
    app.execute(insert).await;
    app.execute(delete).await;
    assert_eq!(app.restaurant_count().await, 42);
    let (_, first) = app.get_text("/").await;
    assert!(
        first.contains("Page 1 of 3"),
        "42 restaurants in pages of 20"
    );
    let (_, last) = app.get_text("/?page=3").await;
    assert_eq!(names_on(&last).len(), 2);
}

/// Numbered pages (bookmarks from before keyset paging) are answered from a map of where each
/// page ends, not by an OFFSET scan: they must show what walking the next links shows, in
/// every order, and follow a restaurant added here at once.
#[apply(both_backends)]
async fn a_numbered_page_shows_what_the_next_links_reach_and_follows_a_new_restaurant(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for i in 0..50 {
        app.create_restaurant(&format!("Numbered {i:02}")).await;
    }
    for sort in ["", "&sort=reviews", "&sort=rating"] {
        let mut path = format!("/?page=1{sort}");
        for number in 1..=3 {
            let (_, walked) = app.get_text(&path).await;
            let (_, numbered) = app.get_text(&format!("/?page={number}{sort}")).await;
            assert_eq!(
                names_on(&numbered),
                names_on(&walked),
                "page {number}{sort}"
            );
            assert!(
                numbered.contains(&format!("Page {number} of 3")),
                "page {number}{sort}"
            );
            if let Some(next) = link(&walked, "next") {
                path = next;
            }
        }
        // Past the end: the last page, as before.
        let (_, past) = app.get_text(&format!("/?page=40{sort}")).await;
        assert_eq!(names_on(&past).len(), 10, "page 40{sort}");
    }
    // A name sorting first pushes every later one down a place on numbered pages too.
    app.create_restaurant("Numbered 00 (first)").await;
    let (_, second) = app.get_text("/?page=2").await;
    assert_eq!(
        names_on(&second).first().map(String::as_str),
        Some("Numbered 19")
    );
}
