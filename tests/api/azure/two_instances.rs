//! Two instances behind one load balancer, as App Service scales out: two processes of the real
//! binary on the same PostgreSQL database (token mode) and the same Azurite container, and a
//! browser whose requests alternate between them. Nothing a request needs may live in one
//! process's memory: not the data, not the form's CSRF secret, not what a photo link needs.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::multipart::Form;

use crate::helpers::azure_rig::AzureRig;
use crate::helpers::process::{AppProcess, add_restaurant, browser, get_page};
use crate::helpers::{PHONE_PHOTO, extract_csrf, photo_part};

struct Pair {
    rig: AzureRig,
    a: AppProcess,
    b: AppProcess,
}

impl Pair {
    async fn start() -> Option<Self> {
        let rig = AzureRig::start(Duration::from_secs(3600)).await?;
        // One after the other, as a scale-out adds an instance to a running site.
        let mut a = rig.start_app();
        assert!(a.wait_healthy().await, "{}", a.output());
        let mut b = rig.start_app();
        assert!(b.wait_healthy().await, "{}", b.output());
        Some(Self { rig, a, b })
    }

    /// Adds a restaurant through `app` and returns its id.
    async fn restaurant(&self, client: &reqwest::Client, app: &AppProcess, name: &str) -> i64 {
        let response = add_restaurant(client, app, name).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap();
        location.trim_matches('/').parse().unwrap()
    }
}

/// A review form for `restaurant` as `served_by` renders it (token from its page).
async fn review_form(
    client: &reqwest::Client,
    served_by: &AppProcess,
    restaurant: i64,
    text: &str,
    rating: u8,
    photo: bool,
) -> Form {
    let page = get_page(client, served_by, &format!("/{restaurant}/")).await;
    let token = extract_csrf(&page).expect("the page has the review form");
    let form = Form::new()
        .text("csrfmiddlewaretoken", token)
        .text("user_name", "Scaled Out")
        .text("rating", rating.to_string())
        .text("review_text", text.to_owned());
    if photo {
        form.part(
            "reviewImage",
            photo_part(PHONE_PHOTO, "IMG_0042.JPG", "image/jpeg"),
        )
    } else {
        form
    }
}

async fn post(
    client: &reqwest::Client,
    to: &AppProcess,
    restaurant: i64,
    form: Form,
) -> StatusCode {
    client
        .post(to.url(&format!("/review/{restaurant}")))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .status()
}

/// Every photo link on a page: the thumbnails' `src` and the links' `href` into storage.
fn photo_links(html: &str, storage: &str) -> Vec<String> {
    html.match_indices(&format!("\"{storage}"))
        .filter_map(|(i, _)| html[i + 1..].split('"').next())
        .map(|url| url.replace("&#38;", "&").replace("&amp;", "&"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_posted_on_one_instance_shows_on_the_others_next_page_load() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let client = browser();
    let restaurant = pair.restaurant(&client, &pair.a, "Scale Out Cafe").await;
    for (i, (on, other)) in [(&pair.a, &pair.b), (&pair.b, &pair.a)]
        .into_iter()
        .enumerate()
    {
        let text = format!("Posted on one instance, read on the other ({i}).");
        let form = review_form(&client, on, restaurant, &text, 4, false).await;
        assert_eq!(
            post(&client, on, restaurant, form).await,
            StatusCode::SEE_OTHER
        );
        let page = get_page(&client, other, &format!("/{restaurant}/")).await;
        assert!(
            page.contains(&text),
            "{i}: not on the other instance's page"
        );
    }
    // The restaurant added on A is listed by B too.
    assert!(
        get_page(&client, &pair.b, "/")
            .await
            .contains("Scale Out Cafe")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_served_by_one_instance_is_accepted_by_the_other() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let client = browser();
    // The restaurant form from B, posted to A.
    let page = get_page(&client, &pair.b, "/create").await;
    let token = extract_csrf(&page).unwrap();
    let response = client
        .post(pair.a.url("/add"))
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("restaurant_name", "Cross Instance"),
            ("description", "Form from one, post to the other."),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let restaurant: i64 = response.headers()["location"]
        .to_str()
        .unwrap()
        .trim_matches('/')
        .parse()
        .unwrap();
    // The review form from A, posted to B, and the other way round.
    for (served_by, posted_to) in [(&pair.a, &pair.b), (&pair.b, &pair.a)] {
        let form = review_form(&client, served_by, restaurant, "Across.", 5, false).await;
        assert_eq!(
            post(&client, posted_to, restaurant, form).await,
            StatusCode::SEE_OTHER
        );
    }
    let reviews: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM review")
        .fetch_one(&mut pair.rig.admin_db().await)
        .await
        .unwrap();
    assert_eq!(reviews, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photo_links_made_by_either_instance_work() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let client = browser();
    let restaurant = pair.restaurant(&client, &pair.a, "Photo Twins").await;
    for (i, app) in [&pair.a, &pair.b].into_iter().enumerate() {
        let form = review_form(&client, app, restaurant, &format!("photo {i}"), 5, true).await;
        assert_eq!(
            post(&client, app, restaurant, form).await,
            StatusCode::SEE_OTHER
        );
    }
    assert_eq!(
        pair.rig.blobs().await.len(),
        4,
        "two photos, two renditions"
    );
    let anonymous = pair.rig.azurite.anonymous_client();
    let storage = format!("{}/", pair.rig.azurite.endpoint());
    for (name, app) in [("A", &pair.a), ("B", &pair.b)] {
        let page = get_page(&client, app, &format!("/{restaurant}/")).await;
        let links = photo_links(&page, &storage);
        assert_eq!(links.len(), 4, "{name}: a thumbnail and a link per photo");
        for link in links {
            // SAS links, signed with each instance's own delegation key: any browser can open them.
            assert!(link.contains("sig="), "{name}: {link}");
            let response = anonymous.get(&link).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{name}: {link}");
            assert_eq!(response.headers()["content-type"], "image/jpeg");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_to_one_restaurant_on_both_instances_keep_the_counts_exact() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let setup = browser();
    let restaurant = pair.restaurant(&setup, &pair.a, "Busy Place").await;
    // Twenty browsers, half on each instance, each with its form ready, then all post at once.
    // Ratings: 7 fives and 13 twos, 61 in all, an average of 3.05, shown as 3.1.
    let mut forms = Vec::new();
    for i in 0..20u8 {
        let client = browser();
        let app = if i % 2 == 0 { &pair.a } else { &pair.b };
        let rating = if i % 3 == 0 { 5 } else { 2 };
        let form = review_form(
            &client,
            app,
            restaurant,
            &format!("rush {i}"),
            rating,
            false,
        )
        .await;
        forms.push((client, app.url(&format!("/review/{restaurant}")), form));
    }
    let posts = forms.into_iter().map(|(client, url, form)| {
        tokio::spawn(async move {
            client
                .post(url)
                .multipart(form)
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    for post in posts.collect::<Vec<_>>() {
        assert_eq!(post.await.unwrap(), StatusCode::SEE_OTHER);
    }
    for (name, app) in [("A", &pair.a), ("B", &pair.b)] {
        let details = get_page(&setup, app, &format!("/{restaurant}/")).await;
        assert!(
            details.contains(">3.1</span>") && details.contains("20 reviews"),
            "{name}'s details page"
        );
        let index = get_page(&setup, app, "/").await;
        assert!(
            index.contains(">3.1</span>") && index.contains("(20 reviews)"),
            "{name}'s list"
        );
    }
    let totals = pair.rig.stored_totals().await;
    assert_eq!(totals[&restaurant], (20, 61));
}
