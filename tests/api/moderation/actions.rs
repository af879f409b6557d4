//! What moderators do, and what visitors see after.

use reqwest::StatusCode;
use rstest::rstest;
use rstest_reuse::apply;

use super::{
    act, add_review, browser, log_entries, moderator, page_as, report, review_action, totals,
};
use crate::helpers::{Backend, TestApp, both_backends};

#[apply(both_backends)]
async fn a_report_lands_in_the_queue_and_one_visitor_counts_once(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Spam Corner").await;
    let review = add_review(&app, restaurant, "Bot", "5", false).await;
    let visitor = browser();
    for _ in 0..2 {
        let response = report(&app, &visitor, restaurant, review, "spam", "buy pills here").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()["location"],
            format!("/{restaurant}/").as_str()
        );
    }
    report(&app, &browser(), restaurant, review, "offensive", "").await;
    let (reports,): (i64,) = app
        .db
        .fetch_one("SELECT COUNT(*) FROM review_report", &[])
        .await
        .unwrap();
    assert_eq!(reports, 2, "the same visitor twice counts once");

    // Still visible until a moderator acts.
    let (_, page) = app.get_text(&format!("/{restaurant}/")).await;
    assert!(page.contains(&format!("id=\"review-{review}\"")));
    let moderator = moderator(&app).await;
    let queue = page_as(&app, &moderator, "/moderate/").await;
    let queued = queue.split("id=\"hidden\"").next().unwrap();
    assert!(
        queued.contains(&format!("id=\"moderate-review-{review}\"")),
        "{queue}"
    );
    assert!(queued.contains("Spam or advertising") && queued.contains("buy pills here"));
}

#[apply(both_backends)]
async fn a_report_without_a_reason_or_with_a_long_note_is_refused_and_stores_nothing(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Quiet Place").await;
    let review = add_review(&app, restaurant, "Ann", "4", false).await;
    let long = "x".repeat(501);
    let cases: [(&str, &str, &str, StatusCode); 3] = [
        ("no reason", "", "", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "unknown reason",
            "boring",
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "note over 500 characters",
            "other",
            &long,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (case, reason, note, status) in cases {
        let response = report(&app, &browser(), restaurant, review, reason, note).await;
        assert_eq!(response.status(), status, "{case}");
        assert!(
            response.text().await.unwrap().contains("Report not sent"),
            "{case}"
        );
    }
    let response = report(&app, &browser(), restaurant, review + 100, "spam", "").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (reports,): (i64,) = app
        .db
        .fetch_one("SELECT COUNT(*) FROM review_report", &[])
        .await
        .unwrap();
    assert_eq!(reports, 0);
}

#[apply(both_backends)]
async fn hide_removes_a_review_from_the_page_the_count_and_the_average_at_once_and_restore_brings_it_back(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Fair Diner").await;
    add_review(&app, restaurant, "Ann", "4", false).await;
    let spam = add_review(&app, restaurant, "Spammer", "1", false).await;
    assert_eq!(totals(&app, restaurant).await, (2, 5));
    let moderator = moderator(&app).await;

    review_action(&app, &moderator, spam, "hide").await;
    assert_eq!(totals(&app, restaurant).await, (1, 4));
    let (_, page) = app.get_text(&format!("/{restaurant}/")).await;
    assert!(!page.contains("Spammer") && page.contains("4.0"), "{page}");
    let (_, list) = app.get_text("/").await;
    assert!(
        list.contains("1 review") && !list.contains("2 reviews"),
        "{list}"
    );

    review_action(&app, &moderator, spam, "hide").await;
    assert_eq!(
        totals(&app, restaurant).await,
        (1, 4),
        "hiding twice counts once"
    );

    review_action(&app, &moderator, spam, "restore").await;
    assert_eq!(totals(&app, restaurant).await, (2, 5));
    let (_, page) = app.get_text(&format!("/{restaurant}/")).await;
    assert!(page.contains("Spammer"));
    assert_eq!(
        log_entries(&app).await,
        2,
        "hide and restore; the repeat changed nothing"
    );
}

#[apply(both_backends)]
async fn delete_leaves_no_row_and_no_photo_and_each_action_writes_one_audit_entry(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Photo Place").await;
    add_review(&app, restaurant, "Keeper", "5", false).await;
    let doomed = add_review(&app, restaurant, "Doomed", "2", true).await;
    let pictured = add_review(&app, restaurant, "Pictured", "3", true).await;
    assert_eq!(app.stored_photo_files().len(), 4);
    let moderator = moderator(&app).await;

    review_action(&app, &moderator, doomed, "delete").await;
    assert_eq!(app.review_count().await, 2);
    assert_eq!(totals(&app, restaurant).await, (2, 8));
    assert_eq!(app.stored_photo_files().len(), 2, "both renditions deleted");

    review_action(&app, &moderator, pictured, "remove-photo").await;
    assert!(app.stored_photo_files().is_empty());
    assert!(app.image_names().await.is_empty());
    assert_eq!(
        totals(&app, restaurant).await,
        (2, 8),
        "the review stays and counts"
    );

    let (outbox,): (i64,) = app
        .db
        .fetch_one("SELECT COUNT(*) FROM photo_deletion", &[])
        .await
        .unwrap();
    assert_eq!(outbox, 0);
    let entries: Vec<(String, String, String, String)> = app
        .db
        .fetch_all(
            "SELECT action, subject, before_value, after_value FROM moderation_log ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].0, "delete review");
    assert_eq!(entries[0].1, format!("review {doomed}"));
    assert!(
        entries[0].2.contains("Doomed") && entries[0].3.is_empty(),
        "{entries:?}"
    );
    assert_eq!(entries[1].0, "remove photo");
    let log = page_as(&app, &moderator, "/moderate/log").await;
    assert!(
        log.contains("delete review")
            && log.contains("remove photo")
            && log.contains("local sign-in")
    );
}

#[apply(both_backends)]
async fn delete_when_storage_fails_midway_keeps_the_photo_queued_until_it_is_gone(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Flaky Storage").await;
    let review = add_review(&app, restaurant, "Doomed", "2", true).await;
    let name = app.image_names().await.remove(0);
    // The thumbnail cannot be deleted: a directory stands where its file was (this works even
    // as root, unlike permissions). The display image goes; the thumbnail fails.
    let thumbnail = app.photo_dir.join("thumbs").join(&name);
    std::fs::remove_file(&thumbnail).unwrap();
    std::fs::create_dir(&thumbnail).unwrap();
    std::fs::write(thumbnail.join("stuck"), b"x").unwrap();

    let moderator = moderator(&app).await;
    review_action(&app, &moderator, review, "delete").await;
    assert_eq!(app.review_count().await, 0, "the row goes at once");
    assert!(
        !app.photo_dir.join(&name).exists(),
        "the display image went"
    );
    let queued: Vec<(String,)> = app
        .db
        .fetch_all("SELECT photo_name FROM photo_deletion", &[])
        .await
        .unwrap();
    assert_eq!(queued, [(name.clone(),)], "the photo waits in the outbox");

    // Storage recovers (the impostor goes and a real thumbnail is back, as if the delete had
    // never reached it); the background retry's pass deletes it and empties the outbox.
    std::fs::remove_dir_all(&thumbnail).unwrap();
    std::fs::write(&thumbnail, b"thumbnail").unwrap();
    let photos = restaurant_review::photos::PhotoStore::local(&app.photo_dir).unwrap();
    let left = restaurant_review::moderation::photo_outbox::retry_pending(&app.db, &photos)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(app.stored_photo_files().is_empty());
    assert_eq!(
        restaurant_review::moderation::photo_outbox::pending(&app.db)
            .await
            .unwrap(),
        0
    );
}

/// (case, the form's fields, the field marked invalid)
type EditCase<'a> = (&'a str, [(&'a str, &'a str); 3], &'a str);

#[apply(both_backends)]
async fn edit_refuses_what_adding_refuses_and_saves_what_it_accepts(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Misspelt Bistrot").await;
    let moderator = moderator(&app).await;
    let path = format!("/moderate/restaurants/{restaurant}/edit");
    let long_name = "n".repeat(51);
    let long_address = "a".repeat(51);
    let cases: [EditCase; 4] = [
        (
            "blank name",
            [
                ("restaurant_name", "  "),
                ("street_address", ""),
                ("description", "Ok."),
            ],
            "restaurant_name",
        ),
        (
            "name too long",
            [
                ("restaurant_name", &long_name),
                ("street_address", ""),
                ("description", "Ok."),
            ],
            "restaurant_name",
        ),
        (
            "address too long",
            [
                ("restaurant_name", "Fine"),
                ("street_address", &long_address),
                ("description", "Ok."),
            ],
            "street_address",
        ),
        (
            "no description",
            [
                ("restaurant_name", "Fine"),
                ("street_address", ""),
                ("description", ""),
            ],
            "description",
        ),
    ];
    for (case, fields, field) in cases {
        let response = act(&app, &moderator, &path, &fields).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}"
        );
        let page = response.text().await.unwrap();
        assert!(
            page.contains(&format!("is-invalid\" id=\"{field}\"")),
            "{case}: {page}"
        );
    }
    let (name,): (String,) = app
        .db
        .fetch_one("SELECT name FROM restaurant", &[])
        .await
        .unwrap();
    assert_eq!(name, "Misspelt Bistrot");
    assert_eq!(super::log_entries(&app).await, 0);

    let fields = [
        ("restaurant_name", "Bistro Étoile"),
        ("street_address", "2 Side St"),
        ("description", "Fixed."),
    ];
    let response = act(&app, &moderator, &path, &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, page) = app.get_text(&format!("/{restaurant}/")).await;
    assert!(page.contains("Bistro Étoile") && page.contains("2 Side St"));
    let (_, found) = app.get_text("/?q=etoile").await;
    assert!(
        found.contains("Bistro Étoile"),
        "the search key follows the name"
    );
    assert_eq!(super::log_entries(&app).await, 1);
}

#[apply(both_backends)]
async fn merge_moves_the_reviews_keeps_counts_and_sums_exact_and_301s_the_old_address(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let keep = app.create_restaurant("Luigi's").await;
    let duplicate = app.create_restaurant("Luigis").await;
    let earlier = app.create_restaurant("Luiggi's").await;
    add_review(&app, keep, "A", "5", false).await;
    add_review(&app, duplicate, "B", "3", false).await;
    let hidden = add_review(&app, duplicate, "C", "1", false).await;
    add_review(&app, earlier, "D", "4", false).await;
    let moderator = moderator(&app).await;
    review_action(&app, &moderator, hidden, "hide").await;

    // An earlier duplicate was merged into the one now merged: its address follows along.
    let merge = |from: i64, into: i64| {
        let moderator = moderator.clone();
        let app = &app;
        async move {
            act(
                app,
                &moderator,
                &format!("/moderate/restaurants/{from}/merge"),
                &[("into", &into.to_string())],
            )
            .await
        }
    };
    assert_eq!(
        merge(earlier, duplicate).await.status(),
        StatusCode::SEE_OTHER
    );
    let response = merge(duplicate, keep).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], format!("/{keep}/").as_str());

    assert_eq!(
        totals(&app, keep).await,
        (3, 12),
        "5 + 3 + 4; the hidden 1 not counted"
    );
    assert_eq!(app.restaurant_count().await, 1);
    assert_eq!(app.review_count().await, 4, "the hidden review moved too");
    for old in [duplicate, earlier] {
        let response = app.get(&format!("/{old}/")).await;
        assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY, "/{old}/");
        assert_eq!(response.headers()["location"], format!("/{keep}/").as_str());
    }
    let (_, list) = app.get_text("/").await;
    assert!(list.contains("3 reviews"), "{list}");

    for (case, into, status) in [
        ("itself", keep.to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "no such restaurant",
            "9999".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "not a number",
            "Luigi".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let response = act(
            &app,
            &moderator,
            &format!("/moderate/restaurants/{keep}/merge"),
            &[("into", &into)],
        )
        .await;
        assert_eq!(response.status(), status, "{case}");
    }
    assert_eq!(totals(&app, keep).await, (3, 12));
    assert_eq!(log_entries(&app).await, 3, "a hide and two merges");
}

#[apply(both_backends)]
async fn totals_stay_exact_when_hides_restores_and_new_reviews_race(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let restaurant = app.create_restaurant("Busy Place").await;
    let mut reviews = Vec::new();
    for rating in ["1", "2", "3", "4"] {
        reviews.push(add_review(&app, restaurant, "Early", rating, false).await);
    }
    let moderator = moderator(&app).await;
    let toggles = reviews.iter().flat_map(|&id| {
        let moderator = moderator.clone();
        let app = &app;
        ["hide", "restore", "hide"].into_iter().map(move |action| {
            let moderator = moderator.clone();
            async move { review_action(app, &moderator, id, action).await }
        })
    });
    let posts = (0..4).map(|_| async {
        add_review(&app, restaurant, "Late", "5", false).await;
    });
    futures_util::future::join(
        futures_util::future::join_all(toggles),
        futures_util::future::join_all(posts),
    )
    .await;
    let visible: (i64, i64) = app
        .db
        .fetch_one(
            "SELECT COUNT(*), COALESCE(SUM(rating), 0) FROM review WHERE restaurant_id = $1 AND NOT hidden",
            &[restaurant.into()],
        )
        .await
        .unwrap();
    assert_eq!(totals(&app, restaurant).await, visible);
}
